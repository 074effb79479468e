"""What adapters provide to the runtime: routing and delivery.

The runtime decides *what* to say; an adapter's `Router` says *where* each neutral reply
goes (a channel and thread, a conversation reference, a URL), and its `Sender` delivers one
message with exactly one request — no retries of its own — and classifies the answer. The
outbox owns retries, pacing and the look-before-resend rule, so they never stack with an
SDK's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import Field

from domain.cards import Reply
from domain.inbound import Inbound
from domain.model import Frozen
from domain.state import ConversationState

OUTBOX_PAYLOAD_SCHEMA_VERSION = 1
"""Version of an `OutboxPayload` as the outbox stores it."""


class Route(Frozen):
    """Where one reply goes: the outbox channel (also the pacing key, e.g. "slack:C123") and
    the platform's addressing for it.

    `adapter` and `adapter_version` name the adapter that chose it (its package: "slack",
    "teams", …) and the version of what it keeps in `target` and of how its sender renders
    a reply; the outbox payload records both, so a stored item says which adapter code it
    was written for. Empty for a route recorded before routes carried them (a pending
    answer from an earlier release)."""

    channel: str
    target: dict[str, Any] = Field(default_factory=dict)
    adapter: str = ""
    adapter_version: int = 0


class OutboxPayload(Frozen):
    """What an outbox item holds for its sender (`storage.ports.OutboxItem.payload`, stored
    as JSON): the platform-neutral reply, the route's `target`, who the reply answers, and
    the versions — of this record, of the salesbot that wrote it and of the adapter whose
    route it follows. Items written before payloads were versioned have none of the four
    (null here); they are still sent as before."""

    reply: Reply
    target: dict[str, Any] = Field(default_factory=dict)
    requester: str
    schema_version: int | None = None
    generator_version: str | None = None
    adapter: str | None = None
    adapter_version: int | None = None


class Router(Protocol):
    """Maps a reply's neutral audience to concrete destinations. The conversation's state
    (after the decision) tells where it lives, e.g. the reply URL its lead came with."""

    def route(
        self, inbound: Inbound, reply: Reply, state: ConversationState
    ) -> Sequence[Route]: ...


class Delivery(Frozen):
    """One message to deliver, as the outbox hands it to a sender.

    `key` is the idempotency key: senders tag the posted message with it (Slack message
    metadata, an HTTP header) so `find_sent` can recognise it after an uncertain send.
    `payload` holds the neutral reply (`payload["reply"]`) and the route's `target`.
    """

    key: str
    conversation_id: str
    channel: str
    payload: dict[str, Any]
    attempts: int = 0

    @property
    def reply(self) -> Reply:
        return Reply.model_validate(self.payload["reply"])

    @property
    def target(self) -> dict[str, Any]:
        target = self.payload.get("target", {})
        return target if isinstance(target, dict) else {}


class Sent(Frozen):
    """Posted; `remote_id` is the platform's id for it (Slack `ts`, Teams activity id)."""

    remote_id: str | None = None


class RetryLater(Frozen):
    """Not posted, try again: a 429 (with `retry_after_ms` from `Retry-After`), a 5xx, a reset
    before the request was sent.

    `attempted=False`: nothing was even tried, because the destination is paused (a Slack
    installation whose bot token was revoked). The item goes back to the outbox after
    `retry_after_ms` without counting an attempt, so a pause of any length dead-letters
    nothing and the channel's order is kept."""

    reason: str
    retry_after_ms: int | None = None
    attempted: bool = True


class TimedOut(Frozen):
    """No answer in time: the request may or may not have been posted."""

    reason: str = "timeout"


class Rejected(Frozen):
    """A permanent refusal (channel_not_found, not_in_channel, invalid_auth, …): never retried."""

    reason: str


SendOutcome = Sent | RetryLater | TimedOut | Rejected


class Sender(Protocol):
    """One platform's delivery. It should raise only for the unexpected: every exception is
    treated as "may have been posted"."""

    async def send(self, delivery: Delivery) -> SendOutcome: ...

    async def find_sent(self, delivery: Delivery) -> str | None:
        """After an uncertain send: the remote id of the message tagged with `delivery.key`
        if it was posted after all (e.g. found in the channel's recent history), else None."""
        ...
