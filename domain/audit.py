"""The audit report: every decision on a conversation or a quote, with its arithmetic.

An audit turns the event log back into explanations a reader can check with a pencil
(STYLE.md habit 15): each feature's weight × value, the sums, the fairness penalty with its
knobs, the flow transition with its guard and priority, the quote's proof and the ticket
history, each under the policy version that decided it. The audit is also the only place
the credit score behind a fairness penalty is shown, which is why only auditors get it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from domain import GENERATOR
from domain.audit_plain import HotCalibration, PlainContext, plain_line
from domain.audit_summary import AuditSummary, iso_seconds, summarize, summary_lines
from domain.cards import Card
from domain.errors import DomainError
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
    Erased,
    Event,
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
    TicketOpened,
    TicketReopened,
    TicketRepinged,
    TicketResolved,
)
from domain.handoff_config import lost_words
from domain.inbound import LeadDetails
from domain.languages import LANGUAGE_NAMES
from domain.model import Frozen
from domain.money import format_amount
from domain.narrative import NarrativeAudit
from domain.objections import ObjectionResult
from domain.presenters import number, reason_text
from domain.quotes import Quote
from domain.scoring import INTERCEPT, LeadScore, exact_product, exact_sum
from domain.understanding.model import from_micro

AUDIT_SCHEMA_VERSION = 2
"""2: the report opens with a `summary` of numbers, each entry says what happened in `plain`
words and carries its `event` as recorded (numbers, not text); `at` (ISO text) is gone,
`at_ms` stays; `generator` is `generator_version`."""

AuditKind = Literal["conversation", "quote"]

SUMMARY_LIMIT = 160
"""A summary is one line; longer texts (messages, replies) go whole into the details."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class AuditEntry(Frozen):
    """One event explained: what happened in plain words, the event as recorded, and for
    the detail section a one-line technical summary and the lines that recompute it."""

    seq: int
    at_ms: int
    type: str
    policy_version: str
    delivery_id: str
    plain: str
    """What happened, for a sales-ops reader (`domain.audit_plain`); "" when the event has
    nothing to tell one (the flow staying where it was): the plain decisions leave it out."""
    summary: str
    details: tuple[str, ...] = ()
    event: Event
    """The event as the log holds it: every input and figure as a number."""

    @property
    def at(self) -> str:
        return iso_ms(self.at_ms)


class AuditReport(Frozen):
    """What `salesbot audit` prints (as text through `render_audit`, or as JSON)."""

    schema_version: int = AUDIT_SCHEMA_VERSION
    generator_version: str = GENERATOR
    target: str
    kind: AuditKind
    conversation_id: str
    summary: AuditSummary
    """The conversation's summary (for a quote's audit too: the deal it belongs to)."""
    policy_versions: tuple[str, ...]
    entries: tuple[AuditEntry, ...]
    tickets: tuple[str, ...]
    quotes: tuple[str, ...]


