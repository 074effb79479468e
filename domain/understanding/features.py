"""From a message to named integer features, with the evidence behind each.

Feature names say where they come from, so an audit line reads on its own:

- `lang:<xx>`            the identified language (none when undetermined);
- `lex:<name>`           a term of the policy's lexicon `name` occurs, not negated;
- `lex:<name>:not`       a term of it occurs inside a negation ("no budget", "price isn't
                         the issue": negators reach forwards and, for phrases like "is not an
                         issue", backwards);
- `typo:<name>`          a lexicon word was found only after repairing a one-letter typo
                         ("budjet" → budget); the repaired word also feeds the features below;
- `w:<key>` / `n:<key>`  a word (its stem) outside / inside a negation;
- `p:<key>_<key>`        two adjacent words;
- `ent:…`                entities: money (and its magnitude), dates (and how soon), team size,
                         a competitor's name;
- `shape:…`              a question, a very short or a long message;
- `meta:…`               the lead's metadata (company size at least N, source).

Every value is 1 (present); absent features are not listed. Extraction reads no clock: the
decision date is passed in, so a replay extracts the same features.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from domain.understanding.entities import Entities, read_entities
from domain.understanding.model import ReaderModel, ReaderSpec
from domain.understanding.text import (
    LANGUAGES,
    UNDETERMINED,
    is_word,
    key,
    language_of,
    phrase_keys,
    tokens,
)

Metadata = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Extraction:
    """A message's features, language and entities, with the evidence for each feature."""

    language: str
    features: dict[str, int]
    entities: Entities
    evidence: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Token:
    """What reading needs of one distinct token, worked out once per spec: its typo repair
    (the word it stands for and the `typo:` features with their evidence), whether it is a
    word or a number, the languages it is a marker word of, and per language (in `LANGUAGES`
    order) its key, its key as a word feature ("#" for a number) and that feature's names
    outside and inside a negation (`w:…`, `n:…`)."""

    text: str
    typos: tuple[tuple[str, str], ...]
    word: bool
    digit: bool
    keys: tuple[str, ...]
    marks: tuple[str, ...]
    word_keys: tuple[str, ...]
    plain: tuple[str, ...]
    negated: tuple[str, ...]
    terms: tuple[_Candidates | None, ...]
    """Per language, the lexicon terms whose first key is this token's key (None: none)."""
    pair_left: tuple[str, ...] = ()
    """Per language, the start of a pair feature with this word first (`p:<key>_`)."""


@dataclass(frozen=True, slots=True)
class _Term:
    lexicon: str
    term: str
    keys: tuple[str, ...]
    negatable: bool
    name: str = ""
    negated_name: str = ""
    self_name: str = ""
    width: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", len(self.keys))
        # The feature names a match yields, built once rather than per match.
        object.__setattr__(self, "name", f"lex:{self.lexicon}")
        object.__setattr__(self, "negated_name", f"lex:{self.lexicon}:not")
        object.__setattr__(self, "self_name", f"lex:{self.lexicon}:self")


class _Candidates:
    """The lexicon terms starting with one key, in lexicon order, grouped by what the next
    key must be: a message's words pick their few possible terms with one dict lookup
    instead of comparing every phrase that starts with "we" or "no"."""

    __slots__ = ("by_next", "single")

    def __init__(self, terms: list[_Term]) -> None:
        self.single = tuple(term for term in terms if len(term.keys) == 1)
        """The one-word terms: all that can match at a message's last word."""
        self.by_next = {
            following: tuple(
                term for term in terms if len(term.keys) == 1 or term.keys[1] == following
            )
            for following in {term.keys[1] for term in terms if len(term.keys) > 1}
        }
        """Per second key, the terms that may match when it follows (one-word terms too)."""


