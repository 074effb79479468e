"""The handoff desk, the prospect's side (`[handoff]`): no prospect message is dropped.

While a person holds the conversation (its handoff ticket is claimed, or open in the handoff
state), the bot stays silent towards the prospect and the ticket's card is refreshed in place
with what they wrote (`[handoff] ticket_card`), so the team sees it. After a ticket's outcome
(*Resolve*, without handing the conversation back), a prospect message that used to reach
nobody either reopens the ticket — the same holder, its card marked "prospect wrote again" —
or hands the conversation back to the bot, which answers it (`[handoff] after_outcome`).

The rep's side (taking over, handing back, resolving) is `domain.handoff`; this module is kept
apart because `domain.conversation` calls it, and `domain.handoff` needs the conversation's
replies.
"""

from __future__ import annotations

from typing import Literal

from domain.cards import Audience, Reply
from domain.decision import Recorder
from domain.desk_cards import desk_card
from domain.events import HandedBack, TicketReopened
from domain.flow import GuardContext
from domain.inbound import SYSTEM
from domain.state import TicketRecord


def show_ticket(rec: Recorder, key: str, status: str | None = None) -> None:
    """The ticket's card updated in place where it lives, as its record stands now."""
    ticket = rec.state.tickets[key]
    config = rec.policy.handoff
    marks = config is not None and config.outcome_buttons and ticket.kind == "handoff"
    card = desk_card(rec.state, ticket, rec.now_ms, status=status, marks=marks)
    audience: Audience = "approvers" if ticket.kind == "approval" else "handoff"
    rec.reply(Reply(audience=audience, text=card.status, card=card, replaces=key))


def held(rec: Recorder) -> TicketRecord | None:
    """The handoff ticket a person holds or should pick up, while the bot must stay silent:
    claimed by someone, or open while the flow is in its handoff (or a terminal) state."""
    ticket = rec.state.open_handoff_ticket()
    if ticket is None:
        return None
    flow = rec.policy.flow
    bot_state = rec.state.flow_state != flow.handoff and rec.state.flow_state not in flow.terminal
    if ticket.status == "open" and bot_state:
        return None
    return ticket


def settled(rec: Recorder) -> TicketRecord | None:
    """The handoff ticket whose outcome left the conversation with nobody: resolved without
    being handed back, while the flow still waits in its handoff (or a terminal) state."""
    ticket = rec.state.latest_handoff_ticket()
    if ticket is None or ticket.status != "resolved" or ticket.returned:
        return None
    flow = rec.policy.flow
    if rec.state.flow_state != flow.handoff and rec.state.flow_state not in flow.terminal:
        return None
    return ticket


def at_desk(rec: Recorder) -> bool:
    """A prospect message (already recorded) under `[handoff]`: True when the desk dealt
    with it — a person holds the conversation (the card shows the message) or the ticket was
    reopened for them; False when the bot answers it (the policy handed the conversation
    back, or no person is involved)."""
    config = rec.policy.handoff
    if config is None:
        return False
    ticket = held(rec)
    if ticket is not None:
        if config.ticket_card:
            show_ticket(rec, ticket.key)
        return True
    ticket = settled(rec)
    if ticket is None or config.after_outcome is None:
        return False
    if config.after_outcome == "reopen":
        reopen(
            rec, ticket, holder=ticket.claimed_by, name=ticket.holder_name, cause="prospect_wrote"
        )
        return True
    flow = rec.policy.flow
    if rec.state.flow_state == flow.handoff:
        # The bot takes the conversation back and answers this very message.
        rec.record(HandedBack(ticket_key=None, by=SYSTEM.id, reason="prospect_wrote"))
        rec.advance("handed_back", GuardContext(qualified=rec.state.qualified))
    return False


def reopen(
    rec: Recorder,
    ticket: TicketRecord,
    *,
    holder: str | None,
    name: str | None,
    cause: Literal["prospect_wrote", "rep_wrote"],
) -> None:
    """The ticket live again, held by `holder` (or open for a claim), its card updated."""
    rec.record(TicketReopened(ticket_key=ticket.key, cause=cause, holder=holder, name=name))
    show_ticket(rec, ticket.key)
