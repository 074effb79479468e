"""The playground's memory is the store: its history rebuilt at start, its open tickets read
when a page asks.

A page shows what the playground delivered (the sent outbox items of its channels) and
what was typed in it (the stored inbounds of its people), in the order they happened, with
every card in its current state. Before, that history lived only in the hub's memory, so a
restart forgot every thread and ticket the store still held.
"""

from __future__ import annotations

import logging
from itertools import count

from pydantic import ValidationError

from adapters.playground.desk import DeskTicket
from adapters.playground.hub import PlaygroundHub
from adapters.playground.ids import SCHEME
from adapters.ports import Delivery
from bot.runtime import INBOUND, outbox_key
from domain.inbound import Inbound
from storage.ports import OutboxItem, Store

log = logging.getLogger(__name__)


async def restore_playground(hub: PlaygroundHub, store: Store) -> int:
    """Rebuild `hub`'s history from `store`; returns how many messages it put back.

    Reads the latest `hub.history_limit` replies sent to playground channels and the
    inbounds of their conversations, and replays them into the hub in the order they
    happened: each inbound followed by the replies it caused (their keys are derived from
    its delivery id, `outbox_key`), inbounds by the time they were received; a reply
    caused by no inbound (an audit answered after its commit) by the time it was enqueued.
    Call it before the outbox worker starts, so what is still pending is delivered after
    what was already shown. A record that no longer parses is skipped with a warning:
    the playground starts anyway.
    """
    items = await store.sent_items(SCHEME.channel_prefix, hub.history_limit)
    if not items:
        return 0
    by_key = {item.key: item for item in items}
    # With the window full, typed lines older than its first reply belong to what it cut.
    since = items[0].created_at_ms if len(items) == hub.history_limit else None
    conversations = dict.fromkeys(item.conversation_id for item in items)
    timeline: list[tuple[tuple[int, int, int, int], Inbound | None, list[OutboxItem]]] = []
    for number, conversation in enumerate(conversations):
        channel = SCHEME.channel(conversation)
        for stored in await store.inbounds(conversation):
            caused = []
            for index in count():
                item = by_key.pop(outbox_key(stored.delivery_id, index, channel), None)
                if item is None:
                    break
                caused.append(item)
            if since is not None and stored.received_at_ms < since and not caused:
                continue
            try:
                inbound: Inbound | None = INBOUND.validate_python(stored.inbound)
            except ValidationError:
                log.warning("playground history: inbound %s skipped", stored.delivery_id)
                inbound = None
            order = (stored.received_at_ms, 0, number, stored.position)
            timeline.append((order, inbound, caused))
    for index, item in enumerate(items):
        if item.key in by_key:  # caused by no stored inbound of its conversation
            timeline.append(((item.created_at_ms, 1, index, 0), None, [item]))
    timeline.sort(key=lambda entry: entry[0])
    restored = 0
    for (at_ms, *_rest), inbound, caused in timeline:
        if inbound is not None and hub.restore_typed(inbound, at=at_ms):
            restored += 1
        for item in caused:
            restored += _restore_item(hub, item)
    return restored


def _restore_item(hub: PlaygroundHub, item: OutboxItem) -> int:
    delivery = Delivery(
        key=item.key,
        conversation_id=item.conversation_id,
        channel=item.channel,
        payload=item.payload,
    )
    try:
        hub.restore_sent(
            delivery,
            remote_id=item.remote_id,
            at=item.sent_at_ms if item.sent_at_ms is not None else item.created_at_ms,
        )
    except (ValidationError, KeyError, TypeError):
        log.warning("playground history: outbox item %s skipped", item.key)
        return 0
    return 1


async def open_desk_tickets(store: Store) -> list[DeskTicket]:
    """The unresolved tickets, for the playground's handoff pane."""
    return [
        DeskTicket(
            key=row.key,
            conversation_id=row.conversation_id,
            kind=row.kind,
            reason=row.reason,
            status="claimed" if row.status == "claimed" else "open",
            claimed_by=row.claimed_by,
            quote_id=row.quote_id,
            opened_at_ms=row.opened_at_ms,
            updated_at_ms=row.updated_at_ms,
        )
        for row in await store.open_tickets()
    ]
