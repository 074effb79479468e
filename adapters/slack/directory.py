"""Who is who in the installing workspace: the bot's own identity and guest status.

`auth.test` is asked once; `users.info` once per user (cached, bounded), because a rep's
role depends on being a full member, not a guest (`is_restricted` / `is_ultra_restricted`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.inbound import SlackContext


class SlackDirectory:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        auditors: frozenset[str],
        approvers: frozenset[str],
        handoff_channel: str | None,
        capacity: int = 10_000,
    ) -> None:
        self._client = client
        self._auditors = auditors
        self._approvers = approvers
        self._handoff = handoff_channel
        self._context: SlackContext | None = None
        self._guests: OrderedDict[str, bool] = OrderedDict()
        self._capacity = capacity

    async def context(self) -> SlackContext:
        if self._context is None:
            identity: Any = await self._client.auth_test()
            self._context = SlackContext(
                team_id=str(identity["team_id"]),
                bot_user_id=str(identity["user_id"]),
                bot_id=identity.get("bot_id"),
                auditors=self._auditors,
                approvers=self._approvers,
                handoff_channel=self._handoff,
            )
        return self._context

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
