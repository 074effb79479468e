"""Reps teach the reader: a correction of one reading, and the labelled example it makes.

`correct band warm`, `correct objection none`, `correct signal budget no`, `correct human yes
legal`, `correct intent meeting_request yes` mark the bot's reading of the conversation's
latest prospect message wrong. Each is a `reading_corrected` event; `salesbot train
--corrections` turns the corrected readings into labelled lines of the corpus format
(`docs/labelling.md`) for the next training run, the reading's other labels unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from domain.errors import CommandError
from domain.events import MessageRead, ReadingCorrected
from domain.understanding.model import INTENTS, OBJECTIONS, REASONS, SIGNALS

CORRECT_USAGE = (
    "correct band hot|warm|cold · objection <price|timing|needs|competitor|authority|contract|none>"
    " · signal <budget|timeline|authority|need> yes|no · human yes <reason>|no"
    " · intent <name> yes|no"
)

Field = Literal["band", "objection", "signal", "intent", "human"]

_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}


def _flag(word: str) -> bool:
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise CommandError(f"Say yes or no, not {word!r}. Usage: {CORRECT_USAGE}")


def parse_correction(args: str) -> tuple[Field, str | None, str]:
    """(field, name, value) from the command's words; a clear error for anything else."""
    words = args.lower().split()
    if not words:
        raise CommandError(f"Usage: {CORRECT_USAGE}")
    field, rest = words[0], words[1:]
    if field == "band" and len(rest) == 1 and rest[0] in {"hot", "warm", "cold"}:
        return "band", None, rest[0]
    if field == "objection" and len(rest) == 1 and rest[0] in {*OBJECTIONS, "none"}:
        return "objection", None, rest[0]
    if field == "signal" and len(rest) == 2 and rest[0] in SIGNALS:
        return "signal", rest[0], "yes" if _flag(rest[1]) else "no"
    if field == "intent" and len(rest) == 2 and rest[0] in INTENTS:
        return "intent", rest[0], "yes" if _flag(rest[1]) else "no"
    if field == "human" and rest:
        if not _flag(rest[0]):
            if len(rest) != 1:
                raise CommandError(f"Usage: {CORRECT_USAGE}")
            return "human", None, "no"
        if len(rest) == 2 and rest[1] in REASONS:
            return "human", rest[1], "yes"
        raise CommandError(f"Name the reason: {', '.join(REASONS)}. Usage: {CORRECT_USAGE}")
    raise CommandError(f"Usage: {CORRECT_USAGE}")


def describe(correction: ReadingCorrected) -> str:
    name = f" {correction.name}" if correction.name else ""
    return f"{correction.field}{name} → {correction.value}"


def corrected_example(
    identifier: str,
    text: str,
    reading: MessageRead,
    corrections: Iterable[ReadingCorrected],
) -> dict[str, Any]:
    """A labelled corpus line: the reading's labels with every correction applied in order."""
    band = reading.band
    objection = reading.objection
    signals = dict(reading.signals)
    reasons = set(reading.reasons)
    intents = set(reading.intents)
    by: list[str] = []
    for correction in corrections:
        by.append(correction.by)
        yes = correction.value == "yes"
        match correction.field:
            case "band":
                band = correction.value
            case "objection":
                objection = None if correction.value == "none" else correction.value
            case "signal" if correction.name is not None:
                signals[correction.name] = yes
            case "intent" if correction.name is not None:
                (intents.add if yes else intents.discard)(correction.name)
            case "human":
                if yes and correction.name is not None:
                    reasons.add(correction.name)
                elif not yes:
                    reasons.clear()
    if "human_request" in intents:
        reasons.add("human_request")
    elif "human_request" in reasons and not intents & {"human_request"}:
        intents.add("human_request")
    return {
        "id": identifier,
        "lang": reading.language if reading.language != "und" else "en",
        "channel": "correction",
        "text": text,
        "band": band,
        "signals": {name: bool(signals.get(name, False)) for name in SIGNALS},
        "objection": objection,
        "needs_human": bool(reasons),
        "reasons": sorted(reasons),
        "intents": sorted(intents),
        "corrected_by": sorted(set(by)),
    }
