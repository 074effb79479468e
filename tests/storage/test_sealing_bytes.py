"""Sealed events are stored as the envelope model itself would write them: the hash chain
links these bytes, so sealing faster must not change one of them.

`seal_event` writes the sealed JSON with pydantic's serialiser straight from the dumped data
(and from the store's already dumped row); the reference is the model round trip it
replaced, `EventEnvelope.model_validate(data).model_dump_json()`. Every event of every
earlier release's store, and every kind the product writes today (the schema contract's
day of sales), is held to it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from domain.events import EventEnvelope
from domain.personal import event_paths, split
from storage import sealing

STORES = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "stores").glob("release-*.db"))
KEY = bytes(range(32))
NONCE = b"\x01" * sealing.NONCE_BYTES


def envelopes(path: Path) -> list[EventEnvelope]:
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as conn:
        texts = [text for (text,) in conn.execute("SELECT envelope FROM events ORDER BY position")]
    return [EventEnvelope.model_validate_json(text) for text in texts]


def reference(envelope: EventEnvelope) -> str | None:
    """What sealing stored before: the masked data validated into a model and dumped."""
    data = envelope.model_dump(mode="json")
    masked, taken = split(data["event"], event_paths(envelope.event.type))
    if not taken:
        return None
    data["event"] = masked
    data[sealing.SEALED_FIELD] = sealing._encrypt(
        7, KEY, taken, sealing.event_aad(envelope.conversation_id, envelope.seq)
    )
    return EventEnvelope.model_validate(data).model_dump_json()


@pytest.mark.parametrize("store", STORES, ids=lambda p: p.stem)
def test_sealing_writes_the_bytes_the_model_would(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("storage.sealing.os.urandom", lambda n: NONCE[:n])
    sealed = 0
    for envelope in envelopes(store):
        expected = reference(envelope)
        assert sealing.seal_event(envelope, 7, KEY) == expected
        assert sealing.seal_event(envelope, 7, KEY, dumped=envelope.model_dump_json()) == expected
        if expected is not None:
            sealed += 1
            opened = sealing.open_event(expected, {7: KEY})
            assert opened == envelope  # and it opens to the event it sealed
    assert sealed > 50  # the stores hold prospects' words: most of their events are sealed


def test_a_prospects_words_never_reach_the_sealed_json_in_clear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("storage.sealing.os.urandom", lambda n: NONCE[:n])
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
