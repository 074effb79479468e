"""The SQLite writer's jobs are plain data (issue 18): the frequent ones (a commit, a claim,
the outbox's marks, an adapter-state write) are data classes that pickle cheaply, every
other one a module-level function bound to plain data with `functools.partial`. A store
whose every job and answer crosses a pickle round trip — as it would to a writer in a
process of its own — stores and answers exactly what the store does without it, and a job
that does not pickle fails the test. The store's errors pickle too. And a job run twice,
the first run rolled back (as the writer does to the jobs before one that failed after
writing), stores and answers what one run does."""

from __future__ import annotations

import contextlib
import pickle
import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.policy_loader import load_policy
from domain.events import Erased, EventEnvelope
from domain.policy import Policy
from storage.errors import (
    ConcurrencyError,
    CorruptDatabaseError,
    SchemaTooNewError,
    StorageError,
)
from storage.ports import Commit, OutboxItem, PendingAnswer, TicketRow
from storage.projections import Projection
from storage.sqlite import SqliteStore, _rebuild_projections
from storage.sqlite_writer import Conn
from tests.storage.builders import handoff_script

T = TypeVar("T")
POLICY: Policy = load_policy("default")
NOW = 1_790_000_000_000
DATA_JOBS = {"_CommitJob", "_ClaimJob", "_UnsentUpdate", "_PutState"}
BOUND_JOBS = {
    "_append",
    "_put_policy",
    "_put_state_if_absent",
    "_delete_state",
    "_delete_states_before",
    "_rebuild_projections",
    "_settle_answer",
    "_schedule",
    "_insert_outbox",
    "_heartbeat",
    "_release_owner",
    "_release",
    "_insert_ticket",
    "_claim_ticket",
    "_resolve_ticket",
}
"""The jobs' names: the data classes', and the functions `functools.partial` binds."""


def job_name(run: Callable[[Conn], Any]) -> str:
    return run.func.__name__ if isinstance(run, partial) else type(run).__name__


class CrossingStore(SqliteStore):
    """Every job, and what it answers or raises, through `pickle` and back."""

    crossed: tuple[str, ...] = ()

    async def _write(self, run: Callable[[Conn], T]) -> T:
        self.crossed = (*self.crossed, job_name(run))
        job: Callable[[Conn], T] = pickle.loads(pickle.dumps(run))

        def crossing(conn: Conn) -> T:
            try:
                answer = job(conn)
            except Exception as exc:
                raise pickle.loads(pickle.dumps(exc)) from None
            crossed: T = pickle.loads(pickle.dumps(answer))
            return crossed

        return await super()._write(crossing)


class RerunStore(SqliteStore):
    """Every job run, rolled back and run again: what `storage.sqlite_writer.Transaction`
    does to the jobs before one that failed after writing."""

    async def _write(self, run: Callable[[Conn], T]) -> T:
        def twice(conn: Conn) -> T:
            conn.execute("SAVEPOINT first_run")
            with contextlib.suppress(Exception):  # it fails again, and answers with that
                run(conn)
            conn.execute("ROLLBACK TO first_run")
            conn.execute("RELEASE first_run")
            return run(conn)

        return await super()._write(twice)


def _item(key: str) -> OutboxItem:
    return OutboxItem(
        key=key,
        conversation_id="conv-1",
        channel="playground:extra:rep",
        payload={"text": "a reply"},
        created_at_ms=NOW,
        available_at_ms=NOW,
    )


