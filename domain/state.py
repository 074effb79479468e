"""A conversation's current state, derived only from its events.

This module is the single place that knows how each event changes the state (one handler
per event type, used by `apply` and `fold` alike), so the state the runtime caches, the
state replay rebuilds and the state an audit shows are the same.
It needs no policy: whatever depended on the policy was decided earlier and recorded in
the event (for example `LeadScored.qualified`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

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
    InstallationNoted,
    KnowledgeAnswered,
    KnowledgeUnanswered,
    LeadLeftForRep,
    LeadScored,
    MeetingRequested,
    MessageRead,
    NarrativeAssessed,
    ObjectionClassified,
    Outcome,
    OwnerAssigned,
    ProspectLeft,
    ProspectMessageReceived,
    ProspectMessageShown,
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
    RolesSet,
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
from domain.model import Frozen, replaced
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
    installation: str = ""
    """The installation the conversation belongs to (`domain.installations`)."""
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


Update = dict[str, object]
"""The fields one event changes, by name (what `model_copy(update=...)` takes)."""

Handler = Callable[[ConversationState, Update, Any, EventEnvelope], None]
"""How one event type changes the state: it reads the state before the event and writes
the fields it changes into the update (never into the state). `version` and
`last_activity_ms` are not a handler's: every event sets them, after its handler."""

_HANDLERS: dict[type[object], Handler] = {}
"""Each event type's handler. An event type without one changes only `version` and
`last_activity_ms` (every event does); `tests/unit/test_fold.py` holds every event type of
`Event` to being either here or in `UNCHANGING`."""

UNCHANGING: frozenset[type[object]] = frozenset(
    {
        ConversationAbandoned,
        AuditRequested,
        CommandRefused,
        ChannelSet,
        RolesSet,
        ActionIgnored,
        DeliveryDeadLettered,
        ClaimRefused,
        ReplyRedirected,
        ReadingCorrected,
        QuoteAcceptRefused,
        TicketClaimRefused,
        KnowledgeAnswered,
        KnowledgeUnanswered,
        ProspectMessageShown,
        LeadLeftForRep,
    }
)
"""Event types that change nothing but the version and the last activity."""


def _on(*types: type[object]) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for event_type in types:
            _HANDLERS[event_type] = handler
        return handler

    return register


def apply(state: ConversationState, envelope: EventEnvelope) -> ConversationState:
    """The state after one more event."""
    update: Update = {}
    handler = _HANDLERS.get(type(envelope.event))
    if handler is not None:
        handler(state, update, envelope.event, envelope)
    update["version"] = envelope.seq
    update["last_activity_ms"] = envelope.at_ms
    # `model_copy(update=...)` without its generic steps: every recorded event of every
    # decision copies the state, and pydantic's copy cost more than the handler;
    # `tests/unit/test_fold.py` holds the copy to `fold`.
    return replaced(state, update)


def fold(state: ConversationState, envelopes: Iterable[EventEnvelope]) -> ConversationState:
    """The state after `envelopes`, equal to `apply`-ing them one by one (fields and
    `model_fields_set` alike: `tests/unit/test_fold.py`), without a new state per event.

    Each `apply` copies the whole state (~50 fields) to change two or three; a long log
    paid that once per event. Here one private copy takes every event's update in place,
    exactly as `model_copy` writes its update into its copy, and is handed out only when
    the log is folded: nobody sees it change. Handlers read it as the state before their
    event, as they read `apply`'s state.
    """
    draft = state.model_copy()
    values = draft.__dict__
    fields_set = draft.__pydantic_fields_set__
    handlers = _HANDLERS
    folded = False
    for envelope in envelopes:
        event = envelope.event
        handler = handlers.get(type(event))
        if handler is not None:
            update: Update = {}
            handler(draft, update, event, envelope)
            values.update(update)
            fields_set.update(update)
        values["version"] = envelope.seq
        values["last_activity_ms"] = envelope.at_ms
        folded = True
    if not folded:
        return state
    fields_set.update(("version", "last_activity_ms"))
    return draft


