"""The counters `/metrics` reads, kept by the commit (issue 17, item 5), on every store.

What a user would notice if they were wrong: `/metrics` saying something other than a full
recomputation over the log (`domain.analytics.compute_metrics`). So, on memory, SQLite and
PostgreSQL alike: the percentiles of times to qualify are exact whatever bucket of the
counted times' radix tree they fall in (negative times, times of years, times that move
when a late `ConversationStarted` moves the start); outcomes undone and redone (abandoned,
reopened, won, reopened, lost with a reason) count where they end, at every step; the
counters a rebuild writes are those the commits kept; random logs give the recomputation
on PostgreSQL too (memory and SQLite run the hypothesis search in `test_projections`).
"""

from __future__ import annotations

import pytest

from bot.queries import load_metrics
from domain.analytics import compute_metrics, percentile_ranks, percentiles
from domain.events import (
    ConversationAbandoned,
    ConversationReopened,
    ConversationStarted,
    DealMarked,
    EventEnvelope,
    LeadScored,
)
from domain.policy import Policy
from storage.ports import Store
from storage.projections import (
    TIME_BITS,
    TIME_LEVELS,
    metrics_from_projection,
    shard_of,
    time_buckets,
)
from tests.storage.scripted import SalesDay, recomputed
from tests.storage.test_projections import (
    Stream,
    assert_same_metrics,
    check_random_log,
    projected,
)

TOP = 1 << (TIME_BITS * (TIME_LEVELS - 1))
"""The span of one top-level bucket of the counted times (2^40 ms)."""

TIMES = (
    0,
    1,
    31,
    32,
    33,
    1_023,
    1_024,
    65_535,
    65_536,
    -1,
    -32,
    -33,
    TOP - 1,
    TOP,
    TOP + 1,
    3 * TOP + 12_345,
    -TOP - 1,
    6_000,
    6_000,
    6_000,
    90_061_000,
    17,
)
"""Times to qualify (ms) on both sides of every level's bucket boundary, negative ones (a
`ConversationStarted` stored after the qualifying score), some equal."""


STARTED = ConversationStarted(origin="direct", started_by="P")


def qualified_after(conversation_id: str, ms: int) -> Stream:
    """A conversation whose time to qualify is `ms` (negative: the score came first)."""
    stream = Stream(conversation_id)
    if ms >= 0:
        return stream.start().scored(True, after_ms=ms).message()
    stream.message().scored(True, after_ms=0)
    return stream.add(STARTED, after_ms=-ms)


def test_the_times_cover_every_level_and_both_signs() -> None:
    levels_crossed = {
        level
        for a in TIMES
        for b in TIMES
        for level in range(TIME_LEVELS)
        if time_buckets(a)[level] != time_buckets(b)[level]
    }
    assert levels_crossed == set(range(TIME_LEVELS))
    assert min(TIMES) < 0 < max(TIMES)


async def test_the_percentiles_of_counted_times_are_exact_at_every_count(store: Store) -> None:
    values: list[int] = []
    for i, ms in enumerate(TIMES):
        stream = qualified_after(f"q{i}", ms)
        await store.append(stream.conversation_id, 0, stream.envelopes)
        values.append(ms)
        projection = await store.metrics_projection()
        assert projection.time_to_qualify == percentiles(values), values
        assert percentile_ranks(len(values))  # the ranks the read looked for
    assert await store.qualification_times() == tuple(sorted(TIMES))
    log = [env async for env in store.iterate_all()]
    assert_same_metrics(await projected(store), compute_metrics(log))


async def test_a_time_that_moves_leaves_nothing_counted_where_it_was(store: Store) -> None:
    """A second `ConversationStarted` moves the start, so the time to qualify: the old time
    is uncounted in every bucket, the new one (negative now) counted."""
    moves = qualified_after("moves", 5_000)
    stays = qualified_after("stays", 70_000)
    await store.append("moves", 0, moves.envelopes)
    await store.append("stays", 0, stays.envelopes)
    moves.add(STARTED, after_ms=TOP)  # started again, TOP after the message (1 s after the score)
    moved = -(TOP + 1_000)
    await store.append("moves", len(moves.envelopes) - 1, moves.envelopes[-1:])
    log = [env async for env in store.iterate_all()]
    assert await store.qualification_times() == (moved, 70_000)
    assert (await store.metrics_projection()).time_to_qualify == percentiles([moved, 70_000])
    assert_same_metrics(await projected(store), compute_metrics(log))
    assert (await store.rebuild_projections()).changed == 0
    assert_same_metrics(await projected(store), compute_metrics(log))


