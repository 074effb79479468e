"""Won and lost on the record (issue 14 item 5), decided by `decide`: `won [ID]`,
`lost [ID] REASON [note]`, the *Won* / *Lost* buttons of the lead card and the ticket card,
and *Accept quote* as the prospect's act (`[quotes] accept_on_behalf`)."""

from __future__ import annotations

import json
from typing import Any

from domain.audit import audit_conversation, render_audit
from domain.decision import Decision
from domain.events import (
    ActionIgnored,
    ConversationClosed,
    DealMarked,
    QuoteAccepted,
    TeamNotified,
    TicketResolved,
)
from domain.inbound import Actor, MessagePosted
from domain.policy import Policy
from domain.presenters import lead_card_ref
from domain.replay import replay_conversation
from tests.support.conversation import Recording

PROSPECT = Actor(id="P", name="Pat Prospect", role="prospect")
REP = Actor(id="U_RAE", name="Rae Rep", role="rep")
HOT = "We have a $5000 budget, 12 people, and want to start next month"


def events_of(decision: Decision, kind: type) -> list[Any]:
    return [env.event for env in decision.events if isinstance(env.event, kind)]


def told(decision: Decision) -> list[str]:
    return [r.text for r in decision.replies if r.audience == "requester"]


def ticket_of(thread: Recording) -> str:
    ticket = thread.state.latest_handoff_ticket()
    assert ticket is not None
    return ticket.key


def quotes(policy: Policy, **changes: Any) -> Policy:
    return policy.model_copy(update={"quotes": policy.quotes.model_copy(update=changes)})


def test_lost_with_a_reason_and_a_note_closes_the_deal_and_updates_the_lead_card(
    default_policy: Policy,
) -> None:
    lead = Recording(default_policy, "lead-1")
    first = lead.lead(HOT)
    (card,) = [r.card for r in first.replies if r.card is not None and r.card.kind == "lead"]
    assert [b.label for b in card.buttons][-2:] == ["Won", "Lost…"]
    lost = lead.command("lost", "PRICE they found Acme cheaper", REP)
    (mark,) = events_of(lost, DealMarked)
    assert (mark.outcome, mark.reason, mark.note, mark.via) == (
        "lost",
        "price",
        "they found Acme cheaper",
        "command",
    )
    assert events_of(lost, ConversationClosed)[0].outcome == "lost"
    assert [t.kind for t in events_of(lost, TeamNotified)] == ["lost"]
    (updated,) = [r for r in lost.replies if r.replaces == lead_card_ref("lead-1")]
    assert updated.card is not None
    assert updated.card.status == "Lost (found it too expensive), marked by Rae Rep"
    assert updated.card.buttons == ()
    assert all(r.audience != "conversation" for r in lost.replies)  # the prospect hears nothing
    assert "lead-1" in told(lost)[0]
    lines = "\n".join(render_audit(audit_conversation("lead-1", lead.events)))
    assert "Deal marked lost (price: found it too expensive) by U_RAE (with the command)" in lines
    replayed = replay_conversation("lead-1", lead.inbounds, lead.events, lambda _v: default_policy)
    assert replayed.differences == ()


def test_an_unknown_lost_reason_lists_the_valid_ones_and_records_nothing(
    default_policy: Policy,
) -> None:
    lead = Recording(default_policy, "lead-1")
    lead.lead(HOT)
    wrong = lead.command("lost", "budget cuts", REP)
    assert wrong.events == ()
    assert told(wrong) == [
        "Unknown lost reason “budget”: use one of chose_competitor, price, timing, "
        "not_interested, no_response."
    ]
    assert told(lead.command("lost", "", REP))[0].startswith("Usage: lost [ID] REASON")
    assert lead.command("lost", "lead-9 price", REP).events == ()


def test_won_by_its_id_resolves_the_live_ticket_and_its_card(default_policy: Policy) -> None:
    thread = Recording(default_policy, "slack:T1:C1:1.1")
    thread.say("Hi, we are evaluating CRMs for a team of 12", PROSPECT)
    thread.send(MessagePosted(text="Hi Pat, Rae here", actor=REP, addressed=False, **thread.ids()))
    key = ticket_of(thread)
    won = thread.command("won", key, REP)
    (mark,) = events_of(won, DealMarked)
    assert (mark.outcome, mark.ticket_key) == ("won", key)
    assert events_of(won, TicketResolved)[0].outcome == "won"
    (card,) = [r for r in won.replies if r.replaces == key]
    assert card.card is not None
    assert card.card.status == "Resolved by Rae Rep: won"
    again = thread.command("won", "", REP)
    assert events_of(again, ActionIgnored)[0].reason == "already_won"


