"""Conversation references kept in memory (`adapters.teams.references`): the sender's read
before each post costs no store round trip while the reference is fresh, a change the
endpoint writes is seen at once, another process's change once the copy is old, and no
other key is cached; and the endpoint writes a reference only when it changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from adapters.teams import book
from adapters.teams.references import ReferenceCache
from bench.ingest_bodies import TeamsBodies
from bot.settings import Settings
from storage.memory import MemoryStore
from tests.e2e.harness import serving
from tests.fakes.teams_connector import FakeConnector

NOW = 1_700_000_000_000
KEY = book.conversation_key("a:1personal")
REFERENCE = {"serviceUrl": "https://smba.example/amer/", "conversation": {"id": "a:1personal"}}


class CountingStates:
    """The store's adapter state, counting the reads that reach it."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.reads: list[str] = []

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None:
        await self.store.put_state(key, value, at_ms)

    async def get_state(self, key: str) -> dict[str, Any] | None:
        self.reads.append(key)
        return await self.store.get_state(key)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


async def test_a_reference_written_here_is_read_without_the_store() -> None:
    states, clock = CountingStates(), Clock()
    cache = ReferenceCache(states, clock, ttl_ms=1_000)
    await cache.put_state(KEY, REFERENCE, NOW)
    assert await states.store.get_state(KEY) == REFERENCE  # written through
    for _ in range(3):
        assert await cache.get_state(KEY) == REFERENCE
    assert states.reads == []
    moved = {**REFERENCE, "serviceUrl": "https://smba.example/emea/"}
    await cache.put_state(KEY, moved, NOW)
    assert await cache.get_state(KEY) == moved  # a change written here is seen at once
    assert states.reads == []


async def test_another_process_change_is_seen_once_the_copy_is_old() -> None:
    states, clock = CountingStates(), Clock()
    cache = ReferenceCache(states, clock, ttl_ms=1_000)
    await states.put_state(KEY, REFERENCE, NOW)
    assert await cache.get_state(KEY) == REFERENCE
    assert await cache.get_state(KEY) == REFERENCE
    assert states.reads == [KEY]  # read once, then kept
    moved = {**REFERENCE, "serviceUrl": "https://smba.example/emea/"}
    await states.put_state(KEY, moved, NOW)  # another replica's write
    clock.now += 999
    assert await cache.get_state(KEY) == REFERENCE
    clock.now += 1
    assert await cache.get_state(KEY) == moved
    assert states.reads == [KEY, KEY]


async def test_an_unknown_conversation_is_asked_for_again_and_other_keys_pass_through() -> None:
    states, clock = CountingStates(), Clock()
    cache = ReferenceCache(states, clock)
    assert await cache.get_state(KEY) is None
    assert await cache.get_state(KEY) is None  # nothing known yet: no stale "absent"
    card = book.card_key("a:1personal", "quote:Q-1")
    await cache.put_state(card, {"activity_id": "1"}, NOW)
    assert await cache.get_state(card) == {"activity_id": "1"}
    assert await cache.get_state(card) == {"activity_id": "1"}
    assert states.reads == [KEY, KEY, card, card]


async def test_the_least_recently_used_reference_goes_first() -> None:
    states, clock = CountingStates(), Clock()
    cache = ReferenceCache(states, clock, max_entries=2)
    keys = [book.conversation_key(f"a:{n}") for n in range(3)]
    for key in keys[:2]:
        await cache.put_state(key, REFERENCE, NOW)
    await cache.get_state(keys[0])  # now the most recently used
    await cache.put_state(keys[2], REFERENCE, NOW)
    for key in (keys[0], keys[2], keys[1]):
        await cache.get_state(key)
    assert states.reads == [keys[1]]  # the one left out


async def test_a_refused_write_is_not_kept() -> None:
    class Refusing(CountingStates):
        async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None:
            raise OSError("disk full")

    states = Refusing()
    cache = ReferenceCache(states, Clock())
    with pytest.raises(OSError, match="disk full"):
        await cache.put_state(KEY, REFERENCE, NOW)
    assert await cache.get_state(KEY) is None
    assert states.reads == [KEY]


class CountingStore(MemoryStore):
    """A store counting what the endpoint writes under each adapter-state key."""

    def __init__(self) -> None:
        super().__init__()
        self.puts: list[str] = []

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None:
        self.puts.append(key)
        await super().put_state(key, value, at_ms)


async def test_the_endpoint_writes_a_reference_again_only_when_it_changed() -> None:
    async with FakeConnector(tenant_id="tenant-0001") as first, FakeConnector() as second:
        store = CountingStore()
        configured = Settings(teams_allow_unauthenticated=True, teams_app_tenant_id="tenant-0001")
        async with serving(None, configured, store) as client:

            async def say(bodies: TeamsBodies, message: int) -> None:
                body, headers = bodies.request(0, message)
                response = await client.post("/api/messages", data=body, headers=headers)
                assert response.status == 200

            here = TeamsBodies(first.base_url, run="r")
            key = book.conversation_key("a:bench-r-00000")
            for message in range(3):
                await say(here, message)
            assert store.puts.count(key) == 1  # three messages, one write
            assert store.puts.count(book.SERVICE_URL_KEY) == 1
            await say(TeamsBodies(second.base_url, run="r"), 3)  # the service URL moved
            assert store.puts.count(key) == 2
            assert store.puts.count(book.SERVICE_URL_KEY) == 2
            stored = await store.get_state(key)
            assert stored is not None
            assert stored["serviceUrl"] == second.base_url
