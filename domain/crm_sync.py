"""The CRM sync as part of each decision: after an inbound is decided, compare what the
CRM should show before and after it and record one `crm_sync_requested` per write
(`domain.crm`); and, when a write is prepared for the outbox, the full record it carries.

Kept apart from `domain.crm` (the vocabulary: stages, ids, records) because it reads the
conversation's state, which itself folds the CRM events.
"""

from __future__ import annotations

from domain.cards import Card, CardField, Reply
from domain.crm import (
    CrmConfig,
    CrmFacts,
    CrmQuote,
    CrmRecord,
    backfill,
    crm_contact,
    sync_requests,
)
from domain.decision import Recorder
from domain.events import CrmSyncRequested, CrmSyncSettled, EventEnvelope
from domain.inbound import CrmWriteSettled
from domain.state import ConversationState

_LIVE = ("issued", "needs_approval", "approval_requested", "accepted")
"""Quote statuses that count for the deal's amount (not rejected, not superseded)."""


def crm_facts(state: ConversationState) -> CrmFacts:
    """What the conversation has reached, as the CRM sync reads it."""
    lead = state.lead
    score = state.score
    quotes = tuple(
        (
            record.quote.quote_id,
            record.quote.version,
            record.quote.total_cents,
            record.quote.currency,
            record.quote.minor_units,
        )
        for record in state.quotes.values()
        if record.status in _LIVE
    )
    return CrmFacts(
        conversation_id=state.conversation_id,
        has_prospect=lead is not None or bool(state.prospect_texts),
        qualified_once=state.qualified_at_ms is not None,
        meetings_requested=state.meetings_requested,
        quotes=quotes,
        outcome=state.outcome,
        lost_reason=state.lost_reason,
        band=score.band if score is not None else None,
        hot_probability=score.hot_probability if score is not None else None,
        owner=state.owner,
        source=(lead.source.lower() or None) if lead is not None else None,
    )


def crm_events(
    before: ConversationState, after: ConversationState, config: CrmConfig
) -> list[CrmSyncRequested]:
    """The `crm_sync_requested` events one decision calls for, to be recorded right after
    its last event (`after.version`)."""
    return [
        CrmSyncRequested(**dict(request))  # the event is the request, on the record
        for request in sync_requests(
            crm_facts(before), crm_facts(after), config, first_seq=after.version + 1
        )
    ]


def crm_backfill(rec: Recorder) -> None:
    """`salesbot crm backfill` for one conversation: record a `crm_sync_requested` for every
    write that brings the CRM up to what the conversation has reached (`domain.crm.backfill`)
    — nothing without `[crm]`, nothing once the CRM was asked for all of it, and nothing for
    a conversation whose personal data was erased."""
    config = rec.policy.crm
    state = rec.state
    if config is None or state.erased:
        return
    plan = backfill(state.crm_told, crm_facts(state), config, first_seq=state.version + 1)
    for request in plan.requests:
        rec.record(CrmSyncRequested(**dict(request)))


CRM_ALERT_TITLE = "A CRM write was refused"


def crm_settled(rec: Recorder, settled: CrmWriteSettled, *, alert_ref: str) -> None:
    """Record how a CRM write ended; a write refused for good also alerts the handoff
    channel, naming the record (its kind and external id: never the prospect's e-mail) and
    the CRM's words."""
    rec.record(
        CrmSyncSettled(
            request_seq=settled.request_seq,
            artifact=settled.artifact,
            external_id=settled.external_id,
            outbox_key=settled.outbox_key,
            outcome=settled.outcome,
            remote_id=settled.remote_id,
            adapter=settled.adapter,
            adapter_version=settled.adapter_version,
            library=settled.library,
            reason=settled.reason,
        )
    )
    if settled.outcome != "dead_lettered":
        return
    card = Card(
        kind="notice",
        title=CRM_ALERT_TITLE,
        fields=(
            CardField(label="Conversation", value=rec.state.conversation_id),
            CardField(label="Record", value=f"{settled.artifact} {settled.external_id}"),
            CardField(label="CRM", value=f"{settled.adapter} v{settled.adapter_version}"),
            CardField(label="The CRM said", value=settled.reason or "(no message)"),
        ),
        status="Dead-lettered",
        ref=alert_ref,
    )
    rec.reply(Reply(audience="handoff", text=card.title, card=card))


def crm_record(envelope: EventEnvelope, state: ConversationState, config: CrmConfig) -> CrmRecord:
    """The full write for a `crm_sync_requested` event, from the conversation as it stands
    (`state` includes the event): the deal, the contact from the lead's details, the quote
    and the note's lines. Personal data enters here, on its way to the outbox (whose copy
    an erasure redacts), never into the event."""
    event = envelope.event
    if not isinstance(event, CrmSyncRequested):
        raise TypeError(f"not a CRM sync event: {event.type}")
    lead = state.lead.model_dump(mode="json") if state.lead is not None else None
    quote = None
    if event.quote_id is not None:
        record = state.quotes.get(event.quote_id)
        if record is not None:
            q = record.quote
            quote = CrmQuote(
                quote_id=q.quote_id,
                version=q.version,
                sku=q.sku,
                description=q.description,
                qty=q.qty,
                unit_cents=q.unit_cents,
                discount=q.discount,
                discount_cents=q.discount_cents,
                tax_cents=q.tax_cents,
                total_cents=q.total_cents,
                currency=q.currency,
                minor_units=q.minor_units,
                proof=q.offer_proof(),
                # Only a Quote object needs these: other writes keep their payload as it was.
                status=record.status if config.quote_as == "quote" else None,
                expires_at_ms=q.expires_at_ms if config.quote_as == "quote" else None,
            )
    lines: tuple[str, ...] = ()
    if event.note == "transcript":
        lines = tuple(f"{speaker}: {text}" for speaker, text in state.transcript)
    elif event.note == "score" and state.score is not None:
        score = state.score
        lines = (
            f"Band {score.band}, score {score.score}",
            *(
                f"{name}: {weight} × {score.features.get(name, 1)} = {score.contributions[name]}"
                for name, weight in sorted(score.weights.items())
                if score.contributions.get(name)
            ),
        )
    return CrmRecord(
        artifact=event.artifact,
        external_id=event.external_id,
        conversation_id=envelope.conversation_id,
        event_seq=envelope.seq,
        deal=event.deal,
        contact=crm_contact(envelope.conversation_id, lead),
        quote=quote,
        quote_as=config.quote_as,
        note=event.note,
        note_lines=lines,
        price_book=config.price_book,
    )
