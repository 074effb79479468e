"""The hash chain is part of the store contract: every store links each event it appends to
the one before it in its conversation, in the appending transaction, over the JSON exactly
as it keeps it — so the same events get the same links in every store.

The links are recomputed here with hashlib alone, from the rule as the README states it,
not with `domain.chain`: the test is what an outside auditor would run."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from domain.events import EventEnvelope
from domain.policy import Policy
from storage.errors import ConcurrencyError
from storage.ports import Store
from tests.storage.builders import Script, handoff_script, lead, message


def expected_links(envelopes: list[str]) -> list[str]:
    """link(0) = 32 zero bytes; link(n) = SHA-256(link(n-1) bytes || JSON as stored)."""
    previous = bytes(32)
    found = []
    for text in envelopes:
        previous = hashlib.sha256(previous + text.encode("utf-8")).digest()
        found.append(previous.hex())
    return found


async def test_every_appended_event_is_linked_to_the_one_before_over_its_stored_json(
    store: Store, default_policy: Policy
) -> None:
    first, second = handoff_script(default_policy, "conv-1").commits
    await store.commit(first)
    await store.append("conv-1", len(first.events), second.events)

    stored = await store.stored_events("conv-1")
    events = [*first.events, *second.events]
    assert [link.seq for link in stored] == list(range(1, len(events) + 1))
    # The stored JSON is the event's own serialisation — with its personal values sealed
    # (`storage.sealing`): those read "[sealed]" there, and the store's reading gives them
    # back, as `opened` does for replay.
    for env, kept in zip(events, stored, strict=True):
        if kept.opened is None:
            assert kept.envelope == env.model_dump_json()
        else:
            assert json.loads(kept.envelope)["sealed"].startswith("k")
            assert "[sealed]" in kept.envelope
            assert kept.opened == env.model_dump_json()
        assert EventEnvelope.model_validate_json(kept.envelope).seq == env.seq
    assert any(kept.opened is not None for kept in stored)
    assert await store.load("conv-1") == events
    assert [link.chain_hash for link in stored] == expected_links(
        [link.envelope for link in stored]
    )


async def test_each_conversation_has_its_own_chain_from_the_same_start(
    store: Store, default_policy: Policy
) -> None:
    for conversation_id in ("conv-a", "conv-b"):
        for commit in handoff_script(default_policy, conversation_id).commits:
            await store.commit(commit)
    for conversation_id in ("conv-a", "conv-b"):
        stored = await store.stored_events(conversation_id)
        assert [link.chain_hash for link in stored] == expected_links(
            [link.envelope for link in stored]
        )
    heads = {(await store.stored_events(c))[-1].chain_hash for c in ("conv-a", "conv-b")}
    assert len(heads) == 2


async def test_a_refused_or_repeated_commit_leaves_the_chain_as_it_was(
    store: Store, default_policy: Policy
) -> None:
    first, second = handoff_script(default_policy, "conv-1").commits
    await store.commit(first)
    before = await store.stored_events("conv-1")
    rival = Script(default_policy, "conv-1").then(lead("conv-1", "conv-1/another-lead"))
    with pytest.raises(ConcurrencyError):  # written for version 0: the stream moved on
        await store.commit(rival)
    assert (await store.commit(first)).status == "duplicate"
    assert await store.stored_events("conv-1") == before
    await store.commit(second)
    stored = await store.stored_events("conv-1")
    assert stored[: len(before)] == before
    assert [link.chain_hash for link in stored] == expected_links(
        [link.envelope for link in stored]
    )


async def test_appends_queued_together_chain_in_the_order_they_commit(
    store: Store, default_policy: Policy
) -> None:
    # Many conversations at once, each committing twice: SQLite writes all of it in one
    # group commit, so a conversation's second commit links to its first one's last event
    # before either is durable.
    scripts = [Script(default_policy, f"conv-{i}") for i in range(12)]
    for script in scripts:
        cid = script.conversation_id
        script.then(lead(cid, f"{cid}/lead"))
        script.then(message(cid, f"{cid}/m", "What is the price?"))
    results = await asyncio.gather(
        *(store.commit(commit) for script in scripts for commit in script.commits)
    )
    assert {result.status for result in results} == {"committed"}
    for script in scripts:
        stored = await store.stored_events(script.conversation_id)
        assert len(stored) == sum(len(c.events) for c in script.commits)
        assert [link.chain_hash for link in stored] == expected_links(
            [link.envelope for link in stored]
        )


async def test_an_unknown_conversation_has_no_stored_events(store: Store) -> None:
    assert await store.stored_events("nobody") == []
