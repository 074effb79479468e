"""Business hours (`[handoff.business_hours]`): when the team answers, in words a prospect reads,
and the fact about them a timer carries.

The time zone is a name (IANA, such as `Europe/Paris`) that the domain never resolves: turning
an instant into a local day and time needs the zone database, which is I/O. The runtime
(`bot.business_hours`) works out, for the instant a timer is decided, whether it falls within
these hours and when they next open, and hands that in as an `HoursFact` on the timer
(`domain.inbound.TimerElapsed`). The fact is stored with the inbound, so a replay decides with
the same fact and needs no zone database.

Hours are one opening per day, `open` before `close` (a shift across midnight is not
expressible: `salesbot check` refuses `close` at or before `open`), on the listed `days`.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from pydantic import Field, field_validator, model_validator

from domain.model import Frozen

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: Final[tuple[Day, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Monday first, as ISO 8601 numbers them (and `datetime.weekday()` counts from 0)."""

_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")

DAY_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
}
"""Day names in the languages the shipped policy speaks; any other language reads English."""

_AND: Final = {"en": "and", "de": "und", "fr": "et", "es": "y"}


class BusinessHours(Frozen):
    """`[handoff.business_hours]`: `open`–`close` (24-hour `HH:MM`, local time in
    `time_zone`) on each of `days`."""

    time_zone: str = Field(min_length=1)
    days: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri")
    open: str = "09:00"
    close: str = "17:00"

    @field_validator("open", "close")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"{value!r} is not a 24-hour time such as 09:00")
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: tuple[Day, ...]) -> tuple[Day, ...]:
        if not value:
            raise ValueError("business hours need at least one day")
        if len(set(value)) != len(value):
            raise ValueError("days lists a day more than once")
        return tuple(sorted(value, key=DAYS.index))

    @model_validator(mode="after")
    def _open_before_close(self) -> BusinessHours:
        if self.close <= self.open:
            raise ValueError(
                f"close ({self.close}) must be after open ({self.open}) on the same day"
            )
        return self

    @property
    def open_minute(self) -> int:
        return _minutes(self.open)

    @property
    def close_minute(self) -> int:
        return _minutes(self.close)

    def words(self, language: str | None) -> str:
        """The hours as a prospect reads them: "Monday to Friday, 09:00–17:00 (Europe/Paris)"."""
        return f"{days_words(self.days, language)}, {self.open}–{self.close} ({self.time_zone})"


class HoursFact(Frozen):
    """What the runtime worked out about `[handoff.business_hours]` for the instant a timer was
    decided: whether it is within them, and when they next open (epoch ms; the instant itself
    when open now). Recorded with the timer, so a replay reads the same fact."""

    open_now: bool
    next_open_ms: int


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def days_words(days: tuple[Day, ...], language: str | None) -> str:
    """ "Monday to Friday" for a run of three days or more, "Saturday and Sunday", or a list."""
    base = (language or "en").split("-")[0]
    names = DAY_NAMES.get(base, DAY_NAMES["en"])
    indexes = [DAYS.index(day) for day in days]
    joiner = _AND.get(base, "and")
    if len(indexes) >= 3 and indexes == list(range(indexes[0], indexes[-1] + 1)):
        to = {"en": "to", "de": "bis", "fr": "à", "es": "a"}.get(base, "to")
        if base == "fr":
            return f"du {names[indexes[0]]} au {names[indexes[-1]]}"
        if base == "es":
            return f"de {names[indexes[0]]} {to} {names[indexes[-1]]}"
        return f"{names[indexes[0]]} {to} {names[indexes[-1]]}"
    words = [names[i] for i in indexes]
    if len(words) == 1:
        return words[0]
    return f"{', '.join(words[:-1])} {joiner} {words[-1]}"
