"""Feature names in words a rep reads without the labelling guide.

The reader's features are named for where they come from (`lex:budget`, `w:urgent`,
`ent:money_10k`, `shape:question`; see `domain.understanding.features`): exact and stable,
which the audit and replay need, but engineering words on a card. `feature_words` says the
same in plain words; the name itself stays in the audit, next to its exact `w × x`.
"""

from __future__ import annotations

from typing import Final

_LANGUAGE_NAMES: Final = {"en": "English", "de": "German", "fr": "French", "es": "Spanish"}

_SHAPES: Final = {
    "question": "asks a question",
    "short": "a very short message",
    "long": "a long message",
}

_ENTITIES: Final = {
    "money": "names an amount of money",
    "money_1k": "an amount of 1,000 or more",
    "money_10k": "an amount of 10,000 or more",
    "money_100k": "an amount of 100,000 or more",
    "amount": "a figure without a currency",
    "date": "names a date",
    "date_past": "a date already past",
    "date_30d": "a date within 30 days",
    "date_120d": "a date within 4 months",
    "date_365d": "a date within a year",
    "team": "names a team size",
    "team_10": "a team of 10 or more",
    "team_50": "a team of 50 or more",
    "team_200": "a team of 200 or more",
    "competitor": "names a competitor",
}


def _spaced(name: str) -> str:
    return name.replace("_", " ")


def _words(key: str) -> str:
    """A word or pair key as text; `#` stands for any number ("of #": "of N")."""
    return " ".join("N" if word == "#" else word for word in key.split("_"))


def feature_words(name: str) -> str:
    """`lex:budget` → "budget", `w:urgent` → "the word “urgent”", `ent:date_30d` → "a date
    within 30 days"; a name of no known kind (a lexicon scorer's own) reads as itself."""
    kind, _, rest = name.partition(":")
    if not rest:
        return "baseline" if name == "intercept" else _spaced(name)
    if kind == "lex":
        lexicon, _, flag = rest.partition(":")
        if flag == "not":
            return f"{_spaced(lexicon)}, negated"
        if flag == "self":
            return f"{_spaced(lexicon)}, about their own business"
        return _spaced(lexicon)
    if kind == "typo":
        return f"{_spaced(rest)} (misspelt)"
    if kind in ("w", "n") and rest == "#":
        return "a number" + (", negated" if kind == "n" else "")
    if kind == "w":
        return f"the word “{rest}”"
    if kind == "n":
        return f"the word “{rest}”, negated"
    if kind == "p":
        return f"the words “{_words(rest)}”"
    if kind == "ent":
        return _ENTITIES.get(rest, _spaced(rest))
    if kind == "shape":
        return _SHAPES.get(rest, _spaced(rest))
    if kind == "lang":
        return f"written in {_LANGUAGE_NAMES.get(rest, rest)}"
    if kind == "meta":
        if rest.startswith("size_"):
            return f"company of {rest.removeprefix('size_')} people or more"
        if rest.startswith("source_"):
            return f"came from {_spaced(rest.removeprefix('source_'))}"
    return _spaced(name)