def iso_ms(at_ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC with milliseconds: `2026-11-24T12:00:00.000Z`."""
    moment = _EPOCH + timedelta(milliseconds=at_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at_ms % 1000:03d}Z"


def audit_conversation(
    conversation_id: str,
    events: Sequence[EventEnvelope],
    calibrate: HotCalibration | None = None,
) -> AuditReport:
    """Every event of the conversation, in sequence order, each with its explanation.

    A lead's audit is its conversation's audit: the lead arrives as the conversation's first
    event. Raises `DomainError` when the events hold nothing for that conversation, so an
    unknown id is a clear message rather than an empty report.
    """
    stream = _stream(conversation_id, events)
    if not stream:
        raise DomainError(f"No conversation {conversation_id} in these events.")
    return _report(conversation_id, "conversation", stream, stream, calibrate)


def audit_quote(
    quote_id: str,
    events: Sequence[EventEnvelope],
    calibrate: HotCalibration | None = None,
) -> AuditReport:
    """The entries about one quote: its issue, approval, acceptance, ignored clicks on it,
    its approval ticket, and the versions it replaced or was replaced by.

    Versions are followed both ways because an approved quote is a new id whose proof
    continues the old one: auditing either shows the whole chain.
    """
    conversation_id = find_quote_conversation(quote_id, events)
    if conversation_id is None:
        raise DomainError(f"No quote {quote_id} in these events.")
    stream = _stream(conversation_id, events)
    family = _quote_family(quote_id, stream)
    tickets = _approval_tickets(family, stream)
    related = tuple(env for env in stream if _concerns_quote(env.event, family, tickets))
    return _report(quote_id, "quote", stream, related, calibrate)


def find_quote_conversation(quote_id: str, events: Iterable[EventEnvelope]) -> str | None:
    """The conversation that issued `quote_id`, for a caller scanning the whole store."""
    for env in events:
        if isinstance(env.event, QuoteIssued) and env.event.quote.quote_id == quote_id:
            return env.conversation_id
    return None


DETAIL_HEADING = "Engineering detail (event types, formulas, policy hashes):"

CARD_DECISIONS = 40
"""A chat card lists at most this many decisions (the latest), well inside every chat
platform's card limits (blocks, bytes); the command line lists them all."""


def render_audit(report: AuditReport, *, detail: bool = False) -> tuple[str, ...]:
    """The report as plain text lines: the title, the summary, then the decisions in plain
    words, one line each under one heading. With `detail`, a second, titled section holds
    the engineering detail: each event's type, policy and arithmetic, the ticket history."""
    lines = [_title(report), *_opening(report)]
    lines += _plain_decisions(report.entries)
    if detail:
        lines += ["", *_detail_lines(report)]
    return tuple(lines)


def audit_card(report: AuditReport) -> Card:
    """`/audit` in chat: the summary and the latest decisions in plain words. The title
    says what it is once; the engineering detail stays on the command line (`--detail`)."""
    shown = [e for e in report.entries if e.plain]
    lines = _opening(report)
    cut = len(shown) - CARD_DECISIONS
    lines += _plain_decisions(tuple(shown[-CARD_DECISIONS:]), cut_before=max(cut, 0))
    return Card(
        kind="notice", title=_title(report), lines=tuple(lines), ref=f"audit:{report.target}"
    )


def _title(report: AuditReport) -> str:
    what = "conversation" if report.kind == "conversation" else "quote"
    return f"Audit of {what} {report.target}"


def _opening(report: AuditReport) -> list[str]:
    """The summary; a quote's audit first names the conversation it belongs to."""
    lines = list(summary_lines(report.summary))
    if report.kind == "quote":
        lines.insert(0, f"Conversation: {report.conversation_id}")
    return lines


def _plain_decisions(entries: Sequence[AuditEntry], cut_before: int = 0) -> list[str]:
    shown = [e for e in entries if e.plain]
    lines = [f"Decisions ({len(shown) + cut_before}):" if shown else "Decisions: none"]
    if cut_before:
        lines.append(f"  … {cut_before} earlier, on the command line: salesbot audit ID")
    lines += [f"  {iso_seconds(e.at_ms)}  {e.plain}" for e in shown]
    return lines


def _detail_lines(report: AuditReport) -> list[str]:
    lines = [
        DETAIL_HEADING,
        f"Schema {report.schema_version}, {report.generator_version}",
        "Policy versions: " + (", ".join(report.policy_versions) or "none"),
        "Quotes: " + (", ".join(report.quotes) or "none"),
        f"Entries: {len(report.entries)}",
    ]
    for entry in report.entries:
        lines.append(
            f"#{entry.seq} {entry.at} [policy {entry.policy_version[:12]}] "
            f"{entry.type}: {entry.summary}"
        )
        lines.extend(f"    {detail}" for detail in entry.details)
    lines.append("Ticket history:" if report.tickets else "Ticket history: none")
    lines.extend(f"    {line}" for line in report.tickets)
    return lines


# ---------------------------------------------------------------- building the report


def _stream(conversation_id: str, events: Iterable[EventEnvelope]) -> tuple[EventEnvelope, ...]:
    mine = [env for env in events if env.conversation_id == conversation_id]
    return tuple(sorted(mine, key=lambda env: env.seq))


def _report(
    target: str,
    kind: AuditKind,
    conversation: Sequence[EventEnvelope],
    stream: Sequence[EventEnvelope],
    calibrate: HotCalibration | None,
) -> AuditReport:
    """The report on `stream`, a part of (or all) the `conversation`'s events; `calibrate`
    gives a score's hot probability under its recorded policy, when the caller has it."""
    conversation_id = conversation[0].conversation_id
    versions: list[str] = []
    for env in stream:
        if env.policy_version not in versions:
            versions.append(env.policy_version)
    return AuditReport(
        target=target,
        kind=kind,
        conversation_id=conversation_id,
        summary=summarize(conversation_id, conversation, calibrate),
        policy_versions=tuple(versions),
        entries=_entries(conversation, {env.seq for env in stream}, calibrate),
        tickets=tuple(line for env in stream if (line := _ticket_line(env)) is not None),
        # Quote ids as issued; a revision under the same id is listed with its version.
        quotes=tuple(
            env.event.quote.label
            if isinstance(env.event, QuoteRevised)
            else env.event.quote.quote_id
            for env in stream
            if isinstance(env.event, QuoteIssued | QuoteRevised)
        ),
    )


def _entries(
    conversation: Sequence[EventEnvelope], shown: set[int], calibrate: HotCalibration | None
) -> tuple[AuditEntry, ...]:
    """Each event whose seq is `shown`, explained. Every earlier event of the conversation
    is read for context: an acceptance names the version and total it was for (the quote
    as last issued or revised before it), a score the reading that calibrated it."""
    on_offer: dict[str, Quote] = {}
    context = PlainContext(calibrate)
    entries = []
    for env in conversation:
        event = env.event
        if isinstance(event, QuoteIssued | QuoteRevised):
            on_offer[event.quote.quote_id] = event.quote
        if env.seq in shown:
            plain = plain_line(env, context)
            if isinstance(event, QuoteAccepted) and event.quote_id in on_offer:
                explained = _explain_acceptance(event, on_offer[event.quote_id])
                entries.append(_entry(env, plain, explained))
            else:
                entries.append(_entry(env, plain))
        context.saw(event)
    return tuple(entries)


def _entry(
    env: EventEnvelope,
    plain: str | None,
    explained: tuple[str, tuple[str, ...]] | None = None,
) -> AuditEntry:
    summary, details = explained or _explain(env.event)
    return AuditEntry(
        seq=env.seq,
        at_ms=env.at_ms,
        type=env.event.type,
        policy_version=env.policy_version,
        delivery_id=env.delivery_id,
        # An event with nothing to tell a reader says its summary (a newer event type).
        # Plain lines are short by construction (quoted texts are cut); a score's reasons
        # are kept whole.
        plain=" ".join(plain.split()) if plain is not None else _one_line(summary),
        summary=_one_line(summary),
        details=details,
        event=env.event,
    )


def _quote_family(quote_id: str, stream: Sequence[EventEnvelope]) -> set[str]:
    links = [
        (env.event.replaces_quote_id, env.event.quote.quote_id)
        for env in stream
        if isinstance(env.event, QuoteIssued) and env.event.replaces_quote_id is not None
    ]
    family = {quote_id}
    grown = True
    while grown:
        grown = False
        for old, new in links:
            if (old in family) != (new in family):
                family |= {old, new}
                grown = True
    return family


def _approval_tickets(family: set[str], stream: Sequence[EventEnvelope]) -> set[str]:
    keys: set[str] = set()
    for env in stream:
        event = env.event
        if (isinstance(event, ApprovalRequested) and event.quote_id in family) or (
            isinstance(event, TicketOpened) and event.quote_id in family
        ):
            keys.add(event.ticket_key)
    return keys


def _concerns_quote(event: Event, family: set[str], tickets: set[str]) -> bool:
    match event:
        case QuoteIssued() | QuoteRevised():
            return event.quote.quote_id in family
        case QuoteSuperseded():
            return event.quote_id in family or event.by_quote_id in family
        case QuoteAcceptRefused():
            return event.quote_id in family or event.current_quote_id in family
        case QuoteAccepted() | ApprovalRequested() | QuoteApproved() | QuoteRejected():
            return event.quote_id in family
        case TicketOpened() | TicketClaimed() | TicketResolved() | TicketReopened() | HandedBack():
            return event.ticket_key in tickets
        case ActionIgnored():
            return event.target in family or event.target in tickets
        case AuditRequested():
            return event.target in family
        case _:
            return False


def _ticket_line(env: EventEnvelope) -> str | None:
    event = env.event
    at = iso_ms(env.at_ms)
    match event:
        case TicketOpened():
            about = f", quote {event.quote_id}" if event.quote_id else ""
            return (
                f"{at} ticket {event.ticket_key} opened: {event.kind}, {event.reason}"
                f" (triggered by event #{event.trigger_seq}{about})"
            )
        case TicketClaimed() | TicketResolved() | TicketReopened() | HandedBack():
            return f"{at} {_ticket_change(event)[0][0].lower()}{_ticket_change(event)[0][1:]}"
        case _:
            return None


def _ticket_change(
    event: TicketClaimed | TicketResolved | TicketReopened | HandedBack,
) -> tuple[str, tuple[str, ...]]:
    """A ticket's transition in plain words (the handoff desk's, `domain.handoff`)."""
    match event:
        case TicketClaimed() if event.via == "presence":
            who = _person(event.by, event.name)
            return (
                f"Ticket {event.ticket_key} taken over by {who}, who wrote in the "
                "conversation: the bot stays silent towards the prospect",
                (),
            )
        case TicketClaimed() if event.via == "reply":
            who = _person(event.by, event.name)
            return (
                f"Ticket {event.ticket_key} taken over by {who}, who wrote to the lead's "
                "prospect: the bot stays silent towards the prospect",
                (),
            )
        case TicketClaimed():
            return f"Ticket {event.ticket_key} claimed by {_person(event.by, event.name)}", ()
        case TicketResolved() if event.outcome is not None:
            details = []
            how: str = event.outcome
            if event.outcome == "lost" and event.reason:
                how = f"lost ({event.reason}: {lost_words(event.reason)})"
            elif event.outcome == "handled":
                how = "handled, the conversation back to the bot"
            if event.competitor:
                details.append(f"competitor: {event.competitor}")
            if event.note:
                details.append(f"note: {event.note}")
            return f"Ticket {event.ticket_key} resolved by {event.by}: {how}", tuple(details)
        case TicketResolved():
            return f"Ticket {event.ticket_key} resolved by {event.by}", ()
        case TicketReopened():
            held = (
                f"held by {_person(event.holder, event.name)} again"
                if event.holder
                else "waiting to be claimed"
            )
            why = (
                "the prospect wrote after its outcome"
                if event.cause == "prospect_wrote"
                else f"{_person(event.holder or '', event.name)} wrote in the conversation"
            )
            return f"Ticket {event.ticket_key} reopened: {why}; {held}", ()
        case HandedBack():
            which = f"ticket {event.ticket_key}" if event.ticket_key else "no open ticket"
            if event.reason == "rep_idle":
                idle = event.idle_ms or 0
                return (
                    f"Handed back to the bot ({which}): the person holding it wrote nothing "
                    f"for {_duration(idle)} (the policy's rep_idle_handback_ms)",
                    (f"silent for {idle:,} ms",),
                )
            if event.reason == "prospect_wrote":
                return (
                    f"Handed back to the bot ({which}): the prospect wrote after the ticket's "
                    "outcome (the policy's after_outcome = bot)",
                    (),
                )
            return f"Handed back to the bot by {event.by} ({which})", ()


def _explain_mark(event: DealMarked) -> tuple[str, tuple[str, ...]]:
    """A rep's `won` / `lost` (command or button) in plain words."""
    how: str = event.outcome
    if event.reason:
        how = f"lost ({event.reason}: {lost_words(event.reason)})"
    means = "the command" if event.via == "command" else "the card's button"
    details = []
    if event.ticket_key:
        details.append(f"ticket {event.ticket_key} resolved with it")
    if event.competitor:
        details.append(f"competitor: {event.competitor}")
    if event.note:
        details.append(f"note: {event.note}")
    return f"Deal marked {how} by {event.by} (with {means})", tuple(details)


_REPLY_MARKS = {
    "button": "the lead card's Reply to prospect",
    "say": "@salesbot say",
    "quote_mark": "a line starting with >",
}
"""How a rep marked words for a lead's prospect, in the audit's words."""


def _person(actor_id: str, name: str | None) -> str:
    return f"{name} ({actor_id})" if name and name != actor_id else actor_id


# ---------------------------------------------------------------- explaining one event


def _explain(event: Event) -> tuple[str, tuple[str, ...]]:
    """(one-line summary, detail lines) for one event."""
    match event:
        case ConversationStarted():
            details = _lead_lines(event.lead) if event.lead is not None else ()
            return f"Conversation started by {event.started_by} (origin {event.origin})", details
        case ProspectMessageReceived():
            return _said(f"Prospect {event.actor_id} wrote", event.text)
        case RepMessageRecorded():
            return _said(f"Rep {event.actor_id} wrote", event.text)
        case ProspectMessageShown():
            return (
                "The prospect's message was posted to the lead's thread, as their words, "
                "for the team"
            ), ()
        case LeadLeftForRep():
            return (
                f"The bot did not answer the prospect: the lead came from {event.reply_in}, "
                f"with no chat to them; a rep replies in {event.reply_in}"
            ), ()
        case RepRepliedToProspect():
            how = _REPLY_MARKS[event.via]
            return _said(
                f"Rep {_person(event.actor_id, event.name)} wrote to the prospect ({how}); "
                "sent to the lead's reply URL",
                event.text,
            )
        case LeadScored():
            return _explain_score(event)
        case NarrativeAssessed():
            return _explain_narrative(event.audit)
        case MessageRead():
            return _explain_reading(event)
        case ReadingCorrected():
            name = f" {event.name}" if event.name else ""
            return (
                f"{event.by} corrected the reading of event {event.message_seq}: "
                f"{event.field}{name} → {event.value}"
            ), ()
        case ObjectionClassified():
            return _explain_objection(event.result)
        case FlowAdvanced():
            guard = event.guard or "no guard"
            return (
                f"{event.from_state} → {event.to_state} on {event.trigger} "
                f"[{guard}, priority {event.priority}]"
            ), ()
        case BotReplied():
            fallback = " (fallback template)" if event.used_fallback else ""
            wording = "" if event.variant is None else f", variant {event.variant}"
            said_in = (
                ""
                if event.language is None
                else f" in {LANGUAGE_NAMES.get(event.language, event.language)}"
            )
            return (
                f"Bot replied to the {event.audience}{said_in}: {event.action}{fallback}",
                (
                    f"action: {event.action}, template: {event.template}{fallback}{wording}",
                    *_acknowledgement_lines(event),
                    *_text_lines("text", event.text),
                ),
            )
        case ReplyLanguageChosen():
            name = LANGUAGE_NAMES.get(event.language, event.language)
            before = LANGUAGE_NAMES.get(event.previous, event.previous)
            return (
                f"Replies now in {name} (was {before}): the prospect wrote {event.words} "
                f"words in {name}"
            ), ()
        case ReplyRedirected():
            return (
                f"Moved on (no parroting): {event.planned} skipped, {event.said} said",
                tuple(f"skipped {template}: {why}" for template, why in event.skipped),
            )
        case QuoteIssued():
            return _explain_quote(event), event.quote.proof
        case QuoteRevised():
            return _explain_revision(event), event.quote.proof
        case QuoteSuperseded():
            return (
                f"{_versioned(event.quote_id, event.version)} superseded by {event.by_quote_id} "
                f"(issued by {event.by}); it can no longer be accepted"
            ), ()
        case QuoteAcceptRefused():
            offered = (
                f"{event.current_quote_id} offered instead"
                if event.current_quote_id
                else "no other quote could be offered"
            )
            return (
                f"Accept of {_versioned(event.quote_id, event.version)} by {event.by} refused: "
                f"{event.reason}; {offered}; nothing about the deal changed"
            ), ()
        case QuoteAccepted() if event.on_behalf:
            return (
                f"Quote {event.quote_id} accepted by {event.by} on the prospect's behalf "
                "(the policy's accept_on_behalf)"
            ), ()
        case QuoteAccepted():
            return f"Quote {event.quote_id} accepted by {event.by}", ()
        case ApprovalRequested():
            return (
                f"Approval of quote {event.quote_id} requested by {event.by} "
                f"(ticket {event.ticket_key})"
            ), ()
        case QuoteApproved():
            return f"Quote {event.quote_id} approved by {event.by}", ()
        case QuoteRejected():
            return f"Quote {event.quote_id} rejected by {event.by}", ()
        case TicketOpened():
            about = f" for quote {event.quote_id}" if event.quote_id else ""
            return (
                f"Ticket {event.ticket_key} opened{about}: {event.kind}, {event.reason} "
                f"(triggered by event #{event.trigger_seq})",
                (
                    f"reason: {reason_text(event.reason)}",
                    *(f"> {line}" for line in event.summary.splitlines()),
                ),
            )
        case TicketClaimed() | TicketResolved() | TicketReopened() | HandedBack():
            return _ticket_change(event)
        case ConversationClosed():
            return f"Conversation closed: {event.outcome}, by {event.by}", ()
        case DealMarked():
            return _explain_mark(event)
        case ProspectLeft():
            return _explain_leaving(event)
        case ConversationReopened():
            lost = "recorded as lost; counted open again" if event.was_lost else "not lost"
            return (
                f"The prospect wrote again after leaving ({_LEFT_WORDS.get(event.reason, event.reason)}): "
                f"the conversation is open again ({event.from_state} → {event.to_state})",
                (f"it had been {lost}",),
            )
        case ConversationAbandoned():
            return (
                f"Conversation abandoned after {_duration(event.idle_ms)} without a prospect message",
                (f"idle = {event.idle_ms:,} ms = {_duration(event.idle_ms)}",),
            )
        case AuditRequested():
            return f"{event.by} requested the audit of {event.target}", ()
        case CommandRefused():
            return f"Command /{event.command} by {event.by} refused: {event.reason}", ()
        case InstallationNoted():
            return f"Conversation of installation {event.installation}", ()
        case ChannelSet():
            return (
                f"{event.by} set the {event.purpose} channel of {event.installation} to "
                f"#{event.name or event.channel}",
                (f"channel id {event.channel}",),
            )
        case RolesSet():
            named = ", ".join(user.name or user.id for user in event.users) or "nobody"
            return (
                f"{event.by} set the {event.role} of {event.installation} to {named}",
                tuple(f"{user.name or user.id}: id {user.id}" for user in event.users),
            )
        case ActionIgnored():
            return (
                f"Click {event.action} on {event.target or '(no target)'} by {event.by} "
                f"ignored: {event.reason}"
            ), ()
        case ClaimRefused():
            return (
                f"Reply {event.action!r} withheld by the claims guard (template "
                f"{event.template!r}); its fallback was said",
                tuple(f"rule broken: {problem}" for problem in event.problems),
            )
        case FloodLimited():
            return (
                f"Flood limit: {event.messages} prospect messages within "
                f"{_duration(event.window_ms)} (limit {event.limit}); answered once, "
                "later ones recorded without a reply",
                (f"{event.messages} > {event.limit} per {event.window_ms:,} ms",),
            )
        case MeetingRequested():
            when = f", for {event.when} (their words)" if event.when else ""
            how = (
                "the owner's own link"
                if event.chosen_by == "owner"
                else "chosen from the policy's links by a hash of the conversation id"
            )
            return (
                f"Meeting requested{when}: the booking link {event.link} was offered",
                (how,),
            )
        case OwnerAssigned():
            return _explain_owner(event)
        case TicketClaimRefused():
            return (
                f"Claim of ticket {event.ticket_key} by {event.by} refused: the ticket is "
                f"routed to its owner {event.owner} until {iso_ms(event.until_ms)}",
                ("only the owner or a manager may claim it while fresh (owner_exclusive_ms)",),
            )
        case TeamNotified():
            why = []
            if event.reason is not None:
                why.append(f"lost reason: {event.reason.replace('_', ' ')}")
            if event.competitor is not None:
                why.append(f"competitor: {event.competitor}")
            if event.mention is not None:
                why.append(f"mentioned {event.mention}")
            if event.priority == "now":
                why.append("posted as a priority: the lead is pursued now")
            return f"The team was told in the lead's thread: {event.text}", tuple(why)
        case PursuitDecided():
            return _explain_pursuit(event)
        case KnowledgeAnswered():
            return _explain_answer(event)
        case KnowledgeUnanswered():
            return _explain_unanswered(event)
        case TicketRepinged() | TicketEscalated():
            return _explain_ladder(event)
        case Erased():
            idle = () if event.idle_ms is None else (f"idle for {event.idle_ms} ms",)
            legacy = (
                (f"{event.legacy_events} events stored before sealing keep their words",)
                if event.legacy_events
                else ()
            )
            return (
                f"Personal data erased ({event.reason}) by {event.by}: its key was deleted",
                (*idle, *legacy),
            )
        case CrmSyncRequested():
            return _explain_crm(event)
        case CrmSyncSettled():
            return _explain_crm_settled(event)
        case _:  # an event type newer than this module still gets an entry
            return f"{event.type} event", ()


def _explain_crm(event: CrmSyncRequested) -> tuple[str, tuple[str, ...]]:
    deal = event.deal
    what = {
        "deal": f"the deal, at {deal.stage.replace('_', ' ')} ({deal.crm_stage})",
        "quote": f"quote {event.quote_id} v{event.quote_version} as part of the deal",
        "note": f"a {event.note} note on the deal",
    }[event.artifact]
    detail = [f"record id {event.external_id} (a retried write updates the same record)"]
    if deal.amount_cents is not None and deal.currency is not None:
        units = 2 if deal.minor_units is None else deal.minor_units
        detail.append(f"amount {format_amount(deal.amount_cents, deal.currency, units)}")
    if deal.owner is not None:
        detail.append(f"owner {deal.owner}")
    if deal.lost_reason is not None:
        detail.append(f"lost reason: {deal.lost_reason.replace('_', ' ')}")
    return f"CRM sync requested: {what} ({event.reason})", tuple(detail)


def _explain_crm_settled(event: CrmSyncSettled) -> tuple[str, tuple[str, ...]]:
    what = f"the {event.artifact} {event.external_id}"
    library = f", {event.library}" if event.library else ""
    writer = f"written by salesbot's {event.adapter} adapter v{event.adapter_version}{library}"
    request = f"the write requested at event {event.request_seq}"
    if event.outcome == "sent":
        record = f" as record {event.remote_id}" if event.remote_id else ""
        return f"CRM write done: {what}{record} in {event.adapter}", (request, writer)
    said = f"{event.adapter} said: {event.reason}" if event.reason else "no message"
    return (
        f"CRM write refused for good (dead-lettered, the team alerted): {what}",
        (request, said, writer),
    )


def _explain_pursuit(event: PursuitDecided) -> tuple[str, tuple[str, ...]]:
    urgency, floor = number(event.urgency), number(event.min_urgency)
    penalised = event.urgency != event.raw_urgency
    after = f" after the fairness penalty (raw {number(event.raw_urgency)})" if penalised else ""
    if event.pursue_now:
        return (
            f"Pursued now: qualified, urgency {urgency} reaches {floor}",
            (f"urgency {urgency}{after} ≥ min_urgency {floor}",),
        )
    if not event.qualified:
        return "No longer pursued now: the lead is no longer qualified", ()
    because = (
        f"the fairness penalty lowered urgency to {urgency}, below {floor}"
        if penalised
        else f"urgency {urgency} is below {floor}"
    )
    return (
        f"Qualified but not pursued now: {because}",
        (f"urgency {urgency}{after} < min_urgency {floor}",),
    )


def _explain_owner(event: OwnerAssigned) -> tuple[str, tuple[str, ...]]:
    """Who owns the conversation and which of the policy's `[routing]` rules said so."""
    who = event.name if event.name == event.owner else f"{event.name} ({event.owner})"
    if event.rule == "spread":
        return (
            f"Owner: {who}, spread by a hash of the conversation id",
            ("no routing rule matched; SHA-256 of the conversation id over [routing] spread",),
        )
    number = event.rule.removeprefix("rule:")
    return (
        f"Owner: {who}, by routing rule {number}" + (f": {event.matched}" if event.matched else ""),
        (f"[[routing.rules]] #{number}",),
    )


def _explain_ladder(event: TicketRepinged | TicketEscalated) -> tuple[str, tuple[str, ...]]:
    """The SLA ladder's steps (`domain.sla`) in plain words."""
    waited = _duration(event.age_ms)
    if isinstance(event, TicketEscalated):
        return (
            f"Ticket {event.ticket_key} escalated: nobody claimed it for {waited}; "
            "posted to the escalation target with the on-call group mentioned",
            (),
        )
    details: list[str] = []
    if event.told_prospect:
        details.append("the prospect was told a person will answer")
    if event.open_now is True:
        details.append("within business hours")
    elif event.open_now is False and event.next_open_ms is not None:
        details.append(f"outside business hours; they next open at {iso_ms(event.next_open_ms)}")
    return (
        f"Ticket {event.ticket_key} re-pinged: nobody claimed it for {waited}; "
        "its card refreshed and the on-call group mentioned",
        tuple(details),
    )


_LEFT_WORDS = {
    "chose_competitor": "chose another vendor",
    "not_interested": "not interested",
    "not_a_buyer": "not a buyer",
    "goodbye": "said goodbye",
}

_KEPT_OPEN_WORDS = {
    "meeting_requested": "a meeting was requested",
    "open_quote": "a quote is open",
    "qualified": "the lead is qualified",
}


def _explain_leaving(event: ProspectLeft) -> tuple[str, tuple[str, ...]]:
    """A polite close: why the prospect left, the competitor, and whether the deal is lost."""
    why = _LEFT_WORDS.get(event.reason, event.reason)
    named = f" ({event.competitor})" if event.competitor else ""
    if event.lost:
        outcome = "recorded as lost"
    else:
        kept = _KEPT_OPEN_WORDS.get(event.kept_open or "", event.kept_open or "")
        outcome = f"not a lost deal: {kept}; the deal stays open"
    details = [
        f"reason: {event.reason}"
        + (" (the reader's words: " + _quoted(event.words) + ")" if event.words else "")
    ]
    if event.competitor is not None:
        if event.competitor_read is None:
            source = "a spelling from [competitors] in the message"
        elif event.competitor_read == event.competitor:
            source = "the reader's competitor entity"
        else:
            source = (
                f"the reader read “{event.competitor_read}”, which [competitors] records as this"
            )
        details.append(f"competitor: {event.competitor} ({source})")
    details.append(
        f"the conversation waits in {event.state}; a message that moves it on reopens it"
    )
    return f"The prospect left: {why}{named}; polite close, {outcome}", tuple(details)


def _languages(language: str, read_language: str, matched: str | None) -> str:
    said = f"answered in {language}"
    said += f" (the reader read {read_language}"
    if matched is not None and matched != read_language:
        said += f"; matched the {matched} examples"
    return said + ")"


def _explain_answer(event: KnowledgeAnswered) -> tuple[str, tuple[str, ...]]:
    """Which entry answered, and the retrieval arithmetic that chose it."""
    score = number(from_micro(event.score))
    threshold = number(from_micro(event.threshold))
    lines = [
        f"entry: {event.entry_id}, "
        + _languages(event.language, event.read_language, event.matched_language)
    ]
    if event.via == "pricing_question":
        summary = (
            f"Pricing question answered from the knowledge base with the pricing entry "
            f"{event.entry_id!r} (no entry reached the threshold)"
        )
        lines.append(
            f"retrieval: the best score was {score} < threshold {threshold}; a pricing "
            "question gets the policy's pricing entry (its prices come from the catalog)"
        )
    else:
        summary = (
            f"Question answered from the knowledge base: entry {event.entry_id!r} "
            f"(retrieval score {score} ≥ threshold {threshold})"
        )
        weights = [from_micro(weight) for _, weight in event.terms]
        lines.append(
            f"retrieval score = Σ BM25 weights of the matching terms = "
            f"{_sum_expression(weights)} ≥ threshold {threshold}"
        )
        lines += [
            f"  {term}: {number(weight)}"
            for term, weight in zip((term for term, _ in event.terms), weights, strict=True)
        ]
    if event.handoff is not None:
        summary += "; a person takes over"
        lines.append(f"handed to a person: {reason_text(event.handoff)}")
    return summary, tuple(lines)


_UNANSWERED_OUTCOMES = {
    "clarify": "asked the prospect what they would like to know",
    "person": "brought in a person",
    "flow": "the flow's own reply was said",
}


def _explain_unanswered(event: KnowledgeUnanswered) -> tuple[str, tuple[str, ...]]:
    score = number(from_micro(event.score))
    threshold = number(from_micro(event.threshold))
    best = (
        f"best entry {event.best_entry_id!r} scored {score}"
        if event.best_entry_id is not None
        else "no entry shares a word with it (score 0)"
    )
    outcome = _UNANSWERED_OUTCOMES[event.outcome]
    if event.repeated:
        summary = (
            f"Question asked again: entry {event.best_entry_id!r} was the last answer and is "
            f"not said twice in a row (no parroting); {outcome}"
        )
        lines: tuple[str, ...] = (
            f"{best} ≥ threshold {threshold}, but it was the bot's last answer",
            f"language {event.language} (the reader read {event.read_language})",
            f"outcome: {outcome}",
        )
        return summary, lines
    summary = (
        f"Question not answered from the knowledge base: {best} < threshold {threshold}; {outcome}"
    )
    lines = (
        f"{best}, below the threshold {threshold}",
        f"language {event.language} (the reader read {event.read_language})",
        f"outcome: {outcome}",
    )
    return summary, lines


def _acknowledgement_lines(event: BotReplied) -> tuple[str, ...]:
    """What the reply echoed of the prospect's own words (not claims of the bot)."""
    lines = []
    if event.acknowledged is not None:
        lines.append(f"acknowledged first: {event.acknowledged}")
    lines += [
        f"echoed the prospect's words: {{{name}}} = “{value}”"
        for name, value in sorted(event.echoed.items())
    ]
    return tuple(lines)


def _lead_lines(lead: LeadDetails) -> tuple[str, ...]:
    lines = [f"lead: {lead.name}" + (f" ({lead.company})" if lead.company else "")]
    if lead.email:
        lines.append(f"email: {lead.email}")
    if lead.source:
        lines.append(f"source: {lead.source}")
    if lead.company_size is not None:
        lines.append(f"company size: {lead.company_size}")
    if lead.external_id:
        lines.append(f"external id: {lead.external_id}")
    if lead.reply_in:
        lines.append(f"came from: {lead.reply_in} (no chat with the prospect; reps reply there)")
    credit = "unknown" if lead.credit_score is None else str(lead.credit_score)
    lines.append(f"credit score: {credit} (used only for the fairness penalty on urgency)")
    return tuple(lines)


def _said(who: str, text: str) -> tuple[str, tuple[str, ...]]:
    summary = f"{who}: “{text}”"
    whole = _one_line(summary) == summary and "\n" not in text
    return summary, () if whole else _text_lines("text", text)


def _text_lines(label: str, text: str) -> tuple[str, ...]:
    lines = text.splitlines() or [""]
    return (f"{label}: {lines[0]}", *(f"  {line}" for line in lines[1:]))


def _explain_score(event: LeadScored) -> tuple[str, tuple[str, ...]]:
    score = event.score
    lines = [_feature_line(score, name) for name in score.contributions]
    total = f"score = Σ = {_sum_expression(score.contributions.values())}"
    if score.probability is not None:
        total += f"; p = σ(score) = {number(score.probability)}"
    if event.subject == "conversation":
        outcome = "qualified" if event.qualified else "not qualified"
        lines.append(f"{total} → {score.band} ({outcome})")
        summary = f"Lead scored {number(score.score)} → {score.band}, {outcome}"
    else:
        lines.append(f"{total} → {score.band} (pasted text; the lead is unchanged)")
        summary = f"Pasted text scored {number(score.score)} → {score.band} (lead unchanged)"
    return summary, tuple(lines)


def _explain_reading(event: MessageRead) -> tuple[str, tuple[str, ...]]:
    """The reader's verdict, then for each head that fired: its w × x, sum and threshold."""
    said = [f"language {event.language}, band {event.band} (score {number(event.score)})"]
    signals = [name for name, on in event.signals.items() if on]
    said.append("signals: " + (", ".join(signals) or "none"))
    if event.retracted:
        said.append("taken back: " + ", ".join(event.retracted))
    said.append(f"objection: {event.objection or 'none'}")
    if event.needs_human:
        said.append("needs a human: " + ", ".join(event.reasons))
    if event.intents:
        said.append("intents: " + ", ".join(event.intents))
    lines = list(said)
    for explanation in event.explanations:
        lines.append(f"{explanation.head}:")
        for feature, weight, value, contribution in explanation.terms:
            evidence = event.evidence.get(feature)
            note = f" (matched: {_quoted(evidence)})" if evidence else ""
            lines.append(f"  {feature}: {number(weight)} × {value} = {number(contribution)}{note}")
        if explanation.bias:
            lines.append(f"  bias: {number(explanation.bias)}")
        relation = "≥" if explanation.total >= explanation.threshold else "<"
        calibrated = ""
        if explanation.probability is not None:
            what = "probability hot" if explanation.head == "band" else "probability"
            calibrated = f" ({what} {number(explanation.probability)}, calibrated, for display)"
        lines.append(
            f"  sum = {number(explanation.total)} {relation} threshold "
            f"{number(explanation.threshold)}{calibrated}"
        )
    summary = (
        f"Message read: {event.band}"
        + (f", {event.objection} objection" if event.objection else "")
        + (", needs a human (" + ", ".join(event.reasons) + ")" if event.needs_human else "")
    )
    return summary, tuple(lines)


def _feature_line(score: LeadScore, name: str) -> str:
    contribution = score.contributions[name]
    if name == INTERCEPT:
        return f"{INTERCEPT}: {number(contribution)}"
    weight = score.weights.get(name, Decimal(0))
    line = f"{name}: {number(weight)} × {score.features.get(name, 0)} = {number(contribution)}"
    notes = []
    if score.evidence.get(name):
        notes.append("matched: " + _quoted(score.evidence[name]))
    if score.negated.get(name):
        notes.append("negated: " + _quoted(score.negated[name]))
    return line + (f" ({'; '.join(notes)})" if notes else "")


def _explain_narrative(audit: NarrativeAudit) -> tuple[str, tuple[str, ...]]:
    lines = [
        f"{name} (f={value}): resonance {number(audit.contrib_res.get(name, Decimal(0)))}, "
        f"urgency {number(audit.contrib_urg.get(name, Decimal(0)))}"
        for name, value in audit.features.items()
    ]
    lines.append(f"R = Σ w_R·f = {_sum_expression(audit.contrib_res.values())}")
    lines.append(f"U = Σ w_U·f = {_sum_expression(audit.contrib_urg.values())}")
    knobs = f"c0 = {audit.c0}, λ = {number(audit.lambda_)}"
    u = number(audit.raw_urgency)
    if audit.reason_code == "credit_below_threshold":
        penalty = exact_product(audit.lambda_, audit.raw_urgency)
        lines.append(
            f"credit {audit.credit} < c0 {audit.c0}: U_pen = max(0, U − λ·C_U) = "
            f"max(0, {u} − {number(audit.lambda_)} × {u}) = max(0, {u} − {number(penalty)}) "
            f"= {number(audit.penalized_urgency)}"
        )
    elif audit.reason_code == "no_penalty":
        lines.append(
            f"credit {audit.credit} ≥ c0 {audit.c0}: no penalty, U_pen = U = "
            f"{number(audit.penalized_urgency)} ({knobs})"
        )
    else:
        lines.append(
            f"credit unknown: no penalty, U_pen = U = {number(audit.penalized_urgency)} ({knobs})"
        )
    lines.append(f"reason: {audit.reason} [{audit.reason_code}]")
    summary = (
        f"Narrative: resonance {number(audit.resonance)}, urgency {u} → "
        f"{number(audit.penalized_urgency)} ({audit.reason_code})"
    )
    return summary, tuple(lines)


def _explain_objection(result: ObjectionResult) -> tuple[str, tuple[str, ...]]:
    total = sum(len(terms) for terms in result.hits.values())
    lines = [
        f"{name}: {len(terms)} hit{'s' if len(terms) != 1 else ''} ({_quoted(terms)})"
        for name, terms in result.hits.items()
        if terms
    ]
    quiet = [name for name, terms in result.hits.items() if not terms]
    if quiet:
        lines.append("no hits: " + ", ".join(quiet))
    if result.objection is not None:
        mine = len(result.hits.get(result.objection, ()))
        lines.append(
            f"class: {result.objection}, confidence = {mine} / {total} = "
            f"{result.confidence} (its hits / all hits)"
        )
    else:
        lines.append(f"class: none, confidence = {result.confidence} (no objection terms)")
    lines.append("sensitive terms: " + (_quoted(result.sensitive) or "none"))
    lines.append(f"escalation: {result.escalation_reason or 'none'}")
    summary = (
        f"Objection: {result.objection} (confidence {result.confidence})"
        if result.objection is not None
        else "No objection class"
    )
    if result.sensitive:
        summary += "; sensitive terms: " + ", ".join(result.sensitive)
    if result.escalation_reason is not None:
        summary += f" → escalate ({result.escalation_reason})"
    return summary, tuple(lines)


def _explain_quote(event: QuoteIssued) -> str:
    quote = event.quote
    figures = quote.figures()
    summary = f"Quote {quote.quote_id} v{quote.version} issued by {event.requested_by}: "
    summary += f"total {figures['total']}"
    if quote.needs_approval:
        summary += ", needs approval"
    if quote.approved_by:
        summary += f", approved by {quote.approved_by}"
    if event.replaces_quote_id:
        summary += f", replaces {event.replaces_quote_id}"
    return summary


def _explain_revision(event: QuoteRevised) -> str:
    quote = event.quote
    summary = f"{quote.label} after the approved discount (approved by {event.by}): "
    summary += f"total {quote.figures()['total']}, replaces v{event.previous_version}"
    return summary


def _explain_acceptance(event: QuoteAccepted, quote: Quote) -> tuple[str, tuple[str, ...]]:
    """The deal closes on exactly this version and amount."""
    return (
        f"Quote {event.quote_id} v{quote.version} accepted by {event.by}: "
        f"total {quote.figures()['total']}"
    ), ()


def _versioned(quote_id: str, version: int) -> str:
    return quote_id if version == 1 else f"{quote_id} v{version}"


def _sum_expression(values: Iterable[Decimal]) -> str:
    """`0.4 + 0.3 − 0.4 = 0.3` over the non-zero terms, so the sum can be redone by hand."""
    terms = [v for v in values if v != 0]
    total = number(exact_sum(terms))
    if len(terms) < 2:
        return total
    text = number(terms[0])
    for term in terms[1:]:
        text += f" + {number(term)}" if term > 0 else f" − {number(-term)}"
    return f"{text} = {total}"


def _quoted(terms: Iterable[str]) -> str:
    return ", ".join(f'"{term}"' for term in terms)


def _duration(ms: int) -> str:
    minutes, _ = divmod(ms, 60_000)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h {minutes} min"


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SUMMARY_LIMIT else flat[: SUMMARY_LIMIT - 1] + "…"
