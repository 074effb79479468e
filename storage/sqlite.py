"""`SqliteStore`: the `Store` ports on one SQLite file (the embedded default).

The store is composed of parts named for what they hold, each on the same two connections:
`storage.sqlite_writer` (the single writer with group commit, the read connection, opening
and checking the file: why FULL sync, why one writer thread and not aiosqlite),
`storage.sqlite_outbox` (the outbox, claimed per channel under leases),
`storage.sqlite_tickets` (tickets), `storage.sqlite_projections` (the metrics projection)
and `storage.sqlite_schema` (migrations). This module holds the event log and what commits
with it: the atomic commit of one decision, deliveries and inbounds, sealing and erasure,
policies, adapter state, pending answers and timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import sqlite3
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, NamedTuple

from domain import GENERATOR
from domain.chain import GENESIS, Link, link
from domain.events import EventEnvelope
from domain.personal import erased as erased_record
from domain.personal import paths_of_inbound
from storage import sealing
from storage._rules import (
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
    StorageError,
)
from storage.ports import (
    REPLAY_BATCH,
    STATE_SCHEMA_VERSION,
    Commit,
    CommitResult,
    ConversationLog,
    MetricsProjection,
    OutboxItem,
    PendingAnswer,
    RebuildSummary,
    StoredInbound,
    VerifyLog,
)
from storage.projections import (
    Projection,
    Step,
    counter_differences,
    differences,
    fold_steps_of,
)
from storage.sql_rows import answer_row as _answer_row
from storage.sql_rows import event_rows as _event_rows
from storage.sql_rows import (
    has_masked,
    links,
    metrics_projection,
    pending_answers,
    qualification_times,
    read_parts,
    rebuild_summary,
    replay_logs,
    replay_read,
    sealed_row,
    verify_logs,
)
from storage.sql_rows import outbox_row as _outbox_row
from storage.sql_rows import stored_inbound as _stored_inbound
from storage.sqlite_outbox import SqliteOutbox, _insert_outbox
from storage.sqlite_projections import (
    METRICS_READ,
    QUALIFICATION_TIMES_READ,
    apply_steps,
    fold_snapshot,
    log_position,
    projected_events,
    replace_all,
    stored_counters,
    stored_projection,
)
from storage.sqlite_tickets import SqliteTickets, _apply_ticket_change
from storage.sqlite_writer import BUSY_TIMEOUT_MS, Conn, _one, _wrap

_PAGE = 500  # rows per read when iterating the whole log
_VERSION_READ = "SELECT version FROM streams WHERE conversation_id = ?"

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


class SqliteStore(SqliteOutbox, SqliteTickets):
    """The `Store` ports on one SQLite file. Create with `await SqliteStore.open(path)`."""

    # -- events -------------------------------------------------------------------------

    async def append(
        self, conversation_id: str, expected_version: int, events: Sequence[EventEnvelope]
    ) -> int:
        check_events(conversation_id, expected_version, events)
        return await self._write(_append_job(conversation_id, expected_version, events))

    async def _keys(self, conversation_id: str) -> dict[int, bytes]:
        rows = await self._fetch(
            "SELECT key_id, key FROM conversation_keys WHERE conversation_id = ?",
            (conversation_id,),
        )
        return {int(key_id): bytes(key) for key_id, key in rows}

    async def load(self, conversation_id: str) -> list[EventEnvelope]:
        if self._peek(_VERSION_READ, (conversation_id,)) == []:
            return []  # no stream: a conversation's first message (`_peek`: no thread hop)
        rows = await self._fetch(
            "SELECT envelope FROM events WHERE conversation_id = ? ORDER BY seq",
            (conversation_id,),
        )
        keys = await self._keys(conversation_id) if rows else {}
        return sealing.open_events((row[0] for row in rows), keys)

    async def stored_events(self, conversation_id: str) -> list[Link]:
        rows = await self._fetch(
            "SELECT seq, envelope, chain_hash FROM events WHERE conversation_id = ? ORDER BY seq",
            (conversation_id,),
        )
        keys = await self._keys(conversation_id) if rows else {}
        return links(rows, keys)

    async def version(self, conversation_id: str) -> int:
        rows = await self._look_up(_VERSION_READ, (conversation_id,))
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
        inbound = (
            None
            if commit.inbound is None
            else sealing.inbound_form(commit.inbound, conversation_id)
        )
        outbox_rows = [_outbox_row(item) for item in commit.outbox]
        answer_rows = [_answer_row(answer) for answer in commit.answers]
        changes = ticket_changes(commit)

        status, version = await self._write(
            _CommitJob(
                conversation_id=conversation_id,
                expected_version=commit.expected_version,
                delivery_id=commit.delivery_id,
                received_at_ms=commit.received_at_ms,
                policy_version=commit.policy_version,
                inbound=inbound,
                span=_span(commit.events),
                projected=_projected(commit.events),
                rows=event_rows,
                outbox_rows=outbox_rows,
                answer_rows=answer_rows,
                changes=changes,
                timer=None if commit.timer is None else (commit.timer.due_at_ms,),
            )
        )
        # The job answers plain data: cheaper to pickle from a writer process than a model.
        return CommitResult(status=status, version=version)

    # -- deliveries and inbounds --------------------------------------------------------

    async def seen(self, delivery_id: str) -> bool:
        # Asked for every message the bot leaves undecided (reps' chatter in a thread).
        rows = await self._look_up("SELECT 1 FROM deliveries WHERE delivery_id = ?", (delivery_id,))
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

    async def replay_logs(
        self,
        conversation_ids: Sequence[str],
        *,
        decode: Collection[str] | None = None,
        batch: int = REPLAY_BATCH,
    ) -> AsyncIterator[ConversationLog]:
        check_limit(batch)
        for start in range(0, len(conversation_ids), batch):
            ids = list(conversation_ids[start : start + batch])
            condition = f"IN ({', '.join('?' * len(ids))})"
            rows = await self._fetch(replay_read(condition), ids * read_parts())
            for log in replay_logs(ids, rows, decode):
                yield log

    async def verify_logs(
        self, conversation_ids: Sequence[str], *, batch: int = REPLAY_BATCH
    ) -> AsyncIterator[VerifyLog]:
        check_limit(batch)
        for start in range(0, len(conversation_ids), batch):
            ids = list(conversation_ids[start : start + batch])
            condition = f"IN ({', '.join('?' * len(ids))})"
            rows = await self._fetch(
                replay_read(condition, verify=True), ids * read_parts(verify=True)
            )
            for log in verify_logs(ids, rows):
                yield log

    # -- policies -----------------------------------------------------------------------

    async def put_policy(self, version: str, canonical_json: str) -> None:
        await self._write(partial(_put_policy, version=version, canonical_json=canonical_json))

    async def get_policy(self, version: str) -> str | None:
        rows = await self._fetch(
            "SELECT canonical_json FROM policies WHERE version = ?", (version,)
        )
        return str(rows[0][0]) if rows else None

    # -- adapter state ------------------------------------------------------------------

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None:
        # Checked and encoded before anything is queued.
        await self._write(_PutState(key, state_json(key, value), at_ms))

    async def put_state_if_absent(
        self, key: str, value: Mapping[str, Any], at_ms: int
    ) -> dict[str, Any]:
        text = state_json(key, value)
        job = partial(_put_state_if_absent, key=key, text=text, at_ms=at_ms)
        kept: dict[str, Any] = json.loads(await self._write(job))
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
        return await self._write(partial(_delete_state, key=key))

    async def delete_states_before(self, prefix: str, before_ms: int, limit: int) -> int:
        check_state_key(prefix)
        # The keys starting with `prefix` are one range of the primary key (BINARY order):
        # only that range is read, however much other state there is.
        last = ord(prefix[-1])
        end = prefix[:-1] + chr(last + 1) if last < 0x10FFFF else "\U0010ffff" * 1024
        return await self._write(
            partial(_delete_states_before, prefix=prefix, end=end, before_ms=before_ms, limit=limit)
        )

    # -- projections --------------------------------------------------------------------

    async def metrics_projection(self, installation: str = "") -> MetricsProjection:
        return metrics_projection(await self._fetch(METRICS_READ, (installation,)))

    async def qualification_times(self, installation: str = "") -> tuple[int, ...]:
        return qualification_times(await self._fetch(QUALIFICATION_TIMES_READ, (installation,)))

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
        return await self._write(
            partial(_rebuild_projections, projection=projection, position=position)
        )

    # -- deferred answers -----------------------------------------------------------------

    async def pending_answers(self) -> list[PendingAnswer]:
        rows = await self._fetch(
            "SELECT key, conversation_id, delivery_id, payload, created_at_ms "
            "FROM pending_answers ORDER BY id"
        )
        return pending_answers(rows)

    async def settle_answer(self, key: str, items: Sequence[OutboxItem]) -> bool:
        rows = [_outbox_row(item) for item in items]
        return await self._write(partial(_settle_answer, key=key, rows=rows))

    # -- timers -------------------------------------------------------------------------

    async def schedule_timer(
        self, conversation_id: str, due_at_ms: int | None, version: int
    ) -> bool:
        return await self._write(
            partial(
                _schedule, conversation_id=conversation_id, due_at_ms=due_at_ms, version=version
            )
        )

    async def due_timers(self, now_ms: int, limit: int) -> list[str]:
        check_limit(limit)
        # The partial index `timers_due` holds only scheduled rows, in due order.
        rows = await self._fetch(
            "SELECT conversation_id FROM timers WHERE due_at_ms IS NOT NULL AND due_at_ms <= ? "
            "ORDER BY due_at_ms, conversation_id LIMIT ?",
            (now_ms, limit),
        )
        return [row[0] for row in rows]

    # -- erasure ------------------------------------------------------------------------

    async def erase(self, conversation_id: str, expected_version: int, event: EventEnvelope) -> int:
        check_events(conversation_id, expected_version, (event,))
        version = await self._write(
            _append_job(conversation_id, expected_version, (event,), erase=True)
        )
        # The key's old page may still sit in the write-ahead log: fold the log into the
        # file (where `secure_delete` zeroed it) and truncate it. Best effort: a reader
        # holding an old snapshot only delays it to the next checkpoint.
        with contextlib.suppress(StorageError):
            await self._outside(_checkpoint)
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


# -- the writer's jobs ------------------------------------------------------------------
# Module-level functions bound with `functools.partial` to plain data (as `_CommitJob` and
# `_PutState` are data classes): every job the writer runs pickles, so it could cross to a
# writer in a process of its own (issue 18).


def _append_job(
    conversation_id: str,
    expected_version: int,
    events: Sequence[EventEnvelope],
    *,
    erase: bool = False,
) -> partial[int]:
    """`_append` bound to checked events, made in the caller's task."""
    return partial(
        _append,
        conversation_id=conversation_id,
        expected_version=expected_version,
        span=_span(events),
        projected=_projected(events),
        rows=_event_rows(events),
        erase=erase,
    )


