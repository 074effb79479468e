"""The public reading of a message under any policy: what `salesbot understand` prints.

A policy with a trained reader (`[understanding]`) answers every field. A policy without one
(the seed policy, any stored policy from before the reader) reads with its lexicons: the band
and score from its lead scorer, the signals from the scorer's features of the same names, the
objection from its objection classifier, and a human from its sensitive terms; what lexicons
cannot tell takes the neutral value (language "und", no intents, no entities).

Conversations add up as in the bot: the trained reader aggregates features and holds signals
(`domain.understanding.reading`); a lexicon policy scores the joined text, as its flow does.
Needs-a-human and its reasons are the union over the messages (a request for a person halfway
through still stands); the objection is the latest one raised; intents are the union.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal

from domain.objections import classify_objection
from domain.policy import Policy
from domain.scoring import score_lead
from domain.understanding.model import OBJECTIONS, REASONS, SIGNALS, ReaderModel
from domain.understanding.reading import (
    Reading,
    aggregate,
    read,
    read_conversation,
    retracted,
)

UNDERSTAND_SCHEMA_VERSION = 1

MESSAGE_SEPARATOR = "\n.\n"

NEUTRAL_ENTITIES: dict[str, object] = {
    "money": [],
    "dates": [],
    "team_size": None,
    "competitor": None,
}

# What a lexicon policy's sensitive term is about, for the `reasons` it cannot otherwise give.
_SENSITIVE_REASONS = {
    "gdpr": "privacy_security",
    "dpa": "privacy_security",
    "data protection": "privacy_security",
    "breach": "privacy_security",
    "refund": "billing_refund",
    "billing": "billing_refund",
    "invoice dispute": "billing_refund",
    "dispute": "billing_refund",
    "cancel": "billing_refund",
    "chargeback": "billing_refund",
    "charge back": "billing_refund",
    "terminate": "billing_refund",
}


def understand(
    policy: Policy,
    messages: Sequence[str],
    *,
    today: date,
    metadata: Mapping[str, object] | None = None,
) -> Reading:
    """Read one message (or a conversation's messages, in order) under `policy`."""
    if not messages:
        raise ValueError("nothing to read")
    if policy.understanding is not None:
        return _with_reader(policy.understanding.reader, messages, today, metadata)
    return _with_lexicons(policy, messages, metadata)


def _with_reader(
    model: ReaderModel,
    messages: Sequence[str],
    today: date,
    metadata: Mapping[str, object] | None,
) -> Reading:
    features: dict[str, int] = {}
    held = dict.fromkeys(SIGNALS, False)
    reasons: set[str] = set()
    intents: set[str] = set()
    objection: str | None = None
    entities: dict[str, object] = dict(NEUTRAL_ENTITIES)
    language = "und"
    for text in messages:
        reading, extraction = read(text, model, today=today, metadata=metadata)
        taken_back = retracted(model, reading)
        held = {
            name: (held[name] or reading.signals[name]) and name not in taken_back
            for name in SIGNALS
        }
        features = aggregate(features, reading.features, taken_back)
        reasons.update(reading.reasons)
        intents.update(reading.intents)
        objection = reading.objection or objection
        entities = extraction.entities.as_json()
        language = reading.language
    if len(messages) == 1:
        return replace(reading, entities=entities)
    conversation = read_conversation(model, reading, features, held, taken_back)
    return replace(
        conversation,
        language=language,
        objection=objection,
        needs_human=bool(reasons),
        reasons=tuple(sorted(reasons)),
        intents=tuple(sorted(intents)),
        entities=entities,
    )


def _with_lexicons(
    policy: Policy, messages: Sequence[str], metadata: Mapping[str, object] | None
) -> Reading:
    scoring_metadata = {
        key: value
        for key, value in (metadata or {}).items()
        if isinstance(value, str | int | Decimal) and not isinstance(value, bool)
    }
    score = score_lead(MESSAGE_SEPARATOR.join(messages), policy.scoring, scoring_metadata)
    signals = {name: score.features.get(name, 0) > 0 for name in SIGNALS}
    if score.features.get("decision_maker", 0) > 0:
        signals["authority"] = True  # the signal's name in policies written before "authority"
    reasons: set[str] = set()
    objection: str | None = None
    for text in messages:
        result = classify_objection(text, policy.objections)
        objection = result.objection if result.objection in OBJECTIONS else objection
        if result.escalation_reason == "sensitive_terms":
            reasons.update(
                _SENSITIVE_REASONS.get(term.casefold(), "legal") for term in result.sensitive
            )
    return Reading(
        language="und",
        band=score.band,
        score=score.probability if score.probability is not None else score.score,
        signals=signals,
        objection=objection,
        needs_human=bool(reasons),
        reasons=tuple(sorted(reasons & set(REASONS))),
        intents=(),
        features=score.features,
        sums={},
        entities=dict(NEUTRAL_ENTITIES),
    )