async def _story(store: SqliteStore) -> dict[str, Any]:
    """A conversation's reference kept, a lead, a question that opens a ticket, a stale
    commit refused, the replies claimed, one sent, one failed, one given up on; then every
    other write: a policy, state kept, swept and deleted, a timer, a deferred answer
    settled, items enqueued and released, a sender replaced, a ticket's life, events
    appended, the conversation erased and the projections rebuilt: what the store then
    holds and answered."""
    await store.put_state("teams:conv:a:1", {"serviceUrl": "https://smba.example/"}, NOW)
    script = handoff_script(POLICY, "conv-1", NOW)
    answers: list[Any] = [(await store.commit(commit)).model_dump() for commit in script.commits]
    with pytest.raises(ConcurrencyError) as stale:
        await store.commit(script.commits[-1].model_copy(update={"delivery_id": "again"}))
    answers.append((stale.value.conversation_id, stale.value.expected, stale.value.actual))
    claimed = await store.claim_due(NOW + 60_000, 10, 30_000, owner="me")
    answers.append([item.model_dump() for item in claimed])
    assert len(claimed) >= 3, "the story needs three replies to mark"
    first, second, third = claimed[:3]
    answers.append(await store.mark_sent(first.key, NOW + 61_000, "remote-1"))
    answers.append(await store.mark_sent(first.key, NOW + 61_000, "remote-1"))  # already sent
    answers.append(await store.fail(second.key, NOW + 90_000, "HTTP 503"))
    answers.append(await store.dead_letter(third.key, "channel_not_found"))

    await store.put_policy("p-1", '{"v": 1}')
    await store.put_policy("p-1", '{"v": 1}')  # the same again
    with pytest.raises(ValueError, match="different text") as different:
        await store.put_policy("p-1", '{"v": 2}')
    answers.append(str(different.value))

    answers.append(await store.put_state_if_absent("salesbot:secret", {"v": "a"}, NOW))
    answers.append(await store.put_state_if_absent("salesbot:secret", {"v": "b"}, NOW + 1))
    await store.put_state("oauth:1", {"n": 1}, NOW)
    await store.put_state("oauth:2", {"n": 2}, NOW + 5_000)
    await store.put_state("oauth:3", {"n": 3}, NOW + 5_000)
    answers.append(await store.delete_states_before("oauth:", NOW + 1_000, 10))
    answers.append(await store.delete_state("oauth:2"))
    answers.append(await store.delete_state("oauth:2"))  # gone already

    version = await store.version("conv-1")
    answers.append(await store.schedule_timer("conv-1", NOW + 3_600_000, version))
    answers.append(await store.schedule_timer("conv-1", None, version - 1))  # older: ignored
    answers.append(await store.due_timers(NOW + 3_600_000, 10))

    question = PendingAnswer(
        key="Q-1",
        conversation_id="conv-3",
        delivery_id="conv-3/ask",
        payload={"query": {"kind": "metrics"}},
        created_at_ms=NOW,
    )
    asked = Commit(
        conversation_id="conv-3",
        expected_version=0,
        delivery_id="conv-3/ask",
        received_at_ms=NOW,
        policy_version="p-1",
        inbound=None,
        answers=(question,),
    )
    answers.append((await store.commit(asked)).model_dump())
    answers.append(await store.settle_answer("Q-1", [_item("answer/0")]))
    answers.append(await store.settle_answer("Q-1", [_item("answer/1")]))  # settled already

    await store.enqueue([_item("extra/0"), _item("extra/1")])
    answers.append(await store.heartbeat("you", NOW + 60_000, NOW + 120_000, identity="host"))
    extra = await store.claim_due(
        NOW + 60_000, 10, 30_000, owner="you", prefixes=("playground:extra",)
    )
    answers.append([item.model_dump() for item in extra])
    answers.append(await store.release(["extra/1"], NOW + 70_000, owner="you"))
    answers.append(await store.release(["extra/1"], NOW + 70_000, owner="you"))  # not leased
    answers.append(await store.heartbeat("you-2", NOW + 61_000, NOW + 120_000, identity="host"))
    answers.append(await store.release_owner("you", NOW + 62_000))
    answers.append([owner.model_dump() for owner in await store.lease_owners()])

    ticket = TicketRow(
        key="T-extra",
        conversation_id="conv-1",
        kind="handoff",
        reason="sensitive_terms",
        opened_at_ms=NOW,
        updated_at_ms=NOW,
    )
    answers.append(await store.open_ticket(ticket))
    answers.append(await store.open_ticket(ticket))  # exists already
    answers.append((await store.claim_ticket("T-extra", "U_REP", NOW + 1)).model_dump())
    answers.append((await store.claim_ticket("T-extra", "U_OTHER", NOW + 2)).model_dump())
    answers.append(await store.resolve_ticket("T-extra", "U_REP", NOW + 3))
    answers.append(await store.resolve_ticket("T-extra", "U_REP", NOW + 4))  # resolved already

    other = handoff_script(POLICY, "conv-2", NOW).commits[0].events
    answers.append(await store.append("conv-2", 0, other))
    with pytest.raises(ConcurrencyError) as stale_append:
        await store.append("conv-2", 0, other)
    answers.append(stale_append.value.actual)

    version = await store.version("conv-1")
    erased = EventEnvelope(
        conversation_id="conv-1",
        seq=version + 1,
        at_ms=NOW + 100_000,
        policy_version="0" * 64,
        delivery_id="erase:conv-1",
        event=Erased(by="dpo", reason="request"),
    )
    with pytest.raises(ConcurrencyError) as stale_erase:
        await store.erase("conv-1", version - 1, erased.model_copy(update={"seq": version}))
    answers.append(stale_erase.value.actual)
    answers.append(await store.erase("conv-1", version, erased))
    answers.append((await store.rebuild_projections()).model_dump())

    keys = [item.key for item in claimed] + ["answer/0", "answer/1", "extra/0", "extra/1"]
    return {
        "answers": answers,
        "events": [e.model_dump() for e in await store.load("conv-1")],
        "appended": [e.model_dump() for e in await store.load("conv-2")],
        "inbounds": [i.model_dump() for i in await store.inbounds("conv-1")],
        "outbox": [
            None if item is None else item.model_dump()
            for item in [await store.outbox_item(key) for key in keys]
        ],
        "tickets": [t.model_dump() for t in await store.open_tickets()],
        "ticket": (await store.ticket("T-extra")).model_dump(),  # type: ignore[union-attr]
        "pending": [a.model_dump() for a in await store.pending_answers()],
        "policy": await store.get_policy("p-1"),
        "state": [
            await store.get_state(key)
            for key in ("teams:conv:a:1", "salesbot:secret", "oauth:1", "oauth:2", "oauth:3")
        ],
        "projection": (await store.metrics_projection()).model_dump(),
    }


