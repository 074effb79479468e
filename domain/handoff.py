"""The handoff desk, the team's side (`[handoff]`): taking over, handing back, resolving.

- **Takeover by presence** (`takeover_by_presence`). In a conversation the prospect shares,
  a rep who writes takes it over: the conversation's handoff ticket — the open one, the one
  whose outcome left it with nobody (reopened), or a new one (`rep_took_over`) — is claimed
  by that rep, the flow waits in its handoff state, and the ticket's card tells the team who
  holds it. A ticket someone else holds stays theirs. A lead-feed conversation is not
  shared (the lead's thread is the team's room): a rep writing there only adds to the record.
- **Handing back**: *Return to bot*, `resume` or `@salesbot resume`; or the policy, after
  the holder has been silent for `rep_idle_handback_ms` (the sweeper's timer decides it from
  the injected clock, so a replay hands back at the same moment).
- **Resolve asks for the outcome** (`ask_outcome`): won (the conversation closes as won),
  lost with a reason from the policy's `lost_reasons` (closed as lost, the team told why and,
  when named, for which competitor), handled (the bot takes the conversation back) or closed
  (nothing more to do; the conversation waits with nobody, and what the prospect writes next
  follows `after_outcome`, `domain.desk`). Each outcome is one `ticket_resolved` event, the
  card updated in place.

Without `[handoff]` every action does exactly what it did before.
"""

from __future__ import annotations

from typing import Final, Literal

from domain.cards import Audience, Card, Reply
from domain.conversation import persona_values
from domain.decision import Recorder
from domain.desk import reopen, settled, show_ticket
from domain.desk_cards import age_words, desk_card, lost_picker, outcome_picker
from domain.dialog_config import competitor_named
from domain.events import ConversationClosed, HandedBack, TicketClaimed, TicketResolved
from domain.flow import GuardContext
from domain.handoff_config import HandoffConfig, lost_words
from domain.inbound import SYSTEM, Actor
from domain.meetings import post_lost, post_marked_won
from domain.presenters import ticket_card, transcript_summary
from domain.state import ConversationState, TicketRecord

TAKEOVER_REASON: Final = "rep_took_over"
TAKEOVER_TRIGGER: Final = "rep_took_over"
"""The flow event a takeover moves the conversation to its handoff state with; a flow
without it uses `escalation_requested`."""
WON_TRIGGER: Final = "deal_won"
"""The flow event *Resolve → Won* closes the conversation with; a flow without it uses
`quote_accepted`."""
RESUME_WORD: Final = "resume"


def is_resume(text: str) -> bool:
    """`resume` (or `/resume`) typed alone: a rep handing the conversation back."""
    return text.strip().lstrip("/").strip().casefold() == RESUME_WORD


def shared_with_prospect(state: ConversationState) -> bool:
    """A conversation the prospect reads: one they wrote in, that is not a lead's (whose
    thread in the leads channel only the team sees)."""
    return state.started and state.origin != "lead" and bool(state.prospect_texts)


def take_over(rec: Recorder, actor: Actor) -> None:
    """A rep wrote in the conversation (recorded already): under `takeover_by_presence`
    they hold it now."""
    config = rec.policy.handoff
    if config is None or not config.takeover_by_presence or actor.role != "rep":
        return
    if not shared_with_prospect(rec.state):
        return
    _hold(rec, config, actor, "presence")


def take_over_by_reply(rec: Recorder, actor: Actor) -> None:
    """A rep sent a lead's prospect words marked for them (`[handoff] lead_room`, recorded
    already): as a takeover by presence, they hold the conversation now."""
    config = rec.policy.handoff
    if config is None or not config.lead_room or actor.role != "rep":
        return
    _hold(rec, config, actor, "reply")


def _hold(
    rec: Recorder, config: HandoffConfig, actor: Actor, via: Literal["presence", "reply"]
) -> None:
    """`actor` holds the conversation: its open ticket claimed (unless someone holds it),
    the ticket its outcome left with nobody reopened, or a new ticket claimed."""
    ticket = rec.state.open_handoff_ticket()
    if ticket is not None:
        if ticket.status == "claimed":
            return  # someone holds it already (this rep, or a colleague they are helping)
        _to_handoff_state(rec)
        rec.record(TicketClaimed(ticket_key=ticket.key, by=actor.id, via=via, name=actor.label))
        _show(rec, config, ticket.key, f"Taken over by {actor.label}")
        return
    resolved = settled(rec)
    if resolved is not None:
        reopen(rec, resolved, holder=actor.id, name=actor.label, cause="rep_wrote")
        return
    _to_handoff_state(rec)
    key = rec.open_ticket("handoff", TAKEOVER_REASON, transcript_summary(rec.state))
    if key is None:
        return
    rec.record(TicketClaimed(ticket_key=key, by=actor.id, via=via, name=actor.label))
    ticket = rec.state.tickets[key]
    if config.ticket_card:
        card = desk_card(rec.state, ticket, rec.now_ms, marks=config.outcome_buttons)
    else:
        card = _claimed(ticket_card(rec.state, ticket), f"Taken over by {actor.label}")
    rec.reply(Reply(audience="handoff", text=card.title, card=card))


