"""The playground is a desk: a restart forgets nothing the store keeps. Through the real
server, runtime, outbox and SQLite store: conversations with a quote revised, a ticket
claimed and one left open; then a fresh process on the same file shows the same threads,
cards in their current state, and the open tickets with their age and holder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.playground.identities import PROSPECT
from bot.policy_loader import load_policy
from bot.service import build_service
from bot.settings import Settings
from domain.inbound import MessagePosted
from storage.sqlite import SqliteStore
from tests.e2e.desk import (
    MINUTE,
    Clock,
    drained,
    handoff_card,
    history,
    say,
    seed_desk,
    serving,
    tickets,
)

START_MS = 1_790_000_000_000


def thread_view(messages: list[dict[str, Any]], conversation: str) -> list[tuple[str, str]]:
    """A thread as its page shows it: who, and the card's title and status or the text."""
    rows = []
    for message in messages:
        if message["conversation"] != conversation or message["audience"] == "handoff":
            continue
        card = message["reply"]["card"]
        shown = f"{card['title']} [{card['status']}]" if card else message["reply"]["text"]
        rows.append((message["author"], shown))
    return rows


def unsigned(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages without their buttons' nonces and signatures."""
    copies = []
    for message in messages:
        card = message["reply"]["card"]
        if card:
            buttons = [
                {k: v for k, v in b.items() if k not in ("nonce", "signature")}
                for b in card["buttons"]
            ]
            message = {
                **message,
                "reply": {**message["reply"], "card": {**card, "buttons": buttons}},
            }
        copies.append(message)
    return copies


async def test_after_a_restart_the_playground_shows_every_thread_card_and_open_ticket_as_it_stands(
    tmp_path: Path,
) -> None:
    db = tmp_path / "salesbot.db"
    clock = Clock(START_MS)
    async with serving(db, clock) as client:
        desk = await seed_desk(client, clock)
        before = await history(client)
    deal, refund, human = desk.deal, desk.refund, desk.human

    clock.now_ms += 10 * MINUTE
    async with serving(db, clock) as client:  # a fresh process on the same file
        after = await history(client)
        listed = await tickets(client)

    # Every thread, message and card, as the page showed it before the restart (the same
    # ids, so a page left open shows nothing twice); only the buttons are signed afresh.
    assert unsigned(after) == unsigned(before)
    deal_thread = thread_view(after, deal)
    assert deal_thread[0] == ("prospect", "Hi, we are evaluating CRMs")
    assert deal_thread[2] == ("rep", "/quote 10 pro 10%")
    superseded, revised = (row for row in deal_thread if row[1].startswith("Quote Q-"))
    assert "[Superseded by Q-" in superseded[1]
    assert revised[1].endswith("[Ready to accept]")
    assert deal_thread.index(superseded) < deal_thread.index(("rep", "/quote 12 pro 10%"))
    assert thread_view(after, refund)[0] == (
        "prospect",
        "Can we cancel the contract early and get a refund?",
    )
    claimed = handoff_card(after, refund)
    assert claimed["status"] == "Claimed by You (rep)"
    assert [b["action"] for b in claimed["buttons"]] == [
        "resolve_ticket",
        "return_to_bot",
        "mark_won",
        "mark_lost",
    ]
    assert all(b["signature"].startswith("v1.") for b in claimed["buttons"])
    assert handoff_card(after, human)["status"] == "Open"

    # The handoff pane: both tickets open, newest first, with their age and holder.
    assert listed["now"] == clock.now_ms
    assert [
        (t["conversation"], t["status"], t["holder_name"], t["age_ms"]) for t in listed["tickets"]
    ] == [
        (human, "open", None, 10 * MINUTE),
        (refund, "claimed", "You (rep)", 11 * MINUTE),
    ]
    assert listed["tickets"][1]["title"] == "Handoff: billing, a refund or a cancellation"


async def test_a_reply_still_pending_at_the_restart_is_shown_once_after_what_was_shown(
    tmp_path: Path,
) -> None:
    db = tmp_path / "salesbot.db"
    clock = Clock(START_MS)
    async with serving(db, clock) as client:
        deal = await say(client, "prospect", "Hi, we are evaluating CRMs", None)
    # A reply committed while no process was sending (as `salesbot demo` leaves them).
    store = await SqliteStore.open(db)
    try:
        service = build_service(Settings(), load_policy("default"), store, clock=clock)
        await service.runtime.start()
        await service.runtime.handle(
            MessagePosted(
                delivery_id="playground:later",
                conversation_id=deal,
                actor=PROSPECT,
                text="We are a team of 25 with a budget of $20k",
            )
        )
    finally:
        await store.close()
    async with serving(db, clock) as client:
        await drained(client)
        after = await history(client)
    shown = [(m["author"], m["reply"]["text"]) for m in after if m["conversation"] == deal]
    assert shown[0] == ("prospect", "Hi, we are evaluating CRMs")
    assert shown[1][0] == "bot"
    # The line typed before the restart, then its reply, delivered after the restart, once.
    assert shown[2] == ("prospect", "We are a team of 25 with a budget of $20k")
    assert len(shown) > 3
    assert {author for author, _text in shown[3:]} == {"bot"}
    assert len({m["id"] for m in after}) == len(after)
