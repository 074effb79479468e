"""The surfaces salesbot talks to, registered in one place (see `bot.surfaces.base` for
what a registration holds, and `docs/adapters.md` for adding one).

`default_registrations` is the only list of the built-in surfaces `salesbot serve` runs.
Their order is the order a reply is routed in (and so the order of its outbox items).
"""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from adapters.teams.connector import TokenProvider
from bot.surfaces import leadfeed, playground, slack, teams
from bot.surfaces.base import Registration
from bot.surfaces.slack import SLACK_PACING_MS

__all__ = ["SLACK_PACING_MS", "default_registrations"]


def default_registrations(
    *,
    slack_client: AsyncWebClient | None = None,
    slack_pacing_ms: int = SLACK_PACING_MS,
    teams_tokens: TokenProvider | None = None,
) -> list[Registration[Any]]:
    """The built-in surfaces. The keyword arguments are the built-ins' test seams: a Slack
    client pointed at a local fake, its pace, a Teams token source that asks no one."""
    return [
        slack.registration(client=slack_client, pacing_ms=slack_pacing_ms),
        teams.registration(tokens=teams_tokens),
        playground.registration(),
        leadfeed.registration(),
    ]
