"""Quotes that cannot be confused (the policy's `[quotes]`), through `decide`: what the
prospect, the rep and the approvers see when a newer quote supersedes an open one, when an
old or expired quote's Accept is pressed, and when an approved discount makes version 2.
A policy without `[quotes]` keeps deciding as before, and every such conversation replays
with 0 differences."""

from __future__ import annotations

import json
from typing import Any

import pytest

from domain.analytics import Metrics, QuoteCounts, compute_metrics, render_metrics
from domain.cards import Card, Reply
from domain.decision import Decision
from domain.events import (
    ActionIgnored,
    ConversationClosed,
    QuoteAccepted,
    QuoteAcceptRefused,
    QuoteIssued,
    QuoteRevised,
    QuoteSuperseded,
    TicketResolved,
)
from domain.inbound import (
    Actor,
)
from domain.policy import Policy, policy_from_json
from domain.quotes import QuoteRules
from domain.replay import replay_conversation
from domain.state import fold, initial_state
from tests.support.conversation import Recording

NOW = 1_790_000_000_000
DAY = 24 * 3600 * 1000
PROSPECT = Actor(id="P1", name="Dana Prospect", role="prospect")
REP = Actor(id="U_REP", name="Riley Rep", role="rep")
APPROVER = Actor(id="U_BOSS", name="Morgan Manager", role="rep", approver=True)
FEED = Actor(id="lead-feed", name="lead feed", role="prospect")
HOT_LEAD = "We have a $5000 budget, I am the CTO, starting next month"


class Deal(Recording):
    """One deal's conversation through `decide` (a lead from the feed, quotes by the rep),
    keeping what the runtime would store and returning each decision."""

    def __init__(self, policy: Policy, conversation_id: str = "conv-q7") -> None:
        super().__init__(policy, conversation_id, now=NOW, lead_actor=FEED)

    def lead(self, message: str = HOT_LEAD, credit: int | None = None) -> Decision:
        return super().lead(message, credit)

    def quote(self, args: str) -> tuple[Decision, str]:
        decision = self.command("quote", args, REP)
        (issued,) = events_of(decision, QuoteIssued)
        return decision, issued.quote.quote_id

    def click(self, action: Any, target: str, actor: Actor = PROSPECT) -> Decision:
        return super().click(action, target, actor)

    def replay_differences(self) -> int:
        policy = policy_from_json(self.policy.canonical_json())  # as the store keeps it
        replay = replay_conversation(
            self.state.conversation_id, self.inbounds, self.events, lambda _: policy
        )
        return len(replay.differences)


def events_of(decision: Decision, kind: type) -> list[Any]:
    return [env.event for env in decision.events if isinstance(env.event, kind)]


def replies_to(decision: Decision, audience: str) -> list[Reply]:
    return [r for r in decision.replies if r.audience == audience]


def card_of(reply: Reply) -> Card:
    assert reply.card is not None
    return reply.card


def actions(card: Card) -> list[str]:
    return [b.action for b in card.buttons]


@pytest.fixture
def separate_ids(default_policy: Policy) -> Policy:
    """The default policy as stored before `[quotes]`: every quote stays open until it
    expires, and an approval re-issues the quote under a new id."""
    return default_policy.model_copy(update={"quotes": QuoteRules()})


# ---- a newer quote supersedes the open ones ----------------------------------------------


def test_a_second_quote_turns_the_first_card_into_superseded_in_place(
    default_policy: Policy,
) -> None:
    deal = Deal(default_policy)
    deal.lead()
    _, first = deal.quote("10 pro 10%")
    decision, second = deal.quote("12 pro 10%")

    (superseded,) = events_of(decision, QuoteSuperseded)
    assert (superseded.quote_id, superseded.by_quote_id, superseded.by) == (first, second, "U_REP")
    update, *_ = replies_to(decision, "conversation")
    assert update.replaces == first
    assert card_of(update).ref == first
    assert card_of(update).status == f"Superseded by {second}"
    assert actions(card_of(update)) == [], "a superseded quote offers nothing to press"
    # Then the new quote, ready to accept, as a card of its own.
    new_card = card_of(replies_to(decision, "conversation")[-1])
    assert (new_card.ref, new_card.status) == (second, "Ready to accept")
    assert "accept_quote" in actions(new_card)
    assert deal.state.quotes[first].status == "superseded"
    assert deal.state.quotes[second].status == "issued"


