"""Neutral cards built from domain values: lead, quote, ticket, approval, score, help.

One place decides what a card shows, so every chat platform, the playground and the terminal
all show the same facts, in words a rep can act on: a band with its calibrated chance, not
a score in a model's units. Shared channels never see the credit score, the fairness
penalty or its reason code: that detail is for `/audit`.
"""

from __future__ import annotations

import heapq
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from domain.cards import Button, Card, CardField, CardInput
from domain.commands import COMMANDS
from domain.feature_words import feature_words
from domain.inbound import LeadDetails
from domain.money import format_percent
from domain.narrative import NarrativeAudit
from domain.quotes import CatalogConfig, Quote
from domain.scoring import LeadScore
from domain.state import ConversationState, TicketRecord

TRANSCRIPT_LINES_ON_TICKET = 6


def number(value: Decimal) -> str:
    """A score for people: drop trailing zeros but keep at least one decimal place."""
    text = format(value.normalize(), "f")
    return text if "." in text else f"{text}.0"


def signed(value: Decimal) -> str:
    return f"+{number(value)}" if value >= 0 else number(value)


def attribution(score: LeadScore) -> str:
    """Non-zero contributions, largest first, in words with the prospect's own words where
    the score kept them: `budget +0.81 (“$40k approved”), timeline +0.3`. Two places on a
    card; the audit has every contribution exactly, under its feature's name."""
    parts = [(name, c) for name, c in score.contributions.items() if c != 0]
    # `sorted(parts, key=…)[:ATTRIBUTION_SHOWN]`, as `heapq.nsmallest` is documented to be,
    # without sorting a long conversation's every contribution for the five shown.
    largest = heapq.nsmallest(ATTRIBUTION_SHOWN, parts, key=lambda item: (-abs(item[1]), item[0]))
    shown = ", ".join(
        f"{feature_words(name)} {signed(_two_places(c))}{_quoted(score.evidence.get(name))}"
        for name, c in largest
    )
    more = len(parts) - ATTRIBUTION_SHOWN
    if more > 0:
        shown += f" and {more} more (see the audit)"
    return shown or "no signals"


def _two_places(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), ROUND_HALF_UP)


def _quoted(words: tuple[str, ...] | None) -> str:
    return f" (“{_clip(words[0], 40)}”)" if words else ""


ATTRIBUTION_SHOWN = 5
"""A card lists this many contributions at most (the ones that moved the band most); the
audit lists them all."""


def band_text(score: LeadScore) -> str:
    """The band in words a rep can weigh: with the trained reader's calibrated chance of hot
    where it has one, the probability under a logistic link, else the points with a warning
    that they are not a probability (a "1.2" would otherwise read as 120%)."""
    if score.hot_probability is not None:
        percent = (score.hot_probability * 100).quantize(Decimal(1), ROUND_HALF_UP)
        return f"{score.band} — {percent}% chance it is a hot lead (calibrated)"
    if score.probability is not None:
        return f"{score.band} — probability {number(score.probability)}"
    return f"{score.band} — {number(score.score)} points (not a probability)"


def score_fields(score: LeadScore) -> tuple[CardField, ...]:
    return (
        CardField(label="Band", value=band_text(score)),
        CardField(label="Signals", value=attribution(score)),
    )


def score_lines(score: LeadScore) -> tuple[str, ...]:
    """The arithmetic, one feature per line, that sums to the score."""
    lines = [
        f"{name}: {number(score.weights.get(name, Decimal(0)))} × "
        f"{score.features.get(name, 1)} = {signed(c)}"
        for name, c in score.contributions.items()
    ]
    lines.append(f"score = {number(score.score)} → {score.band}")
    return tuple(lines)


def score_card(score: LeadScore, text: str) -> Card:
    return Card(
        kind="score",
        title="Lead score",
        text=_clip(text, 300),
        fields=score_fields(score),
        lines=score_lines(score),
    )


def lead_card_ref(conversation_id: str) -> str:
    """The `ref` of a lead's card: platforms key the lead's thread (its view) by it."""
    return f"lead:{conversation_id}"


