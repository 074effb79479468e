"""Which bot speaks for which workspace: the installation's own token (Add to Slack,
`oauth.py`), else the configured `SLACK_BOT_TOKEN` (the first workspace).

Every Slack workspace that installed the app through "Add to Slack" has its own bot token
(`oauth_store.StoreInstallations`). A request from Slack names its workspace (`team_id`),
and so does a Slack conversation's id (`slack:{team}:…`): the endpoint reads that
workspace's people, guests and bot identity with its token (`directory_for`), and the
sender posts with it (`for_delivery`).

Which workspace a delivery goes out in is the workspace of the channel it is posted to:
a conversation's own channel (its replies, private notices, charts) belongs to the
conversation's workspace, and so do the handoff and leads channels its admin chose
(`channels.py`); the configured handoff, leads and escalation channels
(`SLACK_HANDOFF_CHANNEL`, …) live in the first workspace, so what goes there is posted, and
its buttons signed, as the first workspace's bot.

A workspace without an installation of its own is served by the configured token, exactly
as before installations existed: with `SLACK_BOT_TOKEN` alone nothing changes.

Look-ups are cached per workspace for `CACHE_MS` (by the injected clock) and dropped at
once when this process saves or deletes that workspace's installation (`forget`); another
replica's install is seen within `CACHE_MS`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.web.async_client import AsyncWebClient

from adapters.ports import Delivery
from adapters.slack.channels import WorkspaceChannels
from adapters.slack.directory import SlackDirectory
from adapters.slack.ids import location
from adapters.slack.sender import make_client

log = logging.getLogger(__name__)

CACHE_MS = 60_000
MAX_CACHED = 10_000


class _Speaker(NamedTuple):
    client: AsyncWebClient
    directory: SlackDirectory
    own: bool
    """True: the workspace's own installation; False: the configured token's."""


class _Cached(NamedTuple):
    speaker: _Speaker | None
    at_ms: int


class Workspaces:
    """`default` is the configured token's client and directory (the first workspace);
    `new_directory(client, team)` makes the directory of an installed workspace."""

    def __init__(
        self,
        *,
        default_client: AsyncWebClient,
        default_directory: SlackDirectory,
        installations: AsyncInstallationStore | None,
        new_directory: Callable[[AsyncWebClient, str], SlackDirectory],
        api_url: str,
        clock: Callable[[], int],
        has_default: bool = True,
        channels: WorkspaceChannels | None = None,
    ) -> None:
        """`has_default` False: no `SLACK_BOT_TOKEN`, only workspaces installed through Add
        to Slack are served (a request from any other is ignored, a delivery to one
        refused). `channels`: the workspaces' own handoff and leads channels."""
        self._channels = channels
        self._default = _Speaker(default_client, default_directory, False)
        self._has_default = has_default
        self._installations = installations
        self._new_directory = new_directory
        self._api_url = api_url
        self._clock = clock
        self._speakers: dict[str, _Cached] = {}

    @property
    def default_client(self) -> AsyncWebClient:
        """The configured token's client (`SLACK_BOT_TOKEN`)."""
        return self._default.client

    @property
    def multi(self) -> bool:
        """Installations of their own are looked up (Add to Slack is configured)."""
        return self._installations is not None

    async def removed(self, team: str, *, uninstalled: bool) -> None:
        """Slack said `team` uninstalled the app (everything of it is deleted) or revoked
        its bot token (its bot is deleted): from now on it has no installation of its own."""
        if self._installations is not None:
            if uninstalled:
                await self._installations.async_delete_all(enterprise_id=None, team_id=team)
            else:
                await self._installations.async_delete_bot(enterprise_id=None, team_id=team)
        self.forget(team)
        log.warning(
            "slack workspace %s %s: its installation is deleted; replies to it are refused "
            "until it installs the app again",
            team,
            "uninstalled the app" if uninstalled else "revoked the bot token",
        )

    def forget(self, team: str | None) -> None:
        """This process saved or deleted `team`'s installation: look it up again."""
        if team is not None:
            self._speakers.pop(team, None)

    async def client_for(self, team: str | None) -> AsyncWebClient | None:
        speaker = await self._speaker(team)
        return None if speaker is None else speaker.client

    async def directory_for(self, team: object) -> SlackDirectory | None:
        """The directory of the workspace a request names; None when no bot serves it."""
        speaker = await self._speaker(team if isinstance(team, str) and team else None)
        return None if speaker is None else speaker.directory

    async def has_own(self, team: str | None) -> bool:
        """Whether `team` has an installation of its own (not the configured token)."""
        speaker = await self._speaker(team)
        return speaker is not None and speaker.own

    async def for_delivery(self, delivery: Delivery) -> tuple[AsyncWebClient, str] | None:
        """The client a delivery is sent with and the team its buttons are signed for (the
        module docstring says which workspace that is); None when no bot serves it."""
        where = location(delivery.conversation_id)
        channel = delivery.target.get("channel")
        team = (
            where.team
            if where is not None and self._owns(where.team, where.channel, channel)
            else None
        )
        lead_team = delivery.target.get("team")
        if where is None and isinstance(lead_team, str) and lead_team:
            # A lead of an installed workspace: its view is that workspace's (`router.py`).
            team = lead_team
        if team is None and not self._has_default and where is not None:
            # No first workspace: the configured channels are the conversation's workspace's.
            team = where.team
        if team is None and where is not None and await self._elsewhere(where.team):
            # A safety net under the router (which places an installed workspace's cards in
            # its own channels): another organisation's conversation is never posted in
            # the first workspace's channels, by its bot.
            log.warning(
                "slack: a delivery of workspace %s to a channel that is not its own was refused",
                where.team,
            )
            return None
        speaker = await self._speaker(team)
        if speaker is None:
            return None
        if not speaker.own:
            return speaker.client, await self._default.directory.team_id()
        assert team is not None
        return speaker.client, team

    async def _elsewhere(self, team: str) -> bool:
        """Whether `team` is a workspace that added the app itself, not the first one."""
        if not self._has_default or not await self.has_own(team):
            return False
        return team != await self._default.directory.team_id()

    def _owns(self, team: str, own_channel: str, channel: object) -> bool:
        """Whether `channel` is one of `team`'s: the conversation's own, or a handoff or
        leads channel its admin chose."""
        if channel == own_channel:
            return True
        if self._channels is None:
            return False
        return channel in self._channels.chosen(team) or (
            channel is not None and channel == self._channels.installer_channel(team)
        )

    async def _speaker(self, team: str | None) -> _Speaker | None:
        fallback = self._default if self._has_default else None
        if team is None or self._installations is None:
            return fallback
        now = self._clock()
        cached = self._speakers.get(team)
        if cached is not None and now - cached.at_ms < CACHE_MS:
            return cached.speaker
        bot = await self._installations.async_find_bot(enterprise_id=None, team_id=team)
        known = cached.speaker if cached is not None else None
        speaker: _Speaker | None
        if bot is None or not bot.bot_token:
            speaker = fallback
        elif known is not None and known.own and known.client.token == bot.bot_token:
            speaker = known  # the same token: keep its directory's caches
        else:
            default = self._default.client
            client = make_client(bot.bot_token, self._api_url, timeout_s=default.timeout)
            client.session = default.session  # one connection pool for all
            speaker = _Speaker(client, self._new_directory(client, team), True)
        self._speakers[team] = _Cached(speaker, now)
        while len(self._speakers) > MAX_CACHED:
            self._speakers.pop(next(iter(self._speakers)))
        return speaker
