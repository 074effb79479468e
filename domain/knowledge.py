"""The knowledge base: answers to product questions, chosen by retrieval, with their claims checked.

A policy may name a knowledge file (`[knowledge] file`, `sha256`), as it names its reader's
model: the loader checks the hash, validates the file into a `KnowledgeBase` and builds its
BM25 index with a pinned library (`bot/knowledge_index.py`), handing both in. So the entries,
their wording and every retrieval weight are part of the policy's meaning: its version hash
covers them and a stored policy replays with exactly the answers and weights it decided with.

Each entry has an id, example questions and an answer template per language, and the claims
it makes. An answer never states a figure in its own words: a price is the placeholder
`{price_<SKU>}`, rendered from the catalog's integer minor units exactly as quotes show it,
and any other figure (a percentage, a date, a duration, an SLA) is `{fact_<name>}`, a fact
the policy declares under `[knowledge.facts]`; `salesbot check` refuses an answer that does
otherwise (`domain.persona.answer_problems`), and the bot withholds it if it is ever asked
to say one.

Retrieval is deterministic and exact: the index holds, per language, each term's BM25
weight in every entry's document (the entry's examples in that language) as integer
millionths; a question's score for an entry is the sum of the weights of its distinct terms,
compared with the policy's `min_score` as integers. Terms are the reader's own keys
(`domain.understanding.text`: case-folded, Snowball-stemmed per language, accents removed),
so "Testphase", "testphasen" and "Téstphase" meet.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator, model_validator

from domain.model import Frozen
from domain.money import format_amount
from domain.persona import answer_problems, render_template
from domain.quotes import CatalogConfig
from domain.understanding.model import REASONS, from_micro, to_micro
from domain.understanding.text import is_word, key, known_languages, tokens

QUESTION_INTENTS = frozenset({"question", "pricing_question"})
"""The reader's intents that send a message to the knowledge base."""

PRICE_PREFIX = "price_"
FACT_PREFIX = "fact_"

_ENTRY_ID = r"^[a-z][a-z0-9_]{0,63}$"


class KnowledgeEntry(Frozen):
    """One answer the bot may give, the questions it answers, and what it claims.

    `handoff` names a needs-a-human reason (`legal`, `privacy_security`, …): such an entry's
    answer tells the prospect a person will take it up, and the conversation goes to a
    human with that reason — for questions the bot must not answer itself (a security
    review, contract terms).
    """

    id: str = Field(pattern=_ENTRY_ID)
    claims: tuple[str, ...] = ()
    handoff: str | None = None
    examples: dict[str, tuple[str, ...]]
    answers: dict[str, str]

    @field_validator("handoff")
    @classmethod
    def _is_a_reason(cls, value: str | None) -> str | None:
        if value is not None and value not in REASONS:
            raise ValueError(f"handoff must be one of {', '.join(REASONS)}, got {value!r}")
        return value


class KnowledgeBase(Frozen):
    """The content of a knowledge file: its languages (the first is the fallback), the
    words for a question it cannot answer, and its entries."""

    schema_version: Literal[1] = 1
    languages: tuple[str, ...] = Field(min_length=1)
    clarify: dict[str, str]
    """Asked when a question scores below the threshold: what would the prospect like to know?"""
    person: dict[str, str]
    """Said when a person takes up a question the bot could not answer."""
    entries: tuple[KnowledgeEntry, ...] = Field(min_length=1)

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_languages(value)

    @model_validator(mode="after")
    def _ids_are_unique(self) -> KnowledgeBase:
        seen: set[str] = set()
        for entry in self.entries:
            if entry.id in seen:
                raise ValueError(f"the entry id {entry.id!r} is used twice")
            seen.add(entry.id)
        return self

    def entry(self, entry_id: str) -> KnowledgeEntry:
        for entry in self.entries:
            if entry.id == entry_id:
                return entry
        raise KeyError(entry_id)


class Fact(Frozen):
    """A figure the business stands behind (a trial length, an uptime commitment), and the
    claim an answer makes by citing it. `value` is said exactly as written, in every
    language, so keep words out of it ("14", "99.9%", "08:00–18:00 CET")."""

    value: str = Field(min_length=1, max_length=200)
    claim: str = Field(min_length=1)


class KnowledgeIndex(Frozen):
    """BM25 weights by language, term and entry, in integer millionths (see the module doc).

    `method` names the library, its version and its parameters, so an audit can say how the
    weights were computed.
    """

    method: str
    postings: dict[str, dict[str, dict[str, int]]]


