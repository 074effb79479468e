"""The outbox's claims and marks wait for company in the writer process
(`storage.sqlite_process.ProcessWriter.submit(..., linger=True)`): at a moderate rate a
message's commit, its reply's claim and the mark that it was sent share transactions instead
of making three fsyncs. Each test counts the child's committed transactions; the waits are
event-loop turns or a linger long enough never to run out, never a measured time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from domain.policy import Policy
from storage.ports import Commit
from storage.sqlite import SqliteStore, _checkpoint
from storage.sqlite_process import FRAME, LINGER_S, SEAL, ProcessWriter
from tests.storage.builders import child_of, handoff_script

T = TypeVar("T")

NEVER_S = 3_600.0
"""A linger that cannot run out during a test: only another write or closing seals."""
NOW_MS = 2_000_000_000_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(tmp_path / "salesbot.db", writer="process") as opened:
        yield opened


class Seals:
    """Counts the seals the server sends its writer process (each one commits what the
    child holds): a write that lingers sends none of its own."""

    def __init__(self, child: ProcessWriter, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent = 0
        write = child._writer.write

        def counted(data: bytes | bytearray | memoryview) -> None:
            if bytes(data) == FRAME.pack(0, SEAL):
                self.sent += 1
            write(data)

        monkeypatch.setattr(child._writer, "write", counted)


async def sent_and_waiting(child: ProcessWriter, write: Awaitable[T]) -> asyncio.Task[T]:
    """`write` started, and the child sent it: turns of the event loop, until it waits."""
    task = asyncio.ensure_future(write)
    for _ in range(10_000):
        if child.unanswered:
            break
        await asyncio.sleep(0)
    assert child.unanswered == 1
    for _ in range(100):  # more turns: a seal at the end of a turn would have been sent
        await asyncio.sleep(0)
    return task


def commits(policy: Policy, conversation_id: str) -> list[Commit]:
    return handoff_script(policy, conversation_id).commits


async def test_a_claim_made_while_nothing_else_is_written_commits_with_the_next_message(
    store: SqliteStore, default_policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = commits(default_policy, "conv-1")[:2]
    assert (await store.commit(first)).status == "committed"
    child = child_of(store)
    child.linger_s = NEVER_S
    seals = Seals(child, monkeypatch)
    before = child.transactions
    claim = await sent_and_waiting(child, store.claim_due(NOW_MS, 10, 60_000, owner="w"))
    assert seals.sent == 0  # nothing sealed it: it waits for company
    assert not claim.done()
    assert (await store.commit(second)).status == "committed"
    assert seals.sent == 1
    claimed = await claim
    assert [item.key for item in claimed] == [item.key for item in first.outbox]
    assert child.transactions == before + 1  # the claim and the commit: one fsync


async def test_a_mark_of_a_sent_reply_and_the_next_claim_wait_for_the_next_commit(
    store: SqliteStore, default_policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = commits(default_policy, "conv-1")[0]
    await store.commit(first)
    child = child_of(store)
    (item, *_) = await store.claim_due(NOW_MS, 10, 60_000, owner="w")
    child.linger_s = NEVER_S
    seals = Seals(child, monkeypatch)
    before = child.transactions
    mark = await sent_and_waiting(child, store.mark_sent(item.key, NOW_MS + 5, "ts-1"))
    claimed = asyncio.ensure_future(store.claim_due(NOW_MS + 6, 10, 60_000, owner="w"))
    for _ in range(100):
        await asyncio.sleep(0)
    assert seals.sent == 0  # a lingering claim does not seal a lingering mark either
    assert not mark.done()
    assert await store.commit(commits(default_policy, "conv-2")[0])
    assert seals.sent == 1
    assert await mark is True
    assert {i.key for i in await claimed}.isdisjoint({item.key})  # it was sent
    assert child.transactions == before + 1
    stored = await store.outbox_item(item.key)
    assert stored is not None
    assert (stored.status, stored.remote_id) == ("sent", "ts-1")


async def test_a_lingering_write_alone_is_committed_when_its_linger_runs_out(
    store: SqliteStore, default_policy: Policy
) -> None:
    await store.commit(commits(default_policy, "conv-1")[0])
    child = child_of(store)
    assert child.linger_s == LINGER_S
    before = child.transactions
    claimed = await store.claim_due(NOW_MS, 10, 60_000, owner="w")  # nothing else comes
    assert claimed
    assert child.transactions == before + 1
    assert await store.mark_sent(claimed[0].key, NOW_MS + 5) is True
    assert child.transactions == before + 2


async def test_closing_the_store_commits_a_lingering_write_and_answers_it(
    tmp_path: Path, default_policy: Policy
) -> None:
    store = await SqliteStore.open(tmp_path / "salesbot.db", writer="process")
    first = commits(default_policy, "conv-1")[0]
    await store.commit(first)
    child = child_of(store)
    child.linger_s = NEVER_S
    claim = await sent_and_waiting(child, store.claim_due(NOW_MS, 10, 60_000, owner="w"))
    await store.close()
    assert [item.key for item in await claim] == [item.key for item in first.outbox]
    async with await SqliteStore.open(tmp_path / "salesbot.db") as reopened:
        stored = await reopened.outbox_item(first.outbox[0].key)
    assert stored is not None
    assert (stored.status, stored.lease_owner) == ("in_flight", "w")  # durable


async def test_a_write_outside_any_transaction_commits_a_lingering_one_first(
    store: SqliteStore, default_policy: Policy
) -> None:
    first = commits(default_policy, "conv-1")[0]
    await store.commit(first)
    child = child_of(store)
    child.linger_s = NEVER_S
    claim = await sent_and_waiting(child, store.claim_due(NOW_MS, 10, 60_000, owner="w"))
    await store._outside(_checkpoint)  # what an erasure runs after its commit
    assert claim.done()
    assert len(await claim) == len(first.outbox)
