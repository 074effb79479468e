"""`decide` end to end on the default policy: conversations as a rep and a prospect see them."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from domain.cards import Reply
from domain.decide import decide, new_conversation
from domain.decision import Decision
from domain.events import (
    ActionIgnored,
    AuditRequested,
    CommandRefused,
    ConversationAbandoned,
    ConversationClosed,
    FlowAdvanced,
    LeadScored,
    QuoteIssued,
    QuoteRevised,
    TicketOpened,
)
from domain.inbound import (
    Actor,
    ButtonClicked,
    CommandInvoked,
    Inbound,
    LeadArrived,
    LeadDetails,
    MessagePosted,
    TimerElapsed,
)
from domain.policy import Policy
from domain.state import ConversationState, fold, initial_state
from tests.support.conversation import shows_prospects_words

NOW = 1_790_000_000_000
DAY = 24 * 3600 * 1000
PROSPECT = Actor(id="P1", name="Dana Prospect", role="prospect")
REP = Actor(id="U_REP", name="Riley Rep", role="rep")
OTHER_REP = Actor(id="U_OTHER", name="Sam Other", role="rep")
APPROVER = Actor(id="U_BOSS", name="Morgan Manager", role="rep", approver=True)
AUDITOR = Actor(id="U_AUDIT", name="Alex Auditor", role="rep", auditor=True)
FEED = Actor(id="lead-feed", name="lead feed", role="prospect")

_ids = itertools.count(1)


class Conversation:
    """Drives one conversation through `decide`, as the runtime would (minus I/O)."""

    def __init__(self, policy: Policy, conversation_id: str = "conv-1") -> None:
        self.policy = policy
        self.state: ConversationState = new_conversation(conversation_id, policy)
        self.now = NOW
        self.decisions: list[Decision] = []

    def send(self, inbound: Inbound) -> Decision:
        decision = decide(self.state, inbound, self.policy, self.now)
        self.state = decision.state
        self.decisions.append(decision)
        self.now += 1000
        return decision

    def _base(self, actor: Actor) -> dict[str, object]:
        return {
            "delivery_id": f"d-{next(_ids)}",
            "conversation_id": self.state.conversation_id,
            "actor": actor,
        }

    def lead(self, message: str, **details: object) -> Decision:
        lead = LeadDetails.model_validate({"name": "Dana Prospect", "message": message, **details})
        return self.send(LeadArrived(lead=lead, **self._base(FEED)))  # type: ignore[arg-type]

    def say(self, text: str, actor: Actor = PROSPECT) -> Decision:
        return self.send(MessagePosted(text=text, **self._base(actor)))  # type: ignore[arg-type]

    def command(self, command: str, args: str = "", actor: Actor = REP) -> Decision:
        return self.send(CommandInvoked(command=command, args=args, **self._base(actor)))  # type: ignore[arg-type]

    def click(self, action: str, target: str, actor: Actor = REP) -> Decision:
        return self.send(ButtonClicked(action=action, target=target, **self._base(actor)))  # type: ignore[arg-type]


def events_of(decision: Decision, kind: type) -> list[Any]:
    return [env.event for env in decision.events if isinstance(env.event, kind)]


def replies_to(decision: Decision, audience: str) -> list[Reply]:
    return [r for r in decision.replies if r.audience == audience]


@pytest.fixture
def convo(default_policy: Policy) -> Conversation:
    return Conversation(default_policy)


def test_a_hot_lead_goes_straight_to_a_proposal_and_the_team_sees_its_attribution(
    convo: Conversation,
) -> None:
    decision = convo.lead(
        "We have a $5000 budget, I am the head of sales and we want to start next month",
        company="Acme",
        credit_score=580,
    )
    assert convo.state.flow_state == "proposal"
    assert convo.state.qualified
    to_prospect = replies_to(decision, "conversation")
    assert len(to_prospect) == 1
    assert "call" in to_prospect[0].text
    lead_card = replies_to(decision, "team")[0].card
    assert lead_card is not None
    assert lead_card.kind == "lead"
    shown = " ".join(f"{f.label} {f.value}" for f in lead_card.fields)
    assert "budget +" in shown
    # The band in words with its calibrated chance, not a score in the model's units.
    band = next(f.value for f in lead_card.fields if f.label == "Band")
    assert band.startswith("hot — ")
    assert band.endswith("% chance it is a hot lead (calibrated)")
    assert "Score" not in [f.label for f in lead_card.fields]
    # The credit score and the fairness penalty never reach a shared channel (the audit).
    assert "580" not in shown
    assert "credit" not in shown
    assert "penal" not in shown


def test_a_vague_lead_is_greeted_by_name_and_asked_a_qualifying_question(
    convo: Conversation,
) -> None:
    decision = convo.lead("Hello, tell me more about your product", name="Dana Prospect")
    assert convo.state.flow_state == "greeting"
    assert replies_to(decision, "conversation")[0].text.startswith("Hi Dana")
    decision = convo.say("We are a team of twelve")
    assert convo.state.flow_state == "qualify"
    assert "?" in replies_to(decision, "conversation")[0].text


def test_a_name_that_looks_like_a_format_string_is_shown_literally(convo: Conversation) -> None:
    decision = convo.lead("Hello there", name="{0.__class__.__mro__}")
    text = replies_to(decision, "conversation")[0].text
    assert "{0.__class__.__mro__}" in text


def test_a_contract_question_always_goes_to_a_human_with_one_ticket(convo: Conversation) -> None:
    convo.lead("Hi, we are evaluating tools")
    decision = convo.say("Can we cancel the contract early and get a refund?")
    assert convo.state.flow_state == "handoff"
    tickets = events_of(decision, TicketOpened)
    assert len(tickets) == 1
    assert "billing_refund" in tickets[0].reason  # the reader's reason names the topic
    handoff = replies_to(decision, "handoff")
    assert handoff
    assert handoff[0].card is not None
    assert "refund" in handoff[0].card.text
    # The prospect hears who takes over, not "a specialist for that request".
    assert "colleague who handles billing" in replies_to(decision, "conversation")[0].text


def test_while_a_human_holds_the_conversation_the_bot_records_but_stays_silent(
    convo: Conversation,
) -> None:
    convo.lead("Hi")
    convo.say("I need to talk about our legal terms")
    decision = convo.say("Hello? Anyone there?")
    # The prospect hears nothing from the bot; the team's ticket card shows the message (and
    # the lead's thread the prospect's words).
    (card,) = [r for r in decision.replies if not shows_prospects_words(r)]
    assert card.audience == "handoff"
    assert card.card is not None
    assert card.replaces == card.card.ref
    assert card.card.text.endswith("prospect: Hello? Anyone there?")
    assert convo.state.transcript[-1] == ("prospect", "Hello? Anyone there?")


def test_claiming_a_ticket_is_first_wins_and_the_second_claimer_is_told_who_has_it(
    convo: Conversation,
) -> None:
    convo.lead("Hi")
    convo.say("Our lawyer has questions about liability")
    key = next(iter(convo.state.tickets))
    convo.click("claim_ticket", key, REP)
    second = convo.click("claim_ticket", key, OTHER_REP)
    assert events_of(second, ActionIgnored)[0].reason == "already_claimed"
    assert "U_REP" in second.replies[0].text
    assert convo.state.tickets[key].claimed_by == "U_REP"


def test_handing_back_resumes_the_flow_and_the_bot_speaks_again(convo: Conversation) -> None:
    convo.lead("Hi")
    convo.say("Can our legal team review the contract terms and the SLA first?")
    key = next(iter(convo.state.tickets))
    convo.click("claim_ticket", key)
    decision = convo.click("return_to_bot", key)
    assert convo.state.flow_state == "qualify"
    assert convo.state.tickets[key].status == "resolved"
    assert replies_to(decision, "conversation")
    decision = convo.say("We have budget approved")
    assert replies_to(decision, "conversation")


def test_a_rep_quote_in_the_thread_posts_a_card_and_accepting_it_closes_the_deal(
    convo: Conversation,
) -> None:
    convo.lead("We have a $5000 budget, I am the CTO, starting next month")
    decision = convo.say("quote 10 pro 10%", actor=REP)
    quote = events_of(decision, QuoteIssued)[0].quote
    assert quote.total_cents == 179100
    card = replies_to(decision, "conversation")[0].card
    assert card is not None
    assert card.kind == "quote"
    assert next(b.action for b in card.buttons) == "accept_quote"
    assert any("1,990.00" in line for line in card.lines)
    decision = convo.click("accept_quote", quote.quote_id, PROSPECT)
    assert convo.state.flow_state == "closed"
    assert events_of(decision, ConversationClosed)[0].outcome == "won"
    assert decision.replies[0].replaces == quote.quote_id


def test_a_second_click_on_accept_changes_nothing_and_says_so(convo: Conversation) -> None:
    convo.lead("We have a $5000 budget, I am the CTO, starting next month")
    quote_id = events_of(convo.command("quote", "10 pro"), QuoteIssued)[0].quote.quote_id
    convo.click("accept_quote", quote_id, PROSPECT)
    version = convo.state.version
    again = convo.click("accept_quote", quote_id, PROSPECT)
    assert [type(env.event) for env in again.events] == [ActionIgnored]
    assert "already accepted" in again.replies[0].text
    assert convo.state.version == version + 1


def test_a_discount_above_the_cap_goes_through_approval_and_becomes_version_two(
    convo: Conversation,
) -> None:
    convo.lead("We have a $5000 budget, I am the CTO, starting next month")
    decision = convo.command("quote", "10 pro 20%")
    quote = events_of(decision, QuoteIssued)[0].quote
    assert quote.needs_approval
    # The prospect hears a quote is being prepared; only the rep sees it, and why it waits.
    assert [r.card for r in replies_to(decision, "conversation")] == [None]
    card = replies_to(decision, "requester")[0].card
    assert card is not None
    assert next(b.action for b in card.buttons) == "request_approval"
    assert "rep cap of 15%" in card.status

    blocked = convo.click("accept_quote", quote.quote_id, PROSPECT)
    assert events_of(blocked, ActionIgnored)[0].reason == "needs_approval"

    requested = convo.click("request_approval", quote.quote_id, REP)
    assert [t.kind for t in events_of(requested, TicketOpened)] == ["approval"]
    assert replies_to(requested, "approvers")
    assert not replies_to(requested, "conversation")

    refused = convo.click("approve_quote", quote.quote_id, OTHER_REP)
    assert events_of(refused, ActionIgnored)[0].reason == "not_approver"

    approved = convo.click("approve_quote", quote.quote_id, APPROVER)
    assert not events_of(approved, QuoteIssued)
    reissued = events_of(approved, QuoteRevised)[0]
    assert reissued.quote.quote_id == quote.quote_id
    assert reissued.quote.version == 2
    assert not reissued.quote.needs_approval
    assert any("Morgan Manager" in line for line in reissued.quote.proof)
    assert reissued.quote.total_cents == quote.total_cents
    shown = replies_to(approved, "conversation")[0].card
    assert shown is not None
    assert shown.title == f"Quote {quote.quote_id} v2"
    assert [b.action for b in shown.buttons] == ["accept_quote", "escalate"]
    assert not any("Morgan Manager" in line or "cap" in line for line in shown.lines)

    convo.click("accept_quote", reissued.quote.quote_id, PROSPECT)
    assert convo.state.outcome == "won"


def test_a_discount_above_the_maximum_is_refused_privately_and_changes_nothing(
    convo: Conversation,
) -> None:
    convo.lead("Hi")
    version = convo.state.version
    decision = convo.command("quote", "10 pro 50%")
    assert decision.events == ()
    assert decision.replies[0].audience == "requester"
    assert "30%" in decision.replies[0].text
    assert convo.state.version == version


def test_a_quote_usage_error_shows_the_usage_line(convo: Conversation) -> None:
    decision = convo.command("quote", "lots please")
    assert decision.events == ()
    assert "quote <qty>" in decision.replies[0].text


def test_audit_is_for_auditors_and_a_refusal_is_recorded(convo: Conversation) -> None:
    refused = convo.command("audit", "conv-1", REP)
    assert events_of(refused, CommandRefused)[0].reason == "not_auditor"
    assert refused.queries == ()
    assert "auditors" in refused.replies[0].text
    allowed = convo.command("audit", "conv-1", AUDITOR)
    assert events_of(allowed, AuditRequested)[0].by == "U_AUDIT"
    assert allowed.queries[0].kind == "audit"


def test_rights_named_in_the_configuration_are_only_for_our_own_people(
    convo: Conversation,
) -> None:
    # A guest or another organisation's user whose id is listed (a stale entry, a typo)
    # may neither audit nor approve: both need a rep.
    outsider = Actor(id="G1", name="Gus Guest", role="prospect", approver=True, auditor=True)
    convo.lead("We have a $5000 budget, I am the CTO, starting next month")
    quote = events_of(convo.command("quote", "10 pro 20%"), QuoteIssued)[0].quote
    convo.click("request_approval", quote.quote_id, REP)
    refused = convo.click("approve_quote", quote.quote_id, outsider)
    assert events_of(refused, ActionIgnored)[0].reason == "not_approver"
    audit = convo.command("audit", "conv-1", outsider)
    assert events_of(audit, CommandRefused)[0].reason == "not_auditor"
    assert audit.queries == ()


def test_an_unknown_command_lists_the_known_ones_and_records_nothing(convo: Conversation) -> None:
    decision = convo.command("refund")
    assert decision.events == ()
    assert "quote" in decision.replies[0].text
    assert "help" in decision.replies[0].text


def test_lead_scores_pasted_text_without_touching_the_conversation(convo: Conversation) -> None:
    decision = convo.command("lead", "We have a $5000 budget and start next month")
    scored = events_of(decision, LeadScored)[0]
    assert scored.subject == "pasted_text"
    assert convo.state.score is None
    assert decision.replies[0].card is not None
    assert decision.replies[0].card.kind == "score"


def test_a_quiet_unqualified_conversation_is_abandoned_after_the_policy_limit(
    convo: Conversation,
) -> None:
    convo.lead("Hello")
    timer = {"conversation_id": "conv-1", "actor": Actor(id="sweeper", role="system")}
    convo.now += DAY
    early = convo.send(TimerElapsed(delivery_id="t-1", **timer))  # type: ignore[arg-type]
    assert early.events == ()
    convo.now += 7 * DAY
    late = convo.send(TimerElapsed(delivery_id="t-2", **timer))  # type: ignore[arg-type]
    assert convo.state.flow_state == "abandoned"
    assert events_of(late, ConversationAbandoned)


def test_the_bot_hands_off_after_its_turn_limit_without_qualifying(convo: Conversation) -> None:
    convo.lead("Hello")
    for _ in range(convo.policy.conversation.max_bot_turns + 1):
        if convo.state.flow_state == "handoff":
            break
        convo.say("hmm, let me think")
    assert convo.state.flow_state == "handoff"
    assert [t.reason for t in convo.state.tickets.values()] == ["turn_limit"]


def test_every_event_carries_the_policy_version_and_gap_free_sequence(convo: Conversation) -> None:
    convo.lead("We have a $5000 budget")
    convo.say("Can we talk about the contract?")
    all_events = [env for d in convo.decisions for env in d.events]
    assert [env.seq for env in all_events] == list(range(1, len(all_events) + 1))
    assert {env.policy_version for env in all_events} == {convo.policy.version}
    assert all(isinstance(env.at_ms, int) for env in all_events)


def test_folding_the_stored_events_rebuilds_the_state(convo: Conversation) -> None:
    convo.lead("We have a $5000 budget, I am the CTO")
    convo.say("quote 5 starter", actor=REP)
    convo.say("Too expensive for us honestly")
    all_events = [env for d in convo.decisions for env in d.events]
    rebuilt = fold(initial_state("conv-1", convo.policy.flow.start), all_events)
    assert rebuilt == convo.state


def test_flow_transitions_are_recorded_with_their_guard(convo: Conversation) -> None:
    decision = convo.lead("Hi")
    convo_decision = convo.say("Our lawyer has to review the contract terms before we sign")
    moves = events_of(convo_decision, FlowAdvanced)
    assert moves[-1].to_state == "handoff"
    assert moves[-1].guard == "is_sensitive"
    assert events_of(decision, FlowAdvanced)[0].from_state == "start"


def test_a_price_objection_gets_a_price_answer_and_stays_with_the_bot(
    convo: Conversation,
) -> None:
    convo.lead("Hi, we are looking at tools")
    decision = convo.say("Honestly it's too expensive for us")
    assert convo.state.flow_state == "objection"
    wordings = convo.policy.active_persona.templates["objection.price"].texts
    assert replies_to(decision, "conversation")[0].text in wordings
    assert not events_of(decision, TicketOpened)


def test_under_the_seed_policy_a_price_objection_gets_the_notebooks_answer(
    seed_policy: Policy,
) -> None:
    convo = Conversation(seed_policy)
    convo.lead("Hi, we are looking at tools")
    decision = convo.say("Honestly it's too expensive for us")
    assert convo.state.flow_state == "objection"
    assert replies_to(decision, "conversation")[0].text == (
        "I understand pricing is important. Can I show value relevant to your goals?"
    )


def test_an_ambiguous_objection_escalates_for_low_confidence(lexicon_policy: Policy) -> None:
    """The lexicon classifier's confidence rule (policies without the trained reader)."""
    convo = Conversation(lexicon_policy)
    convo.lead("Hi")
    decision = convo.say("Honestly it is too expensive, and the timing is bad.")
    assert convo.state.flow_state == "handoff"
    assert [t.reason for t in events_of(decision, TicketOpened)] == ["low_confidence"]


