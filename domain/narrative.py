"""Narrative resonance, urgency, and the fairness correction on urgency (notebook §10).

Both scores are linear in binary text features, R = Σ w_R·f and U = Σ w_U·f, computed exactly
so each contribution is the feature's whole story. When a creditworthiness proxy is below
`c0`, operational urgency is reduced by a fraction λ of its additive contributions:

    U_pen = max(0, U − λ·C_U)   when credit < c0,   C_U = Σ w_U·f

Every assessment returns the raw and penalized values, the attributions, the knobs and a
reason code, so a reviewer can recompute the penalty and query how often it applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from domain.model import Frozen
from domain.scoring import Weight, exact_product, exact_sum
from domain.text import (
    FeatureSpec,
    FeatureValue,
    Matching,
    NegationConfig,
    extract_features,
    extract_features_of_texts,
    joined_outcome,
)

ReasonCode = Literal["no_penalty", "credit_below_threshold", "credit_unknown"]


class NarrativeConfig(Frozen):
    """Narrative lexicons and the two weight vectors; a feature without a weight counts 0."""

    matching: Matching = "tokens"
    negation: NegationConfig = NegationConfig()
    features: tuple[FeatureSpec, ...] = Field(min_length=1)
    resonance_weights: dict[str, Weight]
    urgency_weights: dict[str, Weight]

    @model_validator(mode="after")
    def _weights_name_known_features(self) -> NarrativeConfig:
        names = [spec.name for spec in self.features]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"feature names must be unique; repeated: {', '.join(duplicates)}")
        for table in ("resonance_weights", "urgency_weights"):
            unknown = sorted(set(getattr(self, table)) - set(names))
            if unknown:
                raise ValueError(
                    f"{table} names unknown features: {', '.join(unknown)} "
                    f"(known: {', '.join(names)})"
                )
        return self


class FairnessConfig(Frozen):
    """The fairness knobs: credit threshold `c0` and penalty fraction λ (TOML key `lambda`)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    c0: int = 600
    lambda_: Decimal = Field(
        Decimal("0.8"),
        alias="lambda",
        ge=0,
        le=1,
        allow_inf_nan=False,
        max_digits=18,
        decimal_places=9,
    )


class NarrativeAudit(Frozen):
    """One assessment as it is logged: inputs, attributions, knobs, outcome and reason."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    features: dict[str, int]
    resonance: Decimal
    raw_urgency: Decimal
    penalized_urgency: Decimal
    contrib_res: dict[str, Decimal]
    contrib_urg: dict[str, Decimal]
    credit: int | None
    c0: int
    lambda_: Decimal = Field(alias="lambda")
    reason: str
    reason_code: ReasonCode


def penalized_urgency(
    raw_urgency: Decimal, credit: int | None, fairness: FairnessConfig
) -> Decimal:
    """`max(0, U − λ·C_U)` when the credit score is known and below `c0`, else `U`. `C_U`, the
    sum of urgency's additive contributions, is `U` itself: urgency is linear with no bias."""
    if credit is None or credit >= fairness.c0:
        return raw_urgency
    penalty = exact_product(fairness.lambda_, raw_urgency)
    return max(Decimal(0), exact_sum([raw_urgency, -penalty]))


def assess_narrative(
    text: str,
    narrative: NarrativeConfig,
    fairness: FairnessConfig,
    credit: int | None,
) -> NarrativeAudit:
    """Resonance and urgency of `text`, with the fairness penalty applied for `credit`.

    An unknown credit score is not treated as a low one: no penalty, and the reason says so,
    so audits can tell "checked and fine" from "not checked".
    """
    values = extract_features(
        text, narrative.features, matching=narrative.matching, negation=narrative.negation
    )
    return _assessed(values, narrative, fairness, credit)


def assess_conversation_narrative(
    messages: Sequence[str],
    separator: str,
    narrative: NarrativeConfig,
    fairness: FairnessConfig,
    credit: int | None,
) -> NarrativeAudit:
    """`assess_narrative(separator.join(messages), …)`, the same audit, with each message's
    terms found once (`domain.text.joined_outcome`) rather than every message re-read at
    each new one. The audit is a function of which terms were heard and negated, the
    configuration and the credit score, so one is built per such outcome (audits are
    immutable: the same one may be recorded in many events)."""
    outcome = joined_outcome(
        messages,
        separator,
        narrative.features,
        matching=narrative.matching,
        negation=narrative.negation,
    )
    if outcome is None:
        return assess_narrative(separator.join(messages), narrative, fairness, credit)
    key = (*outcome, id(narrative), id(fairness), credit)
    entry = _AUDITS.get(key)
    if entry is not None and entry[0] is narrative and entry[1] is fairness:
        return entry[2]
    values = extract_features_of_texts(
        messages,
        separator,
        narrative.features,
        matching=narrative.matching,
        negation=narrative.negation,
    )
    audit = _assessed(values, narrative, fairness, credit)
    if len(_AUDITS) >= _AUDITS_KEPT:
        _AUDITS.clear()  # a bound on memory; audits are rebuilt identically
    _AUDITS[key] = (narrative, fairness, audit)
    return audit


_AUDITS: dict[tuple[object, ...], tuple[NarrativeConfig, FairnessConfig, NarrativeAudit]] = {}
_AUDITS_KEPT = 4096


def _assessed(
    values: Mapping[str, FeatureValue],
    narrative: NarrativeConfig,
    fairness: FairnessConfig,
    credit: int | None,
) -> NarrativeAudit:
    features = {name: value.value for name, value in values.items()}
    zero = Decimal(0)
    contrib_res = {
        name: exact_product(narrative.resonance_weights.get(name, zero), f)
        for name, f in features.items()
    }
    contrib_urg = {
        name: exact_product(narrative.urgency_weights.get(name, zero), f)
        for name, f in features.items()
    }
    resonance = exact_sum(contrib_res.values())
    raw_urgency = exact_sum(contrib_urg.values())

    reason_code: ReasonCode
    if credit is None:
        penalized, reason, reason_code = (
            raw_urgency,
            "no penalty (credit unknown)",
            "credit_unknown",
        )
    elif credit < fairness.c0:
        penalized = penalized_urgency(raw_urgency, credit, fairness)
        reason = f"penalized (credit {credit} < {fairness.c0})"
        reason_code = "credit_below_threshold"
    else:
        penalized, reason, reason_code = raw_urgency, "no penalty", "no_penalty"

    return NarrativeAudit(
        features=features,
        resonance=resonance,
        raw_urgency=raw_urgency,
        penalized_urgency=penalized,
        contrib_res=contrib_res,
        contrib_urg=contrib_urg,
        credit=credit,
        c0=fairness.c0,
        lambda_=fairness.lambda_,
        reason=reason,
        reason_code=reason_code,
    )