class _LanguageIndex:
    """One language's lexicon terms (indexed by first key), negators and breaks."""

    def __init__(self, spec: ReaderSpec, language: str) -> None:
        self.language = language
        profile = spec.languages.get(language)
        self.terms_by_first: dict[str, list[_Term]] = {}
        for name, lexicon in spec.lexicons.items():
            for listed_language in (language, "any"):
                for term in lexicon.terms.get(listed_language, ()):
                    term_keys = phrase_keys(term, language)
                    if term_keys:
                        self.terms_by_first.setdefault(term_keys[0], []).append(
                            _Term(name, term, term_keys, lexicon.negatable)
                        )
        self.candidates = {
            first: _Candidates(terms) for first, terms in self.terms_by_first.items()
        }
        self.negators = [phrase_keys(n, language) for n in (profile.negators if profile else ())]
        self.post_negators = [
            phrase_keys(n, language) for n in (profile.post_negators if profile else ())
        ]
        self.breaks = {
            k for b in (profile.breaks if profile else ()) for k in phrase_keys(b, language)
        }
        self.openers = [phrase_keys(n, language) for n in (profile.self_openers if profile else ())]
        self.opener_firsts = {n[0] for n in self.openers if n}
        self.self_stops = {
            k
            for stop in (profile.self_stops if profile else ())
            for k in phrase_keys(stop, language)
        } | self.breaks
        self.negator_firsts = {n[0] for n in self.negators if n}
        self.post_firsts = {n[0] for n in self.post_negators if n}
        self.scope_firsts = frozenset(self.negator_firsts | self.post_firsts)
        """Either kind's first keys: one test tells most messages have no negation."""
        self.negators_at = _by_first(self.negators)
        self.post_negators_at = _by_first(self.post_negators)
        self.openers_at = _by_first(self.openers)


def _by_first(phrases: list[tuple[str, ...]]) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Per first key, the phrases (in their order) that can match where it stands: those
    starting with it, and an empty phrase, which matches anywhere."""
    return {
        first: tuple(phrase for phrase in phrases if not phrase or phrase[0] == first)
        for first in {phrase[0] for phrase in phrases if phrase}
    }


class CompiledSpec:
    """A spec made ready to read with: indexes per language, the typo index, markers."""

    def __init__(self, spec: ReaderSpec, vocabulary: Iterable[str]) -> None:
        self.spec = spec
        self.indexes = {language: _LanguageIndex(spec, language) for language in LANGUAGES}
        self.markers = {
            language: frozenset(profile.markers)
            for language, profile in spec.languages.items()
            if language in LANGUAGES
        }
        self.letters = {
            language: profile.letters
            for language, profile in spec.languages.items()
            if language in LANGUAGES and profile.letters
        }
        self.marker_languages = tuple(self.markers)
        self.vocabulary = frozenset(vocabulary)
        self.lexicon_words: dict[str, set[str]] = {}
        for name, lexicon in spec.lexicons.items():
            for listed in lexicon.terms.values():
                for term in listed:
                    for word in tokens(term):
                        if is_word(word) and len(word) >= spec.fuzzy_min_length:
                            self.lexicon_words.setdefault(word, set()).add(name)
        self.known = self.vocabulary | self.lexicon_words.keys()
        self.deletions: dict[str, set[str]] = {}
        for word in self.lexicon_words:
            for variant in (word, *_deletions(word)):
                self.deletions.setdefault(variant, set()).add(word)
        self.competitors = spec.competitors
        self.seen: dict[str, _Token] = {}

    def token(self, raw: str) -> _Token:
        """`raw`'s record, memoized: a running bot meets the same words again and again."""
        found = self.seen.get(raw)
        if found is not None:
            return found
        fixed = (
            self.repair(raw)
            if len(raw) >= self.spec.fuzzy_min_length and raw not in self.known and raw.isalpha()
            else None
        )
        typos: tuple[tuple[str, str], ...] = ()
        if fixed is not None:
            typos = tuple(
                (f"typo:{name}", f"{raw}→{fixed}") for name in sorted(self.lexicon_words[fixed])
            )
        text = fixed if fixed is not None else raw
        word = is_word(text)
        keys = tuple(key(text, language) for language in LANGUAGES)
        word_keys = ("#",) * len(LANGUAGES) if text.isdigit() else keys
        marks = (
            tuple(language for language, words_of in self.markers.items() if raw in words_of)
            if word
            else ()
        )
        record = _Token(
            text=text,
            typos=typos,
            word=word,
            digit=text.isdigit(),
            keys=keys,
            marks=marks,
            word_keys=word_keys,
            plain=tuple("w:" + k for k in word_keys),
            negated=tuple("n:" + k for k in word_keys),
            terms=tuple(
                self.indexes[language].candidates.get(k)
                for language, k in zip(LANGUAGES, keys, strict=True)
            ),
            pair_left=tuple("p:" + k + "_" for k in word_keys),
        )
        if len(self.seen) >= _TOKENS_KEPT:
            self.seen.clear()  # a bound on memory; records are recomputed identically
        self.seen[raw] = record
        return record

    def repair(self, word: str) -> str | None:
        """The lexicon word `word` misspells by one letter (insert, drop, change), if any.

        Known words are never repaired; several candidates resolve to the alphabetically
        first, so the choice is stable.
        """
        if len(word) < self.spec.fuzzy_min_length or word in self.known or not word.isalpha():
            return None
        found: set[str] = set(self.deletions.get(word, ()))
        for variant in _deletions(word):
            found.update(self.deletions.get(variant, ()))
        found.discard(word)
        return min(found) if found else None


