"""The CRM's ids (`adapters.ids.IdScheme`): every CRM write waits on one outbox channel,
`crm:writes`, whichever vendor is configured, so writes go out in the order they were decided (a
deal before its quote and notes) and items decided while no vendor was configured are
parked there — claimed only by a process that has a CRM sender — instead of failing."""

from __future__ import annotations

from typing import Final

from adapters.ids import IdScheme

SCHEME: Final = IdScheme(adapter="crm", channel_prefix="crm:", delivery_prefixes=("crm:",))
CHANNEL: Final = SCHEME.channel("writes")
"""The one outbox channel of CRM writes."""


def outbox_key(conversation_id: str, seq: int) -> str:
    """The outbox key of the write one `crm_sync_requested` event asks for (its stream
    position): the same decision committed twice can only enqueue the same item."""
    return f"{CHANNEL}:{conversation_id}:{seq}"
