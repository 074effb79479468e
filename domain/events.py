"""Facts: everything the bot decided, in the past tense.

A conversation is the fold of its events (`domain.state.fold`). Events are wrapped in an
`EventEnvelope` carrying the conversation, a gap-free sequence number, integer epoch
milliseconds, the policy version and the delivery that caused them, so the log alone
explains every reply, score, quote and ticket to the cent and to the feature.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

from pydantic import Field, SerializeAsAny

from domain import GENERATOR
from domain.cards import Audience
from domain.crm import CrmArtifact, CrmDeal, NoteKind
from domain.inbound import LeadDetails, UserRef
from domain.model import Frozen, Sparse
from domain.narrative import NarrativeAudit
from domain.objections import ObjectionResult
from domain.quotes import Quote
from domain.scoring import LeadScore

EVENT_SCHEMA_VERSION = 1

TicketKind = Literal["handoff", "approval"]
Outcome = Literal["won", "lost"]
Origin = Literal["lead", "direct", "command"]


class _Event(Frozen):
    schema_version: int = EVENT_SCHEMA_VERSION


class _Sparse(_Event, Sparse):
    """An event with fields added after it was first stored (`ADDED_LATER`, left out of its
    JSON while unset), so an event decided as before reads and writes as it did."""


class ConversationStarted(_Sparse):
    """`installation`: the installation the conversation was started through (its first
    actor's `Actor.installation`; "" the first installation, and every conversation stored
    before installations were told apart). Its audits and metrics are that installation's."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("installation",)

    type: Literal["conversation_started"] = "conversation_started"
    origin: Origin
    started_by: str
    lead: LeadDetails | None = None
    installation: str = ""


class ProspectMessageReceived(_Event):
    type: Literal["prospect_message_received"] = "prospect_message_received"
    actor_id: str
    text: str


