"""The SQLite writer's frequent jobs are plain data (issue 18): a commit, a claim, the
outbox's marks and an adapter-state write pickle with the standard library, cheaply, and a
store whose every such job
and answer crosses a pickle round trip — as it would to a writer in a process of its own —
stores and answers exactly what the store does without it. The store's errors pickle too."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.policy_loader import load_policy
from domain.policy import Policy
from storage.errors import (
    ConcurrencyError,
    CorruptDatabaseError,
    SchemaTooNewError,
    StorageError,
)
from storage.sqlite import SqliteStore, _CommitJob, _PutState
from storage.sqlite_outbox import _ClaimJob, _UnsentUpdate
from storage.sqlite_writer import Conn
from tests.storage.builders import handoff_script

T = TypeVar("T")
POLICY: Policy = load_policy("default")
NOW = 1_790_000_000_000
DATA_JOBS = (_CommitJob, _ClaimJob, _UnsentUpdate, _PutState)


class CrossingStore(SqliteStore):
    """Every data job, and what it answers or raises, through `pickle` and back."""

    crossed: tuple[str, ...] = ()

    async def _write(self, run: Callable[[Conn], T]) -> T:
        if not isinstance(run, DATA_JOBS):
            return await super()._write(run)
        self.crossed = (*self.crossed, type(run).__name__)
        job: Callable[[Conn], T] = pickle.loads(pickle.dumps(run))

        def crossing(conn: Conn) -> T:
            try:
                answer = job(conn)
            except Exception as exc:
                raise pickle.loads(pickle.dumps(exc)) from None
            crossed: T = pickle.loads(pickle.dumps(answer))
            return crossed

        return await super()._write(crossing)


async def _story(store: SqliteStore) -> dict[str, Any]:
    """A conversation's reference kept, a lead, a question that opens a ticket, a stale
    commit refused, the replies claimed, one sent, one failed, one given up on: what the
    store then holds and answered."""
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
    return {
        "answers": answers,
        "events": [e.model_dump() for e in await store.load("conv-1")],
        "inbounds": [i.model_dump() for i in await store.inbounds("conv-1")],
        "outbox": [
            (await store.outbox_item(item.key)).model_dump()  # type: ignore[union-attr]
            for item in claimed
        ],
        "tickets": [t.model_dump() for t in await store.open_tickets()],
        "state": await store.get_state("teams:conv:a:1"),
    }


async def test_a_store_whose_jobs_cross_a_pickle_round_trip_stores_and_answers_the_same(
    tmp_path: Path,
) -> None:
    plain = await SqliteStore.open(tmp_path / "plain.db")
    crossing = await CrossingStore.open(tmp_path / "crossing.db")
    try:
        expected = await _story(plain)
        assert await _story(crossing) == expected
        assert set(crossing.crossed) == {"_CommitJob", "_ClaimJob", "_UnsentUpdate", "_PutState"}
    finally:
        await plain.close()
        await crossing.close()


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