class KnowledgeConfig(Frozen):
    """The policy's `[knowledge]` table with the file's content and index attached."""

    file: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    min_score: Decimal
    """A question scoring below this is not answered from the knowledge base."""
    below_threshold: Literal["clarify", "person"] = "clarify"
    """`clarify`: ask what the prospect means, and hand a second unanswered question in a
    row to a person; `person`: hand every unanswered question to a person at once."""
    pricing_entry: str | None = None
    """The entry a pricing question gets when its words match no entry well enough (the
    plans with their catalog prices): "how much?" deserves the price list, not a question."""
    allowed_claims: tuple[str, ...] = ()
    facts: dict[str, Fact] = Field(default_factory=dict)
    base: KnowledgeBase
    index: KnowledgeIndex

    @field_validator("min_score")
    @classmethod
    def _a_positive_score(cls, value: Decimal) -> Decimal:
        to_micro(value)  # at most six places, finite
        if value <= 0:
            raise ValueError("min_score must be above 0 (a question sharing no term scores 0)")
        return value

    @field_validator("facts")
    @classmethod
    def _fact_names(cls, value: dict[str, Fact]) -> dict[str, Fact]:
        for name in value:
            if not (name.isidentifier() and name.isascii()):
                raise ValueError(f"the fact name {name!r} must be a plain identifier")
        return value

    @model_validator(mode="after")
    def _index_matches_base(self) -> KnowledgeConfig:
        ids = {entry.id for entry in self.base.entries}
        if self.pricing_entry is not None and self.pricing_entry not in ids:
            raise ValueError(f"pricing_entry {self.pricing_entry!r} is not an entry of the file")
        for language, postings in self.index.postings.items():
            if language not in self.base.languages:
                raise ValueError(f"the index has language {language!r}, the file does not")
            for term, weights in postings.items():
                unknown = set(weights) - ids
                if unknown:
                    raise ValueError(f"the index term {term!r} names unknown entries {unknown}")
        return self

    @property
    def threshold(self) -> int:
        """`min_score` in millionths."""
        return to_micro(self.min_score)


class Match(Frozen):
    """The best entry for a question: its retrieval score (millionths), the language whose
    examples it was found in, and each matching term's weight (they add up to the score)."""

    entry_id: str
    language: str
    score: int
    terms: tuple[tuple[str, int], ...]


def document_terms(
    text: str, language: str, keep: Callable[[str], bool] | None = None
) -> list[str]:
    """A text's terms in `language`, in order and repeated as often as they occur: the
    reader's keys of its words (symbols dropped, and the words `keep` refuses). The loader
    indexes examples with this, leaving out stop words."""
    return [
        key(word, language)
        for word in tokens(text)
        if is_word(word) and (keep is None or keep(word))
    ]


def query_terms(text: str, language: str) -> tuple[str, ...]:
    """A question's distinct terms in `language`, in order of first occurrence: each counts
    once however often it is repeated, so "price price price" is not a better question."""
    return tuple(dict.fromkeys(document_terms(text, language)))


def retrieve(config: KnowledgeConfig, text: str, language: str) -> Match | None:
    """The entry whose examples best match `text`, or None when no term matches at all.

    A message in a language the knowledge base has is searched in that language's examples;
    otherwise (the reader could not tell, "und") in each language's, and the best wins.
    Ties go to the earlier language, then to the earlier entry in the file, so the result
    is a pure function of the text and the policy.
    """
    postings = config.index.postings
    order = {entry.id: position for position, entry in enumerate(config.base.entries)}
    searched = (language,) if language in postings else config.base.languages
    best: Match | None = None
    best_key: tuple[int, int, int] | None = None
    for rank, searched_language in enumerate(searched):
        table = postings.get(searched_language, {})
        totals: dict[str, int] = {}
        contributions: dict[str, list[tuple[str, int]]] = {}
        for term in query_terms(text, searched_language):
            for entry_id, weight in table.get(term, {}).items():
                totals[entry_id] = totals.get(entry_id, 0) + weight
                contributions.setdefault(entry_id, []).append((term, weight))
        for entry_id, total in totals.items():
            candidate = (total, -rank, -order[entry_id])
            if best_key is None or candidate > best_key:
                best_key = candidate
                best = Match(
                    entry_id=entry_id,
                    language=searched_language,
                    score=total,
                    terms=tuple(contributions[entry_id]),
                )
    return best


def answer_language(base: KnowledgeBase, language: str) -> str:
    """The prospect's language when the knowledge base speaks it, else its first language."""
    return language if language in base.languages else base.languages[0]


