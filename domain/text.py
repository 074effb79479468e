"""Term matching shared by lead scoring, narrative resonance and the objection classifier.

Every lexicon in the policy is a list of *terms*: a word ("budget"), a phrase ("next month")
or a symbol ("$"). Two matching modes exist because the product and the notebook disagree:

- ``tokens`` (the product default) compares whole tokens. Words are compared by their
  Snowball English stem, so inflections match ("contracts" → contract, "cancelled" → cancel,
  "budgets" → budget) while substrings never do ("nextcloud" is not "next"). A derived word
  with a different stem does not match its root ("budgetary" stems to "budgetari", so it is not
  "budget"); lexicons list such words explicitly when they matter. A phrase matches a
  contiguous run of tokens; symbols compare exactly.
- ``substring`` is the notebook's naive ``term.lower() in text.lower()``. The seed policy
  selects it so the product reproduces the notebook on any input; it never negates.

Negation is deliberately simple so a reader can recompute it: in ``tokens`` mode a hit is
negated when a negator ends within ``window`` tokens before it with no break token (a comma,
"but", …) in between. "no budget" and "not urgent" are negated; "no, the budget is fine" is not.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Literal, Protocol

import snowballstemmer
from pydantic import Field, field_validator

from domain.model import Frozen

Matching = Literal["tokens", "substring"]

# A word with at most one inner apostrophe ("don't", "i'm"), or one non-space symbol ("$", "%").
_TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")
# Typographic apostrophes would otherwise split "don’t" into "don", "’", "t".
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


@functools.lru_cache(maxsize=65_536)
def _stem(word: str) -> str:
    """The Snowball stem of one lower-cased word, memoized: a pure function of its input.

    Snowball stemmers keep state while they work, so none is shared: a miss makes its own
    (about a microsecond), and hits cost a dictionary lookup instead of ~80 µs of stemming.
    """
    return str(snowballstemmer.stemmer("english").stemWord(word))


@functools.lru_cache(maxsize=16_384)
def match_keys(term: str) -> tuple[str, ...]:
    """A policy term's match keys (stems for words, the text for symbols), memoized:
    lexicons are small and fixed, so each term is tokenized once per process."""
    return _keys_of_text(term)


def _is_blank(term: str) -> bool:
    return not term.strip()


class NegationConfig(Frozen):
    """Which words negate a following term, how far back they reach, and what stops them."""

    enabled: bool = False
    negators: tuple[str, ...] = (
        "no",
        "not",
        "never",
        "without",
        "don't",
        "dont",
        "doesn't",
        "didn't",
        "isn't",
        "aren't",
        "wasn't",
        "won't",
        "can't",
        "cannot",
        "no longer",
    )
    window: int = Field(3, ge=1, le=20)
    breaks: tuple[str, ...] = (",", ".", ";", ":", "!", "?", "but", "however", "although")

    @field_validator("negators", "breaks")
    @classmethod
    def _no_blank_entries(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if any(_is_blank(value) for value in values):
            raise ValueError("negators and breaks must not contain blank entries")
        return values


class TermHit(Frozen):
    """A term found in a text; `negated` only when every occurrence of it was negated."""

    term: str
    negated: bool


class FeatureSpec(Frozen):
    """A binary feature: 1 when any of its terms occurs (and is not negated, if negatable)."""

    name: str = Field(min_length=1)
    terms: tuple[str, ...] = Field(min_length=1)
    negatable: bool = True

    @field_validator("terms")
    @classmethod
    def _no_blank_terms(cls, terms: tuple[str, ...]) -> tuple[str, ...]:
        if any(_is_blank(term) for term in terms):
            raise ValueError("a feature's terms must not contain blank entries")
        return terms


class FeatureValue(Frozen):
    """A feature's value with its evidence: the terms that fired and those that were negated."""

    value: int = Field(ge=0, le=1)
    hits: tuple[str, ...]
    negated: tuple[str, ...]


def _keys_of_text(text: str) -> tuple[str, ...]:
    # Message texts are not memoized (unbounded variety); their words' stems are.
    normalized = text.translate(_APOSTROPHES).casefold()
    return tuple(
        _stem(raw) if (raw[0].isalnum() or raw[0] == "_") else raw
        for raw in _TOKEN.findall(normalized)
    )


class _Negation:
    """Negators (indexed by their last key) and breaks, tokenized once per configuration."""

    def __init__(self, config: NegationConfig) -> None:
        self.window = config.window
        self.by_last_key: dict[str, list[tuple[str, ...]]] = {}
        for negator in config.negators:
            keys = match_keys(negator)
            if keys:
                self.by_last_key.setdefault(keys[-1], []).append(keys)
        self.breaks = {key for b in config.breaks for key in match_keys(b)}

    def negates(self, keys: tuple[str, ...], start: int) -> bool:
        """Whether a hit beginning at `start` is negated: walk back until a break or the window."""
        floor = max(0, start - self.window)
        for end in range(start - 1, floor - 1, -1):
            key = keys[end]
            if key in self.breaks:
                return False
            for negator in self.by_last_key.get(key, ()):
                first = end + 1 - len(negator)
                if first >= floor and keys[first : end + 1] == negator:
                    return True
        return False


