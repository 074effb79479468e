"""Conversation references kept in memory for a while, in front of the store's adapter state.

The sender reads a conversation's reference (`book.conversation_key`: its service URL, its
tenant, whether it is a personal chat) before every post. Read from the store each time, that
was one round trip to the store's reader thread per reply: measured, 6–9 % of the Teams
ingest throughput. A reference changes only when an activity arrives with different details
(Teams moving a tenant to another service URL), and the endpoint writes that change through
this same cache, so in one process the cached reference is the stored one.

Another process sharing the store (a replica, or an operator's command) may write a newer
reference: this process sees it once its copy is `TTL_MS` old. A stale service URL for that
long is safe: the connector answers a post to the old one or refuses it, and the outbox
retries. Every other key passes straight through.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from adapters.teams.book import StateBook, conversation_key

TTL_MS = 60_000
"""How long a reference read or written here is used without reading the store again."""
MAX_ENTRIES = 10_000
"""References kept at most (the least recently used go first): a few hundred bytes each."""

_PREFIX = conversation_key("")


class ReferenceCache:
    """A `StateBook` over `states` that keeps conversation references for `ttl_ms`. A
    reference it hands out is shared with later readers: read it, never change it."""

    def __init__(
        self,
        states: StateBook,
        clock: Callable[[], int],
        *,
        ttl_ms: int = TTL_MS,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._states = states
        self._clock = clock
        self._ttl_ms = ttl_ms
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None:
        # A failed write raises before the entry changes: the cache never holds what the
        # store refused.
        await self._states.put_state(key, value, at_ms)
        if key.startswith(_PREFIX):
            self._keep(key, dict(value))

    async def get_state(self, key: str) -> dict[str, Any] | None:
        if not key.startswith(_PREFIX):
            return await self._states.get_state(key)
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry[1]:
            self._entries.move_to_end(key)
            return entry[0]
        value = await self._states.get_state(key)
        if value is None:
            self._entries.pop(key, None)
        else:
            self._keep(key, value)
        return value

    def _keep(self, key: str, value: dict[str, Any]) -> None:
        self._entries[key] = (value, self._clock() + self._ttl_ms)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
