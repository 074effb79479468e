"""The terminal's ids: one outbox channel, `terminal` (its whole name: a terminal shows
one conversation at a time), deliveries `chat:{session}:{n}`, and the conversations a
session starts, `chat-{session}` (`--conversation` may continue any other)."""

from __future__ import annotations

from typing import Final

from adapters.ids import IdScheme

SCHEME: Final = IdScheme(
    adapter="terminal",
    channel_prefix="terminal",
    delivery_prefixes=("chat:",),
    conversation_prefix="chat-",
)
