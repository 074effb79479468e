"""The handoff pane's list of open tickets: what `GET /playground/tickets` answers.

The store's ticket table says which tickets are still open or claimed; the service hands
them over as `DeskTicket`s (this adapter does not read the store). Each is shown with its
title (the card the team saw, as it stands now), its age and who holds it. The page
counts the age on from `age_ms` with its own clock, so a skewed browser clock changes
nothing, and asks again whenever a card in the handoff pane changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from adapters.playground.hub import PlaygroundHub
from adapters.playground.identities import IDENTITIES
from domain.events import TicketKind
from domain.model import Frozen
from domain.presenters import reason_text

DESK_SCHEMA_VERSION = 1
"""Version of the `GET /playground/tickets` answer."""

HOLDER_NAMES = {actor.id: actor.name for actor in IDENTITIES.values() if actor.name}


class DeskTicket(Frozen):
    """An unresolved ticket as the service reads it from the store."""

    key: str
    conversation_id: str
    kind: TicketKind
    reason: str
    status: Literal["open", "claimed"]
    claimed_by: str | None = None
    quote_id: str | None = None
    opened_at_ms: int
    updated_at_ms: int


TicketSource = Callable[[], Awaitable[Sequence[DeskTicket]]]
"""The open tickets, from the store (injected by the service)."""


def desk_json(tickets: Sequence[DeskTicket], hub: PlaygroundHub, now_ms: int) -> dict[str, Any]:
    """The answer to `GET /playground/tickets`: the open tickets, newest first, each with
    its title, age and holder (`holder` the person's id, `holder_name` how the page says
    it; both null while nobody has claimed it)."""
    shown = sorted(tickets, key=lambda ticket: (ticket.opened_at_ms, ticket.key), reverse=True)
    return {
        "schema_version": DESK_SCHEMA_VERSION,
        "now": now_ms,
        "tickets": [
            {
                "key": ticket.key,
                "conversation": ticket.conversation_id,
                "kind": ticket.kind,
                "title": hub.card_title(ticket.key) or _title(ticket),
                "reason": ticket.reason,
                "status": ticket.status,
                "holder": ticket.claimed_by if ticket.status == "claimed" else None,
                "holder_name": _holder_name(ticket),
                "opened_at": ticket.opened_at_ms,
                "updated_at": ticket.updated_at_ms,
                "age_ms": max(0, now_ms - ticket.opened_at_ms),
            }
            for ticket in shown
        ],
    }


def _title(ticket: DeskTicket) -> str:
    """A title for a ticket whose card is no longer in the history, worded as the card's."""
    if ticket.kind == "approval":
        return f"Discount approval for quote {ticket.quote_id or '?'}"
    return f"Handoff: {reason_text(ticket.reason)}"


def _holder_name(ticket: DeskTicket) -> str | None:
    if ticket.status != "claimed" or not ticket.claimed_by:
        return None
    return HOLDER_NAMES.get(ticket.claimed_by, ticket.claimed_by)
