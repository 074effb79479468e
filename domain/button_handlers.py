"""Card buttons: accept, request approval, approve, reject, escalate, claim, resolve,
return to bot, won and lost (`domain.outcomes`).

Permissions are checked here, when the click arrives, not when the button was drawn: a
card may be forwarded, or a person's rights may have changed since. A second click on
something already handled changes nothing and says so.
"""

from __future__ import annotations

from collections.abc import Callable

from domain import outcomes
from domain.cards import Audience, Reply
from domain.conversation import escalate, persona_values
from domain.decision import Recorder
from domain.desk_cards import desk_card, parse_outcome_target
from domain.errors import QuoteError
from domain.events import (
    ActionIgnored,
    ApprovalRequested,
    ConversationClosed,
    QuoteAccepted,
    QuoteApproved,
    QuoteIssued,
    QuoteRejected,
    QuoteRevised,
    TicketClaimed,
    TicketResolved,
)
from domain.flow import GuardContext
from domain.handoff import hand_back, resolve, take_over_by_reply, update_ticket_card
from domain.inbound import Actor, ButtonClicked
from domain.lead_room import in_lead_room, send_to_prospect
from domain.meetings import post_lost, post_won
from domain.permissions import permission, permitted
from domain.presenters import (
    approval_card,
    current_ticket_card,
    quote_card,
    settled_quote_card,
)
from domain.quote_offer import conversation_view, refuse_stale_accept, stale_reason
from domain.quotes import approve_quote
from domain.routing import refuse_claim
from domain.state import QuoteRecord
from domain.tickets import ticket_key

Handler = Callable[[Recorder, Actor, str], None]


def on_button(rec: Recorder, click: ButtonClicked) -> None:
    if click.binding != "ok":
        _refuse_unbound(rec, click)
        return
    if click.action == "accept_quote":
        on_behalf = _may_accept(rec, click.actor, click.target)
        if on_behalf is not None:
            _accept(rec, click.actor, click.target, on_behalf=on_behalf)
        return
    key = _ROW_OF.get(click.action, f"button:{click.action}")
    if not permitted(click.actor, key, strict=rec.policy.safeguards.strict_roles):
        rule = permission(key)
        rec.ignore(click.actor, click.action, click.target, rule.reason, rule.message)
        return
    if click.action == "resolve_ticket":
        _resolve(rec, click.actor, click.target, note=click.note)
        return
    if click.action == "reply_to_prospect":
        _reply_to_prospect(rec, click.actor, click.target, click.note)
        return
    if click.action == "mark_lost" and rec.policy.handoff and rec.policy.handoff.outcome_buttons:
        outcomes.on_lost_button(rec, click.actor, click.target, click.note)
        return
    _HANDLERS[click.action](rec, click.actor, click.target)


_ROW_OF = {"reply_to_prospect": "button:claim_ticket"}
"""Buttons that share a row of the roles × actions matrix with another: *Reply to prospect*
takes the conversation over, as claiming its ticket does (reps only)."""


def _reply_to_prospect(rec: Recorder, actor: Actor, target: str, note: str) -> None:
    """The lead card's *Reply to prospect* (`[handoff] lead_room`): what the rep typed in
    the card's text box goes to the lead's prospect, and the rep holds the conversation."""
    if not in_lead_room(rec) or target != rec.state.conversation_id:
        rec.ignore(
            actor,
            "reply_to_prospect",
            target,
            "not_a_lead",
            "Only a lead's card sends words to its prospect; nothing was sent.",
        )
        return
    if send_to_prospect(rec, actor, note, "button"):
        take_over_by_reply(rec, actor)


