"""What an audit opens with: who, when, how it ended, where it stands, the score and why,
open tickets and quotes.

Built from the conversation's events alone (folded as the runtime folds them,
`domain.state`), as numbers: contributions, weights and values exact, money in integer
minor units, times in epoch milliseconds. `summary_lines` says it in words for the command
line and chat; `--json` prints the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from domain.audit_plain import (
    HotCalibration,
    PlainContext,
    feature_words,
    quote_words,
    reason_phrase,
    rounded,
    signed,
    top_contributions,
    words,
)
from domain.events import (
    BotReplied,
    ConversationAbandoned,
    ConversationReopened,
    ConversationStarted,
    EventEnvelope,
    FlowAdvanced,
    LeadScored,
    ProspectLeft,
    ProspectMessageReceived,
    RepMessageRecorded,
    TeamNotified,
    TicketResolved,
)
from domain.handoff_config import lost_words
from domain.model import Frozen
from domain.policy import Policy
from domain.presenters import reason_text
from domain.scoring import Band
from domain.state import ConversationState, QuoteStatus, TicketPhase, fold, initial_state
from domain.understanding.model import to_micro

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

OutcomeStatus = Literal["open", "won", "lost", "closed", "abandoned"]


class Who(Frozen):
    """Who the conversation is with. `platform` is where it runs, as the conversation's id
    names it (its prefix before `:`), or `lead feed` for a lead without one."""

    name: str | None
    company: str | None
    email: str | None
    source: str | None
    platform: str
    origin: str | None
    prospect_ids: tuple[str, ...]


class Outcome(Frozen):
    """How the conversation stands as a deal. `reason` is a lost deal's reason code (the
    ticket's, or why the prospect left) and `reason_words` the same for people."""

    status: OutcomeStatus
    reason: str | None = None
    reason_words: str | None = None
    competitor: str | None = None
    note: str | None = None
    meetings_requested: int = 0
    accepted_quote: str | None = None
    prospect_left: str | None = None
    """Why the prospect took their leave (`prospect_left`), while the conversation waits."""


class ScoreReason(Frozen):
    """One contribution to the score: weight × value = contribution, and the words heard."""

    feature: str
    words: str
    weight: Decimal
    value: int
    contribution: Decimal
    evidence: tuple[str, ...]


class ScoreSummary(Frozen):
    """The conversation's current score. `reasons` are its three largest contributions;
    `rest` is everything else (the intercept included), so `Σ reasons + rest = score`."""

    score: Decimal
    band: Band
    qualified: bool
    hot_probability: Decimal | None
    """The calibrated probability that the lead is hot, where the model gives one."""
    reasons: tuple[ScoreReason, ...]
    rest: Decimal
    rest_count: int
    """How many other non-zero contributions `rest` adds up."""
    scored_at_ms: int


class TicketSummary(Frozen):
    key: str
    kind: str
    reason: str
    reason_words: str
    phase: TicketPhase
    holder: str | None
    quote_id: str | None
    opened_at_ms: int | None


class QuoteSummary(Frozen):
    """A quote as it stands (its latest version); amounts in integer minor units."""

    quote_id: str
    version: int
    status: QuoteStatus
    currency: str
    minor_units: int
    qty: int
    sku: str | None
    description: str
    unit_cents: int
    subtotal_cents: int
    discount: Decimal
    discount_cents: int
    tax_cents: int
    total_cents: int
    issued_by: str | None
    issued_at_ms: int
    expires_at_ms: int
    text: str
    """The same in words: `10 × Pro plan, 10% off, total 1,791.00 USD`."""


class AuditSummary(Frozen):
    conversation_id: str
    who: Who
    started_at_ms: int | None
    first_message_ms: int | None
    last_message_ms: int | None
    prospect_messages: int
    outcome: Outcome
    state: str
    """The flow state the conversation is in now."""
    score: ScoreSummary | None
    open_tickets: tuple[TicketSummary, ...]
    quotes: tuple[QuoteSummary, ...]
    owner: str | None = None
    """The conversation's owner as people read them (`[routing]`); None: nobody owns it."""


