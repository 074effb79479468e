"""What Slack sends when someone presses a button on a bot's message, and the bot's own
messages in a channel of the fake Web API: shared by the in-process Slack tests
(`tests/e2e/test_slack.py`) and the replica tests (`tests/support/replicas.py`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tests.fakes.slack_api import FakeSlackApi

TEAM, BOT = "T0001", "UBOT"


def block_actions(
    message: Mapping[str, Any],
    action: str,
    user: str,
    *,
    channel: str,
    user_team: str = TEAM,
    team: str = TEAM,
    value: str | None = None,
) -> dict[str, Any]:
    """The `block_actions` payload of `user` clicking the button `action` of `message` as
    it sits in `channel` (and its thread); `value` replaces the button's own."""
    button = next(
        element
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action
    )
    container = {"type": "message", "message_ts": message["ts"], "channel_id": channel}
    if message.get("thread_ts"):
        container["thread_ts"] = message["thread_ts"]
    return {
        "type": "block_actions",
        "user": {"id": user, "team_id": user_team, "name": user.lower()},
        "team": {"id": team},
        "api_app_id": "A0001",
        "trigger_id": f"trigger-{time.monotonic_ns()}",
        "channel": {"id": channel},
        "container": container,
        "message": dict(message),
        "actions": [
            {
                "type": "button",
                "action_id": action,
                "block_id": "b",
                "value": value if value is not None else button["value"],
                "action_ts": str(time.time()),
            }
        ],
    }


def bot_messages(api: FakeSlackApi, channel: str) -> list[dict[str, Any]]:
    return [m for m in api.messages(channel) if m.get("user") == BOT or m.get("bot_id")]
