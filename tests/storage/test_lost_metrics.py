"""Lost deals from polite closes (`[dialog]`), as `/metrics` reads them from either store's
projections: a prospect who left is lost, one who came back is open again, and a goodbye
while a meeting is booked is not lost — equal to a full recomputation, unchanged by a
rebuild."""

from __future__ import annotations

from bot.queries import load_metrics
from domain.analytics import render_metrics
from domain.policy import Policy
from storage.ports import Store
from tests.storage.scripted import REP, SalesDay, recomputed


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


async def test_lost_reasons_and_acceptances_on_behalf_are_counted_as_a_recomputation_counts_them(
    store: Store, default_policy: Policy
) -> None:
    """`/metrics` counts each lost deal under the reason a rep recorded (the latest one, and
    only while the deal stays lost) and the quotes a rep accepted for the prospect."""
    on_behalf = default_policy.model_copy(
        update={"quotes": default_policy.quotes.model_copy(update={"accept_on_behalf": True})}
    )
    day = SalesDay(store, on_behalf)
    await day.start()
    for cid in ("a", "b", "c", "d"):
        await day.lead(cid)
    await day.command("a", "lost", "price they found it too dear")
    await day.command("b", "lost", "timing")
    await day.command("b", "won")  # changed their mind: won, no lost reason counted
    await day.command("c", "lost", "c PRICE")
    await day.command("d", "quote", "10 pro")
    (quote,) = [q for q in day.quotes if q]
    await day.click("d", "accept_quote", quote, REP)
    full = await recomputed(store, on_behalf)
    assert (full.won, full.lost) == (2, 2)
    assert full.lost_reasons == {"price": 2}
    assert full.accepted_on_behalf == 1
    assert await load_metrics(store, on_behalf) == full
    assert (await store.rebuild_projections()).changed == 0
    assert await load_metrics(store, on_behalf) == full
    lines = render_metrics(full)
    assert "Lost, by the reason recorded: found it too expensive 2." in lines
    assert "Won on a quote a rep accepted on the prospect's behalf: 1." in lines