def _append(
    conn: Conn,
    *,
    conversation_id: str,
    expected_version: int,
    span: _Span | None,
    projected: tuple[Step, ...],
    rows: list[tuple[object, ...]],
    erase: bool,
) -> int:
    """Append if the stream is still at `expected_version`; return the new version. With
    `erase`, the conversation's key and its copies outside the chain go first (the erasure
    event is appended in the same transaction)."""
    (actual,) = _one(
        conn,
        "SELECT (SELECT version FROM streams WHERE conversation_id = ?)",
        (conversation_id,),
    )
    if (actual or 0) != expected_version:
        raise ConcurrencyError(conversation_id, expected_version, actual or 0)
    if erase:
        conn.execute("DELETE FROM conversation_keys WHERE conversation_id = ?", (conversation_id,))
        _redact_copies(conn, conversation_id)
    return _append_span(conn, conversation_id, expected_version, span, projected, rows)


def _put_policy(conn: Conn, *, version: str, canonical_json: str) -> None:
    conn.execute(
        "INSERT INTO policies (version, canonical_json) VALUES (?, ?) "
        "ON CONFLICT (version) DO NOTHING",
        (version, canonical_json),
    )
    stored = _one(conn, "SELECT canonical_json FROM policies WHERE version = ?", (version,))
    if stored[0] != canonical_json:
        raise ValueError(f"Policy {version} is stored already with a different text.")