def test_accepting_the_superseded_quote_is_refused_and_the_current_one_is_offered(
    default_policy: Policy,
) -> None:
    deal = Deal(default_policy)
    deal.lead()
    _, first = deal.quote("10 pro 10%")
    _, second = deal.quote("12 pro 10%")
    flow = deal.state.flow_state

    refused = deal.click("accept_quote", first)

    (event,) = events_of(refused, QuoteAcceptRefused)
    assert (event.quote_id, event.reason, event.current_quote_id) == (first, "superseded", second)
    assert not events_of(refused, QuoteAccepted)
    assert not events_of(refused, ConversationClosed)
    assert deal.state.outcome is None
    assert deal.state.flow_state == flow
    # The clicked card is brought up to date where it is ...
    (update,) = replies_to(refused, "conversation")
    assert update.replaces == first
    assert card_of(update).status == f"Superseded by {second}"
    # ... and the prospect is told why, with the current quote to accept.
    (told,) = replies_to(refused, "requester")
    assert told.text == (
        f"Quote {first} has been replaced, so it can no longer be accepted. "
        f"The current quote is {second}; you can accept it here."
    )
    offered = card_of(told)
    assert offered.title == f"Quote {second}"
    assert any(b.action == "accept_quote" and b.target == second for b in offered.buttons)
    assert offered.ref == "", "updates in place keep addressing the card in the conversation"
    assert not any("cap" in line for line in offered.lines), "drawn for the prospect"

    accepted = deal.click("accept_quote", second)
    assert [e.quote_id for e in events_of(accepted, QuoteAccepted)] == [second]
    assert events_of(accepted, ConversationClosed)[0].outcome == "won"
    assert replies_to(accepted, "conversation")[0].replaces == second


def test_a_quote_issued_after_the_deal_was_won_leaves_the_accepted_quote_alone(
    default_policy: Policy,
) -> None:
    deal = Deal(default_policy)
    deal.lead()
    _, first = deal.quote("10 pro")
    deal.click("accept_quote", first)
    decision, _ = deal.quote("12 pro")
    assert not events_of(decision, QuoteSuperseded)
    assert deal.state.quotes[first].status == "accepted"


def test_a_quote_waiting_for_approval_is_superseded_and_its_approval_closes(
    default_policy: Policy,
) -> None:
    deal = Deal(default_policy)
    deal.lead()
    _, pending = deal.quote("10 pro 20%")
    requested = deal.click("request_approval", pending, REP)
    ticket = card_of(replies_to(requested, "approvers")[0]).ref

    decision, current = deal.quote("10 pro 10%")

    assert [e.quote_id for e in events_of(decision, QuoteSuperseded)] == [pending]
    assert [e.ticket_key for e in events_of(decision, TicketResolved)] == [ticket]
    (approvers,) = replies_to(decision, "approvers")
    assert approvers.replaces == ticket
    assert card_of(approvers).status == f"Superseded by {current}"
    assert actions(card_of(approvers)) == []
    # The prospect never saw the pending quote: no card of it appears in the conversation.
    assert all(card_of(r).ref != pending for r in replies_to(decision, "conversation") if r.card)

    late = deal.click("approve_quote", pending, APPROVER)
    assert events_of(late, ActionIgnored)[0].reason == "already_decided"
    assert not events_of(late, QuoteRevised)


def test_superseded_cards_are_drawn_for_reps_where_the_policy_shows_reps_cards(
    default_policy: Policy,
) -> None:
    policy = default_policy.model_copy(
        update={"safeguards": default_policy.safeguards.model_copy(update={"prospect_view": False})}
    )
    deal = Deal(policy)
    deal.lead()
    _, pending = deal.quote("10 pro 20%")
    decision, current = deal.quote("10 pro 10%")
    update = next(r for r in replies_to(decision, "conversation") if r.replaces == pending)
    assert card_of(update).status == f"Superseded by {current}"
    assert any(line.startswith("approval = ") for line in card_of(update).lines)


# ---- expired quotes ----------------------------------------------------------------------