@_on(ConversationStarted)
def _started(
    state: ConversationState, update: Update, event: ConversationStarted, envelope: EventEnvelope
) -> None:
    update |= {
        "started": True,
        "origin": event.origin,
        "lead": event.lead,
        "started_at_ms": envelope.at_ms,
    }
    if event.installation and not state.started:
        update["installation"] = event.installation


@_on(InstallationNoted)
def _installation_noted(
    state: ConversationState, update: Update, event: InstallationNoted, envelope: EventEnvelope
) -> None:
    update["installation"] = event.installation


@_on(ProspectMessageReceived)
def _prospect_message(
    state: ConversationState,
    update: Update,
    event: ProspectMessageReceived,
    envelope: EventEnvelope,
) -> None:
    at = envelope.at_ms
    update |= {
        "prospect_texts": (*state.prospect_texts, event.text),
        "transcript": _with_line(state, "prospect", event.text),
        "last_prospect_at_ms": at,
        "prospect_message_ms": (*state.prospect_message_ms, at)[-FLOOD_WINDOW_MESSAGES:],
    }


@_on(RepRepliedToProspect)
def _rep_replied(
    state: ConversationState, update: Update, event: RepRepliedToProspect, envelope: EventEnvelope
) -> None:
    update |= {
        "transcript": _with_line(state, f"rep {event.name}{TO_PROSPECT}", event.text),
        "last_rep_at_ms": envelope.at_ms,
    }


@_on(RepMessageRecorded)
def _rep_message(
    state: ConversationState, update: Update, event: RepMessageRecorded, envelope: EventEnvelope
) -> None:
    update |= {
        "transcript": _with_line(state, f"rep {event.name or event.actor_id}", event.text),
        "last_rep_at_ms": envelope.at_ms,
    }


@_on(LeadScored)
def _scored(
    state: ConversationState, update: Update, event: LeadScored, envelope: EventEnvelope
) -> None:
    if event.subject != "conversation":
        return  # a rep's pasted text (`/lead`) does not change the lead
    update |= {"score": event.score, "qualified": event.qualified}
    if event.qualified and state.qualified_at_ms is None:
        update["qualified_at_ms"] = envelope.at_ms


@_on(NarrativeAssessed)
def _narrative(
    state: ConversationState, update: Update, event: NarrativeAssessed, envelope: EventEnvelope
) -> None:
    update["narrative"] = event.audit


@_on(ObjectionClassified)
def _objection(
    state: ConversationState, update: Update, event: ObjectionClassified, envelope: EventEnvelope
) -> None:
    update["last_objection"] = event.result.objection


@_on(MessageRead)
def _read(
    state: ConversationState, update: Update, event: MessageRead, envelope: EventEnvelope
) -> None:
    update |= {
        "read_features": aggregate(state.read_features, event.features, event.retracted),
        "signals": event.conversation_signals,
        "last_read_seq": envelope.seq,
    }
    if event.objection is not None:
        update["last_objection"] = event.objection


@_on(FlowAdvanced)
def _flow(
    state: ConversationState, update: Update, event: FlowAdvanced, envelope: EventEnvelope
) -> None:
    update["flow_state"] = event.to_state


@_on(BotReplied)
def _replied(
    state: ConversationState, update: Update, event: BotReplied, envelope: EventEnvelope
) -> None:
    if event.audience != "conversation":
        return  # words for the team are not said to the prospect
    counts = dict(state.said_counts)
    counts[event.template] = counts.get(event.template, 0) + 1
    update |= {
        "bot_turns": state.bot_turns + 1,
        "last_reply_template": event.template,
        "transcript": _with_line(state, "bot", event.text),
        "last_said": event.text,
        "said_counts": counts,
    }


