"""A conversation's current state, derived only from its events.

`fold` is the single place that knows how each event changes the state, so the state
the runtime caches, the state replay rebuilds and the state an audit shows are the same.
It needs no policy: whatever depended on the policy was decided earlier and recorded in
the event (for example `LeadScored.qualified`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import Field

from domain.crm import CrmTold
from domain.events import (
    ActionIgnored,
    ApprovalRequested,
    AuditRequested,
    BotReplied,
    ChannelSet,
    ClaimRefused,
    CommandRefused,
    ConversationAbandoned,
    ConversationClosed,
    ConversationReopened,
    ConversationStarted,
    CrmSyncRequested,
    CrmSyncSettled,
    DealMarked,
    DeliveryDeadLettered,
    Erased,
    EventEnvelope,
    FloodLimited,
    FlowAdvanced,
    HandedBack,
    KnowledgeAnswered,
    KnowledgeUnanswered,
    LeadScored,
    MeetingRequested,
    MessageRead,
    NarrativeAssessed,
    ObjectionClassified,
    Outcome,
    OwnerAssigned,
    ProspectLeft,
    ProspectMessageReceived,
    PursuitDecided,
    QuoteAccepted,
    QuoteAcceptRefused,
    QuoteApproved,
    QuoteIssued,
    QuoteRejected,
    QuoteRevised,
    QuoteSuperseded,
    ReadingCorrected,
    ReplyLanguageChosen,
    ReplyRedirected,
    RepMessageRecorded,
    RepRepliedToProspect,
    TeamNotified,
    TicketClaimed,
    TicketClaimRefused,
    TicketEscalated,
    TicketKind,
    TicketOpened,
    TicketOutcome,
    TicketReopened,
    TicketRepinged,
    TicketResolved,
)
from domain.inbound import LeadDetails
from domain.model import Frozen
from domain.narrative import NarrativeAudit
from domain.quotes import Quote
from domain.scoring import LeadScore
from domain.understanding.reading import aggregate

QuoteStatus = Literal[
    "issued", "needs_approval", "approval_requested", "accepted", "rejected", "superseded"
]
TicketStatus = Literal["open", "claimed", "resolved"]

FLOOD_WINDOW_MESSAGES = 200
"""How many recent prospect-message times a conversation keeps for the flood limit."""


class QuoteRecord(Frozen):
    quote: Quote
    status: QuoteStatus
    acted_by: str | None = None
    issued_by: str | None = None
    """Who issued it (the rep who ran `/quote`, or the approver of a re-issue)."""
    superseded_by: str | None = None
    """The quote that took its place (`quote_superseded`), once it is superseded."""


TicketPhase = Literal["open", "claimed", "reopened", "resolved", "returned"]
"""A handoff ticket's place in its small state machine, for people: open → claimed →
resolved | returned, and resolved → reopened (held again) when the prospect writes after
its outcome. `status` is the coarse form the ticket store mirrors."""


class TicketRecord(Frozen):
    key: str
    kind: TicketKind
    reason: str
    status: TicketStatus = "open"
    claimed_by: str | None = None
    resolved_by: str | None = None
    quote_id: str | None = None
    opened_at_ms: int | None = None
    claimed_at_ms: int | None = None
    """When the current holder took it (a claim, a takeover, a reopening)."""
    holder_name: str | None = None
    """The holder's name as people see it, when the claim recorded one."""
    via: str | None = None
    """`presence`: the holder took the conversation over by writing in it."""
    outcome: TicketOutcome | None = None
    lost_reason: str | None = None
    returned: bool = False
    """Handed back to the bot (*Return to bot*, `resume`, the policy's idle hand-back)."""
    reopened: int = 0
    """How often the ticket came back after an outcome (`ticket_reopened`)."""
    wrote_again: bool = False
    """Reopened because the prospect wrote after its outcome (until it is resolved again)."""
    waiting_since_ms: int | None = None
    """Since when it waits to be claimed (opened, or reopened with nobody holding it): what
    the SLA ladder (`domain.sla`) counts from."""
    repinged: bool = False
    """The ladder re-pinged it (`ticket_repinged`) since it last started waiting."""
    escalated: bool = False
    """The ladder escalated it (`ticket_escalated`) since it last started waiting."""

    @property
    def phase(self) -> TicketPhase:
        if self.status == "resolved":
            return "returned" if self.returned else "resolved"
        if self.reopened and (self.wrote_again or self.status == "open"):
            return "reopened"
        return self.status

    @property
    def holder_label(self) -> str | None:
        return self.holder_name or self.claimed_by