def _put_state_if_absent(conn: Conn, *, key: str, text: str, at_ms: int) -> str:
    """The JSON stored under `key`: `text` unless something was there already."""
    conn.execute(
        "INSERT INTO adapter_state (key, value, updated_at_ms, schema_version, "
        "generator) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
        (key, text, at_ms, STATE_SCHEMA_VERSION, GENERATOR),
    )
    row = conn.execute("SELECT value FROM adapter_state WHERE key = ?", (key,)).fetchone()
    return str(row[0])


def _delete_state(conn: Conn, *, key: str) -> bool:
    cursor = conn.execute("DELETE FROM adapter_state WHERE key = ?", (key,))
    return cursor.rowcount == 1


def _delete_states_before(conn: Conn, *, prefix: str, end: str, before_ms: int, limit: int) -> int:
    """`delete_states_before` on the key range [`prefix`, `end`) its caller computed."""
    cursor = conn.execute(
        "DELETE FROM adapter_state WHERE key IN (SELECT key FROM adapter_state "
        "WHERE key >= ? AND key < ? AND substr(key, 1, ?) = ? AND updated_at_ms < ? "
        "LIMIT ?)",
        (prefix, end, len(prefix), prefix, before_ms, max(0, limit)),
    )
    return max(0, cursor.rowcount)


