"""CRM writes as outbox items (issue 16, item 2): each `crm_sync_requested` event a decision
records becomes one item on the CRM's channel, committed with the decision, carrying the
full vendor-neutral record (`domain.crm_sync.crm_record`).

Why here: the runtime commits what a decision calls for without knowing any adapter; the
CRM's channel and key scheme belong to `adapters.crm`. The items wait on one channel
whatever vendor is configured (`adapters.crm.ids`), so with no vendor they are parked —
claimed only by a process with a CRM sender — and sent in the order decided once one is.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

from adapters.crm.common import payload_for, record_of, redact
from adapters.crm.ids import SCHEME, channel_for, installation_of, outbox_key
from adapters.ports import OUTBOX_PAYLOAD_SCHEMA_VERSION, Delivery, Sender
from domain import GENERATOR
from domain.crm_sync import crm_record
from domain.decision import Decision
from domain.events import CrmSyncRequested
from domain.inbound import SYSTEM, CrmWriteSettled, Inbound
from domain.policy import Policy
from storage.ports import OutboxItem

log = logging.getLogger(__name__)

CRM_PAYLOAD_VERSION = 1
"""The version of a CRM outbox payload's shape (`adapters.crm.common`)."""


def crm_items(decision: Decision, policy: Policy, now_ms: int) -> Sequence[OutboxItem]:
    """One outbox item per `crm_sync_requested` event of the decision (none without
    `[crm]`), due at once, in the order the events were recorded, on the channel of the
    conversation's installation (`adapters.crm.ids.channel_for`)."""
    config = policy.crm
    if config is None:
        return ()
    items = []
    for envelope in decision.events:
        if not isinstance(envelope.event, CrmSyncRequested):
            continue
        record = crm_record(envelope, decision.state, config)
        payload = {
            **payload_for(record),
            "schema_version": OUTBOX_PAYLOAD_SCHEMA_VERSION,
            "generator_version": GENERATOR,
            "adapter": SCHEME.adapter,
            "adapter_version": CRM_PAYLOAD_VERSION,
        }
        items.append(
            OutboxItem(
                key=outbox_key(envelope.conversation_id, envelope.seq),
                conversation_id=envelope.conversation_id,
                channel=channel_for(decision.state.installation),
                payload=payload,
                created_at_ms=now_ms,
                available_at_ms=now_ms,
            )
        )
    return items


SETTLED_PREFIX = "crm-settled:"
"""Delivery id of the `crm_write_settled` inbound for one outbox item (by its key): the
outcome of one write is recorded once, however often it is reported."""

LAG_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)
"""Seconds from a CRM write's decision to the CRM's answer: a healthy sync is seconds; a
CRM that was down or unconfigured shows hours."""


class CrmOutcomes:
    """What the outbox worker calls when it settles an item: a CRM write's outcome — written
    (with the CRM's id of the record) or dead-lettered (with the CRM's words, e-mail addresses
    redacted) — is recorded in its conversation as a `crm_write_settled` inbound, naming the
    adapter and its version and client library that wrote it; the domain records the event
    and, for a refusal, alerts the handoff channel naming the record. Every other channel's
    dead letter goes to `dead_letter` as before. It also feeds `/metrics`: the sync's lag
    and its writes by artifact and outcome."""

    def __init__(
        self,
        handle: Callable[[Inbound], Awaitable[object]],
        sender_for: Callable[[str], Sender | None],
        dead_letter: Callable[[OutboxItem, str], Awaitable[None]],
        *,
        clock: Callable[[], int],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._handle = handle
        self._sender_for = sender_for
        self._dead_letter = dead_letter
        self._clock = clock
        self.lag = Histogram(
            "salesbot_crm_sync_lag_seconds",
            "From a CRM write's decision to the CRM's answer (written or refused for good), "
            "by record kind",
            ["artifact"],
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.writes = Counter(
            "salesbot_crm_writes_total",
            "CRM writes settled, by record kind and outcome: sent (written) or dead_lettered "
            "(refused for good, the team alerted)",
            ["artifact", "outcome"],
            registry=registry,
        )

    async def on_sent(self, item: OutboxItem, remote_id: str | None) -> None:
        if installation_of(item.channel) is not None:
            await self._settle(item, "sent", remote_id=remote_id)

    async def on_dead_letter(self, item: OutboxItem, reason: str) -> None:
        if installation_of(item.channel) is None or not await self._settle(
            item, "dead_lettered", reason=redact(reason)
        ):
            await self._dead_letter(item, reason)

    async def _settle(
        self,
        item: OutboxItem,
        outcome: Literal["sent", "dead_lettered"],
        *,
        remote_id: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """Record the outcome; False when the item carries no CRM record to name."""
        try:
            record = record_of(
                Delivery(
                    key=item.key,
                    conversation_id=item.conversation_id,
                    channel=item.channel,
                    payload=item.payload,
                )
            )
        except ValueError:
            return False
        sender = self._sender_for(item.channel)
        by_installation = getattr(sender, "vendor_sender", None)
        if callable(by_installation):  # another installation's CRM (`crm_installations`)
            sender = by_installation(item.channel) or sender
        adapter = getattr(sender, "adapter", None) or str(item.payload.get("adapter", "crm"))
        version = getattr(sender, "adapter_version", None)
        if not isinstance(version, int):
            version = int(item.payload.get("adapter_version", 0) or 0)
        library = getattr(sender, "library", None)
        self.lag.labels(artifact=record.artifact).observe(
            max(0, self._clock() - item.created_at_ms) / 1000
        )
        self.writes.labels(artifact=record.artifact, outcome=outcome).inc()
        await self._handle(
            CrmWriteSettled(
                delivery_id=f"{SETTLED_PREFIX}{item.key}",
                conversation_id=item.conversation_id,
                actor=SYSTEM,
                outbox_key=item.key,
                request_seq=record.event_seq,
                artifact=record.artifact,
                external_id=record.external_id,
                outcome=outcome,
                remote_id=remote_id,
                adapter=adapter,
                adapter_version=version,
                library=library if isinstance(library, str) else None,
                reason=reason,
            )
        )
        return True
