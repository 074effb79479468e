"""Interpretable lead scoring: a linear surrogate whose every point can be traced to a term.

score = intercept + Σ wᵢ·xᵢ with binary features xᵢ, computed exactly in `Decimal`, so the
per-feature contributions a rep sees add up to the score to the last digit. Weights are
bounded (at most 18 digits, 9 after the point) which keeps every sum exact; the sum is done in
a context that traps inexact results, so a violation would be a loud bug, not a quiet rounding.

An optional logistic link turns the score into a probability for readers who want one; the
band then reads the probability. Credit scores are deliberately *not* a scoring input: the
fairness correction lives in `domain.narrative`, where it is logged with a reason code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from domain.model import Frozen, Sparse
from domain.text import FeatureSpec, Matching, NegationConfig, extract_features

Band = Literal["hot", "warm", "cold"]

# Bounded weights make every linear sum exact in a 60-digit context, whatever the caller's
# ambient decimal context is.
Weight = Annotated[Decimal, Field(allow_inf_nan=False, max_digits=18, decimal_places=9)]

_EXACT = Context(prec=60, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
_LINK = Context(prec=28, traps=[InvalidOperation, DivisionByZero, Overflow])
_PROBABILITY_PLACES = Decimal("0.000001")
# Six places cannot say "certain": the link's output is kept inside the open interval.
_P_MIN = Decimal("0.000001")
_P_MAX = Decimal("0.999999")
# Beyond this |score| the logistic is already 0 or 1 at six places; clamping avoids overflow.
_LINK_CLAMP = Decimal(60)

INTERCEPT = "intercept"


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """Sum without rounding; raises `decimal.Inexact` rather than return a rounded total."""
    with localcontext(_EXACT):
        return sum(values, Decimal(0))


def exact_product(a: Decimal, b: Decimal | int) -> Decimal:
    """a·b without rounding; a zero product is plain 0 (not "-0.0"), for tidy audits."""
    with localcontext(_EXACT):
        product = a * b
        return product if product else Decimal(0)


class TextFeature(Frozen):
    """A weighted binary feature read from the lead's text."""

    name: str = Field(min_length=1)
    weight: Weight
    terms: tuple[str, ...] = Field(min_length=1)
    negatable: bool = True

    def spec(self) -> FeatureSpec:
        return FeatureSpec(name=self.name, terms=self.terms, negatable=self.negatable)


class MetadataFeature(Frozen):
    """A weighted binary feature read from lead metadata (company size, source, …).

    Exactly one test applies: `at_least` (numeric ≥) or `one_of` (case-insensitive equality).
    A missing key or a value of the wrong type makes the feature 0: bad metadata from a web
    form must not crash scoring, and must not earn points either.
    """

    name: str = Field(min_length=1)
    weight: Weight
    key: str = Field(min_length=1)
    at_least: Decimal | None = Field(None, allow_inf_nan=False)
    one_of: tuple[str, ...] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one_test(self) -> MetadataFeature:
        if (self.at_least is None) == (self.one_of is None):
            raise ValueError(
                f"metadata feature {self.name!r} needs exactly one of at_least or one_of"
            )
        return self

    def evidence(self, metadata: Mapping[str, str | int | Decimal]) -> str | None:
        """`key=value` when the feature fires, else None."""
        if self.key not in metadata:
            return None
        raw = metadata[self.key]
        if self.at_least is not None:
            number = _as_number(raw)
            fired = number is not None and number >= self.at_least
        else:
            options = {option.strip().casefold() for option in self.one_of or ()}
            fired = str(raw).strip().casefold() in options
        return f"{self.key}={raw}" if fired else None


