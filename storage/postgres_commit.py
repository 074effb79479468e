"""A PostgreSQL commit in three statements inside its transaction, and the rows it writes
(`prepare`, `rows_after`, `write`: the same for a commit alone and for a group of them,
`storage.postgres_group`).

Why. A commit's cost on PostgreSQL is its round trips, more than its rows: each statement
is a message to the server and back, a parse-bind-execute there and a wake-up of the
event loop here (docs/benchmarks_postgres.md). A commit of a prospect's message sent
twelve: BEGIN, the delivery, the stream's row, the link and the key, the events, the
projection's row read and written, its counters, counted times and the inbound, COMMIT,
and the pool's reset, then the outbox, tickets, answers and timer when it had them. It now
sends BEGIN, `claim`, `read_before`, `write`, COMMIT (and its ticket changes when it has
them). A key made for a first sealed value is written with the rows.

The order of the rules is kept, statement by statement:

1. `claim`: the delivery's row first (its primary key is the dedupe: a concurrent commit
   of the same delivery waits here, then finds it taken), and, only if it was inserted,
   the stream's row moved from the expected version (an update that waits for a
   concurrent writer of the stream, then finds its version moved) or, for a new stream,
   inserted (one that waits, then conflicts). One statement: the stream's step reads the
   delivery's outcome (`EXISTS (SELECT FROM d)`), so a duplicate moves nothing.
2. `read_before`, a statement of its own after it, so its snapshot is taken once this
   transaction holds the stream's row and sees the last committed event: that event's
   link, the conversation's newest key, and the projection's row, locked (`FOR UPDATE`,
   as a rebuild's lock requires: `storage.postgres_projections`).
3. `write`: the events (their links and sealing computed here in between), the
   projection's row, its counters and counted times, new quote ids, the inbound, the
   replies queued in the outbox, pending answers and the conversation's timer, as
   data-modifying parts of one statement. The counters are written before the counted
   times: every transaction takes those shared rows in one order, as one statement each
   had (`storage.postgres_projections` on lock order). PostgreSQL runs the parts of a
   statement that nothing reads in an order it does not promise (here: the last first),
   so the times' part reads the counters' output, which makes it finish them first
   (`tests/storage/test_postgres.py` holds the counters locked while the times wait).

A commit without events keeps its delivery insert and its stream's check
(`storage.postgres._take_delivery`), then writes its inbound and the rest with `write`.

The rows are the ones the statements they replace wrote, value for value: the events in
the order given (`WITH ORDINALITY`, so their positions increase as before), each table's
columns from the same conversions (`storage.sql_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, cast

from domain import GENERATOR
from domain.chain import GENESIS, link
from domain.events import EventEnvelope
from storage import sealing
from storage._rules import TicketChange, check_events, dumps, ticket_changes
from storage.ports import Commit
from storage.postgres_pool import Conn
from storage.projections import (
    NO_FACTS,
    PROJECTION_SCHEMA_VERSION,
    StreamChange,
    StreamFacts,
    advance,
    is_projected,
)
from storage.sql_rows import (
    FACT_COLUMNS,
    OUTBOX_COLUMNS,
    answer_row,
    change_rows,
    event_rows,
    fact_values,
    facts_from_row,
    has_masked,
    outbox_row,
    sealed_row,
)

_VERSIONS = (PROJECTION_SCHEMA_VERSION, GENERATOR)

_DELIVERY = (
    "WITH d AS (INSERT INTO deliveries (delivery_id, conversation_id, received_at_ms, "
    "committed_version) VALUES ($1, $2, $3, $4) ON CONFLICT (delivery_id) DO NOTHING "
    "RETURNING 1), "
)
_CLAIM_NEXT = (
    _DELIVERY + "s AS (UPDATE streams SET version = $4, updated_at_ms = $6 "
    "WHERE conversation_id = $2 AND version = $5 AND EXISTS (SELECT FROM d) RETURNING 1) "
    "SELECT EXISTS (SELECT FROM d), EXISTS (SELECT FROM s)"
)
"""The delivery, then the stream moved from version $5 to $4 (`_advance`'s update)."""
_CLAIM_FIRST = (
    _DELIVERY + "s AS (INSERT INTO streams (conversation_id, version, created_at_ms, "
    "updated_at_ms) SELECT $2::text, $4::bigint, $5::bigint, $6::bigint "
    "WHERE EXISTS (SELECT FROM d) ON CONFLICT (conversation_id) DO NOTHING RETURNING 1) "
    "SELECT EXISTS (SELECT FROM d), EXISTS (SELECT FROM s)"
)
"""The delivery, then a new stream's first row (`_advance`'s insert); $5 its first event's
time."""


async def claim(
    conn: Conn,
    delivery_id: str,
    conversation_id: str,
    received_at_ms: int,
    expected: int,
    new_version: int,
    first_at_ms: int,
    last_at_ms: int,
) -> tuple[bool, bool]:
    """Insert the delivery and move the stream from `expected` to `new_version`:
    (whether the delivery was new, whether the stream moved). Nothing moves for a
    delivery already stored."""
    if expected == 0:
        sql, fifth = _CLAIM_FIRST, first_at_ms
    else:
        sql, fifth = _CLAIM_NEXT, expected
    row = await conn.fetchrow(
        sql, delivery_id, conversation_id, received_at_ms, new_version, fifth, last_at_ms
    )
    assert row is not None  # a SELECT without FROM returns its one row
    return bool(row[0]), bool(row[1])


class Before(NamedTuple):
    """What an append reads under the stream's lock."""

    previous: str | None
    """The link of the event appended after (`GENESIS` for a new stream; None: that event
    has none, in a store damaged by hand)."""
    key: tuple[int, bytes] | None
    """The conversation's newest key; None: it has none."""
    facts: StreamFacts
    """The projection's row (`NO_FACTS` when it has none, or when not asked for)."""


_READ = (
    "SELECT (SELECT chain_hash FROM events WHERE conversation_id = u.c0 AND seq = u.c1), "
    "k.key_id, k.key, p.conversation_id, "
    + ", ".join(f"p.{c}" for c in FACT_COLUMNS.split(", "))
    + " FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS u(c0, c1, o) "
    "LEFT JOIN LATERAL (SELECT key_id, key FROM conversation_keys "
    "WHERE conversation_id = u.c0 ORDER BY key_id DESC LIMIT 1) AS k ON true "
    f"LEFT JOIN LATERAL (SELECT conversation_id, {FACT_COLUMNS} FROM projection_streams "
    "WHERE conversation_id = u.c0 FOR UPDATE) AS p ON true ORDER BY u.o"
)
"""For each conversation and version: the link of the event at that version, the newest
key, and the projection's row, locked."""


async def read_before(conn: Conn, streams: Sequence[tuple[str, int]]) -> list[Before]:
    """What the appends to `streams` (conversation id, the version appended after) read,
    in one statement, in their order."""
    rows = await conn.fetch(_READ, [c for c, _ in streams], [v for _, v in streams])
    befores = []
    for (_conversation_id, version), row in zip(streams, rows, strict=True):
        values = tuple(row)
        befores.append(
            Before(
                previous=GENESIS if version == 0 else values[0],
                key=None if values[1] is None else (int(values[1]), bytes(values[2])),
                facts=NO_FACTS if values[3] is None else facts_from_row(values[4:]),
            )
        )
    return befores


class Prepared(NamedTuple):
    """A commit as the rows it writes, made before any statement is sent (none of them
    needs the database): what a single commit and a group of them start from."""

    commit: Commit
    events: list[tuple[object, ...]]
    """`storage.sql_rows.event_rows`: personal values masked, not yet sealed or linked."""
    projected: list[EventEnvelope]
    outbox: list[tuple[object, ...]]
    answers: list[tuple[object, ...]]
    tickets: list[TicketChange]
    new_version: int


def prepare(commit: Commit) -> Prepared:
    """Check the commit's events (`ValueError` for ones that do not follow its expected
    version) and make its rows."""
    check_events(commit.conversation_id, commit.expected_version, commit.events)
    return Prepared(
        commit=commit,
        events=event_rows(commit.events),
        projected=[envelope for envelope in commit.events if is_projected(envelope)],
        outbox=[outbox_row(item) for item in commit.outbox],
        answers=[answer_row(answer) for answer in commit.answers],
        tickets=ticket_changes(commit),
        new_version=commit.expected_version + len(commit.events),
    )


class CommitKey:
    """One commit's sealer: the conversation's newest key as read under the stream's
    lock, or, when it has none, one made for the commit's first sealed value (at that
    value's version) and written with the commit's rows (`Group.keys`)."""

    __slots__ = ("_conversation_id", "_read", "_sealer", "made")

    def __init__(self, conversation_id: str, read: tuple[int, bytes] | None) -> None:
        self._conversation_id = conversation_id
        self._read = read
        self._sealer: sealing.Sealer | None = None
        self.made: tuple[str, int, bytes, int] | None = None

    def sealer(self, version: int, at_ms: int) -> sealing.Sealer:
        if self._sealer is None:
            read = self._read
            if read is None:
                read = (version, sealing.new_key())
                self.made = (self._conversation_id, version, read[1], at_ms)
            self._sealer = sealing.Sealer(*read)
        return self._sealer


def rows_after(prepared: Prepared, before: Before, key: CommitKey) -> Rows:
    """The commit's rows once its stream is held: its events (`appended`), its inbound
    sealed, its outbox, answers and timer."""
    commit = prepared.commit
    rows = appended(
        commit.conversation_id, commit.events, prepared.events, prepared.projected, before, key
    )
    return rows._replace(
        inbound=inbound_row(prepared, key),
        outbox=prepared.outbox,
        answers=prepared.answers,
        timer=None if commit.timer is None else (commit.timer.due_at_ms, prepared.new_version),
    )


def appended(
    conversation_id: str,
    envelopes: Sequence[EventEnvelope],
    rows: list[tuple[object, ...]],
    projected: Sequence[EventEnvelope],
    before: Before,
    key: CommitKey,
) -> Rows:
    """Events appended after `before` (`rows`: their `event_rows`): sealed with `key`
    (a key made for them at the first one's version), linked after `before.previous`, and
    `projected` folded into the projection's row."""
    if has_masked(rows):
        first = envelopes[0]
        sealer = key.sealer(first.seq, first.at_ms)
        rows = [sealed_row(row, sealer) for row in rows]
    return Rows(
        conversation_id=conversation_id,
        events=linked(rows, before.previous),
        change=advance(before.facts, projected) if projected else None,
        inbound=None,
        outbox=(),
        answers=(),
        timer=None,
    )


def made(key: CommitKey) -> Group:
    """What one commit writes beside its rows: the key it made, if it made one."""
    return Group(moves=(), keys=() if key.made is None else (key.made,), undone=())


def inbound_row(prepared: Prepared, key: CommitKey) -> tuple[object, ...] | None:
    """The commit's inbound as `Rows.inbound`, its personal values sealed with `key` (a
    key made for it is made at the commit's new version)."""
    commit = prepared.commit
    inbound = commit.inbound
    if inbound is None:
        return None
    if sealing.has_personal_inbound(inbound):
        sealer = key.sealer(prepared.new_version, commit.received_at_ms)
        text = dumps(sealer.inbound(inbound, commit.conversation_id))
    else:
        text = dumps(inbound)
    return (commit.delivery_id, commit.received_at_ms, commit.policy_version, text)


def linked(rows: list[tuple[object, ...]], previous: str | None) -> list[tuple[object, ...]]:
    """`rows` with each event's link in its stream's hash chain after `previous` (None:
    the event before has none, in a store damaged by hand, so neither do these)."""
    result = []
    for row in rows:
        previous = None if previous is None else link(previous, str(row[6]))
        result.append((*row, previous))
    return result


class _Statement:
    """One statement's parts and arguments, numbered as they are added."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.args: list[object] = []

    def arg(self, value: object, cast: str) -> str:
        self.args.append(value)
        return f"${len(self.args)}::{cast}"

    def columns(self, rows: Sequence[Sequence[object]], casts: Sequence[str]) -> str:
        """`rows`, column by column, as arrays unnested in their order (`u`: c0, c1, …;
        `o`: the row's ordinal)."""
        arrays = ", ".join(
            self.arg([row[i] for row in rows], f"{cast}[]") for i, cast in enumerate(casts)
        )
        names = ", ".join(f"c{i}" for i in range(len(casts)))
        return f"unnest({arrays}) WITH ORDINALITY AS u({names}, o)"

    def insert(
        self,
        name: str,
        into: str,
        rows: Sequence[Sequence[object]],
        casts: Sequence[str],
        then: str = "",
        where: str = "true",
    ) -> None:
        """A part `name` inserting `rows` into `into` ("table (columns)") in their order,
        `then` after it (`ON CONFLICT …`, `RETURNING …`); nothing when `rows` is empty."""
        if rows:
            source = self.columns(rows, casts)
            self.parts.append(
                f"{name} AS (INSERT INTO {into} SELECT {_selected(len(casts))} FROM {source} "
                f"WHERE {where} ORDER BY o{then})"
            )


_EVENT_CASTS = ("text", "bigint", "bigint", "text", "text", "text", "text", "text")
_COUNTER_CASTS = ("text", "text", "text", "bigint", "bigint", "bigint", "text")
_TIME_CASTS = ("text", "bigint", "bigint", "bigint", "bigint", "text")
_FACT_CASTS = (
    *("bigint", "bigint", "bigint", "text", "text", "text", "text", "bigint", "bigint", "bigint"),
    *("bigint", "text"),  # the row's versions
)


def _selected(count: int) -> str:
    return ", ".join(f"c{i}" for i in range(count))


class Rows(NamedTuple):
    """Everything `write` writes for one commit."""

    conversation_id: str
    events: Sequence[Sequence[object]]
    """The event rows, sealed and linked (`storage.sql_rows.event_rows`, then the link)."""
    change: StreamChange | None
    """What the events change in the projections (None: no event is projected)."""
    inbound: Sequence[object] | None
    """Delivery id, received at, policy version and JSON; its position follows the
    conversation's last."""
    outbox: Sequence[Sequence[object]]
    """`storage.sql_rows.outbox_row`s, in the order they are to be sent."""
    answers: Sequence[Sequence[object]]
    """`storage.sql_rows.answer_row`s."""
    timer: tuple[int | None, int] | None
    """The conversation's next timer (its due time, None: cleared) at its version."""


class Group(NamedTuple):
    """What a group of commits (`storage.postgres_group`) writes beside their `Rows`."""

    moves: Sequence[tuple[str, int, int]]
    """Streams moved: conversation id, new version, last event's time (their rows are
    held by the group's transaction already)."""
    keys: Sequence[tuple[str, int, bytes, int]]
    """New sealing keys: conversation id, key id, key, created at."""
    undone: Sequence[str]
    """Delivery ids the group inserted for commits that then failed their check."""


NO_GROUP = Group(moves=(), keys=(), undone=())

_OUTBOX_CASTS = (
    *("text", "text", "text", "text", "bigint", "bigint", "bigint"),
    *("text", "text", "text", "bigint", "bigint", "text"),
)
_ANSWER_CASTS = ("text", "text", "text", "text", "bigint", "bigint", "text")
_INBOUND_CASTS = ("text", "text", "bigint", "text", "text")
_TIMER_CASTS = ("text", "bigint", "bigint")


async def write(conn: Conn, commits: Sequence[Rows], group: Group = NO_GROUP) -> None:
    """Write the rows of `commits` (in their order: the events' and the outbox's positions
    follow it) in one statement; nothing when there is nothing to write."""
    statement = _Statement()
    parts = statement.parts
    if group.undone:
        undone = statement.arg(list(group.undone), "text[]")
        parts.append(f"g AS (DELETE FROM deliveries WHERE delivery_id = ANY({undone}))")
    if group.moves:
        moves = statement.columns(group.moves, ("text", "bigint", "bigint"))
        parts.append(
            "m AS (UPDATE streams SET version = u.c1, updated_at_ms = u.c2 "
            f"FROM {moves} WHERE streams.conversation_id = u.c0)"
        )
    statement.insert(
        "k",
        "conversation_keys (conversation_id, key_id, key, created_at_ms)",
        group.keys,
        ("text", "bigint", "bytea", "bigint"),
    )
    statement.insert(
        "e",
        "events (conversation_id, seq, at_ms, policy_version, type, delivery_id, envelope, "
        "chain_hash)",
        [row for commit in commits for row in commit.events],
        _EVENT_CASTS,
    )
    _fold(statement, commits)
    inbounds = [(commit.conversation_id, *commit.inbound) for commit in commits if commit.inbound]
    if inbounds:
        rows = statement.columns(inbounds, _INBOUND_CASTS)
        parts.append(
            "i AS (INSERT INTO inbounds (conversation_id, position, delivery_id, "
            "received_at_ms, policy_version, inbound, generator) SELECT c0, "
            "COALESCE((SELECT MAX(position) FROM inbounds WHERE conversation_id = c0), 0) + 1, "
            f"c1, c2, c3, c4, {statement.arg(GENERATOR, 'text')} FROM {rows} ORDER BY o)"
        )
    statement.insert(
        "x",
        f"outbox ({OUTBOX_COLUMNS})",
        [row for commit in commits for row in commit.outbox],
        _OUTBOX_CASTS,
        " ON CONFLICT (key) DO NOTHING",
    )
    statement.insert(
        "a",
        "pending_answers (key, conversation_id, delivery_id, payload, created_at_ms, "
        "schema_version, generator)",
        [row for commit in commits for row in commit.answers],
        _ANSWER_CASTS,
        " ON CONFLICT (key) DO NOTHING",
    )
    statement.insert(
        "r",
        "timers (conversation_id, due_at_ms, version)",
        [(c.conversation_id, *c.timer) for c in commits if c.timer is not None],
        _TIMER_CASTS,
        " ON CONFLICT (conversation_id) DO UPDATE SET due_at_ms = excluded.due_at_ms, "
        "version = excluded.version WHERE excluded.version >= timers.version",
    )
    if parts:
        await conn.execute(f"WITH {', '.join(parts)} SELECT 1", *statement.args)


_FACTS = [*FACT_COLUMNS.split(", "), "schema_version", "generator"]


def _fold(statement: _Statement, commits: Sequence[Rows]) -> None:
    """The projections' rows written, then the counters, then the counted times (see the
    module's docstring on their order), and new quote ids. Each counter (and counted
    time) is one row of the statement, its commits' deltas added up: an upsert may not
    touch a row twice."""
    changes = [(c.conversation_id, c.change) for c in commits if c.change is not None]
    facts = [
        (conversation_id, *fact_values(change.after), *_VERSIONS)
        for conversation_id, change in changes
        if change.changed
    ]
    updates = ", ".join(f"{c} = excluded.{c}" for c in _FACTS)
    statement.insert(
        "f",
        f"projection_streams (conversation_id, {', '.join(_FACTS)})",
        facts,
        ("text", *_FACT_CASTS),
        f" ON CONFLICT (conversation_id) DO UPDATE SET {updates}",
    )
    counters: dict[tuple[object, ...], int] = {}
    times: dict[tuple[object, ...], int] = {}
    for conversation_id, change in changes:
        if change.changed:
            counter_rows, time_rows = change_rows(conversation_id, change)
            for row in counter_rows:
                counters[row[:4]] = counters.get(row[:4], 0) + cast(int, row[4])
            for row in time_rows:
                times[row[:3]] = times.get(row[:3], 0) + cast(int, row[3])
    statement.insert(
        "c",
        "projection_counters (installation, kind, name, shard, value, schema_version, generator)",
        [(*key, delta, *_VERSIONS) for key, delta in sorted(counters.items())],
        _COUNTER_CASTS,
        " ON CONFLICT (installation, kind, name, shard) DO UPDATE SET "
        "value = projection_counters.value + excluded.value, "
        "generator = excluded.generator RETURNING 1",
    )
    statement.insert(
        "t",
        "projection_times (installation, level, bucket, n, schema_version, generator)",
        [(*key, delta, *_VERSIONS) for key, delta in sorted(times.items())],
        _TIME_CASTS,
        " ON CONFLICT (installation, level, bucket) DO UPDATE SET "
        "n = projection_times.n + excluded.n, generator = excluded.generator",
        where="(SELECT count(*) FROM c) >= 0" if counters else "true",
    )
    statement.insert(
        "q",
        "quote_index (quote_id, conversation_id, schema_version, generator)",
        [
            (quote_id, conversation_id, *_VERSIONS)
            for conversation_id, change in changes
            for quote_id in change.quotes
        ],
        ("text", "text", "bigint", "text"),
        " ON CONFLICT (quote_id) DO NOTHING",
    )
