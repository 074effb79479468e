"""Who is who in the installing workspace: the bot's own identity, guest status, and the
members of the user groups named as auditors, approvers, managers or admins.

`auth.test` is asked once; `users.info` once per user (cached, bounded), because a rep's
role depends on being a full member, not a guest (`is_restricted` / `is_ultra_restricted`),
and because only it gives the name people see (cards say "Accepted by Pat Lee", as on Teams).
Auditors and approvers are user ids or user-group ids (`S…`); a group's members are read
with `usergroups.users.list` and kept for `GROUP_TTL_S`, so a change in the group takes
effect within minutes, and rights are checked when each action arrives.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.roles import InstallationRoles, RoleSets
from adapters.slack.channels import WorkspaceChannels, installation_id
from adapters.slack.inbound import SlackContext
from domain.presenters import lead_card_ref

LEAD_CARD_REF = lead_card_ref("")
"""What a lead card's ref starts with: the rest is its conversation."""
GROUP_TTL_S = 300.0
UNKNOWN_TTL_S = 60.0


class SlackDirectory:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        auditors: frozenset[str],
        approvers: frozenset[str],
        managers: frozenset[str] = frozenset(),
        admins: frozenset[str] = frozenset(),
        handoff_channel: str | None,
        leads_channel: str | None = None,
        channels: WorkspaceChannels | None = None,
        roles: InstallationRoles | None = None,
        capacity: int = 10_000,
        first_team: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        """`handoff_channel`, `leads_channel`: this workspace's configured ones (the first
        workspace's; None for an installed one); `channels`: the ones its admin chose,
        which take their place. The role lists given are the environment's; `roles`: the
        lists this workspace's admin set, which take their place (`adapters/roles.py`).
        `first_team`: for an installed workspace's directory, the first workspace's id
        (None without a configured token): the same workspace's data stays the first
        installation's whether it speaks through its own installation or the configured
        token; None for the first workspace's own directory."""
        self._first_team = first_team
        self._client = client
        self._auditors = auditors
        self._approvers = approvers
        self._managers = managers
        self._admins = admins
        self._channels = channels
        self._roles = roles
        self._handoff = handoff_channel
        self._leads = leads_channel
        self._owners: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._identity: dict[str, Any] | None = None
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._people: OrderedDict[str, _Person] = OrderedDict()
        self._unknown: dict[str, float] = {}  # user → when to ask again (monotonic)
        self._capacity = capacity

    @property
    def client(self) -> AsyncWebClient:
        """The Web API client of this directory's workspace (its bot token)."""
        return self._client

    async def context(self) -> SlackContext:
        installation = await self._installation()
        handoff, leads = self._handoff, self._leads
        chosen = self._channels
        if chosen is not None:
            team = str(installation["team_id"])
            handoff = chosen.chosen_for(team, "handoff") or handoff
            leads = chosen.chosen_for(team, "leads") or leads
        configured = {self._handoff, self._leads} - {None, handoff, leads}
        team = str(installation["team_id"])
        first = team if self._first_team is None else await self._first_team()
        lists = RoleSets(
            approvers=self._approvers,
            auditors=self._auditors,
            managers=self._managers,
            admins=self._admins,
        )
        if self._roles is not None:
            lists = await self._roles.for_installation(installation_id(team), lists)
        return SlackContext(
            **installation,
            installation="" if team == first else installation_id(team),
            auditors=await self._expand(lists.auditors),
            approvers=await self._expand(lists.approvers),
            managers=await self._expand(lists.managers),
            admins=await self._expand(lists.admins),
            handoff_channel=handoff,
            leads_channel=leads,
            card_channels=frozenset(channel for channel in configured if channel is not None),
        )

    async def team_id(self) -> str:
        """The installing workspace (`auth.test`, asked once): button values are signed for
        it, and a click from elsewhere is refused."""
        return str((await self._installation())["team_id"])

    async def _installation(self) -> dict[str, Any]:
        if self._identity is None:
            identity: Any = await self._client.auth_test()
            self._identity = {
                "team_id": str(identity["team_id"]),
                "bot_user_id": str(identity["user_id"]),
                "bot_id": identity.get("bot_id"),
            }
        return self._identity

    async def _expand(self, entries: frozenset[str]) -> frozenset[str]:
        """User ids as given; user groups (`S…`) replaced by their current members."""
        users = {entry for entry in entries if not entry.startswith("S")}
        for group in entries - users:
            users |= await self._members(group)
        return frozenset(users)

    async def _members(self, group: str) -> frozenset[str]:
        now = time.monotonic()
        cached = self._groups.get(group)
        if cached is not None and now - cached[0] < GROUP_TTL_S:
            return cached[1]
        try:
            answer: Any = await self._client.usergroups_users_list(usergroup=group)
            members = frozenset(str(user) for user in answer.get("users") or ())
        except SlackApiError:
            # Slack briefly unavailable: keep the last members read; a group never read
            # grants nothing (least rights).
            return cached[1] if cached is not None else frozenset()
        self._groups[group] = (now, members)
        return members

    async def thread_owner(self, channel: str, thread_ts: str) -> str | None:
        """The lead conversation whose card starts this thread (the card's metadata `ref`
        is `lead:{conversation}`), else None. Asked once per thread."""
        key = (channel, thread_ts)
        if key in self._owners:
            return self._owners[key]
        try:
            answer: Any = await self._client.conversations_history(
                channel=channel,
                latest=thread_ts,
                inclusive=True,
                limit=1,
                include_all_metadata=True,
            )
        except SlackApiError:
            return None  # not cached: asked again with the next message
        owner: str | None = None
        for message in answer.get("messages") or ():
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            ref = str(payload.get("ref") or "")
            if message.get("ts") == thread_ts and ref.startswith(LEAD_CARD_REF):
                owner = ref.removeprefix(LEAD_CARD_REF)
        self._owners[key] = owner
        while len(self._owners) > self._capacity:
            self._owners.popitem(last=False)
        return owner

    async def is_guest(self, user_id: str) -> bool:
        """True for guests; a user Slack will not describe is treated as a guest (least rights)."""
        person = await self._person(user_id)
        return True if person is None else person.guest

    async def display_name(self, user_id: str) -> str | None:
        """The name people see in Slack (display name, else real name), for cards and
        greetings: interactive payloads carry only the handle, events often nothing."""
        person = await self._person(user_id)
        return person.name if person is not None else None

    async def _person(self, user_id: str) -> _Person | None:
        """`users.info`, once per user (bounded cache); None when Slack will not say, asked
        again after `UNKNOWN_TTL_S`."""
        cached = self._people.get(user_id)
        if cached is not None:
            self._people.move_to_end(user_id)
            return cached
        now = time.monotonic()
        if self._unknown.get(user_id, 0.0) > now:
            return None
        try:
            info: Any = await self._client.users_info(user=user_id)
        except SlackApiError:
            # Asked again after a while, not with every message of a busy thread.
            self._unknown[user_id] = now + UNKNOWN_TTL_S
            while len(self._unknown) > self._capacity:
                self._unknown.pop(next(iter(self._unknown)))
            return None
        user = info.get("user") or {}
        profile = user.get("profile") or {}
        name = (
            str(profile.get("display_name") or "").strip()
            or str(profile.get("real_name") or "").strip()
            or str(user.get("real_name") or "").strip()
        )
        person = _Person(
            guest=bool(user.get("is_restricted") or user.get("is_ultra_restricted")),
            name=name or None,
        )
        self._people[user_id] = person
        while len(self._people) > self._capacity:
            self._people.popitem(last=False)
        return person


class _Person(NamedTuple):
    guest: bool
    name: str | None
