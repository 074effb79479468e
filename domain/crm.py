"""What the team's CRM should hold about a conversation, decided in the domain (issue 16).

A sales team reports from its CRM, so every conversation with a prospect becomes one deal
there, moved along the pipeline as the conversation moves: new → qualified → meeting →
quote sent → won | lost (with the reason). Quotes follow as their own records and the
transcript and the score's attribution as notes. This module decides *what* to sync and
*when*, as `crm_sync_requested` events, so each write is on the record, replays, and can be
traced to the decision that caused it. Sending is an adapter's job (`adapters/crm/`), through
the outbox like every other side effect.

Idempotency lives here too: every record's `external_id` is derived from the identity of
the artifact it mirrors (the conversation, the quote and its version, the note's event), so
a write retried after a timeout or a restart upserts the same record, never a second one.

What an event holds is not personal data (stages, amounts in cents, ids, the band): the
contact's name and e-mail and the notes' text are added from the conversation when the
write is prepared (`crm_record`), so erasing a conversation (`domain.personal`) leaves
nothing of the prospect's in the log's CRM events. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import ClassVar, Literal, get_args

from pydantic import Field, model_validator

from domain.model import Frozen, Sparse

CrmStage = Literal["new", "qualified", "meeting", "quote_sent", "won", "lost"]
"""Where a deal stands, in salesbot's words; `[crm.stages]` names each in the CRM."""
STAGES: tuple[CrmStage, ...] = get_args(CrmStage)

CrmArtifact = Literal["deal", "quote", "note"]
NoteKind = Literal["transcript", "score"]
QuoteAs = Literal["line_items", "note", "quote"]
"""`[crm] quote_as`: "quote" came later (a Salesforce Quote object); a policy without it
keeps its behaviour and its canonical JSON."""

CRM_RECORD_SCHEMA_VERSION = 1
EXTERNAL_ID_PREFIX = "salesbot"
"""Every external id starts with it: a CRM webhook carrying one came from salesbot itself."""