def evidence_values(config: KnowledgeConfig, catalog: CatalogConfig) -> dict[str, str]:
    """What `{price_<SKU>}` and `{fact_<name>}` render as: catalog prices formatted as on a
    quote ("199.00 USD", from integer minor units), facts exactly as declared."""
    values = {
        f"{PRICE_PREFIX}{sku.code}": format_amount(
            sku.unit_cents, catalog.currency, catalog.minor_units
        )
        for sku in catalog.skus
    }
    values.update({f"{FACT_PREFIX}{name}": fact.value for name, fact in config.facts.items()})
    return values


def evidence_claims(config: KnowledgeConfig, catalog: CatalogConfig) -> dict[str, str]:
    """Each citable placeholder and the claim an answer citing it makes."""
    claims = {f"{PRICE_PREFIX}{sku.code}": "pricing" for sku in catalog.skus}
    claims.update({f"{FACT_PREFIX}{name}": fact.claim for name, fact in config.facts.items()})
    return claims


def text_problems(
    config: KnowledgeConfig, catalog: CatalogConfig, text: str, claims: tuple[str, ...]
) -> tuple[str, ...]:
    """The claims rules for one answer text (see `domain.persona.answer_problems`)."""
    return _text_problems(
        text,
        claims,
        config.allowed_claims,
        tuple(sorted(evidence_claims(config, catalog).items())),
    )


@functools.lru_cache(maxsize=4096)
def _text_problems(
    text: str,
    claims: tuple[str, ...],
    allowed: tuple[str, ...],
    evidence: tuple[tuple[str, str], ...],
) -> tuple[str, ...]:
    # Pure in its arguments, so worked out once per answer, not at every reply.
    return tuple(answer_problems(text, claims, allowed, dict(evidence)))


def check_knowledge(
    config: KnowledgeConfig, catalog: CatalogConfig, *, has_reader: bool
) -> tuple[str, ...]:
    """Every reason the knowledge base is unsafe or incomplete, one line each.

    Claims (figures only through cited evidence, claims declared and allowed), every
    language of the file covered by every entry, facts whose claims are allowed, and
    retrieval itself: each example must find its own entry, at or above `min_score`, so
    no two entries are confused and none is out of reach.
    """
    problems: list[str] = []
    base = config.base
    if not has_reader:
        problems.append(
            "knowledge: the policy has no [understanding] reader, whose question intents "
            "send messages to the knowledge base"
        )
    for name, fact in config.facts.items():
        if fact.claim not in config.allowed_claims:
            problems.append(
                f"knowledge.facts.{name}: the claim {fact.claim!r} is not in "
                "knowledge.allowed_claims"
            )
    for kind, texts in (("clarify", base.clarify), ("person", base.person)):
        for language in base.languages:
            if language not in texts:
                problems.append(f"knowledge: {kind} has no text in {language!r}")
        for language, text in texts.items():
            problems += [
                f"knowledge: {kind} ({language}): {problem}."
                for problem in text_problems(config, catalog, text, ())
            ]
    for entry in base.entries:
        where = f"knowledge: entry {entry.id!r}"
        for language in base.languages:
            if not entry.examples.get(language):
                problems.append(f"{where}: no example questions in {language!r}")
            if language not in entry.answers:
                problems.append(f"{where}: no answer in {language!r}")
        for language, text in entry.answers.items():
            problems += [
                f"{where}, answer ({language}): {problem}."
                for problem in text_problems(config, catalog, text, entry.claims)
            ]
    problems += _retrieval_problems(config)
    return tuple(problems)


def _retrieval_problems(config: KnowledgeConfig) -> list[str]:
    problems: list[str] = []
    threshold = config.threshold
    for entry in config.base.entries:
        for language, examples in entry.examples.items():
            for example in examples:
                match = retrieve(config, example, language)
                where = f"knowledge: entry {entry.id!r}, example ({language}) “{example}”"
                if match is None or match.entry_id != entry.id:
                    found = f"entry {match.entry_id!r}" if match is not None else "nothing"
                    problems.append(f"{where} retrieves {found}, not its own entry")
                elif match.score < threshold:
                    problems.append(
                        f"{where} scores {from_micro(match.score)}, below min_score "
                        f"{config.min_score}"
                    )
    return problems


def render_answer(text: str, values: Mapping[str, str]) -> str:
    """An answer with its placeholders filled; every value is plain text (see
    `domain.persona.render_template`)."""
    return render_template(text, values)