def _refuse_unbound(rec: Recorder, click: ButtonClicked) -> None:
    """A click its card's signature does not vouch for changes nothing. A card posted
    before buttons were signed is posted again as it stands now, signed, so the next
    click works; a forged or misplaced one is only recorded."""
    actor, target = click.actor, click.target
    if click.binding != "unsigned":
        rec.ignore(
            actor,
            click.action,
            target,
            click.binding,
            "That button does not belong to this conversation, so nothing was done.",
        )
        return
    rec.record(ActionIgnored(action=click.action, target=target, by=actor.id, reason="unsigned"))
    text = (
        "That card was out of date, so nothing was done. It has been posted again as it stands now."
    )
    quote = rec.state.quotes.get(target)
    ticket = rec.state.tickets.get(parse_outcome_target(target)[0])
    if quote is not None:
        _repost_quote(rec, actor, quote, text)
    elif ticket is not None:
        audience: Audience = "approvers" if ticket.kind == "approval" else "handoff"
        desk = rec.policy.handoff
        card = (
            desk_card(rec.state, ticket, rec.now_ms, marks=desk.outcome_buttons)
            if desk is not None and desk.ticket_card and ticket.kind == "handoff"
            else current_ticket_card(rec.state, ticket)
        )
        rec.tell(actor, text)
        rec.reply(Reply(audience=audience, text=card.title, card=card, replaces=ticket.key))
    else:
        rec.tell(actor, "That card is out of date, so nothing was done.")


def _repost_quote(rec: Recorder, actor: Actor, record: QuoteRecord, text: str) -> None:
    """The quote's card again, where it lives: in the conversation, or — while it awaits
    approval and the prospect must not see it — privately to the rep who clicked."""
    catalog = rec.policy.catalog
    pending = record.status in ("needs_approval", "approval_requested")
    if pending and rec.policy.safeguards.prospect_view:
        if actor.role != "rep":
            rec.tell(actor, "Your quote is still being prepared.")
            return
        card = quote_card(record.quote, catalog, _quote_status(record))
        if record.status != "needs_approval":
            card = card.model_copy(update={"buttons": ()})
        rec.reply(Reply(audience="requester", text=text, card=card, replaces=card.ref))
        return
    card = quote_card(record.quote, catalog, _quote_status(record), conversation_view(rec))
    if record.status not in ("issued", "needs_approval"):
        card = card.model_copy(update={"buttons": ()})
    rec.reply(Reply(audience="conversation", text=card.title, card=card, replaces=card.ref))
    rec.tell(actor, text)


def _quote_status(record: QuoteRecord) -> str:
    by = f" by {record.acted_by}" if record.acted_by else ""
    match record.status:
        case "accepted":
            return f"Accepted{by}"
        case "rejected":
            return f"Rejected{by}"
        case "superseded" if record.superseded_by:
            return f"Superseded by {record.superseded_by}"
        case "superseded":
            return "Replaced by a newer version"
        case "approval_requested":
            return f"Approval requested{by}"
        case _:
            return ""


def _may_accept(rec: Recorder, actor: Actor, target: str) -> bool | None:
    """Whether `actor` may accept: False for the prospect's own click (or anyone's, under a
    policy from before `[quotes] accept_on_behalf`), True for a rep accepting on the
    prospect's behalf where the policy allows it; None when refused (recorded, and the
    clicker told)."""
    setting = rec.policy.quotes.accept_on_behalf
    strict = rec.policy.safeguards.strict_roles
    if permitted(actor, "button:accept_quote", strict=strict, on_behalf_set=setting is not None):
        return False
    if setting and permitted(actor, "button:accept_quote_on_behalf", strict=strict):
        return True
    if setting is None:
        # A policy from before the key: refused as before (nobody of ours or theirs).
        rec.ignore(actor, "accept_quote", target, "reps_only", "Sorry, that is for the sales team.")
        return None
    rule = permission("button:accept_quote")
    rec.ignore(actor, "accept_quote", target, rule.reason, rule.message)
    return None