def _claimed(card: Card, status: str) -> Card:
    """A ticket card held by someone: Resolve and Return stay; Claim has nothing to offer."""
    buttons = tuple(b for b in card.buttons if b.action != "claim_ticket")
    return card.model_copy(update={"status": status, "buttons": buttons})


def _to_handoff_state(rec: Recorder) -> None:
    flow = rec.policy.flow
    state = rec.state.flow_state
    if state == flow.handoff or state in flow.terminal:
        return
    trigger = TAKEOVER_TRIGGER if TAKEOVER_TRIGGER in flow.events else "escalation_requested"
    rec.advance(trigger, GuardContext(qualified=rec.state.qualified))


def hand_back(rec: Recorder, actor: Actor, target: str) -> None:
    """*Return to bot*, `resume`: the bot has the conversation again."""
    flow = rec.policy.flow
    config = rec.policy.handoff
    ticket = rec.state.open_handoff_ticket()
    if rec.state.flow_state != flow.handoff:
        if config is not None and ticket is not None and ticket.status == "claimed":
            # A person held a conversation that had ended (it stays closed): they let go.
            rec.record(HandedBack(ticket_key=ticket.key, by=actor.id))
            _show(rec, config, ticket.key, f"Returned to the bot by {actor.label}")
            rec.tell(actor, "Handed back: the bot answers this conversation again.")
            return
        rec.ignore(
            actor,
            "return_to_bot",
            target,
            "not_in_handoff",
            "The bot is already handling this conversation.",
        )
        return
    rec.record(HandedBack(ticket_key=ticket.key if ticket else None, by=actor.id))
    rec.advance("handed_back", GuardContext(qualified=rec.state.qualified))
    if ticket is not None:
        update_ticket_card(
            rec, ticket.key, f"Returned to the bot by {actor.label}", keep_buttons=False
        )
    rec.say("handed_back", persona_values(rec, actor))


def hand_back_if_idle(rec: Recorder) -> bool:
    """The sweeper's timer: True when a person holds the conversation (so the bot's own idle
    rules do not apply), after handing it back if the holder has been silent for the
    policy's `rep_idle_handback_ms`."""
    config = rec.policy.handoff
    if config is None:
        return False
    ticket = rec.state.open_handoff_ticket()
    if ticket is None or ticket.status != "claimed":
        return False
    limit = config.rep_idle_handback_ms
    since = max(ticket.claimed_at_ms or 0, rec.state.last_rep_at_ms or 0)
    idle = rec.now_ms - since
    if limit is None or idle < limit:
        return True
    rec.record(HandedBack(ticket_key=ticket.key, by=SYSTEM.id, reason="rep_idle", idle_ms=idle))
    holder = ticket.holder_label
    flow = rec.policy.flow
    if rec.state.flow_state == flow.handoff:
        rec.advance("handed_back", GuardContext(qualified=rec.state.qualified))
        rec.say("handed_back", persona_values(rec))
    _show(
        rec, config, ticket.key, f"Returned to the bot: {holder} was silent for {age_words(idle)}"
    )
    return True


def resolve(
    rec: Recorder,
    actor: Actor,
    ticket: TicketRecord,
    choice: tuple[str, ...],
    *,
    note: str = "",
) -> None:
    """*Resolve* and the outcome picker's buttons (`domain.desk_cards`); `note` is what the
    rep typed in the lost reasons' text box."""
    config = rec.policy.handoff or HandoffConfig()
    key = ticket.key
    match choice:
        case ():
            card = outcome_picker(rec.state, ticket, rec.now_ms, actor.label)
            rec.reply(Reply(audience="handoff", text=card.status, card=card, replaces=key))
        case ("back",):
            show_ticket(rec, key)
        case ("lost",) if config.lost_reasons:
            card = lost_picker(rec.state, ticket, rec.now_ms, actor.label, config)
            rec.reply(Reply(audience="handoff", text=card.status, card=card, replaces=key))
        case ("lost",):
            settle(rec, actor, ticket, "lost")
        case ("lost", reason) if reason in config.lost_reasons or rec.policy.handoff is None:
            said = " ".join(note.split()) or None
            settle(rec, actor, ticket, "lost", reason=reason, note=said)
        case ("won",):
            settle(rec, actor, ticket, "won")
        case ("handled",):
            settle(rec, actor, ticket, "handled")
        case ("closed",):
            settle(rec, actor, ticket, "closed")
        case _:
            rec.ignore(
                actor,
                "resolve_ticket",
                key,
                "unknown_outcome",
                "That outcome is not one this ticket offers; nothing was done.",
            )