class ConversationState(Frozen):
    conversation_id: str
    version: int = 0
    flow_state: str
    started: bool = False
    origin: str | None = None
    lead: LeadDetails | None = None
    prospect_texts: tuple[str, ...] = ()
    transcript: tuple[tuple[str, str], ...] = ()
    bot_turns: int = 0
    last_reply_template: str | None = None
    """The template of the bot's latest reply in the conversation (a knowledge base asks to
    clarify at most once in a row)."""
    last_said: str | None = None
    """The text of the bot's latest message to the prospect (what a reply must not repeat)."""
    said_counts: dict[str, int] = Field(default_factory=dict)
    """How often each template was said to the prospect (how often a question was asked)."""
    score: LeadScore | None = None
    qualified: bool = False
    narrative: NarrativeAudit | None = None
    last_objection: str | None = None
    read_features: dict[str, int] = Field(default_factory=dict)
    """The conversation's features so far (`domain.understanding.reading.aggregate`)."""
    signals: dict[str, bool] = Field(default_factory=dict)
    """Signals the prospect stated and has not taken back (trained reader only)."""
    last_read_seq: int | None = None
    """The sequence number of the latest `message_read` (what `correct …` corrects)."""
    quotes: dict[str, QuoteRecord] = Field(default_factory=dict)
    tickets: dict[str, TicketRecord] = Field(default_factory=dict)
    outcome: Outcome | None = None
    pursue_now: bool | None = None
    """A qualified lead urgent enough, after the fairness penalty, to pursue now
    (`PursuitDecided`, `domain.pursuit`); None until the lead first qualifies."""
    team_notified: tuple[str, ...] = ()
    """The kinds of team post already made in the lead's thread (`TeamNotified`): each is
    posted once per conversation."""
    meetings_requested: int = 0
    """How often the prospect asked for a meeting (`MeetingRequested`)."""
    left_reason: str | None = None
    """Why the prospect left (`ProspectLeft`), until a later message reopens the
    conversation (`ConversationReopened`)."""
    left_state: str | None = None
    """The flow state the conversation waits in since the prospect left."""
    started_at_ms: int | None = None
    qualified_at_ms: int | None = None
    last_prospect_at_ms: int | None = None
    prospect_message_ms: tuple[int, ...] = ()
    """When the latest prospect messages arrived (at most `FLOOD_WINDOW_MESSAGES`), for the
    flood limit."""
    flood_noticed_at_ms: int | None = None
    reply_language: str | None = None
    """The language the bot answers the prospect in (`domain.languages`); None: the policy's
    first language."""
    last_activity_ms: int = 0
    last_rep_at_ms: int | None = None
    """When a rep last wrote in the conversation (`rep_message_recorded`)."""
    owner: str | None = None
    """The conversation's owner (`owner_assigned`, the policy's `[routing]`); None: unrouted."""
    owner_name: str | None = None
    """The owner as people read them."""
    lost_reason: str | None = None
    """Why the deal was lost (`deal_marked`), while it stays lost."""
    erased: bool = False
    """The conversation's personal data was erased (`erased`): nothing of it goes to the
    CRM again."""
    crm_told: dict[str, CrmTold] = Field(default_factory=dict)
    """By external id, what the CRM was last asked to hold and how that write ended
    (`crm_sync_requested`, `crm_sync_settled`): what `salesbot crm backfill` compares."""

    def open_handoff_ticket(self) -> TicketRecord | None:
        """The handoff ticket a human currently holds or should pick up, if any."""
        for ticket in reversed(self.tickets.values()):
            if ticket.kind == "handoff" and ticket.status != "resolved":
                return ticket
        return None

    def latest_handoff_ticket(self) -> TicketRecord | None:
        """The conversation's most recent handoff ticket, whatever its phase."""
        for ticket in reversed(self.tickets.values()):
            if ticket.kind == "handoff":
                return ticket
        return None

    def latest_quote(self) -> QuoteRecord | None:
        live = [r for r in self.quotes.values() if r.status != "superseded"]
        return live[-1] if live else None


def initial_state(conversation_id: str, start_state: str) -> ConversationState:
    return ConversationState(conversation_id=conversation_id, flow_state=start_state)


TO_PROSPECT = ", to the prospect"
"""Ends a transcript speaker whose words a rep sent to a lead's prospect
(`rep_replied_to_prospect`); a rep's line without it stayed with the team."""

TRANSCRIPT_LIMIT = 50
"""Transcript lines kept in state for ticket summaries; the full log stays in the store."""