def test_the_lost_button_asks_for_the_reason_then_records_it_with_the_note(
    default_policy: Policy,
) -> None:
    thread = Recording(default_policy, "slack:T1:C1:1.1")
    thread.say("Hi, can I talk to a person please?", PROSPECT)
    key = ticket_of(thread)
    asked = thread.click("mark_lost", key, REP)
    assert asked.events == ()
    (picker,) = [r.card for r in asked.replies if r.card is not None]
    assert picker.input is not None
    assert next(b.target for b in picker.buttons) == f"{key}:chose_competitor"
    lost = thread.send(thread_click(thread, f"{key}:chose_competitor", "went with HubSpot"))
    (mark,) = events_of(lost, DealMarked)
    assert (mark.reason, mark.competitor, mark.via) == ("chose_competitor", "HubSpot", "button")
    assert events_of(lost, TicketResolved)[0].reason == "chose_competitor"


def thread_click(thread: Recording, target: str, note: str) -> Any:
    from domain.inbound import ButtonClicked

    return ButtonClicked(action="mark_lost", target=target, actor=REP, note=note, **thread.ids())


def test_a_rep_pressing_accept_is_refused_unless_the_policy_allows_it_on_behalf(
    default_policy: Policy,
) -> None:
    convo = Recording(default_policy, "lead-1")
    convo.lead(HOT)
    convo.command("quote", "10 pro", REP)
    (quote,) = convo.quote_ids()
    refused = convo.click("accept_quote", quote, REP)
    assert events_of(refused, ActionIgnored)[0].reason == "prospects_act"
    assert "prospect's decision" in told(refused)[0]
    assert convo.state.outcome is None

    allowed = quotes(default_policy, accept_on_behalf=True)
    on_behalf = Recording(allowed, "lead-2")
    on_behalf.lead(HOT)
    on_behalf.command("quote", "10 pro", REP)
    accepted = on_behalf.click("accept_quote", on_behalf.quote_ids()[0], REP)
    (event,) = events_of(accepted, QuoteAccepted)
    assert (event.by, event.on_behalf) == ("U_RAE", True)
    assert "on behalf of" in events_of(accepted, TeamNotified)[0].text

    legacy = quotes(default_policy, accept_on_behalf=None)
    old = Recording(legacy, "lead-3")
    old.lead(HOT)
    old.command("quote", "10 pro", REP)
    (kept,) = events_of(old.click("accept_quote", old.quote_ids()[0], REP), QuoteAccepted)
    assert kept.model_dump(mode="json") == {
        "schema_version": 1,
        "type": "quote_accepted",
        "quote_id": kept.quote_id,
        "by": "U_RAE",
    }
    assert legacy.canonical_json() != default_policy.canonical_json()


def test_a_stored_policy_without_the_new_keys_hashes_and_draws_as_before(
    default_policy: Policy,
) -> None:
    """Without `[handoff] outcome_buttons` and `[quotes] accept_on_behalf` the canonical JSON
    (so the version) leaves them out, the cards carry no Won / Lost, and *Mark lost* closes
    the deal at once as it always did."""
    assert default_policy.handoff is not None
    desk = default_policy.handoff.model_copy(update={"outcome_buttons": False, "lead_room": False})
    rules = default_policy.quotes.model_copy(update={"accept_on_behalf": None})
    old = default_policy.model_copy(update={"handoff": desk, "quotes": rules})
    stored = json.loads(old.canonical_json())
    assert "outcome_buttons" not in stored["handoff"]
    assert "accept_on_behalf" not in stored["quotes"]
    lead = Recording(old, "lead-1")
    first = lead.lead(HOT)
    (card,) = [r.card for r in first.replies if r.card is not None and r.card.kind == "lead"]
    assert [b.action for b in card.buttons] == ["open_quote_form", "escalate"]
    lost = lead.click("mark_lost", "lead-1", REP)
    assert events_of(lost, DealMarked) == []
    assert events_of(lost, ConversationClosed)[0].outcome == "lost"
