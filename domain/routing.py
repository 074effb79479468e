"""Owners: who a conversation belongs to, under the policy's `[routing]`.

The owner is chosen once per conversation, when the prospect first speaks (a lead arriving,
a first message), and recorded as `owner_assigned` with the rule that chose it: the first
of `[[routing.rules]]` a lead's field matches, else the `spread` by a SHA-256 of the
conversation id — the same owner in every process and every replay, with no counter to keep.
From then on the lead card and the ticket card name the owner, team posts mention them, a
meeting request gets their booking link (`[meetings] owners`), and while a routed ticket is
fresh (`owner_exclusive_ms`) only they or a manager may claim it (`claim_refused`).
"""

from __future__ import annotations

import hashlib

from domain.cards import Person
from domain.decision import Recorder
from domain.desk_cards import age_words
from domain.events import OwnerAssigned, TicketClaimRefused
from domain.inbound import Actor, LeadDetails
from domain.permissions import permitted
from domain.routing_config import Routes, RoutingRule
from domain.state import ConversationState, TicketRecord


def _field(lead: LeadDetails, rule: RoutingRule) -> str | int | None:
    match rule.field:
        case "company_size":
            return lead.company_size
        case "territory":
            return lead.territory
        case "segment":
            return lead.segment
        case "source":
            return lead.source


def matches(rule: RoutingRule, lead: LeadDetails) -> bool:
    """Whether `lead` is one `rule` routes: a text field equal to one of its values (case
    and surrounding spaces aside), or a company size in its range."""
    value = _field(lead, rule)
    if isinstance(value, int):
        low_ok = rule.at_least is None or value >= rule.at_least
        high_ok = rule.below is None or value < rule.below
        return low_ok and high_ok
    if not value or not rule.equals:
        return False
    wanted = value.strip().casefold()
    return any(wanted == option.strip().casefold() for option in rule.equals)


def spread_index(conversation_id: str, owners: int) -> int:
    """Which of `owners` a conversation is spread to: the first 8 bytes of the SHA-256 of its
    id, big-endian, modulo the count (the same in every process: no salted `hash()`)."""
    digest = hashlib.sha256(conversation_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % owners


def choose_owner(
    config: Routes, conversation_id: str, lead: LeadDetails | None
) -> OwnerAssigned | None:
    """The owner `config` gives this conversation, as the event that records it; None when
    no rule matches and there is no spread."""
    if lead is not None:
        for number, rule in enumerate(config.rules, start=1):
            if matches(rule, lead):
                return OwnerAssigned(
                    owner=rule.owner,
                    rule=f"rule:{number}",
                    name=config.name_of(rule.owner),
                    matched=rule.describe(),
                )
    if not config.spread:
        return None
    owner = config.spread[spread_index(conversation_id, len(config.spread))]
    return OwnerAssigned(owner=owner, rule="spread", name=config.name_of(owner))


def assign_owner(rec: Recorder) -> None:
    """Give the conversation its owner, once (the prospect has just spoken): one of its
    installation's people (`RoutingConfig.for_installation`), or nobody."""
    config = rec.policy.routing
    if config is None or rec.state.owner is not None:
        return
    routes = config.for_installation(rec.state.installation)
    if routes is None:
        return
    chosen = choose_owner(routes, rec.state.conversation_id, rec.state.lead)
    if chosen is not None:
        rec.record(chosen)


def owner_person(state: ConversationState) -> Person | None:
    """The owner as a reply mentions them (their platform id and name)."""
    if state.owner is None:
        return None
    return Person(id=state.owner, name=state.owner_name or state.owner)


def owner_label(state: ConversationState) -> str | None:
    """The owner as the cards show them."""
    return None if state.owner is None else state.owner_name or state.owner


def exclusive_until(rec: Recorder, ticket: TicketRecord) -> int | None:
    """Until when `ticket` is its owner's alone (`[routing] owner_exclusive_ms`), if it is
    still fresh at the decision's time; None when anyone may take it."""
    config = rec.policy.routing
    window = None if config is None else config.owner_exclusive_ms
    if window is None or rec.state.owner is None or ticket.opened_at_ms is None:
        return None
    until = ticket.opened_at_ms + window
    return until if rec.now_ms < until else None


def refuse_claim(rec: Recorder, actor: Actor, ticket: TicketRecord) -> bool:
    """Refuse a claim on a fresh routed ticket by someone neither its owner nor a manager:
    record it, tell them who owns it and for how long (whole minutes, rounded up). True when
    refused."""
    owner = rec.state.owner
    until = exclusive_until(rec, ticket)
    if until is None or owner is None:
        return False
    strict = rec.policy.safeguards.strict_roles
    if permitted(actor, "button:claim_ticket", strict=strict, owner=owner, fresh=True):
        return False  # the owner, or a manager (the roles matrix, `domain.permissions`)
    rec.record(TicketClaimRefused(ticket_key=ticket.key, by=actor.id, owner=owner, until_ms=until))
    rec.tell(
        actor,
        f"This ticket is routed to {owner_label(rec.state)}: only they or a manager can claim "
        f"it for another {age_words(until - rec.now_ms + 59_999)}. Ask them, or a manager.",
    )
    return True
