"""Time for the edges. The domain never reads a clock; `bot/` passes epoch milliseconds in."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def system_now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_iso_ms(text: str) -> int:
    """ISO 8601 to epoch ms. A time without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r} (e.g. 2026-11-24T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
