"""Commits grouped across conversations on PostgreSQL: every commit queued while the one
before was being written goes into one transaction, as SQLite's writer groups them.

Why. One transaction a commit costs its round trips (five, `storage.postgres_commit`) and a
WAL flush each, and the client's wake-ups with them: the store reached about a fifth of
a raw group-commit loop that writes the same rows one transaction per batch
(docs/benchmarks_postgres.md). A group of N commits sends about as many statements as one.

How. `GroupWriter.commit` queues a prepared commit (`postgres_commit.prepare`); one task
per store writes the queue a group at a time, so a commit waits at most for the group
before its own. A group of one is written as a single commit (its own statements and its
own errors). A group of several, in one transaction:

1. `_claim`: the deliveries inserted (each a dedupe, as a single commit's), then, for the
   commits whose delivery was new, the existing streams' rows locked and their versions
   read, and new streams' first rows inserted.
2. `postgres_commit.read_before` for the commits that passed their check (the version they
   expected): links, keys and projections' rows, under the streams' locks.
3. `postgres_commit.write`: the streams moved, new keys, every commit's rows, and the
   deliveries of the commits that failed their check deleted again (as their rollback
   would have); then each commit's ticket changes.

A commit that fails its check answers as it would alone (`duplicate`, `ConcurrencyError`)
and the others commit. Should any statement fail (a race with another replica that only a
unique key caught, a lost connection), the transaction is rolled back and each commit of
the group is written alone, to get its own outcome.

Locks. A group takes its rows in the order one commit does — deliveries, streams,
projections' rows, then counters before counted times — and each kind sorted (deliveries
by id, streams by conversation: `SELECT … ORDER BY … FOR UPDATE` locks in the sorted order;
counters and times by key, `postgres_commit`). Two groups, or a group and a commit, then
wait for each other in one direction only: a transaction holding a row of one kind waits
only for a row of the same kind sorted after it, or of a later kind. (PostgreSQL would
detect a deadlock and fail one transaction; here that would only send its commits alone.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from storage.errors import ConcurrencyError, StorageError
from storage.ports import CommitResult
from storage.postgres_commit import CommitKey, Group, Prepared, Rows, read_before, rows_after, write
from storage.postgres_pool import Conn
from storage.postgres_tickets import apply_ticket_change

GROUP_LIMIT = 200
"""Commits in one transaction at most (the raw loop's batch in `bench.append`)."""

Outcome = CommitResult | BaseException
"""A commit's result, or the error it fails with."""

_CLAIM = (
    "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], "
    "$5::bigint[], $6::bigint[], $7::bigint[]) AS u(delivery_id, conversation_id, "
    "received_at_ms, new_version, expected, first_at_ms, last_at_ms)), "
    "d AS (INSERT INTO deliveries (delivery_id, conversation_id, received_at_ms, "
    "committed_version) SELECT delivery_id, conversation_id, received_at_ms, new_version "
    "FROM u ORDER BY delivery_id ON CONFLICT (delivery_id) DO NOTHING "
    "RETURNING delivery_id), "
    "s AS (SELECT conversation_id, version FROM streams WHERE conversation_id IN "
    "(SELECT u.conversation_id FROM u JOIN d USING (delivery_id) WHERE u.expected > 0) "
    "ORDER BY conversation_id FOR UPDATE), "
    "n AS (INSERT INTO streams (conversation_id, version, created_at_ms, updated_at_ms) "
    "SELECT u.conversation_id, u.new_version, u.first_at_ms, u.last_at_ms "
    "FROM u JOIN d USING (delivery_id) WHERE u.expected = 0 ORDER BY u.conversation_id "
    "ON CONFLICT (conversation_id) DO NOTHING RETURNING conversation_id) "
    "SELECT 'd', delivery_id, NULL::bigint FROM d "
    "UNION ALL SELECT 's', conversation_id, version FROM s "
    "UNION ALL SELECT 'n', conversation_id, NULL FROM n"
)
"""The group's deliveries, then its existing streams locked (with their versions) and its
new streams' first rows, for the commits whose delivery was new."""


class GroupWriter:
    """Queues prepared commits and writes them a group at a time. `alone` writes one
    commit in a transaction of its own (raising what it fails with); `transaction` runs a
    function in one transaction on a pooled connection (`PostgresConnections`)."""

    def __init__(
        self,
        alone: Callable[[Prepared], Awaitable[CommitResult]],
        transaction: Callable[[Callable[[Conn], Awaitable[Any]]], Awaitable[Any]],
        limit: int = GROUP_LIMIT,
    ) -> None:
        self._alone = alone
        self._transaction = transaction
        self._limit = limit
        self._queue: list[tuple[Prepared, asyncio.Future[CommitResult]]] = []
        self._writing: asyncio.Task[None] | None = None
        self.groups = 0
        """Groups of more than one commit written in one transaction: tests and benches."""
        self.transactions = 0
        """Transactions this writer ran, a commit's alone included: benches."""

    async def commit(self, prepared: Prepared) -> CommitResult:
        future: asyncio.Future[CommitResult] = asyncio.get_running_loop().create_future()
        self._queue.append((prepared, future))
        if self._writing is None:
            # Started at the next turn of the event loop: the commits asked for in this one
            # join the first group.
            self._writing = asyncio.create_task(self._write_queue(), name="postgres-group")
        return await future

    async def idle(self) -> None:
        """Return once every queued commit is written (or failed: its caller is told)."""
        while (writing := self._writing) is not None:
            await asyncio.wait({writing})

    async def _write_queue(self) -> None:
        group: list[tuple[Prepared, asyncio.Future[CommitResult]]] = []
        try:
            while self._queue:
                group = self._take()
                if not group:
                    continue
                if len(group) == 1:
                    self.transactions += 1
                    outcomes: list[Outcome] = [await _outcome(self._alone(group[0][0]))]
                else:
                    outcomes = await self._write_group([prepared for prepared, _ in group])
                for (_, future), outcome in zip(group, outcomes, strict=True):
                    if future.done():  # its caller was cancelled: nobody waits for it
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                group = []
        except BaseException:
            # Cancelled (the event loop is shutting down) or a bug: nobody may wait for
            # an answer that will not come.
            for _, future in [*group, *self._queue]:
                if not future.done():
                    future.set_exception(
                        StorageError("The write was interrupted; it may or may not be stored.")
                    )
            self._queue = []
            raise
        finally:
            self._writing = None

    def _take(self) -> list[tuple[Prepared, asyncio.Future[CommitResult]]]:
        """The next group: up to `limit` queued commits, one per conversation and per
        delivery (a second commit of either waits for the next group, which sees the
        first, as it would alone)."""
        group: list[tuple[Prepared, asyncio.Future[CommitResult]]] = []
        later: list[tuple[Prepared, asyncio.Future[CommitResult]]] = []
        taken: set[str] = set()
        for queued in self._queue:
            if queued[1].done():
                continue  # its caller was cancelled before its turn: not written for it
            commit = queued[0].commit
            keys = (f"c:{commit.conversation_id}", f"d:{commit.delivery_id}")
            if len(group) < self._limit and taken.isdisjoint(keys):
                taken.update(keys)
                group.append(queued)
            else:
                later.append(queued)
        self._queue = later
        return group

    async def _write_group(self, group: list[Prepared]) -> list[Outcome]:
        try:
            outcomes: list[Outcome] = await self._transaction(lambda conn: _grouped(conn, group))
        except Exception:
            # Which commit the failure was about is not known: each is written alone.
            self.transactions += len(group)
            return list(await asyncio.gather(*(_outcome(self._alone(p)) for p in group)))
        self.groups += 1
        self.transactions += 1
        return outcomes


async def _outcome(result: Awaitable[CommitResult]) -> Outcome:
    try:
        return await result
    except Exception as exc:
        return exc


async def _grouped(conn: Conn, group: Sequence[Prepared]) -> list[Outcome]:
    """Write `group` in the open transaction; each commit's outcome, in order."""
    delivered, versions, started = await _claim(conn, group)
    passed: list[Prepared] = []
    undone: list[str] = []
    for prepared in group:
        commit = prepared.commit
        if commit.delivery_id not in delivered:
            continue  # a duplicate
        if (
            (commit.conversation_id in started)
            if commit.expected_version == 0
            else (versions.get(commit.conversation_id) == commit.expected_version)
        ):
            passed.append(prepared)
        else:
            undone.append(commit.delivery_id)  # as its rollback would have
    befores = (
        await read_before(
            conn, [(p.commit.conversation_id, p.commit.expected_version) for p in passed]
        )
        if passed
        else []
    )
    rows: list[Rows] = []
    keys: list[tuple[str, int, bytes, int]] = []
    moves: list[tuple[str, int, int]] = []
    for prepared, before in zip(passed, befores, strict=True):
        commit = prepared.commit
        key = CommitKey(commit.conversation_id, before.key)
        rows.append(rows_after(prepared, before, key))
        if key.made is not None:
            keys.append(key.made)
        if commit.expected_version:
            moves.append((commit.conversation_id, prepared.new_version, commit.events[-1].at_ms))
    await write(conn, rows, Group(moves=moves, keys=keys, undone=undone))
    for prepared in passed:
        for change in prepared.tickets:
            await apply_ticket_change(conn, change)
    committed = {id(p) for p in passed}
    failed = [p.commit.conversation_id for p in group if id(p) not in committed]
    now = await _versions(conn, failed) if failed else {}
    outcomes: list[Outcome] = []
    for prepared in group:
        commit = prepared.commit
        actual = now.get(commit.conversation_id, 0)
        if id(prepared) in committed:
            outcomes.append(CommitResult(status="committed", version=prepared.new_version))
        elif commit.delivery_id not in delivered:
            outcomes.append(CommitResult(status="duplicate", version=actual))
        else:
            outcomes.append(
                ConcurrencyError(commit.conversation_id, commit.expected_version, actual)
            )
    return outcomes


async def _claim(
    conn: Conn, group: Sequence[Prepared]
) -> tuple[set[str], dict[str, int], set[str]]:
    """(the deliveries inserted, the locked existing streams' versions, the new streams
    started) — see `_CLAIM`."""
    commits = [p.commit for p in group]
    found = await conn.fetch(
        _CLAIM,
        [c.delivery_id for c in commits],
        [c.conversation_id for c in commits],
        [c.received_at_ms for c in commits],
        [p.new_version for p in group],
        [c.expected_version for c in commits],
        [c.events[0].at_ms for c in commits],
        [c.events[-1].at_ms for c in commits],
    )
    delivered: set[str] = set()
    versions: dict[str, int] = {}
    started: set[str] = set()
    for kind, name, version in found:
        if kind == "d":
            delivered.add(name)
        elif kind == "s":
            versions[name] = int(version)
        else:
            started.add(name)
    return delivered, versions, started


async def _versions(conn: Conn, conversation_ids: Sequence[str]) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT conversation_id, version FROM streams WHERE conversation_id = ANY($1::text[])",
        list(conversation_ids),
    )
    return {row[0]: int(row[1]) for row in rows}
