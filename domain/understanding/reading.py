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

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

from domain.understanding.features import SHAPE_FEATURES, Extraction, Metadata, extract
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


_LANES = ((32, "i"), (64, "q"))
"""The lane widths a packed row may use (bits per head, narrowest first; see `_Heads`) with
each one's signed `struct` code."""


class _Heads:
    """All heads fused into one table, so a message is read with one addition per feature.

    Each feature's weights in every head (in `HEADS` order) are packed into one Python
    integer, head `h` in bits `L·h … L·h+L-1` (`Σ_h w_h·2^(Lh)`, lanes of `L` bits). Adding
    packed rows adds every head's sum at once, exactly: the sum is linear, and after adding
    2^(L-1) to every lane each lane holds `S_h + 2^(L-1)`, which is in `[0, 2^L)` whenever
    `|S_h| < 2^(L-1)`. That holds for any message of indicator features when the sum of every
    head's absolute weights is below 2^(L-2), which the table checks when it is built, taking
    the narrowest lane that fits (32 bits for the shipped models, half the digits to add; a
    model outside every bound, or a feature valued other than 0 or 1, is summed head by head
    instead). One big-integer addition per feature costs less than a column sum over an
    array gather at this size (~30 heads, a few dozen features).
    """

    def __init__(self, model: ReaderModel) -> None:
        self.names = HEADS
        self.position = {name: index for index, name in enumerate(HEADS)}
        self.bias = tuple(model.head(name).bias for name in HEADS)
        self.exact_bias = tuple(map(from_micro, self.bias))
        self.calibrations = tuple(model.head(name).calibration for name in HEADS)
        self.exact: dict[str, tuple[Decimal, ...]] = {}
        """Each explained feature's row of weights as exact decimals (`_explained`)."""
        self.thresholds = {name: model.heads[name].threshold for name in BINARY_HEADS}
        dense: dict[str, list[int]] = {}
        for head_index, name in enumerate(HEADS):
            for feature, weight in model.head(name).weights.items():
                if weight:
                    dense.setdefault(feature, [0] * len(HEADS))[head_index] = weight
        self.rows = {feature: tuple(row) for feature, row in dense.items()}
        bound = [abs(b) for b in self.bias]
        for row in self.rows.values():
            for head_index, weight in enumerate(row):
                bound[head_index] += abs(weight)
        largest = max(bound, default=0)
        fitting = [(bits, code) for bits, code in _LANES if largest < 1 << (bits - 2)]
        self.packable = bool(fitting)
        bits, code = fitting[0] if fitting else _LANES[-1]
        self.packed = {feature: _pack(row, bits) for feature, row in self.rows.items()}
        half = _pack((1 << (bits - 1),) * len(HEADS), bits)
        self.start = _pack(self.bias, bits) + half
        # Flipping each lane's top bit turns `S_h + 2^(L-1)` (unsigned) into `S_h` read as a
        # signed lane: one XOR and one `struct` unpack, no per-head subtraction.
        self.flip = half
        self.signed_lanes = struct.Struct(f"<{len(HEADS)}{code}")

        def table(names: tuple[str, ...], prefix: str) -> tuple[tuple[str, str, int], ...]:
            return tuple(
                (name, f"{prefix}:{name}", self.thresholds[f"{prefix}:{name}"]) for name in names
            )

        self.signal_heads = table(SIGNALS, "signal")
        self.objection_heads = table(OBJECTIONS, "objection")
        self.reason_heads = table(REASONS, "reason")
        self.intent_heads = table(INTENTS, "intent")


def _pack(row: tuple[int, ...], bits: int) -> int:
    return sum(weight << (bits * head_index) for head_index, weight in enumerate(row))


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


_ONLY_ONES = frozenset((1,))


def head_sums(model: ReaderModel, features: Mapping[str, int]) -> dict[str, int]:
    """Every head's `bias + Σ wᵢ·xᵢ`, in millionths (exact: integers throughout)."""
    heads = _heads(model)
    if heads.packable and _ONLY_ONES.issuperset(features.values()):
        # Every value is 1 (what `extract` writes): the packed rows of the features the
        # model weighs, added in C.
        total = sum(filter(None, map(heads.packed.get, features)), heads.start)
        signed = heads.signed_lanes
        lanes = signed.unpack((total ^ heads.flip).to_bytes(signed.size, "little"))
        return dict(zip(heads.names, lanes, strict=True))
    sums = list(heads.bias)
    rows = heads.rows
    for feature, value in features.items():
        weights = rows.get(feature)
        if weights is not None and value:
            for head_index, weight in enumerate(weights):
                sums[head_index] += weight * value
    return dict(zip(heads.names, sums, strict=True))