async def test_a_store_whose_jobs_cross_a_pickle_round_trip_stores_and_answers_the_same(
    tmp_path: Path,
) -> None:
    plain = await SqliteStore.open(tmp_path / "plain.db")
    crossing = await CrossingStore.open(tmp_path / "crossing.db")
    try:
        expected = await _story(plain)
        assert await _story(crossing) == expected
        assert set(crossing.crossed) == DATA_JOBS | BOUND_JOBS
    finally:
        await plain.close()
        await crossing.close()


async def test_a_store_whose_jobs_each_run_twice_stores_and_answers_the_same(
    tmp_path: Path,
) -> None:
    plain = await SqliteStore.open(tmp_path / "plain.db")
    rerun = await RerunStore.open(tmp_path / "rerun.db")
    try:
        assert await _story(rerun) == await _story(plain)
    finally:
        await plain.close()
        await rerun.close()


async def test_a_rebuild_run_twice_folds_what_followed_its_snapshot_once(tmp_path: Path) -> None:
    path = tmp_path / "salesbot.db"
    async with await SqliteStore.open(path) as store:
        for commit in handoff_script(POLICY, "conv-1", NOW).commits:
            await store.commit(commit)
        expected = (await store.metrics_projection()).model_dump()
    # A snapshot that saw none of it: the job folds every event under the write lock.
    rebuild = partial(_rebuild_projections, projection=Projection(), position=0)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        first = rebuild(conn)
        conn.execute("ROLLBACK")
        conn.execute("BEGIN IMMEDIATE")
        assert rebuild(conn) == first
        conn.execute("COMMIT")
    finally:
        conn.close()
    async with await SqliteStore.open(path) as store:
        assert (await store.metrics_projection()).model_dump() == expected


def test_the_stores_errors_pickle_whole() -> None:
    for error in (
        StorageError("The store /tmp/x.db is closed."),
        ConcurrencyError("conv-1", 3, 5),
        SchemaTooNewError("/tmp/x.db", 99, 14),
        CorruptDatabaseError("/tmp/x.db", "it is not a SQLite database file"),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert vars(copy) == vars(error)
