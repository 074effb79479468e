"""How a surface names what it puts in the shared store: its id scheme, as a typed value.

Every surface (Slack, Teams, the playground, the lead feed, the terminal, a CRM later)
writes three kinds of ids into the one store, and the others must tell them apart:

- **outbox channels** (`Route.channel`, also the outbox's pacing key): `slack:C123`,
  `teams:handoff`, `playground:…`, `lead-reply:lead-…`, `terminal`. The part before the
  first ":" is the platform label of `/metrics` and of the store's `outbox_stats`;
- **delivery ids** (`Inbound.delivery_id`, the dedupe key): `slack:msg:…`, `teams:act:…`,
  `lead:…`, `chat:…`;
- **conversation ids** (`Inbound.conversation_id`): `slack:T:C:ts`, `teams:19:…`,
  `playground:…`, `lead-…`, `chat-…`.

Each adapter declares its `IdScheme` once (`SCHEME` in its package's `ids` module), builds
its ids through it and recognises its own (and, through the shared `LEADS` scheme, the lead
conversations it hosts) through it; the composition root asks the schemes instead of
comparing string prefixes. The values are the ones every release has stored: a scheme
describes them, it never renames them.

Lead conversations are the one scheme several surfaces share: they have no chat platform
of their own (a lead arrives over HTTP, later from a CRM), the lead feed mints their ids,
and the team's platforms post their cards and accept clicks on them. Adapters do not
import each other, so that scheme lives here, beside the type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class IdScheme:
    """One surface's ids. `adapter` is its name as routes record it (`Route.adapter`);
    `channel_prefix` starts every outbox channel it routes to (the terminal's whole channel
    is its prefix); `delivery_prefixes` start every delivery id it mints (the lead feed has
    three kinds of deliveries); `conversation_prefix` starts the conversations it creates,
    None when it creates none of its own."""

    adapter: str
    channel_prefix: str
    delivery_prefixes: tuple[str, ...]
    conversation_prefix: str | None = None

    def __post_init__(self) -> None:
        if not self.adapter or not self.channel_prefix or not self.delivery_prefixes:
            raise ValueError("an id scheme needs an adapter name, a channel and a delivery prefix")
        if any(not prefix for prefix in self.delivery_prefixes) or self.conversation_prefix == "":
            raise ValueError(f"{self.adapter}: an empty prefix would claim every id")

    @property
    def platform(self) -> str:
        """The label of this surface's figures in `/metrics` and `outbox_stats`: its channels'
        part before the first ":" ("slack", "lead-reply", "terminal")."""
        return platform_of(self.channel_prefix)

    def channel(self, address: str = "") -> str:
        """The outbox channel for one of its addresses ("C123" → "slack:C123")."""
        return f"{self.channel_prefix}{address}"

    def owns_channel(self, channel: str) -> bool:
        return channel.startswith(self.channel_prefix)

    def delivery_id(self, rest: str, *, kind: int = 0) -> str:
        """A delivery id of the `kind`-th of its delivery prefixes."""
        return f"{self.delivery_prefixes[kind]}{rest}"

    def owns_delivery(self, delivery_id: str) -> bool:
        """Whether this surface minted the delivery (whoever acted did it from here)."""
        return delivery_id.startswith(self.delivery_prefixes)

    def conversation_id(self, rest: str) -> str:
        if self.conversation_prefix is None:
            raise ValueError(f"{self.adapter} creates no conversations of its own")
        return f"{self.conversation_prefix}{rest}"

    def owns_conversation(self, conversation_id: str) -> bool:
        prefix = self.conversation_prefix
        return prefix is not None and conversation_id.startswith(prefix)


def platform_of(channel: str) -> str:
    """The platform label of an outbox channel ("slack" for "slack:C123"), as the store's
    `outbox_stats` computes it."""
    return channel.split(":", 1)[0]


LEADS: Final = IdScheme(
    adapter="leadfeed",
    channel_prefix="lead-reply:",
    delivery_prefixes=("lead:", "lead-msg:", "lead-action:"),
    conversation_prefix="lead-",
)
"""The lead feed's scheme, shared with the platforms that host lead conversations.

    lead id (conversation) = "lead-" + …      delivery = "lead:" + … (the lead),
    reply channel = "lead-reply:" + lead id             "lead-msg:" + … (a message),
                                                        "lead-action:" + … (a signed link)

The prospect of a lead conversation acts as `lead:{lead id}` (`LEAD_ACTOR_PREFIX`)."""
LEAD_DELIVERY: Final = 0
LEAD_MESSAGE_DELIVERY: Final = 1
LEAD_ACTION_DELIVERY: Final = 2
LEAD_ACTOR_PREFIX: Final = "lead:"
"""A lead's prospect's actor id: `lead:{lead id}`."""


def lead_actor_id(lead_id: str) -> str:
    return f"{LEAD_ACTOR_PREFIX}{lead_id}"