def hot_calibration(policy: Policy, score: Decimal) -> Decimal | None:
    """The calibrated probability that a lead with this band score is hot, under `policy`'s
    trained reader; None without a reader or a calibration of its band."""
    if policy.understanding is None:
        return None
    calibration = policy.understanding.reader.head("band").calibration
    return None if calibration is None else calibration.probability(to_micro(score))


def summarize(
    conversation_id: str,
    stream: Sequence[EventEnvelope],
    calibrate: HotCalibration | None = None,
) -> AuditSummary:
    """The summary of one conversation's events (in sequence order). `calibrate` gives the
    hot probability of a score under its recorded policy (`hot_calibration`)."""
    start = next(
        (env.event.from_state for env in stream if isinstance(env.event, FlowAdvanced)), "start"
    )
    state = fold(initial_state(conversation_id, start), stream)
    context = PlainContext(calibrate)
    scored: tuple[LeadScored, int, Decimal | None, dict[str, tuple[str, ...]]] | None = None
    messages = [
        env.at_ms
        for env in stream
        if isinstance(env.event, ProspectMessageReceived | RepMessageRecorded)
        or (isinstance(env.event, BotReplied) and env.event.audience == "conversation")
    ]
    for env in stream:
        event = env.event
        if isinstance(event, LeadScored) and event.subject == "conversation":
            scored = (
                event,
                env.at_ms,
                context.hot_probability(event.score, env.policy_version),
                context.evidence(event.score),
            )
        context.saw(event)
    return AuditSummary(
        conversation_id=conversation_id,
        who=_who(conversation_id, state, stream),
        owner=state.owner_name or state.owner,
        started_at_ms=state.started_at_ms,
        first_message_ms=min(messages, default=None),
        last_message_ms=max(messages, default=None),
        prospect_messages=sum(
            1 for env in stream if isinstance(env.event, ProspectMessageReceived)
        ),
        outcome=_outcome(state, stream),
        state=state.flow_state,
        score=None if scored is None else _score(*scored),
        open_tickets=tuple(
            TicketSummary(
                key=ticket.key,
                kind=ticket.kind,
                reason=ticket.reason,
                reason_words=reason_text(ticket.reason),
                phase=ticket.phase,
                holder=ticket.holder_label,
                quote_id=ticket.quote_id,
                opened_at_ms=ticket.opened_at_ms,
            )
            for ticket in state.tickets.values()
            if ticket.status != "resolved"
        ),
        quotes=tuple(
            QuoteSummary(
                quote_id=record.quote.quote_id,
                version=record.quote.version,
                status=record.status,
                currency=record.quote.currency,
                minor_units=record.quote.minor_units,
                qty=record.quote.qty,
                sku=record.quote.sku,
                description=record.quote.description,
                unit_cents=record.quote.unit_cents,
                subtotal_cents=record.quote.subtotal_cents,
                discount=record.quote.discount,
                discount_cents=record.quote.discount_cents,
                tax_cents=record.quote.tax_cents,
                total_cents=record.quote.total_cents,
                issued_by=record.issued_by,
                issued_at_ms=record.quote.issued_at_ms,
                expires_at_ms=record.quote.expires_at_ms,
                text=quote_words(record.quote),
            )
            for record in state.quotes.values()
        ),
    )


def _who(conversation_id: str, state: ConversationState, stream: Sequence[EventEnvelope]) -> Who:
    prospects: list[str] = []
    for env in stream:
        event = env.event
        actor = None
        if isinstance(event, ProspectMessageReceived):
            actor = event.actor_id
        elif isinstance(event, ConversationStarted) and event.origin != "command":
            actor = event.started_by
        if actor is not None and actor not in prospects:
            prospects.append(actor)
    prefix, colon, _ = conversation_id.partition(":")
    lead = state.lead
    return Who(
        name=lead.name if lead is not None else None,
        company=(lead.company or None) if lead is not None else None,
        email=(lead.email or None) if lead is not None else None,
        source=(lead.source or None) if lead is not None else None,
        platform=prefix if colon else ("lead feed" if state.origin == "lead" else "direct"),
        origin=state.origin,
        prospect_ids=tuple(prospects),
    )