_LANGUAGE_POSITION = {language: position for position, language in enumerate(LANGUAGES)}


def _deletions(word: str) -> list[str]:
    return [word[:i] + word[i + 1 :] for i in range(len(word))]


_TOKENS_KEPT = 200_000

# Compiling a spec costs milliseconds; a model is read many times. Keyed by identity and kept
# alive with the entry, like the flow's index (`domain.flow`).
_COMPILED: dict[int, tuple[ReaderModel, CompiledSpec]] = {}
_COMPILED_KEPT = 8


def compiled(model: ReaderModel) -> CompiledSpec:
    entry = _COMPILED.get(id(model))
    if entry is not None and entry[0] is model:
        return entry[1]
    result = CompiledSpec(model.spec, model.vocabulary)
    while len(_COMPILED) >= _COMPILED_KEPT:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[id(model)] = (model, result)
    return result


_FINGERPRINTS: dict[int, tuple[ReaderModel, str]] = {}


def fingerprint(model: ReaderModel) -> str:
    """What the model's features depend on (its spec and vocabulary), as a SHA-256: two models
    with the same fingerprint extract the same features from the same message, so a replay
    under retrained weights can reuse the features a `message_read` recorded."""
    entry = _FINGERPRINTS.get(id(model))
    if entry is not None and entry[0] is model:
        return entry[1]
    text = json.dumps(
        {"spec": model.spec.model_dump(mode="json"), "vocabulary": list(model.vocabulary)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    while len(_FINGERPRINTS) >= _COMPILED_KEPT:
        _FINGERPRINTS.pop(next(iter(_FINGERPRINTS)))
    _FINGERPRINTS[id(model)] = (model, digest)
    return digest


def _negation_scope(keys_: list[str], index: _LanguageIndex, window: int) -> list[bool]:
    """Which positions a negation covers: after a negator, or before a post-negator.

    At a position holding a negator's first key only the negators starting with that key
    are tried."""
    n = len(keys_)
    scope = [False] * n
    firsts = index.scope_firsts
    if firsts.isdisjoint(keys_):
        return scope
    breaks = index.breaks
    negators_at, post_at = index.negators_at, index.post_negators_at
    for i, k in enumerate(keys_):
        if k not in firsts:
            continue
        for negator in negators_at.get(k, ()):
            end = i + len(negator)
            if tuple(keys_[i:end]) == negator:
                for j in range(end, min(n, end + window)):
                    if keys_[j] in breaks:
                        break
                    scope[j] = True
        for negator in post_at.get(k, ()):
            if tuple(keys_[i : i + len(negator)]) == negator:
                for j in range(i - 1, max(-1, i - 1 - window), -1):
                    if keys_[j] in breaks:
                        break
                    scope[j] = True
    return scope


# "25k", "1.5M", "60 000": an amount written without a currency is not money (it may be
# users or seats), but the learner may still weigh it.
_BARE_AMOUNT = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)?\s?(?:k|m|mio|mn)\b", re.IGNORECASE)


SELF_WINDOW = 7
"""How many words after "we are a" / "we sell" still describe the writer's own business."""


def _self_scope(keys_: list[str], index: _LanguageIndex) -> list[bool] | None:
    """Which positions describe the writer's own business; None when nothing does."""
    firsts = index.opener_firsts
    if firsts.isdisjoint(keys_):
        return None
    n = len(keys_)
    scope = [False] * n
    stops, openers_at = index.self_stops, index.openers_at
    for i, k in enumerate(keys_):
        if k not in firsts:
            continue
        for opener in openers_at[k]:
            end = i + len(opener)
            if tuple(keys_[i:end]) == opener:
                for j in range(end, min(n, end + SELF_WINDOW)):
                    if keys_[j] in stops:
                        break
                    scope[j] = True
    return scope


def _magnitudes(
    features: dict[str, int], entities: Entities, today: date, text: str, digits: bool
) -> None:
    """The `ent:` features; `digits` False says the text has no digit (no bare amount)."""
    if not entities.money and digits and _BARE_AMOUNT.search(text):
        features["ent:amount"] = 1
    if entities.money:
        features["ent:money"] = 1
        largest = max(m.amount for m in entities.money)
        for floor, name in ((1_000, "1k"), (10_000, "10k"), (100_000, "100k")):
            if largest >= floor:
                features[f"ent:money_{name}"] = 1
    if entities.dates:
        features["ent:date"] = 1
        for mention in entities.dates:
            if mention.end < today:
                features["ent:date_past"] = 1
                continue
            ahead = (mention.start - today).days
            for days in (30, 120, 365):
                if ahead <= days:
                    features[f"ent:date_{days}d"] = 1
    if entities.team_size is not None:
        features["ent:team"] = 1
        for floor in (10, 50, 200):
            if entities.team_size >= floor:
                features[f"ent:team_{floor}"] = 1
    if entities.competitor is not None:
        features["ent:competitor"] = 1


def _metadata(features: dict[str, int], spec: ReaderSpec, metadata: Metadata | None) -> None:
    if not metadata:
        return
    size = metadata.get("company_size")
    if isinstance(size, int) and not isinstance(size, bool):
        for floor in spec.company_sizes:
            if size >= floor:
                features[f"meta:size_{floor}"] = 1
    source = metadata.get("source")
    if isinstance(source, str):
        normalized = source.strip().casefold()
        if normalized in spec.sources:
            features[f"meta:source_{normalized}"] = 1


def _lexicon(
    features: dict[str, int],
    evidence: dict[str, list[str]],
    hits: list[tuple[int, _Candidates]],
    keys_: list[str],
    index: _LanguageIndex,
    scope: list[bool] | None,
    window: int = 0,
) -> None:
    """The `lex:` features of one language's terms starting at `hits`' positions, negated inside `scope` (worked out here, with `window`, when not given and a term is
    negatable) and marked `:self` where the words describe the writer's own business."""
    own: list[bool] | None = None
    own_known = False  # worked out at the first match that needs it (most never do)
    last = len(keys_) - 1
    for start, group in hits:
        candidates = (
            group.by_next.get(keys_[start + 1], group.single) if start < last else group.single
        )
        for term in candidates:
            # The first key matched by the index and the second by `by_next`.
            width = term.width
            if width > 2 and tuple(keys_[start : start + width]) != term.keys:
                continue
            if term.negatable and scope is None:
                scope = _negation_scope(keys_, index, window)
            if term.negatable and scope is not None and scope[start]:
                name = term.negated_name
            else:
                if not own_known:
                    own, own_known = _self_scope(keys_, index), True
                name = term.self_name if own is not None and own[start] else term.name
            features[name] = 1
            found = evidence.get(name)
            if found is None:
                evidence[name] = [term.term]
            elif term.term not in found:
                found.append(term.term)


def _words(
    features: dict[str, int],
    records: list[_Token],
    scope: list[bool],
    position: int,
    spec: ReaderSpec,
) -> None:
    """The word (`w:`/`n:`) and adjacent-pair (`p:`) features, in the text's order."""
    words, pairs = spec.words, spec.pairs
    if words and pairs and True not in scope:
        # The common case, one tight loop: no word is negated.
        left: str | None = None  # the previous word's `p:<key>_`
        for record in records:
            if not record.word:
                left = None
                continue
            features[record.plain[position]] = 1
            if left is not None:
                features[left + record.word_keys[position]] = 1
            left = record.pair_left[position]
        return
    any_negated = True in scope
    previous: str | None = None
    for record, negated in zip(records, scope, strict=True):
        if not record.word:
            previous = None
            continue
        if words:
            features[(record.negated if any_negated and negated else record.plain)[position]] = 1
        word_key = record.word_keys[position]
        if pairs and previous is not None:
            features["p:" + previous + "_" + word_key] = 1
        previous = word_key


SHAPE_FEATURES = ("shape:question", "shape:short", "shape:long")
"""Every `shape:` feature `extract` writes: what one message looks like, not what the
conversation says (`reading.aggregate` keeps only the latest message's)."""


def extract(
    text: str,
    model: ReaderModel,
    *,
    today: date,
    metadata: Metadata | None = None,
) -> Extraction:
    """The features of one message under `model`'s spec, at the decision date `today`."""
    spec_index = compiled(model)
    spec = spec_index.spec
    raw = tokens(text)
    seen = spec_index.seen
    try:
        records = list(map(seen.__getitem__, raw))  # warm: every token seen before
    except KeyError:
        records = [seen.get(token) or spec_index.token(token) for token in raw]
    # One pass for what the language and the typo features need. (A plain loop: on this
    # interpreter its attribute reads of a slotted record beat `map(attrgetter(…))`.)
    marked: dict[str, tuple[str, ...]] = {}
    typos: list[tuple[str, str]] = []
    word_count = 0
    for token, record in zip(raw, records, strict=True):
        if record.word:
            word_count += 1
            if record.marks:
                marked[token] = record.marks
            if record.typos:
                typos.extend(record.typos)
    language = language_of(marked, spec_index.marker_languages, spec_index.letters, text)
    features: dict[str, int] = {}
    evidence: dict[str, list[str]] = {}
    if language != UNDETERMINED:
        features[f"lang:{language}"] = 1

    # Typo repair ("budjet" → budget): the repaired word replaces the typo everywhere.
    for name, shown in typos:
        features[name] = 1
        evidence.setdefault(name, []).append(shown)

    primary = language if language != UNDETERMINED else "en"
    lexicon_languages = (
        LANGUAGES
        if language == UNDETERMINED
        else ((primary,) if primary == "en" else (primary, "en"))
    )
    window = spec.negation_window
    primary_scope: list[bool] = []
    for lang in lexicon_languages:
        index = spec_index.indexes[lang]
        position = _LANGUAGE_POSITION[lang]
        hits = [
            (start, group)
            for start, record in enumerate(records)
            if (group := record.terms[position]) is not None
        ]
        if lang == primary:
            keys_ = [record.keys[position] for record in records]
            primary_scope = _negation_scope(keys_, index, window)
            if hits:
                _lexicon(features, evidence, hits, keys_, index, primary_scope)
        elif hits:
            keys_ = [record.keys[position] for record in records]
            _lexicon(features, evidence, hits, keys_, index, None, window)

    if spec.words or spec.pairs:
        _words(features, records, primary_scope, _LANGUAGE_POSITION[primary], spec)

    question, short, long = SHAPE_FEATURES
    if "?" in raw or "¿" in raw:
        features[question] = 1
    if word_count <= 3:
        features[short] = 1
    elif word_count >= 40:
        features[long] = 1

    entities, has_digit = read_entities(
        text, language=language, today=today, competitors=spec_index.competitors
    )
    # An ASCII text without 0-9 has no digit `_BARE_AMOUNT` could start at.
    _magnitudes(features, entities, today, text, has_digit or not text.isascii())
    _metadata(features, spec, metadata)
    return Extraction(
        language=language,
        features=features,
        entities=entities,
        evidence={name: tuple(hits) for name, hits in evidence.items()},
    )
