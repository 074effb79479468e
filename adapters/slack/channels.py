"""Each workspace's handoff and leads channels, as its admins chose them.

An admin (`SALESBOT_ADMINS`) runs `/salesbot setup handoff #deals` in a workspace; the domain
records `channel_set` (who, which workspace, which channel) in the conversation it was run
in, and once that is committed the Slack surface writes the choice here. The router reads
it to place handoff, approval, escalation and team cards by the conversation's workspace,
the sender to post them as that workspace's bot, the translation to treat the workspace's
handoff channel as one.

A workspace nobody set a channel for: the first workspace (`SLACK_BOT_TOKEN`'s) uses the
configured ones (`SLACK_HANDOFF_CHANNEL`, `SLACK_LEADS_CHANNEL`), exactly as before; a
workspace that added the app itself (Add to Slack) uses the direct messages of whoever
added it (`installed_by`), never the configured channels, which are the first workspace's:
one organisation's tickets and leads never reach another's people. Conversations that
belong to no workspace (the first installation's leads from the lead feed) use the
configured channels too.

Kept as one document of the store's adapter state (`slack:channels`), read at start and
again every `REFRESH_MS`, so another replica's change is followed within that time and a
restart keeps every choice. The event log remains the record of who chose what; this
document is what the adapter acts on (`storage.ports.AdapterStateStore`: losing it costs
the fallback, never a decision). The document carries `schema` and `generator`; times are
`…_ms`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

from domain import GENERATOR
from domain.events import ChannelSet

log = logging.getLogger(__name__)

KEY = "slack:channels"
SCHEMA = 1
REFRESH_MS = 30_000
INSTALLATION_PREFIX = "slack:"
Purpose = Literal["handoff", "leads"]
PURPOSES: tuple[Purpose, ...] = ("handoff", "leads")


class StateBook(Protocol):
    """The store's adapter state (`storage.ports.AdapterStateStore`), as used here."""

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None: ...

    async def get_state(self, key: str) -> dict[str, Any] | None: ...


def installation_id(team: str) -> str:
    """How a Slack workspace is named to the domain (`CommandInvoked.installation`)."""
    return f"{INSTALLATION_PREFIX}{team}"


def team_of(installation: str) -> str | None:
    """The workspace an installation id names; None for another platform's."""
    if not installation.startswith(INSTALLATION_PREFIX):
        return None
    team = installation.removeprefix(INSTALLATION_PREFIX)
    return team if team and ":" not in team else None


