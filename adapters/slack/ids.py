"""Names shared by the Slack translations in both directions.

Conversation ids:
- a thread in a channel (including a top-level message, which starts its own thread):
  `slack:{team}:{channel}:{thread_ts}`;
- a direct message channel, or a channel without a thread (slash commands):
  `slack:{team}:{channel}`.
The id is the address: the router reads the channel and thread back out of it.

Button values carry the conversation, the target (quote id, ticket key), the card's ref and
a nonce, so a click is routed to the right conversation whatever message the card sits in,
and a redelivered click is recognised. Since card actions are bound to their card, a value
also carries a signature (`adapters.action_binding.ActionKey`) over the installing team,
the conversation, the action, the target, the card's ref and the nonce: a click is acted on
only when it verifies (see `inbound.from_action`). A value without `s` is one written
before signing existed.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from adapters.action_binding import ActionKey, Verdict
from adapters.ids import IdScheme

PREFIX = "slack"
SCHEME = IdScheme(
    adapter=PREFIX,
    channel_prefix=f"{PREFIX}:",
    delivery_prefixes=(f"{PREFIX}:",),
    conversation_prefix=f"{PREFIX}:",
)
"""Slack's ids: channels `slack:{channel}`, deliveries `slack:…` (messages, commands,
clicks, views), conversations `slack:{team}:{channel}[:{thread_ts}]`."""
MAX_BUTTON_VALUE = 2000  # Slack's limit for a button's value
COMMAND_DELIVERY_PREFIX = SCHEME.delivery_id("cmd:")
RESPONSE_KEY_PREFIX = f"{PREFIX}:response:"


class SlackLocation(NamedTuple):
    team: str
    channel: str
    thread_ts: str | None


def conversation_id(team: str, channel: str, thread_ts: str | None = None) -> str:
    if thread_ts:
        return SCHEME.conversation_id(f"{team}:{channel}:{thread_ts}")
    return SCHEME.conversation_id(f"{team}:{channel}")


def location(conversation: str) -> SlackLocation | None:
    """The Slack address of a Slack conversation id; None for other platforms' ids."""
    parts = conversation.split(":")
    if parts[0] != PREFIX or len(parts) not in (3, 4):
        return None
    return SlackLocation(parts[1], parts[2], parts[3] if len(parts) == 4 else None)


def message_delivery_id(channel: str, ts: str) -> str:
    """One message, however it arrives (`message.*` and `app_mention` carry different
    event ids for the same @mention; retries repeat the event id): dedupe on (channel, ts)."""
    return SCHEME.delivery_id(f"msg:{channel}:{ts}")


def command_delivery_id(trigger_id: str) -> str:
    """A slash command, keyed by its trigger id (unique per invocation)."""
    return f"{COMMAND_DELIVERY_PREFIX}{trigger_id}"


def response_key(delivery_id: str) -> str | None:
    """The adapter-state key under which a slash command's `response_url` is kept (its
    expiry and use count): the endpoint writes it before the command is decided, the router
    names it on the routes of the command's replies, the sender posts through it. None for
    deliveries that are not slash commands."""
    if not delivery_id.startswith(COMMAND_DELIVERY_PREFIX):
        return None
    return f"{RESPONSE_KEY_PREFIX}{delivery_id.removeprefix(COMMAND_DELIVERY_PREFIX)}"


class ButtonSigner(NamedTuple):
    """Signs and checks button values for one installation (the team that installed the
    app: lead conversations have no team in their id, but their cards are posted by this
    app in its own workspace)."""

    key: ActionKey
    team: str

    def sign(self, conversation: str, action: str, target: str, ref: str, nonce: str) -> str:
        return self.key.sign(self.team, conversation, action, target, ref, nonce)

    def verdict(
        self, signature: str, conversation: str, action: str, target: str, ref: str, nonce: str
    ) -> Verdict:
        return self.key.verdict(signature, self.team, conversation, action, target, ref, nonce)


def button_value(
    conversation: str,
    target: str,
    nonce: str,
    *,
    action: str | None = None,
    ref: str = "",
    signer: ButtonSigner | None = None,
) -> str:
    """A button's value; signed when `signer` (and the button's `action`) are given."""
    data = {"c": conversation, "t": target, "n": nonce}
    if signer is not None:
        if action is None:
            raise ValueError("a signed button value needs its action")
        data["r"] = ref
        data["s"] = signer.sign(conversation, action, target, ref, nonce)
    value = json.dumps(data, separators=(",", ":"))
    if len(value) > MAX_BUTTON_VALUE:
        raise ValueError("button value longer than Slack allows")
    return value


class ButtonValue(NamedTuple):
    conversation: str
    target: str
    nonce: str
    ref: str = ""
    signature: str = ""
    """Empty for a value written before buttons were signed."""


def parse_button_value(value: str) -> ButtonValue | None:
    """None for a value this app did not write (a forged or foreign button)."""
    try:
        data = json.loads(value)
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    c, t, n = data.get("c"), data.get("t"), data.get("n")
    if not (isinstance(c, str) and isinstance(t, str) and isinstance(n, str)) or not c:
        return None
    r, s = data.get("r", ""), data.get("s", "")
    if not (isinstance(r, str) and isinstance(s, str)):
        return None
    return ButtonValue(c, t, n, r, s)
