"""Replay: re-run a conversation's stored inbounds through `decide` and say what would change.

With the policies that were in force (looked up by their recorded versions), replay must
reproduce every decision: any difference is a determinism bug. With a candidate policy it
answers "what would this change do to real conversations?" before it is deployed, listing
per inbound the decisions that differ: flow state, replies, score, quote, ticket, and the
sequence of event types. Policy versions, timestamps and sequence numbers are not compared:
a new policy's hash differs by construction, and that alone is not a changed decision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from typing import Literal

from domain.decide import decide, new_conversation
from domain.errors import DomainError
from domain.events import (
    BotReplied,
    FlowAdvanced,
    LeadScored,
    MessageRead,
    PursuitDecided,
    QuoteIssued,
    QuoteRevised,
    RecordedEvent,
    TeamNotified,
    TicketOpened,
)
from domain.inbound import Inbound
from domain.model import Frozen
from domain.policy import Policy
from domain.presenters import number

Aspect = Literal["state", "reply", "score", "quote", "ticket", "team", "events"]

SHOWN_LIMIT = 300
"""Differences are read by people: long replies are clipped when shown (not when compared)."""


class RecordedInbound(Frozen):
    """An inbound as the runtime stored it: what arrived, when, and under which policy."""

    inbound: Inbound
    received_at_ms: int
    policy_version: str


class Difference(Frozen):
    """One aspect of one inbound's decision that replay decided differently."""

    conversation_id: str
    position: int
    delivery_id: str
    aspect: Aspect
    recorded: str
    replayed: str


class ConversationReplay(Frozen):
    conversation_id: str
    inbounds: int
    differences: tuple[Difference, ...]


def replay_conversation(
    conversation_id: str,
    recorded: Sequence[RecordedInbound],
    recorded_events: Sequence[RecordedEvent],
    policy_for: Callable[[str], Policy],
) -> ConversationReplay:
    """Re-decide `recorded` (in order, from a new conversation) and compare with the log.

    `policy_for` receives each inbound's recorded policy version and returns the policy to
    decide it with: the stored policy of that version for a determinism check, or always
    the same candidate policy for a what-if. Recorded events are matched to inbounds by
    delivery id; events of other conversations are ignored. Only the events of the types
    in `REPLAY_DECODES` are read beyond their type, place and delivery id, so the others
    may come as `UnreadEnvelope`s: the result is the same.
    """
    if not recorded:
        return ConversationReplay(conversation_id=conversation_id, inbounds=0, differences=())
    groups: dict[str, list[RecordedEvent]] = {}
    for env in recorded_events:
        if env.conversation_id == conversation_id:
            groups.setdefault(env.delivery_id, []).append(env)

    state = new_conversation(conversation_id, policy_for(recorded[0].policy_version))
    recorded_flow = state.flow_state
    differences: list[Difference] = []
    for position, item in enumerate(recorded, start=1):
        inbound = item.inbound
        if inbound.conversation_id != conversation_id:
            raise DomainError(
                f"Inbound {inbound.delivery_id} belongs to conversation "
                f"{inbound.conversation_id}, not {conversation_id}."
            )
        # A delivery is decided once; a repeated id (which dedupe prevents) gets no events.
        mine = sorted(groups.pop(inbound.delivery_id, []), key=lambda env: env.seq)
        reading = next((env.event for env in mine if isinstance(env.event, MessageRead)), None)
        decision = decide(
            state,
            inbound,
            policy_for(item.policy_version),
            item.received_at_ms,
            recorded_reading=reading,
            explain=False,  # the audit's, never compared (`decide`)
        )
        state = decision.state
        for env in mine:
            if isinstance(env.event, FlowAdvanced):
                recorded_flow = env.event.to_state
        before = _facts(mine, recorded_flow)
        after = _facts(decision.events, state.flow_state)
        differences.extend(
            Difference(
                conversation_id=conversation_id,
                position=position,
                delivery_id=inbound.delivery_id,
                aspect=aspect,
                recorded=_shown(before[aspect]),
                replayed=_shown(after[aspect]),
            )
            for aspect in before
            if before[aspect] != after[aspect]
        )
    return ConversationReplay(
        conversation_id=conversation_id,
        inbounds=len(recorded),
        differences=tuple(differences),
    )


def _facts(events: Sequence[RecordedEvent], flow_state: str) -> dict[Aspect, tuple[str, ...]]:
    """The compared aspects of one inbound's decision, as readable values.

    Values are built from what the decision means (texts, amounts, bands, reasons), never
    from the policy version, the timestamp or the sequence number.
    """
    replies: list[str] = []
    scores: list[str] = []
    quotes: list[str] = []
    tickets: list[str] = []
    team: list[str] = []  # what the team is told, and who is pursued now
    for env in events:
        event = env.event
        kind = _KINDS.get(type(event))
        if kind is None:
            kind = _KINDS[type(event)] = _kind(event)
        if kind is _Kind.OTHER:
            continue
        if isinstance(event, BotReplied):
            replies.append(event.text)
        elif isinstance(event, LeadScored) and event.subject == "conversation":
            outcome = "qualified" if event.qualified else "not qualified"
            scores.append(f"{number(event.score.score)} {event.score.band}, {outcome}")
        elif isinstance(event, QuoteIssued):
            quote = event.quote
            approval = "needs approval" if quote.needs_approval else "no approval needed"
            quotes.append(f"{quote.quote_id} total {quote.figures()['total']}, {approval}")
        elif isinstance(event, QuoteRevised):
            quote = event.quote
            quotes.append(f"{quote.label} total {quote.figures()['total']}, {event.reason}")
        elif isinstance(event, TicketOpened):
            tickets.append(f"{event.kind}: {event.reason}")
        elif isinstance(event, TeamNotified):
            team.append(event.text)
        elif isinstance(event, PursuitDecided):
            pursuit = "pursue now" if event.pursue_now else "not pursued now"
            team.append(f"{pursuit} (urgency {number(event.urgency)})")
    return {
        "state": (flow_state,),
        "reply": tuple(replies),
        "score": tuple(scores),
        "quote": tuple(quotes),
        "ticket": tuple(tickets),
        "team": tuple(team),
        "events": tuple(env.event.type for env in events),
    }


class _Kind(Enum):
    COMPARED = "compared"
    OTHER = "other"


_COMPARED_TYPES = (
    BotReplied,
    LeadScored,
    QuoteIssued,
    QuoteRevised,
    TicketOpened,
    TeamNotified,
    PursuitDecided,
)


def _kind(event: object) -> _Kind:
    return _Kind.COMPARED if isinstance(event, _COMPARED_TYPES) else _Kind.OTHER


REPLAY_DECODES: frozenset[str] = frozenset(
    cls.model_fields["type"].default for cls in (*_COMPARED_TYPES, MessageRead, FlowAdvanced)
)
"""The event types whose values replay reads: the compared ones (`_facts`), the reading it
hands back to `decide` and the flow's moves. Of any other recorded event it reads only the
type, the seq and the delivery id."""

_KINDS: dict[type[object], _Kind] = {}
"""Whether an event type's values are compared (`_facts`), by type: most of a decision's
events (the reading, the narrative, the message, the flow) are not, and were tried against
every compared type in turn."""


def _shown(values: tuple[str, ...]) -> str:
    text = " | ".join(values) if values else "none"
    return text if len(text) <= SHOWN_LIMIT else text[: SHOWN_LIMIT - 1] + "…"
