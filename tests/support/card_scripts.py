"""Neutral cards as the product really makes them: short conversations driven through
`decide` at a fixed clock, for every platform's rendering tests and golden files."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from domain.audit import audit_card, audit_conversation
from domain.audit_summary import hot_calibration
from domain.cards import Reply
from domain.decide import decide, new_conversation
from domain.events import EventEnvelope
from domain.inbound import (
    Actor,
    ButtonClicked,
    CommandInvoked,
    Inbound,
    LeadArrived,
    LeadDetails,
    MessagePosted,
)
from domain.policy import Policy

NOW = 1_790_000_000_000
FEED = Actor(id="lead-feed", name="lead feed", role="prospect")
PROSPECT = Actor(id="U_PROSPECT", name="Dana Prospect", role="prospect")
REP = Actor(id="U_REP", name="Riley Rep", role="rep")
MANAGER = Actor(id="U_BOSS", name="Morgan Manager", role="rep", approver=True)
HOT_LEAD = "We have a $5000 budget, I am the CTO, starting next month"


class Script:
    """One conversation driven through `decide` at a fixed clock, as the runtime would."""

    def __init__(self, policy: Policy, conversation: str) -> None:
        self.policy = policy
        self.conversation = conversation
        self.state = new_conversation(conversation, policy)
        self.step = 0
        self.events: list[EventEnvelope] = []

    def send(self, make: Callable[[dict[str, Any]], Inbound]) -> tuple[Reply, ...]:
        self.step += 1
        base = {"delivery_id": f"d-{self.step}", "conversation_id": self.conversation}
        decision = decide(self.state, make(base), self.policy, NOW + self.step * 1000)
        self.state = decision.state
        self.events.extend(decision.events)
        return decision.replies

    def lead(self, message: str) -> tuple[Reply, ...]:
        details = LeadDetails(name="Dana Prospect", company="Acme", message=message, source="web")
        return self.send(lambda base: LeadArrived(lead=details, actor=FEED, **base))

    def say(self, text: str, actor: Actor = PROSPECT) -> tuple[Reply, ...]:
        return self.send(lambda base: MessagePosted(text=text, actor=actor, **base))

    def command(self, command: str, args: str = "") -> tuple[Reply, ...]:
        return self.send(lambda base: CommandInvoked(command=command, args=args, actor=REP, **base))

    def click(self, action: Any, target: str, actor: Actor = REP) -> tuple[Reply, ...]:
        return self.send(
            lambda base: ButtonClicked(action=action, target=target, actor=actor, **base)
        )


def _card_reply(replies: tuple[Reply, ...], audience: str, kind: str) -> Reply:
    return next(
        r for r in replies if r.audience == audience and r.card is not None and r.card.kind == kind
    )


def quote_reply(policy: Policy, conversation: str) -> Reply:
    script = Script(policy, conversation)
    script.lead(HOT_LEAD)
    return _card_reply(script.command("quote", "10 pro 10%"), "conversation", "quote")


def ticket_reply(policy: Policy, conversation: str) -> Reply:
    script = Script(policy, conversation)
    script.lead("Hi, we are evaluating tools")
    return _card_reply(
        script.say("Can we cancel the contract early and get a refund?"), "handoff", "ticket"
    )


def approval_reply(policy: Policy, conversation: str) -> Reply:
    script = Script(policy, conversation)
    script.lead(HOT_LEAD)
    # A quote awaiting approval is shown to the rep who made it, never to the prospect.
    quote = _card_reply(script.command("quote", "10 pro 20%"), "requester", "quote")
    assert quote.card is not None
    return _card_reply(script.click("request_approval", quote.card.ref), "approvers", "ticket")


def pending_quote_reply(policy: Policy, conversation: str) -> Reply:
    """The rep's own copy of a quote awaiting approval: the rule and Request approval."""
    script = Script(policy, conversation)
    script.lead(HOT_LEAD)
    return _card_reply(script.command("quote", "10 pro 20%"), "requester", "quote")