async def test_outcomes_undone_and_redone_count_where_they_end_at_every_step(
    store: Store,
) -> None:
    stream = Stream("turns").start().message().advance("start", "qualify")
    stream.add(ConversationAbandoned(idle_ms=1))
    stream.add(
        ConversationReopened(reason="goodbye", was_lost=False, from_state="x", to_state="qualify")
    )
    stream.message().close("won")
    stream.add(
        ConversationReopened(reason="goodbye", was_lost=False, from_state="x", to_state="proposal")
    )
    stream.add(DealMarked(outcome="lost", by="R", via="command", reason="price"))
    stream.close("lost")
    stream.add(DealMarked(outcome="lost", by="R", via="command", reason="timing"))
    bystander = Stream("steady").start().message().close("won")
    await store.append("steady", 0, bystander.envelopes)
    for seq, envelope in enumerate(stream.envelopes):
        await store.append("turns", seq, [envelope])
        log = [env async for env in store.iterate_all()]
        assert_same_metrics(await projected(store), compute_metrics(log))
    metrics = await projected(store)
    assert (metrics.won, metrics.lost, metrics.abandoned, metrics.open) == (1, 1, 0, 0)
    assert metrics.lost_reasons == {"timing": 1}
    before = await store.metrics_projection()
    assert (await store.rebuild_projections()).changed == 0
    assert await store.metrics_projection() == before


async def test_the_counters_a_rebuild_writes_are_those_the_commits_kept(
    store: Store, default_policy: Policy
) -> None:
    day = SalesDay(store, default_policy)
    await day.start()
    await day.run(conversations=16)
    kept = await store.metrics_projection()
    expected = await recomputed(store, default_policy)
    summary = await store.rebuild_projections()
    assert summary.changed == 0
    assert await store.metrics_projection() == kept
    assert_same_metrics(await load_metrics(store, default_policy), expected)
    assert len({shard_of(f"conv-{i}") for i in range(16)}) > 1  # several shards summed


@pytest.mark.parametrize("seed", [3, 7, 2026])
async def test_random_logs_project_to_the_full_recomputation_on_every_store(
    store: Store, seed: int
) -> None:
    await check_random_log(store, seed, conversations=25)


INSTALLATIONS = ("", "slack:T0002", "teams:7f3c0000-0000-0000-0000-000000000001")


def started_in(installation: str) -> ConversationStarted:
    return ConversationStarted(origin="direct", started_by="P", installation=installation)


async def test_each_installation_counts_its_own_conversations_and_nothing_else(
    store: Store,
) -> None:
    """Conversations of three installations, with different outcomes and times to qualify:
    each installation's counters and percentiles are exactly what the full recomputation
    says over its own conversations alone, before and after a rebuild; an installation
    with no conversation has nothing counted."""
    belongs: dict[str, str] = {}
    for i in range(12):
        installation = INSTALLATIONS[i % 3]
        stream = Stream(f"c{i}").add(started_in(installation), after_ms=0).message()
        if i % 2:
            stream.scored(True, after_ms=1_000 * (i + 1) * (INSTALLATIONS.index(installation) + 1))
        if i % 4 == 1:
            stream.close("won")
        elif i % 4 == 3:
            stream.close("lost")
        await store.append(stream.conversation_id, 0, stream.envelopes)
        belongs[stream.conversation_id] = installation
    log = [env async for env in store.iterate_all()]

    async def check() -> None:
        for installation in INSTALLATIONS:
            own = [env for env in log if belongs[env.conversation_id] == installation]
            projection = await store.metrics_projection(installation)
            metrics = metrics_from_projection(projection.counts, projection.time_to_qualify)
            assert_same_metrics(metrics, compute_metrics(own))
            assert metrics.conversations == 4
            times = sorted(t for cid, t in _times(own).items() if belongs[cid] == installation)
            assert await store.qualification_times(installation) == tuple(times)
        nobody = await store.metrics_projection("slack:T0404")
        assert nobody.counts == {}
        assert await store.qualification_times("slack:T0404") == ()

    await check()
    assert (await store.rebuild_projections()).changed == 0
    await check()


def _times(log: list[EventEnvelope]) -> dict[str, int]:
    """Time to qualify by conversation, from the log itself."""
    started: dict[str, int] = {}
    qualified: dict[str, int] = {}
    for env in log:
        if isinstance(env.event, ConversationStarted):
            started.setdefault(env.conversation_id, env.at_ms)
        elif isinstance(env.event, LeadScored) and env.event.qualified:
            qualified.setdefault(env.conversation_id, env.at_ms)
    return {cid: at - started[cid] for cid, at in qualified.items() if cid in started}