def _margin(model: ReaderModel, sums: Mapping[str, int], name: str) -> int:
    return sums[name] - model.heads[name].threshold


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
    heads = _heads(model)
    signals = {name: sums[head] >= threshold for name, head, threshold in heads.signal_heads}
    # (margin over the threshold, the guide's precedence as a tie-break, name)
    firing = [
        (sums[head] - threshold, -precedence, name)
        for precedence, (name, head, threshold) in enumerate(heads.objection_heads)
        if sums[head] >= threshold
    ]
    if "authority_signal_not_objection" in rules and signals["authority"]:
        firing = [entry for entry in firing if entry[2] != "authority"]
    objection = max(firing)[2] if firing else None
    reasons = {name for name, head, threshold in heads.reason_heads if sums[head] >= threshold}
    intents = {name for name, head, threshold in heads.intent_heads if sums[head] >= threshold}
    thresholds = heads.thresholds
    if not reasons and sums["needs_human"] >= thresholds["needs_human"]:
        reasons.add(_most_likely(model, sums, REASONS))
    if objection == "contract" and reasons.isdisjoint(_CONTRACT_REASONS):
        reasons.add(_most_likely(model, sums, _CONTRACT_REASONS))
    if "contract_reasons_object" in rules and not reasons.isdisjoint(_CONTRACT_REASONS):
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
    merged = dict(previous)  # a copy in C; then the three shapes out (was a scan of every name)
    for name in SHAPE_FEATURES:
        merged.pop(name, None)
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
    ((rows, total, threshold),) = explain_rows(model, (head,), features)
    return tuple(Term(*row) for row in rows), total, threshold


ExplainedRow = tuple[str, Decimal, int, Decimal]
"""(feature, weight, value, weight × value), exact."""


def explain_rows(
    model: ReaderModel, heads: Sequence[str], features: Mapping[str, int]
) -> list[tuple[tuple[ExplainedRow, ...], Decimal, Decimal]]:
    """`explain` for several heads at once, as plain rows: one pass over the message's
    features, each feature's weights in every head read from the fused table (`_Heads`),
    since every message stores the explanation of each head that fired on it. Terms are
    ordered by their exact integer |w × x| (in millionths), then by name."""
    return [
        (rows, from_micro(total), threshold)
        for rows, total, threshold in _explained(model, heads, features)
    ]


def _explained(
    model: ReaderModel, heads: Sequence[str], features: Mapping[str, int]
) -> list[tuple[tuple[ExplainedRow, ...], int, Decimal]]:
    """`explain_rows` with each head's total as integer millionths (what its calibration
    takes). Each weight's exact decimal is read from the fused table's per-feature row of
    decimals (`_Heads.exact`), made the first time the feature is explained."""
    fused = _heads(model)
    positions = [fused.position[head] for head in heads]
    found: list[list[tuple[int, str, Decimal, int, int]]] = [[] for _ in heads]
    bias = fused.bias
    totals = [bias[position] for position in positions]
    table = fused.rows
    exact_rows = fused.exact
    for feature, value in features.items():
        row = table.get(feature) if value else None
        if row is None:
            continue
        exact_row = exact_rows.get(feature)
        if exact_row is None:
            exact_row = exact_rows[feature] = tuple(map(from_micro, row))
        for k, position in enumerate(positions):
            weight = row[position]
            if weight:
                product = weight * value
                totals[k] += product
                # (|w × x| descending, then the name: names are unique, so the sort never
                # compares further)
                found[k].append((-abs(product), feature, exact_row[position], value, product))
    results = []
    for head, entries, total in zip(heads, found, totals, strict=True):
        entries.sort()
        # Features are indicators (1) but for a few counts: w × 1 is the weight itself.
        rows = tuple(
            (feature, exact, value, exact if value == 1 else from_micro(product))
            for _, feature, exact, value, product in entries
        )
        if head == "band":  # the threshold that decided: hot when reached, else warm
            threshold = model.band.hot if total >= model.band.hot else model.band.warm
        else:
            threshold = model.heads[head].threshold
        results.append((rows, total, from_micro(threshold)))
    return results


def explained_heads(
    model: ReaderModel, heads: Sequence[str], features: Mapping[str, int]
) -> list[tuple[str, tuple[ExplainedRow, ...], Decimal, Decimal, Decimal, Decimal | None]]:
    """For each head: its name, `explain`'s rows, its bias, total and threshold (exact), and
    its calibrated probability for the total (None without a calibration): what a
    `message_read` records of every head that fired."""
    fused = _heads(model)
    return [
        (
            head,
            rows,
            fused.exact_bias[fused.position[head]],
            from_micro(total),
            threshold,
            None if calibration is None else calibration.probability(total),
        )
        for head, (rows, total, threshold) in zip(
            heads, _explained(model, heads, features), strict=True
        )
        for calibration in (fused.calibrations[fused.position[head]],)
    ]
