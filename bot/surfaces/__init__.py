"""The surfaces salesbot talks to, registered in one place (see `bot.surfaces.base` for
what a registration holds, and `docs/adapters.md` for adding one).

`default_registrations` is the only list of the built-in surfaces `salesbot serve` runs.
Their order is the order a reply is routed in (and so the order of its outbox items).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from slack_sdk.web.async_client import AsyncWebClient

from adapters.playground.access import PlaygroundAccess
from adapters.playground.hub import PlaygroundHub
from adapters.slack.installation import SlackInstallation
from adapters.teams.connector import TokenProvider
from bot.surfaces import crm, crm_installations, leadfeed, playground, slack, teams
from bot.surfaces.base import Registration, Surface, part_of
from bot.surfaces.slack import SLACK_PACING_MS

__all__ = ["SLACK_PACING_MS", "BuiltInViews", "TokenProvider", "default_registrations"]

T = TypeVar("T")


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
        crm.registration(),
        crm_installations.registration(),
    ]


class BuiltInViews:
    """The service's handles on the adapter objects behind its surfaces, for tests and
    tools (the wiring itself never looks inside a surface). The named views are the
    built-ins' that tests written before the registrations reach for."""

    surfaces: Sequence[Surface]

    def part(self, kind: type[T]) -> T | None:
        """The adapter object of type `kind` behind a configured surface, if any."""
        return part_of(self.surfaces, kind)

    @property
    def playground(self) -> PlaygroundHub | None:
        return self.part(PlaygroundHub)

    @property
    def playground_access(self) -> PlaygroundAccess:
        """The playground's access mode (local only when it is not served)."""
        return self.part(PlaygroundAccess) or PlaygroundAccess()

    @property
    def slack_installation(self) -> SlackInstallation | None:
        return self.part(SlackInstallation)
