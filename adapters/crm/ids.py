"""The CRM's ids (`adapters.ids.IdScheme`): every CRM write waits on one outbox channel,
`crm:writes`, whichever vendor is configured, so writes go out in the order they were decided (a
deal before its quote and notes) and items decided while no vendor was configured are
parked there — claimed only by a process that has a CRM sender — instead of failing."""

from __future__ import annotations

from typing import Final

from adapters.ids import IdScheme

SCHEME: Final = IdScheme(adapter="crm", channel_prefix="crm:", delivery_prefixes=("crm:",))
CHANNEL: Final = SCHEME.channel("writes")
"""The one outbox channel of the first installation's CRM writes."""
INSTALLATIONS: Final = IdScheme(
    adapter="crm-installations", channel_prefix="crm-of:", delivery_prefixes=("crm-of:",)
)
"""Another installation's CRM writes (a workspace or tenant that installed the app) wait on
a channel of their own, `crm-of:<installation>`: the configured CRM is the first
installation's, and another organisation's prospects must never be written into it. They
are parked there — nothing claims them — until a process has a CRM for that installation
(`SALESBOT_CRM_INSTALLATIONS_FILE`)."""


def channel_for(installation: str) -> str:
    """The outbox channel of an installation's CRM writes ("" the first: `CHANNEL`)."""
    return INSTALLATIONS.channel(installation) if installation else CHANNEL


def installation_of(channel: str) -> str | None:
    """The installation whose CRM writes wait on `channel` ("" for `CHANNEL`); None for a
    channel that carries no CRM writes."""
    if channel == CHANNEL:
        return ""
    if INSTALLATIONS.owns_channel(channel):
        return channel.removeprefix(INSTALLATIONS.channel_prefix) or None
    return None


def outbox_key(conversation_id: str, seq: int) -> str:
    """The outbox key of the write one `crm_sync_requested` event asks for (its stream
    position): the same decision committed twice can only enqueue the same item."""
    return f"{CHANNEL}:{conversation_id}:{seq}"
