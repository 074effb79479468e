"""Tokens, stems and the language of a message, for the four languages the reader knows.

Everything here is a pure function of the text and of data handed in (the reader spec), so
the same message always yields the same tokens on any machine: the tokeniser is one regular
expression, the stemmer is Snowball (pinned in `constraints.txt`), and language
identification is a count of each language's marker words and letters, which a reader can
redo by hand ("hola" and "ñ" are Spanish; "und" and "ß" German).

A *key* is what words are compared by: the Snowball stem of the case-folded word in the
message's language, with diacritics removed afterwards so "résiliation" and "resiliation"
meet. French elisions ("l'équipe", "n'avons") are split so the word after the apostrophe is
a word of its own.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping, Sequence

import snowballstemmer

LANGUAGES = ("en", "de", "fr", "es")
UNDETERMINED = "und"


def known_languages(value: tuple[str, ...]) -> tuple[str, ...]:
    """`value` when it lists each language the reader knows at most once (a validator shared
    by the policy tables that name languages); a clear error otherwise."""
    unknown = [language for language in value if language not in LANGUAGES]
    if unknown:
        raise ValueError(
            f"unknown language {unknown[0]!r}; the reader knows {', '.join(LANGUAGES)}"
        )
    if len(set(value)) != len(value):
        raise ValueError("a language is listed twice")
    return value


STEMMERS: Mapping[str, str] = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "es": "spanish",
}

# A word (letters, digits, at most one inner apostrophe), or a single visible symbol.
_TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")
_ELISION = re.compile(r"^(l|d|n|qu|j|s|c|m|t|jusqu|lorsqu|puisqu)'(\w.*)$")


def normalize(text: str) -> str:
    """Case-folded text with typographic apostrophes made plain.

    `str.translate` with a mapping looks every character up in Python; four `replace` calls
    run in C and only when the text has one of the characters (the same result, ~10× faster).
    """
    folded = text.casefold()
    if folded.isascii() and "`" not in folded:
        return folded
    for typographic in _TYPOGRAPHIC_APOSTROPHES:
        if typographic in folded:
            folded = folded.replace(typographic, "'")
    return folded


_TYPOGRAPHIC_APOSTROPHES = ("\u2019", "\u2018", "\u02bc", "`")


def tokens(text: str) -> list[str]:
    """The normalized text's tokens; French-style elisions split into two tokens.

    A token never spans white space, so the text is split on it first (in C, as the regular
    expression's `\\s` would) and only pieces that are not a plain run of word characters go
    through the expression: `str.isalnum` is exactly `\\w` without the underscore. The result
    is the expression's over the whole text, at a third of the cost.
    """
    normalized = normalize(text)
    found: list[str] = []
    for piece in normalized.split():
        if piece.isalnum():
            found.append(piece)
        else:
            found.extend(_TOKEN.findall(piece))
    if "'" not in normalized:
        return found  # no elision to split (most messages)
    out: list[str] = []
    for raw in found:
        if "'" in raw:
            elided = _ELISION.match(raw)
            if elided is not None:
                out.append(elided.group(1) + "'")
                out.append(elided.group(2))
                continue
        out.append(raw)
    return out


def is_word(token: str) -> bool:
    return token[0].isalnum() or token[0] == "_"


@functools.lru_cache(maxsize=8)
def _stemmer(language: str) -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer(STEMMERS.get(language, "english"))


def strip_accents(word: str) -> str:
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word.replace("ß", "ss"))
    return "".join(char for char in decomposed if not unicodedata.combining(char))


@functools.lru_cache(maxsize=200_000)
def key(word: str, language: str) -> str:
    """A word's comparison key in `language`: its stem without diacritics, memoized.

    Symbols and numbers are their own key. A fresh stemmer per miss would cost more than a
    lookup, and Snowball stemmers are not re-entrant, so the per-language stemmer is used
    only inside this (single-threaded) memoized call.
    """
    if not is_word(word) or word.isdigit():
        return word
    stem = str(_stemmer(language).stemWord(word))
    return strip_accents(stem)


def keys(words: Sequence[str], language: str) -> tuple[str, ...]:
    return tuple(key(word, language) for word in words)


@functools.lru_cache(maxsize=4096)
def phrase_keys(phrase: str, language: str) -> tuple[str, ...]:
    """A lexicon term's keys (a phrase is a run of keys), memoized: lexicons are fixed."""
    return keys(tokens(phrase), language)


def language_of(
    marked: Mapping[str, Sequence[str]],
    languages: Sequence[str],
    letters: Mapping[str, str],
    text: str,
) -> str:
    """The language with the most marker words and letters, or "und" when none leads.

    `marked` maps each distinct word of the message to the languages it is a marker word of
    (worked out once per word by the caller). Each distinct marker word counts 2 and each
    distinct marker letter 1; a language must score at least 2 and strictly more than every
    other.
    """
    ascii_text = text.isascii()
    if not marked and ascii_text:
        return UNDETERMINED  # every score 0 (letters count only in non-ASCII text)
    scores = dict.fromkeys(languages, 0)
    for marks in marked.values():
        for language in marks:
            scores[language] += 2
    if not ascii_text:
        lowered = text.casefold()
        for language, chars in letters.items():
            scores[language] = scores.get(language, 0) + sum(map(lowered.__contains__, chars))
    if not scores:
        return UNDETERMINED
    # The leader must score at least 2 and strictly more than every other (a sort by score
    # then name, as the rule reads, picks the same language).
    best = max(scores.values())
    if best < 2:
        return UNDETERMINED
    leaders = [language for language, score in scores.items() if score == best]
    return leaders[0] if len(leaders) == 1 else UNDETERMINED