def _accept(rec: Recorder, actor: Actor, target: str, *, on_behalf: bool = False) -> None:
    record = rec.state.quotes.get(target)
    flow = rec.policy.flow
    if record is None:
        rec.ignore(
            actor,
            "accept_quote",
            target,
            "unknown_quote",
            "That quote is not part of this conversation.",
        )
        return
    if record.status == "accepted":
        rec.ignore(
            actor,
            "accept_quote",
            target,
            "already_accepted",
            f"Quote {target} was already accepted by {record.acted_by}.",
        )
        return
    if record.status in ("needs_approval", "approval_requested"):
        rec.ignore(
            actor,
            "accept_quote",
            target,
            "needs_approval",
            f"Quote {target} needs a manager's approval before it can be accepted.",
        )
        return
    stale = stale_reason(rec, record)
    if stale is not None:
        refuse_stale_accept(rec, actor, record, stale)
        return
    if record.status in ("rejected", "superseded"):
        rec.ignore(
            actor,
            "accept_quote",
            target,
            record.status,
            f"Quote {target} is no longer valid ({record.status}).",
        )
        return
    if rec.now_ms > record.quote.expires_at_ms:
        rec.ignore(
            actor,
            "accept_quote",
            target,
            "expired",
            f"Quote {target} expired on {record.quote.figures()['expires']}; ask for a new one.",
        )
        return
    if rec.state.flow_state in flow.terminal:
        rec.ignore(
            actor,
            "accept_quote",
            target,
            "conversation_closed",
            "This conversation is already closed.",
        )
        return
    rec.record(QuoteAccepted(quote_id=target, by=actor.id, on_behalf=on_behalf))
    rec.advance("quote_accepted", GuardContext(qualified=rec.state.qualified))
    rec.record(ConversationClosed(outcome="won", by=actor.id))
    behalf = " on the prospect's behalf" if on_behalf else ""
    rec.reply(
        Reply(
            audience="conversation",
            text=f"Quote {record.quote.label} accepted by {actor.label}{behalf}",
            card=settled_quote_card(
                record.quote,
                rec.policy.catalog,
                f"Accepted by {actor.label}{behalf}",
                conversation_view(rec),
            ),
            replaces=target,
        )
    )
    # The accepted quote's id lets the thank-you say which deal was closed (Q-… v2 included).
    rec.say("closed_won", {**persona_values(rec, actor), "quote_id": record.quote.label})
    post_won(rec, record.quote.label, actor.label if on_behalf else None)


def _request_approval(rec: Recorder, actor: Actor, target: str) -> None:
    record = rec.state.quotes.get(target)
    if record is None:
        rec.ignore(
            actor,
            "request_approval",
            target,
            "unknown_quote",
            "That quote is not part of this conversation.",
        )
        return
    if record.status == "approval_requested":
        rec.ignore(
            actor,
            "request_approval",
            target,
            "already_requested",
            f"Approval for quote {target} was already requested by {record.acted_by}.",
        )
        return
    if record.status != "needs_approval":
        rec.ignore(
            actor,
            "request_approval",
            target,
            "not_needed",
            f"Quote {target} does not need approval ({record.status}).",
        )
        return
    key = ticket_key(rec.state.conversation_id, "discount_above_cap", rec.state.version + 1)
    rec.record(ApprovalRequested(quote_id=target, by=actor.id, ticket_key=key))
    opened = rec.open_ticket(
        "approval",
        "discount_above_cap",
        f"{actor.label} requests approval for {target}",
        quote_id=target,
    )
    catalog = rec.policy.catalog
    status = f"Approval requested by {actor.label}"
    if rec.policy.safeguards.prospect_view:
        # The prospect never saw this quote: only the rep's own copy changes.
        rec.reply(
            Reply(
                audience="requester",
                text=f"{status}; the quote reaches the prospect once it is approved.",
                card=settled_quote_card(record.quote, catalog, status),
                replaces=target,
            )
        )
    else:
        _settle_in_conversation(rec, record, status)
    if opened is not None:
        for_manager = rec.policy.safeguards.four_eyes and actor.sole_approver
        rec.reply(
            Reply(
                # With four eyes, the only approver's own request needs someone above them.
                audience="handoff" if for_manager else "approvers",
                text=f"Discount approval needed for quote {target}",
                card=approval_card(
                    record.quote, catalog, opened, actor.label, for_manager=for_manager
                ),
            )
        )


