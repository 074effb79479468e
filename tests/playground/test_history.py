"""The hub's history as a page loads it: every card in its current state, in the place it
was first shown; and the same history rebuilt from what the store kept (`restore_*`)."""

from __future__ import annotations

from typing import Any

from adapters.action_binding import ActionKey
from adapters.playground.desk import DeskTicket, desk_json
from adapters.playground.hub import PlaygroundHub
from adapters.playground.identities import MANAGER, PROSPECT, REP
from adapters.playground.router import PlaygroundRouter
from adapters.ports import Delivery
from domain.cards import Button, Card, Reply
from domain.inbound import (
    Actor,
    ButtonClicked,
    CommandInvoked,
    Inbound,
    LeadArrived,
    MessagePosted,
)
from domain.state import ConversationState

KEY = ActionKey(b"playground history test key")
NOW = 1_790_000_000_000


def hub(limit: int = 50) -> PlaygroundHub:
    return PlaygroundHub(action_key=KEY, history_limit=limit, clock=lambda: NOW)


def delivery(key: str, reply: Reply, conversation: str = "playground:a") -> Delivery:
    inbound = MessagePosted(delivery_id="d", conversation_id=conversation, actor=REP, text="x")
    state = ConversationState(conversation_id=conversation, flow_state="greeting")
    (route,) = PlaygroundRouter().route(inbound, reply, state)
    return Delivery(
        key=key,
        conversation_id=conversation,
        channel=route.channel,
        payload={"reply": reply.model_dump(mode="json"), "target": route.target},
    )


def quote(ref: str, status: str, *, replaces: str | None = None) -> Reply:
    buttons = () if replaces else (Button(action="accept_quote", label="Accept", target=ref),)
    card = Card(kind="quote", title=f"Quote {ref}", status=status, ref=ref, buttons=buttons)
    return Reply(audience="conversation", text=status, card=card, replaces=replaces)


def ticket(ref: str, status: str, *, replaces: str | None = None) -> Reply:
    card = Card(kind="ticket", title=f"Handoff {ref}", status=status, ref=ref)
    return Reply(audience="handoff", text=status, card=card, replaces=replaces)


