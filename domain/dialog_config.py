"""The policy's `[dialog]` and `[competitors]` tables (`domain.dialog` acts on them).

Kept apart from `domain.dialog` because the policy holds these tables and the recorder (which
`domain.dialog` needs) holds the policy, as `domain.meetings_config` is for meetings.

`[dialog]` says how the bot reacts to what the reader heard beyond the qualification slots:

- `close_on`: the reasons a prospect's message closes the conversation politely, instead of
  the next sales question: `chose_competitor` (the reader's intent), `not_interested` (its
  intent), `not_a_buyer` (a `not_a_buyer` word among the reader's evidence: a student, a
  school project) and `goodbye` (its intent). When several hold, the strongest counts, in
  that order (`CLOSE_REASONS`);
- `not_a_buyer`: the words that mark a writer who is not buying, matched against the words
  the reader heard (its evidence, never a negated one: "I'm not a student" does not count);
- `heard`: a reason listed here counts only when the reader also heard one of its words: its
  evidence for one of the named lexicon features (`lex:<name>`), not negated. The reader
  reads a bare "ok", "merci" or "cool" as a goodbye and a bare "no" as not interested; none
  of them says farewell, and a buyer answering "ok" to a call offer must not be told goodbye;
- `move_on_after_objection`: an objection reply is never followed by the same objection
  reply; the second "too expensive" in a row gets the question closest to it instead.

`[competitors]` maps each competitor's name, as the policy wants it recorded, to the other
ways prospects write it (`"Microsoft Dynamics" = ["Dynamics 365", "MS Dynamics"]`).

A policy without these tables decides exactly as before (their canonical JSON is omitted).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Final, Literal

from pydantic import Field, field_validator

from domain.model import Frozen

CloseReason = Literal["chose_competitor", "not_interested", "not_a_buyer", "goodbye"]
CLOSE_REASONS: Final[tuple[CloseReason, ...]] = (
    "chose_competitor",
    "not_interested",
    "not_a_buyer",
    "goodbye",
)
"""Every reason to close politely, strongest first: the one recorded when several hold."""

LEXICON_PREFIX: Final = "lex:"
"""The reader's lexicon features, the only ones whose evidence is words."""

Competitors = dict[str, tuple[str, ...]]
"""`[competitors]`: the name recorded → the other spellings that mean it."""


class DialogConfig(Frozen):
    """`[dialog]` (see the module doc)."""

    close_on: tuple[CloseReason, ...] = ()
    not_a_buyer: tuple[str, ...] = ()
    heard: dict[CloseReason, tuple[str, ...]] = Field(default_factory=dict)
    move_on_after_objection: bool = False

    @field_validator("close_on")
    @classmethod
    def _once_each(cls, value: tuple[CloseReason, ...]) -> tuple[CloseReason, ...]:
        if len(set(value)) != len(value):
            raise ValueError("close_on lists a reason more than once")
        return value

    @field_validator("heard")
    @classmethod
    def _lexicon_features(
        cls, value: dict[CloseReason, tuple[str, ...]]
    ) -> dict[CloseReason, tuple[str, ...]]:
        for reason, features in value.items():
            if not features or any(not f.startswith(LEXICON_PREFIX) for f in features):
                raise ValueError(
                    f"heard.{reason}: name one or more of the reader's lexicon features "
                    f"({LEXICON_PREFIX}<name>)"
                )
        return value

    @field_validator("not_a_buyer")
    @classmethod
    def _plain_words(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not word.strip() for word in value):
            raise ValueError("not_a_buyer words must not be blank")
        return value


def check_competitors(table: Mapping[str, tuple[str, ...]]) -> Competitors:
    """`[competitors]` as given, refused when a name is blank or one spelling means two
    competitors (which name to record would depend on the table's order)."""
    owner: dict[str, str] = {}
    for name, aliases in table.items():
        if not name.strip():
            raise ValueError("a competitor's name must not be blank")
        for spelling in (name, *aliases):
            key = _fold(spelling)
            if not key:
                raise ValueError(f"competitor {name!r}: a spelling must not be blank")
            if owner.get(key, name) != name:
                raise ValueError(
                    f"{spelling!r} is listed for both {owner[key]!r} and {name!r}; "
                    "a spelling may name one competitor only"
                )
            owner[key] = name
    return dict(table)


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


@lru_cache(maxsize=16)
def _patterns(
    table: tuple[tuple[str, tuple[str, ...]], ...],
) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Per spelling, the name it means and a whole-word pattern over folded text."""
    out = []
    for name, aliases in table:
        for spelling in (name, *aliases):
            body = r"\s+".join(re.escape(part) for part in _fold(spelling).split())
            out.append((name, re.compile(r"(?<!\w)" + body + r"(?!\w)")))
    return tuple(out)


def competitor_named(
    table: Mapping[str, tuple[str, ...]] | None, read: str | None, text: str
) -> str | None:
    """The competitor to record for a message: the reader's competitor entity (`read`)
    under the name `[competitors]` gives it (as the reader spelled it when the table does not
    list it); without an entity, the name or spelling from the table the message mentions
    first, as a whole word. None when neither names one."""
    if read is not None and read.strip():
        wanted = _fold(read)
        for name, aliases in (table or {}).items():
            if wanted in {_fold(spelling) for spelling in (name, *aliases)}:
                return name
        return read.strip()
    if not table:
        return None
    folded = text.casefold()
    best: tuple[int, int, str] | None = None
    for name, pattern in _patterns(tuple(table.items())):
        hit = pattern.search(folded)
        if hit is not None and (best is None or (hit.start(), -len(hit.group())) < best[:2]):
            best = (hit.start(), -len(hit.group()), name)
    return best[2] if best is not None else None
