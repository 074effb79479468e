"""The reader's data: what features to extract (the spec) and the linear heads over them.

A trained model is a document (`salesbot train` writes it; the policy references it by path
and SHA-256 and the loader hands its content in). Weights, biases and thresholds are stored
as decimals with at most six places in the file and held here as integer millionths
("micro"), so every sum is integer arithmetic: exact, and identical on every machine.

Heads are named `band`, `signal:<name>`, `objection:<class>`, `needs_human`,
`reason:<reason>` and `intent:<intent>`. A binary head fires when `bias + Σ wᵢ·xᵢ ≥
threshold`; the band head compares the same sum with its `hot` and `warm` thresholds.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation, localcontext
from typing import Any, ClassVar, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from domain.model import Frozen, Sparse

MICRO = 1_000_000
READER_SCHEMA_VERSION = 1

SIGNALS = ("budget", "timeline", "authority", "need")
OBJECTIONS = ("contract", "price", "authority", "competitor", "timing", "needs")
"""The objection classes, in the labelling guide's precedence order (ties go to the first)."""
REASONS = (
    "legal",
    "privacy_security",
    "billing_refund",
    "pricing_exception",
    "complaint",
    "human_request",
)
INTENTS = (
    "greeting",
    "question",
    "pricing_question",
    "meeting_request",
    "buying_signal",
    "human_request",
    "not_interested",
    "chose_competitor",
    "goodbye",
    "smalltalk",
)
BINARY_HEADS = (
    *(f"signal:{name}" for name in SIGNALS),
    *(f"objection:{name}" for name in OBJECTIONS),
    "needs_human",
    *(f"reason:{name}" for name in REASONS),
    *(f"intent:{name}" for name in INTENTS),
)
HEADS = ("band", *BINARY_HEADS)

Rule = Literal["contract_reasons_object", "authority_signal_not_objection"]
"""Consistency rules of the labelling guide a model may opt into (`ReaderModel.rules`):

- `contract_reasons_object`: a legal, privacy/security or billing reason makes the objection
  `contract` (the guide's first objection), whatever the objection heads read.
- `authority_signal_not_objection`: a writer who is (or speaks for) the decision maker does not
  raise the authority objection ("someone else must decide"); when the authority signal fires,
  the objection is the best of the other firing objection heads, or none.
"""


def to_micro(value: object) -> int:
    """A decimal with at most six places as integer millionths; anything else is refused.

    Floats from a JSON file are read through their shortest text form, so 0.1 is 100000.
    """
    if isinstance(value, bool):
        raise ValueError("a weight must be a number, not a boolean")
    if isinstance(value, int):
        return value * MICRO
    if isinstance(value, float | str | Decimal):
        try:
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation:
            raise ValueError(f"not a decimal: {value!r}") from None
        if not number.is_finite():
            raise ValueError("a weight must be finite")
        scaled = number * MICRO
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than six decimal places")
        return int(scaled)
    raise ValueError(f"not a number: {value!r}")


def from_micro(value: int) -> Decimal:
    """Integer millionths back to the exact decimal (normalized: 0.5, not 0.500000).

    Memoized: an explanation turns every weight and product of a message's features into a
    decimal (about seventy per head, several heads per message), and a model has a few
    thousand distinct weights. Decimals are immutable, so one instance per value is safe."""
    found = _DECIMALS.get(value)
    if found is None:
        number = Decimal(value).scaleb(-6)
        found = number.normalize() if number else Decimal(0)
        if len(_DECIMALS) >= _DECIMALS_KEPT:
            _DECIMALS.clear()  # a bound on memory; values are recomputed identically
        _DECIMALS[value] = found
    return found


_DECIMALS: dict[int, Decimal] = {}
_DECIMALS_KEPT = 100_000


class Calibration(Frozen):
    """A Platt scaling of a head's sum `s`: `P = 1 / (1 + e^-(a·s + b))`, `a` and `b` in
    millionths, fitted on the out-of-fold sums of training. For display only: decisions
    compare the exact sum with the threshold. A binary head's `P` is that its label holds;
    the band's is that the lead is hot."""

    a: int
    b: int

    @field_validator("a", "b", mode="before")
    @classmethod
    def _micro(cls, value: object) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) else to_micro(value)

    def probability(self, total: int) -> Decimal:
        """`P` for the sum `total` (millionths), to four places, the same on every machine.

        It is recorded with every reading, so it is worked out in floating point (~1 µs) and
        the exact `Decimal` computation (~25 µs; its `exp` is correctly rounded) is only
        needed when the float lands within 10⁻¹⁰ of a rounding boundary: a platform's `exp`
        is off by an ulp or two (~10⁻¹⁶), so elsewhere both give the same four places.
        """
        z = self.a * total / 10**12 + self.b / 10**6
        p = 0.0 if z < -700 else 1.0 / (1.0 + math.exp(-z))
        scaled = p * 10_000
        if abs(scaled - math.floor(scaled) - 0.5) > 1e-6:
            rounded = round(scaled)
            return Decimal(f"{rounded // 10_000}.{rounded % 10_000:04d}")
        return self.exact_probability(total)

    def exact_probability(self, total: int) -> Decimal:
        """`probability` in `Decimal` throughout (correctly rounded `exp`)."""
        with localcontext(Context(prec=28, Emin=-999_999, Emax=999_999)):
            z = Decimal(self.a * total).scaleb(-12) + Decimal(self.b).scaleb(-6)
            p = Decimal(1) / (Decimal(1) + (-z).exp())
            return p.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)


