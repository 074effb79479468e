"""`SqliteStore`: the `Store` ports on one SQLite file (the embedded default).

Durability. The file is in WAL mode with `synchronous=FULL`: every COMMIT fsyncs the WAL
before it returns. `NORMAL` would survive a process crash but can lose the last commits on
power loss or an OS crash; an inbound the platform has been acknowledged for must survive
both, because the platform will not send it again. With group commit one fsync covers a
whole batch, so FULL costs little: a prototype on this kind of machine measured about 40k
events/s with FULL against 47k with NORMAL (RELIABILITY.md, rules 3–4).

One writer (RELIABILITY rule 3). SQLite has a single writer, and a connection shared by
concurrent tasks silently merges their transactions. So every write — `commit`, `append`,
the outbox and ticket operations, `put_policy`, `put_state`/`delete_state` — is a job on an
`asyncio.Queue`. One writer task owns the only write connection: it takes every job waiting
(up to `max_batch`), runs them in one `BEGIN IMMEDIATE … COMMIT` with a SAVEPOINT per job, so
a job that fails (a `ConcurrencyError`, a bad value) rolls back alone, and resolves the
callers' futures only after the COMMIT returned. A caller that sees `committed` therefore
holds a durable commit, and concurrent conversations share one fsync.

Why the write connection is a plain `sqlite3` connection on its own thread, not aiosqlite:
aiosqlite makes one thread hop per statement (~70 µs here) and a commit is about ten
statements; measured with realistic commits (about four events each), that capped group
commit at ~1.1k commits/s. The writer instead runs a whole batch in one hop on its private
single-thread executor (what aiosqlite does per statement): ~2.5k commits/s, ~10k events/s.
Reads use aiosqlite on a second, read-only connection: WAL lets it read while the writer
writes, and every read is one statement, so it always sees a committed snapshot.

`busy_timeout=5000` lets a second process (the CLI reading while the bot runs) wait for the
lock instead of failing; `foreign_keys=ON` makes the REFERENCES clauses hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, cast

import aiosqlite

from domain import GENERATOR
from domain.chain import GENESIS, Link, link
from domain.events import EventEnvelope
from domain.personal import erased as erased_record
from domain.personal import paths_of_inbound
from storage import sealing
from storage._rules import (
    ClaimTicket,
    OpenTicket,
    ReopenTicket,
    ResolveTicket,
    TicketChange,
    check_events,
    check_limit,
    check_state_key,
    dumps,
    state_json,
    ticket_changes,
)
from storage.errors import (
    ConcurrencyError,
    CorruptDatabaseError,
    SchemaTooNewError,
    StorageError,
)
from storage.ports import (
    LEASE_EXPIRED,
    PENDING_ANSWER_SCHEMA_VERSION,
    STATE_SCHEMA_VERSION,
    TICKET_SCHEMA_VERSION,
    ClaimOutcome,
    Commit,
    CommitResult,
    LeaseOwner,
    MetricsProjection,
    OutboxItem,
    OutboxStats,
    PendingAnswer,
    RebuildSummary,
    StoredInbound,
    TicketRow,
)
from storage.projections import PROJECTION_SCHEMA_VERSION, differences
from storage.sqlite_projections import (
    METRICS_READ,
    apply_events,
    fold_snapshot,
    log_position,
    metrics_rows,
    projected_events,
    replace_all,
    stored_projection,
)
from storage.sqlite_schema import APPLICATION_ID, SCHEMA_VERSION, migrate, user_version

T = TypeVar("T")
Conn = sqlite3.Connection
Params = Sequence[object] | dict[str, object]

BUSY_TIMEOUT_MS = 5000
SQLITE_HEADER = b"SQLite format 3\x00"
_PAGE = 500  # rows per read when iterating the whole log
_CORRUPT = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})

_OUTBOX_COLUMNS = (
    "key, conversation_id, channel, payload, created_at_ms, available_at_ms, attempts, "
    "status, last_error, remote_id, lease_until_ms, sent_at_ms, lease_owner"
)
_TICKET_COLUMNS = (
    "key, conversation_id, kind, reason, status, claimed_by, resolved_by, quote_id, "
    "opened_at_ms, updated_at_ms, schema_version, generator"
)
_INBOUND_COLUMNS = (
    "conversation_id, position, delivery_id, received_at_ms, policy_version, inbound, generator"
)
_INBOUND_KEYED = (
    "i.conversation_id, i.position, i.delivery_id, i.received_at_ms, i.policy_version, "
    "i.inbound, i.generator, (SELECT json_group_object(k.key_id, hex(k.key)) "
    "FROM conversation_keys AS k WHERE k.conversation_id = i.conversation_id) "
    "FROM inbounds AS i"
)
"""A stored inbound's columns and its conversation's keys (to open what is sealed), as a
JSON object of key id → hex."""

# Claims walk the partial index `outbox_unsent (channel, id)`: each channel's first unsent
# item, then at most `per_channel` unsent items of each channel in order. One query with a
# window function over every unsent item gave the same answer but cost ~6x the previous
# FIFO claim on a backlog of 10,000 items in 500 channels; this reads a few index entries
# and rows per channel and costs less than that FIFO claim (see `_claim_rows`).
_UNSENT_HEADS = """
WITH RECURSIVE channels(channel) AS (
    SELECT MIN(channel) FROM outbox WHERE status IN ('pending', 'in_flight')
    UNION ALL
    SELECT (SELECT MIN(channel) FROM outbox
            WHERE status IN ('pending', 'in_flight') AND channel > channels.channel)
    FROM channels WHERE channels.channel IS NOT NULL
)
SELECT channel, (SELECT MIN(id) FROM outbox
                 WHERE status IN ('pending', 'in_flight') AND outbox.channel = channels.channel)
