"""The trained reader's band as a `LeadScore`, so cards, audits and metrics read it as any score.

Only features with a non-zero band weight are listed: those are the `w × x` that make the
score (the full feature list of each message is in its `MessageRead` event). The band head
has no intercept, so the listed contributions sum to the score exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal

from domain.model import trusted
from domain.scoring import LeadScore
from domain.understanding.model import ReaderModel, from_micro, to_micro
from domain.understanding.reading import Reading, read


def reader_score(
    model: ReaderModel, reading: Reading, evidence: Mapping[str, tuple[str, ...]]
) -> LeadScore:
    weights_micro = model.band.weights
    present = sorted(
        (name for name, value in reading.features.items() if value and weights_micro.get(name)),
        key=lambda name: (-abs(weights_micro[name] * reading.features[name]), name),
    )
    features = {name: reading.features[name] for name in present}
    weights = {name: from_micro(weights_micro[name]) for name in present}
    contributions: dict[str, Decimal] = {
        name: from_micro(weights_micro[name] * reading.features[name]) for name in present
    }
    if model.band.bias:
        contributions["intercept"] = from_micro(model.band.bias)
    calibration = model.head("band").calibration
    return trusted(  # built from the model's and the reading's values (`domain.model.trusted`)
        LeadScore,
        score=reading.score,
        probability=None,
        hot_probability=(
            calibration.probability(to_micro(reading.score)) if calibration is not None else None
        ),
        band=reading.band,
        features=features,
        weights=weights,
        contributions=contributions,
        evidence={name: tuple(evidence[name]) for name in present if evidence.get(name)},
        negated={},
    )


def score_text(model: ReaderModel, text: str, *, today: date) -> LeadScore:
    """A pasted text's band score under the trained reader (`/lead`, `salesbot score`)."""
    reading, extraction = read(text, model, today=today)
    return reader_score(model, reading, extraction.evidence)