def _with_line(state: ConversationState, speaker: str, text: str) -> tuple[tuple[str, str], ...]:
    return (*state.transcript, (speaker, text))[-TRANSCRIPT_LIMIT:]


def apply(state: ConversationState, envelope: EventEnvelope) -> ConversationState:
    """The state after one more event."""
    event = envelope.event
    at = envelope.at_ms
    update: dict[str, object] = {"version": envelope.seq, "last_activity_ms": at}
    match event:
        case ConversationStarted():
            update |= {
                "started": True,
                "origin": event.origin,
                "lead": event.lead,
                "started_at_ms": at,
            }
        case ProspectMessageReceived():
            update |= {
                "prospect_texts": (*state.prospect_texts, event.text),
                "transcript": _with_line(state, "prospect", event.text),
                "last_prospect_at_ms": at,
                "prospect_message_ms": (*state.prospect_message_ms, at)[-FLOOD_WINDOW_MESSAGES:],
            }
        case RepRepliedToProspect():
            update |= {
                "transcript": _with_line(state, f"rep {event.name}{TO_PROSPECT}", event.text),
                "last_rep_at_ms": at,
            }
        case RepMessageRecorded():
            update |= {
                "transcript": _with_line(state, f"rep {event.name or event.actor_id}", event.text),
                "last_rep_at_ms": at,
            }
        case LeadScored() if event.subject == "conversation":
            update |= {"score": event.score, "qualified": event.qualified}
            if event.qualified and state.qualified_at_ms is None:
                update["qualified_at_ms"] = at
        case NarrativeAssessed():
            update["narrative"] = event.audit
        case ObjectionClassified():
            update["last_objection"] = event.result.objection
        case MessageRead():
            update |= {
                "read_features": aggregate(state.read_features, event.features, event.retracted),
                "signals": event.conversation_signals,
                "last_read_seq": envelope.seq,
            }
            if event.objection is not None:
                update["last_objection"] = event.objection
        case FlowAdvanced():
            update["flow_state"] = event.to_state
        case BotReplied() if event.audience == "conversation":
            counts = dict(state.said_counts)
            counts[event.template] = counts.get(event.template, 0) + 1
            update |= {
                "bot_turns": state.bot_turns + 1,
                "last_reply_template": event.template,
                "transcript": _with_line(state, "bot", event.text),
                "last_said": event.text,
                "said_counts": counts,
            }
        case QuoteIssued():
            quotes = dict(state.quotes)
            if event.replaces_quote_id in quotes:
                old = quotes[event.replaces_quote_id]
                quotes[old.quote.quote_id] = old.model_copy(update={"status": "superseded"})
            status: QuoteStatus = "needs_approval" if event.quote.needs_approval else "issued"
            quotes[event.quote.quote_id] = QuoteRecord(
                quote=event.quote, status=status, issued_by=event.requested_by
            )
            update["quotes"] = quotes
        case QuoteSuperseded():
            quotes = dict(state.quotes)
            if event.quote_id in quotes:
                quotes[event.quote_id] = quotes[event.quote_id].model_copy(
                    update={
                        "status": "superseded",
                        "acted_by": event.by,
                        "superseded_by": event.by_quote_id,
                    }
                )
            update["quotes"] = quotes
        case QuoteRevised():
            # The same id, a new version: the record now holds the version on offer.
            quotes = dict(state.quotes)
            revised: QuoteStatus = "needs_approval" if event.quote.needs_approval else "issued"
            quotes[event.quote.quote_id] = QuoteRecord(
                quote=event.quote, status=revised, issued_by=event.by
            )
            update["quotes"] = quotes
        case QuoteAccepted():
            update["quotes"] = _set_quote(state, event.quote_id, "accepted", event.by)
        case ApprovalRequested():
            update["quotes"] = _set_quote(state, event.quote_id, "approval_requested", event.by)
        case QuoteApproved():
            # The approved re-issue follows as its own QuoteIssued that supersedes this one.
            update["quotes"] = _set_quote(state, event.quote_id, "approval_requested", event.by)
        case QuoteRejected():
            update["quotes"] = _set_quote(state, event.quote_id, "rejected", event.by)
        case TicketOpened():
            tickets = dict(state.tickets)
            tickets[event.ticket_key] = TicketRecord(
                key=event.ticket_key,
                kind=event.kind,
                reason=event.reason,
                quote_id=event.quote_id,
                opened_at_ms=at,
                waiting_since_ms=at,
            )
            update["tickets"] = tickets
        case TicketClaimed():
            update["tickets"] = _set_ticket(
                state,
                event.ticket_key,
                status="claimed",
                claimed_by=event.by,
                claimed_at_ms=at,
                holder_name=event.name,
                via=event.via,
                wrote_again=False,
            )
        case TicketResolved():
            update["tickets"] = _set_ticket(
                state,
                event.ticket_key,
                status="resolved",
                resolved_by=event.by,
                outcome=event.outcome,
                lost_reason=event.reason,
                wrote_again=False,
            )
        case TicketReopened():
            update["tickets"] = _set_ticket(
                state,
                event.ticket_key,
                status="open" if event.holder is None else "claimed",
                claimed_by=event.holder,
                claimed_at_ms=at,
                holder_name=event.name,
                resolved_by=None,
                outcome=None,
                lost_reason=None,
                returned=False,
                reopened=_reopened(state, event.ticket_key),
                wrote_again=event.cause == "prospect_wrote",
                via="presence" if event.cause == "rep_wrote" else _via(state, event.ticket_key),
                waiting_since_ms=at if event.holder is None else None,
                repinged=False,
                escalated=False,
            )
        case TicketRepinged():
            update["tickets"] = _set_ticket(state, event.ticket_key, repinged=True)
        case TicketEscalated():
            update["tickets"] = _set_ticket(state, event.ticket_key, escalated=True)
        case HandedBack() if event.ticket_key is not None:
            update["tickets"] = _set_ticket(
                state, event.ticket_key, status="resolved", resolved_by=event.by, returned=True
            )
        case ConversationClosed():
            update["outcome"] = event.outcome
        case ProspectLeft():
            update |= {"left_reason": event.reason, "left_state": event.state}
        case ConversationReopened():
            update |= {
                "left_reason": None,
                "left_state": None,
                "outcome": None,
                "lost_reason": None,
            }
        case DealMarked():
            update["lost_reason"] = event.reason if event.outcome == "lost" else None
        case FloodLimited():
            update["flood_noticed_at_ms"] = at
        case ReplyLanguageChosen():
            update["reply_language"] = event.language
        case MeetingRequested():
            update["meetings_requested"] = state.meetings_requested + 1
        case PursuitDecided():
            update["pursue_now"] = event.pursue_now
        case OwnerAssigned():
            update |= {"owner": event.owner, "owner_name": event.name}
        case TeamNotified():
            if event.kind not in state.team_notified:
                update["team_notified"] = (*state.team_notified, event.kind)
        case Erased():
            update["erased"] = True
        case CrmSyncRequested():
            update["crm_told"] = {
                **state.crm_told,
                event.external_id: CrmTold(
                    seq=envelope.seq, artifact=event.artifact, deal=event.deal, note=event.note
                ),
            }
        case CrmSyncSettled():
            told = state.crm_told.get(event.external_id)
            if told is not None and told.seq == event.request_seq:
                # Only the latest request's outcome counts: an older write settling late
                # says nothing about what the CRM holds now.
                update["crm_told"] = {
                    **state.crm_told,
                    event.external_id: told.model_copy(
                        update={"outcome": event.outcome, "remote_id": event.remote_id}
                    ),
                }
        case (
            HandedBack()
            | ConversationAbandoned()
            | AuditRequested()
            | CommandRefused()
            | ChannelSet()
            | ActionIgnored()
            | DeliveryDeadLettered()
            | ClaimRefused()
            | LeadScored()
            | BotReplied()
            | ReplyRedirected()
            | ReadingCorrected()
            | QuoteAcceptRefused()
            | TicketClaimRefused()
            | KnowledgeAnswered()
            | KnowledgeUnanswered()
        ):
            pass
    return state.model_copy(update=update)


def _set_quote(
    state: ConversationState, quote_id: str, status: QuoteStatus, by: str
) -> dict[str, QuoteRecord]:
    quotes = dict(state.quotes)
    record = quotes.get(quote_id)
    if record is not None:
        quotes[quote_id] = record.model_copy(update={"status": status, "acted_by": by})
    return quotes


def _set_ticket(state: ConversationState, key: str, **changes: object) -> dict[str, TicketRecord]:
    tickets = dict(state.tickets)
    record = tickets.get(key)
    if record is not None:
        tickets[key] = record.model_copy(update=changes)
    return tickets


def _reopened(state: ConversationState, key: str) -> int:
    record = state.tickets.get(key)
    return 1 if record is None else record.reopened + 1


def _via(state: ConversationState, key: str) -> str | None:
    record = state.tickets.get(key)
    return None if record is None else record.via


def fold(state: ConversationState, envelopes: Iterable[EventEnvelope]) -> ConversationState:
    for envelope in envelopes:
        state = apply(state, envelope)
    return state