class CrmConfig(Sparse):
    """`[crm]`: how conversations map onto the CRM's pipeline. Without it nothing is synced,
    as before."""

    stages: dict[CrmStage, str]
    """The CRM's own stage for each of salesbot's (HubSpot's deal stage ids, Salesforce's
    `StageName` values)."""
    pipeline: str = Field("default", min_length=1, max_length=100)
    owners: dict[str, str] = Field(default_factory=dict)
    """salesbot owner id (`[routing]`) → the CRM's owner id; an owner not listed is synced
    without one (the CRM's default assignment applies)."""
    quote_as: QuoteAs = "line_items"
    """How a quote reaches the CRM: "line_items" (HubSpot: a line item on the deal;
    Salesforce: a completed Task with the arithmetic), "note" (a note/Task with the
    arithmetic), or "quote" (Salesforce, mode `contact_opportunity`: a Quote with one
    QuoteLineItem per line, priced from `price_book`; HubSpot writes line items, as for
    "line_items"; Salesforce's mode `lead` keeps the Task, a Lead having no Opportunity)."""
    notes: tuple[NoteKind, ...] = ("transcript", "score")
    """Which notes to write: the transcript when the deal closes, the score's attribution
    when the band changes."""
    price_book: str | None = Field(None, pattern=r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")
    """With `quote_as = "quote"`: the Salesforce Pricebook2 Id whose entries price the quote
    lines (a SKU is a Product2 `ProductCode`); unset, the org's standard price book."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("price_book",)

    @model_validator(mode="after")
    def _every_stage_named(self) -> CrmConfig:
        missing = [stage for stage in STAGES if not self.stages.get(stage, "").strip()]
        if missing:
            raise ValueError(f"[crm.stages] must name every stage; missing: {', '.join(missing)}")
        return self


class CrmDeal(Frozen):
    """The deal as the CRM should show it: no personal data, only what the conversation
    decided (the band, the amount of its latest live quote, its owner, how it ended)."""

    external_id: str
    stage: CrmStage
    crm_stage: str
    pipeline: str
    amount_cents: int | None = None
    currency: str | None = None
    minor_units: int | None = None
    owner: str | None = None
    """The CRM's owner id, when `[crm] owners` maps the conversation's owner."""
    band: str | None = None
    hot_probability: Decimal | None = None
    lost_reason: str | None = None
    source: str | None = None
    """The lead's source (web form, event, …), when it came as a lead."""


class CrmFacts(Frozen):
    """What a conversation has reached, as the CRM sync reads it (see `deal_of`)."""

    conversation_id: str
    has_prospect: bool
    qualified_once: bool
    meetings_requested: int
    quotes: tuple[tuple[str, int, int, str, int], ...] = ()
    """Live quotes in issue order: (quote id, version, total cents, currency, minor units)."""
    outcome: Literal["won", "lost"] | None = None
    lost_reason: str | None = None
    band: str | None = None
    hot_probability: Decimal | None = None
    owner: str | None = None
    source: str | None = None


def deal_external_id(conversation_id: str) -> str:
    return f"{EXTERNAL_ID_PREFIX}:deal:{conversation_id}"


def quote_external_id(quote_id: str, version: int) -> str:
    return f"{EXTERNAL_ID_PREFIX}:quote:{quote_id}:v{version}"


def note_external_id(conversation_id: str, kind: NoteKind, seq: int) -> str:
    """A note is written once per event that asked for it: `seq` is that event's."""
    return f"{EXTERNAL_ID_PREFIX}:note:{conversation_id}:{kind}:{seq}"


def contact_external_id(conversation_id: str) -> str:
    """The contact's id when the lead gave no e-mail (otherwise the e-mail identifies it)."""
    return f"{EXTERNAL_ID_PREFIX}:contact:{conversation_id}"


def from_salesbot(external_id: str | None) -> bool:
    """A record carrying one of our external ids came from salesbot: its webhook is ours."""
    return bool(external_id) and str(external_id).startswith(f"{EXTERNAL_ID_PREFIX}:")


def stage_of(facts: CrmFacts) -> CrmStage:
    """The furthest stage the conversation has reached; an outcome ends it."""
    if facts.outcome is not None:
        return facts.outcome
    if facts.quotes:
        return "quote_sent"
    if facts.meetings_requested:
        return "meeting"
    if facts.qualified_once:
        return "qualified"
    return "new"


def deal_of(facts: CrmFacts, config: CrmConfig) -> CrmDeal | None:
    """The deal the CRM should hold for the conversation; None while it has no prospect (a
    rep's own scratch conversation is nobody's deal)."""
    if not facts.has_prospect:
        return None
    stage = stage_of(facts)
    latest = facts.quotes[-1] if facts.quotes else None
    return CrmDeal(
        external_id=deal_external_id(facts.conversation_id),
        stage=stage,
        crm_stage=config.stages[stage],
        pipeline=config.pipeline,
        amount_cents=latest[2] if latest else None,
        currency=latest[3] if latest else None,
        minor_units=latest[4] if latest else None,
        owner=config.owners.get(facts.owner) if facts.owner is not None else None,
        band=facts.band,
        hot_probability=facts.hot_probability,
        lost_reason=facts.lost_reason if stage == "lost" else None,
        source=facts.source,
    )


class SyncRequest(Frozen):
    """One write the CRM should receive (recorded as `crm_sync_requested`)."""

    artifact: CrmArtifact
    external_id: str
    reason: str
    deal: CrmDeal
    quote_id: str | None = None
    quote_version: int | None = None
    note: NoteKind | None = None


def sync_requests(
    before: CrmFacts, after: CrmFacts, config: CrmConfig, *, first_seq: int
) -> list[SyncRequest]:
    """The writes one decision calls for, comparing the conversation before and after it.

    The deal is written when anything the CRM shows changed; each quote (and each new
    version of one) once, when it is issued; the score's note when the band changes and the
    transcript's when the deal closes. `first_seq` is the sequence number the first request
    will be recorded at: each note is named after its own event's.
    """
    deal = deal_of(after, config)
    if deal is None:
        return []
    requests: list[SyncRequest] = []
    previous = deal_of(before, config)
    if deal != previous:
        requests.append(
            SyncRequest(
                artifact="deal",
                external_id=deal.external_id,
                reason=_deal_reason(previous, deal),
                deal=deal,
            )
        )
    known = {(quote_id, version) for quote_id, version, *_ in before.quotes}
    for quote_id, version, *_ in after.quotes:
        if (quote_id, version) not in known:
            requests.append(
                SyncRequest(
                    artifact="quote",
                    external_id=quote_external_id(quote_id, version),
                    reason=f"quote {quote_id} v{version} issued",
                    deal=deal,
                    quote_id=quote_id,
                    quote_version=version,
                )
            )
    notes: list[tuple[NoteKind, str]] = []
    if "score" in config.notes and after.band is not None and after.band != before.band:
        notes.append(("score", f"scored {after.band}"))
    if "transcript" in config.notes and after.outcome is not None and before.outcome is None:
        notes.append(("transcript", f"deal {after.outcome}"))
    for kind, reason in notes:
        seq = first_seq + len(requests)
        requests.append(
            SyncRequest(
                artifact="note",
                external_id=note_external_id(after.conversation_id, kind, seq),
                reason=reason,
                deal=deal,
                note=kind,
            )
        )
    return requests


def _deal_reason(previous: CrmDeal | None, deal: CrmDeal) -> str:
    if previous is None:
        return f"new deal at {deal.stage}"
    if previous.stage != deal.stage:
        return f"stage {previous.stage} → {deal.stage}"
    changed = [
        name
        for name in ("amount_cents", "owner", "band", "hot_probability", "lost_reason")
        if getattr(previous, name) != getattr(deal, name)
    ]
    return "updated " + ", ".join(changed) if changed else "updated"


SyncOutcome = Literal["pending", "sent", "dead_lettered"]


class CrmTold(Frozen):
    """What the CRM was last asked to hold for one external id (`crm_sync_requested`), and
    how that write ended (`crm_sync_settled`): what a backfill compares against."""

    seq: int
    """The `crm_sync_requested` event of the latest write for this record."""
    artifact: CrmArtifact
    deal: CrmDeal
    """The deal as that request carried it (for a quote or a note: the deal it belongs to,
    so a score note says which band it was written for)."""
    note: NoteKind | None = None
    outcome: SyncOutcome = "pending"
    remote_id: str | None = None


class Backfill(Frozen):
    """What a backfill decides for one conversation: the writes it requests, and how many of
    the records the CRM should hold are already as they should be."""

    requests: tuple[SyncRequest, ...] = ()
    unchanged: int = 0


BACKFILL_REASON = "backfill"


def backfill(
    told: Mapping[str, CrmTold], facts: CrmFacts, config: CrmConfig, *, first_seq: int
) -> Backfill:
    """The writes that bring the CRM up to what the conversation has reached, whatever
    `[crm]` decided (or did not, before it was configured) along the way: the deal when the
    CRM was never told it or was told something else, each live quote never requested, the
    score's note for the current band and the transcript's once the deal is closed. A write
    the CRM refused for good (dead-lettered) counts as never told, so a backfill retries it.

    Idempotent: once its requests are recorded, the same call asks for nothing, so running a
    backfill twice writes nothing new. External ids are those the live sync uses."""
    deal = deal_of(facts, config)
    if deal is None:
        return Backfill()

    def live(external_id: str) -> CrmTold | None:
        record = told.get(external_id)
        return record if record is not None and record.outcome != "dead_lettered" else None

    requests: list[SyncRequest] = []
    unchanged = 0
    previous = live(deal.external_id)
    if previous is not None and previous.deal == deal:
        unchanged += 1
    else:
        if deal.external_id in told and previous is None:
            reason = "written again: the CRM refused the last write"
        else:
            reason = _deal_reason(previous.deal if previous is not None else None, deal)
        requests.append(
            SyncRequest(
                artifact="deal",
                external_id=deal.external_id,
                reason=f"{BACKFILL_REASON}: {reason}",
                deal=deal,
            )
        )
    for quote_id, version, *_ in facts.quotes:
        external_id = quote_external_id(quote_id, version)
        if live(external_id) is not None:
            unchanged += 1
            continue
        requests.append(
            SyncRequest(
                artifact="quote",
                external_id=external_id,
                reason=f"{BACKFILL_REASON}: quote {quote_id} v{version}",
                deal=deal,
                quote_id=quote_id,
                quote_version=version,
            )
        )
    notes: list[tuple[NoteKind, str]] = []
    live_notes = [
        record
        for external_id, record in told.items()
        if record.note is not None and live(external_id) is not None
    ]
    if "score" in config.notes and facts.band is not None:
        if any(r.note == "score" and r.deal.band == facts.band for r in live_notes):
            unchanged += 1
        else:
            notes.append(("score", f"{BACKFILL_REASON}: scored {facts.band}"))
    if "transcript" in config.notes and facts.outcome is not None:
        if any(r.note == "transcript" and r.deal.stage == facts.outcome for r in live_notes):
            unchanged += 1
        else:
            notes.append(("transcript", f"{BACKFILL_REASON}: deal {facts.outcome}"))
    for kind, reason in notes:
        seq = first_seq + len(requests)
        requests.append(
            SyncRequest(
                artifact="note",
                external_id=note_external_id(facts.conversation_id, kind, seq),
                reason=reason,
                deal=deal,
                note=kind,
            )
        )
    return Backfill(requests=tuple(requests), unchanged=unchanged)


class CrmContact(Sparse):
    """The person behind the deal: personal data, added when the write is prepared."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("origin",)
    external_id: str
    email: str | None = None
    name: str | None = None
    company: str | None = None
    origin: str | None = None
    """The CRM record the lead came from, as the lead's `external_id` (a lead with no reply
    path, `LeadDetails.reply_in`): the CRM adapter updates that record rather than create a
    second one for the same person. Left out of the payload while unset."""


class CrmQuote(Sparse):
    """A quote as a CRM line item (or a note with the arithmetic, or a Salesforce Quote:
    `[crm] quote_as`)."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("status", "expires_at_ms")

    quote_id: str
    version: int
    sku: str | None
    description: str
    qty: int
    unit_cents: int
    discount: Decimal
    discount_cents: int
    tax_cents: int
    total_cents: int
    currency: str
    minor_units: int
    proof: tuple[str, ...]
    """The arithmetic as the buyer may read it (no internal approval lines)."""
    status: str | None = None
    """salesbot's status of this version when the write was prepared (`issued`,
    `needs_approval`, …); filled only for `quote_as = "quote"` (a Quote has a Status), so
    other writes keep their payload as it was."""
    expires_at_ms: int | None = None
    """When the quote expires (a Quote's ExpirationDate); filled only for
    `quote_as = "quote"`, like `status`."""


