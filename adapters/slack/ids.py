"""Names shared by the Slack translations in both directions.

Conversation ids:
- a thread in a channel (including a top-level message, which starts its own thread):
  `slack:{team}:{channel}:{thread_ts}`;
- a direct message channel, or a channel without a thread (slash commands):
  `slack:{team}:{channel}`.
The id is the address: the router reads the channel and thread back out of it.

Button values carry the conversation and the target (quote id, ticket key) plus a nonce,
so a click is routed to the right conversation whatever message the card sits in, and a
redelivered click is recognised.
"""

from __future__ import annotations

import json
from typing import NamedTuple

PREFIX = "slack"
MAX_BUTTON_VALUE = 2000  # Slack's limit for a button's value


class SlackLocation(NamedTuple):
    team: str
    channel: str
    thread_ts: str | None


def conversation_id(team: str, channel: str, thread_ts: str | None = None) -> str:
    if thread_ts:
        return f"{PREFIX}:{team}:{channel}:{thread_ts}"
    return f"{PREFIX}:{team}:{channel}"


def location(conversation: str) -> SlackLocation | None:
    """The Slack address of a Slack conversation id; None for other platforms' ids."""
    parts = conversation.split(":")
    if parts[0] != PREFIX or len(parts) not in (3, 4):
        return None
    return SlackLocation(parts[1], parts[2], parts[3] if len(parts) == 4 else None)


def message_delivery_id(channel: str, ts: str) -> str:
    """One message, however it arrives (`message.*` and `app_mention` carry different
    event ids for the same @mention; retries repeat the event id): dedupe on (channel, ts)."""
    return f"{PREFIX}:msg:{channel}:{ts}"


def button_value(conversation: str, target: str, nonce: str) -> str:
    value = json.dumps({"c": conversation, "t": target, "n": nonce}, separators=(",", ":"))
    if len(value) > MAX_BUTTON_VALUE:
        raise ValueError("button value longer than Slack allows")
    return value


class ButtonValue(NamedTuple):
    conversation: str
    target: str
    nonce: str


def parse_button_value(value: str) -> ButtonValue | None:
    """None for a value this app did not write (a forged or foreign button)."""
    try:
        data = json.loads(value)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    c, t, n = data.get("c"), data.get("t"), data.get("n")
    if not (isinstance(c, str) and isinstance(t, str) and isinstance(n, str)) or not c:
        return None
    return ButtonValue(c, t, n)