def settle(
    rec: Recorder,
    actor: Actor,
    ticket: TicketRecord,
    outcome: str,
    *,
    reason: str | None = None,
    note: str | None = None,
) -> None:
    """Record how the ticket ended, and what that does to the conversation."""
    key = ticket.key
    competitor = competitor_named(rec.policy.competitors, None, note) if note else None
    if outcome == "lost" and competitor is None and reason == "chose_competitor":
        competitor = competitor_from_prospect(rec)
    flow = rec.policy.flow
    guards = GuardContext(qualified=rec.state.qualified)
    closed = rec.state.flow_state in flow.terminal
    config = rec.policy.handoff or HandoffConfig()
    match outcome:
        case "won":
            rec.record(TicketResolved(ticket_key=key, by=actor.id, outcome="won"))
            if not closed:
                won = WON_TRIGGER if WON_TRIGGER in flow.events else "quote_accepted"
                rec.advance(won, guards)
            if rec.state.outcome != "won":
                rec.record(ConversationClosed(outcome="won", by=actor.id))
            post_marked_won(rec, actor.label)
            status = f"Resolved by {actor.label}: won"
        case "lost":
            rec.record(
                TicketResolved(
                    ticket_key=key,
                    by=actor.id,
                    outcome="lost",
                    reason=reason,
                    note=note,
                    competitor=competitor,
                )
            )
            if not closed:
                rec.advance("deal_lost", guards)
            if rec.state.outcome != "lost":
                rec.record(ConversationClosed(outcome="lost", by=actor.id))
            post_lost(rec, reason or "marked_lost", competitor)
            why = f" ({lost_words(reason)})" if reason else ""
            named = f", to {competitor}" if competitor else ""
            said = f": “{note}”" if note else ""
            status = f"Resolved by {actor.label}: lost{why}{named}{said}"
        case "handled":
            rec.record(TicketResolved(ticket_key=key, by=actor.id, outcome="handled"))
            rec.record(HandedBack(ticket_key=key, by=actor.id))
            status = f"Handled by {actor.label}: back to the bot"
            if rec.state.flow_state == flow.handoff:
                rec.advance("handed_back", guards)
                rec.say("handed_back", persona_values(rec, actor))
        case _:
            rec.record(TicketResolved(ticket_key=key, by=actor.id, outcome="closed"))
            status = f"Closed by {actor.label}"
    _show(rec, config, key, status)


def competitor_from_prospect(rec: Recorder) -> str | None:
    """The competitor the prospect named last, as `[competitors]` records it."""
    for text in reversed(rec.state.prospect_texts):
        named = competitor_named(rec.policy.competitors, None, text)
        if named is not None:
            return named
    return None


def _show(rec: Recorder, config: HandoffConfig, key: str, status: str) -> None:
    if config.ticket_card:
        show_ticket(rec, key, status)
    else:
        record = rec.state.tickets[key]
        update_ticket_card(rec, key, status, keep_buttons=record.status != "resolved", claimed=True)


def update_ticket_card(
    rec: Recorder, key: str, status: str, *, keep_buttons: bool, claimed: bool = False
) -> None:
    """A ticket's card updated in place with `status`: the desk's card under `[handoff]
    ticket_card`, the card as before otherwise."""
    config = rec.policy.handoff
    ticket = rec.state.tickets[key]
    if config is not None and config.ticket_card and ticket.kind == "handoff":
        show_ticket(rec, key, status)
        return
    card = ticket_card(rec.state, ticket)
    if not keep_buttons:
        card = card.model_copy(update={"status": status, "buttons": ()})
    elif claimed:
        card = _claimed(card, status)
    else:
        card = card.model_copy(update={"status": status})
    audience: Audience = "approvers" if ticket.kind == "approval" else "handoff"
    rec.reply(Reply(audience=audience, text=status, card=card, replaces=key))