@_on(QuoteIssued)
def _quote_issued(
    state: ConversationState, update: Update, event: QuoteIssued, envelope: EventEnvelope
) -> None:
    quotes = dict(state.quotes)
    if event.replaces_quote_id in quotes:
        old = quotes[event.replaces_quote_id]
        quotes[old.quote.quote_id] = old.model_copy(update={"status": "superseded"})
    status: QuoteStatus = "needs_approval" if event.quote.needs_approval else "issued"
    quotes[event.quote.quote_id] = QuoteRecord(
        quote=event.quote, status=status, issued_by=event.requested_by
    )
    update["quotes"] = quotes


@_on(QuoteSuperseded)
def _quote_superseded(
    state: ConversationState, update: Update, event: QuoteSuperseded, envelope: EventEnvelope
) -> None:
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


@_on(QuoteRevised)
def _quote_revised(
    state: ConversationState, update: Update, event: QuoteRevised, envelope: EventEnvelope
) -> None:
    # The same id, a new version: the record now holds the version on offer.
    quotes = dict(state.quotes)
    revised: QuoteStatus = "needs_approval" if event.quote.needs_approval else "issued"
    quotes[event.quote.quote_id] = QuoteRecord(
        quote=event.quote, status=revised, issued_by=event.by
    )
    update["quotes"] = quotes


@_on(QuoteAccepted)
def _quote_accepted(
    state: ConversationState, update: Update, event: QuoteAccepted, envelope: EventEnvelope
) -> None:
    update["quotes"] = _set_quote(state, event.quote_id, "accepted", event.by)


@_on(ApprovalRequested, QuoteApproved)
def _approval(
    state: ConversationState,
    update: Update,
    event: ApprovalRequested | QuoteApproved,
    envelope: EventEnvelope,
) -> None:
    # An approved quote stays `approval_requested`: the approved re-issue follows as its own
    # QuoteIssued that supersedes it.
    update["quotes"] = _set_quote(state, event.quote_id, "approval_requested", event.by)


@_on(QuoteRejected)
def _quote_rejected(
    state: ConversationState, update: Update, event: QuoteRejected, envelope: EventEnvelope
) -> None:
    update["quotes"] = _set_quote(state, event.quote_id, "rejected", event.by)


@_on(TicketOpened)
def _ticket_opened(
    state: ConversationState, update: Update, event: TicketOpened, envelope: EventEnvelope
) -> None:
    tickets = dict(state.tickets)
    tickets[event.ticket_key] = TicketRecord(
        key=event.ticket_key,
        kind=event.kind,
        reason=event.reason,
        quote_id=event.quote_id,
        opened_at_ms=envelope.at_ms,
        waiting_since_ms=envelope.at_ms,
    )
    update["tickets"] = tickets


@_on(TicketClaimed)
def _ticket_claimed(
    state: ConversationState, update: Update, event: TicketClaimed, envelope: EventEnvelope
) -> None:
    update["tickets"] = _set_ticket(
        state,
        event.ticket_key,
        status="claimed",
        claimed_by=event.by,
        claimed_at_ms=envelope.at_ms,
        holder_name=event.name,
        via=event.via,
        wrote_again=False,
    )


@_on(TicketResolved)
def _ticket_resolved(
    state: ConversationState, update: Update, event: TicketResolved, envelope: EventEnvelope
) -> None:
    update["tickets"] = _set_ticket(
        state,
        event.ticket_key,
        status="resolved",
        resolved_by=event.by,
        outcome=event.outcome,
        lost_reason=event.reason,
        wrote_again=False,
    )


@_on(TicketReopened)
def _ticket_reopened(
    state: ConversationState, update: Update, event: TicketReopened, envelope: EventEnvelope
) -> None:
    at = envelope.at_ms
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


@_on(TicketRepinged)
def _ticket_repinged(
    state: ConversationState, update: Update, event: TicketRepinged, envelope: EventEnvelope
) -> None:
    update["tickets"] = _set_ticket(state, event.ticket_key, repinged=True)