def shown(history: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Each message as (conversation or "handoff", the card's status or the text)."""
    rows = []
    for message in history:
        card = message["reply"]["card"]
        where = "handoff" if message["audience"] == "handoff" else message["conversation"]
        rows.append((where, card["status"] if card else message["reply"]["text"]))
    return rows


async def test_a_card_update_takes_the_place_of_the_card_it_replaces() -> None:
    playground = hub()
    await playground.send(delivery("K1", Reply(audience="conversation", text="Hello")))
    await playground.send(delivery("K2", quote("Q-1", "Ready to accept")))
    await playground.send(delivery("K3", quote("Q-2", "Ready to accept")))
    await playground.send(delivery("K4", quote("Q-1", "Superseded by Q-2", replaces="Q-1")))

    assert shown(playground.history()) == [
        ("playground:a", "Hello"),
        ("playground:a", "Superseded by Q-2"),
        ("playground:a", "Ready to accept"),
    ]
    assert playground.history()[1]["reply"]["card"]["buttons"] == []


async def test_a_ticket_card_is_replaced_in_the_handoff_list_and_a_quote_in_its_thread() -> None:
    playground = hub()
    await playground.send(delivery("K1", ticket("T-1", "Open"), conversation="playground:a"))
    await playground.send(delivery("K2", quote("T-1", "a quote that shares the ref")))
    await playground.send(
        delivery("K3", ticket("T-1", "Claimed by You (rep)", replaces="T-1"), "playground:a")
    )
    assert shown(playground.history()) == [
        ("handoff", "Claimed by You (rep)"),
        ("playground:a", "a quote that shares the ref"),
    ]
    assert playground.card_title("T-1") == "Handoff T-1"
    assert playground.card_title("T-2") is None


async def test_an_update_of_a_card_no_longer_kept_is_shown_as_a_new_message() -> None:
    playground = hub(limit=2)
    await playground.send(delivery("K1", quote("Q-1", "Ready to accept")))
    await playground.send(delivery("K2", Reply(audience="conversation", text="one")))
    await playground.send(delivery("K3", Reply(audience="conversation", text="two")))
    await playground.send(delivery("K4", quote("Q-1", "Accepted", replaces="Q-1")))
    assert shown(playground.history()) == [("playground:a", "two"), ("playground:a", "Accepted")]


async def test_a_restored_reply_keeps_the_id_the_page_knew_and_is_never_sent_twice() -> None:
    playground = hub()
    item = delivery("K1", quote("Q-1", "Ready to accept"))
    playground.restore_sent(item, remote_id="playground:before-restart", at=NOW - 5_000)
    assert await playground.find_sent(item) == "playground:before-restart"
    again = await playground.send(item)  # the outbox resending after an uncertain attempt
    assert again.remote_id == "playground:before-restart"
    (message,) = playground.history()
    assert (message["id"], message["at"], message["key"]) == (
        "playground:before-restart",
        NOW - 5_000,
        "K1",
    )
    button = message["reply"]["card"]["buttons"][0]
    assert (
        KEY.verdict(
            button["signature"],
            "playground",
            "playground:a",
            "accept_quote",
            "Q-1",
            "Q-1",
            button["nonce"],
        )
        == "ok"
    )  # signed afresh: the click still verifies after the restart


def test_lines_typed_by_the_pages_people_are_restored_and_nothing_else() -> None:
    playground = hub()
    conversation = "playground:a"
    typed: list[Inbound] = [
        MessagePosted(delivery_id="d1", conversation_id=conversation, actor=PROSPECT, text="Hi"),
        CommandInvoked(
            delivery_id="d2",
            conversation_id=conversation,
            actor=REP,
            command="quote",
            args="10 pro",
        ),
        CommandInvoked(
            delivery_id="d3", conversation_id=conversation, actor=MANAGER, command="metrics"
        ),
    ]
    others: list[Inbound] = [
        ButtonClicked(
            delivery_id="d4", conversation_id=conversation, actor=REP, action="claim_ticket"
        ),
        MessagePosted(
            delivery_id="d5",
            conversation_id=conversation,
            actor=Actor(id="local-prospect", role="prospect"),  # typed in `salesbot chat`
            text="from the terminal",
        ),
        LeadArrived.model_validate(
            {
                "delivery_id": "d6",
                "conversation_id": "lead-1",
                "actor": {"id": "leadfeed", "role": "system"},
                "lead": {"name": "Ada", "message": "We need 10 seats"},
            }
        ),
    ]
    results = [playground.restore_typed(inbound, at=NOW + n) for n, inbound in enumerate(typed)]
    assert results == [True, True, True]
    assert not any(playground.restore_typed(inbound, at=NOW) for inbound in others)
    assert [
        (m["id"], m["author"], m["audience"], m["reply"]["text"], m["at"])
        for m in playground.history()
    ] == [
        ("typed:d1", "prospect", "conversation", "Hi", NOW),
        ("typed:d2", "rep", "requester", "/quote 10 pro", NOW + 1),
        ("typed:d3", "manager", "requester", "/metrics", NOW + 2),
    ]


def test_a_line_typed_live_has_the_id_it_will_have_when_rebuilt() -> None:
    playground = hub()
    live = playground.post_typed(
        conversation="playground:a", actor=PROSPECT, text="Hi", command=False, delivery_id="d1"
    )
    assert live["id"] == "typed:d1"


# --- the open tickets -------------------------------------------------------------------


def desk_ticket(key: str, opened_at_ms: int, **fields: Any) -> DeskTicket:
    values: dict[str, Any] = {
        "key": key,
        "conversation_id": f"conv-{key}",
        "kind": "handoff",
        "reason": "human_request",
        "status": "open",
        "opened_at_ms": opened_at_ms,
        "updated_at_ms": opened_at_ms,
        **fields,
    }
    return DeskTicket(**values)


async def test_open_tickets_are_listed_newest_first_with_their_age_and_holder() -> None:
    playground = hub()
    await playground.send(delivery("K1", ticket("T-new", "Open")))
    tickets = [
        desk_ticket("T-old", NOW - 3 * 3_600_000, status="claimed", claimed_by=REP.id),
        desk_ticket("T-new", NOW - 90_000),
        desk_ticket("T-approval", NOW - 60_000, kind="approval", quote_id="Q-9", reason="discount"),
        desk_ticket("T-slack", NOW - 7_000, status="claimed", claimed_by="U123"),
    ]
    answer = desk_json(tickets, playground, NOW)
    assert answer["now"] == NOW
    assert [
        (t["key"], t["title"], t["age_ms"], t["status"], t["holder"], t["holder_name"])
        for t in answer["tickets"]
    ] == [
        ("T-slack", "Handoff: the prospect asked for a person", 7_000, "claimed", "U123", "U123"),
        ("T-approval", "Discount approval for quote Q-9", 60_000, "open", None, None),
        ("T-new", "Handoff T-new", 90_000, "open", None, None),  # its card's title
        (
            "T-old",
            "Handoff: the prospect asked for a person",
            3 * 3_600_000,
            "claimed",
            REP.id,
            "You (rep)",
        ),
    ]
    assert answer["tickets"][1]["conversation"] == "conv-T-approval"
