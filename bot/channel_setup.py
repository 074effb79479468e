"""An installation's set-up, once an admin's `setup` is committed: where its handoff and
leads cards go, and who holds its role lists.

The domain decides `setup handoff|leads` and `setup approvers|auditors|managers|admins`
(who may, which installation, which channel or people) and records `channel_set` or
`roles_set`; the platform's adapter keeps the choice in its adapter state, which its router,
sender and directory read (`adapters/slack/channels.py`, `adapters/teams/tenants.py`,
`adapters/roles.py`). Each surface passes its adapter's `keep` (a `Keep`). The choice
reaches it twice, so that it is never lost between the commit and the adapter's write:

1. **As an outbox item committed with the event** (`setup_items`, one of the runtime's
   effects): one item per such event, on the setup channel of the installation's platform
   (`slack:~setup`, `teams:~setup`: the installation id's prefix is its platform's channel
   prefix). The outbox worker hands it to the platform's surface, whose sender is wrapped
   in `KeepingSetup`: the item is applied with `keep` — retried with the outbox's persisted
   backoff when the write fails, taken over after a crash like any unsent reply, and
   dead-lettered (recorded in the conversation, the team alerted) only after the outbox's
   last attempt. Items of one channel are handed out in order, so choices apply in the
   order they were committed.
2. **At once, after the commit** (`handle_and_keep`), so the choice is in force when the
   admin is answered; a failure here is logged and left to the outbox item.

Applying the same choice twice writes the same entry, and each `keep` refuses a choice
older than the one in force (by the event's time), so the two paths can run in any order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from pydantic import TypeAdapter, ValidationError

from adapters.ports import (
    OUTBOX_PAYLOAD_SCHEMA_VERSION,
    Delivery,
    Rejected,
    RetryLater,
    Sender,
    SendOutcome,
    Sent,
)
from bot.runtime import HandleResult
from domain import GENERATOR
from domain.decision import Decision
from domain.events import ChannelSet, RolesSet
from domain.inbound import Inbound
from domain.policy import Policy
from storage.ports import OutboxItem

log = logging.getLogger(__name__)

SetupEvent = ChannelSet | RolesSet
"""The events that set an installation up."""
SETUP_EVENTS = (ChannelSet, RolesSet)
_SETUP_EVENT: TypeAdapter[SetupEvent] = TypeAdapter(SetupEvent)

Keep = Callable[[SetupEvent, int], Awaitable[bool]]
"""An adapter keeping a committed `channel_set` or `roles_set` (the event, its time): False
when the installation is another platform's (nothing kept)."""

SETUP_ADDRESS = "~setup"
"""The address of a platform's setup channel (`slack:~setup`): no platform's channel or
conversation id starts with `~`."""
SETUP_PAYLOAD_VERSION = 1
"""The version of a setup item's payload (`setup_items`)."""


def setup_channel(installation: str) -> str | None:
    """The outbox channel of an installation's choices: its platform's setup channel (the
    installation id's prefix, `slack:` of `slack:T123`); None for an id without one."""
    platform, colon, rest = installation.partition(":")
    return f"{platform}:{SETUP_ADDRESS}" if platform and colon and rest else None


def setup_items(decision: Decision, policy: Policy, now_ms: int) -> Sequence[OutboxItem]:
    """One outbox item per `channel_set` or `roles_set` the decision records, due at once,
    keyed by the event's place in its stream (the same decision committed twice enqueues it
    once)."""
    del policy
    items = []
    for envelope in decision.events:
        event = envelope.event
        if not isinstance(event, SETUP_EVENTS):
            continue
        channel = setup_channel(event.installation)
        if channel is None:
            continue
        items.append(
            OutboxItem(
                key=f"{channel}:{envelope.conversation_id}:{envelope.seq}",
                conversation_id=envelope.conversation_id,
                channel=channel,
                payload={
                    "event": event.model_dump(mode="json"),
                    "at_ms": envelope.at_ms,
                    "seq": envelope.seq,
                    "schema_version": OUTBOX_PAYLOAD_SCHEMA_VERSION,
                    "generator_version": GENERATOR,
                    "adapter": channel.split(":", 1)[0],
                    "adapter_version": SETUP_PAYLOAD_VERSION,
                },
                created_at_ms=now_ms,
                available_at_ms=now_ms,
            )
        )
    return items


