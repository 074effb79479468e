"""Reads of the store for the pictures: the segments `/metrics` draws by persona and lead
source, and every conversation of a report's window.

The segments are not in the projections (`storage.projections` keeps no per-persona or
per-source counters), so `load_segments` reads the log once — keeping only the five event
types `domain.metrics_chart.segment_facts` folds — and each policy text once per version
(a conversation's persona is the persona of the policy that started it). That is a scan:
linear in the log, where the rest of `/metrics` reads counters. It runs after the decision's
commit with the chart (the acknowledgement never waits for it); a projection of the same
facts would make it constant-time if stores grow large enough for it to matter.
"""

from __future__ import annotations

from collections.abc import Iterable

from domain.errors import PolicyError
from domain.events import (
    ConversationAbandoned,
    ConversationClosed,
    ConversationReopened,
    ConversationStarted,
    EventEnvelope,
    ProspectMessageReceived,
)
from domain.metrics_chart import Segment, conversion_segments, segment_facts
from domain.policy import policy_from_json
from storage.ports import Store

_SEGMENT_EVENTS = (
    ConversationStarted,
    ProspectMessageReceived,
    ConversationClosed,
    ConversationAbandoned,
    ConversationReopened,
)


async def persona_names(store: Store, versions: Iterable[str]) -> dict[str, str]:
    """Policy version → the persona it speaks with, read from the policy texts the store
    keeps; a version the store lacks or cannot read is named by its short hash."""
    names: dict[str, str] = {}
    for version in sorted(set(versions)):
        text = await store.get_policy(version)
        try:
            names[version] = (
                f"policy {version[:12]}" if text is None else (policy_from_json(text).persona)
            )
        except PolicyError:
            names[version] = f"policy {version[:12]}"
    return names


async def load_segments(store: Store) -> tuple[Segment, ...]:
    """Conversion by persona and by lead source over the whole log (the module docstring)."""
    kept: list[EventEnvelope] = []
    async for envelope in store.iterate_all():
        if isinstance(envelope.event, _SEGMENT_EVENTS):
            kept.append(envelope)
    facts = segment_facts(kept)
    personas = await persona_names(store, (f.policy_version for f in facts.values()))
    return conversion_segments(facts, lambda version: personas.get(version, version[:12]))
