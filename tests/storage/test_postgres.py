"""PostgreSQL beyond the contract suite (issue 17, items 1–2): what two processes sharing
one database may do at once — commit the same delivery, commit at the same expected
version, claim the same outbox — each with a store of its own (its own pool), as two
replicas would; the schema's migrations from an empty database; and how `SALESBOT_DB`
selects PostgreSQL and reports a database it cannot use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import pytest

from bot.bootstrap import open_store
from bot.queries import load_metrics
from bot.settings import Settings
from domain.chain import GENESIS, link
from domain.policy import Policy
from storage import postgres_turns
from storage.errors import (
    ConcurrencyError,
    CorruptDatabaseError,
    SchemaTooNewError,
    StorageError,
)
from storage.ports import Commit, CommitResult, OutboxItem
from storage.postgres import PostgresStore
from storage.postgres_schema import SCHEMA_VERSION, migrate
from storage.projections import PROJECTION_SCHEMA_VERSION, shard_of
from tests.storage.builders import Script, handoff_script, lead, message
from tests.storage.conftest import fresh_database
from tests.storage.scripted import SalesDay, recomputed
from tests.storage.test_contract import outbox_item
from tests.storage.test_projections import assert_same_metrics
from tests.support.cli import run as run_cli
from tests.support.postgres import Cluster

T = TypeVar("T")
PROJECTION_TABLES = (
    "projection_streams",
    "quote_index",
    "projection_counters",
    "projection_times",
)


@pytest.fixture
async def dsn(postgres_cluster: Cluster) -> AsyncIterator[str]:
    async with fresh_database(postgres_cluster) as address:
        yield address


async def held_back(
    dsn: str,
    table: str,
    racers: Sequence[Callable[[], Awaitable[T]]],
    transactions: int | None = None,
) -> list[T | BaseException]:
    """Run `racers` at once, all held back on a lock of `table` until every one of them
    waits for it (`transactions` of them, when a store groups its racers' commits), then
    let them go together: a race that is really run every time."""
    holder = await asyncpg.connect(dsn)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        tasks = [asyncio.ensure_future(racer()) for racer in racers]
        for _ in range(2000):
            waiting = await holder.fetchval(
                "SELECT COUNT(*) FROM pg_locks WHERE NOT granted AND relation = $1::regclass",
                table,
            )
            if waiting >= (len(racers) if transactions is None else transactions):
                break
            await asyncio.sleep(0.005)
        else:
            raise AssertionError(f"the racers never all waited for {table}")
        await transaction.rollback()
        return list(await asyncio.gather(*tasks, return_exceptions=True))
    finally:
        await holder.close()


async def test_the_same_delivery_committed_by_two_processes_at_once_is_stored_once(
    dsn: str, default_policy: Policy
) -> None:
    commit = handoff_script(default_policy, "conv-1").commits[0]
    async with await PostgresStore.open(dsn) as one, await PostgresStore.open(dsn) as two:
        results = await held_back(
            dsn, "deliveries", [lambda: one.commit(commit), lambda: two.commit(commit)]
        )
        assert sorted(results, key=str) == sorted(
            [
                CommitResult(status="committed", version=len(commit.events)),
                CommitResult(status="duplicate", version=len(commit.events)),
            ],
            key=str,
        )
        assert await one.load("conv-1") == list(commit.events)
        assert [i.delivery_id for i in await two.inbounds("conv-1")] == [commit.delivery_id]
        keys = [item.key for item in commit.outbox]
        assert [await one.outbox_item(key) is not None for key in keys] == [True] * len(keys)
        assert await one.pending_count() == len(keys) + len(commit.answers)


async def test_two_processes_at_the_same_expected_version_one_wins_and_nothing_is_lost(
    dsn: str, default_policy: Policy
) -> None:
    first, second = handoff_script(default_policy, "conv-1").commits[:2]
    rival = second.model_copy(update={"delivery_id": "rival"})
    async with await PostgresStore.open(dsn) as one, await PostgresStore.open(dsn) as two:
        await one.commit(first)
        results = await held_back(
            dsn, "streams", [lambda: one.commit(second), lambda: two.commit(rival)]
        )
        won = [r for r in results if isinstance(r, CommitResult)]
        lost = [r for r in results if isinstance(r, ConcurrencyError)]
        assert len(won) == 1, results
        assert len(lost) == 1, results
        version = len(first.events) + len(second.events)
        assert won[0] == CommitResult(status="committed", version=version)
        assert (lost[0].expected, lost[0].actual) == (len(first.events), version)
        assert await two.version("conv-1") == version
        # The loser left nothing: one delivery of the two, one chain without a fork.
        assert [await one.seen(d) for d in ("rival", second.delivery_id)].count(True) == 1
        stored = await one.stored_events("conv-1")
        assert [link_.seq for link_ in stored] == list(range(1, version + 1))
        previous = GENESIS
        for link_ in stored:
            previous = link(previous, link_.envelope)
            assert link_.chain_hash == previous


def statements_sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement any connection sends from now on (each is a round trip)."""
    sent: list[str] = []
    for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
        method = getattr(asyncpg.connection.Connection, name)

        def counted(self: Any, query: str, *args: Any, _method: Any = method, **kw: Any) -> Any:
            sent.append(" ".join(query.split()))
            return _method(self, query, *args, **kw)

        monkeypatch.setattr(asyncpg.connection.Connection, name, counted)
    return sent


async def test_a_commit_of_a_message_sends_five_statements_and_no_reset(
    dsn: str, default_policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script(default_policy, "conv-1")
    first = script.then(lead("conv-1", "conv-1/lead"))
    second = script.then(message("conv-1", "conv-1/budget", "We have a $5000 budget"))
    assert second.outbox, "the bot replies"
    sent = statements_sent(monkeypatch)
    async with await PostgresStore.open(dsn) as store:
        await store.commit(first)
        sent.clear()
        await store.commit(second)
        # BEGIN; the delivery and the stream's row; the link, key and projection's row;
        # every row written; COMMIT. The pool sends nothing when it takes it back.
        assert [q.split(" (")[0] for q in sent] == [
            "BEGIN;",
            "WITH d AS",
            "SELECT",
            "WITH e AS",
            "COMMIT;",
        ], sent
        for read in ("chain_hash", "conversation_keys", "projection_streams", "FOR UPDATE"):
            assert read in sent[2], sent[2]
        for table in ("events", "projection_streams", "projection_counters", "inbounds", "outbox"):
            assert f"INSERT INTO {table} " in sent[3], table
        assert not any("pg_advisory_unlock_all" in q for q in sent)
    async with await PostgresStore.open(dsn) as store:
        stored = await store.stored_events("conv-1")
        assert await store.load("conv-1") == [*first.events, *second.events]
        queued = [*first.outbox, *second.outbox]
        for item in queued:
            assert await store.outbox_item(item.key) == item
        due = await store.claim_due(second.received_at_ms + 10**9, 100, 1000, per_channel=100)
        assert [item.key for item in due] == [item.key for item in queued]
        inbounds = await store.inbounds("conv-1")
        assert [i.delivery_id for i in inbounds] == [first.delivery_id, second.delivery_id]
        assert [i.inbound for i in inbounds] == [first.inbound, second.inbound]
    previous = GENESIS
    for link_ in stored:
        previous = link(previous, link_.envelope)
        assert link_.chain_hash == previous


async def test_a_commit_takes_its_counters_before_it_waits_for_the_counted_times(
    dsn: str, default_policy: Policy
) -> None:
    """Counters and counted times are rows every replica shares: each transaction must
    take them in one order (counters, then times) or two could deadlock. With the times
    held by another transaction, a qualifying commit already holds its counters while it
    waits for them."""
    one, two = one_shard(2)
    async with await PostgresStore.open(dsn) as store:
        hot = "We need 40 seats by next month, budget approved, I decide"
        first = Script(default_policy, one).then(lead(one, f"{one}/lead", hot))
        assert (await store.commit(first)).status == "committed"
        holder = await asyncpg.connect(dsn)
        prober = await asyncpg.connect(dsn)
        try:
            held = holder.transaction()
            await held.start()
            times = await holder.fetch("SELECT level FROM projection_times FOR UPDATE")
            assert times, "the first lead qualified: it counted its time"
            second = Script(default_policy, two).then(lead(two, f"{two}/lead", hot))
            committing = asyncio.ensure_future(store.commit(second))
            for _ in range(2000):
                waiting = await prober.fetchval("SELECT COUNT(*) FROM pg_locks WHERE NOT granted")
                if waiting:
                    break
                await asyncio.sleep(0.005)
            else:
                raise AssertionError("the commit never waited for the counted times")
            with pytest.raises(asyncpg.LockNotAvailableError):
                await prober.fetch(
                    "SELECT 1 FROM projection_counters WHERE shard = $1 FOR UPDATE NOWAIT",
                    shard_of(two),
                )
            await held.rollback()
            assert (await committing).status == "committed"
        finally:
            await holder.close()
            await prober.close()
        metrics = await load_metrics(store, default_policy)
        assert_same_metrics(metrics, await recomputed(store, default_policy))


async def not_released(conn: object, kind: str) -> bool:
    return False


async def cancelled_while_releasing(conn: object, kind: str) -> bool:
    raise asyncio.CancelledError


@pytest.mark.parametrize("release", [not_released, cancelled_while_releasing])
async def test_a_turn_that_cannot_be_released_ends_its_session_and_frees_the_turn(
    dsn: str, monkeypatch: pytest.MonkeyPatch, release: Callable[..., Awaitable[bool]]
) -> None:
    """The pool resets nothing when it takes a connection back: a turn whose release
    fails, or is cancelled, must not stay held by an idle pooled connection."""
    async with await PostgresStore.open(dsn) as one, await PostgresStore.open(dsn) as two:
        with monkeypatch.context() as patched, contextlib.suppress(asyncio.CancelledError):
            patched.setattr(postgres_turns, "_unlocked", release)
            async with one.turn("sweep") as mine:
                assert mine
                async with two.turn("sweep") as theirs:
                    assert not theirs
        for _ in range(500):  # the server ends the session once it sees the socket close
            async with two.turn("sweep") as theirs:
                if theirs:
                    break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the turn stayed held after its connection was given back")
        async with one.turn("sweep") as again:  # the pool replaced the closed connection
            assert again


async def test_a_new_conversation_started_by_two_processes_at_once_is_started_once(
    dsn: str, default_policy: Policy
) -> None:
    first = handoff_script(default_policy, "conv-1").commits[0]
    rival = first.model_copy(update={"delivery_id": "rival"})
    async with await PostgresStore.open(dsn) as one, await PostgresStore.open(dsn) as two:
        results = await held_back(
            dsn, "streams", [lambda: one.commit(first), lambda: two.commit(rival)]
        )
    assert sorted(type(r).__name__ for r in results) == ["CommitResult", "ConcurrencyError"]


def one_shard(count: int) -> list[str]:
    """`count` conversation ids whose counters live in one shard (`SHARDS`)."""
    ids = (f"conv-{i}" for i in range(10_000))
    shard = shard_of("conv-0")
    return [cid for cid in ids if shard_of(cid) == shard][:count]


async def test_replicas_committing_conversations_of_one_shard_at_once_are_all_counted(
    dsn: str, default_policy: Policy
) -> None:
    """Four commits from two processes, all moving the same counter rows (one shard), held
    back and let go together: each process groups its two commits into one transaction,
    each transaction waits for the row locks it needs, none deadlocks, and the counters
    say what the log says."""
    conversations = one_shard(4)
    scripts = [handoff_script(default_policy, cid) for cid in conversations]
    async with await PostgresStore.open(dsn) as one, await PostgresStore.open(dsn) as two:
        results = await held_back(
            dsn,
            "projection_counters",
            [
                lambda store=store, script=script: store.commit(script.commits[0])  # type: ignore[misc]
                for store, script in zip((one, two, one, two), scripts, strict=True)
            ],
            transactions=2,
        )
        assert [getattr(r, "status", r) for r in results] == ["committed"] * 4
        assert (one._group.groups, two._group.groups) == (1, 1)
        metrics = await load_metrics(two, default_policy)
        assert metrics.conversations == 4
        assert_same_metrics(metrics, await recomputed(one, default_policy))
        assert (await one.rebuild_projections()).changed == 0
        assert_same_metrics(await load_metrics(one, default_policy), metrics)


async def downgrade_to_schema_1(dsn: str) -> None:
    """What a database of the release before the counters looks like: schema version 1,
    no counters, projection rows of version 3."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "DROP TABLE projection_counters; DROP TABLE projection_times; "
            "DROP INDEX projection_streams_by_schema; "
            "DELETE FROM schema_version WHERE version > 1; "
            "UPDATE projection_streams SET schema_version = 3; "
            "UPDATE quote_index SET schema_version = 3"
        )
    finally:
        await conn.close()


async def downgrade_to_schema_2(dsn: str) -> None:
    """What a database of the release before installations looks like: schema version 2,
    the counters and counted times without an installation (as that release wrote them),
    projection rows of version 4."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "ALTER TABLE projection_counters RENAME TO counters_now; "
            "ALTER TABLE projection_times RENAME TO times_now; "
            "CREATE TABLE projection_counters (kind text NOT NULL, name text NOT NULL, "
            "shard bigint NOT NULL CHECK (shard >= 0), value bigint NOT NULL, "
            "schema_version bigint NOT NULL, generator text NOT NULL, "
            "PRIMARY KEY (kind, name, shard)); "
            "CREATE TABLE projection_times (level bigint NOT NULL CHECK (level >= 0), "
            "bucket bigint NOT NULL, n bigint NOT NULL, schema_version bigint NOT NULL, "
            "generator text NOT NULL, PRIMARY KEY (level, bucket)); "
            "INSERT INTO projection_counters SELECT kind, name, shard, value, 4, generator "
            "FROM counters_now; "
            "INSERT INTO projection_times SELECT level, bucket, n, 4, generator FROM times_now; "
            "DROP TABLE counters_now; DROP TABLE times_now; "
            "DELETE FROM schema_version WHERE version > 2; "
            "UPDATE projection_streams SET schema_version = 4; "
            "UPDATE quote_index SET schema_version = 4"
        )
    finally:
        await conn.close()


async def downgrade_to_schema_3(dsn: str) -> None:
    """What a database of the release before the lean events looks like: schema version 3,
    the events indexed by type and by delivery id."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE INDEX events_by_delivery ON events (delivery_id); "
            "CREATE INDEX events_by_type ON events (type, at_ms); "
            "DELETE FROM schema_version WHERE version > 3"
        )
    finally:
        await conn.close()


DOWNGRADES = {1: downgrade_to_schema_1, 2: downgrade_to_schema_2, 3: downgrade_to_schema_3}


@pytest.mark.parametrize("start", range(SCHEMA_VERSION))
async def test_a_database_at_every_earlier_schema_version_is_migrated_with_its_metrics(
    dsn: str, default_policy: Policy, start: int
) -> None:
    if start == 0:
        conn = await asyncpg.connect(dsn)
        try:
            assert await migrate(conn, "test", target=0) == 0
        finally:
            await conn.close()
    else:
        assert start in DOWNGRADES  # add a downgrade here with the next migration
        async with await PostgresStore.open(dsn) as store:
            day = SalesDay(store, default_policy)
            await day.start()
            await day.run(conversations=8)
        await DOWNGRADES[start](dsn)
    async with await PostgresStore.open(dsn) as store:
        expected = await recomputed(store, default_policy)
        assert_same_metrics(await load_metrics(store, default_policy), expected)
        kept = await store.metrics_projection()
        assert (await store.rebuild_projections()).changed == 0
        assert await store.metrics_projection() == kept
        await store.commit(handoff_script(default_policy, "after").commits[0])
        assert_same_metrics(
            await load_metrics(store, default_policy), await recomputed(store, default_policy)
        )
    conn = await asyncpg.connect(dsn)
    try:
        for table in PROJECTION_TABLES:
            versions = await conn.fetch(f"SELECT DISTINCT schema_version FROM {table}")
            assert {row[0] for row in versions} <= {PROJECTION_SCHEMA_VERSION}, table
        assert await conn.fetchval("SELECT MAX(version) FROM schema_version") == SCHEMA_VERSION
        assert await event_indexes(conn) == {"events_pkey", "events_conversation_id_seq_key"}
    finally:
        await conn.close()


async def event_indexes(conn: asyncpg.Connection[Any]) -> set[str]:
    rows = await conn.fetch(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'events' "
        "AND schemaname = current_schema()"
    )
    return {row[0] for row in rows}


async def test_two_processes_claiming_one_outbox_never_get_the_same_item_nor_overtake(
    dsn: str,
) -> None:
    items = [
        outbox_item(f"{channel}-{n}", f"slack:{channel}")
        for n in range(12)
        for channel in ("A", "B", "C", "D", "E")
    ]
    async with await PostgresStore.open(dsn) as one, await PostgresStore.open(dsn) as two:
        await one.enqueue(items)
        await one.heartbeat("one", 0, 10**12)
        await two.heartbeat("two", 0, 10**12)
        claimed: dict[str, list[OutboxItem]] = {"one": [], "two": []}

        async def sender(store: PostgresStore, owner: str) -> None:
            # Claim, send what was claimed in order, claim again, until nothing is left.
            while batch := await store.claim_due(0, 3, 10**9, owner=owner, per_channel=2):
                claimed[owner].extend(batch)
                for item in batch:
                    assert await store.mark_sent(item.key, 1)

        await asyncio.gather(*(sender(one, "one") for _ in range(3)), sender(two, "two"))
        everything = claimed["one"] + claimed["two"]
        assert sorted(item.key for item in everything) == sorted(item.key for item in items)
        assert await one.pending_count() == 0
        sent = await one.sent_items("slack:", 1000)
        for channel in "ABCDE":
            in_order = [item.key for item in sent if item.channel == f"slack:{channel}"]
            assert in_order == [f"{channel}-{n}" for n in range(12)]


async def test_a_claim_racing_another_takes_nothing_the_other_holds(dsn: str) -> None:
    async with await PostgresStore.open(dsn) as one, await PostgresStore.open(dsn) as two:
        await one.enqueue([outbox_item(f"{c}-{n}", f"slack:{c}") for c in "AB" for n in range(3)])
        # Both owners alive: a lease of an owner without a heartbeat is claimable at once.
        await one.heartbeat("one", 0, 10**12)
        await two.heartbeat("two", 0, 10**12)
        results = await held_back(
            dsn,
            "outbox",
            [
                lambda: one.claim_due(0, 10, 10**9, owner="one"),
                lambda: two.claim_due(0, 10, 10**9, owner="two"),
            ],
        )
        batches = [r for r in results if isinstance(r, list)]
        assert len(batches) == 2
        raced = [item.key for batch in batches for item in batch]
        # Depending on how the two lock the rows, a channel's later items may be left to a
        # later claim (neither may overtake a head the other holds): send what was taken and
        # claim again until nothing is left. Nothing is taken twice, nothing is lost.
        keys = list(raced)
        while True:
            for key in keys:
                await one.mark_sent(key, 1)
            rest = [item.key for item in await one.claim_due(0, 10, 10**9, owner="one")]
            if not rest:
                break
            keys = rest
            raced.extend(rest)
    assert len(raced) == len(set(raced))
    assert sorted(raced) == sorted(f"{c}-{n}" for c in "AB" for n in range(3))


# -- the schema ---------------------------------------------------------------------------


async def test_an_empty_database_is_migrated_once_to_the_current_schema(dsn: str) -> None:
    async with await PostgresStore.open(dsn):
        pass
    async with await PostgresStore.open(dsn):
        pass
    conn = await asyncpg.connect(dsn)
    try:
        versions = [row[0] for row in await conn.fetch("SELECT version FROM schema_version")]
        types = {
            (row[0], row[1]): row[2]
            for row in await conn.fetch(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema()"
            )
        }
    finally:
        await conn.close()
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    # Events keep the exact text their chain links; times and counts are integers.
    assert types["events", "envelope"] == "text"
    assert types["events", "at_ms"] == "bigint"
    assert types["outbox", "payload"] == "text"
    assert types["conversation_keys", "key"] == "bytea"
    assert not [column for column, kind in types.items() if kind in ("jsonb", "json")]
    assert not [c for c, kind in types.items() if c[1].endswith("_ms") and kind != "bigint"]


async def test_two_processes_opening_one_empty_database_at_once_both_get_one_schema(
    dsn: str,
) -> None:
    stores = await asyncio.gather(PostgresStore.open(dsn), PostgresStore.open(dsn))
    for store in stores:
        assert await store.version("nobody") == 0
        await store.close()


async def test_a_database_from_a_newer_salesbot_is_refused(dsn: str) -> None:
    async with await PostgresStore.open(dsn):
        pass
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO schema_version VALUES ($1, 0, 'salesbot from the future')",
            SCHEMA_VERSION + 1,
        )
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNewError) as refused:
        await PostgresStore.open(dsn)
    assert refused.value.found == SCHEMA_VERSION + 1


async def test_a_database_holding_another_applications_tables_is_refused(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE customers (id integer)")
    finally:
        await conn.close()
    with pytest.raises(CorruptDatabaseError, match="no salesbot schema"):
        await PostgresStore.open(dsn)


# -- selecting it -----------------------------------------------------------------------


async def test_a_postgresql_url_in_salesbot_db_opens_postgresql_and_a_path_sqlite(
    dsn: str, tmp_path: object
) -> None:
    async with open_store(Settings(salesbot_db=dsn)) as store:
        assert isinstance(store, PostgresStore)
    async with open_store(Settings(salesbot_db=str(tmp_path) + "/salesbot.db")) as store:
        assert type(store).__name__ == "SqliteStore"


@pytest.mark.parametrize(
    "address",
    [
        "postgresql://salesbot@127.0.0.1:1/salesbot",  # nothing listens on port 1
        "postgresql://salesbot@127.0.0.1:notaport/salesbot",
    ],
)
def test_a_database_that_cannot_be_reached_is_one_line_naming_it(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESBOT_DB", address)
    code, _out, err = run_cli("replay")
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith("salesbot: error: ")
    assert "Traceback" not in err
    assert "127.0.0.1" in err


def test_a_missing_database_and_a_password_are_reported_without_the_password(
    postgres_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = postgres_cluster.dsn.replace("salesbot@", "salesbot:s3cret@")
    monkeypatch.setenv("SALESBOT_DB", address.rsplit("/", 1)[0] + "/no_such_database")
    code, _out, err = run_cli("replay")
    assert code == 2
    assert err.count("\n") == 1, err
    assert "no_such_database" in err
    assert "s3cret" not in err


async def test_a_closed_store_refuses_and_says_so_in_storage_terms(dsn: str) -> None:
    store = await PostgresStore.open(dsn)
    await store.close()
    with pytest.raises(StorageError, match="closed"):
        await store.commit(
            Commit(
                conversation_id="c",
                expected_version=0,
                delivery_id="d",
                received_at_ms=0,
                policy_version="p",
                inbound=None,
            )
        )
