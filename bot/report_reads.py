"""Persona names for the pictures, the `/metrics` chart's conversion by persona and by lead
source read from the projections, and where the CRM writes stand in the outbox.

The projections count engaged and won conversations by lead source and by the version of
the policy that started them (`storage.projections.SEGMENT_ENGAGED`, `SEGMENT_WON`), so
`/metrics` draws the segments without reading the log. A conversation's persona is the
persona of that policy (`Policy.persona`): read from the policy texts the store keeps, once
per version per process (a version is the hash of its text, so its persona never changes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from adapters.crm.ids import outbox_key as crm_outbox_key
from domain.errors import PolicyError
from domain.events import CrmSyncRequested, EventEnvelope
from domain.metrics_chart import Segment, segments_from_counts
from domain.policy import policy_from_json
from domain.report_data import CrmDelivery
from storage.ports import Store
from storage.projections import SEGMENT_ENGAGED, SEGMENT_WON

_PERSONAS: dict[str, str] = {}
"""Policy version → persona, for the versions the store had a readable text for."""


def unknown(version: str) -> str:
    """A policy version the store has no (readable) text for, named by its short hash."""
    return f"policy {version[:12]}"


async def persona_names(store: Store, versions: Iterable[str]) -> dict[str, str]:
    """Policy version → the persona it speaks with; `unknown(version)` for a version the
    store lacks or cannot read."""
    names: dict[str, str] = {}
    for version in sorted(set(versions)):
        if version in _PERSONAS:
            names[version] = _PERSONAS[version]
            continue
        text = await store.get_policy(version)
        try:
            persona = None if text is None else policy_from_json(text).persona
        except PolicyError:
            persona = None
        if persona is None:
            names[version] = unknown(version)
        else:
            names[version] = _PERSONAS[version] = persona
    return names


async def projected_segments(
    store: Store, counts: Mapping[str, Mapping[str, int]]
) -> tuple[Segment, ...]:
    """Conversion by persona and by lead source from the projection's counters."""
    engaged = counts.get(SEGMENT_ENGAGED, {})
    won = counts.get(SEGMENT_WON, {})
    versions = [key.removeprefix("policy:") for key in engaged if key.startswith("policy:")]
    personas = await persona_names(store, versions)
    return segments_from_counts(engaged, won, lambda v: personas.get(v, unknown(v)))


async def crm_deliveries(
    store: Store, conversations: Iterable[Sequence[EventEnvelope]]
) -> dict[tuple[str, int], CrmDelivery]:
    """Where each `crm_sync_requested` stands in the outbox (its item's key is derived from
    the event: `bot.crm_outbox`), by conversation and seq; a write never enqueued (decided
    by a runtime without the CRM hook) is absent."""
    found: dict[tuple[str, int], CrmDelivery] = {}
    for events in conversations:
        for envelope in events:
            if not isinstance(envelope.event, CrmSyncRequested):
                continue
            item = await store.outbox_item(crm_outbox_key(envelope.conversation_id, envelope.seq))
            if item is not None:
                found[envelope.conversation_id, envelope.seq] = CrmDelivery(
                    status=item.status, created_at_ms=item.created_at_ms, sent_at_ms=item.sent_at_ms
                )
    return found
