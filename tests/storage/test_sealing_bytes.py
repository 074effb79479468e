"""Sealed events are stored as the envelope model itself would write them: the hash chain
links these bytes, so sealing faster must not change one of them.

`stored_form` masks the event on the model (`domain.personal.split_model`) and dumps the
copy once, and `Sealer.event` adds `sealed`; the reference is the model round trip the
first sealing did, `EventEnvelope.model_validate(masked data).model_dump_json()`. Every
event of every earlier release's store, and every kind the product writes today (the
schema contract's day of sales), is held to it, and so is an event whose personal values
`split_model` leaves to the JSON path."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from domain.events import EventEnvelope
from domain.personal import event_paths, split, split_model
from storage import sealing
from storage._rules import dumps
from storage.sqlite import SqliteStore
from tests.bot.test_schema_contract import a_day_of_sales

STORES = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "stores").glob("release-*.db"))
KEY = bytes(range(32))
NONCE = b"\x01" * sealing.NONCE_BYTES


def envelopes(path: Path) -> list[EventEnvelope]:
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as conn:
        texts = [text for (text,) in conn.execute("SELECT envelope FROM events ORDER BY position")]
    return [EventEnvelope.model_validate_json(text) for text in texts]


def day_of_sales(path: Path) -> list[EventEnvelope]:
    """Every event of the schema contract's day of sales, opened (every kind written today)."""

    async def day() -> list[EventEnvelope]:
        await a_day_of_sales(path)
        async with await SqliteStore.open(path) as store:
            return [event async for event in store.iterate_all()]

    return asyncio.run(day())


def reference(envelope: EventEnvelope) -> str | None:
    """What sealing stored before: the masked data validated into a model and dumped."""
    data = envelope.model_dump(mode="json")
    masked, taken = split(data["event"], event_paths(envelope.event.type))
    if not taken:
        return None
    data["event"] = masked
    data[sealing.SEALED_FIELD] = sealing.Sealer(7, KEY).seal(
        taken, sealing.event_aad(envelope.conversation_id, envelope.seq)
    )
    return EventEnvelope.model_validate(data).model_dump_json()


def held_to_the_reference(events: list[EventEnvelope]) -> set[str]:
    """Each event sealed as the reference seals it and opening to itself; the sealed types."""
    sealed: set[str] = set()
    for envelope in events:
        expected = reference(envelope)
        assert sealing.seal_event(envelope, 7, KEY) == expected
        form = sealing.stored_form(envelope)
        if expected is None:
            assert form == envelope.model_dump_json()
            continue
        assert isinstance(form, sealing.Masked)
        sealed.add(envelope.event.type)
        assert sealing.open_event(expected, {7: KEY}) == envelope  # it opens to the event
    return sealed


@pytest.mark.parametrize("store", STORES, ids=lambda p: p.stem)
def test_sealing_writes_the_bytes_the_model_would(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("storage.sealing.os.urandom", lambda n: NONCE * (n // len(NONCE)))
    sealed = held_to_the_reference(envelopes(store))
    assert {"prospect_message_received", "bot_replied"} <= sealed


def test_every_kind_written_today_seals_to_the_models_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = day_of_sales(tmp_path / "day.db")
    monkeypatch.setattr("storage.sealing.os.urandom", lambda n: NONCE * (n // len(NONCE)))
    sealed = held_to_the_reference(events)
    # every type with personal values that the day writes, the large readings included
    assert {"message_read", "lead_scored", "narrative_assessed", "conversation_started"} <= sealed
    assert len(sealed) >= 8


def test_values_the_model_split_leaves_alone_go_through_the_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("storage.sealing.os.urandom", lambda n: NONCE * (n // len(NONCE)))
    read = next(e for e in envelopes(STORES[-1]) if e.event.type == "message_read")
    # an entity that is not plain data: a decimal reads as a string in the JSON, so it is
    # masked there (a string), which the model itself cannot hold in place
    odd = read.model_copy(
        update={"event": read.event.model_copy(update={"entities": {"amount": Decimal("12.50")}})}
    )
    assert split_model(odd.event, event_paths("message_read")) is None
    expected = reference(odd)
    assert expected is not None
    assert '"amount":"[sealed]"' in expected
    assert sealing.seal_event(odd, 7, KEY) == expected


def test_one_commits_values_get_distinct_nonces() -> None:
    sealer = sealing.Sealer(7, KEY)
    heads = {
        base64.b64decode(sealer.seal({"text": "same"}, b"aad").partition(":")[2])[:12]
        for _ in range(3 * sealing.NONCES_PER_DRAW)
    }
    assert len(heads) == 3 * sealing.NONCES_PER_DRAW  # across draws too


def test_a_prospects_words_never_reach_the_sealed_json_in_clear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("storage.sealing.os.urandom", lambda n: NONCE * (n // len(NONCE)))
    checked = 0
    for envelope in envelopes(STORES[-1]):
        text = sealing.seal_event(envelope, 7, KEY)
        if text is None or envelope.event.type != "prospect_message_received":
            continue
        said = envelope.model_dump(mode="json")["event"]["text"]
        assert said
        assert said not in text
        checked += 1
    assert checked > 10


def stored_inbounds(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every inbound of a store, opened: (its conversation, its JSON object)."""

    async def read() -> list[tuple[str, dict[str, Any]]]:
        async with await SqliteStore.open(path) as store:
            return [(i.conversation_id, dict(i.inbound)) async for i in store.all_inbounds()]

    return asyncio.run(read())


def test_an_inbound_is_stored_as_its_sealed_object_would_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "release.db"
    copy.write_bytes(STORES[-1].read_bytes())
    day = tmp_path / "day.db"
    day_of_sales(day)
    inbounds = stored_inbounds(copy) + stored_inbounds(day)
    monkeypatch.setattr("storage.sealing.os.urandom", lambda n: NONCE * (n // len(NONCE)))
    kinds: set[str] = set()
    plain = 0
    for conversation_id, inbound in inbounds:
        form = sealing.inbound_form(inbound, conversation_id)
        sealed = sealing.Sealer(7, KEY).inbound(inbound, conversation_id)
        if isinstance(form, str):  # nothing personal: its JSON, as before sealing existed
            assert sealing.SEALED_FIELD not in sealed
            assert form == dumps(inbound)
            plain += 1
            continue
        assert sealing.Sealer(7, KEY).event(form) == dumps(sealed)
        kinds.add(str(inbound["kind"]))
    assert {"message", "lead"} <= kinds
    assert plain > 0