class RepMessageRecorded(_Sparse):
    """A rep's words in the conversation (for example while holding a handoff ticket);
    `name` is the rep's name as people see it (recorded under `[handoff]`, for the ticket
    card's transcript)."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("name",)
    type: Literal["rep_message_recorded"] = "rep_message_recorded"
    actor_id: str
    text: str
    name: str | None = None


ReplyMark = Literal["button", "say", "quote_mark"]
"""How a rep marked words for a lead's prospect (`[handoff] lead_room`): the lead card's
*Reply to prospect*, `@salesbot say …`, or a leading `>`."""


class ProspectMessageShown(_Event):
    """`[handoff] lead_room`: a lead's prospect wrote again (the `prospect_message_received`
    before this one), and their words were posted to the lead's thread, quoted as theirs, so
    the team reads them where it works the lead."""

    type: Literal["prospect_message_shown"] = "prospect_message_shown"


class LeadLeftForRep(_Event):
    """A lead created in another system with no way back to the prospect
    (`LeadDetails.reply_in`, e.g. a CRM's webhook): the prospect's words were read and
    scored, and the bot said nothing to them — a rep replies in `reply_in`."""

    type: Literal["lead_left_for_rep"] = "lead_left_for_rep"
    reply_in: str


class RepRepliedToProspect(_Event):
    """`[handoff] lead_room`: a rep's words, marked for the prospect of a lead (`via`), sent
    to them through the lead's reply URL. Everything else a rep writes in the lead's thread
    stays with the team (`rep_message_recorded`). `name` is the rep as the prospect sees
    them."""

    type: Literal["rep_replied_to_prospect"] = "rep_replied_to_prospect"
    actor_id: str
    name: str
    text: str
    via: ReplyMark


class LeadScored(_Event):
    """A score with its full attribution. `subject` says whether it is the conversation's
    own lead score or a rep's pasted text (`/lead`), which does not change the lead."""

    type: Literal["lead_scored"] = "lead_scored"
    subject: Literal["conversation", "pasted_text"] = "conversation"
    score: LeadScore
    qualified: bool


class HeadExplanation(Sparse):
    """Why one of the reader's heads fired: each non-zero `w × x`, their sum with the bias,
    and the threshold it was compared with (all exact)."""

    head: str
    terms: tuple[tuple[str, Decimal, int, Decimal], ...]
    """(feature, weight, value, weight × value), largest contribution first."""
    bias: Decimal
    total: Decimal
    threshold: Decimal
    probability: Decimal | None = None
    """The head's calibrated probability for this sum (the band's: that the lead is hot),
    for display; none when the model has no calibration (`Calibration`)."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("probability",)


class MessageRead(_Event):
    """What the trained reader made of one prospect message, with the features it read.

    The features are recorded so the audit can list every `w × x` of the policy's weights
    and a retrained model can be evaluated on past messages without re-reading them.
    `conversation_signals` are the signals the conversation holds after this message
    (said once, true until `retracted`).
    """

    type: Literal["message_read"] = "message_read"
    reader: str = ""
    """The fingerprint of the reader's spec and vocabulary the features were extracted with
    (`domain.understanding.features.fingerprint`)."""
    language: str
    features: dict[str, int]
    evidence: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    entities: dict[str, Any] = Field(default_factory=dict)
    band: str
    score: Decimal
    signals: dict[str, bool]
    objection: str | None
    needs_human: bool
    reasons: tuple[str, ...]
    intents: tuple[str, ...]
    retracted: tuple[str, ...] = ()
    conversation_signals: dict[str, bool]
    explanations: tuple[HeadExplanation, ...] = ()
    """The heads that fired (and the band's), for the audit."""


class ReadingCorrected(_Event):
    """A rep marked part of the reader's reading of one message wrong (`correct …`): the
    next training run can learn from it (`salesbot train --corrections`)."""

    type: Literal["reading_corrected"] = "reading_corrected"
    message_seq: int
    """The sequence number of the corrected `message_read` event."""
    field: Literal["band", "objection", "signal", "intent", "human"]
    name: str | None = None
    value: str
    by: str


class NarrativeAssessed(_Event):
    type: Literal["narrative_assessed"] = "narrative_assessed"
    audit: NarrativeAudit


class ObjectionClassified(_Event):
    type: Literal["objection_classified"] = "objection_classified"
    result: ObjectionResult


class FlowAdvanced(_Event):
    type: Literal["flow_advanced"] = "flow_advanced"
    from_state: str
    to_state: str
    trigger: str
    guard: str | None = None
    priority: int


class BotReplied(_Event):
    type: Literal["bot_replied"] = "bot_replied"
    audience: Audience
    action: str
    template: str
    text: str
    used_fallback: bool = False
    variant: int | None = None
    """Which wording of the template was said (0 its main text, 1… its variants), chosen
    by a hash of the conversation id and the turn; None for a template without variants."""
    acknowledged: str | None = None
    """The `ack.*` template said first, acknowledging what the prospect just stated."""
    echoed: dict[str, str] = Field(default_factory=dict)
    """The prospect's own words the reply echoes (from the reading's entities), by
    placeholder: what they said, not a claim of the bot."""
    language: str | None = None
    """The language the reply was said in, under a policy with `[languages]` (None: the
    template as written, as before)."""


class ReplyRedirected(_Event):
    """The bot said something other than its first choice, so as not to parrot the prospect
    (the policy's `[replies]`): `planned` was skipped for each reason in `skipped` (template,
    why), and `said` was said instead — another question, the proposal, or `escalate` with a
    handoff ticket when nothing new was left to say."""

    type: Literal["reply_redirected"] = "reply_redirected"
    planned: str
    said: str
    skipped: tuple[tuple[str, str], ...]


class QuoteIssued(_Event):
    type: Literal["quote_issued"] = "quote_issued"
    quote: Quote
    requested_by: str
    replaces_quote_id: str | None = None


class QuoteSuperseded(_Event):
    """A newer quote in the conversation took the place of this open one (the policy's
    `quotes.supersede_open`): it can no longer be accepted, and its card says which quote
    replaced it."""

    type: Literal["quote_superseded"] = "quote_superseded"
    quote_id: str
    version: int
    by_quote_id: str
    by: str
    """Who issued the newer quote."""


class QuoteRevised(_Event):
    """A new version of a quote under the same id (the policy's `quotes.approval_keeps_id`):
    the quote with its discount approved, so one deal keeps one quote id."""

    type: Literal["quote_revised"] = "quote_revised"
    quote: Quote
    previous_version: int
    reason: Literal["discount_approved"]
    by: str


class QuoteAcceptRefused(_Event):
    """Accept was pressed on a quote that is no longer the one on offer (superseded, or
    expired): nothing about the deal changed, and `current_quote_id`, when there is a
    current quote that can be accepted, was offered instead."""

    type: Literal["quote_accept_refused"] = "quote_accept_refused"
    quote_id: str
    version: int
    reason: Literal["superseded", "expired"]
    by: str
    current_quote_id: str | None = None


class QuoteAccepted(_Sparse):
    """The quote was accepted: by the prospect, or — `on_behalf` — by a rep for them, which
    only a policy with `[quotes] accept_on_behalf = true` allows (`by` says which rep)."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("on_behalf",)
    type: Literal["quote_accepted"] = "quote_accepted"
    quote_id: str
    by: str
    on_behalf: bool = False


class ApprovalRequested(_Event):
    type: Literal["approval_requested"] = "approval_requested"
    quote_id: str
    by: str
    ticket_key: str


class QuoteApproved(_Event):
    type: Literal["quote_approved"] = "quote_approved"
    quote_id: str
    by: str


class QuoteRejected(_Event):
    type: Literal["quote_rejected"] = "quote_rejected"
    quote_id: str
    by: str


class TicketOpened(_Event):
    """A request for a human. The key makes it idempotent: the same trigger twice is one
    ticket (see `domain.tickets.ticket_key`)."""

    type: Literal["ticket_opened"] = "ticket_opened"
    ticket_key: str
    kind: TicketKind
    reason: str
    trigger_seq: int
    summary: str
    quote_id: str | None = None


class TicketClaimed(_Sparse):
    """Someone holds the ticket: the bot stays silent towards the prospect while they do.
    `via` is `presence` when a rep took the conversation over by writing in it (the policy's
    `[handoff] takeover_by_presence`), `reply` when a rep sent a lead's prospect words marked
    for them (`[handoff] lead_room`); `name` is the holder's name as people see it."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("via", "name")
    type: Literal["ticket_claimed"] = "ticket_claimed"
    ticket_key: str
    by: str
    via: Literal["presence", "reply"] | None = None
    name: str | None = None


TicketOutcome = Literal["won", "lost", "handled", "closed"]
"""What *Resolve* recorded (`[handoff] ask_outcome`): the deal won or lost, the matter
handled (the bot takes the conversation back), or closed with nothing more to do."""


class TicketResolved(_Sparse):
    """The ticket is done. Under `[handoff] ask_outcome` it says how: `outcome`, and for a
    lost deal the `reason` (from the policy's `lost_reasons`), the rep's `note` (their own
    words) and the `competitor` named there or by the prospect (as `[competitors]`
    records it)."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("outcome", "reason", "note", "competitor")
    type: Literal["ticket_resolved"] = "ticket_resolved"
    ticket_key: str
    by: str
    outcome: TicketOutcome | None = None
    reason: str | None = None
    note: str | None = None
    competitor: str | None = None


class TicketReopened(_Event):
    """A resolved ticket is live again (`[handoff] after_outcome = "reopen"`): the prospect
    wrote after its outcome (`cause` `prospect_wrote`), or a rep wrote in the conversation
    again (`rep_wrote`). `holder` holds it again (the same person as before when the prospect
    wrote; the writer when a rep did); None: it waits to be claimed."""

    type: Literal["ticket_reopened"] = "ticket_reopened"
    ticket_key: str
    cause: Literal["prospect_wrote", "rep_wrote"]
    holder: str | None = None
    name: str | None = None


class TicketRepinged(_Event):
    """The SLA ladder's first step (`[handoff] unclaimed_reping_ms`): nobody claimed the
    handoff ticket for `age_ms`, so its card was refreshed with its age and the on-call group
    mentioned. `told_prospect`: the prospect, who wrote in the conversation, was told a person
    will answer. `open_now` and `next_open_ms` are the runtime's fact about
    `[handoff.business_hours]` at that instant (None without business hours)."""

    type: Literal["ticket_repinged"] = "ticket_repinged"
    ticket_key: str
    age_ms: int
    told_prospect: bool = False
    open_now: bool | None = None
    next_open_ms: int | None = None


class TicketEscalated(_Event):
    """The SLA ladder's second step (`[handoff] unclaimed_escalate_ms`): nobody claimed the
    handoff ticket for `age_ms`, so it was posted to the escalation target with the on-call
    group mentioned."""

    type: Literal["ticket_escalated"] = "ticket_escalated"
    ticket_key: str
    age_ms: int


class HandedBack(_Sparse):
    """The bot has the conversation again. `reason` `rep_idle`: the policy handed it back
    after the holder was silent for `idle_ms` (`[handoff] rep_idle_handback_ms`); `prospect_wrote`:
    the prospect wrote after the ticket's outcome (`[handoff] after_outcome = "bot"`)."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("reason", "idle_ms")
    type: Literal["handed_back"] = "handed_back"
    ticket_key: str | None
    by: str
    reason: Literal["rep_idle", "prospect_wrote"] | None = None
    idle_ms: int | None = None


class ConversationClosed(_Event):
    type: Literal["conversation_closed"] = "conversation_closed"
    outcome: Outcome
    by: str


class DealMarked(_Event):
    """A rep recorded how the deal ended: `won [ID]`, `lost [ID] REASON [note]` (`via`
    "command"), or the *Won* / *Lost* buttons of the lead card and the ticket card (`via`
    "button"). For a lost deal `reason` is one of the policy's `[handoff] lost_reasons`
    (None when the policy lists none), `note` the rep's own words after it and `competitor`
    the vendor they name there (as `[competitors]` records it). `ticket_key`: the handoff
    ticket the mark resolved, if one was live. What follows is recorded as for *Resolve*:
    `ticket_resolved`, `flow_advanced`, `conversation_closed`, `team_notified`."""

    type: Literal["deal_marked"] = "deal_marked"
    outcome: Outcome
    by: str
    via: Literal["command", "button"]
    reason: str | None = None
    note: str | None = None
    competitor: str | None = None
    ticket_key: str | None = None


class ProspectLeft(_Event):
    """The prospect took their leave (the policy's `[dialog] close_on`), and the bot closed
    politely instead of asking its next question.

    `reason` is the strongest of the reader's reasons: `chose_competitor`, `not_interested`,
    `not_a_buyer` or `goodbye`; `words` are the reader's words that said so ("student",
    "bye"), where the policy asks for them (`[dialog] not_a_buyer`, `heard`).
    `competitor` is the competitor named, as `[competitors]` records it; `competitor_read` is
    the reader's entity it came from (None when a spelling from the table was found in the
    message instead). `lost` says whether the deal was recorded as lost (a
    `conversation_closed` with outcome `lost` follows, the first time); a goodbye while a deal
    is alive is not lost, and `kept_open` says why: `meeting_requested`, `open_quote` or
    `qualified`. `state` is the flow state the conversation waits in; a later message that
    moves it elsewhere reopens it (`conversation_reopened`)."""

    type: Literal["prospect_left"] = "prospect_left"
    reason: str
    lost: bool
    state: str
    competitor: str | None = None
    competitor_read: str | None = None
    words: tuple[str, ...] = ()
    kept_open: Literal["meeting_requested", "open_quote", "qualified"] | None = None


class ConversationReopened(_Event):
    """The prospect wrote again after leaving (`prospect_left`), and the message moved the
    conversation on (`from_state` → `to_state`): it is open again. `was_lost` says whether it
    had been recorded as lost; metrics count it open until it ends again."""

    type: Literal["conversation_reopened"] = "conversation_reopened"
    reason: str
    """The reason the prospect had left for."""
    was_lost: bool
    from_state: str
    to_state: str


class ConversationAbandoned(_Event):
    type: Literal["conversation_abandoned"] = "conversation_abandoned"
    idle_ms: int


class AuditRequested(_Event):
    """Access to audit data is itself audited (who looked at what)."""

    type: Literal["audit_requested"] = "audit_requested"
    target: str
    by: str


class CommandRefused(_Event):
    type: Literal["command_refused"] = "command_refused"
    command: str
    by: str
    reason: str


class InstallationNoted(_Event):
    """The installation a stream belongs to, when its first decision started no
    conversation (a rep's command in a channel: `audit`, `metrics`, `setup`) and came
    through an installation other than the first (`domain.installations`): its audit is
    that installation's. A conversation that starts says it in `ConversationStarted`."""

    type: Literal["installation_noted"] = "installation_noted"
    installation: str


ChannelPurpose = Literal["handoff", "leads"]
"""Which of an installation's channels an admin sets (`setup handoff|leads #channel`)."""


class ChannelSet(_Event):
    """An admin chose where an installation's handoff or leads cards go from now on (`setup
    handoff #deals`): `installation` as its adapter names it (its prefix and the
    workspace's id), `channel` the platform's id of the channel and `name` how people read it.
    Recorded in the conversation the command was run in, so the audit says who moved which
    workspace's cards where, and when; the adapter keeps the choice for its router."""

    type: Literal["channel_set"] = "channel_set"
    installation: str
    purpose: ChannelPurpose
    channel: str
    name: str
    by: str


RoleList = Literal["approvers", "auditors", "managers", "admins"]
"""The role lists an installation's admin sets (`setup approvers @ann …`); each replaces the
environment's list (`SALESBOT_APPROVERS`, …) for that installation."""


class RolesSet(_Event):
    """An admin set who holds one of an installation's role lists from now on (`setup
    approvers @ann @ben`): `installation` as its adapter names it, `users` the people (or
    groups) named, as their platform identifies them — the whole list, replacing the one
    before. Recorded in the conversation the command was run in, so the audit says who gave
    whom which right where, and when; the adapter keeps the lists its directory reads."""

    type: Literal["roles_set"] = "roles_set"
    installation: str
    role: RoleList
    users: tuple[UserRef, ...]
    by: str


class ActionIgnored(_Event):
    """A click that changed nothing (already handled, not allowed, expired), and why."""

    type: Literal["action_ignored"] = "action_ignored"
    action: str
    target: str
    by: str
    reason: str


class ClaimRefused(_Event):
    """The claims guard withheld a reply: its template broke the claims rules when it was
    about to be said (a figure without a computed quote, a claim the persona may not make).
    The fallback was said instead, and the handoff channel was told."""

    type: Literal["claim_refused"] = "claim_refused"
    action: str
    template: str
    problems: tuple[str, ...]


class FloodLimited(_Event):
    """More prospect messages in a minute than the policy's flood limit: answered once;
    later ones in the flood are recorded without a reply."""

    type: Literal["flood_limited"] = "flood_limited"
    messages: int
    window_ms: int
    limit: int


class OwnerAssigned(_Event):
    """The conversation's owner, chosen once by the policy's `[routing]`: `rule` says how —
    `rule:N` (the Nth of `[[routing.rules]]`, from 1, whose `matched` words say what it
    read, such as "territory is EMEA") or `spread` (a SHA-256 of the conversation id over
    `[routing] spread`). `name` is the owner as people read them."""

    type: Literal["owner_assigned"] = "owner_assigned"
    owner: str
    rule: str
    name: str
    matched: str | None = None


class TicketClaimRefused(_Event):
    """*Claim* was pressed on a routed ticket while it was fresh (`[routing]
    owner_exclusive_ms`) by someone who is neither its owner nor a manager: nothing changed,
    and they were told who owns it and until when (`until_ms`)."""

    type: Literal["ticket_claim_refused"] = "ticket_claim_refused"
    ticket_key: str
    by: str
    owner: str
    until_ms: int


class MeetingRequested(_Event):
    """The prospect asked for a meeting or a demo (the reading's `meeting_request` intent):
    the bot offered `link` from the policy's `[meetings]` (chosen by `chosen_by`: "owner"
    or "hash"), echoing the day or time they named (`when`, their words) if any."""

    type: Literal["meeting_requested"] = "meeting_requested"
    link: str
    chosen_by: Literal["owner", "hash"]
    when: str | None = None


TeamPostKind = Literal["hot_lead", "meeting", "won", "lost"]


class TeamNotified(_Sparse):
    """The team was told of something that matters in the lead's thread (`[team_posts]`):
    a hot lead, a meeting request, a won deal or a lost one — once per kind and
    conversation. `reason` and `competitor` say why a deal was lost (the reading's intent
    and entities); `text` is the post as sent. `mention` is the owner the post named (the
    conversation's owner under `[routing]`, `owner_assigned`); none without one."""

    type: Literal["team_notified"] = "team_notified"
    kind: TeamPostKind
    text: str
    reason: str | None = None
    competitor: str | None = None
    mention: str | None = None
    priority: Literal["now"] | None = None
    """`now`: a hot lead to pursue now (`[pursuit]`), announced as a priority."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("priority",)


class PursuitDecided(_Event):
    """Whether the lead is pursued now (`[pursuit]`): it is qualified and its urgency after
    the fairness penalty reaches `min_urgency`. Recorded when the answer changes, with the
    urgency before and after the penalty, so the audit shows when the penalty decided it.
    A lead pursued now is announced to the team as a priority."""

    type: Literal["pursuit_decided"] = "pursuit_decided"
    pursue_now: bool
    urgency: Decimal
    """The urgency the decision compared: after the fairness penalty."""
    raw_urgency: Decimal
    min_urgency: Decimal
    qualified: bool


class KnowledgeAnswered(_Event):
    """A prospect's question answered from the policy's knowledge base.

    `score` and `threshold` are the retrieval score and the policy's `min_score` in integer
    millionths, `terms` each matching term with its weight (they add up to `score`), so the
    audit can show why this entry was chosen. `via` is `pricing_question` when a pricing
    question matched no entry well enough and got the policy's pricing entry; `score` is
    then the best score any entry reached (below the threshold) and `terms` is empty.
    `handoff` is the reason when the entry hands the conversation to a person.
    """

    type: Literal["knowledge_answered"] = "knowledge_answered"
    entry_id: str
    language: str
    """The language the answer was given in."""
    read_language: str
    """The language the reader detected ("und" when it could not tell)."""
    matched_language: str | None = None
    """The language whose examples matched (the detected one, or the best of all)."""
    score: int
    threshold: int
    terms: tuple[tuple[str, int], ...] = ()
    via: Literal["retrieval", "pricing_question"] = "retrieval"
    handoff: str | None = None


class KnowledgeUnanswered(_Event):
    """A prospect's question the knowledge base could not answer well enough: the best
    entry (if any word matched) scored below the threshold. `outcome` is what the bot did:
    asked what they meant (`clarify`), brought in a person (`person`), or let the flow's
    own reply stand (`flow`: an objection reply or a proposal says more than a question)."""

    type: Literal["knowledge_unanswered"] = "knowledge_unanswered"
    best_entry_id: str | None
    language: str
    read_language: str
    score: int
    threshold: int
    outcome: Literal["clarify", "person", "flow"]
    repeated: bool = False
    """The best entry did reach the threshold, but it was the bot's last answer: under the
    policy's `[replies] no_repeat` the same answer is not said twice in a row."""


class ReplyLanguageChosen(_Event):
    """The bot answers in another language from now on: the prospect's message was read as
    `language` (which the policy speaks) and had enough words to tell (`words`, at least the
    policy's `switch_min_words`)."""

    type: Literal["reply_language_chosen"] = "reply_language_chosen"
    language: str
    previous: str
    words: int


class Erased(_Event):
    """The prospect's personal data in this conversation was erased (issue 15, item 6):
    the key its events and inbounds were sealed with was deleted (`domain.personal`), so
    their text, the lead's details and the credit score now read `[erased]`. Nothing stored
    was rewritten, so the hash chain still holds; this event is an ordinary link.

    `by` is who erased it (the operator's name, or `salesbot` for retention); `reason`
    `request` (the prospect asked) or `retention` (the policy's `[retention]
    erase_after_days` ran out since the last activity). `legacy_events` counts the events
    stored before sealing existed, which keep their text: the chain hashes their bytes
    (README, "Personal data"). `idle_ms`: for retention, how long the conversation had been
    idle."""

    type: Literal["erased"] = "erased"
    by: str
    reason: Literal["request", "retention"]
    legacy_events: int = 0
    idle_ms: int | None = None


class CrmSyncRequested(_Event):
    """The team's CRM should receive one write (`[crm]`, `domain.crm`): the deal moved or
    changed, a quote was issued, or a note is due. `external_id` is the record's identity
    there, derived from the artifact it mirrors, so a retried write upserts the same record.
    No personal data: the contact and the notes' text are added when the write is prepared
    (`domain.crm_sync.crm_record`)."""

    type: Literal["crm_sync_requested"] = "crm_sync_requested"
    artifact: CrmArtifact
    external_id: str
    reason: str
    deal: CrmDeal
    quote_id: str | None = None
    quote_version: int | None = None
    note: NoteKind | None = None


class CrmSyncSettled(_Event):
    """How one CRM write ended, once the CRM sender finished it: written (`sent`, with the
    CRM's own id of the record) or refused for good (`dead_lettered`, with the CRM's words,
    any e-mail address in them redacted). `adapter`, `adapter_version` and `library` name
    what wrote it (the vendor's adapter and its client library), so every record in the CRM
    traces back to the request (`request_seq`) and the code that carried it out."""

    type: Literal["crm_sync_settled"] = "crm_sync_settled"
    request_seq: int
    artifact: CrmArtifact
    external_id: str
    outbox_key: str
    outcome: Literal["sent", "dead_lettered"]
    remote_id: str | None = None
    adapter: str
    adapter_version: int
    library: str | None = None
    reason: str | None = None


class DeliveryDeadLettered(_Event):
    """A reply that will never be delivered, and why: on-call needs to see it."""

    type: Literal["delivery_dead_lettered"] = "delivery_dead_lettered"
    outbox_key: str
    channel: str
    reason: str


Event = Annotated[
    ConversationStarted
    | ProspectMessageReceived
    | RepMessageRecorded
    | ProspectMessageShown
    | LeadLeftForRep
    | RepRepliedToProspect
    | LeadScored
    | NarrativeAssessed
    | MessageRead
    | ReadingCorrected
    | ObjectionClassified
    | FlowAdvanced
    | BotReplied
    | ReplyRedirected
    | QuoteIssued
    | QuoteSuperseded
    | QuoteRevised
    | QuoteAcceptRefused
    | QuoteAccepted
    | ApprovalRequested
    | QuoteApproved
    | QuoteRejected
    | TicketOpened
    | TicketClaimed
    | TicketResolved
    | TicketReopened
    | TicketRepinged
    | TicketEscalated
    | HandedBack
    | ConversationClosed
    | DealMarked
    | ProspectLeft
    | ConversationReopened
    | ConversationAbandoned
    | AuditRequested
    | CommandRefused
    | InstallationNoted
    | ChannelSet
    | RolesSet
    | ActionIgnored
    | ClaimRefused
    | FloodLimited
    | KnowledgeAnswered
    | KnowledgeUnanswered
    | ReplyLanguageChosen
    | MeetingRequested
    | OwnerAssigned
    | TicketClaimRefused
    | TeamNotified
    | PursuitDecided
    | Erased
    | CrmSyncRequested
    | CrmSyncSettled
    | DeliveryDeadLettered,
    Field(discriminator="type"),
]


class EventEnvelope(Sparse):
    """An event as stored: where it belongs, when, under which policy, caused by what.

    `sealed` exists only in the stored JSON: the event's personal values, encrypted by the
    store with the conversation's key (`domain.personal`, `storage.sealing`), while the
    event itself holds placeholders there. An envelope read from the store has them put
    back (or `[erased]`), and `sealed` None.

    `event` serialises as its own class (`SerializeAsAny`), which is the union's member it
    is: the same JSON, without the union's serialiser checking the value against that
    member in a first pass (which doubled the dump of a read message or a score). Validation
    still goes through the discriminated union."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("sealed",)

    schema_version: int = EVENT_SCHEMA_VERSION
    generator: str = GENERATOR
    conversation_id: str
    seq: int = Field(ge=1)
    at_ms: int = Field(ge=0)
    policy_version: str
    delivery_id: str
    event: SerializeAsAny[Event]
    sealed: str | None = None


class UnreadEvent(NamedTuple):
    """A recorded event replay only needs to know happened: its type, nothing else."""

    type: str


class UnreadEnvelope(NamedTuple):
    """A recorded event's place in the log (conversation, seq, delivery id) and its type,
    read from the log's columns without decoding its JSON: all replay needs of an event
    whose values it neither compares nor hands back to `decide` (the types not in
    `domain.replay.REPLAY_DECODES`). A store hands these to replay instead of full
    envelopes (`storage.ports.ReplayLogs`), which spares decrypting and validating a third
    of the log."""

    conversation_id: str
    seq: int
    delivery_id: str
    event: UnreadEvent


RecordedEvent = EventEnvelope | UnreadEnvelope
"""A recorded event as replay reads it: decoded in full, or only its type and place."""