def lead_card(
    conversation_id: str,
    lead: LeadDetails,
    score: LeadScore,
    narrative: NarrativeAudit,
    *,
    outcome_buttons: bool = False,
    reply_box: bool = False,
    status: str = "",
    owner: str | None = None,
) -> Card:
    """The lead as the team first sees it. `outcome_buttons`: *Won* and *Lost* for reps
    (`[handoff] outcome_buttons`); `reply_box`: a text box and *Reply to prospect*, which
    sends what is typed there to the lead's prospect (`[handoff] lead_room`); `status`: how
    the deal ended, once a rep marked it (the card then has no buttons: it is updated in
    place by `domain.outcomes`); `owner`: who owns the lead (`[routing]`), as people read
    them."""
    title = f"New lead: {lead.name}" + (f" ({lead.company})" if lead.company else "")
    fields = [
        *score_fields(score),
        CardField(
            label="Resonance",
            value=f"{number(narrative.resonance)} — how closely their words match what we sell",
        ),
        CardField(
            label="Urgency",
            value=f"{number(narrative.penalized_urgency)} — how soon they say they need it",
        ),
    ]
    if lead.source:
        fields.append(CardField(label="Source", value=lead.source))
    if owner is not None:
        fields.append(CardField(label="Owner", value=owner))
    if not lead.reachable:
        fields.append(CardField(label="Reply", value=no_chat_words(lead.reply_in)))
        reply_box = False  # nothing typed here could reach the prospect
    return Card(
        kind="lead",
        title=title,
        text=_clip(lead.message, 500),
        fields=tuple(fields),
        buttons=()
        if status
        else (
            Button(
                action="open_quote_form", label="Quote", target=conversation_id, style="primary"
            ),
            Button(action="escalate", label="Escalate to a human", target=conversation_id),
            *(
                (Button(action="reply_to_prospect", label=REPLY_LABEL, target=conversation_id),)
                if reply_box
                else ()
            ),
            *(
                (
                    Button(action="mark_won", label="Won", target=conversation_id),
                    Button(action="mark_lost", label="Lost…", target=conversation_id),
                )
                if outcome_buttons
                else ()
            ),
        ),
        status=status,
        ref=lead_card_ref(conversation_id),
        input=REPLY_BOX if reply_box and not status else None,
    )


def no_chat_words(reply_in: str) -> str:
    """What a rep reads on a lead that came from a system with no way back to the prospect
    (`LeadDetails.reply_in`)."""
    return f"Came from {reply_in} — no chat with this prospect; reply in {reply_in}"


REPLY_LABEL = "Reply to prospect"
REPLY_BOX = CardInput(
    label="Reply to the prospect",
    placeholder="What the prospect reads (anything else said here stays with the team)",
)
"""The lead card's text box: its words go to the prospect with *Reply to prospect*."""


CardView = Literal["rep", "prospect"]
"""Who a card is drawn for. A prospect's card shows the offer and the buyer's actions; a
rep's card adds the rules behind it (the cap, the maximum, who must approve) and the
rep-only buttons."""


def quote_card(
    quote: Quote, catalog: CatalogConfig, status: str = "", view: CardView = "rep"
) -> Card:
    figures = quote.figures()
    fields = [
        CardField(label="Item", value=f"{figures['sku']} — {quote.description}"),
        CardField(label="Quantity", value=figures["qty"]),
        CardField(label="Unit price", value=figures["unit_price"]),
        CardField(label="Subtotal", value=figures["subtotal"]),
        CardField(label="Discount", value=f"{figures['discount_percent']} ({figures['discount']})"),
    ]
    if quote.tax_cents or quote.tax_rate:
        fields.append(CardField(label="Tax", value=f"{figures['tax_percent']} ({figures['tax']})"))
    fields += [
        CardField(label="Total", value=figures["total"]),
        CardField(label="Valid until", value=figures["expires"]),
    ]
    title = f"Quote {quote.label}"
    accept = Button(
        action="accept_quote", label="Accept quote", target=quote.quote_id, style="primary"
    )
    if view == "prospect":
        buttons: tuple[Button, ...] = () if quote.needs_approval else (accept,)
        return Card(
            kind="quote",
            title=title,
            fields=tuple(fields),
            lines=quote.offer_proof(),
            buttons=(
                *buttons,
                Button(action="escalate", label="Talk to a person", target=quote.quote_id),
            ),
            status=status or ("Being prepared" if quote.needs_approval else "Ready to accept"),
            ref=quote.quote_id,
        )
    if quote.needs_approval:
        buttons = (
            Button(action="request_approval", label="Request approval", target=quote.quote_id),
        )
        default_status = (
            f"Needs approval: {figures['discount_percent']} is above the "
            f"rep cap of {format_percent(catalog.rep_discount_cap)}"
        )
    else:
        buttons = (accept,)
        default_status = "Ready to accept"
    buttons += (Button(action="escalate", label="Escalate to a human", target=quote.quote_id),)
    return Card(
        kind="quote",
        title=title,
        fields=tuple(fields),
        lines=quote.proof,
        buttons=buttons,
        status=status or default_status,
        ref=quote.quote_id,
    )


def approval_status(quote: Quote, catalog: CatalogConfig) -> str:
    """The rule a discount above the cap meets, in a rep's words (never a prospect's)."""
    figures = quote.figures()
    return (
        f"Needs approval: {figures['discount_percent']} is above the rep cap of "
        f"{format_percent(catalog.rep_discount_cap)} "
        f"(maximum {format_percent(catalog.max_discount)})"
    )


def settled_quote_card(
    quote: Quote, catalog: CatalogConfig, status: str, view: CardView = "rep"
) -> Card:
    """The quote card after someone acted on it: same facts, no buttons."""
    return quote_card(quote, catalog, status, view).model_copy(update={"buttons": ()})


