"""Who is who in the installing workspace: the bot's own identity, guest status, and the
members of the user groups named as auditors or approvers.

`auth.test` is asked once; `users.info` once per user (cached, bounded), because a rep's
role depends on being a full member, not a guest (`is_restricted` / `is_ultra_restricted`).
Auditors and approvers are user ids or user-group ids (`S…`); a group's members are read
with `usergroups.users.list` and kept for `GROUP_TTL_S`, so a change in the group takes
effect within minutes, and rights are checked when each action arrives.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.inbound import SlackContext

GROUP_TTL_S = 300.0


class SlackDirectory:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        auditors: frozenset[str],
        approvers: frozenset[str],
        handoff_channel: str | None,
        leads_channel: str | None = None,
        capacity: int = 10_000,
    ) -> None:
        self._client = client
        self._auditors = auditors
        self._approvers = approvers
        self._handoff = handoff_channel
        self._leads = leads_channel
        self._owners: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._identity: dict[str, Any] | None = None
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._guests: OrderedDict[str, bool] = OrderedDict()
        self._capacity = capacity

    async def context(self) -> SlackContext:
        if self._identity is None:
            identity: Any = await self._client.auth_test()
            self._identity = {
                "team_id": str(identity["team_id"]),
                "bot_user_id": str(identity["user_id"]),
                "bot_id": identity.get("bot_id"),
            }
        return SlackContext(
            **self._identity,
            auditors=await self._expand(self._auditors),
            approvers=await self._expand(self._approvers),
            handoff_channel=self._handoff,
            leads_channel=self._leads,
        )

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
            if message.get("ts") == thread_ts and ref.startswith("lead:"):
                owner = ref.removeprefix("lead:")
        self._owners[key] = owner
        while len(self._owners) > self._capacity:
            self._owners.popitem(last=False)
        return owner

    async def is_guest(self, user_id: str) -> bool:
        """True for guests; a user Slack will not describe is treated as a guest (least rights)."""
        cached = self._guests.get(user_id)
        if cached is not None:
            self._guests.move_to_end(user_id)
            return cached
        try:
            info: Any = await self._client.users_info(user=user_id)
            user = info.get("user") or {}
            guest = bool(user.get("is_restricted") or user.get("is_ultra_restricted"))
        except SlackApiError:
            return True  # not cached: the next message asks again
        self._guests[user_id] = guest
        while len(self._guests) > self._capacity:
            self._guests.popitem(last=False)
        return guest
