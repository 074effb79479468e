"""`replay_logs` is part of the store contract (`storage.ports.ReplayLogs`): many
conversations read in one pass give exactly what `load` and `inbounds` give each one —
sealed values opened, an erased conversation's words `[erased]`, a conversation that went
on after its erasure read with its new key — and, when replay asks to decode only some
event types, every other event is either the same envelope or its type and place."""

from __future__ import annotations

import pytest

from domain.events import EventEnvelope, UnreadEnvelope, UnreadEvent
from domain.policy import Policy
from domain.replay import REPLAY_DECODES
from storage.ports import ConversationLog, Store
from tests.storage.builders import erased_and_continued


async def _logs(store: Store, ids: list[str], **options: object) -> list[ConversationLog]:
    return [log async for log in store.replay_logs(ids, **options)]  # type: ignore[arg-type]


@pytest.mark.parametrize("batch", [1, 2, 200])
async def test_replay_logs_equal_each_conversations_load_and_inbounds(
    store: Store, default_policy: Policy, batch: int
) -> None:
    ids = await erased_and_continued(store, default_policy)
    logs = await _logs(store, ids, batch=batch)
    assert [log.conversation_id for log in logs] == ids
    for log in logs:
        assert log.events == await store.load(log.conversation_id)
        assert log.inbounds == await store.inbounds(log.conversation_id)
    by_id = {log.conversation_id: log for log in logs}
    assert (by_id["unknown"].events, by_id["unknown"].inbounds) == ([], [])
    erased_texts = [
        env.event.text
        for env in by_id["conv-b"].events
        if isinstance(env, EventEnvelope) and env.event.type == "prospect_message_received"
    ]
    assert erased_texts
    assert set(erased_texts) == {"[erased]"}
    assert "Still there? Pricing?" in [
        stored.inbound.get("text") for stored in by_id["conv-d"].inbounds
    ]


async def test_replay_logs_decode_what_replay_reads_and_place_the_rest(
    store: Store, default_policy: Policy
) -> None:
    ids = await erased_and_continued(store, default_policy)
    logs = await _logs(store, ids, decode=REPLAY_DECODES, batch=2)
    unread = 0
    for log in logs:
        loaded = await store.load(log.conversation_id)
        assert len(log.events) == len(loaded)
        for got, whole in zip(log.events, loaded, strict=True):
            if whole.event.type in REPLAY_DECODES or isinstance(got, EventEnvelope):
                assert got == whole
            else:
                unread += 1
                assert got == UnreadEnvelope(
                    whole.conversation_id,
                    whole.seq,
                    whole.delivery_id,
                    UnreadEvent(whole.event.type),
                )
        assert log.inbounds == await store.inbounds(log.conversation_id)
    if type(store).__name__ != "MemoryStore":  # it holds decoded events and returns them all
        assert unread > 0


async def test_replay_logs_refuse_an_empty_batch(store: Store) -> None:
    with pytest.raises(ValueError, match="1 or more"):
        await _logs(store, ["conv-a"], batch=0)