@functools.lru_cache(maxsize=64)
def _negation_for(config: NegationConfig) -> _Negation:
    return _Negation(config)


class FeatureLike(Protocol):
    """Anything with a name, terms and a negatable flag (FeatureSpec, scoring's TextFeature)."""

    @property
    def name(self) -> str: ...
    @property
    def terms(self) -> tuple[str, ...]: ...
    @property
    def negatable(self) -> bool: ...


@functools.lru_cache(maxsize=1024)
def _needles(terms: tuple[str, ...], matching: Matching) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each term with what it matches, once per lexicon. Terms that match the same thing
    ("price", "pricing") are one piece of evidence, kept under the first of them."""
    result: list[tuple[str, tuple[str, ...]]] = []
    seen: set[tuple[str, ...]] = set()
    for term in terms:
        needle = (term.lower(),) if matching == "substring" else match_keys(term)
        if needle and needle not in seen:
            seen.add(needle)
            result.append((term, needle))
    return tuple(result)


class _Matcher:
    """One text, tokenized once, against which many terms are looked up."""

    def __init__(self, text: str, matching: Matching, negation: NegationConfig | None) -> None:
        self._matching: Matching = matching
        self._lowered = text.lower()
        self._keys = _keys_of_text(text) if matching == "tokens" else ()
        self._starts: dict[str, list[int]] = {}
        for index, key in enumerate(self._keys):
            self._starts.setdefault(key, []).append(index)
        self._negation: _Negation | None = None
        if negation is not None and negation.enabled and matching == "tokens":
            self._negation = _negation_for(negation)

    def find(self, terms: Sequence[str], *, negatable: bool = True) -> tuple[TermHit, ...]:
        hits: list[TermHit] = []
        for term, needle in _needles(tuple(terms), self._matching):
            if self._matching == "tokens" and needle[0] not in self._starts:
                continue
            hit = self._find_one(term, needle, negatable=negatable)
            if hit is not None:
                hits.append(hit)
        return tuple(hits)

    def _find_one(self, term: str, needle: tuple[str, ...], *, negatable: bool) -> TermHit | None:
        if self._matching == "substring":
            return TermHit(term=term, negated=False) if needle[0] in self._lowered else None
        if not needle:
            return None
        width = len(needle)
        starts = [
            start
            for start in self._starts.get(needle[0], ())
            if self._keys[start : start + width] == needle
        ]
        if not starts:
            return None
        negation = self._negation if negatable else None
        negated = negation is not None and all(negation.negates(self._keys, s) for s in starts)
        return TermHit(term=term, negated=negated)


def find_terms(
    text: str,
    terms: Sequence[str],
    *,
    matching: Matching,
    negation: NegationConfig | None = None,
) -> tuple[TermHit, ...]:
    """The terms that occur in `text`, in the order given, each reported once.

    Terms that match the same thing (same stems in ``tokens`` mode, e.g. "price" and
    "pricing") are reported once, under the first of them, so evidence is never double-counted.
    A term occurring several times is negated only if every occurrence is negated: "no budget
    yet, but the budget is approved" still has a budget.
    """
    return _Matcher(text, matching, negation).find(terms)


def extract_features(
    text: str,
    specs: Sequence[FeatureLike],
    *,
    matching: Matching,
    negation: NegationConfig | None = None,
) -> dict[str, FeatureValue]:
    """Binary features with their evidence, keyed by spec name in spec order.

    The text is tokenized once for all specs. A spec that is not negatable counts every hit.
    """
    matcher = _Matcher(text, matching, negation)
    values: dict[str, FeatureValue] = {}
    for spec in specs:
        found = matcher.find(spec.terms, negatable=spec.negatable)
        hits = tuple(hit.term for hit in found if not hit.negated)
        negated = tuple(hit.term for hit in found if hit.negated)
        values[spec.name] = FeatureValue(value=1 if hits else 0, hits=hits, negated=negated)
    return values


class _JoinedPlan:
    """How `extract_features_of_texts` reads joined texts one text at a time, for one lexicon.

    Tokenizing is per character and per token (apostrophes, case folding, the token pattern,
    stems: none looks past white space), so with white space at both ends of the separator
    the joined text's keys are each text's keys with the separator's between them. A match lies within one text when no needle (term) holds a
    separator key; a negation walk-back stops at the separator when the separator's last key
    is a break and no negator holds a separator key (a negator ending in a text then starts
    in it too). Then a term occurs in the joined text exactly where it occurs in one of the
    texts, each occurrence negated or not exactly as there, so it is heard when some text
    heard it and negated when some text has it negated and none heard it ("negated only when
    every occurrence is"). A lexicon where that does not hold (a term or negator with a
    separator key, no break in the separator, `substring` matching, which compares
    characters across the join) is read from the joined text.

    A text's outcome is two bit sets over the lexicon's terms (heard, negated), so joining
    is two ORs a text; the features of an outcome are built once.
    """

    def __init__(
        self,
        specs: tuple[FeatureLike, ...],
        negation: NegationConfig | None,
        separator: str,
    ) -> None:
        self.specs = specs
        self.negation = negation
        self.needles = tuple(_needles(tuple(spec.terms), "tokens") for spec in specs)
        self.texts: dict[str, tuple[int, int]] = {}
        self.features: dict[tuple[int, int], dict[str, FeatureValue]] = {}
        gap = _keys_of_text(separator)
        self.decomposes = (
            separator[:1].isspace() and separator[-1:].isspace() and bool(gap)
        ) and not any(
            key in gap for needles in self.needles for _, needle in needles for key in needle
        )
        if self.decomposes and negation is not None and negation.enabled:
            rules = _negation_for(negation)
            self.decomposes = gap[-1] in rules.breaks and not any(
                key in gap for negators in rules.by_last_key.values() for n in negators for key in n
            )

    def outcome(self, text: str) -> tuple[int, int]:
        """The terms `text` has heard and negated (bit sets in spec and term order),
        memoized: a conversation's earlier messages are read again at each later one."""
        found = self.texts.get(text)
        if found is None:
            matcher = _Matcher(text, "tokens", self.negation)
            starts = matcher._starts
            heard = negated = 0
            bit = 1
            for spec, needles in zip(self.specs, self.needles, strict=True):
                for term, needle in needles:
                    if needle[0] in starts:
                        hit = matcher._find_one(term, needle, negatable=spec.negatable)
                        if hit is not None:
                            if hit.negated:
                                negated |= bit
                            else:
                                heard |= bit
                    bit <<= 1
            found = (heard, negated)
            if len(self.texts) >= _KEPT:
                self.texts.clear()  # a bound on memory; outcomes are recomputed identically
            self.texts[text] = found
        return found

    def values(self, heard: int, negated: int) -> dict[str, FeatureValue]:
        """The features of an outcome, as `extract_features` builds them (a new dict; the
        values are immutable and shared)."""
        key = (heard, negated & ~heard)
        found = self.features.get(key)
        if found is None:
            found = {}
            bit = 1
            for spec, needles in zip(self.specs, self.needles, strict=True):
                hits: list[str] = []
                negated_terms: list[str] = []
                for term, _ in needles:
                    if heard & bit:
                        hits.append(term)
                    elif negated & bit:
                        negated_terms.append(term)
                    bit <<= 1
                found[spec.name] = FeatureValue(
                    value=1 if hits else 0, hits=tuple(hits), negated=tuple(negated_terms)
                )
            if len(self.features) >= _KEPT:
                self.features.clear()
            self.features[key] = found
        return dict(found)