class WorkspaceChannels:
    """The per-workspace choices in memory (read synchronously by the router), backed by
    the store's `slack:channels` document."""

    def __init__(
        self,
        states: StateBook,
        clock: Callable[[], int],
        *,
        handoff_channel: str | None,
        leads_channel: str | None,
    ) -> None:
        self._states = states
        self._clock = clock
        self._configured: dict[Purpose, str | None] = {
            "handoff": handoff_channel,
            "leads": leads_channel,
        }
        self._chosen: dict[str, dict[Purpose, str]] = {}
        self._installers: dict[str, str] = {}
        self._loaded_at_ms: int | None = None

    def handoff(self, team: str | None) -> str | None:
        """The workspace's handoff channel: chosen by its admin, else the configured one."""
        return self._channel(team, "handoff")

    def leads(self, team: str | None) -> str | None:
        """The workspace's leads channel: chosen by its admin, else the configured one."""
        return self._channel(team, "leads")

    def configured(self, purpose: Purpose) -> str | None:
        return self._configured[purpose]

    def chosen(self, team: str | None) -> frozenset[str]:
        """The channels an admin chose for `team` (where its cards are posted)."""
        if team is None:
            return frozenset()
        return frozenset(self._chosen.get(team, {}).values())

    def chosen_for(self, team: str, purpose: Purpose) -> str | None:
        """The channel `team`'s admin chose for `purpose`; None when none was chosen."""
        return self._chosen.get(team, {}).get(purpose)

    def added_itself(self, team: str | None) -> bool:
        """Whether `team` is a workspace other than the first, which added the app itself
        (its installer was noted): its cards stay in its own channels."""
        return team is not None and team in self._installers

    def installer_channel(self, team: str | None) -> str | None:
        """Where an installed workspace's cards go while its admin has chosen no channel:
        the direct messages of whoever added the app (a Slack user id is a channel for
        `chat.postMessage`: the app's DM with them). None for the first workspace."""
        return None if team is None else self._installers.get(team)

    def _channel(self, team: str | None, purpose: Purpose) -> str | None:
        """The workspace's chosen channel; else, for a workspace that added the app itself,
        its installer's direct messages — never the configured channels, which are the
        first workspace's: one organisation's tickets and leads never reach another's
        people; else the configured one."""
        if team is not None:
            chosen = self._chosen.get(team, {}).get(purpose)
            if chosen is not None:
                return chosen
            installer = self._installers.get(team)
            if installer is not None:
                return installer
        return self._configured[purpose]

    async def load(self) -> None:
        """Read the document (at start, then whenever it is older than `REFRESH_MS`)."""
        document = await self._states.get_state(KEY) or {}
        self._keep(document.get("workspaces"))

    def _keep(self, workspaces: object) -> None:
        self._chosen = _parse(workspaces)
        self._installers = _installers(workspaces)
        self._loaded_at_ms = self._clock()

    async def installed_by(self, team: str, user: str, at_ms: int) -> None:
        """A workspace other than the first added the app, through `user`: its cards go to
        their direct messages until its admin chooses channels (`_channel`)."""
        document = await self._states.get_state(KEY) or {}
        workspaces = document.get("workspaces")
        workspaces = dict(workspaces) if isinstance(workspaces, dict) else {}
        entry = workspaces.get(team)
        entry = dict(entry) if isinstance(entry, dict) else {}
        entry["installer"] = {"user": user, "at_ms": at_ms}
        workspaces[team] = entry
        await self._states.put_state(
            KEY, {"schema": SCHEMA, "generator": GENERATOR, "workspaces": workspaces}, at_ms
        )
        self._keep(workspaces)

    async def refresh_if_stale(self) -> None:
        loaded = self._loaded_at_ms
        if loaded is None or self._clock() - loaded >= REFRESH_MS:
            await self.load()

    async def chose(self, event: ChannelSet, at_ms: int) -> bool:
        """Keep a committed `channel_set` of a Slack workspace (made at `at_ms`); False for
        another platform's installation (nothing kept). Keeping the same choice again
        writes the same entry, and a choice older than the one kept is not applied, so it
        is safe to retry in any order."""
        team = team_of(event.installation)
        if team is None:
            return False
        document = await self._states.get_state(KEY) or {}
        workspaces = document.get("workspaces")
        workspaces = dict(workspaces) if isinstance(workspaces, dict) else {}
        entry = workspaces.get(team)
        entry = dict(entry) if isinstance(entry, dict) else {}
        kept = entry.get(event.purpose)
        if isinstance(kept, dict) and isinstance(kept.get("at_ms"), int) and kept["at_ms"] > at_ms:
            log.info("slack workspace %s: an older %s choice ignored", team, event.purpose)
            self._keep(workspaces)
            return True
        entry[event.purpose] = {
            "channel": event.channel,
            "name": event.name,
            "by": event.by,
            "at_ms": at_ms,
        }
        workspaces[team] = entry
        await self._states.put_state(
            KEY, {"schema": SCHEMA, "generator": GENERATOR, "workspaces": workspaces}, at_ms
        )
        self._keep(workspaces)
        log.info(
            "slack workspace %s: %s channel set to %s by %s",
            team,
            event.purpose,
            event.channel,
            event.by,
        )
        return True


def _parse(value: object) -> dict[str, dict[Purpose, str]]:
    """The document's workspaces; an entry of another shape is skipped (a newer writer)."""
    chosen: dict[str, dict[Purpose, str]] = {}
    if not isinstance(value, dict):
        return chosen
    for team, entry in value.items():
        if not isinstance(team, str) or not isinstance(entry, dict):
            continue
        channels: dict[Purpose, str] = {}
        for purpose in PURPOSES:
            choice = entry.get(purpose)
            if isinstance(choice, dict) and isinstance(choice.get("channel"), str):
                channels[purpose] = choice["channel"]
        if channels:
            chosen[team] = channels
    return chosen


def _installers(value: object) -> dict[str, str]:
    """Each installed workspace's installer (`installed_by`), by team."""
    found: dict[str, str] = {}
    if not isinstance(value, dict):
        return found
    for team, entry in value.items():
        installer = entry.get("installer") if isinstance(entry, dict) else None
        user = installer.get("user") if isinstance(installer, dict) else None
        if isinstance(team, str) and isinstance(user, str) and user:
            found[team] = user
    return found
