"""A reading: the linear heads' sums over a message's features, and what they decide.

Every head is a dot product in integer millionths (`bias + Σ wᵢ·xᵢ`), compared with its
threshold exactly; a sigmoid is never part of a decision. The decisions follow the
labelling guide (`docs/labelling.md`):

- the band is the band head's sum against the `hot` and `warm` thresholds;
- a signal, a reason or an intent is present when its head fires;
- the objection is the firing objection head with the largest margin over its threshold,
  ties going to the guide's precedence (contract, price, authority, competitor, timing,
  needs); none fires: no objection;
- the guide's consistency rules, applied last and in this order: the `needs_human` head
  firing with no reason adds the reason with the largest margin; a `contract` objection
  always needs a human (its most likely reason among legal, privacy/security and billing is
  added when none is); under a model with the `contract_reasons_object` rule, such a reason
  makes the objection `contract` (the guide's first objection); under one with
  `authority_signal_not_objection`, a writer read as the decision maker raises no authority
  objection (the best other firing objection, or none, is taken); a pricing exception with no
  objection is a `price` objection; asking for a person is both an intent and a reason;
  `needs_human` is exactly "some reason".

Conversations add up (`aggregate`): a conversation's features are the union of its
messages' features (a message's shape — short, long, a question — only while it is the
latest), so a signal stated once stays; a later message that states a signal only in a
negation ("actually, there is no budget") retracts it, and the band is the band head over
the aggregate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

import numpy as np

from domain.understanding.features import Extraction, Metadata, extract
from domain.understanding.model import (
    BINARY_HEADS,
    HEADS,
    INTENTS,
    OBJECTIONS,
    REASONS,
    SIGNALS,
    ReaderModel,
    from_micro,
)

Band = Literal["hot", "warm", "cold"]

_CONTRACT_REASONS = ("legal", "privacy_security", "billing_refund")


@dataclass(frozen=True, slots=True)
class Reading:
    """What the reader made of one message (or of a conversation's aggregate)."""

    language: str
    band: Band
    score: Decimal
    signals: dict[str, bool]
    objection: str | None
    needs_human: bool
    reasons: tuple[str, ...]
    intents: tuple[str, ...]
    features: dict[str, int]
    sums: dict[str, int]
    """Each head's exact sum in millionths, for the audit."""
    entities: dict[str, object] = field(default_factory=dict)
    """The message's entities as JSON values (`Entities.as_json`), when it was read."""


class _Heads:
    """All heads fused into one integer matrix (feature × head), so a message is read with
    one gather and one column sum: exact int64 arithmetic, ~30 heads at the cost of one."""

    def __init__(self, model: ReaderModel) -> None:
        self.names = HEADS
        self.bias = np.array([model.head(name).bias for name in HEADS], dtype=np.int64)
        self.thresholds = {name: model.heads[name].threshold for name in BINARY_HEADS}
        columns: dict[str, int] = {}
        entries: list[tuple[int, int, int]] = []
        for head_index, name in enumerate(HEADS):
            for feature, weight in model.head(name).weights.items():
                if weight:
                    row = columns.setdefault(feature, len(columns))
                    entries.append((row, head_index, weight))
        self.rows = columns
        self.matrix = np.zeros((len(columns) + 1, len(HEADS)), dtype=np.int64)
        for row, head_index, weight in entries:
            self.matrix[row, head_index] = weight


_FUSED: dict[int, tuple[ReaderModel, _Heads]] = {}


def _heads(model: ReaderModel) -> _Heads:
    entry = _FUSED.get(id(model))
    if entry is not None and entry[0] is model:
        return entry[1]
    heads = _Heads(model)
    while len(_FUSED) >= 8:
        _FUSED.pop(next(iter(_FUSED)))
    _FUSED[id(model)] = (model, heads)
    return heads


def head_sums(model: ReaderModel, features: Mapping[str, int]) -> dict[str, int]:
    """Every head's `bias + Σ wᵢ·xᵢ`, in millionths (exact: integers throughout)."""
    heads = _heads(model)
    rows = heads.rows
    present = [f for f in features if f in rows]
    if not present:
        totals = heads.bias
    else:
        values = [features[f] for f in present]
        picked = heads.matrix[[rows[f] for f in present]]
        if values.count(1) == len(values):  # indicators (the usual case): a column sum
            totals = heads.bias + picked.sum(axis=0)
        else:
            totals = heads.bias + (picked * np.array(values, dtype=np.int64)[:, None]).sum(axis=0)
    return dict(zip(heads.names, totals.tolist(), strict=True))


def _margin(model: ReaderModel, sums: Mapping[str, int], name: str) -> int:
    return sums[name] - model.heads[name].threshold


_SIGNAL_HEADS = tuple((name, f"signal:{name}") for name in SIGNALS)
_OBJECTION_HEADS = tuple((name, f"objection:{name}") for name in OBJECTIONS)
_REASON_HEADS = tuple((name, f"reason:{name}") for name in REASONS)
_INTENT_HEADS = tuple((name, f"intent:{name}") for name in INTENTS)


def band_of(model: ReaderModel, total: int) -> Band:
    if total >= model.band.hot:
        return "hot"
    if total >= model.band.warm:
        return "warm"
    return "cold"


def decide_reading(
    model: ReaderModel,
    language: str,
    features: dict[str, int],
    sums: dict[str, int],
    *,
    one_message: bool = True,
) -> Reading:
    """Turn head sums into the reading, applying the labelling guide's consistency rules.

    The model's opt-in `rules` are rules about one message ("a writer who signs raises no
    authority objection in the same breath"); over a conversation's union of features
    (`one_message=False`) they would join what different messages said, so they are not
    applied there.
    """
    rules = model.rules if one_message else ()
    thresholds = _heads(model).thresholds
    signals = {name: sums[head] >= thresholds[head] for name, head in _SIGNAL_HEADS}
    firing = [name for name, head in _OBJECTION_HEADS if sums[head] >= thresholds[head]]
    if "authority_signal_not_objection" in rules and signals["authority"]:
        firing = [name for name in firing if name != "authority"]
    objection = (
        max(
            firing,
            key=lambda name: (_margin(model, sums, f"objection:{name}"), -OBJECTIONS.index(name)),
        )
        if firing
        else None
    )
    reasons = {name for name, head in _REASON_HEADS if sums[head] >= thresholds[head]}
    intents = {name for name, head in _INTENT_HEADS if sums[head] >= thresholds[head]}
    if not reasons and sums["needs_human"] >= thresholds["needs_human"]:
        reasons.add(_most_likely(model, sums, REASONS))
    if objection == "contract" and not reasons & set(_CONTRACT_REASONS):
        reasons.add(_most_likely(model, sums, _CONTRACT_REASONS))
    if "contract_reasons_object" in rules and reasons & set(_CONTRACT_REASONS):
        objection = "contract"
    if objection is None and "pricing_exception" in reasons:
        objection = "price"
    if "human_request" in reasons or "human_request" in intents:
        reasons.add("human_request")
        intents.add("human_request")
    total = sums["band"]
    return Reading(
        language=language,
        band=band_of(model, total),
        score=from_micro(total),
        signals=signals,
        objection=objection,
        needs_human=bool(reasons),
        reasons=tuple(sorted(reasons)),
        intents=tuple(sorted(intents)),
        features=features,
        sums=sums,
    )


def _most_likely(model: ReaderModel, sums: Mapping[str, int], names: tuple[str, ...]) -> str:
    return max(names, key=lambda name: (_margin(model, sums, f"reason:{name}"), -names.index(name)))


def read(
    text: str, model: ReaderModel, *, today: date, metadata: Metadata | None = None
) -> tuple[Reading, Extraction]:
    """Read one message: its extraction (features, entities, evidence) and the reading."""
    extraction = extract(text, model, today=today, metadata=metadata)
    sums = head_sums(model, extraction.features)
    return decide_reading(model, extraction.language, extraction.features, sums), extraction


def retracted(model: ReaderModel, reading: Reading) -> tuple[str, ...]:
    """Signals this message takes back: it states the signal only in a negation ("actually
    there is no budget": `lex:budget:not` or `lex:no_budget`) and nowhere affirmatively."""
    del model  # the rule reads the message's lexicon features only
    features = reading.features
    return tuple(
        name
        for name in SIGNALS
        if (features.get(f"lex:{name}:not") or features.get(f"lex:no_{name}"))
        and not features.get(f"lex:{name}")
    )


def aggregate(
    previous: Mapping[str, int], message: Mapping[str, int], taken_back: tuple[str, ...]
) -> dict[str, int]:
    """A conversation's features after one more message: the union, minus what it retracts.

    A message's shape (a question, very short, long) describes that message, not the
    conversation: only the latest message's shape is kept.
    """
    merged = {name: value for name, value in previous.items() if not name.startswith("shape:")}
    for feature, value in message.items():
        if merged.get(feature, 0) < value:
            merged[feature] = value
    for name in taken_back:
        merged.pop(f"lex:{name}", None)
    return merged


def read_conversation(
    model: ReaderModel,
    latest: Reading,
    features: dict[str, int],
    held: Mapping[str, bool],
    taken_back: tuple[str, ...] = (),
) -> Reading:
    """The conversation's reading after its latest message.

    The band score is the band head over the aggregate `features`, or the latest message's
    own score when that is higher: what the prospect just said counts in full, and earlier
    messages add what they stated (a cautious first "tell me more" does not hold back a buyer
    who then names budget and date). Signals are those `held` (said and not taken back) plus
    any the aggregate's heads read, minus those the latest message took back. The returned
    `features` are those the band score was computed from, so its `w × x` add up to it.
    """
    reading = decide_reading(
        model, latest.language, features, head_sums(model, features), one_message=False
    )
    signals = {
        name: (reading.signals[name] or held.get(name, False)) and name not in taken_back
        for name in SIGNALS
    }
    latest_wins = latest.sums["band"] > reading.sums["band"]
    total = latest.sums["band"] if latest_wins else reading.sums["band"]
    return Reading(
        language=reading.language,
        band=band_of(model, total),
        score=from_micro(total),
        signals=signals,
        objection=reading.objection,
        needs_human=reading.needs_human,
        reasons=reading.reasons,
        intents=reading.intents,
        features=latest.features if latest_wins else features,
        sums={**reading.sums, "band": total},
    )


@dataclass(frozen=True, slots=True)
class Term:
    """One line of an explanation: a feature, its weight, its value and w×x (exact)."""

    feature: str
    weight: Decimal
    value: int
    contribution: Decimal


def explain(
    model: ReaderModel, head: str, features: Mapping[str, int]
) -> tuple[tuple[Term, ...], Decimal, Decimal]:
    """The non-zero `w × x` of one head, largest first, with the exact sum and threshold."""
    spec = model.head(head)
    terms = [
        Term(
            feature,
            from_micro(spec.weights[feature]),
            value,
            from_micro(spec.weights[feature] * value),
        )
        for feature, value in features.items()
        if spec.weights.get(feature) and value
    ]
    terms.sort(key=lambda t: (-abs(t.contribution), t.feature))
    total = spec.bias + sum(spec.weights.get(f, 0) * v for f, v in features.items())
    if head == "band":  # the threshold that decided: hot when reached, else warm
        threshold = model.band.hot if total >= model.band.hot else model.band.warm
    else:
        threshold = spec.threshold
    return tuple(terms), from_micro(total), from_micro(threshold)
