"""Commits grouped across conversations on PostgreSQL (`storage.postgres_group`): a group
writes what its commits write alone, each commit of a group answers as it would alone,
and a group that fails is written again commit by commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest

from domain.chain import GENESIS, link
from domain.policy import Policy
from storage import postgres_commit, postgres_group
from storage.errors import ConcurrencyError, StorageError
from storage.ports import Commit, CommitResult
from storage.postgres import PostgresStore
from storage.postgres_projections import stored_counters
from tests.storage.builders import Script, handoff_script, lead, message
from tests.storage.conftest import fresh_database
from tests.storage.test_postgres import one_shard
from tests.support.postgres import Cluster

HOT = "We need 40 seats by next month, budget approved, I decide"


@pytest.fixture
async def stores(postgres_cluster: Cluster) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    async with (
        fresh_database(postgres_cluster) as one,
        fresh_database(postgres_cluster) as two,
        await PostgresStore.open(one) as grouped,
        await PostgresStore.open(two) as alone,
    ):
        yield grouped, alone


def scripts(policy: Policy, count: int) -> list[list[Commit]]:
    """Conversations of three kinds: a hand-off with a ticket, a hot lead that qualifies
    (counted times) and writes its name and budget (sealed), a warm lead. All of one
    counters' shard: a group adds several commits' deltas to each counter row."""
    result = []
    for index, conversation_id in enumerate(one_shard(count)):
        if index % 3 == 0:
            result.append(handoff_script(policy, conversation_id).commits)
            continue
        script = Script(policy, conversation_id)
        script.then(
            lead(conversation_id, f"{conversation_id}/lead", HOT if index % 3 == 1 else "Hi")
        )
        script.then(
            message(conversation_id, f"{conversation_id}/2", "I am Pat, our budget is $5000")
        )
        script.then(message(conversation_id, f"{conversation_id}/3", "Can you send a quote?"))
        result.append(script.commits)
    return result


async def committed_at_once(store: PostgresStore, commits: Sequence[Commit]) -> list[Any]:
    return list(await asyncio.gather(*(store.commit(c) for c in commits), return_exceptions=True))


async def contents(store: PostgresStore, conversation_ids: Sequence[str]) -> dict[str, Any]:
    """What a reader of the store sees: events, inbounds, queued replies, projections,
    counters (everything but the random nonces inside sealed bytes)."""
    seen: dict[str, Any] = {}
    for conversation_id in conversation_ids:
        links = await store.stored_events(conversation_id)
        previous = GENESIS
        for stored in links:
            previous = link(previous, stored.envelope)
            assert stored.chain_hash == previous, conversation_id
        seen[conversation_id] = (
            await store.load(conversation_id),
            [(i.position, i.delivery_id, i.inbound) for i in await store.inbounds(conversation_id)],
        )
    due = await store.claim_due(2**62, 10_000, 1000, per_channel=10_000)
    seen["outbox"] = sorted(((i.key, i.channel, i.payload) for i in due), key=lambda i: i[0])
    seen["metrics"] = await store.metrics_projection()
    async with store._pool.acquire() as conn:
        seen["counters"] = await stored_counters(conn)
    return seen


async def test_a_group_writes_what_its_commits_write_alone(
    stores: tuple[PostgresStore, PostgresStore], default_policy: Policy
) -> None:
    grouped, alone = stores
    conversations = scripts(default_policy, 9)
    for step in range(3):
        commits = [script[step] for script in conversations if step < len(script)]
        results = await committed_at_once(grouped, commits)
        assert [getattr(r, "status", r) for r in results] == ["committed"] * len(commits)
        for commit in commits:
            assert (await alone.commit(commit)).status == "committed"
    assert grouped._group.groups == 3  # one transaction a step, each of several commits
    assert alone._group.groups == 0
    ids = [script[0].conversation_id for script in conversations]
    assert await contents(grouped, ids) == await contents(alone, ids)
    assert (await grouped.rebuild_projections()).changed == 0


async def test_each_commit_of_a_group_answers_as_it_would_alone(
    stores: tuple[PostgresStore, PostgresStore], default_policy: Policy
) -> None:
    store, _ = stores
    started, under_way, fresh = scripts(default_policy, 4)[1:]
    for commit in (started[0], under_way[0], under_way[1]):
        assert (await store.commit(commit)).status == "committed"
    again = under_way[1].model_copy(update={"delivery_id": "again"})  # its version is gone
    restarted = started[0].model_copy(update={"delivery_id": "restarted"})  # started already
    results = await committed_at_once(store, [started[0], again, restarted, fresh[0], started[1]])
    assert store._group.groups == 1
    version = len(started[0].events)
    duplicate, stale, conflict, first, second = results
    assert duplicate == CommitResult(status="duplicate", version=version)
    assert isinstance(stale, ConcurrencyError)
    actual = await store.version(again.conversation_id)
    assert (stale.expected, stale.actual) == (again.expected_version, actual)
    assert isinstance(conflict, ConcurrencyError)
    assert (conflict.expected, conflict.actual) == (0, version)
    assert first == CommitResult(status="committed", version=len(fresh[0].events))
    assert second.status == "committed"
    # The failed commits left nothing: their deliveries can be committed when re-decided.
    assert not await store.seen("again")
    assert not await store.seen("restarted")
    assert await store.load(started[0].conversation_id) == [*started[0].events, *started[1].events]


async def test_a_group_that_fails_is_written_commit_by_commit(
    stores: tuple[PostgresStore, PostgresStore],
    default_policy: Policy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, _ = stores
    write = postgres_commit.write
    failures: list[bool] = []

    async def failing_once(*args: Any, **kwargs: Any) -> None:
        await write(*args, **kwargs)  # written, then lost with its transaction
        if not failures:
            failures.append(True)
            raise StorageError("the group's write failed")

    monkeypatch.setattr(postgres_group, "write", failing_once)
    conversations = scripts(default_policy, 4)
    commits = [script[0] for script in conversations]
    results = await committed_at_once(store, commits)
    assert [getattr(r, "status", r) for r in results] == ["committed"] * 4
    assert failures
    assert store._group.groups == 0
    for script in conversations:
        assert await store.load(script[0].conversation_id) == list(script[0].events)
    later = await committed_at_once(store, [script[1] for script in conversations])
    assert [getattr(r, "status", r) for r in later] == ["committed"] * 4
    assert store._group.groups == 1


async def test_a_commit_whose_caller_gave_up_before_its_turn_is_not_written(
    stores: tuple[PostgresStore, PostgresStore], default_policy: Policy
) -> None:
    store, _ = stores
    kept, dropped = (script[0] for script in scripts(default_policy, 2))
    waiting = asyncio.ensure_future(store.commit(dropped))
    answered = asyncio.ensure_future(store.commit(kept))
    await asyncio.sleep(0)  # both queued; the writer starts at the next turn
    waiting.cancel()
    assert (await answered).status == "committed"
    await store._group.idle()
    assert waiting.cancelled()
    assert await store.seen(kept.delivery_id)
    assert not await store.seen(dropped.delivery_id)


async def waiting_for_locks(conn: asyncpg.Connection[Any], count: int) -> None:
    """Return once `count` lock requests wait on the server."""
    for _ in range(2000):
        if await conn.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted") >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{count} lock requests never waited")


async def test_two_replicas_groups_on_the_same_conversations_lock_them_in_one_order(
    postgres_cluster: Cluster, default_policy: Policy
) -> None:
    """Two processes each group rival commits to the same four conversations, queued in
    opposite orders. The last conversation's stream is held by a third transaction: the
    second process's group takes the first three and waits for it; the first process's
    group then waits for the first. Released, the second group commits and the first's
    commits find their versions moved — no deadlock (which would abort a group: its
    commits would then be written alone). Taken in queue order instead, the second group
    would wait for the last conversation first, the first group would take the other three,
    and each would wait for the other."""
    conversations = scripts(default_policy, 4)
    async with (
        fresh_database(postgres_cluster) as dsn,
        await PostgresStore.open(dsn) as one,
        await PostgresStore.open(dsn) as two,
    ):
        for script in conversations:
            assert (await one.commit(script[0])).status == "committed"
        seconds = [script[1] for script in conversations]
        rivals = [c.model_copy(update={"delivery_id": f"{c.delivery_id}/rival"}) for c in seconds]
        holder = await asyncpg.connect(dsn)
        try:
            held = holder.transaction()
            await held.start()
            last = seconds[-1].conversation_id
            await holder.execute(
                "SELECT 1 FROM streams WHERE conversation_id = $1 FOR UPDATE", last
            )
            theirs = [asyncio.ensure_future(two.commit(c)) for c in reversed(rivals)]
            await waiting_for_locks(holder, 1)
            mine = [asyncio.ensure_future(one.commit(c)) for c in seconds]
            await waiting_for_locks(holder, 2)
            await held.rollback()
            won = await asyncio.gather(*theirs, return_exceptions=True)
            lost = await asyncio.gather(*mine, return_exceptions=True)
        finally:
            await holder.close()
        assert (two._group.groups, one._group.groups) == (1, 1)
        assert [getattr(r, "status", r) for r in won] == ["committed"] * 4
        assert all(isinstance(r, ConcurrencyError) for r in lost), lost
        for script, rival in zip(conversations, rivals, strict=True):
            stored = await one.load(script[0].conversation_id)
            assert stored == [*script[0].events, *rival.events]
