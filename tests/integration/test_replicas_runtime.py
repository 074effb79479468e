"""Several processes deciding on one PostgreSQL (issue 17, item 2), at the runtime's level:
two runtimes, each on a store of its own (its own pool of connections), as two replicas
are. Races are staged, not hoped for: a store that lets the other replica commit just
before its own commit (`Interleaved`) makes the conflict happen every run.

The served processes behind a proxy are in `test_replicas.py`."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from pydantic import ValidationError

from bot.lanes import SharedStore, turn
from bot.logs import ContextFilter, JsonFormatter
from bot.outbox_worker import HEARTBEAT_EVERY_MS, OWNER_TTL_MS, OutboxWorker
from bot.runtime import IDLE_SWEEP, RETENTION_SWEEP, Runtime
from bot.service import outbox_timing
from bot.settings import Settings
from domain.events import Erased, EventEnvelope, ProspectMessageReceived
from storage.errors import ConcurrencyError
from storage.memory import MemoryStore
from storage.ports import Commit, CommitResult
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore
from tests.bot.test_runtime import POLICY, Clock, EverythingToOneChannel, message
from tests.storage.conftest import fresh_database, postgres_cluster  # noqa: F401
from tests.support.postgres import Cluster

CONFLICT = "moved on in another process"
DAY_MS = 24 * 3600 * 1000


class Interleaved(PostgresStore):
    """A replica's store that runs `before_commit` (another replica's work) just before
    each of its own commits and erasures: the other's commit lands between this one's
    read of the state and its write, every time."""

    before_commit: Callable[[], Awaitable[None]] | None = None

    async def _interleave(self) -> None:
        if self.before_commit is not None:
            await self.before_commit()

    async def commit(self, commit: Commit) -> CommitResult:
        await self._interleave()
        return await super().commit(commit)

    async def erase(self, conversation_id: str, expected_version: int, event: EventEnvelope) -> int:
        await self._interleave()
        return await super().erase(conversation_id, expected_version, event)


@pytest.fixture
async def dsn(postgres_cluster: Cluster) -> AsyncIterator[str]:  # noqa: F811
    async with fresh_database(postgres_cluster) as address:
        yield address


async def replica(store: PostgresStore, clock: Clock, *, decide_attempts: int = 5) -> Runtime:
    runtime = Runtime(
        store, POLICY, EverythingToOneChannel(), clock=clock, decide_attempts=decide_attempts
    )
    await runtime.start()
    return runtime


def said(events: list[EventEnvelope]) -> list[str]:
    return [e.event.text for e in events if isinstance(e.event, ProspectMessageReceived)]


def conflict_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if CONFLICT in r.getMessage()]


async def test_a_commit_refused_because_another_replica_committed_first_is_decided_again(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.runtime")
    caplog.handler.addFilter(ContextFilter())  # the bound ids, as the served process logs them
    clock = Clock()
    async with await Interleaved.open(dsn) as one, await PostgresStore.open(dsn) as two:
        first, second = await replica(one, clock), await replica(two, clock)
        await first.handle(message("Hello", "d1"))

        async def the_other_replica_answers() -> None:
            one.before_commit = None
            await second.handle(message("We have a $5000 budget", "d2"))

        one.before_commit = the_other_replica_answers
        result = await first.handle(message("I am the CTO of Acme", "d3"))

        assert result.status == "committed"
        events = await one.load("c1")
        # Nothing lost, nothing twice: d3 decided on the state after d2, in the order
        # the store took them.
        assert said(events) == ["Hello", "We have a $5000 budget", "I am the CTO of Acme"]
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert result.version == len(events)
        assert sorted([s.delivery_id async for s in one.all_inbounds()]) == ["d1", "d2", "d3"]
    # One line for the refusal: ids and versions, never what the prospect wrote.
    (line,) = conflict_lines(caplog)
    assert line.levelno == logging.INFO
    fields = line.__dict__["salesbot_fields"]
    assert fields["attempt"] == 1
    assert fields["kind"] == "message"
    assert fields["found_version"] > fields["expected_version"]
    written = json.loads(JsonFormatter().format(line))
    assert (written["conversation_id"], written["delivery_id"]) == ("c1", "d3")
    assert "CTO" not in json.dumps(written)
    assert "Acme" not in json.dumps(written)


async def test_the_retries_are_bounded_and_a_refused_inbound_is_not_acknowledged_as_stored(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.runtime")
    clock = Clock()
    async with await Interleaved.open(dsn) as one, await PostgresStore.open(dsn) as two:
        first = await replica(one, clock, decide_attempts=3)
        second = await replica(two, clock)
        await first.handle(message("Hello", "d1"))
        others = iter(range(100))

        async def another_replica_always_gets_there_first() -> None:
            await second.handle(message(f"And another thing {next(others)}", f"o{next(others)}"))

        one.before_commit = another_replica_always_gets_there_first
        with pytest.raises(ConcurrencyError):
            await first.handle(message("Are you still there?", "d2"))
        assert not await one.seen("d2")  # the adapter answers an error: the platform redelivers

        one.before_commit = None
        retried = await first.handle(message("Are you still there?", "d2"))
        assert retried.status == "committed"
        assert said(await one.load("c1")).count("Are you still there?") == 1
    lines = conflict_lines(caplog)
    assert [r.__dict__["salesbot_fields"]["attempt"] for r in lines] == [1, 2, 3]
    assert [r.levelno for r in lines] == [logging.INFO, logging.INFO, logging.WARNING]
    assert "giving up after 3 attempts" in lines[-1].getMessage()


async def test_a_cached_state_another_replica_moved_on_is_read_again_before_deciding(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.runtime")
    clock = Clock()
    async with await PostgresStore.open(dsn) as one, await PostgresStore.open(dsn) as two:
        first, second = await replica(one, clock), await replica(two, clock)
        await first.handle(message("Hello", "d1"))  # `first` caches the conversation
        await second.handle(message("We have a $5000 budget, I am the CTO", "d2"))

        # A reader on the first replica sees the second replica's commit ...
        state = await first.conversation("c1")
        assert state is not None
        assert state.version == await two.version("c1")
        assert "We have a $5000 budget, I am the CTO" in state.prospect_texts
        # ... and a decision there is made on it, not refused and made again.
        assert (await first.handle(message("next month works", "d3"))).status == "committed"
    assert conflict_lines(caplog) == []


async def test_the_same_delivery_handled_by_two_replicas_at_once_is_stored_and_replied_once(
    dsn: str,
) -> None:
    clock = Clock()
    async with await PostgresStore.open(dsn) as one, await PostgresStore.open(dsn) as two:
        first, second = await replica(one, clock), await replica(two, clock)
        inbounds = [message(f"Hello, this is prospect {n}", f"d{n}", f"c{n}") for n in range(12)]
        results = await asyncio.gather(
            *(r.handle(i) for i in inbounds for r in (first, second)), return_exceptions=True
        )
        statuses = [getattr(r, "status", repr(r)) for r in results]
        for pair in zip(statuses[::2], statuses[1::2], strict=True):
            assert sorted(pair) == ["committed", "duplicate"], pair
        conn = await asyncpg.connect(dsn)
        try:
            per_delivery = await conn.fetch(
                "SELECT delivery_id, COUNT(*) FROM inbounds GROUP BY delivery_id"
            )
            replies = await conn.fetch(
                "SELECT conversation_id, COUNT(*) FROM outbox GROUP BY conversation_id"
            )
        finally:
            await conn.close()
        assert sorted(count for _d, count in per_delivery) == [1] * 12
        # One greeting per conversation (the reply routed once), not one per replica.
        alone = MemoryStore()
        baseline = await replica_on(alone, clock).handle(inbounds[0])
        assert baseline.decision is not None
        assert {count for _c, count in replies} == {len(baseline.decision.replies)}


def replica_on(store: MemoryStore, clock: Clock) -> Runtime:
    return Runtime(store, POLICY, EverythingToOneChannel(), clock=clock)


async def test_one_replica_sweeps_at_a_time_and_the_turn_outlives_no_one(
    dsn: str,
    postgres_cluster: Cluster,  # noqa: F811
) -> None:
    clock = Clock()
    async with await PostgresStore.open(dsn) as one, await PostgresStore.open(dsn) as two:
        first, second = await replica(one, clock), await replica(two, clock)
        await first.handle(message("Hello", "d1", "quiet"))
        clock.ms += 8 * DAY_MS  # the conversation is due its abandonment

        async with one.turn(IDLE_SWEEP) as mine:
            assert mine
            # The second replica's tick finds the first one sweeping: it does nothing.
            assert await second.sweep_idle() == 0
            assert [e.event.type for e in await two.load("quiet")][-1] != ("conversation_abandoned")
            # Another sweep's turn, and the same sweep in another schema, are not held.
            async with two.turn(RETENTION_SWEEP) as other_kind:
                assert other_kind
            async with (
                fresh_database(postgres_cluster) as elsewhere,
                await PostgresStore.open(elsewhere) as other_schema,
                other_schema.turn(IDLE_SWEEP) as other_store,
            ):
                assert other_store
        # Released: the next tick of either replica sweeps, and only once.
        assert await second.sweep_idle() == 1
        assert await first.sweep_idle() == 0
        events = await one.load("quiet")
        assert [e.event.type for e in events].count("conversation_abandoned") == 1

        # A replica that dies while sweeping takes its turn with it.
        dying = await PostgresStore.open(dsn)
        held = dying.turn(IDLE_SWEEP)
        assert await held.__aenter__()
        async with two.turn(IDLE_SWEEP) as during:
            assert not during
        dying._pool.terminate()  # the process is gone: its connections with it
        for _ in range(500):
            async with two.turn(IDLE_SWEEP) as after:
                if after:
                    break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the dead replica's turn was never released")


async def test_an_erasure_is_refused_when_another_replica_committed_after_it_looked(
    dsn: str,
) -> None:
    clock = Clock()
    async with await Interleaved.open(dsn) as one, await PostgresStore.open(dsn) as two:
        first, second = await replica(one, clock), await replica(two, clock)
        await first.handle(message("Hello, I am Pat from Acme", "d1"))
        cutoff = clock() + 1

        async def the_prospect_writes_again_elsewhere() -> None:
            one.before_commit = None
            clock.ms += 1000
            await second.handle(message("Still interested!", "d2"))

        one.before_commit = the_prospect_writes_again_elsewhere
        # Retention looked at a conversation idle since before the cutoff; by the time it
        # erases, the prospect has written again through the other replica: kept.
        kept = await first.erase("c1", by="system", reason="retention", idle_before_ms=cutoff)
        assert kept is None
        events = await one.load("c1")
        assert not any(isinstance(e.event, Erased) for e in events)
        assert said(events) == ["Hello, I am Pat from Acme", "Still interested!"]


async def test_only_postgres_is_shared_and_on_the_embedded_stores_every_turn_is_theirs(
    tmp_path: Path, dsn: str
) -> None:
    async with await PostgresStore.open(dsn) as postgres:
        assert isinstance(postgres, SharedStore)
    async with await SqliteStore.open(tmp_path / "one.db") as sqlite:
        for store in (MemoryStore(), sqlite):
            assert not isinstance(store, SharedStore)
            async with turn(store, IDLE_SWEEP) as mine, turn(store, IDLE_SWEEP) as again:
                assert mine
                assert again


@pytest.mark.parametrize("lease_ms", [2_000, 3_000, 7_500, 20_000, 600_000])
def test_the_outbox_lease_setting_fits_a_heartbeat_and_a_whole_send_inside_the_lease(
    lease_ms: int,
) -> None:
    timing = outbox_timing(lease_ms)
    # The worker refuses timings under which a send could outlive its lease.
    OutboxWorker(
        MemoryStore(),
        lambda _channel: None,
        clock=Clock(),
        sleep=asyncio.sleep,
        rng=random.Random(0),
        pacing_ms=lambda _channel: 0,
        **timing,
    )
    assert timing["owner_ttl_ms"] == lease_ms
    assert timing["heartbeat_ms"] + timing["send_timeout_s"] * 1000 < lease_ms


def test_the_default_lease_keeps_the_worker_s_own_timing_and_a_tiny_one_is_refused() -> None:
    default = Settings().salesbot_outbox_lease_ms
    assert outbox_timing(default) == {
        "owner_ttl_ms": OWNER_TTL_MS,
        "heartbeat_ms": HEARTBEAT_EVERY_MS,
        "send_timeout_s": 10.0,
    }
    with pytest.raises(ValidationError, match="salesbot_outbox_lease_ms"):
        Settings(salesbot_outbox_lease_ms=500)
