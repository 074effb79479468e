"""The handoff desk's ticket card (`[handoff] ticket_card`, `ask_outcome`): a ticket as its
record stands, with the transcript so far, its age and who holds it, the buttons its phase
offers, and the outcome picker *Resolve* opens.

Every card a ticket shows is drawn here from the conversation's state and the decision's
clock, so the card updated in place on every chat platform, the playground and the terminal says
the same thing wherever it is seen. Without `[handoff]`, `domain.presenters.ticket_card`
draws the card as before.
"""

from __future__ import annotations

from typing import Final

from domain.cards import Button, Card, CardField, CardInput
from domain.handoff_config import HandoffConfig, lost_words
from domain.presenters import reason_text, score_fields, ticket_head_fields
from domain.state import ConversationState, TicketRecord

TRANSCRIPT_LINES: Final = 12
"""Transcript lines the card shows (the newest); the audit has every one."""
LINE_CHARS: Final = 200

OUTCOME_SEPARATOR: Final = ":"
"""A *Resolve* button's target: `<ticket key>` opens the outcome picker; `<key>:won`,
`<key>:lost`, `<key>:lost:<reason>`, `<key>:handled`, `<key>:closed` record that outcome, and
`<key>:back` closes the picker. The target is signed with the card (as every target is), so
a choice cannot be forged."""

OUTCOME_LABELS: Final = {
    "won": "Won",
    "lost": "Lost…",
    "handled": "Handled: back to the bot",
    "closed": "Closed",
}
LOST_LABELS: Final = {
    "chose_competitor": "Chose a competitor",
    "not_interested": "Not interested",
    "not_a_buyer": "Not a buyer",
    "price": "Price",
    "timing": "Timing",
    "needs": "Missing features",
    "authority": "No sign-off",
    "no_response": "No response",
    "other": "Other",
}
WROTE_AGAIN: Final = "prospect wrote again"


def outcome_target(key: str, *choice: str) -> str:
    return OUTCOME_SEPARATOR.join((key, *choice))


def parse_outcome_target(target: str) -> tuple[str, tuple[str, ...]]:
    """(ticket key, the choice's parts) of a *Resolve* button's target."""
    key, *choice = target.split(OUTCOME_SEPARATOR)
    return key, tuple(choice)


