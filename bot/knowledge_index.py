"""Building the knowledge base's BM25 index with bm25s, once per knowledge file.

Why a library, and why here: BM25 has several variants whose details (the IDF's smoothing,
how length is normalised) change which entry wins, and bm25s implements the standard ones
and is maintained; it is pinned exactly in `constraints.txt`. It cannot run in `domain/`:
it reads the environment and configures its logger when imported, and it can save, load
and download indexes. It is also not needed there: a BM25 score is a sum over the query's
terms of a weight that depends only on the term and the document, so the index *is* that
table of weights. We read each term's weights from the index bm25s builds (its `scores`
matrix, one column per term: exactly what its `get_scores_from_ids` adds up), round them to
integer millionths and hand the table to the domain, whose
`domain.knowledge.retrieve` only adds integers. A decision therefore never depends on
floating point, and the table is part of the policy (its version hash covers it, and a
stored policy replays with exactly the weights it decided with).

One document per entry and language: the entry's example questions in that language,
tokenised with the reader's own normaliser (`domain.knowledge.document_terms`) after
dropping bm25s's stop words for that language, so "how", "wie" and "comment" weigh nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal

import bm25s
from bm25s import stopwords

from domain.knowledge import KnowledgeBase, KnowledgeIndex, document_terms
from domain.understanding.model import MICRO
from domain.understanding.text import strip_accents

# bm25s sets its logger to DEBUG when imported; its progress notes are not for operators.
logging.getLogger("bm25s").setLevel(logging.WARNING)

K1 = 1.5
B = 0.75
METHOD = "lucene"

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(stopwords.STOPWORDS_EN_PLUS),
    "de": frozenset(stopwords.STOPWORDS_GERMAN),
    "fr": frozenset(stopwords.STOPWORDS_FRENCH),
    "es": frozenset(stopwords.STOPWORDS_SPANISH),
}


QUESTION_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset({"please", "could", "would", "may", "get", "tell", "know", "also", "us"}),
    "de": frozenset({"gibt", "bitte", "kurz", "eigentlich", "mal", "gerne"}),
    "fr": frozenset(
        {"puis", "peut", "peux", "pouvez", "pouvons", "peuvent", "quel", "quelle", "quels"}
        | {"quelles", "ça"}
    ),
    "es": frozenset({"puedo", "puede", "pueden", "podemos", "podría", "cuál", "cuáles"}),
}
"""What every question is built with beyond the stop word lists (modal verbs, "is there",
"please"): a prospect's "où puis-je…" must not match an entry because one example says
"puis-je" too."""


def _stop_words(language: str) -> frozenset[str]:
    """The language's stop words, compared without accents (a prospect who types "quien"
    for "quién" asks the same); French elisions ("l'", "qu'") are stop words too."""
    words = STOPWORDS.get(language, frozenset()) | QUESTION_WORDS.get(language, frozenset())
    return frozenset(strip_accents(word) for word in words)


def _is_content(word: str, stop: frozenset[str]) -> bool:
    return not word.endswith("'") and strip_accents(word) not in stop


def content_words(language: str) -> Callable[[str], bool]:
    """Whether a word of `language` is indexed: not a stop word, not an elision."""
    return functools.partial(_is_content, stop=_stop_words(language))


def method() -> str:
    """How the weights were computed, for the audit and the policy's canonical form."""
    return f"bm25s {bm25s.__version__} {METHOD} k1={K1} b={B}, weights in millionths"


def build_index(base: KnowledgeBase) -> KnowledgeIndex:
    """Each term's BM25 weight in each entry's document, per language, in millionths."""
    postings: dict[str, dict[str, dict[str, int]]] = {}
    for language in base.languages:
        ids = [entry.id for entry in base.entries]
        keep = content_words(language)
        corpus = [
            [
                term
                for example in entry.examples.get(language, ())
                for term in document_terms(example, language, keep)
            ]
            for entry in base.entries
        ]
        if not any(corpus):
            postings[language] = {}
            continue
        # float64: the weights are rounded to millionths below, so keep every digit until then.
        retriever = bm25s.BM25(k1=K1, b=B, method=METHOD, dtype="float64")
        retriever.index(corpus, show_progress=False)
        # The index bm25s built: a sparse matrix with one column per term holding the term's
        # weight in each document (what `get_scores_from_ids([term])` sums, read at once).
        data, docs, starts = (retriever.scores[name] for name in ("data", "indices", "indptr"))
        table: dict[str, dict[str, int]] = {}
        for term, column in sorted(retriever.vocab_dict.items()):
            if term == "":  # bm25s's placeholder for empty queries
                continue
            cells = range(int(starts[column]), int(starts[column + 1]))
            micro = ((ids[int(docs[cell])], _micro(float(data[cell]))) for cell in cells)
            weights = {entry_id: weight for entry_id, weight in sorted(micro) if weight > 0}
            if weights:
                table[term] = weights
        postings[language] = table
    return KnowledgeIndex(method=method(), postings=postings)


def _micro(value: float) -> int:
    """A float weight as integer millionths, rounded half-even from its exact binary value."""
    return int((Decimal(value) * MICRO).to_integral_value(rounding=ROUND_HALF_EVEN))