class CrmRecord(Sparse):
    """Everything one CRM write needs, vendor-neutral: what the outbox hands the CRM sender.
    `adapter` fields are filled by the sender; everything here was decided."""

    schema_version: int = CRM_RECORD_SCHEMA_VERSION
    artifact: CrmArtifact
    external_id: str
    conversation_id: str
    event_seq: int
    """The `crm_sync_requested` event this write carries out (what the CRM record traces
    back to)."""
    deal: CrmDeal
    contact: CrmContact | None = None
    quote: CrmQuote | None = None
    quote_as: QuoteAs = "line_items"
    note: NoteKind | None = None
    note_lines: tuple[str, ...] = ()
    """The note's text, line by line (user text: data, escaped by the adapter)."""
    price_book: str | None = None
    """`[crm] price_book`, for a Salesforce Quote's lines (left out of the payload unset)."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("price_book",)


def crm_contact(conversation_id: str, lead: Mapping[str, object] | None) -> CrmContact:
    """The contact from a lead's details (`LeadDetails` as JSON); unnamed without a lead."""
    lead = lead or {}

    def text(key: str) -> str | None:
        value = lead.get(key)
        return value if isinstance(value, str) and value.strip() else None

    return CrmContact(
        external_id=contact_external_id(conversation_id),
        email=text("email"),
        name=text("name"),
        company=text("company"),
        origin=text("external_id") if text("reply_in") else None,
    )