def _as_number(raw: object) -> Decimal | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | Decimal):
        number = Decimal(raw)
    elif isinstance(raw, str):
        try:
            number = Decimal(raw.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None


class Bands(Frozen):
    """Thresholds on the score (identity link) or on the probability (logistic link)."""

    hot: Decimal = Field(allow_inf_nan=False)
    warm: Decimal = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _hot_above_warm(self) -> Bands:
        if not self.hot > self.warm:
            raise ValueError(f"the hot band ({self.hot}) must be above the warm band ({self.warm})")
        return self


class ScoringConfig(Frozen):
    """The lead scoring policy: lexicons, weights, metadata rules, link and bands."""

    matching: Matching = "tokens"
    negation: NegationConfig = NegationConfig()
    link: Literal["identity", "logistic"] = "identity"
    intercept: Weight = Decimal(0)
    features: tuple[TextFeature, ...] = Field(min_length=1)
    metadata: tuple[MetadataFeature, ...] = ()
    bands: Bands

    @model_validator(mode="after")
    def _consistent(self) -> ScoringConfig:
        names = [f.name for f in self.features] + [m.name for m in self.metadata]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"feature names must be unique; repeated: {', '.join(duplicates)}")
        if INTERCEPT in names:
            raise ValueError(f"{INTERCEPT!r} is reserved and cannot name a feature")
        if self.link == "logistic" and not (self.bands.warm > 0 and self.bands.hot < 1):
            raise ValueError("with the logistic link the bands are probabilities, between 0 and 1")
        return self


class LeadScore(Sparse):
    """A score with everything needed to recompute it by hand.

    `contributions` holds wᵢ·xᵢ for every feature (plus the intercept when it is not zero)
    and sums exactly to `score`.
    """

    score: Decimal
    probability: Decimal | None
    band: Band
    features: dict[str, int]
    weights: dict[str, Decimal]
    contributions: dict[str, Decimal]
    evidence: dict[str, tuple[str, ...]]
    negated: dict[str, tuple[str, ...]]
    hot_probability: Decimal | None = None
    """The trained reader's calibrated probability that the lead is hot, for display (cards
    show it instead of the score, whose units mean nothing to a rep); it decides nothing."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("hot_probability",)


def logistic(score: Decimal) -> Decimal:
    """σ(score) = 1/(1+e^(−score)) at six places, inside (0, 1); monotone non-decreasing."""
    with localcontext(_LINK):
        z = max(-_LINK_CLAMP, min(_LINK_CLAMP, score))
        if z >= 0:
            p = 1 / (1 + (-z).exp())
        else:
            e = z.exp()
            p = e / (1 + e)
        return min(_P_MAX, max(_P_MIN, p.quantize(_PROBABILITY_PLACES)))


def band_for(value: Decimal, bands: Bands) -> Band:
    if value >= bands.hot:
        return "hot"
    if value >= bands.warm:
        return "warm"
    return "cold"


def score_lead(
    text: str,
    config: ScoringConfig,
    metadata: Mapping[str, str | int | Decimal] | None = None,
) -> LeadScore:
    """Score a lead's text (and optional metadata) with exact per-feature attribution."""
    values = extract_features(
        text,
        config.features,
        matching=config.matching,
        negation=config.negation,
    )
    features: dict[str, int] = {}
    weights: dict[str, Decimal] = {}
    contributions: dict[str, Decimal] = {}
    evidence: dict[str, tuple[str, ...]] = {}
    negated: dict[str, tuple[str, ...]] = {}

    for feature in config.features:
        value = values[feature.name]
        features[feature.name] = value.value
        weights[feature.name] = feature.weight
        contributions[feature.name] = exact_product(feature.weight, value.value)
        evidence[feature.name] = value.hits
        negated[feature.name] = value.negated

    for rule in config.metadata:
        found = rule.evidence(metadata) if metadata is not None else None
        features[rule.name] = 1 if found is not None else 0
        weights[rule.name] = rule.weight
        contributions[rule.name] = exact_product(rule.weight, features[rule.name])
        evidence[rule.name] = (found,) if found is not None else ()
        negated[rule.name] = ()

    if config.intercept != 0:
        contributions[INTERCEPT] = config.intercept

    score = exact_sum(contributions.values())
    probability = logistic(score) if config.link == "logistic" else None
    band = band_for(probability if probability is not None else score, config.bands)
    return LeadScore(
        score=score,
        probability=probability,
        band=band,
        features=features,
        weights=weights,
        contributions=contributions,
        evidence=evidence,
        negated=negated,
    )