def test_metrics_and_help_answer_only_the_person_who_asked(convo: Conversation) -> None:
    metrics = convo.command("metrics")
    assert metrics.events == ()
    assert metrics.queries[0].kind == "metrics"
    help_reply = convo.command("help").replies[0]
    assert help_reply.audience == "requester"
    assert help_reply.card is not None
    assert [f.label.split()[0] for f in help_reply.card.fields] == [
        "quote",
        "lead",
        "audit",
        "metrics",
        "correct",
        "resume",
        "won",
        "lost",
        "setup",
        "help",
    ]


def test_a_prospect_cannot_quote_and_the_refusal_is_recorded(convo: Conversation) -> None:
    decision = convo.command("quote", "10 pro", actor=PROSPECT)
    assert events_of(decision, CommandRefused)[0].reason == "reps_only"
    assert not events_of(decision, QuoteIssued)


def test_a_message_after_the_deal_closed_reaches_a_human_once(convo: Conversation) -> None:
    convo.lead("We have a $5000 budget, I am the CTO, starting next month")
    convo.click("mark_lost", "conv-1:no_response")
    assert convo.state.outcome == "lost"
    first = convo.say("Wait, can we talk again?")
    second = convo.say("Hello?")
    assert [t.reason for t in events_of(first, TicketOpened)] == ["message_after_close"]
    # Once: the second message opens no ticket and gets no reply; it refreshes the card.
    assert events_of(second, TicketOpened) == []
    assert [reply.audience for reply in second.replies] == ["team", "handoff"]
    assert shows_prospects_words(second.replies[0])  # the lead's thread shows their words


def test_a_reps_unaddressed_words_are_recorded_only_where_the_bot_runs_a_conversation(
    convo: Conversation,
) -> None:
    elsewhere = Conversation(convo.policy, "some-other-thread")
    chatter = MessagePosted(
        delivery_id="x1",
        conversation_id="some-other-thread",
        actor=REP,
        text="quote 10 pro",
        addressed=False,
    )
    assert elsewhere.send(chatter) == Decision(state=elsewhere.state)
    convo.lead("Hi")
    convo.say("We need to talk about the contract")
    answer = MessagePosted(
        delivery_id="x2",
        conversation_id="conv-1",
        actor=REP,
        text="Happy to walk you through it",
        addressed=False,
    )
    decision = convo.send(answer)
    assert decision.replies == ()  # a lead's thread: recorded, nothing taken over
    # Under `[handoff]` the record names the rep as people see them (the ticket card shows it).
    assert convo.state.transcript[-1] == ("rep Riley Rep", "Happy to walk you through it")
