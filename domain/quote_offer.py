"""Which quote is on offer in a conversation: superseding the open ones, refusing stale accepts.

Under the policy's `quotes.supersede_open` a conversation has at most one quote that can be
accepted: the newest. Issuing a quote supersedes every quote still open there (ready to
accept, or waiting for a discount approval): each is recorded as `quote_superseded`, its
card in the conversation is updated in place to "Superseded by Q-…" without its Accept
button, and an approval it was waiting for is closed with its card updated the same way.

Accept pressed on a superseded or expired quote (an old card, a stale copy of one) is
refused, recorded as `quote_accept_refused`, and changes nothing about the deal. The person
who pressed it is told why and offered what is current: the current quote's card when one
can be accepted, else that one is being prepared or was already accepted; when there is
nothing to offer, the team is asked for a new quote.

A policy without the switch (every stored policy from before it) keeps every quote
acceptable until it expires, as before.
"""

from __future__ import annotations

from typing import Literal

from domain.cards import Reply
from domain.decision import Recorder
from domain.events import QuoteAcceptRefused, QuoteSuperseded, TicketResolved
from domain.inbound import Actor
from domain.presenters import CardView, approval_card, quote_card, settled_quote_card
from domain.quotes import Quote
from domain.state import ConversationState, QuoteRecord

StaleReason = Literal["superseded", "expired"]

OPEN_STATUSES = ("issued", "needs_approval", "approval_requested")
"""A quote in one of these states may still become the deal: it is open."""


def conversation_view(rec: Recorder) -> CardView:
    """How cards in the conversation are drawn: for the prospect once the policy says so."""
    return "prospect" if rec.policy.safeguards.prospect_view else "rep"


def shown_in_conversation(rec: Recorder, quote: Quote) -> bool:
    """Whether this version's card was posted in the conversation. With the prospect's view
    a quote awaiting approval is shown to its rep only: there is no card to update, and
    posting one would show the prospect an offer that was never made."""
    return not (rec.policy.safeguards.prospect_view and quote.needs_approval)


def supersede_open_quotes(rec: Recorder, actor: Actor, newer: Quote) -> None:
    """`newer` was just issued: every other open quote of the conversation is superseded
    (when the policy says so), and its cards say by which quote."""
    if not rec.policy.quotes.supersede_open:
        return
    for record in tuple(rec.state.quotes.values()):
        quote = record.quote
        if quote.quote_id == newer.quote_id or record.status not in OPEN_STATUSES:
            continue
        ticket = next(
            (
                t
                for t in rec.state.tickets.values()
                if t.kind == "approval" and t.quote_id == quote.quote_id and t.status != "resolved"
            ),
            None,
        )
        rec.record(
            QuoteSuperseded(
                quote_id=quote.quote_id,
                version=quote.version,
                by_quote_id=newer.quote_id,
                by=actor.id,
            )
        )
        status = f"Superseded by {newer.label}"
        catalog = rec.policy.catalog
        if shown_in_conversation(rec, quote):
            card = settled_quote_card(quote, catalog, status, conversation_view(rec))
            rec.reply(
                Reply(audience="conversation", text=status, card=card, replaces=quote.quote_id)
            )
        if ticket is not None:
            # Nothing is left to approve: the approvers' card says why it closed.
            rec.record(TicketResolved(ticket_key=ticket.key, by=actor.id))
            card = approval_card(quote, catalog, ticket.key, record.acted_by or "")
            rec.reply(
                Reply(
                    audience="approvers",
                    text=status,
                    card=card.model_copy(update={"buttons": (), "status": status}),
                    replaces=ticket.key,
                )
            )


def stale_reason(rec: Recorder, record: QuoteRecord) -> StaleReason | None:
    """Why Accept on this quote must be refused under `supersede_open`, if it must."""
    if not rec.policy.quotes.supersede_open:
        return None
    if record.status == "superseded":
        return "superseded"
    if record.status == "issued" and rec.now_ms > record.quote.expires_at_ms:
        return "expired"
    return None


def refuse_stale_accept(
    rec: Recorder, actor: Actor, record: QuoteRecord, reason: StaleReason
) -> None:
    """Accept on a superseded or expired quote: nothing about the deal changes. The clicked
    card is brought up to date in place, and the clicker is offered the current quote."""
    quote = record.quote
    current = current_quote(rec.state, excluding=quote.quote_id)
    offer = (
        current
        if current is not None
        and current.status == "issued"
        and rec.now_ms <= current.quote.expires_at_ms
        else None
    )
    rec.record(
        QuoteAcceptRefused(
            quote_id=quote.quote_id,
            version=quote.version,
            reason=reason,
            by=actor.id,
            current_quote_id=offer.quote.quote_id if offer is not None else None,
        )
    )
    expires = quote.figures()["expires"]
    if reason == "expired":
        status = f"Expired on {expires}"
    elif record.superseded_by:
        status = f"Superseded by {_label(rec.state, record.superseded_by)}"
    else:  # re-issued under a new id after an approval (`approval_keeps_id` off)
        status = "Replaced by a newer version"
    catalog = rec.policy.catalog
    view = conversation_view(rec)
    if shown_in_conversation(rec, quote):
        card = settled_quote_card(quote, catalog, status, view)
        rec.reply(Reply(audience="conversation", text=status, card=card, replaces=quote.quote_id))
    why = (
        f"Quote {quote.label} has been replaced"
        if reason == "superseded"
        else f"Quote {quote.label} expired on {expires}"
    )
    if offer is not None:
        # A copy for the clicker, without the ref: updates in place keep addressing the
        # card in the conversation, on every platform.
        card = quote_card(offer.quote, catalog, view=view).model_copy(update={"ref": ""})
        rec.tell(
            actor,
            f"{why}, so it can no longer be accepted. The current quote is "
            f"{offer.quote.label}; you can accept it here.",
            card=card,
        )
        return
    if current is not None and current.status == "accepted":
        rec.tell(
            actor,
            f"{why}, so it can no longer be accepted. Quote {current.quote.label} has "
            "already been accepted.",
        )
        return
    if current is not None and current.status in ("needs_approval", "approval_requested"):
        rec.tell(
            actor,
            f"{why}, so it can no longer be accepted. A new quote is being prepared and "
            "will be shared here as soon as it is ready.",
        )
        return
    rec.tell(
        actor,
        f"{why}, so it can no longer be accepted. I have asked the team to send you a new one.",
    )
    rec.reply(
        Reply(
            audience="team",
            text=f"{actor.label} tried to accept quote {quote.label}, which "
            + ("was superseded" if reason == "superseded" else f"expired on {expires}")
            + ", and no other quote is on offer: please issue a new quote.",
        )
    )


def current_quote(state: ConversationState, *, excluding: str = "") -> QuoteRecord | None:
    """The newest quote that is neither superseded nor rejected (the one on offer, being
    prepared, or accepted), other than `excluding`."""
    for record in reversed(state.quotes.values()):
        if record.quote.quote_id != excluding and record.status not in ("superseded", "rejected"):
            return record
    return None


def _label(state: ConversationState, quote_id: str | None) -> str:
    record = state.quotes.get(quote_id or "")
    return record.quote.label if record is not None else quote_id or ""
