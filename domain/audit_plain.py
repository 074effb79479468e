"""The audit's decisions in plain words: one line per event, for a sales-ops reader.

`domain.audit` explains each event for someone who recomputes it (feature names, `w × x`,
guards and priorities, proofs); this module says what happened as a person would tell it:
who wrote what, what the bot made of it, what it said, what was quoted for how much, who
took over. No event type names, hashes, formulas or feature identifiers: those stay in the
audit's detail section.

`plain_line` returns "" for an event with nothing to tell a reader (the flow staying in the
state it was in: the plain decisions leave it out) and None for an event type it does not
know yet; the audit then shows the event's own summary, so a new event type is never
silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal

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
    DeliveryDeadLettered,
    Erased,
    Event,
    EventEnvelope,
    FlowAdvanced,
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
    ProspectMessageReceived,
    QuoteAccepted,
    QuoteAcceptRefused,
    QuoteApproved,
    QuoteIssued,
    QuoteRejected,
    QuoteRevised,
    ReadingCorrected,
    ReplyRedirected,
    RepMessageRecorded,
    RolesSet,
    TicketClaimRefused,
    TicketOpened,
)
from domain.languages import LANGUAGE_NAMES
from domain.money import format_percent
from domain.presenters import reason_text
from domain.quotes import Quote
from domain.scoring import INTERCEPT, LeadScore

QUOTED_LIMIT = 90
"""A quoted message or reply is cut to this many characters in its plain line."""

REASONS_SHOWN = 3
"""A score's plain line names its three largest contributions; the rest are one sum."""

_CENT = Decimal("0.01")


def words(code: str) -> str:
    """A code as words: `not_auditor` → `not auditor`."""
    return code.replace("_", " ")