def _decide_approval(rec: Recorder, actor: Actor, target: str, approve: bool) -> None:
    action = "approve_quote" if approve else "reject_quote"
    record = rec.state.quotes.get(target)
    if record is None:
        rec.ignore(
            actor, action, target, "unknown_quote", "That quote is not part of this conversation."
        )
        return
    if record.status not in ("needs_approval", "approval_requested"):
        rec.ignore(
            actor,
            action,
            target,
            "already_decided",
            f"Quote {target} was already handled ({record.status}, by {record.acted_by}).",
        )
        return
    ticket = next(
        (t for t in rec.state.tickets.values() if t.quote_id == target and t.status != "resolved"),
        None,
    )
    if approve and rec.policy.safeguards.four_eyes and actor.id in _askers(record):
        rec.ignore(
            actor,
            action,
            target,
            "four_eyes",
            f"You asked for the discount on quote {target}, so another approver must "
            "approve it (four eyes).",
        )
        return
    catalog = rec.policy.catalog
    safe_view = rec.policy.safeguards.prospect_view
    keep_id = rec.policy.quotes.approval_keeps_id
    if approve:
        try:
            approved = approve_quote(
                record.quote, approver=actor.label, now_ms=rec.now_ms, keep_id=keep_id
            )
        except QuoteError as exc:
            rec.ignore(actor, action, target, "cannot_approve", str(exc))
            return
        rec.record(QuoteApproved(quote_id=target, by=actor.id))
        if keep_id:
            rec.record(
                QuoteRevised(
                    quote=approved,
                    previous_version=record.quote.version,
                    reason="discount_approved",
                    by=actor.id,
                )
            )
            status = f"Approved by {actor.label}: now {approved.label}"
        else:
            rec.record(QuoteIssued(quote=approved, requested_by=actor.id, replaces_quote_id=target))
            status = f"Approved by {actor.label}"
    else:
        rec.record(QuoteRejected(quote_id=target, by=actor.id))
        status = f"Rejected by {actor.label}"
    if ticket is not None:
        rec.record(TicketResolved(ticket_key=ticket.key, by=actor.id))
        rec.reply(
            Reply(
                audience="approvers",
                text=status,
                card=approval_card(
                    record.quote, catalog, ticket.key, record.acted_by or ""
                ).model_copy(update={"buttons": (), "status": status}),
                replaces=ticket.key,
            )
        )
    if not safe_view:
        _settle_in_conversation(rec, record, status)
    if approve:
        rec.say(
            "quote_ready",
            persona_values(rec, actor),
            evidence=approved.figures(),
            card=quote_card(approved, catalog, view=conversation_view(rec)),
        )
    else:
        rec.reply(
            Reply(
                audience="team",
                text=f"The discount on quote {target} was not approved; issue a new quote within the rep cap.",
            )
        )


def _approve(rec: Recorder, actor: Actor, target: str) -> None:
    _decide_approval(rec, actor, target, approve=True)


def _reject(rec: Recorder, actor: Actor, target: str) -> None:
    _decide_approval(rec, actor, target, approve=False)


def _escalate(rec: Recorder, actor: Actor, target: str) -> None:
    flow = rec.policy.flow
    if rec.state.flow_state in flow.terminal:
        rec.ignore(
            actor, "escalate", target, "conversation_closed", "This conversation is already closed."
        )
        return
    if rec.state.flow_state == flow.handoff:
        rec.ignore(
            actor,
            "escalate",
            target,
            "already_with_a_human",
            "A person is already looking after this conversation.",
        )
        return
    rec.advance("escalation_requested", GuardContext(qualified=rec.state.qualified))
    escalate(rec, actor, "requested")