def _rebuild_projections(conn: Conn, *, projection: Projection, position: int) -> RebuildSummary:
    """`projection`, folded from a snapshot up to `position`, brought up to date and stored
    (in a copy: a job may be run again, `storage.sqlite_writer.Transaction`)."""
    # What was committed after the snapshot, folded under the write lock; then the rows are
    # swapped (always: they then all carry this generator).
    projection = projection.copy()
    for envelope in projected_events(conn, after_position=position):
        projection.apply(envelope.conversation_id, (envelope,))
    _, events = log_position(conn)
    changed = differences(stored_projection(conn), projection)
    changed += counter_differences(*stored_counters(conn), projection.facts)
    replace_all(conn, projection)
    return rebuild_summary(events, projection, changed)


def _settle_answer(conn: Conn, *, key: str, rows: list[tuple[object, ...]]) -> bool:
    cursor = conn.execute("DELETE FROM pending_answers WHERE key = ?", (key,))
    if cursor.rowcount != 1:
        return False
    _insert_outbox(conn, rows)
    return True


# -- SQL helpers ------------------------------------------------------------------------


def _schedule(conn: Conn, conversation_id: str, due_at_ms: int | None, version: int) -> bool:
    """Set the conversation's next timer unless the row holds a later version's."""
    cursor = conn.execute(
        "INSERT INTO timers (conversation_id, due_at_ms, version) VALUES (?, ?, ?) "
        "ON CONFLICT (conversation_id) DO UPDATE SET due_at_ms = excluded.due_at_ms, "
        "version = excluded.version WHERE excluded.version >= timers.version",
        (conversation_id, due_at_ms, version),
    )
    return cursor.rowcount == 1


class _Unread(enum.Enum):
    """A value a job has not read yet (a key, a previous link): read it where it is needed."""

    UNREAD = enum.auto()


UNREAD = _Unread.UNREAD

CommitStatus = Literal["committed", "duplicate"]


class _Span(NamedTuple):
    """What appending needs of a commit's events besides their rows: how many, the first's
    sequence number and time, the last's time."""

    events: int
    first_seq: int
    first_at_ms: int
    last_at_ms: int


def _span(events: Sequence[EventEnvelope]) -> _Span | None:
    if not events:
        return None
    return _Span(len(events), events[0].seq, events[0].at_ms, events[-1].at_ms)


def _projected(events: Sequence[EventEnvelope]) -> tuple[Step, ...]:
    """What the projections fold of the events (`apply_steps` reads nothing else)."""
    return fold_steps_of(events)


def _checkpoint(conn: Conn) -> None:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _append_span(
    conn: Conn,
    conversation_id: str,
    version: int,
    span: _Span | None,
    projected: Sequence[Step],
    rows: list[tuple[object, ...]],
    key: _Key | None = None,
    previous: str | _Unread | None = UNREAD,
) -> int:
    """Append the rows of checked events (`span`, and `projected`: what the projections fold
    of them) after `version`; return the new version. `key` is the commit's (its
    inbound is sealed with the same key read); `previous`, the link of the event at
    `version` when the caller has read it already."""
    if span is None:
        return version
    new_version = version + span.events
    conn.execute(
        "INSERT INTO streams (conversation_id, version, created_at_ms, updated_at_ms) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (conversation_id) DO UPDATE "
        "SET version = excluded.version, updated_at_ms = excluded.updated_at_ms",
        (conversation_id, new_version, span.first_at_ms, span.last_at_ms),
    )
    conn.executemany(
        "INSERT INTO events (conversation_id, seq, at_ms, policy_version, type, delivery_id, "
        "envelope, chain_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        _linked(
            conn,
            conversation_id,
            version,
            _sealed_rows(span, rows, key or _Key(conn, conversation_id)),
            previous,
        ),
    )
    apply_steps(conn, conversation_id, projected)  # the projections, in the same transaction
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