def superseded_quote_reply(policy: Policy, conversation: str) -> Reply:
    """A quote's card after a newer quote took its place: updated in place, no Accept."""
    script = Script(policy, conversation)
    script.lead(HOT_LEAD)
    script.command("quote", "10 pro 10%")
    return next(
        r for r in script.command("quote", "12 pro 10%") if r.replaces and r.card is not None
    )


def approved_quote_reply(policy: Policy, conversation: str) -> Reply:
    """Version 2 of a quote whose discount a manager approved: the same id, `v2`."""
    script = Script(policy, conversation)
    script.lead(HOT_LEAD)
    quote = _card_reply(script.command("quote", "10 pro 20%"), "requester", "quote")
    assert quote.card is not None
    script.click("request_approval", quote.card.ref)
    approved = script.click("approve_quote", quote.card.ref, MANAGER)
    return _card_reply(approved, "conversation", "quote")


def lead_reply(policy: Policy, conversation: str) -> Reply:
    return _card_reply(Script(policy, conversation).lead(HOT_LEAD), "team", "lead")


def _taken_over(policy: Policy, conversation: str) -> tuple[Script, Reply]:
    """A prospect in a shared thread; a rep writes there and so takes it over."""
    script = Script(policy, conversation)
    script.say("Hi, we are evaluating tools for a team of 12")
    taken = script.send(
        lambda base: MessagePosted(
            text="Hi Dana, Riley from sales here. Happy to help.",
            actor=REP,
            addressed=False,
            **base,
        )
    )
    return script, _card_reply(taken, "handoff", "ticket")


def takeover_reply(policy: Policy, conversation: str) -> Reply:
    """The handoff desk: the ticket a rep's words in the conversation opened and hold."""
    return _taken_over(policy, conversation)[1]


def outcome_picker_reply(policy: Policy, conversation: str) -> Reply:
    """*Resolve* pressed: the ticket's card asks how it ended, updated in place."""
    script, card = _taken_over(policy, conversation)
    assert card.card is not None
    return _card_reply(script.click("resolve_ticket", card.card.ref), "handoff", "ticket")


def lost_reasons_reply(policy: Policy, conversation: str) -> Reply:
    """*Resolve → Lost…*: the policy's lost reasons."""
    script, card = _taken_over(policy, conversation)
    assert card.card is not None
    script.click("resolve_ticket", card.card.ref)
    return _card_reply(script.click("resolve_ticket", f"{card.card.ref}:lost"), "handoff", "ticket")


def wrote_again_reply(policy: Policy, conversation: str) -> Reply:
    """Resolved as closed; the prospect writes again: reopened for the same holder."""
    script, card = _taken_over(policy, conversation)
    assert card.card is not None
    script.click("resolve_ticket", f"{card.card.ref}:closed")
    return _card_reply(script.say("Sorry, one more question about invoices"), "handoff", "ticket")


def audit_reply(policy: Policy, conversation: str) -> Reply:
    """`/audit` in chat: a hot lead quoted, then a question that needs a person; the card
    as `bot.queries` answers it (the summary and the decisions in plain words)."""
    script = Script(policy, conversation)
    script.lead(HOT_LEAD)
    script.command("quote", "10 pro 10%")
    script.say("Can we cancel the contract early and get a refund?")
    report = audit_conversation(
        conversation, script.events, lambda _version, score: hot_calibration(policy, score)
    )
    card = audit_card(report)
    return Reply(audience="requester", text=card.title, card=card)


def help_reply(policy: Policy, conversation: str) -> Reply:
    return _card_reply(Script(policy, conversation).command("help"), "requester", "help")


CARDS: dict[str, Callable[[Policy, str], Reply]] = {
    "quote_card": quote_reply,
    "ticket_card": ticket_reply,
    "approval_card": approval_reply,
    "pending_quote_card": pending_quote_reply,
    "superseded_quote_card": superseded_quote_reply,
    "approved_quote_card": approved_quote_reply,
    "lead_card": lead_reply,
    "help_card": help_reply,
    "takeover_card": takeover_reply,
    "outcome_picker_card": outcome_picker_reply,
    "lost_reasons_card": lost_reasons_reply,
    "wrote_again_card": wrote_again_reply,
    "audit_card": audit_reply,
}