def test_accepting_an_expired_quote_is_refused_and_the_team_is_asked_for_a_new_one(
    default_policy: Policy,
) -> None:
    deal = Deal(default_policy)
    deal.lead()
    _, quote_id = deal.quote("10 pro")
    expires = deal.state.quotes[quote_id].quote.figures()["expires"]
    deal.now += default_policy.catalog.validity_days * DAY

    refused = deal.click("accept_quote", quote_id)

    (event,) = events_of(refused, QuoteAcceptRefused)
    assert (event.reason, event.current_quote_id) == ("expired", None)
    assert not events_of(refused, QuoteAccepted)
    assert deal.state.outcome is None
    (update,) = replies_to(refused, "conversation")
    assert (update.replaces, card_of(update).status) == (quote_id, f"Expired on {expires}")
    assert actions(card_of(update)) == []
    (told,) = replies_to(refused, "requester")
    assert told.text == (
        f"Quote {quote_id} expired on {expires}, so it can no longer be accepted. "
        "I have asked the team to send you a new one."
    )
    (team,) = replies_to(refused, "team")
    assert f"expired on {expires}" in team.text
    assert "please issue a new quote" in team.text


def test_an_expired_quote_is_superseded_by_the_next_one_which_is_then_offered(
    default_policy: Policy,
) -> None:
    deal = Deal(default_policy)
    deal.lead()
    _, old = deal.quote("10 pro")
    deal.now += 40 * DAY
    _, fresh = deal.quote("10 pro 5%")
    refused = deal.click("accept_quote", old)
    assert events_of(refused, QuoteAcceptRefused)[0].current_quote_id == fresh
    assert card_of(replies_to(refused, "requester")[0]).title == f"Quote {fresh}"


def test_when_the_current_quote_is_being_approved_the_prospect_hears_it_is_on_its_way(
    default_policy: Policy,
) -> None:
    deal = Deal(default_policy)
    deal.lead()
    _, old = deal.quote("10 pro")
    deal.quote("10 pro 20%")
    refused = deal.click("accept_quote", old)
    (told,) = replies_to(refused, "requester")
    assert told.card is None
    assert "A new quote is being prepared" in told.text
    assert events_of(refused, QuoteAcceptRefused)[0].current_quote_id is None


# ---- an approved discount is version 2 of the same quote --------------------------------


def test_an_approved_discount_is_version_two_of_the_same_quote_and_the_deal_closes_on_it(
    default_policy: Policy,
) -> None:
    deal = Deal(default_policy)
    deal.lead()
    _, quote_id = deal.quote("10 pro 20%")
    v1 = deal.state.quotes[quote_id].quote
    deal.click("request_approval", quote_id, REP)

    approved = deal.click("approve_quote", quote_id, APPROVER)

    assert not events_of(approved, QuoteIssued), "no second quote id for the deal"
    (revised,) = events_of(approved, QuoteRevised)
    assert (revised.quote.quote_id, revised.quote.version) == (quote_id, 2)
    assert (revised.previous_version, revised.reason) == (1, "discount_approved")
    assert revised.quote.total_cents == v1.total_cents == 159_200
    shown = card_of(replies_to(approved, "conversation")[0])
    assert (shown.title, shown.ref, shown.status) == (
        f"Quote {quote_id} v2",
        quote_id,
        "Ready to accept",
    )
    approvers = card_of(replies_to(approved, "approvers")[0])
    assert approvers.status == f"Approved by Morgan Manager: now {quote_id} v2"

    accepted = deal.click("accept_quote", quote_id)

    assert [e.quote_id for e in events_of(accepted, QuoteAccepted)] == [quote_id]
    assert events_of(accepted, ConversationClosed)[0].outcome == "won"
    record = deal.state.quotes[quote_id]
    assert (record.status, record.quote.version, record.quote.total_cents) == (
        "accepted",
        2,
        159_200,
    )
    closing = replies_to(accepted, "conversation")[0]
    assert closing.replaces == quote_id
    assert closing.text == f"Quote {quote_id} v2 accepted by Dana Prospect"
    assert card_of(closing).title == f"Quote {quote_id} v2"
    assert any("1,592.00 USD" in field.value for field in card_of(closing).fields)
    assert list(deal.state.quotes) == [quote_id], "one deal, one quote id"


def test_with_supersede_alone_an_approval_reissued_under_a_new_id_offers_the_new_one(
    default_policy: Policy,
) -> None:
    policy = default_policy.model_copy(
        update={
            "quotes": QuoteRules(supersede_open=True),
            "safeguards": default_policy.safeguards.model_copy(update={"prospect_view": False}),
        }
    )
    deal = Deal(policy)
    deal.lead()
    _, pending = deal.quote("10 pro 20%")
    deal.click("request_approval", pending, REP)
    (reissued,) = events_of(deal.click("approve_quote", pending, APPROVER), QuoteIssued)
    refused = deal.click("accept_quote", pending)
    assert events_of(refused, QuoteAcceptRefused)[0].current_quote_id == reissued.quote.quote_id
    (update,) = replies_to(refused, "conversation")
    assert card_of(update).status == "Replaced by a newer version"
    assert deal.replay_differences() == 0