def transcript_summary(state: ConversationState) -> str:
    lines = state.transcript[-TRANSCRIPT_LINES_ON_TICKET:]
    return "\n".join(f"{speaker}: {_clip(text, 200)}" for speaker, text in lines)


REASON_TEXT = {
    "sensitive_terms": "sensitive terms (contract, legal, billing…) need a human",
    "low_confidence": "the bot is not confident it understood",
    "turn_limit": "no qualification after the bot's turn limit",
    "requested": "escalation requested",
    "idle_after_qualified": "a qualified lead went quiet",
    "message_after_close": "the prospect wrote after the conversation ended",
    "discount_above_cap": "discount above the rep cap",
    "unanswered_question": "a question the knowledge base could not answer",
    "questions_exhausted": "no qualification after the bot asked each question as often as it may",
    "qualified_follow_up": "a qualified lead to follow up: the bot's call and quote offers are used up",
    # The trained reader's reasons (a ticket's reason lists them, comma-separated).
    "legal": "legal or contract paperwork",
    "privacy_security": "a privacy or security review",
    "billing_refund": "billing, a refund or a cancellation",
    "pricing_exception": "a discount or pricing exception",
    "complaint": "a complaint",
    "human_request": "the prospect asked for a person",
    # The handoff desk's.
    "rep_took_over": "a rep took over the conversation",
}


def reason_text(reason: str) -> str:
    """A ticket's reason for people; several reader reasons read as one sentence."""
    if reason in REASON_TEXT:
        return REASON_TEXT[reason]
    parts = [part.strip() for part in reason.split(",")]
    if len(parts) > 1 and all(part in REASON_TEXT for part in parts):
        return "; ".join(REASON_TEXT[part] for part in parts)
    return reason


def ticket_head_fields(state: ConversationState, ticket: TicketRecord) -> list[CardField]:
    """What every ticket card opens with: the conversation, the reason, the lead."""
    fields = [
        CardField(label="Conversation", value=state.conversation_id),
        CardField(label="Reason", value=reason_text(ticket.reason)),
    ]
    if state.lead is not None:
        who = state.lead.name + (f" ({state.lead.company})" if state.lead.company else "")
        fields.append(CardField(label="Lead", value=who))
    if state.owner is not None:
        # The conversation's owner (`[routing]`): whom the ticket is routed to.
        fields.append(CardField(label="Owner", value=state.owner_name or state.owner))
    return fields


def ticket_card(state: ConversationState, ticket: TicketRecord) -> Card:
    fields = ticket_head_fields(state, ticket)
    if state.score is not None:
        fields += score_fields(state.score)
    return Card(
        kind="ticket",
        title=f"Handoff: {reason_text(ticket.reason)}",
        text=transcript_summary(state),
        fields=tuple(fields),
        buttons=(
            Button(action="claim_ticket", label="Claim ticket", target=ticket.key, style="primary"),
            Button(action="resolve_ticket", label="Resolve", target=ticket.key),
            Button(action="return_to_bot", label="Return to bot", target=ticket.key),
        ),
        status="Open",
        ref=ticket.key,
    )


def current_ticket_card(state: ConversationState, ticket: TicketRecord) -> Card:
    """A handoff ticket's card as its record stands now (posted again when an old copy of it
    is clicked): who holds it, and only the buttons that still do something."""
    card = ticket_card(state, ticket)
    if ticket.status == "claimed":
        return card.model_copy(
            update={
                "status": f"Claimed by {ticket.claimed_by}",
                "buttons": tuple(b for b in card.buttons if b.action != "claim_ticket"),
            }
        )
    if ticket.status == "resolved":
        return card.model_copy(
            update={"status": f"Resolved by {ticket.resolved_by}", "buttons": ()}
        )
    return card


def approval_card(
    quote: Quote,
    catalog: CatalogConfig,
    ticket_key: str,
    requested_by: str,
    *,
    for_manager: bool = False,
) -> Card:
    figures = quote.figures()
    return Card(
        kind="ticket",
        title=f"Discount approval for quote {quote.quote_id}",
        text=f"{requested_by} asks to give {figures['discount_percent']} off "
        f"(rep cap {format_percent(catalog.rep_discount_cap)}, maximum {format_percent(catalog.max_discount)}).",
        fields=(
            CardField(label="Total", value=figures["total"]),
            CardField(
                label="Discount", value=f"{figures['discount_percent']} ({figures['discount']})"
            ),
            CardField(label="Requested by", value=requested_by),
        ),
        lines=quote.proof,
        buttons=(
            Button(action="approve_quote", label="Approve", target=quote.quote_id, style="primary"),
            Button(action="reject_quote", label="Reject", target=quote.quote_id, style="danger"),
        ),
        status=(
            f"Waiting for a manager: {requested_by} is the only approver and cannot approve "
            "their own request (four eyes)"
            if for_manager
            else "Waiting for an approver"
        ),
        ref=ticket_key,
    )


def help_card() -> Card:
    return Card(
        kind="help",
        title="What salesbot can do",
        fields=tuple(CardField(label=spec.usage, value=spec.summary) for spec in COMMANDS),
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
