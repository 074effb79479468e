"""The prospect's language: which language the bot answers in, and its words in each.

A policy's `[languages]` table declares the languages it `spoken` (the first is the fallback),
the language its templates' own text is `written_in`, the `team_language` of what the bot
says to the team, and `switch_min_words`: a message shorter than that ("ok thanks") is too
thin to tell a language by, so it does not move the conversation to another language.
`[languages.templates.<language>.<action>]` holds a template's wording in another language
(its `text` and `variants`, one for one with the original's); the claims and evidence are the
original template's, so a translation can say nothing the original does not.

The bot answers in the language of the prospect's last confident message: the reader's
detected language (`message_read`), when the policy speaks it and the message has enough
words. A policy without `[languages]` speaks its templates as written, exactly as before.
"""

from __future__ import annotations

import re
import string
from typing import Final

from pydantic import Field, field_validator, model_validator

from domain.model import Frozen
from domain.persona import Persona, Template, check_persona
from domain.understanding.text import LANGUAGES, known_languages

LANGUAGE_NAMES: Final = {"en": "English", "de": "German", "fr": "French", "es": "Spanish"}

_WORD = re.compile(r"\w+", re.UNICODE)


class Translation(Frozen):
    """A template's wording in one language: `text` and `variants`, in the original's order."""

    text: str = Field(min_length=1)
    variants: tuple[str, ...] = ()

    @property
    def texts(self) -> tuple[str, ...]:
        return (self.text, *self.variants)


class LanguagesConfig(Frozen):
    """The policy's `[languages]` (see the module doc)."""

    spoken: tuple[str, ...] = Field(min_length=1)
    written_in: str = "en"
    team_language: str | None = None
    """The language of what the bot says to the team; the first spoken language if unset."""
    switch_min_words: int = Field(3, ge=1)
    templates: dict[str, dict[str, Translation]] = Field(default_factory=dict)

    @field_validator("spoken")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_languages(value)

    @model_validator(mode="after")
    def _languages_known(self) -> LanguagesConfig:
        for field, language in (("written_in", self.written_in), ("team_language", self.team)):
            if language not in LANGUAGES:
                raise ValueError(f"{field}: unknown language {language!r}")
        for language in self.templates:
            if language not in LANGUAGES:
                raise ValueError(f"templates: unknown language {language!r}")
        return self

    @property
    def fallback(self) -> str:
        return self.spoken[0]

    @property
    def team(self) -> str:
        return self.team_language or self.spoken[0]


def word_count(text: str) -> int:
    """Words with at least one letter: "ok thanks" is two, "10 seats" one."""
    return sum(1 for word in _WORD.findall(text) if any(char.isalpha() for char in word))


def next_language(
    config: LanguagesConfig, current: str | None, read_language: str, text: str
) -> str | None:
    """The language to answer in from now on, or None when it stays `current` (None: the
    fallback). A message moves it when the reader told its language, the policy speaks it,
    and it has at least `switch_min_words` words."""
    now = current or config.fallback
    if read_language == now or read_language not in config.spoken:
        return None
    if word_count(text) < config.switch_min_words:
        return None
    return read_language


# Building a translated persona validates a few dozen templates (≈ 0.2 ms): too much for every
# reply. Policies are immutable and few, so each (persona, languages, language) is built once,
# keyed by identity and kept alive with its entry, like the reader's compiled spec.
_LOCALIZED: dict[tuple[int, int, str], tuple[Persona, LanguagesConfig, Persona]] = {}
_LOCALIZED_KEPT = 32


def localized(persona: Persona, config: LanguagesConfig, language: str) -> Persona:
    """The persona speaking `language`: each template with a translation into it says the
    translation (with the original's claims and evidence); the others say their own text."""
    if language == config.written_in:
        return persona
    key = (id(persona), id(config), language)
    entry = _LOCALIZED.get(key)
    if entry is not None and entry[0] is persona and entry[1] is config:
        return entry[2]
    result = _translated(persona, config, language)
    while len(_LOCALIZED) >= _LOCALIZED_KEPT:
        _LOCALIZED.pop(next(iter(_LOCALIZED)))
    _LOCALIZED[key] = (persona, config, result)
    return result


def _translated(persona: Persona, config: LanguagesConfig, language: str) -> Persona:
    translations = config.templates.get(language, {})
    templates = {
        action: (
            template
            if action not in translations
            else Template(
                text=translations[action].text,
                variants=translations[action].variants,
                claims=template.claims,
                evidence=template.evidence,
            )
        )
        for action, template in persona.templates.items()
    }
    return persona.model_copy(update={"templates": templates})


def _placeholders(text: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}
    except ValueError:
        return set()


def check_languages(key: str, persona: Persona, config: LanguagesConfig) -> list[str]:
    """Every template of `persona` with no words in a spoken language, a translation whose
    wordings do not match the original's one for one, or one using other placeholders (a
    translation says the same thing, with the same values)."""
    problems: list[str] = []
    where = f"personas.{key}"
    for language in config.spoken:
        if language == config.written_in:
            continue
        translations = config.templates.get(language, {})
        for action, template in persona.templates.items():
            translation = translations.get(action)
            if translation is None:
                problems.append(
                    f"{where}: template {action!r} has no {LANGUAGE_NAMES[language]} "
                    f"wording (add [languages.templates.{language}.{_key(action)}])"
                )
                continue
            if len(translation.texts) != len(template.texts):
                problems.append(
                    f"{where}: template {action!r} has {len(template.texts)} wording(s) but "
                    f"its {LANGUAGE_NAMES[language]} translation has {len(translation.texts)}"
                )
            for index, (original, text) in enumerate(
                zip(template.texts, translation.texts, strict=False)
            ):
                if _placeholders(original) != _placeholders(text):
                    wording = "text" if index == 0 else f"variant {index}"
                    problems.append(
                        f"{where}: template {action!r}, {LANGUAGE_NAMES[language]} {wording}: "
                        f"placeholders {sorted(_placeholders(text))} differ from the "
                        f"original's {sorted(_placeholders(original))}"
                    )
        already = set(check_persona(persona))
        problems += [
            f"{where} ({LANGUAGE_NAMES[language]}): {line}"
            for line in check_persona(localized(persona, config, language))
            if line not in already
        ]
        for action in translations:
            if action not in persona.templates:
                problems.append(
                    f"{where}: {LANGUAGE_NAMES[language]} translation of {action!r}, which "
                    "is not a template"
                )
    return problems


def _key(action: str) -> str:
    return action if re.fullmatch(r"[A-Za-z0-9_-]+", action) else f'"{action}"'
