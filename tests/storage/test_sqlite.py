"""What only the SQLite store has to show: the file, its schema, its writer."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from domain import GENERATOR
from domain.policy import Policy
from storage.errors import ConcurrencyError, CorruptDatabaseError, SchemaTooNewError
from storage.ports import LEASE_EXPIRED, STATE_SCHEMA_VERSION, OutboxItem, TicketRow
from storage.sqlite import SqliteStore
from storage.sqlite_schema import APPLICATION_ID, SCHEMA_VERSION, migrate
from storage.sqlite_writer import WriterKind
from tests.storage.builders import NOW, Script, handoff_script, lead, message, opened_ticket

TABLES = {
    "conversation_keys",
    "streams",
    "events",
    "deliveries",
    "inbounds",
    "outbox",
    "outbox_owners",
    "tickets",
    "policies",
    "adapter_state",
    "projection_streams",
    "quote_index",
    "projection_counters",
    "projection_times",
    "pending_answers",
    "timers",
}


@pytest.fixture(params=["thread", "process"])
def writer(request: pytest.FixtureRequest) -> WriterKind:
    """Where the write connection lives: what only the writer decides is shown for both."""
    kind: WriterKind = request.param
    return kind


def pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'").fetchall()
    return {row[0] for row in rows} - {"sqlite_sequence"}


async def test_everything_committed_is_there_after_reopening_the_file(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    first, second = handoff_script(default_policy, "conv-1").commits
    key = opened_ticket(second).ticket_key
    async with await SqliteStore.open(path) as store:
        await store.put_policy(default_policy.version, default_policy.canonical_json())
        await store.commit(first)
        await store.commit(second)
        await store.claim_due(now_ms=NOW, limit=1, lease_ms=60_000)
    async with await SqliteStore.open(path) as store:
        assert await store.load("conv-1") == [*first.events, *second.events]
        assert [s.inbound for s in await store.inbounds("conv-1")] == [
            first.inbound,
            second.inbound,
        ]
        assert await store.get_policy(default_policy.version) == default_policy.canonical_json()
        ticket = await store.ticket(key)
        assert ticket is not None
        assert ticket.status == "open"
        leased = await store.outbox_item(first.outbox[0].key)
        assert leased is not None
        assert leased.status == "in_flight"
        assert await store.pending_count() == len(first.outbox) + len(second.outbox)
        # The outbox resumes: the lease of the sender that went away expires.
        resumed = await store.claim_due(now_ms=NOW + 60_000, limit=100, lease_ms=1000)
        assert resumed[0].key == first.outbox[0].key


async def test_the_dedupe_view_is_rebuilt_from_the_file_after_a_restart(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    first, second = handoff_script(default_policy, "conv-1").commits
    async with await SqliteStore.open(path) as store:
        await store.commit(first)
        await store.commit(second)
    async with await SqliteStore.open(path) as store:
        assert await store.recent(NOW) == {first.delivery_id, second.delivery_id}
        result = await store.commit(second)
        assert (result.status, result.version) == ("duplicate", await store.version("conv-1"))


async def test_an_empty_file_is_migrated_to_the_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "salesbot.db"
    path.touch()
    async with await SqliteStore.open(path):
        pass
    assert pragma(path, "user_version") == SCHEMA_VERSION
    assert pragma(path, "application_id") == APPLICATION_ID
    assert pragma(path, "journal_mode") == "wal"
    assert tables(path) == TABLES


@pytest.mark.parametrize("start", range(SCHEMA_VERSION))
async def test_a_database_at_an_earlier_schema_version_is_migrated_on_open(
    tmp_path: Path, start: int, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, path, target=start)
    finally:
        conn.close()
    first = handoff_script(default_policy, "conv-1").commits[0]
    async with await SqliteStore.open(path) as store:
        await store.commit(first)
    assert pragma(path, "user_version") == SCHEMA_VERSION
    async with await SqliteStore.open(path) as store:
        assert await store.load("conv-1") == list(first.events)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        # Only the key of (conversation_id, seq): nothing writes an index nothing reads.
        indexes = [row[1] for row in conn.execute("PRAGMA index_list(events)")]
    assert indexes == ["sqlite_autoindex_events_1"]


async def test_a_database_from_a_newer_salesbot_is_refused_and_left_alone(
    tmp_path: Path, writer: WriterKind
) -> None:
    path = tmp_path / "salesbot.db"
    async with await SqliteStore.open(path, writer=writer):
        pass
    newer = SCHEMA_VERSION + 1
    with contextlib.closing(sqlite3.connect(path)) as conn:  # closed: its log folded in
        conn.execute(f"PRAGMA user_version = {newer}")
    before = path.read_bytes()
    with pytest.raises(SchemaTooNewError) as caught:
        await SqliteStore.open(path, writer=writer)
    message_text = str(caught.value)
    assert f"schema version {newer}" in message_text
    assert f"up to {SCHEMA_VERSION}" in message_text
    assert str(path) in message_text
    assert path.read_bytes() == before


async def test_a_file_that_is_not_sqlite_is_refused_with_its_path(
    tmp_path: Path, writer: WriterKind
) -> None:
    path = tmp_path / "notes.db"
    path.write_text("These are my meeting notes, not a database.\n" * 50)
    with pytest.raises(CorruptDatabaseError, match="not a SQLite database") as caught:
        await SqliteStore.open(path, writer=writer)
    assert str(path) in str(caught.value)


async def test_another_applications_sqlite_file_is_refused(
    tmp_path: Path, writer: WriterKind
) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE contacts (name TEXT)")
    with pytest.raises(CorruptDatabaseError, match="no salesbot schema"):
        await SqliteStore.open(path, writer=writer)
    assert tables(path) == {"contacts"}


async def test_a_database_with_damaged_pages_fails_its_integrity_check(
    tmp_path: Path, default_policy: Policy, writer: WriterKind
) -> None:
    path = tmp_path / "salesbot.db"
    async with await SqliteStore.open(path, writer=writer) as store:
        for index in range(20):
            await store.commit(handoff_script(default_policy, f"conv-{index}").commits[0])
    page_size = int(str(pragma(path, "page_size")))
    assert pragma(path, "journal_mode") == "wal"
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * page_size
    data[3 * page_size : 6 * page_size] = b"\xa5" * (3 * page_size)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDatabaseError, match=str(path)):
        await SqliteStore.open(path, writer=writer)


async def test_two_hundred_concurrent_conversations_keep_their_order_through_one_writer(
    tmp_path: Path, default_policy: Policy, writer: WriterKind
) -> None:
    scripts = []
    for index in range(200):
        conversation = f"conv-{index:03}"
        script = Script(default_policy, conversation)
        script.then(lead(conversation, f"{conversation}/lead"))
        script.then(message(conversation, f"{conversation}/2", "We are a team of twelve"))
        scripts.append(script)

    async def converse(store: SqliteStore, script: Script) -> None:
        for commit in script.commits:  # in order inside a conversation
            assert (await store.commit(commit)).status == "committed"

    async with await SqliteStore.open(tmp_path / "salesbot.db", writer=writer) as store:
        await asyncio.gather(*(converse(store, script) for script in scripts))
        assert store.batches < 2 * len(scripts)  # commits shared transactions
        for script in scripts:
            events = await store.load(script.conversation_id)
            assert [env.seq for env in events] == list(range(1, len(events) + 1))
            assert events == [env for commit in script.commits for env in commit.events]
        assert len(await store.recent(0)) == 2 * len(scripts)


async def test_a_rejected_commit_in_a_batch_does_not_undo_the_others(
    tmp_path: Path, default_policy: Policy, writer: WriterKind
) -> None:
    first, second = handoff_script(default_policy, "conv-1").commits
    rival = second.model_copy(update={"delivery_id": "conv-1/rival"})
    other = handoff_script(default_policy, "conv-2").commits[0]
    async with await SqliteStore.open(tmp_path / "salesbot.db", writer=writer) as store:
        await store.commit(first)
        batches = store.batches
        results = await asyncio.gather(
            store.commit(second), store.commit(rival), store.commit(other), return_exceptions=True
        )
        assert store.batches == batches + 1  # all three were in one transaction
        assert [type(r).__name__ for r in results] == [
            "CommitResult",
            "ConcurrencyError",
            "CommitResult",
        ]
        assert isinstance(results[1], ConcurrencyError)
        assert not await store.seen(rival.delivery_id)
        assert await store.seen(second.delivery_id)
        assert await store.load("conv-2") == list(other.events)


async def test_closing_finishes_the_writes_already_submitted(
    tmp_path: Path, writer: WriterKind
) -> None:
    path = tmp_path / "salesbot.db"
    store = await SqliteStore.open(path, writer=writer)
    items = [
        OutboxItem(
            key=f"k{n}",
            conversation_id="conv-1",
            channel=f"ch-{n}",
            payload={"n": n},
            created_at_ms=n,
            available_at_ms=n,
        )
        for n in range(50)
    ]
    ticket = TicketRow(
        key="T-1", conversation_id="conv-1", kind="handoff", reason="r", opened_at_ms=1,
        updated_at_ms=1,
    )  # fmt: skip
    # gather starts its tasks in order: every write is queued before close() begins.
    await asyncio.gather(
        *(store.enqueue([item]) for item in items), store.open_ticket(ticket), store.close()
    )
    async with await SqliteStore.open(path, writer=writer) as reopened:
        assert await reopened.pending_count() == 50
        assert await reopened.ticket("T-1") == ticket


async def test_a_commit_that_fails_half_way_is_undone_alone(
    tmp_path: Path, default_policy: Policy, writer: WriterKind
) -> None:
    first = handoff_script(default_policy, "conv-1").commits[0]
    # SQLite cannot hold this integer: the job fails after its events, delivery and inbound
    # were inserted, so only the job's savepoint can take them back.
    too_late = first.outbox[-1].model_copy(update={"available_at_ms": 2**63})
    broken = first.model_copy(update={"outbox": (*first.outbox[:-1], too_late)})
    other = handoff_script(default_policy, "conv-2").commits[0]
    async with await SqliteStore.open(tmp_path / "salesbot.db", writer=writer) as store:
        results = await asyncio.gather(
            store.commit(broken), store.commit(other), return_exceptions=True
        )
        assert isinstance(results[0], OverflowError)
        assert store.batches == 1
        assert await store.version("conv-1") == 0
        assert not await store.seen(first.delivery_id)
        assert await store.inbounds("conv-1") == []
        assert await store.outbox_item(first.outbox[0].key) is None
        assert await store.load("conv-2") == list(other.events)


async def test_adapter_state_is_there_after_reopening_the_file_with_its_version_and_generator(
    tmp_path: Path,
) -> None:
    path = tmp_path / "salesbot.db"
    reference = {"conversation": {"id": "19:abc@thread.tacv2"}, "serviceUrl": "https://s/"}
    async with await SqliteStore.open(path) as store:
        await store.put_state("teams:ref:conv-1", reference, at_ms=NOW)
        await store.put_state("teams:card:T-1", {"activity_id": "a-1"}, at_ms=NOW)
        await store.put_state("teams:card:T-1", {"activity_id": "a-2"}, at_ms=NOW + 5)
        await store.put_state("teams:invoke:i-1", {"status": 200}, at_ms=NOW)
        assert await store.delete_state("teams:invoke:i-1")
    async with await SqliteStore.open(path) as store:
        assert await store.get_state("teams:ref:conv-1") == reference
        assert await store.get_state("teams:card:T-1") == {"activity_id": "a-2"}
        assert await store.get_state("teams:invoke:i-1") is None
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT updated_at_ms, schema_version, generator FROM adapter_state WHERE key = ?",
            ("teams:card:T-1",),
        ).fetchone()
    assert row == (NOW + 5, STATE_SCHEMA_VERSION, GENERATOR)


async def test_a_schema_1_database_keeps_its_data_and_gains_adapter_state_on_open(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, path, target=1)
        conn.execute(
            "INSERT INTO policies (version, canonical_json) VALUES (?, ?)",
            (default_policy.version, default_policy.canonical_json()),
        )
    finally:
        conn.close()
    assert "adapter_state" not in tables(path)
    async with await SqliteStore.open(path) as store:
        assert await store.get_policy(default_policy.version) == default_policy.canonical_json()
        await store.put_state("teams:ref:conv-1", {"id": "c-1"}, at_ms=NOW)
    assert pragma(path, "user_version") == SCHEMA_VERSION
    assert tables(path) == TABLES
    async with await SqliteStore.open(path) as store:
        assert await store.get_state("teams:ref:conv-1") == {"id": "c-1"}


async def test_adapter_state_is_written_by_the_one_writer_in_the_batch_of_a_commit(
    tmp_path: Path, default_policy: Policy
) -> None:
    first = handoff_script(default_policy, "conv-1").commits[0]
    async with await SqliteStore.open(tmp_path / "salesbot.db") as store:
        batches = store.batches
        await asyncio.gather(
            store.commit(first),
            store.put_state("teams:ref:conv-1", {"id": "c-1"}, at_ms=NOW),
            store.delete_state("never-stored"),
        )
        assert store.batches == batches + 1  # one transaction, one fsync, no second writer
        assert await store.load("conv-1") == list(first.events)
        assert await store.get_state("teams:ref:conv-1") == {"id": "c-1"}


async def test_a_lease_taken_before_owners_existed_is_claimable_at_once_after_the_upgrade(
    tmp_path: Path,
) -> None:
    path = tmp_path / "salesbot.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, path, target=2)  # the schema of the release before lease owners
        conn.execute(
            "INSERT INTO outbox (key, conversation_id, channel, payload, created_at_ms, "
            "available_at_ms, status, lease_until_ms) VALUES "
            "('k1', 'c', 'slack:C1', '{}', ?, ?, 'in_flight', ?), "
            "('k2', 'c', 'slack:C1', '{}', ?, ?, 'pending', NULL)",
            (NOW, NOW, NOW + 60_000, NOW, NOW),
        )
    finally:
        conn.close()
    async with await SqliteStore.open(path) as store:
        # The process that leased k1 was the previous release, stopped for this upgrade.
        resumed = await store.claim_due(now_ms=NOW + 1, limit=10, lease_ms=60_000, owner="new")
        assert [(i.key, i.last_error) for i in resumed] == [("k1", LEASE_EXPIRED), ("k2", None)]


async def test_owners_and_their_leases_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "salesbot.db"
    item = OutboxItem(
        key="k1", conversation_id="c", channel="slack:C1", payload={}, created_at_ms=0,
        available_at_ms=0,
    )  # fmt: skip
    async with await SqliteStore.open(path) as store:
        await store.heartbeat("boot-1", now_ms=NOW, alive_until_ms=NOW + 20_000, identity="slot-0")
        await store.enqueue([item])
        await store.claim_due(NOW, 10, 60_000, owner="boot-1")
    # Killed: nothing released. Another process (another slot) waits for the heartbeat...
    async with await SqliteStore.open(path) as store:
        await store.heartbeat(
            "other", now_ms=NOW + 1, alive_until_ms=NOW + 20_001, identity="slot-1"
        )
        assert await store.claim_due(NOW + 1, 10, 60_000, owner="other") == []
        # ...while the next boot of slot-0 takes over at once.
        assert await store.heartbeat(
            "boot-2", now_ms=NOW + 2, alive_until_ms=NOW + 20_002, identity="slot-0"
        ) == ["boot-1"]
        resumed = await store.claim_due(NOW + 2, 10, 60_000, owner="boot-2")
        assert [(i.key, i.lease_owner) for i in resumed] == [("k1", "boot-2")]
