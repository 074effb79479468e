"""A bounded LRU of conversation states, so a busy conversation is not re-folded from the
store on every message. A miss is always safe: the store is the source of truth.

Bounded by size, not only by count: one long conversation holds megabytes (every prospect
message is kept in `prospect_texts`), so 10,000 of them could take gigabytes. The bound is
`max_bytes` of *serialised* state (`SALESBOT_STATE_CACHE_MB`), with the least recently
used states evicted first; `max_entries` still caps the count, because for small states
Python's objects take several times their JSON size.

How a state is measured, cheaply. Serialising a 1.9 MB state takes ~8 ms — more than
deciding — so the cache does not serialise on every message. A state's size is estimated
as the JSON of everything but its two text tuples (small: a few hundred bytes to a few KB
of quotes and tickets), plus the UTF-8 length of every text in `prospect_texts` and
`transcript` with the JSON punctuation around each. The texts of `prospect_texts` are
counted once: a conversation's next state shares the earlier texts (a new tuple of the
same string objects), so only the new ones at its end are measured. The estimate leaves
out JSON escaping (a quote or a control character in a text counts as one byte), so it can
be below the exact length by the number of such characters, and above it by two bytes;
otherwise it is exact (tests/bot/test_operations_state_cache.py).

The part without the texts is serialised again only every `REMEASURE_EVERY` versions of a
conversation (and whenever it is first cached or went back): serialising it on every put
(its score with a hundred exact decimals, its quotes) cost about 2 % of a message's CPU,
and it grows by a few hundred bytes a message at most, against a budget in megabytes.
Between two measurements a conversation's estimate lags by what that part gained since;
the texts, which are what grows without bound, are always counted.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from domain.state import ConversationState

MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 256 * MIB
DEFAULT_MAX_ENTRIES = 10_000
_TEXT_FIELDS = frozenset({"prospect_texts", "transcript"})
_FIELDS_JSON = len(',"prospect_texts":[]') + len(',"transcript":[]')
REMEASURE_EVERY = 16
"""Versions of a conversation between two serialisations of its state without the texts."""


@dataclass(frozen=True, slots=True)
class _Entry:
    state: ConversationState
    size: int
    texts_counted: int
    """How many of `state.prospect_texts` `texts_bytes` covers (all of them)."""
    texts_bytes: int
    rest: int
    """The JSON length of the state without its texts, measured at `rest_version`."""
    rest_version: int


def _text_bytes(text: str) -> int:
    # str.isascii is O(1) in CPython (a flag on the string); encoding only the rest.
    return (len(text) if text.isascii() else len(text.encode("utf-8"))) + 3  # "…",


class StateCache:
    def __init__(
        self, max_bytes: int = DEFAULT_MAX_BYTES, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        if max_bytes < 0 or max_entries < 0:
            raise ValueError("the cache's bounds cannot be negative")
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    def get(self, conversation_id: str) -> ConversationState | None:
        entry = self._entries.get(conversation_id)
        if entry is None:
            return None
        self._entries.move_to_end(conversation_id)
        return entry.state

    def put(self, state: ConversationState) -> None:
        key = state.conversation_id
        entry = self._measure(state, self._entries.get(key))
        self.drop(key)
        if entry.size > self._max_bytes or self._max_entries == 0:
            return  # larger than the whole cache: re-folded from the store when needed
        self._entries[key] = entry
        self._bytes += entry.size
        while self._bytes > self._max_bytes or len(self._entries) > self._max_entries:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size

    def drop(self, conversation_id: str) -> None:
        entry = self._entries.pop(conversation_id, None)
        if entry is not None:
            self._bytes -= entry.size

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """The estimated serialised size of every cached state."""
        return self._bytes

    @staticmethod
    def _measure(state: ConversationState, previous: _Entry | None) -> _Entry:
        texts = state.prospect_texts
        start, texts_bytes = 0, 0
        if previous is not None:
            counted = previous.texts_counted
            earlier = previous.state.prospect_texts
            # The same objects at the same places: the earlier texts are already counted.
            if 0 < counted <= len(texts) and texts[counted - 1] is earlier[counted - 1]:
                start, texts_bytes = counted, previous.texts_bytes
        texts_bytes += sum(_text_bytes(text) for text in texts[start:])
        transcript = sum(
            _text_bytes(speaker) + _text_bytes(line) + 2 for speaker, line in state.transcript
        )
        if previous is not None and (
            previous.rest_version <= state.version < previous.rest_version + REMEASURE_EVERY
        ):
            rest, rest_version = previous.rest, previous.rest_version
        else:
            rest = len(state.model_dump_json(exclude=set(_TEXT_FIELDS)))
            rest_version = state.version
        size = rest + _FIELDS_JSON + texts_bytes + transcript
        return _Entry(
            state=state,
            size=size,
            texts_counted=len(texts),
            texts_bytes=texts_bytes,
            rest=rest,
            rest_version=rest_version,
        )


def exact_size(state: ConversationState) -> int:
    """The state's serialised size, exactly (what the estimate approximates; for tests and
    benchmarks: it costs a full serialisation)."""
    return len(state.model_dump_json().encode("utf-8"))
