"""Meetings requested, as `/metrics` reads them from either store's projections (no new
column: a stage mark in the conversation's `reached`), equal to a full recomputation and
unchanged by a rebuild."""

from __future__ import annotations

from bot.queries import load_metrics
from domain.analytics import render_metrics
from domain.policy import Policy
from storage.ports import Store
from tests.storage.scripted import SalesDay, recomputed


async def test_meetings_requested_from_the_projections_equal_a_recomputation(
    store: Store, default_policy: Policy
) -> None:
    day = SalesDay(store, default_policy)
    await day.start()
    await day.say("m1", "Could we book a demo for Thursday afternoon?")
    await day.say("m1", "Or Friday works too for the demo call")
    await day.say("m2", "Hi")
    await day.say("m2", "Can we schedule a call next Tuesday at 3pm?")
    await day.say("m3", "What does it cost?")
    full = await recomputed(store, default_policy)
    assert full.meetings_requested == 2
    projected = await load_metrics(store, default_policy)
    assert projected == full
    assert "Meetings requested: 2 of 3 conversations." in render_metrics(projected)
    assert (await store.rebuild_projections()).changed == 0
    assert await load_metrics(store, default_policy) == full
