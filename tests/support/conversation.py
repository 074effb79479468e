"""One conversation driven through `decide`, keeping what the runtime would store: the
recorded inbounds (for replay) and the events (for audit and folding)."""

from __future__ import annotations

from typing import Any

from domain.cards import Reply
from domain.decide import decide, new_conversation
from domain.decision import Decision
from domain.events import EventEnvelope, QuoteIssued
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
from domain.replay import RecordedInbound

NOW = 1_790_000_000_000
PROSPECT = Actor(id="P", name="Pat", role="prospect")


class Recording:
    def __init__(
        self,
        policy: Policy,
        conversation_id: str,
        *,
        now: int = NOW,
        lead_actor: Actor = PROSPECT,
    ) -> None:
        self.policy = policy
        self.state = new_conversation(conversation_id, policy)
        self.now = now
        self.lead_actor = lead_actor
        self.inbounds: list[RecordedInbound] = []
        self.events: list[EventEnvelope] = []

    def send(self, inbound: Inbound, policy: Policy | None = None) -> Decision:
        policy = policy or self.policy
        decision = decide(self.state, inbound, policy, self.now)
        self.inbounds.append(
            RecordedInbound(inbound=inbound, received_at_ms=self.now, policy_version=policy.version)
        )
        self.events.extend(decision.events)
        self.state = decision.state
        self.now += 1000
        return decision

    def ids(self) -> dict[str, Any]:
        return {
            "delivery_id": f"d{len(self.inbounds) + 1}",
            "conversation_id": self.state.conversation_id,
        }

    def lead(self, message: str, credit: int | None = None) -> Decision:
        lead = LeadDetails(name="Lee", message=message, credit_score=credit)
        return self.send(LeadArrived(lead=lead, actor=self.lead_actor, **self.ids()))

    def say(self, text: str, actor: Actor = PROSPECT, policy: Policy | None = None) -> Decision:
        return self.send(MessagePosted(text=text, actor=actor, **self.ids()), policy)

    def click(self, action: Any, target: str, actor: Actor) -> Decision:
        return self.send(ButtonClicked(action=action, target=target, actor=actor, **self.ids()))

    def command(self, command: str, args: str, actor: Actor) -> Decision:
        return self.send(CommandInvoked(command=command, args=args, actor=actor, **self.ids()))

    def quote_ids(self) -> list[str]:
        return [e.event.quote.quote_id for e in self.events if isinstance(e.event, QuoteIssued)]


def shows_prospects_words(reply: Reply) -> bool:
    """A post of the prospect's own words in the lead's thread (`[handoff] lead_room`), not
    something the bot tells the team."""
    return reply.audience == "team" and reply.card is None and " wrote: “" in reply.text