def _claim(rec: Recorder, actor: Actor, target: str) -> None:
    ticket = rec.state.tickets.get(target)
    if ticket is None:
        rec.ignore(
            actor,
            "claim_ticket",
            target,
            "unknown_ticket",
            "That ticket is not part of this conversation.",
        )
        return
    if ticket.status == "claimed":
        who = "you" if ticket.claimed_by == actor.id else ticket.claimed_by
        rec.ignore(
            actor, "claim_ticket", target, "already_claimed", f"Ticket already claimed by {who}."
        )
        return
    if ticket.status == "resolved":
        rec.ignore(
            actor,
            "claim_ticket",
            target,
            "already_resolved",
            f"Ticket already resolved by {ticket.resolved_by}.",
        )
        return
    if refuse_claim(rec, actor, ticket):
        return  # `[routing] owner_exclusive_ms`: the owner's alone while fresh
    # Under `[handoff]` the claim names the holder as people see them (the card shows it).
    name = actor.label if rec.policy.handoff is not None else None
    rec.record(TicketClaimed(ticket_key=target, by=actor.id, name=name))
    update_ticket_card(rec, target, f"Claimed by {actor.label}", keep_buttons=True, claimed=True)


def _resolve(rec: Recorder, actor: Actor, target: str, note: str = "") -> None:
    key, choice = parse_outcome_target(target)
    ticket = rec.state.tickets.get(key)
    desk = rec.policy.handoff
    if ticket is not None and ticket.kind == "handoff" and (choice or (desk and desk.ask_outcome)):
        if ticket.status == "resolved":
            rec.ignore(
                actor,
                "resolve_ticket",
                key,
                "already_resolved",
                f"Ticket already resolved by {ticket.resolved_by}.",
            )
            return
        resolve(rec, actor, ticket, choice, note=note)
        return
    if ticket is None:
        rec.ignore(
            actor,
            "resolve_ticket",
            target,
            "unknown_ticket",
            "That ticket is not part of this conversation.",
        )
        return
    if ticket.status == "resolved":
        rec.ignore(
            actor,
            "resolve_ticket",
            target,
            "already_resolved",
            f"Ticket already resolved by {ticket.resolved_by}.",
        )
        return
    rec.record(TicketResolved(ticket_key=target, by=actor.id))
    update_ticket_card(rec, target, f"Resolved by {actor.label}", keep_buttons=False)


def _return_to_bot(rec: Recorder, actor: Actor, target: str) -> None:
    hand_back(rec, actor, target)


def _mark_lost(rec: Recorder, actor: Actor, target: str) -> None:
    flow = rec.policy.flow
    if rec.state.flow_state in flow.terminal:
        rec.ignore(
            actor,
            "mark_lost",
            target,
            "conversation_closed",
            "This conversation is already closed.",
        )
        return
    rec.advance("deal_lost", GuardContext(qualified=rec.state.qualified))
    rec.record(ConversationClosed(outcome="lost", by=actor.id))
    rec.say("closed_lost", persona_values(rec, actor))
    post_lost(rec, "marked_lost")


def _mark_won(rec: Recorder, actor: Actor, target: str) -> None:
    outcomes.on_won_button(rec, actor, target)


def _open_quote_form(rec: Recorder, actor: Actor, target: str) -> None:
    # Adapters that have forms open one themselves; elsewhere the usage line is the form.
    from domain.quote_args import QUOTE_USAGE

    rec.tell(actor, f"Type: {QUOTE_USAGE}")


def _settle_in_conversation(rec: Recorder, record: QuoteRecord, status: str) -> None:
    """The quote's card in the conversation, updated in place with who acted (policies
    from before the prospect's view, where the pending quote was shown there)."""
    card = settled_quote_card(record.quote, rec.policy.catalog, status)
    rec.reply(Reply(audience="conversation", text=status, card=card, replaces=card.ref))


def _askers(record: QuoteRecord) -> set[str]:
    """Who asked for a quote's discount: whoever issued it and whoever requested approval."""
    askers = {record.issued_by} if record.issued_by else set()
    if record.status == "approval_requested" and record.acted_by:
        askers.add(record.acted_by)
    return askers


_HANDLERS: dict[str, Handler] = {
    "accept_quote": _accept,
    "request_approval": _request_approval,
    "approve_quote": _approve,
    "reject_quote": _reject,
    "escalate": _escalate,
    "claim_ticket": _claim,
    "resolve_ticket": _resolve,
    "return_to_bot": _return_to_bot,
    "mark_lost": _mark_lost,
    "open_quote_form": _open_quote_form,
    "mark_won": _mark_won,
}
