"""`verify_logs` is part of the store contract (`storage.ports.VerifyLogs`): many
conversations read in one pass give exactly what `version`, `stored_events` and `inbounds`
give each one — each event's JSON as stored and its chain hash (what `salesbot verify`
recomputes the chain over), sealed values opened, an erased conversation's words unopened
and its inbounds `[erased]`, a conversation that went on after its erasure opened with its
new key — and a batch is one snapshot: a commit landing while it is handed out is not
half in it."""

from __future__ import annotations

import pytest

from domain.chain import first_break
from domain.policy import Policy
from storage.ports import Store, VerifyLog
from tests.storage.builders import NOW, decide_commit, erased_and_continued, message


async def _logs(store: Store, ids: list[str], batch: int) -> list[VerifyLog]:
    return [log async for log in store.verify_logs(ids, batch=batch)]


@pytest.mark.parametrize("batch", [1, 2, 200])
async def test_verify_logs_equal_each_conversations_version_stored_events_and_inbounds(
    store: Store, default_policy: Policy, batch: int
) -> None:
    ids = await erased_and_continued(store, default_policy)
    logs = await _logs(store, ids, batch)
    assert [log.conversation_id for log in logs] == ids
    for log in logs:
        assert log.version == await store.version(log.conversation_id)
        assert log.links == await store.stored_events(log.conversation_id)
        assert log.inbounds == await store.inbounds(log.conversation_id)
        assert first_break(log.conversation_id, log.links, version=log.version) is None
    by_id = {log.conversation_id: log for log in logs}
    assert by_id["unknown"] == VerifyLog("unknown", 0, [], [])
    # Sealed words are opened for replay; an erased conversation's stay sealed.
    assert any(link.opened is not None for link in by_id["conv-a"].links)
    assert all(link.opened is None for link in by_id["conv-b"].links)
    assert {stored.inbound.get("text") for stored in by_id["conv-b"].inbounds} - {None} == {
        "[erased]"
    }
    continued = by_id["conv-d"]
    opened = [link.opened for link in continued.links if link.opened is not None]
    assert any("Still there? Pricing?" in text for text in opened)
    assert "Still there? Pricing?" in [s.inbound.get("text") for s in continued.inbounds]


async def test_a_commit_landing_while_a_batch_is_handed_out_is_not_half_in_it(
    store: Store, default_policy: Policy
) -> None:
    await erased_and_continued(store, default_policy)
    before = await store.stored_events("conv-c")
    later = message("conv-c", "conv-c/later", "And the price for ten seats?")
    logs: list[VerifyLog] = []
    async for log in store.verify_logs(["conv-a", "conv-c"], batch=2):
        if not logs:  # conv-c is in this batch, read already: the commit is not in it
            commit = await decide_commit(store, default_policy, later, NOW + 30_000)
            assert (await store.commit(commit)).status == "committed"
        logs.append(log)
    (_, conv_c) = logs
    assert (conv_c.version, conv_c.links) == (before[-1].seq, before)
    assert first_break("conv-c", conv_c.links, version=conv_c.version) is None
    # Read again, it is all there.
    (again,) = await _logs(store, ["conv-c"], 1)
    assert again.version > conv_c.version
    assert again.links == await store.stored_events("conv-c")


async def test_verify_logs_refuse_an_empty_batch(store: Store) -> None:
    with pytest.raises(ValueError, match="1 or more"):
        await _logs(store, ["conv-a"], 0)