def rounded(value: Decimal) -> str:
    """A score or contribution for people: two places (`0.40`, `9.06`)."""
    return str(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def signed(value: Decimal) -> str:
    text = rounded(value)
    return text if text.startswith("-") else f"+{text}"


def quoted(text: str, limit: int = QUOTED_LIMIT) -> str:
    flat = " ".join(text.split())
    return "“" + (flat if len(flat) <= limit else flat[: limit - 1] + "…") + "”"


def feature_words(name: str) -> str:
    """A scoring feature as a reader says it. The trained reader's names say where a
    feature comes from (`domain.understanding.features`): a lexicon (`lex:budget`), a word
    (`w:want`), two words (`p:and_we`), an entity (`ent:money_10k`), the lead's metadata."""
    if name == INTERCEPT:
        return "baseline"
    family, _, rest = name.partition(":")
    if not rest:
        return words(name)
    match family:
        case "lex":
            lexicon, _, mark = rest.partition(":")
            if mark == "not":
                return f"{words(lexicon)} (negated)"
            if mark == "self":
                return f"{words(lexicon)} (about themselves)"
            return words(lexicon)
        case "typo":
            return f"{words(rest)} (misspelt)"
        case "w":
            return f"the word “{rest}”"
        case "n":
            return f"the word “{rest}” (negated)"
        case "p":
            return f"the words “{rest.replace('_', ' ')}”"
        case "lang":
            return f"written in {LANGUAGE_NAMES.get(rest, rest)}"
        case "ent":
            return _entity_words(rest)
        case "meta":
            return _metadata_words(rest)
        case "shape":
            return f"message shape: {words(rest)}"
    return words(name)


_ENTITY_WORDS = {
    "amount": "a number",
    "money": "an amount of money",
    "money_1k": "an amount of 1,000 or more",
    "money_10k": "an amount of 10,000 or more",
    "money_100k": "an amount of 100,000 or more",
    "date": "a date",
    "date_past": "a date in the past",
    "team": "a team size",
    "competitor": "a competitor's name",
}


def _entity_words(rest: str) -> str:
    if rest in _ENTITY_WORDS:
        return _ENTITY_WORDS[rest]
    kind, _, size = rest.partition("_")
    if kind == "date" and size.endswith("d"):
        return f"a date within {size[:-1]} days"
    if kind == "team" and size.isdigit():
        return f"a team of {size} or more"
    return words(rest)


def _metadata_words(rest: str) -> str:
    kind, _, value = rest.partition("_")
    if kind == "size" and value.isdigit():
        return f"a company of {value} or more people"
    if kind == "source":
        return f"lead source {value}"
    return words(rest)


def top_contributions(score: LeadScore, shown: int = REASONS_SHOWN) -> list[tuple[str, Decimal]]:
    """The largest non-zero contributions (by size, then name), the intercept excluded:
    a baseline is not a reason."""
    parts = [
        (name, value)
        for name, value in score.contributions.items()
        if value != 0 and name != INTERCEPT
    ]
    parts.sort(key=lambda item: (-abs(item[1]), item[0]))
    return parts[:shown]


EVIDENCE_SHOWN = 3
"""A reason quotes at most this many of the words that triggered it."""


def reason_phrase(name: str, contribution: Decimal, evidence: Iterable[str]) -> str:
    """`budget +0.40 (“$40k”, “approved”)`."""
    terms = list(evidence)
    heard = ", ".join(f"“{term}”" for term in terms[:EVIDENCE_SHOWN])
    if len(terms) > EVIDENCE_SHOWN:
        heard += ", …"
    return f"{feature_words(name)} {signed(contribution)}" + (f" ({heard})" if heard else "")


def score_line(
    score: LeadScore,
    *,
    qualified: bool | None,
    hot_probability: Decimal | None,
    evidence: Mapping[str, tuple[str, ...]] | None = None,
) -> str:
    """`Scored 0.72 — hot, qualified (probability hot 0.93): budget +0.40 (“$40k”), …;
    everything else +0.07`. The shown reasons and "everything else" add up to the score."""
    heard = score.evidence if evidence is None else evidence
    top = top_contributions(score)
    head = f"Scored {rounded(score.score)} — {score.band}"
    if qualified is not None:
        head += ", qualified" if qualified else ", not qualified"
    if hot_probability is not None:
        head += f" (probability hot {rounded(hot_probability)})"
    if not top:
        return head + ": no signals"
    reasons = ", ".join(reason_phrase(name, c, heard.get(name, ())) for name, c in top)
    rest = score.score - sum((c for _, c in top), Decimal(0))
    others = len([c for name, c in score.contributions.items() if c != 0]) - len(top)
    if others > 0 or rest != 0:
        reasons += f"; everything else {signed(rest)}"
    return f"{head}: {reasons}"


def quote_words(quote: Quote) -> str:
    """`10 × Pro plan, 10% off, total 1,791.00 USD`."""
    figures = quote.figures()
    what = f"{quote.qty} × {quote.description}"
    if quote.discount:
        what += f", {format_percent(quote.discount)} off"
    return f"{what}, total {figures['total']}"


def plain_line(env: EventEnvelope, context: PlainContext) -> str | None:
    """What happened, in plain words; "" when there is nothing to tell a reader, None for an
    event type newer than this module (the caller then shows the event's summary)."""
    event = env.event
    match event:
        case ConversationStarted() if event.lead is not None:
            lead = event.lead
            who = lead.name + (f" ({lead.company})" if lead.company else "")
            source = f", source {lead.source}" if lead.source else ""
            return f"Lead arrived: {who}{source}"
        case ConversationStarted():
            return f"Conversation started by {event.started_by}"
        case ProspectMessageReceived():
            return f"Prospect wrote: {quoted(event.text)}"
        case RepMessageRecorded():
            return f"{event.name or event.actor_id} (rep) wrote: {quoted(event.text)}"
        case MessageRead():
            return _reading_line(event)
        case LeadScored() if event.subject == "pasted_text":
            line = score_line(event.score, qualified=None, hot_probability=None)
            return f"A rep's pasted text: {line[0].lower()}{line[1:]} (the lead is unchanged)"
        case LeadScored():
            return score_line(
                event.score,
                qualified=event.qualified,
                hot_probability=context.hot_probability(event.score, env.policy_version),
                evidence=context.evidence(event.score),
            )
        case NarrativeAssessed():
            return _narrative_line(event)
        case ObjectionClassified():
            result = event.result
            parts = []
            if result.objection is not None:
                parts.append(f"objection heard: {words(result.objection)}")
            if result.sensitive:
                parts.append("sensitive words: " + ", ".join(f"“{t}”" for t in result.sensitive))
            if result.escalation_reason is not None:
                parts.append(f"a person takes over ({reason_text(result.escalation_reason)})")
            return ("; ".join(parts) or "no objection heard").capitalize()
        case FlowAdvanced() if event.from_state == event.to_state:
            return ""
        case FlowAdvanced():
            return f"Conversation moved on: {words(event.from_state)} → {words(event.to_state)}"
        case BotReplied():
            said_in = (
                ""
                if event.language is None
                else f" in {LANGUAGE_NAMES.get(event.language, event.language)}"
            )
            to = "the prospect" if event.audience == "conversation" else f"the {event.audience}"
            return f"Bot answered {to}{said_in}: {quoted(event.text)}"
        case ReplyRedirected():
            return "Bot said something new instead of repeating itself"
        case QuoteIssued():
            quote = event.quote
            line = f"Quote {quote.label} issued by {event.requested_by}: {quote_words(quote)}"
            if quote.needs_approval:
                line += " — the discount needs a manager's approval"
            if event.replaces_quote_id:
                line += f"; replaces {event.replaces_quote_id}"
            return line
        case QuoteRevised():
            return f"Quote {event.quote.label} after {event.by} approved the discount: " + (
                quote_words(event.quote)
            )
        case QuoteAccepted():
            offered = context.quotes.get(event.quote_id)
            total = f": {quote_words(offered)}" if offered is not None else ""
            label = offered.label if offered is not None else event.quote_id
            return f"Quote {label} accepted by {event.by}{total}"
        case QuoteAcceptRefused():
            instead = (
                f"; {event.current_quote_id} was offered instead" if event.current_quote_id else ""
            )
            return (
                f"{event.by} tried to accept quote {event.quote_id}, which was "
                f"{words(event.reason)}{instead}"
            )
        case ApprovalRequested():
            return f"{event.by} asked for a manager's approval of quote {event.quote_id}"
        case QuoteApproved():
            return f"{event.by} approved the discount on quote {event.quote_id}"
        case QuoteRejected():
            return f"{event.by} rejected the discount on quote {event.quote_id}"
        case TicketOpened() if event.kind == "approval":
            return f"Approval ticket opened for quote {event.quote_id}"
        case TicketOpened():
            return f"A person was asked to take over: {reason_text(event.reason)}"
        case ConversationClosed():
            return f"Deal {event.outcome} (recorded by {event.by})"
        case ConversationReopened():
            return "The prospect wrote again after leaving: the conversation is open again"
        case ConversationAbandoned():
            return "Conversation abandoned: the prospect stopped answering"
        case AuditRequested():
            return f"{event.by} opened the audit of {event.target}"
        case CommandRefused():
            return f"{event.by} was refused the {event.command} command: {words(event.reason)}"
        case InstallationNoted():
            return f"This conversation belongs to installation {event.installation}"
        case ChannelSet():
            return (
                f"{event.by} chose #{event.name or event.channel} as the {event.purpose} "
                f"channel of {event.installation}"
            )
        case RolesSet():
            named = ", ".join(user.name or user.id for user in event.users) or "nobody"
            return f"{event.by} made {named} the {event.role} of {event.installation}"
        case ActionIgnored():
            return (
                f"{event.by}'s click on “{words(event.action)}” changed nothing: "
                f"{words(event.reason)}"
            )
        case ClaimRefused():
            return (
                "A reply was held back because it said something the policy does not allow; "
                "a safe wording was said instead"
            )
        case OwnerAssigned() if event.rule == "spread":
            return f"{event.name} owns this conversation (spread evenly among the owners)"
        case OwnerAssigned():
            because = f": {event.matched}" if event.matched else ""
            return f"{event.name} owns this conversation (routing rule{because})"
        case TicketClaimRefused():
            return (
                f"{event.by} could not claim the ticket yet: it is routed to its owner "
                f"{event.owner} for now"
            )
        case MeetingRequested():
            when = f" for {event.when}" if event.when else ""
            return f"The prospect asked for a meeting{when}: a booking link was offered"
        case KnowledgeAnswered():
            return f"Question answered from the knowledge base ({words(event.entry_id)})"
        case KnowledgeUnanswered() if event.repeated:
            return "Question asked again: the bot does not repeat its last answer"
        case KnowledgeUnanswered():
            return "Question the knowledge base could not answer"
        case ReadingCorrected():
            what = words(event.field) + (f" {words(event.name)}" if event.name else "")
            return f"{event.by} corrected what the bot read: {what} is {words(event.value)}"
        case DeliveryDeadLettered():
            return f"A message could not be delivered: {event.reason}"
        case LeadLeftForRep():
            return (
                f"The lead came from {event.reply_in}: there is no chat with the prospect, so "
                f"the bot did not write to them; a rep replies in {event.reply_in}"
            )
        case Erased():
            return _erased_line(event)
        case CrmSyncRequested() if event.artifact == "deal":
            return f"The CRM deal was set to {words(event.deal.stage)}"
        case CrmSyncRequested() if event.artifact == "quote":
            return f"Quote {event.quote_id} was sent to the CRM"
        case CrmSyncRequested():
            return f"A {event.note} note was added to the CRM deal"
        case CrmSyncSettled() if event.outcome == "sent":
            return f"The CRM {event.artifact} was written in {event.adapter}"
        case CrmSyncSettled():
            return f"{event.adapter} refused the CRM {event.artifact}: {event.reason}"
        case _:
            return None


def _erased_line(event: Erased) -> str:
    why = (
        "at the prospect's request"
        if event.reason == "request"
        else "as the retention period ran out"
    )
    line = (
        f"Personal data erased {why} by {event.by}: the prospect's words, the lead's details "
        "and the credit score read [erased]; scores, readings and amounts remain"
    )
    if event.legacy_events:
        line += f" ({event.legacy_events} events stored before sealing existed keep their words)"
    return line


def _reading_line(event: MessageRead) -> str:
    line = f"Read the message as {event.band}"
    stated = [name for name, on in event.signals.items() if on]
    if stated:
        line += ": " + _joined([words(name) for name in stated]) + " stated"
    if event.retracted:
        line += "; taken back: " + _joined([words(name) for name in event.retracted])
    if event.objection:
        line += f"; objection: {words(event.objection)}"
    if event.intents:
        line += "; " + _joined([words(name) for name in event.intents])
    if event.needs_human:
        line += "; needs a person: " + reason_text(",".join(event.reasons))
    return line


def _narrative_line(event: NarrativeAssessed) -> str:
    audit = event.audit
    head = f"Resonance {rounded(audit.resonance)}, urgency {rounded(audit.raw_urgency)}"
    if audit.reason_code == "credit_below_threshold":
        return (
            f"{head}, lowered to {rounded(audit.penalized_urgency)} by the fairness penalty "
            f"(credit score {audit.credit} below {audit.c0})"
        )
    if audit.reason_code == "no_penalty":
        return f"{head} (credit score {audit.credit}: no fairness penalty)"
    return f"{head} (credit score unknown: no fairness penalty)"


def _joined(items: list[str]) -> str:
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


HotCalibration = Callable[[str, Decimal], Decimal | None]
"""(policy version, band score) → the calibrated probability that the lead is hot under
that policy's model, or None when it has no calibration (or the policy is not at hand)."""


class PlainContext:
    """What a plain line needs from earlier events: the latest reading (its calibrated hot
    probability and the words it heard) and the quotes on offer (an acceptance names the
    version and total it closed on). `calibrate` gives the recorded policy's calibration,
    when the caller has the policies."""

    def __init__(self, calibrate: HotCalibration | None = None) -> None:
        self._calibrate = calibrate
        self._heard: dict[str, list[str]] = {}
        self.quotes: dict[str, Quote] = {}
        self._reading: MessageRead | None = None
        self._amounts: list[str] = []

    def saw(self, event: Event) -> None:
        """Remember what later lines need; call after each event's line."""
        if isinstance(event, QuoteIssued | QuoteRevised):
            self.quotes[event.quote.quote_id] = event.quote
        elif isinstance(event, MessageRead):
            self._reading = event
            for amount in amounts_heard(event):
                if amount not in self._amounts:
                    self._amounts.append(amount)
            for feature, terms in event.evidence.items():
                known = self._heard.setdefault(feature, [])
                known += [term for term in terms if term not in known]

    def hot_probability(self, score: LeadScore, policy_version: str) -> Decimal | None:
        if score.probability is None and self._calibrate is not None:
            calibrated = self._calibrate(policy_version, score.score)
            if calibrated is not None:
                return calibrated
        return hot_probability(score, self._reading)

    def evidence(self, score: LeadScore) -> dict[str, tuple[str, ...]]:
        """The words behind each contribution, from every message so far: the
        conversation's score adds up what earlier messages stated."""
        heard = evidence_heard(score, tuple(self._amounts))
        for name in score.contributions:
            if name not in heard and self._heard.get(name):
                heard[name] = tuple(self._heard[name])
        return heard


def hot_probability(score: LeadScore, reading: MessageRead | None) -> Decimal | None:
    """The calibrated probability that the lead is hot, where the model gives one: the
    scorer's own (a logistic link), else the reader's band calibration for the same sum.

    The reader records the calibrated probability of each message's band sum; the
    conversation's score is that sum when the latest message decided it (the latest
    message counts in full, `domain.understanding.reading.read_conversation`), and the
    calibration is a function of the sum, so an equal sum has the recorded probability.
    Otherwise none is claimed."""
    if score.probability is not None:
        return score.probability
    if reading is None:
        return None
    for explanation in reading.explanations:
        if explanation.head == "band" and explanation.total == score.score:
            return explanation.probability
    return None


def amounts_heard(reading: MessageRead) -> tuple[str, ...]:
    """The amounts of money a message named, as the prospect wrote them."""
    money = reading.entities.get("money")
    if not isinstance(money, list | tuple):
        return ()
    return tuple(str(item["text"]) for item in money if isinstance(item, dict) and "text" in item)


def evidence_heard(score: LeadScore, amounts: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The words behind each contribution: the scorer's evidence, plus the amounts the
    reader heard (`amounts`) for its money features, which record no words of their own."""
    heard = {name: tuple(terms) for name, terms in score.evidence.items() if terms}
    for name in score.contributions:
        if name.startswith("ent:money") and amounts and name not in heard:
            heard[name] = amounts
    return heard
