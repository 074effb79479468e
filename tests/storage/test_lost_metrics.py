"""Lost deals from polite closes (`[dialog]`), as `/metrics` reads them from either store's
projections: a prospect who left is lost, one who came back is open again, and a goodbye
while a meeting is booked is not lost — equal to a full recomputation, unchanged by a
rebuild."""

from __future__ import annotations

from bot.queries import load_metrics
from domain.policy import Policy
from storage.ports import Store
from tests.storage.scripted import SalesDay, recomputed


async def test_lost_and_reopened_conversations_from_the_projections_equal_a_recomputation(
    store: Store, default_policy: Policy
) -> None:
    day = SalesDay(store, default_policy)
    await day.start()
    await day.say("gone", "hi")
    await day.say("gone", "we've decided to go with HubSpot")
    await day.say("back", "hi")
    await day.say("back", "not interested, thanks")
    await day.say("back", "actually we are 20 people and need it by March")
    await day.say("booked", "Could we book a demo for Thursday?")
    await day.say("booked", "thanks bye")
    full = await recomputed(store, default_policy)
    assert (full.engaged, full.lost, full.open) == (3, 1, 2)
    assert full.funnel["farewell"] == 3
    assert await load_metrics(store, default_policy) == full
    assert (await store.rebuild_projections()).changed == 0
    assert await load_metrics(store, default_policy) == full
