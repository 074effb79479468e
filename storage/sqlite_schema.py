"""The SQLite schema and its migrations, versioned by `PRAGMA user_version`.

`MIGRATIONS[i]` takes a database from schema version `i` to `i + 1`. Opening a file runs
every migration it lacks in one `BEGIN IMMEDIATE` transaction (so two processes opening
one new file cannot both migrate it, and a crash mid-upgrade leaves the old version),
then stamps `user_version`. Migrations are append-only: never edit a released one; add
the next. A database with a higher `user_version` than `SCHEMA_VERSION` is refused, never
"downgraded". `application_id` marks the file as salesbot's, so another application's
SQLite file is refused instead of being migrated.

Each event row carries `chain_hash`, its link in its conversation's hash chain
(`domain.chain`), written in the transaction that appends it (migration 7 linked the events
stored before). An event's personal values are sealed with its conversation's key
(`conversation_keys`, migration 9; `storage.sealing`).

Tables are STRICT (a wrong type is an error, not a silent conversion); times are integer
epoch milliseconds; UNIQUE constraints carry the idempotency rules: one event per
`(conversation_id, seq)`, one row per delivery id, outbox key, ticket key, policy version,
adapter state key, and per `(conversation_id, position)` and delivery id for raw inbounds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from domain.chain import GENESIS, link
from storage.errors import SchemaTooNewError
from storage.sqlite_projections import (
    add_counters,
    add_quote_counts,
    create_and_fill,
    refold,
    scope_counters,
)

APPLICATION_ID = 0x53424F54  # "SBOT"

Migration = Callable[[sqlite3.Connection], None]
"""A step run inside the upgrade transaction; SQL-only steps use `_statements`, a step that
must transform data in Python can be any function of the connection."""


def _statements(*sql: str) -> Migration:
    def run(conn: sqlite3.Connection) -> None:
        for statement in sql:
            conn.execute(statement)

    return run


_V1 = _statements(
    # One row per conversation: its version (last seq) without scanning events, and the
    # order conversations started in.
    """
    CREATE TABLE streams (
        id              INTEGER PRIMARY KEY,
        conversation_id TEXT    NOT NULL UNIQUE,
        version         INTEGER NOT NULL CHECK (version >= 1),
        created_at_ms   INTEGER NOT NULL,
        updated_at_ms   INTEGER NOT NULL
    ) STRICT
    """,
    # The envelope JSON is the record (it carries schema_version and generator); the other
    # columns are copies for indexing and auditing with plain SQL. `position` is the
    # global append order.
    """
    CREATE TABLE events (
        position        INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT    NOT NULL REFERENCES streams (conversation_id),
        seq             INTEGER NOT NULL CHECK (seq >= 1),
        at_ms           INTEGER NOT NULL,
        policy_version  TEXT    NOT NULL,
        type            TEXT    NOT NULL,
        delivery_id     TEXT    NOT NULL,
        envelope        TEXT    NOT NULL,
        UNIQUE (conversation_id, seq)
    ) STRICT
    """,
    "CREATE INDEX events_by_delivery ON events (delivery_id)",
    "CREATE INDEX events_by_type ON events (type, at_ms)",
    """
    CREATE TABLE deliveries (
        delivery_id       TEXT    PRIMARY KEY,
        conversation_id   TEXT    NOT NULL,
        received_at_ms    INTEGER NOT NULL,
        committed_version INTEGER NOT NULL
    ) STRICT
    """,
    "CREATE INDEX deliveries_by_time ON deliveries (received_at_ms)",
    """
    CREATE TABLE inbounds (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT    NOT NULL,
        position        INTEGER NOT NULL CHECK (position >= 1),
        delivery_id     TEXT    NOT NULL UNIQUE REFERENCES deliveries (delivery_id),
        received_at_ms  INTEGER NOT NULL,
        policy_version  TEXT    NOT NULL,
        inbound         TEXT    NOT NULL,
        UNIQUE (conversation_id, position)
    ) STRICT
    """,
    """
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        key             TEXT    NOT NULL UNIQUE,
        conversation_id TEXT    NOT NULL,
        channel         TEXT    NOT NULL,
        payload         TEXT    NOT NULL,
        created_at_ms   INTEGER NOT NULL,
        available_at_ms INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        status          TEXT    NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'in_flight', 'sent', 'dead')),
        last_error      TEXT,
        remote_id       TEXT,
        lease_until_ms  INTEGER,
        sent_at_ms      INTEGER
    ) STRICT
    """,
    # Only unsent items are scanned by claim_due; sent ones pile up outside this index.
    """
    CREATE INDEX outbox_unsent ON outbox (channel, id)
        WHERE status IN ('pending', 'in_flight')
    """,
    "CREATE INDEX outbox_dead ON outbox (id) WHERE status = 'dead'",
    """
    CREATE TABLE tickets (
        key             TEXT    PRIMARY KEY,
        conversation_id TEXT    NOT NULL,
        kind            TEXT    NOT NULL CHECK (kind IN ('handoff', 'approval')),
        reason          TEXT    NOT NULL,
        status          TEXT    NOT NULL CHECK (status IN ('open', 'claimed', 'resolved')),
        claimed_by      TEXT,
        resolved_by     TEXT,
        quote_id        TEXT,
        opened_at_ms    INTEGER NOT NULL,
        updated_at_ms   INTEGER NOT NULL
    ) STRICT
    """,
    "CREATE INDEX tickets_unresolved ON tickets (opened_at_ms) WHERE status != 'resolved'",
    "CREATE INDEX tickets_by_conversation ON tickets (conversation_id)",
    """
    CREATE TABLE policies (
        version        TEXT PRIMARY KEY,
        canonical_json TEXT NOT NULL
    ) STRICT
    """,
)

_V2 = _statements(
    # Adapter state (`storage.ports.AdapterStateStore`): one JSON object per key, replaced
    # in place. `schema_version` and `generator` say which record format and which salesbot
    # wrote the row, as an event envelope does for events.
    """
    CREATE TABLE adapter_state (
        key            TEXT    PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 1024),
        value          TEXT    NOT NULL,
        updated_at_ms  INTEGER NOT NULL,
        schema_version INTEGER NOT NULL,
        generator      TEXT    NOT NULL
    ) STRICT
    """,
)

_V_OUTBOX_OWNERS = _statements(
    # Who holds each lease (`storage.ports.Outbox`): one owner per process boot. An owner
    # renews `alive_until_ms` while it runs; a lease whose owner has no live row here is
    # claimable at once (the owner stopped, was killed, or was replaced by its next boot),
    # instead of only when the lease itself runs out.
    """
    CREATE TABLE outbox_owners (
        owner          TEXT    PRIMARY KEY,
        identity       TEXT,
        started_at_ms  INTEGER NOT NULL,
        alive_until_ms INTEGER NOT NULL
    ) STRICT
    """,
    "CREATE INDEX outbox_owners_by_identity ON outbox_owners (identity)",
    "ALTER TABLE outbox ADD COLUMN lease_owner TEXT",
    # Leases taken before owners existed belong to no recorded owner: the process that
    # took them is the previous release, stopped for this upgrade, so they are claimable at
    # once (and looked up before resending) rather than after up to a minute.
    "UPDATE outbox SET lease_owner = 'before-owners' WHERE status = 'in_flight'",
    "CREATE INDEX outbox_by_lease_owner ON outbox (lease_owner) WHERE status = 'in_flight'",
)

_V_PROJECTIONS: Migration = create_and_fill
"""The projections `/metrics` and `/audit` read instead of the whole log (per-conversation
facts, the quote index) and the pending-answers table,
each row with its schema version and generator (`storage.sqlite_projections`). The
projections are filled from the events already stored, in this same transaction, so an
upgraded store answers `/metrics` at once. On a large log this takes about as long as
reading it once (the rows of the seven projected event types only)."""

_V_QUOTE_COUNTS: Migration = add_quote_counts
"""The quotes each conversation issued, revised under the same id and saw superseded, as
three columns of the per-conversation projection (row schema version 2), filled from the
log in the same transaction (`storage.sqlite_projections.add_quote_counts`)."""

_V_SEGMENT_MARKS: Migration = refold
"""Each conversation's lead source and starting policy as marks in its projection row (row
schema version 3; `storage.projections.SOURCE_MARK`, `POLICY_MARK`), folded again from the
log, for the `/metrics` chart's conversion by persona and by lead source."""