_NEWEST = "ORDER BY key_id DESC LIMIT 1"
_NEWEST_KEY = f"SELECT {{column}} FROM conversation_keys WHERE conversation_id = ? {_NEWEST}"
"""The conversation's newest key's `column` (`key_id` or `key`), as a subquery."""


def _conversation_key(
    conn: Conn, conversation_id: str, version: int, at_ms: int
) -> tuple[int, bytes]:
    """The key (and its id) the conversation's personal data is sealed with, created with
    its first sealed value at stream `version` (again after an erasure, under a new id:
    what arrives later is sealed with a new key)."""
    found = _one(
        conn,
        f"SELECT key_id, key FROM conversation_keys WHERE conversation_id = ? {_NEWEST}",
        (conversation_id,),
    )
    if found is not None:
        return int(found[0]), bytes(found[1])
    return _new_key(conn, conversation_id, version, at_ms)


def _new_key(conn: Conn, conversation_id: str, version: int, at_ms: int) -> tuple[int, bytes]:
    key = sealing.new_key()
    conn.execute(
        "INSERT INTO conversation_keys (conversation_id, key_id, key, created_at_ms) "
        "VALUES (?, ?, ?, ?)",
        (conversation_id, version, key, at_ms),
    )
    return version, key


class _Key:
    """One commit's sealer for its conversation: the key read once (by the commit's first
    look-up, or when a first value needs it) or made when a first value needs it, and used
    for the commit's events and its inbound alike. Never kept past the job: an erasure later
    in the same transaction deletes the key."""

    __slots__ = ("_conn", "_conversation_id", "_read", "_sealer")

    def __init__(
        self, conn: Conn, conversation_id: str, read: tuple[int, bytes] | _Unread | None = UNREAD
    ) -> None:
        self._conn = conn
        self._conversation_id = conversation_id
        # The key (id and bytes) when the job has read it already; None: there is none.
        self._read = read
        self._sealer: sealing.Sealer | None = None

    def sealer(self, version: int, at_ms: int) -> sealing.Sealer:
        """The sealer; the key is created at stream `version` if the conversation has none."""
        if self._sealer is None:
            read = self._read
            if read is UNREAD:
                key_id, key = _conversation_key(self._conn, self._conversation_id, version, at_ms)
            elif read is None:
                key_id, key = _new_key(self._conn, self._conversation_id, version, at_ms)
            else:
                key_id, key = read
            self._sealer = sealing.Sealer(key_id, key)
        return self._sealer


def _sealed_rows(
    span: _Span, rows: list[tuple[object, ...]], key: _Key
) -> list[tuple[object, ...]]:
    """`rows` with each masked event sealed under the conversation's key
    (`storage.sealing`)."""
    if not has_masked(rows):
        return rows
    sealer = key.sealer(span.first_seq, span.first_at_ms)
    return [sealed_row(row, sealer) for row in rows]


def _linked(
    conn: Conn,
    conversation_id: str,
    version: int,
    rows: list[tuple[object, ...]],
    previous: str | _Unread | None = UNREAD,
) -> list[tuple[object, ...]]:
    """`rows` with each event's link in its stream's hash chain (`domain.chain`), computed
    here, in the appending transaction, from the JSON about to be stored and the link of
    the event before (read under the write lock, so it is the one committed or written
    earlier in this batch). A stream whose previous event has no link (a store damaged by
    hand) gets none either: verification reports the first missing one."""
    if previous is UNREAD:
        previous = GENESIS
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


def _insert_answers(conn: Conn, rows: list[tuple[object, ...]]) -> None:
    if rows:
        conn.executemany(
            "INSERT INTO pending_answers (key, conversation_id, delivery_id, payload, "
            "created_at_ms, schema_version, generator) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO NOTHING",
            rows,
        )