def _outcome(state: ConversationState, stream: Sequence[EventEnvelope]) -> Outcome:
    """The deal as the events left it: won or lost (with the reason, competitor and note
    the ticket or the prospect gave), closed by a ticket's outcome, abandoned, or open."""
    reason = competitor = note = None
    abandoned = False
    resolved_closed = False
    for env in stream:
        event = env.event
        if isinstance(event, TicketResolved) and event.outcome is not None:
            resolved_closed = event.outcome == "closed"
            if event.outcome == "lost":
                reason, competitor, note = event.reason, event.competitor, event.note
        elif isinstance(event, ProspectLeft) and event.lost:
            reason, competitor = event.reason, event.competitor
        elif isinstance(event, TeamNotified) and event.kind == "lost":
            reason = reason or event.reason
            competitor = competitor or event.competitor
        elif isinstance(event, ConversationAbandoned):
            abandoned = True
        elif isinstance(event, ProspectMessageReceived | ConversationReopened):
            abandoned = False
    accepted = next(
        (record.quote.label for record in state.quotes.values() if record.status == "accepted"),
        None,
    )
    status: OutcomeStatus
    if state.outcome is not None:
        status = state.outcome
    elif resolved_closed:
        status = "closed"
    elif abandoned:
        status = "abandoned"
    else:
        status = "open"
    lost = status == "lost"
    return Outcome(
        status=status,
        reason=reason if lost else None,
        reason_words=_lost_reason_words(reason) if lost and reason else None,
        competitor=competitor if lost else None,
        note=note if lost else None,
        meetings_requested=state.meetings_requested,
        accepted_quote=accepted,
        prospect_left=state.left_reason,
    )


_LEFT = {
    "chose_competitor": "chose another vendor",
    "not_interested": "not interested",
    "not_a_buyer": "not a buyer",
    "goodbye": "said goodbye",
}


def _lost_reason_words(reason: str) -> str:
    return _LEFT[reason] if reason in _LEFT else lost_words(reason)


def _score(
    event: LeadScored,
    at_ms: int,
    hot_probability: Decimal | None,
    heard: dict[str, tuple[str, ...]],
) -> ScoreSummary:
    score = event.score
    top = top_contributions(score)
    shown = {name for name, _ in top}
    rest = [c for name, c in score.contributions.items() if c != 0 and name not in shown]
    return ScoreSummary(
        score=score.score,
        band=score.band,
        qualified=event.qualified,
        hot_probability=hot_probability,
        reasons=tuple(
            ScoreReason(
                feature=name,
                words=feature_words(name),
                weight=score.weights.get(name, contribution),
                value=score.features.get(name, 1),
                contribution=contribution,
                evidence=heard.get(name, ()),
            )
            for name, contribution in top
        ),
        rest=score.score - sum((c for _, c in top), Decimal(0)),
        rest_count=len(rest),
        scored_at_ms=at_ms,
    )


# ---------------------------------------------------------------- in words


