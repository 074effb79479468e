"""Where an installation's handoff and leads cards go, once an admin's `setup` is committed.

The domain decides `setup handoff|leads` (who may, which installation, which channel) and
records `channel_set`; the platform's adapter keeps the choice in its adapter state, which
its router and sender read (`adapters/slack/channels.py`, `adapters/teams/tenants.py`).
Each surface passes its adapter's `keep` (a `Keep`): here the committed decision's choices
are handed to it as soon as the commit returns, so the choice is in force when the admin
is answered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.runtime import HandleResult
from domain.events import ChannelSet
from domain.inbound import Inbound

log = logging.getLogger(__name__)

Keep = Callable[[ChannelSet, int], Awaitable[bool]]
"""An adapter keeping a committed `channel_set` (the event, its time): False when the
installation is another platform's (nothing kept)."""


async def handle_and_keep(
    handle: Callable[[Inbound], Awaitable[HandleResult]], keep: Keep, inbound: Inbound
) -> HandleResult:
    """Decide and commit, then keep each installation's channel an admin chose: only a
    committed decision's `channel_set` is kept, so a refused or duplicate command changes
    nothing."""
    result = await handle(inbound)
    if result.status == "committed" and result.decision is not None:
        for envelope in result.decision.events:
            if isinstance(envelope.event, ChannelSet):
                try:
                    await keep(envelope.event, envelope.at_ms)
                except Exception:  # recorded, but not kept: the admin is told to retry
                    log.error(
                        "%s channel of %s recorded in %s but not kept; run the setup "
                        "command again",
                        envelope.event.purpose,
                        envelope.event.installation,
                        envelope.conversation_id,
                        exc_info=True,
                    )
    return result