def read_setup(delivery: Delivery) -> tuple[SetupEvent, int] | None:
    """The choice a setup item carries and its time; None when it cannot be read."""
    at_ms = delivery.payload.get("at_ms")
    try:
        event = _SETUP_EVENT.validate_python(delivery.payload.get("event"))
    except ValidationError:
        return None
    return (event, at_ms) if isinstance(at_ms, int) else None


class KeepingSetup:
    """A `Sender`: a platform's own sender, except that the items of its setup channel are
    applied with `keep` instead of posted."""

    def __init__(self, sender: Sender, keep: Keep, *, channel: str) -> None:
        self._sender, self._keep, self._channel = sender, keep, channel

    async def send(self, delivery: Delivery) -> SendOutcome:
        if delivery.channel != self._channel:
            return await self._sender.send(delivery)
        read = read_setup(delivery)
        if read is None:
            return Rejected(reason="a setup item that cannot be read")
        event, at_ms = read
        try:
            kept = await self._keep(event, at_ms)
        except Exception as exc:  # the store briefly unavailable: the outbox tries again
            log.warning(
                "%s of %s not kept yet (%s); trying again",
                event.type,
                event.installation,
                type(exc).__name__,
            )
            return RetryLater(reason=f"not kept: {type(exc).__name__}")
        if not kept:
            return Rejected(reason=f"{event.installation} is not this platform's installation")
        return Sent()

    async def find_sent(self, delivery: Delivery) -> str | None:
        if delivery.channel == self._channel:
            return None  # applying it again writes the same entry
        return await self._sender.find_sent(delivery)


def keeper(
    channels: Callable[[ChannelSet, int], Awaitable[bool]],
    roles: Callable[[RolesSet, int], Awaitable[bool]],
) -> Keep:
    """One `Keep` from a platform's channel keeper and its role lists' keeper."""

    async def keep(event: SetupEvent, at_ms: int) -> bool:
        if isinstance(event, ChannelSet):
            return await channels(event, at_ms)
        return await roles(event, at_ms)

    return keep


def combine_effects(
    *effects: Callable[[Decision, Policy, int], Sequence[OutboxItem]],
) -> Callable[[Decision, Policy, int], Sequence[OutboxItem]]:
    """The runtime's one `effects` from several (their items in this order)."""

    def combined(decision: Decision, policy: Policy, now_ms: int) -> Sequence[OutboxItem]:
        return [item for effect in effects for item in effect(decision, policy, now_ms)]

    return combined


async def handle_and_keep(
    handle: Callable[[Inbound], Awaitable[HandleResult]], keep: Keep, inbound: Inbound
) -> HandleResult:
    """Decide and commit, then keep each installation's set-up an admin chose: only a
    committed decision's `channel_set` and `roles_set` are kept, so a refused or duplicate
    command changes nothing. A failure is left to the choice's outbox item (module
    docstring)."""
    result = await handle(inbound)
    if result.status == "committed" and result.decision is not None:
        for envelope in result.decision.events:
            if isinstance(envelope.event, SETUP_EVENTS):
                try:
                    await keep(envelope.event, envelope.at_ms)
                except Exception:  # committed with its outbox item: applied from there
                    log.warning(
                        "%s of %s recorded in %s but not kept yet; the outbox applies it",
                        envelope.event.type,
                        envelope.event.installation,
                        envelope.conversation_id,
                        exc_info=True,
                    )
    return result
