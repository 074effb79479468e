"""Objection classification with a confidence a reviewer can recompute, and escalation rules.

The classifier is a lexicon vote. For each class, count the *distinct* terms of that class
found in the text (negated hits do not count: "price is no problem" is not a price objection).
The winner is the class with the most hits, ties going to the class listed first in the
taxonomy, and

    confidence = hits(winner) / Σ hits(all classes)      quantized to 3 places (half-even)

so a sentence that only talks about price is 1.000, and "too expensive, and the timing is bad"
is 0.500. With no hits there is no objection and nothing to doubt: confidence 1.

Escalation to a human happens when an objection's confidence is below `escalate_below`
(`low_confidence`) and, always, when a sensitive term appears (`sensitive_terms`, which wins):
contracts, legal, refunds and billing need someone with authority. Sensitive terms ignore
negation on purpose: "we do not want to cancel" is still a conversation about cancelling.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Literal

from pydantic import Field, field_validator, model_validator

from domain.model import Frozen
from domain.text import FeatureSpec, Matching, NegationConfig, extract_features, find_terms

EscalationReason = Literal["sensitive_terms", "low_confidence"]

_PLACES = Decimal("0.001")
_DIVISION = Context(prec=28, rounding=ROUND_HALF_EVEN)


class ObjectionClass(Frozen):
    """One objection in the taxonomy and the terms that signal it."""

    name: str = Field(min_length=1)
    terms: tuple[str, ...] = Field(min_length=1)

    @field_validator("terms")
    @classmethod
    def _no_blank_terms(cls, terms: tuple[str, ...]) -> tuple[str, ...]:
        if any(not term.strip() for term in terms):
            raise ValueError("an objection class's terms must not contain blank entries")
        return terms


class ObjectionConfig(Frozen):
    """The taxonomy (order breaks ties), sensitive terms, and the confidence floor."""

    matching: Matching = "tokens"
    negation: NegationConfig = NegationConfig()
    classes: tuple[ObjectionClass, ...] = Field(min_length=1)
    sensitive_terms: tuple[str, ...]
    escalate_below: Decimal = Field(ge=0, le=1, allow_inf_nan=False)

    @field_validator("sensitive_terms")
    @classmethod
    def _no_blank_sensitive_terms(cls, terms: tuple[str, ...]) -> tuple[str, ...]:
        if any(not term.strip() for term in terms):
            raise ValueError("sensitive_terms must not contain blank entries")
        return terms

    @model_validator(mode="after")
    def _unique_class_names(self) -> ObjectionConfig:
        names = [c.name for c in self.classes]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"objection class names must be unique; repeated: {duplicates}")
        return self


class ObjectionResult(Frozen):
    """The classification with its evidence and the escalation decision.

    `hits` lists, for every class in taxonomy order, the terms that counted (possibly none).
    """

    objection: str | None
    confidence: Decimal
    hits: dict[str, tuple[str, ...]]
    sensitive: tuple[str, ...]
    escalate: bool
    escalation_reason: EscalationReason | None


def classify_objection(text: str, config: ObjectionConfig) -> ObjectionResult:
    """Classify `text` into the taxonomy and decide whether a human must take it."""
    values = extract_features(
        text,
        [FeatureSpec(name=c.name, terms=c.terms) for c in config.classes],
        matching=config.matching,
        negation=config.negation,
    )
    hits = {name: value.hits for name, value in values.items()}
    total = sum(len(terms) for terms in hits.values())

    objection: str | None = None
    confidence = Decimal(1).quantize(_PLACES)
    if total:
        # max() keeps the first of equal counts, and `hits` is in taxonomy order.
        objection = max(hits, key=lambda name: len(hits[name]))
        share = _DIVISION.divide(Decimal(len(hits[objection])), Decimal(total))
        confidence = share.quantize(_PLACES, context=_DIVISION)

    sensitive = tuple(
        hit.term for hit in find_terms(text, config.sensitive_terms, matching=config.matching)
    )
    reason: EscalationReason | None = None
    if sensitive:
        reason = "sensitive_terms"
    elif objection is not None and confidence < config.escalate_below:
        reason = "low_confidence"

    return ObjectionResult(
        objection=objection,
        confidence=confidence,
        hits=hits,
        sensitive=sensitive,
        escalate=reason is not None,
        escalation_reason=reason,
    )
