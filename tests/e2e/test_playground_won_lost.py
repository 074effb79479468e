"""Won and lost on the record in the playground (issue 14 item 5), through its own routes:
`/lost REASON note` typed by the rep, and the ticket card's *Won* button; the handoff pane's
card updated in place, and the prospect's thread hears nothing of it."""

from __future__ import annotations

from tests.e2e.test_playground_takeover import Client, client, history, press, send, ticket_card

__all__ = ["client"]  # the fixture: a served playground on its own store


async def test_lost_typed_by_the_rep_and_won_by_the_cards_button(client: Client) -> None:
    first = await send(client, "prospect", "Can I talk to a real person please?", None)
    said = len(await history(client, first, "conversation"))
    await send(client, "rep", "/lost price went with a cheaper tool", first)
    card = await ticket_card(client, first)
    assert card["status"] == (
        "Resolved by You (rep): lost (found it too expensive): “went with a cheaper tool”"
    )
    assert len(await history(client, first, "conversation")) == said, "the prospect hears nothing"

    second = await send(client, "prospect", "Can I talk to a real person please?", None)
    await press(client, second, await ticket_card(client, second), "Won")
    assert (await ticket_card(client, second))["status"] == "Resolved by You (rep): won"