@_on(TicketEscalated)
def _ticket_escalated(
    state: ConversationState, update: Update, event: TicketEscalated, envelope: EventEnvelope
) -> None:
    update["tickets"] = _set_ticket(state, event.ticket_key, escalated=True)


@_on(HandedBack)
def _handed_back(
    state: ConversationState, update: Update, event: HandedBack, envelope: EventEnvelope
) -> None:
    if event.ticket_key is None:
        return
    update["tickets"] = _set_ticket(
        state, event.ticket_key, status="resolved", resolved_by=event.by, returned=True
    )


@_on(ConversationClosed)
def _closed(
    state: ConversationState, update: Update, event: ConversationClosed, envelope: EventEnvelope
) -> None:
    update["outcome"] = event.outcome


@_on(ProspectLeft)
def _left(
    state: ConversationState, update: Update, event: ProspectLeft, envelope: EventEnvelope
) -> None:
    update |= {"left_reason": event.reason, "left_state": event.state}


@_on(ConversationReopened)
def _reopened_conversation(
    state: ConversationState, update: Update, event: ConversationReopened, envelope: EventEnvelope
) -> None:
    update |= {"left_reason": None, "left_state": None, "outcome": None, "lost_reason": None}


@_on(DealMarked)
def _deal_marked(
    state: ConversationState, update: Update, event: DealMarked, envelope: EventEnvelope
) -> None:
    update["lost_reason"] = event.reason if event.outcome == "lost" else None


@_on(FloodLimited)
def _flood(
    state: ConversationState, update: Update, event: FloodLimited, envelope: EventEnvelope
) -> None:
    update["flood_noticed_at_ms"] = envelope.at_ms


@_on(ReplyLanguageChosen)
def _language(
    state: ConversationState, update: Update, event: ReplyLanguageChosen, envelope: EventEnvelope
) -> None:
    update["reply_language"] = event.language


@_on(MeetingRequested)
def _meeting(
    state: ConversationState, update: Update, event: MeetingRequested, envelope: EventEnvelope
) -> None:
    update["meetings_requested"] = state.meetings_requested + 1


@_on(PursuitDecided)
def _pursuit(
    state: ConversationState, update: Update, event: PursuitDecided, envelope: EventEnvelope
) -> None:
    update["pursue_now"] = event.pursue_now


@_on(OwnerAssigned)
def _owner(
    state: ConversationState, update: Update, event: OwnerAssigned, envelope: EventEnvelope
) -> None:
    update |= {"owner": event.owner, "owner_name": event.name}


@_on(TeamNotified)
def _team(
    state: ConversationState, update: Update, event: TeamNotified, envelope: EventEnvelope
) -> None:
    if event.kind not in state.team_notified:
        update["team_notified"] = (*state.team_notified, event.kind)


@_on(Erased)
def _erased(
    state: ConversationState, update: Update, event: Erased, envelope: EventEnvelope
) -> None:
    update["erased"] = True


@_on(CrmSyncRequested)
def _crm_requested(
    state: ConversationState, update: Update, event: CrmSyncRequested, envelope: EventEnvelope
) -> None:
    update["crm_told"] = {
        **state.crm_told,
        event.external_id: CrmTold(
            seq=envelope.seq, artifact=event.artifact, deal=event.deal, note=event.note
        ),
    }


@_on(CrmSyncSettled)
def _crm_settled(
    state: ConversationState, update: Update, event: CrmSyncSettled, envelope: EventEnvelope
) -> None:
    told = state.crm_told.get(event.external_id)
    if told is not None and told.seq == event.request_seq:
        # Only the latest request's outcome counts: an older write settling late says
        # nothing about what the CRM holds now.
        update["crm_told"] = {
            **state.crm_told,
            event.external_id: told.model_copy(
                update={"outcome": event.outcome, "remote_id": event.remote_id}
            ),
        }


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
