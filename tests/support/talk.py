"""A prospect's conversation driven through `decide` from plain moves, and what the prospect
and the team saw: shared by the conversation property test and the scripted conversations."""

from __future__ import annotations

import itertools
from typing import Any

from domain.decide import decide, new_conversation
from domain.decision import Decision
from domain.events import Event, EventEnvelope
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
from domain.replay import RecordedInbound
from domain.state import ConversationState

DAY = 24 * 3600 * 1000
NOW = 1_796_000_000_000  # 2026-12-01
PROSPECT = Actor(id="P", name="Pat Prospect", role="prospect")
REP = Actor(id="R", name="Rae Rep", role="rep")
MANAGER = Actor(id="M", name="Max Manager", role="rep", approver=True, auditor=True)
TEAM_AUDIENCES = frozenset({"handoff", "team", "approvers"})
FIVE_PRODUCT_QUESTIONS = [
    "what does your product do?",
    "does it integrate with Salesforce?",
    "how many users?",
    "is there a free trial?",
    "do you have an API?",
]
"""The issue's five product questions in a row (each once got the same budget question)."""

Move = dict[str, Any]
Steps = list[tuple[Move, Decision]]


def says(*lines: str, pause_s: int = 30) -> list[Move]:
    """The prospect writing `lines`, one message each, `pause_s` apart."""
    return [{"kind": "prospect", "text": line, "pause_s": pause_s} for line in lines]


def inbound_for(move: Move, state: ConversationState, delivery_id: str) -> Inbound:
    """The inbound a move makes in the conversation `state` belongs to."""
    ids: dict[str, Any] = {"delivery_id": delivery_id, "conversation_id": state.conversation_id}
    kind = move["kind"]
    if kind == "lead":
        lead = LeadDetails(
            name="Pat Prospect",
            message=move["text"],
            credit_score=move.get("credit"),
            source=move.get("source", ""),
            company_size=move.get("company_size"),
        )
        return LeadArrived(lead=lead, actor=PROSPECT, **ids)
    if kind == "prospect":
        return MessagePosted(text=move["text"], actor=PROSPECT, **ids)
    if kind == "quote":
        return CommandInvoked(command="quote", args=move["args"], actor=REP, **ids)
    if kind == "click":
        targets = sorted(state.quotes) + sorted(state.tickets) + [""]
        if move["pick"] == "latest_ticket":  # the ticket opened last, whatever its key
            target = next(reversed(state.tickets), "")
        else:
            target = targets[move["pick"] % len(targets)]
        if move.get("choice") and target in state.tickets:
            # A button of the ticket's outcome picker (`domain.desk_cards.outcome_target`).
            target = ":".join((target, *move["choice"].split()))
        return ButtonClicked(action=move["action"], target=target, actor=move["actor"], **ids)
    if kind == "rep_says":
        # A rep writing in the prospect's conversation (a shared thread: not to the bot).
        return MessagePosted(text=move["text"], actor=REP, addressed=False, **ids)
    if kind == "command":
        return CommandInvoked(command=move["command"], args=move["args"], actor=REP, **ids)
    if kind == "help":
        return CommandInvoked(command="help", args="", actor=PROSPECT, **ids)
    return TimerElapsed(actor=Actor(id="sweeper", role="system"), **ids)


def talk(policy: Policy, moves: list[Move], cid: str = "conv-props") -> Steps:
    """Each move decided in turn, as the runtime would (minus I/O)."""
    return record(policy, moves, cid)[0]


def record(
    policy: Policy, moves: list[Move], cid: str = "conv-props"
) -> tuple[Steps, list[RecordedInbound]]:
    """`talk`, plus the inbounds as the runtime stores them (for replay)."""
    state = new_conversation(cid, policy)
    now = NOW
    steps: Steps = []
    recorded: list[RecordedInbound] = []
    for number, move in enumerate(moves):
        now += move.get("pause_s", 0) * 1000 + move.get("days", 0) * DAY
        inbound = inbound_for(move, state, f"{cid}-d{number}")
        decision = decide(state, inbound, policy, now)
        recorded.append(
            RecordedInbound(inbound=inbound, received_at_ms=now, policy_version=policy.version)
        )
        state = decision.state
        steps.append((move, decision))
    return steps, recorded


def final_state(steps: Steps) -> ConversationState:
    return steps[-1][1].state


def events(steps: Steps, kind: type) -> list[Any]:
    found: list[Event] = [env.event for _, d in steps for env in d.events]
    return [event for event in found if isinstance(event, kind)]


def bot_messages_to_the_prospect(steps: Steps) -> list[str]:
    """What the prospect read from the bot, in order (new messages, not cards updated in
    place)."""
    return [
        reply.text
        for _, decision in steps
        for reply in decision.replies
        if reply.audience == "conversation" and reply.replaces is None
    ]


def unanswered(steps: Steps) -> list[str]:
    """Prospect messages that got no reply, no team post, and no person holding the thread."""
    missed = []
    for move, decision in steps:
        if move["kind"] not in ("lead", "prospect"):
            continue
        audiences = {reply.audience for reply in decision.replies}
        held = decision.state.open_handoff_ticket() is not None
        if "conversation" not in audiences and not audiences & TEAM_AUDIENCES and not held:
            missed.append(move["text"])
    return missed


def envelopes(steps: Steps) -> list[EventEnvelope]:
    """Every event the conversation recorded, as the store keeps them."""
    return [env for _, decision in steps for env in decision.events]


def repeated_in_a_row(said: list[str]) -> list[str]:
    """Every bot message that is the same text as the one just before it."""
    return [second for first, second in itertools.pairwise(said) if first == second]