def age_words(ms: int) -> str:
    """A ticket's age for people: "just now", "12 min", "3 h 5 min", "2 days 4 h"."""
    minutes = max(ms, 0) // 60_000
    if minutes < 1:
        return "just now"
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} day{'s' if days > 1 else ''} {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def transcript_text(state: ConversationState) -> str:
    """The conversation so far, newest last: who said what (clipped lines)."""
    lines = state.transcript[-TRANSCRIPT_LINES:]
    shown = [f"{speaker}: {_clip(text)}" for speaker, text in lines]
    earlier = len(state.transcript) - len(lines)
    if earlier > 0:
        shown.insert(0, f"({earlier} earlier lines: see the audit)")
    return "\n".join(shown)


def status_text(ticket: TicketRecord) -> str:
    """The ticket's phase in words, with who holds it or how it ended."""
    holder = ticket.holder_label
    match ticket.phase:
        case "open":
            return "Open"
        case "claimed" if ticket.via in ("presence", "reply"):
            return f"Taken over by {holder}"
        case "claimed":
            return f"Claimed by {holder}"
        case "reopened":
            held = f"Claimed by {holder}" if holder else "Open"
            return f"{held}: {WROTE_AGAIN}" if ticket.wrote_again else held
        case "returned":
            return f"Returned to the bot by {ticket.resolved_by}"
        case "resolved":
            return f"Resolved by {ticket.resolved_by}{outcome_words(ticket)}"


def outcome_words(ticket: TicketRecord) -> str:
    match ticket.outcome:
        case "won":
            return ": won"
        case "lost" if ticket.lost_reason:
            return f": lost ({lost_words(ticket.lost_reason)})"
        case "lost":
            return ": lost"
        case "closed":
            return ": closed"
        case "handled":
            return ": handled, back to the bot"
        case None:
            return ""


def desk_card(
    state: ConversationState,
    ticket: TicketRecord,
    now_ms: int,
    *,
    status: str | None = None,
    marks: bool = False,
) -> Card:
    """The ticket as it stands at `now_ms`; `status` words a change just made (who acted, and
    how) where the record alone would say less. `marks`: *Won* and *Lost* too
    (`[handoff] outcome_buttons`, `domain.outcomes`)."""
    fields = ticket_head_fields(state, ticket)
    if ticket.opened_at_ms is not None:
        fields.append(CardField(label="Age", value=age_words(now_ms - ticket.opened_at_ms)))
    if ticket.status != "resolved":
        fields.append(CardField(label="Held by", value=ticket.holder_label or "nobody yet"))
    if state.score is not None:
        fields += score_fields(state.score)
    return Card(
        kind="ticket",
        title=f"Handoff: {reason_text(ticket.reason)}",
        text=transcript_text(state),
        fields=tuple(fields),
        buttons=_buttons(ticket, marks),
        status=status or status_text(ticket),
        ref=ticket.key,
    )


def _buttons(ticket: TicketRecord, marks: bool) -> tuple[Button, ...]:
    if ticket.status == "resolved":
        return ()
    resolve = Button(action="resolve_ticket", label="Resolve", target=ticket.key)
    back = Button(action="return_to_bot", label="Return to bot", target=ticket.key)
    outcomes = (
        (
            Button(action="mark_won", label="Won", target=ticket.key),
            Button(action="mark_lost", label="Lost…", target=ticket.key),
        )
        if marks
        else ()
    )
    if ticket.status == "open":
        claim = Button(
            action="claim_ticket", label="Claim ticket", target=ticket.key, style="primary"
        )
        return (claim, resolve, back, *outcomes)
    return (resolve, back, *outcomes)


def outcome_picker(state: ConversationState, ticket: TicketRecord, now_ms: int, by: str) -> Card:
    """*Resolve* pressed: the ticket's card asks how it ended."""
    card = desk_card(state, ticket, now_ms, status=f"{by} is resolving it: how did it end?")
    buttons = tuple(
        Button(
            action="resolve_ticket",
            label=label,
            target=outcome_target(ticket.key, outcome),
            style="primary" if outcome == "won" else "default",
        )
        for outcome, label in OUTCOME_LABELS.items()
    )
    cancel = Button(
        action="resolve_ticket", label="Back", target=outcome_target(ticket.key, "back")
    )
    return card.model_copy(update={"buttons": (*buttons, cancel)})


def lost_picker(
    state: ConversationState,
    ticket: TicketRecord,
    now_ms: int,
    by: str,
    config: HandoffConfig,
) -> Card:
    """*Lost* chosen: the card asks for the reason from the policy's list."""
    card = desk_card(state, ticket, now_ms, status=f"{by} is resolving it as lost: why?")
    buttons = tuple(
        Button(
            action="resolve_ticket",
            label=LOST_LABELS.get(reason, reason.replace("_", " ").capitalize()),
            target=outcome_target(ticket.key, "lost", reason),
            style="danger",
        )
        for reason in config.lost_reasons
    )
    cancel = Button(
        action="resolve_ticket", label="Back", target=outcome_target(ticket.key, "back")
    )
    note = CardInput(label=NOTE_LABEL, placeholder=NOTE_PLACEHOLDER)
    return card.model_copy(update={"buttons": (*buttons, cancel), "input": note})


NOTE_LABEL: Final = "Note (optional): what happened, in your words"
NOTE_PLACEHOLDER: Final = "Went with another vendor for the price"


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= LINE_CHARS else flat[: LINE_CHARS - 1] + "…"
