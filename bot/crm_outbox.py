"""CRM writes as outbox items (issue 16, item 2): each `crm_sync_requested` event a decision
records becomes one item on the CRM's channel, committed with the decision, carrying the
full vendor-neutral record (`domain.crm_sync.crm_record`).

Why here: the runtime commits what a decision calls for without knowing any adapter; the
CRM's channel and key scheme belong to `adapters.crm`. The items wait on one channel
whatever vendor is configured (`adapters.crm.ids`), so with no vendor they are parked —
claimed only by a process with a CRM sender — and sent in the order decided once one is.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.crm.common import payload_for
from adapters.crm.ids import CHANNEL, SCHEME, outbox_key
from adapters.ports import OUTBOX_PAYLOAD_SCHEMA_VERSION
from domain import GENERATOR
from domain.crm_sync import crm_record
from domain.decision import Decision
from domain.events import CrmSyncRequested
from domain.policy import Policy
from storage.ports import OutboxItem

CRM_PAYLOAD_VERSION = 1
"""The version of a CRM outbox payload's shape (`adapters.crm.common`)."""


def crm_items(decision: Decision, policy: Policy, now_ms: int) -> Sequence[OutboxItem]:
    """One outbox item per `crm_sync_requested` event of the decision (none without
    `[crm]`), due at once, in the order the events were recorded."""
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
                channel=CHANNEL,
                payload=payload,
                created_at_ms=now_ms,
                available_at_ms=now_ms,
            )
        )
    return items
