"""Business hours in a time zone (`[handoff.business_hours]`), resolved where I/O is allowed.

The domain names a zone and never resolves it (`domain.business_hours`). Here an instant is
turned into the zone's local day and time with the IANA database of the pinned `tzdata`
package — read from the package, not from the machine's `/usr/share/zoneinfo`, so every
machine (a slim container, Windows) applies the same rules — and the runtime hands the result
(`HoursFact`) to the domain on the timer it records. A replay reads the recorded fact and
never comes here.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

from domain.business_hours import DAYS, BusinessHours, HoursFact
from domain.policy import Policy

_WEEK = 8
"""Days looked ahead for the next opening: any non-empty set of weekdays opens within 7."""


class UnknownZoneError(ValueError):
    """The name is not a zone of the pinned IANA database."""


@functools.cache
def zone(name: str) -> ZoneInfo:
    """The zone `name` from the pinned `tzdata` package; `UnknownZoneError` when it has none."""
    parts = name.split("/")
    if not name or any(part in ("", ".", "..") for part in parts):
        raise UnknownZoneError(name)
    source = resources.files("tzdata.zoneinfo").joinpath(*parts)
    try:
        with source.open("rb") as data:
            return ZoneInfo.from_file(data, key=name)
    except (OSError, ValueError) as exc:
        raise UnknownZoneError(name) from exc


def hours_fact(hours: BusinessHours, now_ms: int) -> HoursFact:
    """Whether `now_ms` falls within `hours`, and the next opening (epoch ms; `now_ms` when
    open now)."""
    tz = zone(hours.time_zone)
    local = datetime.fromtimestamp(now_ms / 1000, tz=UTC).astimezone(tz)
    minute = local.hour * 60 + local.minute
    if DAYS[local.weekday()] in hours.days and hours.open_minute <= minute < hours.close_minute:
        return HoursFact(open_now=True, next_open_ms=now_ms)
    open_h, open_m = divmod(hours.open_minute, 60)
    for ahead in range(_WEEK):
        day = local.date() + timedelta(days=ahead)
        if DAYS[day.weekday()] not in hours.days:
            continue
        opening = datetime(day.year, day.month, day.day, open_h, open_m, tzinfo=tz)
        opening_ms = int(opening.timestamp() * 1000)
        if opening_ms > now_ms:
            return HoursFact(open_now=False, next_open_ms=opening_ms)
    raise AssertionError("a week always holds one of the listed days")  # pragma: no cover


def timer_hours(policy: Policy, now_ms: int) -> HoursFact | None:
    """The fact a timer decided at `now_ms` carries under `policy` (None without hours)."""
    desk = policy.handoff
    if desk is None or desk.business_hours is None:
        return None
    return hours_fact(desk.business_hours, now_ms)


def zone_problems(policy: Policy) -> tuple[str, ...]:
    """`salesbot check`'s lines for a time zone the pinned database does not know."""
    desk = policy.handoff
    if desk is None or desk.business_hours is None:
        return ()
    name = desk.business_hours.time_zone
    try:
        zone(name)
    except UnknownZoneError:
        return (
            f"handoff.business_hours.time_zone: {name!r} is not an IANA time zone "
            "(such as Europe/Paris or America/New_York)",
        )
    return ()
