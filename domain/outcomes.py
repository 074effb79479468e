"""Won and lost on the record: a rep says how the deal ended.

`won [ID]` and `lost [ID] REASON [note]` (slash commands, `@salesbot won|lost …` in a
thread, typed commands where a platform has no slash commands, the playground and
`salesbot chat`), and the *Won* / *Lost*
buttons of the lead card and the ticket card (`[handoff] outcome_buttons`). ID names the
conversation, or one of its tickets or quotes; without it the command means the
conversation it was typed in. The runtime delivers a command naming another conversation to
that conversation (`bot.runtime`), so here ID only has to be this conversation's.

REASON is one of the policy's `[handoff] lost_reasons` (any case), and the words after it
are the rep's note, as *Resolve → Lost* records them; an unknown reason is answered with
the valid ones and nothing is recorded. *Lost* on a card asks for the reason the same way
(the card's buttons become the reasons, with a text box for the note).

Each mark is a `deal_marked` event; what follows is what *Resolve* records
(`domain.handoff.settle`): with a live handoff ticket, `ticket_resolved` and its card updated
in place; the conversation closed as won or lost, the team told in the lead's thread, and
the lead card updated in place to say who marked it. The prospect hears nothing of it: it
is the team's record.
"""

from __future__ import annotations

from typing import Final, Literal

from domain.cards import Button, Card, CardInput, Reply
from domain.decision import Recorder
from domain.desk import show_ticket
from domain.desk_cards import LOST_LABELS, NOTE_LABEL, NOTE_PLACEHOLDER, desk_card
from domain.dialog_config import competitor_named
from domain.events import ConversationClosed, DealMarked
from domain.flow import GuardContext
from domain.handoff import WON_TRIGGER, competitor_from_prospect, settle
from domain.handoff_config import lost_words
from domain.inbound import Actor
from domain.meetings import post_lost, post_marked_won
from domain.presenters import lead_card, lead_card_ref

Mark = Literal["won", "lost"]
Via = Literal["command", "button"]

TARGET_SEPARATOR: Final = ":"
"""A *Lost* button's target: `<ticket key or conversation id>` asks for the reason;
`…:<reason>` records it, `…:back` puts the card back. Signed with the card, as every
target is."""
BACK: Final = "back"


def on_command(rec: Recorder, actor: Actor, outcome: Mark, args: str) -> None:
    """`won [ID] [note]`, `lost [ID] REASON [note]`."""
    words = args.split()
    if words and words[0] in _own_ids(rec):
        words = words[1:]
    reasons = _reasons(rec)
    if outcome == "lost" and reasons:
        if not words or words[0].casefold() not in reasons:
            if len(words) >= 2 and words[1].casefold() in reasons:
                rec.tell(actor, f"No conversation, ticket or quote {words[0]!r} here.")
            elif words:
                rec.tell(
                    actor,
                    f"Unknown lost reason “{words[0]}”: use one of {', '.join(reasons)}.",
                )
            else:
                rec.tell(
                    actor, f"Usage: lost [ID] REASON [note], REASON one of {', '.join(reasons)}."
                )
            return
        reason: str | None = words[0].casefold()
        words = words[1:]
    else:
        reason = None
    note = " ".join(words) or None
    mark(rec, actor, outcome, via="command", reason=reason, note=note)


def on_won_button(rec: Recorder, actor: Actor, target: str) -> None:
    mark(rec, actor, "won", via="button", card=_card_of(rec, target))


def on_lost_button(rec: Recorder, actor: Actor, target: str, note: str) -> None:
    """*Lost* on a lead or ticket card: the card asks for the reason, then records it."""
    base, _, choice = target.rpartition(TARGET_SEPARATOR)
    reasons = _reasons(rec)
    if choice not in (*reasons, BACK):
        base, choice = target, ""
    card = _card_of(rec, base)
    if choice == BACK:
        _redraw(rec, card)
        return
    if not choice and reasons:
        if _already(rec, actor, "lost", target):
            return
        _ask_reason(rec, actor, base, card, reasons)
        return
    said = " ".join(note.split()) or None
    mark(rec, actor, "lost", via="button", reason=choice or None, note=said, card=card)


CardOf = Literal["lead", "ticket"] | None


def _card_of(rec: Recorder, target: str) -> CardOf:
    if target in rec.state.tickets:
        return "ticket"
    return "lead" if rec.state.lead is not None else None


def mark(
    rec: Recorder,
    actor: Actor,
    outcome: Mark,
    *,
    via: Via,
    reason: str | None = None,
    note: str | None = None,
    card: CardOf = None,
) -> None:
    """Record the deal as won or lost, and what that does (as *Resolve* would)."""
    action = f"mark_{outcome}"
    state = rec.state
    if not state.started:
        rec.ignore(
            actor, action, state.conversation_id, "no_conversation", "There is no deal here yet."
        )
        return
    if _already(rec, actor, outcome, state.conversation_id):
        return
    competitor = competitor_named(rec.policy.competitors, None, note) if note else None
    if outcome == "lost" and competitor is None and reason == "chose_competitor":
        competitor = competitor_from_prospect(rec)
    ticket = state.open_handoff_ticket()
    rec.record(
        DealMarked(
            outcome=outcome,
            by=actor.id,
            via=via,
            reason=reason,
            note=note,
            competitor=competitor,
            ticket_key=ticket.key if ticket else None,
        )
    )
    if ticket is not None:
        settle(rec, actor, ticket, outcome, reason=reason, note=note)
    else:
        _close(rec, actor, outcome, reason, competitor)
    status = _status(actor, outcome, reason, competitor)
    _show_lead(rec, status)
    if via == "command":
        rec.tell(actor, f"Recorded: {rec.state.conversation_id} {status[0].lower()}{status[1:]}.")
    elif card == "ticket" and ticket is None:
        # A ticket card whose ticket was not live: it still shows how the deal ended.
        key = next(iter(reversed(rec.state.tickets)), None)
        if key is not None and rec.state.tickets[key].kind == "handoff":
            show_ticket(rec, key, status)


