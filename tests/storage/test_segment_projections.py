"""The `/metrics` chart's conversion by persona and by lead source, read from the
projections (`storage.projections.SEGMENT_ENGAGED`, `SEGMENT_WON`), says what the log says
(`domain.metrics_chart.segment_facts` over every event) on both stores, after a rebuild,
and on a previous release's store right after its migration."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.policy_loader import load_policy
from bot.report_reads import persona_names, projected_segments
from domain.inbound import LeadArrived, LeadDetails
from domain.metrics_chart import Segment, conversion_segments, segment_facts
from storage.ports import Store
from storage.sqlite import SqliteStore
from tests.storage.scripted import FEED, SalesDay

FIXTURE = Path(__file__).parents[1] / "fixtures" / "stores" / "release-4e9bee1.db"


async def from_the_log(store: Store) -> tuple[Segment, ...]:
    events = [env async for env in store.iterate_all()]
    facts = segment_facts(events)
    personas = await persona_names(store, {f.policy_version for f in facts.values()})
    return conversion_segments(facts, personas.__getitem__)


async def projected(store: Store) -> tuple[Segment, ...]:
    return await projected_segments(store, (await store.metrics_projection()).counts)


async def test_projected_segments_equal_the_logs_on_both_stores(store: Store) -> None:
    policy = load_policy("default")
    day = SalesDay(store, policy)
    await day.start()
    for i, source in enumerate(("Web Form", "partner", "web form")):
        lead = LeadDetails(name="Dana", message="Hello, we need a CRM", source=source)
        await day.send(
            LeadArrived(delivery_id=f"src-{i}", conversation_id=f"src-{i}", lead=lead, actor=FEED)
        )
    await day.run(conversations=12)
    found = await projected(store)
    assert found == await from_the_log(store)
    by = {(s.dimension, s.label): (s.won, s.engaged) for s in found}
    assert by[("lead source", "web form")] == (0, 2)  # " Web Form" and "web form" are one
    assert by[("lead source", "partner")] == (0, 1)
    assert by[("persona", "salespro")] == (
        sum(won for (dim, _), (won, _) in by.items() if dim == "lead source"),
        sum(n for (dim, _), (_, n) in by.items() if dim == "lead source"),
    )
    assert by[("persona", "salespro")][0] >= 1  # the day's won deals are counted
    summary = await store.rebuild_projections()
    assert summary.changed == 0
    assert await projected(store) == found


async def test_a_previous_releases_store_has_its_segments_right_after_the_migration(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    shutil.copy(FIXTURE, path)
    async with await SqliteStore.open(path) as store:
        found = await projected(store)
        assert found
        assert found == await from_the_log(store)
