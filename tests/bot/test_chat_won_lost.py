"""Won and lost on the record in `salesbot chat` (issue 14 item 5): `/won`, `/lost REASON`,
the ticket card's *Won* / *Lost…* buttons, and *Accept quote* pressed by the rep (refused:
accepting is the prospect's act under the default policy)."""

from __future__ import annotations

from tests.bot.test_chat_desk import chat_outputs, heads


async def test_lost_by_command_closes_the_deal_and_updates_the_ticket_card() -> None:
    *_, wrong, lost = await chat_outputs(
        [
            "Can I talk to a real person please?",
            "/as rep",
            "/lost budget",
            "/lost price they chose a cheaper tool",
        ]
    )
    assert heads(wrong) == [
        "bot → you> Unknown lost reason “budget”: use one of chose_competitor, price, "
        "timing, not_interested, no_response."
    ]
    # The team's card is updated in place; the rep is told; the prospect hears nothing.
    assert heads(lost) == [
        "handoff channel> (updated) Resolved by You (rep): lost (found it too expensive): "
        "“they chose a cheaper tool”",
        "bot → you> Recorded: chat-desk lost (found it too expensive), marked by You (rep).",
    ]


async def test_won_by_the_ticket_cards_button() -> None:
    *_, won = await chat_outputs(
        ["Can I talk to a real person please?", "/as rep", "/click 4"]  # Won
    )
    assert any("Resolved by You (rep): won" in line for line in heads(won))


async def test_lost_by_the_ticket_cards_button_asks_for_the_reason_then_records_it() -> None:
    *_, asked, lost = await chat_outputs(
        ["Can I talk to a real person please?", "/as rep", "/click 5", "/click 2 too dear"]
    )
    assert any("is marking it lost: why?" in line for line in heads(asked))
    assert "  │ [2] Price" in asked
    assert any("lost (found it too expensive)" in line for line in heads(lost))


async def test_the_rep_pressing_accept_quote_is_refused() -> None:
    *_, refused = await chat_outputs(
        ["Hi, we need a CRM for 10 people", "/as rep", "/quote 10 pro", "/click 1"]
    )
    assert heads(refused) == [
        "bot → you> Accepting a quote is the prospect's decision, so nothing was done: ask "
        "them to press Accept, or record the deal with `won`."
    ]
