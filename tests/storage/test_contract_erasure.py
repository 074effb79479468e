"""Erasure is part of the store contract (`storage.ports.Erasure`): both stores seal a
prospect's words per conversation, read them back while the key lives, read "[erased]"
once `erase` deleted it — without rewriting one stored byte, so the chain holds — and find
the conversations retention is due to erase."""

from __future__ import annotations

import pytest

from domain.chain import first_break
from domain.events import Erased, EventEnvelope, ProspectMessageReceived
from domain.policy import Policy
from storage.errors import ConcurrencyError
from storage.ports import Store
from tests.storage.builders import handoff_script


def erased_at(conversation_id: str, seq: int, at_ms: int) -> EventEnvelope:
    return EventEnvelope(
        conversation_id=conversation_id,
        seq=seq,
        at_ms=at_ms,
        policy_version="0" * 64,
        delivery_id=f"erase:{conversation_id}",
        event=Erased(by="dpo", reason="request"),
    )


async def test_an_erased_conversation_reads_erased_and_keeps_its_chain(
    store: Store, default_policy: Policy
) -> None:
    for conversation_id in ("conv-1", "conv-2"):
        for commit in handoff_script(default_policy, conversation_id).commits:
            await store.commit(commit)
    before = await store.load("conv-1")
    texts = [e.event.text for e in before if isinstance(e.event, ProspectMessageReceived)]
    assert texts
    assert "[erased]" not in texts
    links = await store.stored_events("conv-1")
    version = await store.version("conv-1")
    last_at = before[-1].at_ms

    with pytest.raises(ConcurrencyError):
        await store.erase("conv-1", version - 1, erased_at("conv-1", version, last_at))
    assert await store.load("conv-1") == before
    assert await store.erase("conv-1", version, erased_at("conv-1", version + 1, last_at)) == (
        version + 1
    )

    after = await store.load("conv-1")
    assert len(after) == version + 1
    assert [e.event.text for e in after if isinstance(e.event, ProspectMessageReceived)] == [
        "[erased]" for _ in texts
    ]
    assert [e.event.type for e in after[:-1]] == [e.event.type for e in before]
    stored = await store.stored_events("conv-1")
    assert [(s.seq, s.envelope, s.chain_hash) for s in stored[:-1]] == [
        (s.seq, s.envelope, s.chain_hash) for s in links
    ]
    assert all(s.opened is None for s in stored)
    assert first_break("conv-1", stored, version=version + 1) is None
    inbounds = await store.inbounds("conv-1")
    assert inbounds
    assert all(row.inbound.get("text") in (None, "[erased]") for row in inbounds)
    # The other conversation is untouched.
    other = await store.load("conv-2")
    assert "[erased]" not in " ".join(e.model_dump_json() for e in other)
    # Everything read through iterate_all agrees with load.
    seen = [e async for e in store.iterate_all() if e.conversation_id == "conv-1"]
    assert seen == after


async def test_idle_conversations_are_the_unerased_ones_last_active_before_a_time(
    store: Store, default_policy: Policy
) -> None:
    for conversation_id in ("conv-b", "conv-a", "conv-c"):
        for commit in handoff_script(default_policy, conversation_id).commits:
            await store.commit(commit)
    last = (await store.load("conv-a"))[-1].at_ms
    assert await store.idle_conversations(last, 10) == []
    assert await store.idle_conversations(last + 1, 10) == ["conv-a", "conv-b", "conv-c"]
    assert await store.idle_conversations(last + 1, 2) == ["conv-a", "conv-b"]
    version = await store.version("conv-b")
    await store.erase("conv-b", version, erased_at("conv-b", version + 1, last))
    assert await store.idle_conversations(last + 1, 10) == ["conv-a", "conv-c"]
    with pytest.raises(ValueError, match="limit"):
        await store.idle_conversations(last, 0)