_V_COUNTERS: Migration = add_counters
"""The metrics' counters and counted qualification times, kept by the commit from now on
(row schema version 4; `storage.sqlite_projections.add_counters`): filled from the stored
per-conversation rows, so `/metrics` reads a few hundred rows however long the log."""

_V_INSTALLATIONS: Migration = scope_counters
"""The counters and counted qualification times keyed by installation (row schema version
5; `storage.sqlite_projections.scope_counters`): each installation's `/metrics` counts its
own conversations."""

_V_ARTIFACT_VERSIONS = _statements(
    # Ticket rows carry their format's version and the salesbot that last wrote them, as
    # events, adapter state and projection rows do; stored inbounds (whose JSON carries its
    # schema version) the salesbot that stored them. Rows from before say schema 1 (their
    # format is version 1) and no generator (unknown: NULL).
    "ALTER TABLE tickets ADD COLUMN schema_version INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE tickets ADD COLUMN generator TEXT",
    "ALTER TABLE inbounds ADD COLUMN generator TEXT",
)

CHAIN_PAGE = 1000
"""Events linked per step of the chain migration: one page is read, linked and written
before the next is read, so memory stays flat however large the log is."""


def fill_chain(
    conn: sqlite3.Connection,
    *,
    page: int = CHAIN_PAGE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Compute and store the link (`domain.chain`) of every event that has none, stream by
    stream in sequence order, from the bytes as stored; return how many were linked.

    Deterministic: the same events give the same links, whatever the page size, and a
    stream's links continue from its last linked event. The walk goes in the order of the
    `(conversation_id, seq)` index, a page at a time (keyset pagination: no OFFSET
    rescans); `progress` is told the running count after each page.
    """
    done = 0
    after: tuple[str, int] = ("", 0)
    stream: str | None = None
    previous = GENESIS
    while True:
        rows = conn.execute(
            "SELECT position, conversation_id, seq, envelope, chain_hash FROM events "
            "WHERE (conversation_id, seq) > (?, ?) ORDER BY conversation_id, seq LIMIT ?",
            (*after, page),
        ).fetchall()
        updates: list[tuple[str, int]] = []
        for position, conversation_id, _seq, envelope, stored in rows:
            if conversation_id != stream:
                stream, previous = conversation_id, GENESIS
            if stored is not None:
                previous = stored  # linked already (a second run): continue from it
                continue
            previous = link(previous, envelope)
            updates.append((previous, position))
        conn.executemany("UPDATE events SET chain_hash = ? WHERE position = ?", updates)
        done += len(updates)
        if progress is not None:
            progress(done)
        if len(rows) < page:
            return done
        after = (rows[-1][1], rows[-1][2])


def _v_event_chain(conn: sqlite3.Connection) -> None:
    """Every event gains its link in its stream's hash chain (`domain.chain`), computed
    for the events already stored in this same transaction, from their stored bytes.
    Events appended later are linked by the writer as it appends them."""
    conn.execute("ALTER TABLE events ADD COLUMN chain_hash TEXT")
    fill_chain(conn)


_V_EVENT_CHAIN: Migration = _v_event_chain

_V_TIMERS = _statements(
    # When each conversation's timers next decide something (`storage.ports.Timers`), so the
    # sweeper reads the due ones through `timers_due` instead of loading every conversation.
    # `version` is the stream version the time was computed at: an older computation never
    # overwrites a newer one. NULL `due_at_ms`: nothing due until the next inbound.
    """
    CREATE TABLE timers (
        conversation_id TEXT    PRIMARY KEY,
        due_at_ms       INTEGER,
        version         INTEGER NOT NULL CHECK (version >= 0)
    ) STRICT
    """,
    """
    CREATE INDEX timers_due ON timers (due_at_ms, conversation_id)
        WHERE due_at_ms IS NOT NULL
    """,
    # Conversations stored before: due at once, so the first sweep looks at each (as every
    # sweep did before) and schedules it from its state.
    "INSERT INTO timers (conversation_id, due_at_ms, version) "
    "SELECT conversation_id, 0, version FROM streams",
)

_V_CONVERSATION_KEYS = _statements(
    # The key each conversation's personal data is sealed with (`storage.sealing`): created
    # with the conversation's first sealed event or inbound (its id: the stream version then;
    # a conversation written to after an erasure gets a new one), deleted to erase it (crypto-
    # shredding; the store writes with `secure_delete` on, so the deleted key is overwritten,
    # and checkpoints the WAL after an erasure). Conversations stored before have no key:
    # their events stay as stored (README, "Personal data").
    """
    CREATE TABLE conversation_keys (
        conversation_id TEXT    NOT NULL,
        key_id          INTEGER NOT NULL CHECK (key_id >= 0),
        key             BLOB    NOT NULL CHECK (length(key) = 32),
        created_at_ms   INTEGER NOT NULL,
        PRIMARY KEY (conversation_id, key_id)
    ) STRICT
    """,
    # Retention (`[retention] erase_after_days`) looks for conversations idle since a time.
    "CREATE INDEX streams_by_activity ON streams (updated_at_ms)",
)

_V_LEAN_EVENTS = _statements(
    # Two indexes of the events no statement reads, dropped: each event appended wrote a
    # leaf of each (a message's events are of 6 to 8 types, so one leaf of `events_by_type`
    # per type), about 8 of the 27 pages a commit wrote to the write-ahead log. The
    # projections' rebuild, the one reader by type, reads the primary key's range of
    # positions instead (SQLite had read every event of each type through the index and
    # sorted them). docs/benchmarks.md, issue 18: "the log a commit writes".
    "DROP INDEX IF EXISTS events_by_type",
    "DROP INDEX IF EXISTS events_by_delivery",
)

MIGRATIONS: tuple[Migration, ...] = (
    _V1,
    _V2,
    _V_OUTBOX_OWNERS,
    _V_PROJECTIONS,
    _V_QUOTE_COUNTS,
    _V_ARTIFACT_VERSIONS,
    _V_EVENT_CHAIN,
    _V_TIMERS,
    _V_CONVERSATION_KEYS,
    _V_SEGMENT_MARKS,
    _V_COUNTERS,
    _V_INSTALLATIONS,
    _V_LEAN_EVENTS,
)
SCHEMA_VERSION = len(MIGRATIONS)


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: str | Path, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to schema version `target` in one transaction; return the
    version found. `conn` must be in autocommit mode (`isolation_level=None`)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = user_version(conn)  # read again under the write lock
        if found > SCHEMA_VERSION:
            raise SchemaTooNewError(path, found, SCHEMA_VERSION)
        if found < target:
            for migration in MIGRATIONS[found:target]:
                migration(conn)
            # PRAGMA takes no parameters; both values are integers from this module.
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found