class Head(Sparse):
    """One linear head: fires when `bias + Σ weights[f]·x_f ≥ threshold` (all micro)."""

    bias: int = 0
    threshold: int = 0
    weights: dict[str, int] = Field(default_factory=dict)
    calibration: Calibration | None = None
    """The head's display probability (`Calibration`); none in a model trained before it."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("calibration",)

    @field_validator("bias", "threshold", mode="before")
    @classmethod
    def _micro(cls, value: object) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) else to_micro(value)

    @field_validator("weights", mode="before")
    @classmethod
    def _micro_weights(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        return {
            str(name): (w if isinstance(w, int) and not isinstance(w, bool) else to_micro(w))
            for name, w in value.items()
        }


class BandHead(Head):
    """The band score: one sum, two thresholds (`hot` above `warm`)."""

    hot: int
    warm: int

    @field_validator("hot", "warm", mode="before")
    @classmethod
    def _micro_band(cls, value: object) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) else to_micro(value)

    @model_validator(mode="after")
    def _ordered(self) -> BandHead:
        if self.hot <= self.warm:
            raise ValueError("the band's hot threshold must be above its warm threshold")
        return self


class LanguageSpec(Frozen):
    """How one language is recognised and where its negation reaches."""

    markers: tuple[str, ...] = ()
    """Common words of the language (function words, greetings): its evidence."""
    letters: str = ""
    """Letters that point to the language (ß, ñ, ç …)."""
    negators: tuple[str, ...] = ()
    """Words that negate what follows them ("not", "kein", "pas", "sin")."""
    post_negators: tuple[str, ...] = ()
    """Phrases that negate what comes before them ("is not an issue", "ist kein Problem")."""
    breaks: tuple[str, ...] = (",", ".", ";", ":", "!", "?")
    self_openers: tuple[str, ...] = ()
    """Phrases after which the writer describes their own business ("we are a", "we sell"):
    a lexicon term there ("a legal services firm") is not a request, so it is its own feature
    (`lex:<name>:self`)."""
    self_stops: tuple[str, ...] = ()
    """Words that end such a description ("and", "need", "looking"): what follows is a request."""


class Lexicon(Frozen):
    """Domain knowledge: terms per language for one concept; symbols go under `any`."""

    negatable: bool = True
    terms: dict[str, tuple[str, ...]]

    @field_validator("terms")
    @classmethod
    def _no_blank_terms(cls, terms: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for language, listed in terms.items():
            if any(not term.strip() for term in listed):
                raise ValueError(f"lexicon terms for {language!r} must not be blank")
        return terms


class ReaderSpec(Frozen):
    """What the reader extracts. Changing it changes every feature: retrain after."""

    languages: dict[str, LanguageSpec]
    lexicons: dict[str, Lexicon]
    competitors: tuple[str, ...] = ()
    negation_window: int = Field(3, ge=1, le=10)
    fuzzy_min_length: int = Field(5, ge=3, le=20)
    words: bool = True
    pairs: bool = True
    company_sizes: tuple[int, ...] = (50, 200, 1000)
    sources: tuple[str, ...] = ("referral", "partner", "event", "website", "ads")


class ReaderModel(Sparse):
    """A trained reader: its spec, the words it knows (for typo repair) and its heads."""

    schema_version: Literal[1] = 1
    generator_version: str
    spec: ReaderSpec
    vocabulary: tuple[str, ...] = ()
    """Words seen in training; a word listed here is never "corrected" as a typo."""
    band: BandHead
    heads: dict[str, Head]
    training: dict[str, Any] = Field(default_factory=dict)
    """Where the weights came from: data hash, seed, library versions, cross-validation."""
    rules: tuple[Rule, ...] = ()
    """Consistency rules applied after the heads (see `Rule`). A model written before a rule
    existed does not list it, so its stored readings replay unchanged."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("rules",)

    @model_validator(mode="after")
    def _all_heads(self) -> ReaderModel:
        missing = [name for name in BINARY_HEADS if name not in self.heads]
        if missing:
            raise ValueError(f"the model lacks heads: {', '.join(missing)}")
        unknown = sorted(set(self.heads) - set(BINARY_HEADS))
        if unknown:
            raise ValueError(f"unknown heads: {', '.join(unknown)}")
        return self

    def head(self, name: str) -> Head:
        return self.band if name == "band" else self.heads[name]