def _already(rec: Recorder, actor: Actor, outcome: Mark, target: str) -> bool:
    """The deal already ended this way and no ticket waits: nothing to record."""
    if rec.state.outcome != outcome or rec.state.open_handoff_ticket() is not None:
        return False
    rec.ignore(
        actor,
        f"mark_{outcome}",
        target,
        f"already_{outcome}",
        f"This deal is already recorded as {outcome}; nothing was changed.",
    )
    return True


def _close(
    rec: Recorder, actor: Actor, outcome: Mark, reason: str | None, competitor: str | None
) -> None:
    """No ticket to resolve: the conversation closes as won or lost, the team told."""
    flow = rec.policy.flow
    guards = GuardContext(qualified=rec.state.qualified)
    if rec.state.flow_state not in flow.terminal:
        if outcome == "won":
            rec.advance(WON_TRIGGER if WON_TRIGGER in flow.events else "quote_accepted", guards)
        else:
            rec.advance("deal_lost", guards)
    if rec.state.outcome != outcome:
        rec.record(ConversationClosed(outcome=outcome, by=actor.id))
    if outcome == "won":
        post_marked_won(rec, actor.label)
    else:
        post_lost(rec, reason or "marked_lost", competitor)


def _status(actor: Actor, outcome: Mark, reason: str | None, competitor: str | None) -> str:
    if outcome == "won":
        return f"Won, marked by {actor.label}"
    why = f" ({lost_words(reason)})" if reason else ""
    named = f", to {competitor}" if competitor else ""
    return f"Lost{why}{named}, marked by {actor.label}"


def _lead(rec: Recorder, status: str = "", *, buttons: bool = True) -> Card | None:
    """The lead card as its record stands (None for a conversation that is not a lead's)."""
    state = rec.state
    if state.lead is None or state.score is None or state.narrative is None:
        return None
    config = rec.policy.handoff
    return lead_card(
        state.conversation_id,
        state.lead,
        state.score,
        state.narrative,
        outcome_buttons=buttons and config is not None and config.outcome_buttons,
        reply_box=buttons and config is not None and config.lead_room,
        status=status,
        owner=state.owner_name or state.owner,
    )


def _show_lead(rec: Recorder, status: str) -> None:
    card = _lead(rec, status, buttons=False)
    if card is not None:
        rec.reply(
            Reply(audience="team", text=f"{card.title}: {status}", card=card, replaces=card.ref)
        )


def _redraw(rec: Recorder, card: CardOf) -> None:
    """*Back* on the reasons: the card as it was."""
    if card == "ticket":
        ticket = rec.state.open_handoff_ticket()
        if ticket is not None:
            show_ticket(rec, ticket.key)
        return
    lead = _lead(rec)
    if lead is not None:
        rec.reply(Reply(audience="team", text=lead.title, card=lead, replaces=lead.ref))


def _ask_reason(
    rec: Recorder, actor: Actor, base: str, card: CardOf, reasons: tuple[str, ...]
) -> None:
    """*Lost* pressed: the card's buttons become the policy's reasons, with a note box."""
    status = f"{actor.label} is marking it lost: why?"
    shown: Card | None
    if card == "ticket":
        ticket = rec.state.tickets[base]
        shown = desk_card(rec.state, ticket, rec.now_ms, status=status)
        audience: Literal["handoff", "team"] = "handoff"
    else:
        shown = _lead(rec, status)
        audience = "team"
    if shown is None:
        return
    buttons = tuple(
        Button(
            action="mark_lost",
            label=LOST_LABELS.get(reason, reason.replace("_", " ").capitalize()),
            target=TARGET_SEPARATOR.join((base, reason)),
            style="danger",
        )
        for reason in reasons
    )
    back = Button(action="mark_lost", label="Back", target=TARGET_SEPARATOR.join((base, BACK)))
    shown = shown.model_copy(
        update={
            "buttons": (*buttons, back),
            "input": CardInput(label=NOTE_LABEL, placeholder=NOTE_PLACEHOLDER),
        }
    )
    rec.reply(Reply(audience=audience, text=status, card=shown, replaces=shown.ref))


def _reasons(rec: Recorder) -> tuple[str, ...]:
    config = rec.policy.handoff
    return config.lost_reasons if config is not None else ()


def _own_ids(rec: Recorder) -> set[str]:
    """The ids a command may name this conversation by: its own, its tickets', its quotes'
    and its lead card's."""
    state = rec.state
    return {
        state.conversation_id,
        lead_card_ref(state.conversation_id),
        *state.tickets,
        *state.quotes,
    }
