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
    # (|w × x| descending, then the name), in one pass: names are unique, so the sort never
    # compares further than the name.
    entries = []
    for name, value in reading.features.items():
        weight = weights_micro.get(name) if value else None
        if weight:
            product = weight * value
            entries.append((-abs(product), name, value, weight, product))
    entries.sort()
    features: dict[str, int] = {}
    weights: dict[str, Decimal] = {}
    contributions: dict[str, Decimal] = {}
    for _, name, value, weight, product in entries:
        features[name] = value
        weights[name] = from_micro(weight)
        contributions[name] = from_micro(product)
    present = features
    if model.band.bias:
        contributions["intercept"] = from_micro(model.band.bias)
    calibration = model.head("band").calibration
    return trusted(  # built from the model's and the reading's values (`domain.model.trusted`)
        LeadScore,
        score=reading.score,
        probability=None,
        hot_probability=(
            calibration.probability(_band_total(reading)) if calibration is not None else None
        ),
        band=reading.band,
        features=features,
        weights=weights,
        contributions=contributions,
        evidence={name: tuple(evidence[name]) for name in present if evidence.get(name)},
        negated={},
    )


def _band_total(reading: Reading) -> int:
    """The reading's band score in millionths: its band sum, which a reading's score is made
    from (`to_micro` of the score only when a reading says otherwise)."""
    total = reading.sums.get("band")
    if total is None or from_micro(total) != reading.score:
        return to_micro(reading.score)
    return total


def score_text(model: ReaderModel, text: str, *, today: date) -> LeadScore:
    """A pasted text's band score under the trained reader (`/lead`, `salesbot score`)."""
    reading, extraction = read(text, model, today=today)
    return reader_score(model, reading, extraction.evidence)