@dataclass(frozen=True, slots=True)
class _CommitJob:
    """One commit as the writer runs it, made of plain data (the rows already serialised
    and their personal values masked, and what the projections fold of the events: steps,
    not event models, which cost 54 µs of a commit's 117 to pickle): a job that
    pickles, so it could cross to a writer in a process of its own, and one that costs little
    to pickle (a pickled `Commit` took 99 µs, docs/benchmarks.md, issue 18)."""

    conversation_id: str
    expected_version: int
    delivery_id: str
    received_at_ms: int
    policy_version: str
    inbound: str | sealing.Masked | None
    """Its JSON, or its masked form when it holds personal values (`sealing.inbound_form`)."""
    span: _Span | None
    projected: tuple[Step, ...]
    rows: list[tuple[object, ...]]
    outbox_rows: list[tuple[object, ...]]
    answer_rows: list[tuple[object, ...]]
    changes: list[TicketChange]
    timer: tuple[int | None] | None
    """The timer's due time, when the commit sets one (None inside: cleared)."""

    def __reduce__(self) -> tuple[type[_CommitJob], tuple[object, ...]]:
        # Its fields as a tuple, not through the dataclass's `__getstate__`.
        return (_CommitJob, tuple(getattr(self, name) for name in self.__slots__))

    def __call__(self, conn: Conn) -> tuple[CommitStatus, int]:
        conversation_id = self.conversation_id
        expected = self.expected_version
        # One read for everything the commit looks up before it writes: whether the
        # delivery is stored, the stream's version, the last inbound's position, the link
        # of the event it appends after, and the conversation's key (a statement each had
        # cost as much again).
        seen, version, position, previous, key_id, key_bytes = _one(
            conn,
            "SELECT (SELECT 1 FROM deliveries WHERE delivery_id = ?), "
            "(SELECT version FROM streams WHERE conversation_id = ?), "
            "(SELECT MAX(position) FROM inbounds WHERE conversation_id = ?), "
            "(SELECT chain_hash FROM events WHERE conversation_id = ? AND seq = ?), "
            f"({_NEWEST_KEY.format(column='key_id')}), ({_NEWEST_KEY.format(column='key')})",
            (self.delivery_id, *(conversation_id,) * 3, expected, *(conversation_id,) * 2),
        )
        version = version or 0
        if seen:
            return ("duplicate", version)
        if version != expected:
            raise ConcurrencyError(conversation_id, expected, version)
        key = _Key(conn, conversation_id, None if key_id is None else (key_id, bytes(key_bytes)))
        version = _append_span(
            conn,
            conversation_id,
            version,
            self.span,
            self.projected,
            self.rows,
            key,
            GENESIS if expected == 0 else previous,
        )
        inbound_json = self.inbound
        if isinstance(inbound_json, sealing.Masked):
            inbound_json = key.sealer(version, self.received_at_ms).event(inbound_json)
        conn.execute(
            "INSERT INTO deliveries (delivery_id, conversation_id, received_at_ms, "
            "committed_version) VALUES (?, ?, ?, ?)",
            (self.delivery_id, conversation_id, self.received_at_ms, version),
        )
        if inbound_json is not None:
            conn.execute(
                f"INSERT INTO inbounds ({_INBOUND_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    (position or 0) + 1,
                    self.delivery_id,
                    self.received_at_ms,
                    self.policy_version,
                    inbound_json,
                    GENERATOR,
                ),
            )
        _insert_outbox(conn, self.outbox_rows)
        for change in self.changes:
            _apply_ticket_change(conn, change)
        _insert_answers(conn, self.answer_rows)
        if self.timer is not None:
            _schedule(conn, conversation_id, self.timer[0], version)
        return ("committed", version)


@dataclass(frozen=True, slots=True)
class _PutState:
    """An adapter-state row written (its JSON made by the caller): a Teams conversation's
    reference at its first message, so a job of plain data like `_CommitJob`."""

    key: str
    text: str
    at_ms: int

    def __call__(self, conn: Conn) -> None:
        conn.execute(
            "INSERT INTO adapter_state (key, value, updated_at_ms, schema_version, "
            "generator) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
            "value = excluded.value, updated_at_ms = excluded.updated_at_ms, "
            "schema_version = excluded.schema_version, generator = excluded.generator",
            (self.key, self.text, self.at_ms, STATE_SCHEMA_VERSION, GENERATOR),
        )
