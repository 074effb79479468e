"""Reading a conversation back (`sealing.open_events`, what `load` runs) gives the events the
plain decode gives — the standard library's JSON parser, the sealed values put back, the
envelope validated — on every kind of stored log: earlier releases' stores, and a sales day
of this release with sealed events and an erased conversation."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from domain.events import EventEnvelope
from domain.personal import ERASED, join
from storage import sealing
from storage.errors import StorageError
from storage.sqlite import SqliteStore
from tests.support.varied_stores import ERASED as ERASED_CONVERSATION
from tests.support.varied_stores import varied_stores


def plain_decode(stored: str, keys: sealing.Keys) -> EventEnvelope:
    """The decode `open_events` replaced, step by step."""
    data: dict[str, Any] = json.loads(stored)
    sealed = data.pop(sealing.SEALED_FIELD, None)
    if sealed is not None:
        aad = sealing.event_aad(data["conversation_id"], data["seq"])
        data["event"] = join(data["event"], sealing._decrypt(keys, sealed, aad))
    return EventEnvelope.model_validate(data)


def stored_logs(path: Path) -> dict[str, tuple[list[str], dict[int, bytes]]]:
    """Each conversation's stored envelopes, in order, and its live keys."""
    logs: dict[str, tuple[list[str], dict[int, bytes]]] = {}
    with sqlite3.connect(path) as conn:
        for cid, text in conn.execute(
            "SELECT conversation_id, envelope FROM events ORDER BY conversation_id, seq"
        ):
            logs.setdefault(cid, ([], {}))[0].append(text)
        for cid, key_id, key in conn.execute(
            "SELECT conversation_id, key_id, key FROM conversation_keys"
        ):
            if cid in logs:
                logs[cid][1][int(key_id)] = bytes(key)
    return logs


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return varied_stores(tmp_path_factory.mktemp("varied"))


def test_reading_back_gives_the_events_the_plain_decode_gives(stores: list[Path]) -> None:
    events = sealed = erased = 0
    for path in stores:
        for cid, (texts, keys) in stored_logs(path).items():
            expected = [plain_decode(text, keys) for text in texts]
            opened = sealing.open_events(texts, keys)
            assert opened == expected
            assert [e.model_dump_json() for e in opened] == [e.model_dump_json() for e in expected]
            assert [sealing.open_event(text, keys) for text in texts] == expected
            events += len(texts)
            sealed += sum('"sealed":' in text for text in texts)
            if cid == ERASED_CONVERSATION and path.name == "sales-day.db":
                erased += sum(ERASED in e.model_dump_json() for e in opened)
    assert events > 1000
    assert sealed > 100
    assert erased > 0  # the erased conversation's words read `[erased]`


async def _loaded(path: Path) -> dict[str, list[EventEnvelope]]:
    async with await SqliteStore.open(path) as store:
        return {cid: await store.load(cid) for cid in await store.conversation_ids()}


def test_the_store_loads_what_the_plain_decode_gives(stores: list[Path]) -> None:
    today = stores[-1]
    loaded = asyncio.run(_loaded(today))
    logs = stored_logs(today)
    assert loaded.keys() == logs.keys()
    for cid, (texts, keys) in logs.items():
        assert loaded[cid] == [plain_decode(text, keys) for text in texts]


def test_a_changed_sealed_value_still_does_not_open(stores: list[Path]) -> None:
    texts, keys = next(
        (texts, keys)
        for texts, keys in stored_logs(stores[-1]).values()
        if keys and any('"sealed":' in text for text in texts)
    )
    text = next(text for text in texts if '"sealed":' in text)
    data = json.loads(text)
    body = data["sealed"]
    data["sealed"] = body[:-6] + ("AAAA==" if not body.endswith("AAAA==") else "BBBB==")
    with pytest.raises(StorageError, match="does not open"):
        sealing.open_events([json.dumps(data)], keys)
