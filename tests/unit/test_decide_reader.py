"""`decide` with the trained reader (the default policy): what a prospect's words now do.

These are behaviours a prospect or a rep notices — a request for a person reaches a person,
paperwork reaches a specialist with a ticket, an approved budget is not an objection — and the
guarantees that make them auditable: the reading is recorded with its features, and every
`w × x` adds up exactly.
"""

from __future__ import annotations

import itertools
from typing import Any

from domain.decide import decide, new_conversation
from domain.decision import Decision
from domain.events import LeadScored, MessageRead, ObjectionClassified, TicketOpened
from domain.inbound import Actor, MessagePosted
from domain.policy import Policy
from domain.state import ConversationState

NOW = 1_796_000_000_000  # 2026-12-01
PROSPECT = Actor(id="P1", name="Dana Prospect", role="prospect")
_ids = itertools.count(1)


def say(policy: Policy, *texts: str) -> tuple[ConversationState, list[Decision]]:
    state = new_conversation("conv-reader", policy)
    decisions = []
    for text in texts:
        inbound = MessagePosted(
            delivery_id=f"d-{next(_ids)}",
            conversation_id="conv-reader",
            actor=PROSPECT,
            text=text,
        )
        decision = decide(state, inbound, policy, NOW)
        state = decision.state
        decisions.append(decision)
    return state, decisions


def events_of(decisions: list[Decision], kind: type) -> list[Any]:
    return [env.event for d in decisions for env in d.events if isinstance(env.event, kind)]


def test_a_request_for_a_person_opens_a_ticket_that_says_so(default_policy: Policy) -> None:
    state, decisions = say(default_policy, "Can I talk to a real person please?")
    assert state.flow_state == "handoff"
    tickets = events_of(decisions, TicketOpened)
    assert len(tickets) == 1
    assert "human_request" in tickets[0].reason


def test_contract_paperwork_reaches_a_specialist_with_a_ticket(default_policy: Policy) -> None:
    state, decisions = say(default_policy, "We'll need an NDA signed before we share anything.")
    assert state.flow_state == "handoff"
    assert "legal" in events_of(decisions, TicketOpened)[0].reason


def test_an_approved_budget_from_a_decider_is_not_an_authority_objection(
    default_policy: Policy,
) -> None:
    state, decisions = say(default_policy, "cfo here. $40k approved. want to buy before EOQ.")
    read = events_of(decisions, MessageRead)[0]
    assert read.objection != "authority"
    assert read.signals["budget"] is True
    assert state.signals["budget"] is True


def test_the_reading_is_recorded_with_features_and_its_sums_add_up(
    default_policy: Policy,
) -> None:
    _, decisions = say(default_policy, "Wir haben 50.000 € Budget und wollen im Januar starten.")
    read = events_of(decisions, MessageRead)[0]
    assert read.language == "de"
    assert read.features
    assert all(type(value) is int for value in read.features.values())
    for explanation in read.explanations:
        assert explanation.bias + sum(t[3] for t in explanation.terms) == explanation.total
        assert all(t[1] * t[2] == t[3] for t in explanation.terms)
    score = events_of(decisions, LeadScored)[0].score
    assert sum(score.contributions.values()) == score.score


def test_a_signal_taken_back_is_no_longer_held(default_policy: Policy) -> None:
    state, _ = say(
        default_policy,
        "We have budget set aside for this.",
        "Actually scratch that, there is no budget after all.",
    )
    assert state.signals.get("budget") is False


def test_the_seed_policy_still_reads_with_its_lexicons(seed_policy: Policy) -> None:
    _, decisions = say(seed_policy, "We need a contract review")
    assert events_of(decisions, MessageRead) == []
    assert events_of(decisions, ObjectionClassified)