_KEPT = 4096

_PLANS: dict[
    tuple[int, str], tuple[tuple[FeatureLike, ...], NegationConfig | None, _JoinedPlan]
] = {}


def _plan(
    specs: tuple[FeatureLike, ...], negation: NegationConfig | None, separator: str
) -> _JoinedPlan:
    """The plan for a policy's lexicon, kept by the identity of its specs (a policy's tuple
    lives as long as the policy) and checked against it, like `reading._heads`."""
    key = (id(specs), separator)
    entry = _PLANS.get(key)
    if entry is not None and entry[0] is specs and entry[1] == negation:
        return entry[2]
    plan = _JoinedPlan(specs, negation, separator)
    while len(_PLANS) >= 16:
        _PLANS.pop(next(iter(_PLANS)))
    _PLANS[key] = (specs, negation, plan)
    return plan


JoinedOutcome = tuple[object, int, int]
"""Which lexicon (an opaque identity), and the terms heard and negated over the texts."""


def joined_outcome(
    texts: Sequence[str],
    separator: str,
    specs: tuple[FeatureLike, ...],
    *,
    matching: Matching,
    negation: NegationConfig | None = None,
) -> JoinedOutcome | None:
    """What `specs` find in `separator.join(texts)`, from each text's own outcome; None
    when the lexicon cannot be read text by text (`_JoinedPlan`). Equal outcomes of the
    same lexicon have equal features (`domain.narrative` keeps its audits by them)."""
    if matching != "tokens" or not texts:
        return None
    plan = _plan(specs, negation, separator)
    if not plan.decomposes:
        return None
    heard = negated = 0
    for text in texts:
        more_heard, more_negated = plan.outcome(text)
        heard |= more_heard
        negated |= more_negated
    return plan, heard, negated & ~heard


def extract_features_of_texts(
    texts: Sequence[str],
    separator: str,
    specs: tuple[FeatureLike, ...],
    *,
    matching: Matching,
    negation: NegationConfig | None = None,
) -> dict[str, FeatureValue]:
    """`extract_features(separator.join(texts), specs, …)`, equal to it value for value, from
    each text's own matches (`_JoinedPlan`): a conversation's narrative is over all of its
    messages, and re-tokenizing all of them at each new message made a message's cost grow
    with the conversation's length."""
    outcome = joined_outcome(texts, separator, specs, matching=matching, negation=negation)
    if outcome is None:
        return extract_features(separator.join(texts), specs, matching=matching, negation=negation)
    plan, heard, negated = outcome
    assert isinstance(plan, _JoinedPlan)
    return plan.values(heard, negated)
