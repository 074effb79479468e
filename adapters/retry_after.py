"""`Retry-After` (RFC 9110 §10.2.3) as milliseconds, for every sender that reads it."""

from __future__ import annotations

import email.utils
import time


def retry_after_ms(value: str | None) -> int | None:
    """`Retry-After` given as seconds or as an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    try:
        return max(0, round(float(value) * 1000))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0, round((when.timestamp() - time.time()) * 1000))