# ---- replay and folding --------------------------------------------------------------------


def test_such_a_conversation_replays_with_no_differences_and_folds_to_the_same_state(
    default_policy: Policy,
) -> None:
    deal = Deal(default_policy)
    deal.lead()
    _, pending = deal.quote("10 pro 20%")
    deal.click("request_approval", pending, REP)
    deal.click("approve_quote", pending, APPROVER)
    _, newer = deal.quote("12 pro 10%")
    deal.click("accept_quote", pending)
    deal.now += 40 * DAY
    deal.click("accept_quote", newer)
    _, last = deal.quote("12 pro 5%")
    deal.click("accept_quote", last)
    types = {env.event.type for env in deal.events}
    assert {"quote_revised", "quote_superseded", "quote_accept_refused"} <= types
    assert deal.state.outcome == "won"

    assert deal.replay_differences() == 0
    start = initial_state(deal.state.conversation_id, default_policy.flow.start)
    assert fold(start, deal.events) == deal.state


def test_the_metrics_count_one_quote_id_per_deal_with_its_versions_and_superseded_quotes(
    default_policy: Policy, separate_ids: Policy
) -> None:
    def approved_then_requoted(policy: Policy) -> Metrics:
        deal = Deal(policy)
        deal.lead()
        _, pending = deal.quote("10 pro 20%")
        deal.click("request_approval", pending, REP)
        deal.click("approve_quote", pending, APPROVER)
        deal.quote("12 pro 10%")
        return compute_metrics(deal.events)

    metrics = approved_then_requoted(default_policy)
    assert metrics.quotes == QuoteCounts(issued=2, revised=1, superseded=1)
    assert (
        "Quotes: 2 issued; 1 approved as a new version under the same id (Q-… v2); "
        "1 superseded by a newer quote."
    ) in render_metrics(metrics)
    # Before `[quotes]`, the approval was a second quote id for the same deal.
    assert approved_then_requoted(separate_ids).quotes == QuoteCounts(issued=3)


# ---- a policy without [quotes] keeps deciding as before -----------------------------------


def test_without_the_switch_every_quote_stays_acceptable_and_approval_issues_a_new_id(
    separate_ids: Policy,
) -> None:
    deal = Deal(separate_ids)
    deal.lead()
    _, first = deal.quote("10 pro 10%")
    decision, _ = deal.quote("12 pro 10%")
    assert not events_of(decision, QuoteSuperseded)
    assert all(r.replaces is None for r in decision.replies)
    assert deal.state.quotes[first].status == "issued"

    other = Deal(separate_ids, "conv-q7-approval")
    other.lead()
    _, pending = other.quote("10 pro 20%")
    other.click("request_approval", pending, REP)
    approved = other.click("approve_quote", pending, APPROVER)
    (reissued,) = events_of(approved, QuoteIssued)
    assert reissued.quote.quote_id != pending
    assert reissued.replaces_quote_id == pending
    assert not events_of(approved, QuoteRevised)

    # The old quote closes the deal, as it always did under such a policy.
    accepted = deal.click("accept_quote", first)
    assert events_of(accepted, QuoteAccepted)[0].quote_id == first
    assert deal.replay_differences() == 0
    assert other.replay_differences() == 0


def test_without_the_switch_an_expired_quote_gets_the_old_refusal(separate_ids: Policy) -> None:
    deal = Deal(separate_ids)
    deal.lead()
    _, quote_id = deal.quote("10 pro")
    deal.now += 31 * DAY
    refused = deal.click("accept_quote", quote_id)
    assert [e.reason for e in events_of(refused, ActionIgnored)] == ["expired"]
    assert not events_of(refused, QuoteAcceptRefused)
    assert [r.audience for r in refused.replies] == ["requester"]


def test_a_policy_without_quotes_keeps_its_version_and_the_default_turns_both_on(
    default_policy: Policy, separate_ids: Policy
) -> None:
    assert "quotes" not in json.loads(separate_ids.canonical_json())
    assert json.loads(default_policy.canonical_json())["quotes"] == {
        "supersede_open": True,
        "approval_keeps_id": True,
        "accept_on_behalf": False,
    }
    stored = policy_from_json(separate_ids.canonical_json())
    assert stored.quotes == QuoteRules()
    assert stored.version == separate_ids.version