def iso_seconds(at_ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC to the second: `2026-11-24T12:00:00Z`."""
    return (_EPOCH + timedelta(milliseconds=at_ms)).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary_lines(summary: AuditSummary) -> tuple[str, ...]:
    """Who, Owner (when routed), When, Outcome, State, Score, Open tickets, Quotes: one line each (a quote or a
    ticket more per line)."""
    lines = [
        f"Who: {_who_words(summary.who)}",
        *([f"Owner: {summary.owner}"] if summary.owner is not None else []),
        f"When: {_when_words(summary)}",
        f"Outcome: {_outcome_words(summary.outcome)}",
        f"State: {words(summary.state)}",
        f"Score: {_score_words(summary.score)}",
    ]
    if summary.open_tickets:
        lines.append("Open tickets:")
        lines += [f"  {_ticket_words(ticket)}" for ticket in summary.open_tickets]
    else:
        lines.append("Open tickets: none")
    if summary.quotes:
        lines.append("Quotes:")
        lines += [f"  {_quote_line(quote)}" for quote in summary.quotes]
    else:
        lines.append("Quotes: none")
    return tuple(lines)


def _who_words(who: Who) -> str:
    name = who.name or (
        "prospect " + ", ".join(who.prospect_ids) if who.prospect_ids else "no prospect yet"
    )
    parts = [name + (f" ({who.company})" if who.company else "")]
    if who.email:
        parts.append(who.email)
    platform = who.platform[:1].upper() + who.platform[1:]
    parts.append(f"on {platform}" + (f", lead source {who.source}" if who.source else ""))
    return ", ".join(parts)


def _when_words(summary: AuditSummary) -> str:
    if summary.first_message_ms is None or summary.last_message_ms is None:
        return "no messages"
    count = summary.prospect_messages
    said = f"{count} message{'' if count == 1 else 's'} from the prospect"
    return (
        f"first message {iso_seconds(summary.first_message_ms)}, last "
        f"{iso_seconds(summary.last_message_ms)} ({said})"
    )


def _outcome_words(outcome: Outcome) -> str:
    text: str = outcome.status
    if outcome.status == "lost":
        why = [outcome.reason_words or "no reason given"]
        if outcome.competitor:
            why.append(f"to {outcome.competitor}")
        if outcome.note:
            why.append(f"note: {outcome.note}")
        text += " (" + ", ".join(why) + ")"
    extras = []
    if outcome.accepted_quote:
        extras.append(f"quote {outcome.accepted_quote} accepted")
    if outcome.meetings_requested:
        extras.append("meeting requested, booking link offered")
    if outcome.prospect_left and outcome.status == "open":
        extras.append(f"the prospect {_LEFT.get(outcome.prospect_left, outcome.prospect_left)}")
    return text + ("; " + "; ".join(extras) if extras else "")


def _score_words(score: ScoreSummary | None) -> str:
    if score is None:
        return "not scored yet"
    return f"{rounded(score.score)} — {score.band}" + score_line_from(score)


def score_line_from(score: ScoreSummary) -> str:
    """`, qualified (probability hot 0.99): authority +1.23 (“cfo”), …; everything else +5.58`"""
    text = ", qualified" if score.qualified else ", not qualified"
    if score.hot_probability is not None:
        text += f" (probability hot {rounded(score.hot_probability)})"
    if not score.reasons:
        return text + ": no signals"
    text += ": " + ", ".join(
        reason_phrase(reason.feature, reason.contribution, reason.evidence)
        for reason in score.reasons
    )
    if score.rest_count or score.rest:
        text += f"; everything else {signed(score.rest)}"
    return text


def _ticket_words(ticket: TicketSummary) -> str:
    held = f"held by {ticket.holder}" if ticket.holder else "waiting to be claimed"
    about = f" for quote {ticket.quote_id}" if ticket.quote_id else ""
    since = f", since {iso_seconds(ticket.opened_at_ms)}" if ticket.opened_at_ms else ""
    return f"{ticket.key} ({ticket.kind}{about}): {ticket.reason_words}; {held}{since}"


_QUOTE_STATUS_WORDS = {
    "issued": "on offer",
    "needs_approval": "the discount needs approval",
    "approval_requested": "approval requested",
    "accepted": "accepted",
    "rejected": "rejected",
    "superseded": "superseded",
}


def _quote_line(quote: QuoteSummary) -> str:
    label = quote.quote_id if quote.version == 1 else f"{quote.quote_id} v{quote.version}"
    by = f" (issued by {quote.issued_by})" if quote.issued_by else ""
    return f"{label}: {quote.text} — {_QUOTE_STATUS_WORDS.get(quote.status, quote.status)}{by}"