FROM channels WHERE channel IS NOT NULL
"""
"""Each channel with unsent items and its oldest one: a skip scan of the index (one seek
per channel), not a scan of every unsent item as GROUP BY would be."""
_UNSENT_OF_CHANNEL = (
    f"SELECT id, {_OUTBOX_COLUMNS} FROM outbox "
    "WHERE channel = ? AND status IN ('pending', 'in_flight') ORDER BY id LIMIT ?"
)

_PLATFORM = (
    "CASE WHEN instr(channel, ':') > 0 THEN substr(channel, 1, instr(channel, ':') - 1) "
    "ELSE channel END"
)
_OUTBOX_STATS = f"""
SELECT platform, SUM(pending), MIN(oldest), SUM(dead) FROM (
    SELECT {_PLATFORM} AS platform, COUNT(*) AS pending, MIN(created_at_ms) AS oldest,
           0 AS dead
    FROM outbox WHERE status IN ('pending', 'in_flight') GROUP BY platform
    UNION ALL
    SELECT {_PLATFORM} AS platform, 0, NULL, COUNT(*)
    FROM outbox WHERE status = 'dead' GROUP BY platform
)
GROUP BY platform ORDER BY platform
"""


@dataclass(slots=True)
class _Job(Generic[T]):
    run: Callable[[Conn], T]
    future: asyncio.Future[T]


Outcome = tuple[Any, BaseException | None]


class SqliteStore:
    """The `Store` ports on one SQLite file. Create with `await SqliteStore.open(path)`."""

    def __init__(
        self,
        path: Path,
        writer: Conn,
        executor: ThreadPoolExecutor,
        reader: aiosqlite.Connection,
        *,
        max_batch: int = 512,
    ) -> None:
        """Use `open`: this only wires together connections that are ready."""
        self.path = path
        self._writer = writer
        self._executor = executor  # one thread: the only one that touches `_writer`
        self._reader = reader
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Job[Any] | None] = asyncio.Queue()
        self._closing = False
        self._closed = False
        self.batches = 0
        """Write transactions committed so far (each holds one or more jobs): metrics."""
        self._writer_task = asyncio.create_task(self._write_loop(), name=f"sqlite-writer:{path}")
        self._writer_task.add_done_callback(self._on_writer_exit)

    @classmethod
    async def open(cls, path: str | Path, *, verify: bool = True) -> SqliteStore:
        """Open (creating and migrating if needed) the database at `path`.

        Raises `CorruptDatabaseError` for a file that is not a salesbot SQLite database or
        (with `verify`, the default) fails `PRAGMA quick_check`, `SchemaTooNewError` for a
        database from a newer salesbot, and `StorageError` when the file cannot be opened.
        """
        path = Path(path)
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        try:
            writer = await loop.run_in_executor(executor, _open_writer, path, verify)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        try:
            reader = await _open_reader(path)
        except BaseException:
            await loop.run_in_executor(executor, writer.close)
            executor.shutdown(wait=False)
            raise
        return cls(path, writer, executor, reader)

    # -- the writer ---------------------------------------------------------------------

    async def _write(self, run: Callable[[Conn], T]) -> T:
        """Run `run` in the writer's next batch; return once that batch committed."""
        if self._closing:
            raise StorageError(f"The store {self.path} is closed.")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(run, future))
        return await future

    async def _write_loop(self) -> None:
        try:
            await self._drain_queue()
        finally:
            # Also when asyncio.run() cancels a store nobody closed: release the file.
            self._closing = True
            await self._close_connections()

    async def _close_connections(self) -> None:
        if not self._closed:
            self._closed = True
            await self._reader.close()
            # Queued behind any batch still running on the writer thread.
            await asyncio.get_running_loop().run_in_executor(self._executor, self._writer.close)
            self._executor.shutdown(wait=False)

    async def _drain_queue(self) -> None:
        while True:
            job = await self._queue.get()
            if job is None:
                return
            batch = [job]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            await self._run_batch(batch)
            if stop:
                return

    async def _run_batch(self, batch: list[_Job[Any]]) -> None:
        # A caller that was cancelled before its turn gave up: do not write for it.
        live = [job for job in batch if not job.future.done()]
        if not live:
            return
        runs = [job.run for job in live]
        loop = asyncio.get_running_loop()
        try:
            outcomes = await loop.run_in_executor(self._executor, _transact, self._writer, runs)
        except Exception as exc:
            # BEGIN, a savepoint or the COMMIT itself failed: nothing of the batch is durable.
            failure = _wrap(exc, self.path)
            if not isinstance(failure, StorageError):
                failure = StorageError(f"Writing to {self.path} failed: {exc}")
            for job in live:
                _settle(job.future, None, failure)
            return
        except BaseException:
            unknown = StorageError(
                f"The writer of {self.path} was stopped during a commit; the write may or "
                "may not be durable."
            )
            for job in live:
                _settle(job.future, None, unknown)
            raise
        self.batches += 1
        for job, (result, error) in zip(live, outcomes, strict=True):
            _settle(job.future, result, None if error is None else _wrap(error, self.path))

    def _on_writer_exit(self, task: asyncio.Task[None]) -> None:
        """If the writer stops (closed, cancelled at shutdown, a bug), fail what is still
        queued instead of leaving callers waiting forever."""
        self._closing = True
        crashed = task.cancelled() or task.exception() is not None
        reason = "its writer was stopped" if crashed else "the store was closed"
        error = StorageError(f"The write to {self.path} was not made: {reason}.")
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None:
                _settle(job.future, None, error)

    # -- reads --------------------------------------------------------------------------

    async def _fetch(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        if self._closing:
            raise StorageError(f"The store {self.path} is closed.")
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

    # -- events -------------------------------------------------------------------------

    async def append(
        self, conversation_id: str, expected_version: int, events: Sequence[EventEnvelope]
    ) -> int:
        check_events(conversation_id, expected_version, events)
        rows = _event_rows(events)

        def run(conn: Conn) -> int:
            state = _one(
                conn,
                "SELECT (SELECT version FROM streams WHERE conversation_id = ?)",
                (conversation_id,),
            )
            actual = state[0] or 0
            if actual != expected_version:
                raise ConcurrencyError(conversation_id, expected_version, actual)
            return _append_rows(conn, conversation_id, expected_version, events, rows)

        return await self._write(run)

    async def _keys(self, conversation_id: str) -> dict[int, bytes]:
        rows = await self._fetch(
            "SELECT key_id, key FROM conversation_keys WHERE conversation_id = ?",
            (conversation_id,),
        )
        return {int(key_id): bytes(key) for key_id, key in rows}

    async def load(self, conversation_id: str) -> list[EventEnvelope]:
        rows = await self._fetch(
            "SELECT envelope FROM events WHERE conversation_id = ? ORDER BY seq",
            (conversation_id,),
        )
        keys = await self._keys(conversation_id) if rows else {}
        return [sealing.open_event(row[0], keys) for row in rows]

    async def stored_events(self, conversation_id: str) -> list[Link]:
        rows = await self._fetch(
            "SELECT seq, envelope, chain_hash FROM events WHERE conversation_id = ? ORDER BY seq",
            (conversation_id,),
        )
        keys = await self._keys(conversation_id) if rows else {}
        return [
            Link(
                seq=seq,
                envelope=envelope,
                chain_hash=chain,
                opened=sealing.opened_json(envelope, keys),
            )
            for seq, envelope, chain in rows
        ]

    async def version(self, conversation_id: str) -> int:
        rows = await self._fetch(
            "SELECT version FROM streams WHERE conversation_id = ?", (conversation_id,)
        )
        return int(rows[0][0]) if rows else 0

    async def iterate_all(self) -> AsyncIterator[EventEnvelope]:
        # Paged by the global position, so no read transaction stays open between pages.
        after = 0
        while True:
            rows = await self._fetch(
                "SELECT position, envelope, conversation_id FROM events WHERE position > ? "
                "ORDER BY position LIMIT ?",
                (after, _PAGE),
            )
            keys: dict[str, dict[int, bytes]] = {}
            for row in rows:
                if row[2] not in keys and '"sealed":' in row[1]:
                    keys[row[2]] = await self._keys(row[2])
                yield sealing.open_event(row[1], keys.get(row[2], {}))
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    async def conversation_ids(self) -> list[str]:
        rows = await self._fetch("SELECT conversation_id FROM streams ORDER BY id")
        return [row[0] for row in rows]

    # -- the atomic commit --------------------------------------------------------------

    async def commit(self, commit: Commit) -> CommitResult:
        # Serialise in the caller's task: the writer's batch holds the lock, so it should
        # spend its time on SQL, and a bad payload fails here before anything is queued.
        conversation_id = commit.conversation_id
        check_events(conversation_id, commit.expected_version, commit.events)
        event_rows = _event_rows(commit.events)
        inbound = commit.inbound
        outbox_rows = [_outbox_row(item) for item in commit.outbox]
        answer_rows = [_answer_row(answer) for answer in commit.answers]
        changes = ticket_changes(commit)

        def run(conn: Conn) -> CommitResult:
            seen, version, position = _one(
                conn,
                "SELECT (SELECT 1 FROM deliveries WHERE delivery_id = ?), "
                "(SELECT version FROM streams WHERE conversation_id = ?), "
                "(SELECT MAX(position) FROM inbounds WHERE conversation_id = ?)",
                (commit.delivery_id, conversation_id, conversation_id),
            )
            version = version or 0
            if seen:
                return CommitResult(status="duplicate", version=version)
            if version != commit.expected_version:
                raise ConcurrencyError(conversation_id, commit.expected_version, version)
            version = _append_rows(conn, conversation_id, version, commit.events, event_rows)
            inbound_json = None
            if inbound is not None:
                if sealing.has_personal_inbound(inbound):
                    key_id, key = _conversation_key(
                        conn, conversation_id, version, commit.received_at_ms
                    )
                    inbound_json = dumps(
                        sealing.seal_inbound(inbound, key_id, key, conversation_id)
                    )
                else:
                    inbound_json = dumps(inbound)
            conn.execute(
                "INSERT INTO deliveries (delivery_id, conversation_id, received_at_ms, "
                "committed_version) VALUES (?, ?, ?, ?)",
                (commit.delivery_id, conversation_id, commit.received_at_ms, version),
            )
            if inbound_json is not None:
                conn.execute(
                    f"INSERT INTO inbounds ({_INBOUND_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        conversation_id,
                        (position or 0) + 1,
                        commit.delivery_id,
                        commit.received_at_ms,
                        commit.policy_version,
                        inbound_json,
                        GENERATOR,
                    ),
                )
            _insert_outbox(conn, outbox_rows)
            for change in changes:
                _apply_ticket_change(conn, change)
            _insert_answers(conn, answer_rows)
            if commit.timer is not None:
                _schedule(conn, conversation_id, commit.timer.due_at_ms, version)
            return CommitResult(status="committed", version=version)

        return await self._write(run)

    # -- deliveries and inbounds --------------------------------------------------------

    async def seen(self, delivery_id: str) -> bool:
        rows = await self._fetch("SELECT 1 FROM deliveries WHERE delivery_id = ?", (delivery_id,))
        return bool(rows)

    async def recent(self, since_ms: int) -> set[str]:
        rows = await self._fetch(
            "SELECT delivery_id FROM deliveries WHERE received_at_ms >= ?", (since_ms,)
        )
        return {row[0] for row in rows}

    async def inbound(self, delivery_id: str) -> StoredInbound | None:
        rows = await self._fetch(f"SELECT {_INBOUND_KEYED} WHERE i.delivery_id = ?", (delivery_id,))
        return _stored_inbound(rows[0]) if rows else None

    async def inbounds(self, conversation_id: str) -> list[StoredInbound]:
        rows = await self._fetch(
            f"SELECT {_INBOUND_KEYED} WHERE i.conversation_id = ? ORDER BY i.position",
            (conversation_id,),
        )
        return [_stored_inbound(row) for row in rows]

    async def all_inbounds(self) -> AsyncIterator[StoredInbound]:
        after = 0
        while True:
            rows = await self._fetch(
                f"SELECT i.id, {_INBOUND_KEYED} WHERE i.id > ? ORDER BY i.id LIMIT ?",
                (after, _PAGE),
            )
            for row in rows:
                yield _stored_inbound(row[1:])
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    # -- outbox -------------------------------------------------------------------------

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        rows = [_outbox_row(item) for item in items]
        await self._write(lambda conn: _insert_outbox(conn, rows))

    async def claim_due(
        self,
        now_ms: int,
        limit: int,
        lease_ms: int,
        *,
        owner: str | None = None,
        prefixes: Sequence[str] | None = None,
        exclude: Collection[str] = (),
        per_channel: int | None = None,
    ) -> list[OutboxItem]:
        lease_until = now_ms + lease_ms
        scope = (tuple(prefixes) if prefixes is not None else None, frozenset(exclude))
        per_channel_limit = limit if per_channel is None else per_channel

        def run(conn: Conn) -> list[OutboxItem]:
            if limit <= 0:
                return []
            rows = _claim_rows(conn, now_ms, limit, per_channel_limit, *scope)
            conn.executemany(
                "UPDATE outbox SET lease_until_ms = ?, lease_owner = ?, "
                "last_error = CASE WHEN status = 'in_flight' THEN ? ELSE last_error END, "
                "status = 'in_flight' WHERE id = ?",
                [(lease_until, owner, LEASE_EXPIRED, row[0]) for row in rows],
            )
            claimed = []
            for row in rows:
                item = _outbox_item(row[1:])
                update: dict[str, object] = {
                    "status": "in_flight",
                    "lease_until_ms": lease_until,
                    "lease_owner": owner,
                }
                if item.status == "in_flight":
                    update["last_error"] = LEASE_EXPIRED
                claimed.append(item.model_copy(update=update))
            return claimed

        return await self._write(run)

    async def heartbeat(
        self, owner: str, now_ms: int, alive_until_ms: int, *, identity: str | None = None
    ) -> list[str]:
        def run(conn: Conn) -> list[str]:
            previous: list[str] = []
            if identity is not None:
                previous = [
                    row[0]
                    for row in conn.execute(
                        "SELECT owner FROM outbox_owners WHERE identity = ? AND owner != ? "
                        "ORDER BY started_at_ms, rowid",
                        (identity, owner),
                    )
                ]
                conn.execute(
                    "DELETE FROM outbox_owners WHERE identity = ? AND owner != ?",
                    (identity, owner),
                )
            conn.execute(
                "DELETE FROM outbox_owners WHERE alive_until_ms <= ? AND owner != ?",
                (now_ms, owner),
            )
            conn.execute(
                "INSERT INTO outbox_owners (owner, identity, started_at_ms, alive_until_ms) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (owner) DO UPDATE SET "
                "alive_until_ms = excluded.alive_until_ms, "
                "identity = COALESCE(excluded.identity, identity)",
                (owner, identity, now_ms, alive_until_ms),
            )
            return previous

        return await self._write(run)

    async def release_owner(self, owner: str, now_ms: int) -> int:
        def run(conn: Conn) -> int:
            cursor = conn.execute(
                "UPDATE outbox SET status = 'pending', available_at_ms = ?, "
                "lease_until_ms = NULL, lease_owner = NULL, last_error = ? "
                "WHERE status = 'in_flight' AND lease_owner = ?",
                (now_ms, LEASE_EXPIRED, owner),
            )
            conn.execute("DELETE FROM outbox_owners WHERE owner = ?", (owner,))
            return cursor.rowcount

        return await self._write(run)

    async def lease_owners(self) -> list[LeaseOwner]:
        rows = await self._fetch(
            "SELECT owner, identity, started_at_ms, alive_until_ms FROM outbox_owners "
            "ORDER BY started_at_ms, rowid"
        )
        return [
            LeaseOwner(owner=row[0], identity=row[1], started_at_ms=row[2], alive_until_ms=row[3])
            for row in rows
        ]

    async def release(
        self, keys: Sequence[str], available_at_ms: int, *, owner: str | None = None
    ) -> int:
        def run(conn: Conn) -> int:
            released = 0
            for key in keys:
                cursor = conn.execute(
                    "UPDATE outbox SET status = 'pending', available_at_ms = ?, "
                    "lease_until_ms = NULL, lease_owner = NULL "
                    "WHERE key = ? AND status = 'in_flight' AND (? IS NULL OR lease_owner = ?)",
                    (available_at_ms, key, owner, owner),
                )
                released += cursor.rowcount
            return released

        return await self._write(run)

    async def _update_unsent(self, key: str, assignments: str, params: Params) -> bool:
        def run(conn: Conn) -> bool:
            cursor = conn.execute(
                f"UPDATE outbox SET {assignments}, lease_until_ms = NULL, lease_owner = NULL "
                "WHERE key = ? AND status IN ('pending', 'in_flight')",
                (*params, key),
            )
            return cursor.rowcount == 1

        return await self._write(run)

    async def mark_sent(self, key: str, at_ms: int, remote_id: str | None = None) -> bool:
        return await self._update_unsent(
            key, "status = 'sent', sent_at_ms = ?, remote_id = ?", (at_ms, remote_id)
        )

    async def fail(self, key: str, next_attempt_ms: int, error: str) -> bool:
        return await self._update_unsent(
            key,
            "status = 'pending', attempts = attempts + 1, available_at_ms = ?, last_error = ?",
            (next_attempt_ms, error),
        )

    async def dead_letter(self, key: str, error: str) -> bool:
        return await self._update_unsent(key, "status = 'dead', last_error = ?", (error,))

    async def dead_letters(self) -> list[OutboxItem]:
        rows = await self._fetch(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE status = 'dead' ORDER BY id"
        )
        return [_outbox_item(row) for row in rows]

    async def outbox_item(self, key: str) -> OutboxItem | None:
        rows = await self._fetch(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE key = ?", (key,))
        return _outbox_item(rows[0]) if rows else None

    async def sent_items(self, channel_prefix: str, limit: int) -> list[OutboxItem]:
        check_limit(limit)
        # Newest first through the rowid, stopping at `limit` matches; `substr` rather than
        # LIKE, so a "%" or "_" in the prefix is only itself. No index covers sent items by
        # channel (outbox_unsent is partial): this is a start-up read, not a per-request one.
        rows = await self._fetch(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE status = 'sent' "
            "AND substr(channel, 1, ?) = ? ORDER BY id DESC LIMIT ?",
            (len(channel_prefix), channel_prefix, limit),
        )
        return [_outbox_item(row) for row in reversed(rows)]

    async def pending_count(self) -> int:
        rows = await self._fetch(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'in_flight')) "
            "+ (SELECT COUNT(*) FROM pending_answers)"
        )
        return int(rows[0][0])

    async def outbox_stats(self) -> list[OutboxStats]:
        # Two partial indexes (outbox_unsent, outbox_dead) keep both scans off sent items.
        rows = await self._fetch(_OUTBOX_STATS)
        return [
            OutboxStats(
                platform=platform, pending=pending, oldest_pending_created_at_ms=oldest, dead=dead
            )
            for platform, pending, oldest, dead in rows
        ]

    # -- tickets ------------------------------------------------------------------------

    async def open_ticket(self, row: TicketRow) -> bool:
        return await self._write(lambda conn: _insert_ticket(conn, row))

    async def claim_ticket(self, key: str, by: str, at_ms: int) -> ClaimOutcome:
        def run(conn: Conn) -> ClaimOutcome:
            row = _one(
                conn, "SELECT status, claimed_by, resolved_by FROM tickets WHERE key = ?", (key,)
            )
            if row is None:
                return ClaimOutcome(claimed=False, holder=None)
            status, claimed_by, resolved_by = row
            if status == "open":
                _apply_ticket_change(conn, ClaimTicket(key, by, at_ms))
                return ClaimOutcome(claimed=True, holder=by)
            if status == "claimed":
                return ClaimOutcome(claimed=claimed_by == by, holder=claimed_by)
            return ClaimOutcome(claimed=False, holder=resolved_by)

        return await self._write(run)

    async def resolve_ticket(self, key: str, by: str, at_ms: int) -> bool:
        return await self._write(
            lambda conn: _apply_ticket_change(conn, ResolveTicket(key, by, at_ms))
        )

    async def ticket(self, key: str) -> TicketRow | None:
        rows = await self._fetch(f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE key = ?", (key,))
        return _ticket_row(rows[0]) if rows else None

    async def open_tickets(self) -> list[TicketRow]:
        rows = await self._fetch(
            f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE status != 'resolved' "
            "ORDER BY opened_at_ms, rowid"
        )
        return [_ticket_row(row) for row in rows]

    # -- policies -----------------------------------------------------------------------

    async def put_policy(self, version: str, canonical_json: str) -> None:
        def run(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO policies (version, canonical_json) VALUES (?, ?) "
                "ON CONFLICT (version) DO NOTHING",
                (version, canonical_json),
            )
            stored = _one(conn, "SELECT canonical_json FROM policies WHERE version = ?", (version,))
            if stored[0] != canonical_json:
                raise ValueError(f"Policy {version} is stored already with a different text.")

        await self._write(run)

    async def get_policy(self, version: str) -> str | None:
        rows = await self._fetch(
            "SELECT canonical_json FROM policies WHERE version = ?", (version,)
        )
        return str(rows[0][0]) if rows else None

    # -- adapter state ------------------------------------------------------------------

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None:
        text = state_json(key, value)  # checked and encoded before anything is queued

        def run(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO adapter_state (key, value, updated_at_ms, schema_version, "
                "generator) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "value = excluded.value, updated_at_ms = excluded.updated_at_ms, "
                "schema_version = excluded.schema_version, generator = excluded.generator",
                (key, text, at_ms, STATE_SCHEMA_VERSION, GENERATOR),
            )

        await self._write(run)

    async def put_state_if_absent(
        self, key: str, value: Mapping[str, Any], at_ms: int
    ) -> dict[str, Any]:
        text = state_json(key, value)

        def run(conn: Conn) -> str:
            conn.execute(
                "INSERT INTO adapter_state (key, value, updated_at_ms, schema_version, "
                "generator) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                (key, text, at_ms, STATE_SCHEMA_VERSION, GENERATOR),
            )
            row = conn.execute("SELECT value FROM adapter_state WHERE key = ?", (key,)).fetchone()
            return str(row[0])

        kept: dict[str, Any] = json.loads(await self._write(run))
        return kept

    async def get_state(self, key: str) -> dict[str, Any] | None:
        check_state_key(key)
        rows = await self._fetch("SELECT value FROM adapter_state WHERE key = ?", (key,))
        if not rows:
            return None
        value: dict[str, Any] = json.loads(rows[0][0])
        return value

    async def delete_state(self, key: str) -> bool:
        check_state_key(key)

        def run(conn: Conn) -> bool:
            cursor = conn.execute("DELETE FROM adapter_state WHERE key = ?", (key,))
            return cursor.rowcount == 1

        return await self._write(run)

    # -- projections --------------------------------------------------------------------

    async def metrics_projection(self) -> MetricsProjection:
        rows = await self._fetch(METRICS_READ)
        try:
            counts, times = metrics_rows(rows)
        except ValueError as exc:
            raise StorageError(str(exc)) from None
        return MetricsProjection(counts=counts, qualification_ms=tuple(times))

    async def quote_conversation(self, quote_id: str) -> str | None:
        rows = await self._fetch(
            "SELECT conversation_id FROM quote_index WHERE quote_id = ?", (quote_id,)
        )
        return str(rows[0][0]) if rows else None

    async def rebuild_projections(self) -> RebuildSummary:
        if self._closing:
            raise StorageError(f"The store {self.path} is closed.")
        try:
            projection, position = await asyncio.to_thread(
                fold_snapshot, self.path, BUSY_TIMEOUT_MS
            )
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

        def run(conn: Conn) -> RebuildSummary:
            # What was committed after the snapshot, folded under the write lock; then the
            # rows are swapped (always: they then all carry this generator).
            for envelope in projected_events(conn, after_position=position):
                projection.apply(envelope.conversation_id, (envelope,))
            _, events = log_position(conn)
            changed = differences(stored_projection(conn), projection)
            replace_all(conn, projection)
            return RebuildSummary(
                events=events,
                conversations=len(projection.facts),
                qualified=len(projection.qualified()),
                quotes=len(projection.quotes),
                changed=changed,
                schema_version=PROJECTION_SCHEMA_VERSION,
                generator=GENERATOR,
            )

        return await self._write(run)

    # -- deferred answers -----------------------------------------------------------------

    async def pending_answers(self) -> list[PendingAnswer]:
        rows = await self._fetch(
            "SELECT key, conversation_id, delivery_id, payload, created_at_ms "
            "FROM pending_answers ORDER BY id"
        )
        return [
            PendingAnswer(
                key=key,
                conversation_id=conversation_id,
                delivery_id=delivery_id,
                payload=json.loads(payload),
                created_at_ms=created,
            )
            for key, conversation_id, delivery_id, payload, created in rows
        ]

    async def settle_answer(self, key: str, items: Sequence[OutboxItem]) -> bool:
        rows = [_outbox_row(item) for item in items]

        def run(conn: Conn) -> bool:
            cursor = conn.execute("DELETE FROM pending_answers WHERE key = ?", (key,))
            if cursor.rowcount != 1:
                return False
            _insert_outbox(conn, rows)
            return True

        return await self._write(run)

    # -- timers -------------------------------------------------------------------------

    async def schedule_timer(
        self, conversation_id: str, due_at_ms: int | None, version: int
    ) -> bool:
        return await self._write(lambda conn: _schedule(conn, conversation_id, due_at_ms, version))

    async def due_timers(self, now_ms: int, limit: int) -> list[str]:
        check_limit(limit)
        # The partial index `timers_due` holds only scheduled rows, in due order.
        rows = await self._fetch(
            "SELECT conversation_id FROM timers WHERE due_at_ms IS NOT NULL AND due_at_ms <= ? "
            "ORDER BY due_at_ms, conversation_id LIMIT ?",
            (now_ms, limit),
        )
        return [row[0] for row in rows]

    # -- lifecycle ----------------------------------------------------------------------

    # -- erasure ------------------------------------------------------------------------

    async def erase(self, conversation_id: str, expected_version: int, event: EventEnvelope) -> int:
        check_events(conversation_id, expected_version, (event,))
        rows = _event_rows((event,))

        def run(conn: Conn) -> int:
            (actual,) = _one(
                conn,
                "SELECT (SELECT version FROM streams WHERE conversation_id = ?)",
                (conversation_id,),
            )
            if (actual or 0) != expected_version:
                raise ConcurrencyError(conversation_id, expected_version, actual or 0)
            conn.execute(
                "DELETE FROM conversation_keys WHERE conversation_id = ?", (conversation_id,)
            )
            _redact_copies(conn, conversation_id)
            return _append_rows(conn, conversation_id, expected_version, (event,), rows)

        version = await self._write(run)
        # The key's old page may still sit in the write-ahead log: fold the log into the
        # file (where `secure_delete` zeroed it) and truncate it. Best effort: a reader
        # holding an old snapshot only delays it to the next checkpoint.
        loop = asyncio.get_running_loop()
        with contextlib.suppress(sqlite3.Error):
            await loop.run_in_executor(
                self._executor, self._writer.execute, "PRAGMA wal_checkpoint(TRUNCATE)"
            )
        return version

    async def idle_conversations(self, before_ms: int, limit: int) -> list[str]:
        check_limit(limit)
        rows = await self._fetch(
            "SELECT s.conversation_id FROM streams AS s "
            "JOIN events AS e ON e.conversation_id = s.conversation_id AND e.seq = s.version "
            "WHERE s.updated_at_ms < ? AND e.type != 'erased' "
            "ORDER BY s.updated_at_ms, s.conversation_id LIMIT ?",
            (before_ms, limit),
        )
        return [row[0] for row in rows]

    async def close(self) -> None:
        """Let the writer finish every job already queued, then close both connections."""
        if not self._closing:
            self._closing = True
            self._queue.put_nowait(None)
        # The writer closes the connections on its way out; its own failure, if any, was
        # already reported to the callers whose writes it concerned.
        await asyncio.wait([self._writer_task])

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# -- opening and the writer thread -------------------------------------------------------


def _open_writer(path: Path, verify: bool) -> Conn:
    """On the writer thread: check, configure and migrate the file; return the connection."""
    _check_header(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise _wrap(exc, path) from exc
    try:
        _prepare_writer(conn, path, verify=verify)
    except BaseException:
        conn.close()
        raise
    return conn


def _check_header(path: Path) -> None:
    """Refuse a file that is not SQLite before SQLite sees it (an empty file is new)."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise StorageError(f"{path} is a directory, not a database file.") from None
    except OSError as exc:
        raise StorageError(f"{path} cannot be read: {exc.strerror}.") from None
    if header and header != SQLITE_HEADER:
        raise CorruptDatabaseError(path, "it is not a SQLite database file")


def _prepare_writer(conn: Conn, path: Path, *, verify: bool) -> None:
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        found = user_version(conn)
        if found > SCHEMA_VERSION:
            # Checked before anything else: a newer schema may not even be readable here.
            raise SchemaTooNewError(path, found, SCHEMA_VERSION)
        (application_id,) = _one(conn, "PRAGMA application_id")
        if application_id not in (0, APPLICATION_ID):
            raise CorruptDatabaseError(
                path, f"it belongs to another application (application_id {application_id})"
            )
        if found == 0:
            (tables,) = _one(
                conn, "SELECT COUNT(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'"
            )
            if tables:
                raise CorruptDatabaseError(path, "it holds tables but no salesbot schema")
        (mode,) = _one(conn, "PRAGMA journal_mode = WAL")
        if str(mode).lower() != "wal":
            raise StorageError(f"{path} cannot use write-ahead logging (journal mode {mode}).")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        # A deleted row (an erased conversation's key) is overwritten, not left in free pages.
        conn.execute("PRAGMA secure_delete = ON")
        if verify and found:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise CorruptDatabaseError(path, f"its integrity check failed ({problems[0]})")
        migrate(conn, path)
    except sqlite3.Error as exc:
        raise _wrap(exc, path) from exc


async def _open_reader(path: Path) -> aiosqlite.Connection:
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise _wrap(exc, path) from exc
    try:
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA query_only = ON")
    except BaseException as exc:
        await conn.close()
        if isinstance(exc, sqlite3.Error):
            raise _wrap(exc, path) from exc
        raise
    return conn


def _transact(conn: Conn, runs: Sequence[Callable[[Conn], Any]]) -> list[Outcome]:
    """On the writer thread: one transaction, one savepoint per job. A job's exception
    undoes that job only; a failure of the transaction itself undoes all and propagates."""
    outcomes: list[Outcome] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for run in runs:
            conn.execute("SAVEPOINT job")
            try:
                result = run(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((None, exc))
            else:
                conn.execute("RELEASE job")
                outcomes.append((result, None))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    return outcomes


# -- SQL helpers ------------------------------------------------------------------------


def _claim_rows(
    conn: Conn,
    now_ms: int,
    limit: int,
    per_channel: int,
    prefixes: tuple[str, ...] | None,
    exclude: frozenset[str],
) -> list[Sequence[Any]]:
    """The rows `Outbox.claim_due` hands out, as `(id, *_OUTBOX_COLUMNS)`, in claim order."""
    heads = sorted(
        (head, channel)
        for channel, head in conn.execute(_UNSENT_HEADS)
        if channel not in exclude and (prefixes is None or channel.startswith(prefixes))
    )
    alive = {
        row[0]
        for row in conn.execute(
            "SELECT owner FROM outbox_owners WHERE alive_until_ms > ?", (now_ms,)
        )
    }
    queues: list[list[Sequence[Any]]] = []
    for _head, channel in heads:
        if len(queues) >= limit:
            break  # the first items of `limit` channels already fill the claim
        queue = []
        for row in conn.execute(_UNSENT_OF_CHANNEL, (channel, per_channel)):
            status, available, lease_until, owner = row[8], row[6], row[11], row[13]
            if status == "pending":
                due = available <= now_ms
            else:
                expired = lease_until is not None and lease_until <= now_ms
                due = expired or (owner is not None and owner not in alive)
            if not due:
                break  # nothing newer in this channel may overtake it
            queue.append(row)
        if queue:
            queues.append(queue)
    ranked = sorted(((rank, row[0]), row) for queue in queues for rank, row in enumerate(queue))
    return [row for _position, row in ranked[:limit]]


def _schedule(conn: Conn, conversation_id: str, due_at_ms: int | None, version: int) -> bool:
    """Set the conversation's next timer unless the row holds a later version's."""
    cursor = conn.execute(
        "INSERT INTO timers (conversation_id, due_at_ms, version) VALUES (?, ?, ?) "
        "ON CONFLICT (conversation_id) DO UPDATE SET due_at_ms = excluded.due_at_ms, "
        "version = excluded.version WHERE excluded.version >= timers.version",
        (conversation_id, due_at_ms, version),
    )
    return cursor.rowcount == 1


def _one(conn: Conn, sql: str, params: Params = ()) -> Any:
    return conn.execute(sql, params).fetchone()


def _event_rows(events: Iterable[EventEnvelope]) -> list[tuple[object, ...]]:
    return [
        (
            env.conversation_id,
            env.seq,
            env.at_ms,
            env.policy_version,
            env.event.type,
            env.delivery_id,
            env.model_dump_json(),
        )
        for env in events
    ]


def _append_rows(
    conn: Conn,
    conversation_id: str,
    version: int,
    events: Sequence[EventEnvelope],
    rows: list[tuple[object, ...]],
) -> int:
    """Append checked events after `version`; return the new version."""
    if not events:
        return version
    new_version = version + len(events)
    conn.execute(
        "INSERT INTO streams (conversation_id, version, created_at_ms, updated_at_ms) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (conversation_id) DO UPDATE "
        "SET version = excluded.version, updated_at_ms = excluded.updated_at_ms",
        (conversation_id, new_version, events[0].at_ms, events[-1].at_ms),
    )
    conn.executemany(
        "INSERT INTO events (conversation_id, seq, at_ms, policy_version, type, delivery_id, "
        "envelope, chain_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        _linked(conn, conversation_id, version, _sealed_rows(conn, conversation_id, events, rows)),
    )
    apply_events(conn, conversation_id, events)  # the projections, in the same transaction
    return new_version


def _redact_copies(conn: Conn, conversation_id: str) -> None:
    """An erased conversation's copies outside the hash chain, rewritten in place (these
    bytes are not linked, so rewriting them breaks nothing): inbounds stored before sealing
    existed read `[erased]` where their personal values were; every outbox payload has its
    words redacted, and a reply not yet sent is dead-lettered instead of being sent."""
    legacy = conn.execute(
        "SELECT id, inbound FROM inbounds WHERE conversation_id = ?", (conversation_id,)
    ).fetchall()
    updates = []
    for row_id, text in legacy:
        data = json.loads(text)
        if isinstance(data, dict) and sealing.SEALED_FIELD not in data:
            redacted = erased_record(data, paths_of_inbound(data))
            updates.append((dumps(redacted), row_id))
    conn.executemany("UPDATE inbounds SET inbound = ? WHERE id = ?", updates)
    payloads = conn.execute(
        "SELECT id, payload FROM outbox WHERE conversation_id = ?", (conversation_id,)
    ).fetchall()
    conn.executemany(
        "UPDATE outbox SET payload = ? WHERE id = ?",
        [(dumps(sealing.redacted_payload(json.loads(text))), row_id) for row_id, text in payloads],
    )
    conn.execute(
        "UPDATE outbox SET status = 'dead', last_error = 'erased before it was sent', "
        "lease_owner = NULL, lease_until_ms = NULL "
        "WHERE conversation_id = ? AND status IN ('pending', 'in_flight')",
        (conversation_id,),
    )


def _conversation_key(
    conn: Conn, conversation_id: str, version: int, at_ms: int
) -> tuple[int, bytes]:
    """The key (and its id) the conversation's personal data is sealed with, created with
    its first sealed value at stream `version` (again after an erasure, under a new id:
    what arrives later is sealed with a new key)."""
    found = _one(
        conn,
        "SELECT key_id, key FROM conversation_keys WHERE conversation_id = ? "
        "ORDER BY key_id DESC LIMIT 1",
        (conversation_id,),
    )
    if found is not None:
        return int(found[0]), bytes(found[1])
    key = sealing.new_key()
    conn.execute(
        "INSERT INTO conversation_keys (conversation_id, key_id, key, created_at_ms) "
        "VALUES (?, ?, ?, ?)",
        (conversation_id, version, key, at_ms),
    )
    return version, key


def _sealed_rows(
    conn: Conn,
    conversation_id: str,
    events: Sequence[EventEnvelope],
    rows: list[tuple[object, ...]],
) -> list[tuple[object, ...]]:
    """`rows` with the JSON of each event holding personal data replaced by its sealed form
    (`storage.sealing`), under the conversation's key."""
    if not any(sealing.has_personal_event(env) for env in events):
        return rows
    key_id, key = _conversation_key(conn, conversation_id, events[0].seq, events[0].at_ms)
    sealed_rows = []
    for env, row in zip(events, rows, strict=True):
        text = sealing.seal_event(env, key_id, key) if sealing.has_personal_event(env) else None
        sealed_rows.append(row if text is None else (*row[:6], text))
    return sealed_rows


def _linked(
    conn: Conn, conversation_id: str, version: int, rows: list[tuple[object, ...]]
) -> list[tuple[object, ...]]:
    """`rows` with each event's link in its stream's hash chain (`domain.chain`), computed
    here, in the appending transaction, from the JSON about to be stored and the link of
    the event before (read under the write lock, so it is the one committed or written
    earlier in this batch). A stream whose previous event has no link (a store damaged by
    hand) gets none either: verification reports the first missing one."""
    previous: str | None = GENESIS
    if version:
        found = _one(
            conn,
            "SELECT chain_hash FROM events WHERE conversation_id = ? AND seq = ?",
            (conversation_id, version),
        )
        previous = None if found is None else found[0]
    linked = []
    for row in rows:
        previous = None if previous is None else link(previous, str(row[6]))
        linked.append((*row, previous))
    return linked


def _outbox_row(item: OutboxItem) -> tuple[object, ...]:
    return (
        item.key,
        item.conversation_id,
        item.channel,
        dumps(item.payload),
        item.created_at_ms,
        item.available_at_ms,
        item.attempts,
        item.status,
        item.last_error,
        item.remote_id,
        item.lease_until_ms,
        item.sent_at_ms,
        item.lease_owner,
    )


def _insert_outbox(conn: Conn, rows: list[tuple[object, ...]]) -> None:
    if rows:
        conn.executemany(
            f"INSERT INTO outbox ({_OUTBOX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO NOTHING",
            rows,
        )


def _outbox_item(row: Sequence[Any]) -> OutboxItem:
    (key, conversation_id, channel, payload, created, available, attempts, status, error,
     remote_id, lease_until, sent_at, lease_owner) = row  # fmt: skip
    return OutboxItem(
        key=key,
        conversation_id=conversation_id,
        channel=channel,
        payload=json.loads(payload),
        created_at_ms=created,
        available_at_ms=available,
        attempts=attempts,
        status=status,
        last_error=error,
        remote_id=remote_id,
        lease_until_ms=lease_until,
        sent_at_ms=sent_at,
        lease_owner=lease_owner,
    )


def _answer_row(answer: PendingAnswer) -> tuple[object, ...]:
    return (
        answer.key,
        answer.conversation_id,
        answer.delivery_id,
        dumps(answer.payload),
        answer.created_at_ms,
        PENDING_ANSWER_SCHEMA_VERSION,
        GENERATOR,
    )


def _insert_answers(conn: Conn, rows: list[tuple[object, ...]]) -> None:
    if rows:
        conn.executemany(
            "INSERT INTO pending_answers (key, conversation_id, delivery_id, payload, "
            "created_at_ms, schema_version, generator) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO NOTHING",
            rows,
        )


def _insert_ticket(conn: Conn, row: TicketRow) -> bool:
    cursor = conn.execute(
        f"INSERT INTO tickets ({_TICKET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (key) DO NOTHING",
        (
            row.key,
            row.conversation_id,
            row.kind,
            row.reason,
            row.status,
            row.claimed_by,
            row.resolved_by,
            row.quote_id,
            row.opened_at_ms,
            row.updated_at_ms,
            row.schema_version,
            row.generator_version,
        ),
    )
    return cursor.rowcount == 1


def _apply_ticket_change(conn: Conn, change: TicketChange) -> bool:
    """Apply one ticket change; True if a row changed."""
    match change:
        case OpenTicket(row):
            return _insert_ticket(conn, row)
        case ClaimTicket(key, by, at_ms):
            cursor = conn.execute(
                "UPDATE tickets SET status = 'claimed', claimed_by = ?, updated_at_ms = ?, "
                "schema_version = ?, generator = ? WHERE key = ? AND status = 'open'",
                (by, at_ms, TICKET_SCHEMA_VERSION, GENERATOR, key),
            )
            return cursor.rowcount == 1
        case ResolveTicket(key, by, at_ms):
            cursor = conn.execute(
                "UPDATE tickets SET status = 'resolved', resolved_by = ?, updated_at_ms = ?, "
                "schema_version = ?, generator = ? WHERE key = ? AND status != 'resolved'",
                (by, at_ms, TICKET_SCHEMA_VERSION, GENERATOR, key),
            )
            return cursor.rowcount == 1
        case ReopenTicket(key, holder, at_ms):
            cursor = conn.execute(
                "UPDATE tickets SET status = ?, claimed_by = ?, resolved_by = NULL, "
                "updated_at_ms = ?, schema_version = ?, generator = ? "
                "WHERE key = ? AND status = 'resolved'",
                (
                    "open" if holder is None else "claimed",
                    holder,
                    at_ms,
                    TICKET_SCHEMA_VERSION,
                    GENERATOR,
                    key,
                ),
            )
            return cursor.rowcount == 1


def _ticket_row(row: Sequence[Any]) -> TicketRow:
    names = [name.strip() for name in _TICKET_COLUMNS.split(",")]
    values = dict(zip(names, row, strict=True))
    values["generator_version"] = values.pop("generator")
    return TicketRow.model_validate(values)


def _stored_inbound(row: Sequence[Any]) -> StoredInbound:
    (
        conversation_id,
        position,
        delivery_id,
        received_at_ms,
        policy_version,
        inbound,
        generator,
        key_json,
    ) = row
    keys = {int(k): bytes.fromhex(v) for k, v in json.loads(key_json or "{}").items()}
    return StoredInbound(
        conversation_id=conversation_id,
        position=position,
        delivery_id=delivery_id,
        received_at_ms=received_at_ms,
        policy_version=policy_version,
        inbound=sealing.open_inbound(json.loads(inbound), keys, conversation_id),
        generator_version=generator,
    )


# -- errors and futures -----------------------------------------------------------------


def _wrap(exc: BaseException, path: Path) -> BaseException:
    """Keep our own errors and the caller's bugs as they are; turn SQLite's into ours."""
    if not isinstance(exc, sqlite3.Error):
        return exc
    name = getattr(exc, "sqlite_errorname", "")
    if name in _CORRUPT:
        return CorruptDatabaseError(path, str(exc))
    return StorageError(f"The database {path} reported an error: {exc}.")


def _settle(future: asyncio.Future[Any], result: object, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(cast(Any, result))
