"""The SLA ladder (`[handoff] unclaimed_reping_ms`, `unclaimed_escalate_ms`): a handoff ticket
nobody claims climbs two steps, decided on the sweeper's timer from the injected clock.

1. **Re-ping**, once the ticket has waited `unclaimed_reping_ms`: its card is refreshed in
   place with its age, the on-call group is mentioned in the handoff channel (a new post: an
   edited message notifies nobody), and a prospect who wrote in the conversation is told once
   that a person will answer — with the business hours when the timer's fact says it is
   outside them (`domain.business_hours`). One `ticket_repinged` event.
2. **Escalate**, once it has waited `unclaimed_escalate_ms`: the ticket is posted to the
   escalation target (`[handoff] escalation`, per platform; the handoff channel where a
   platform has none), the on-call group mentioned. One `ticket_escalated` event.

A ticket waits while it is open (nobody holds it) and the conversation waits for a person
(the flow in its handoff or a terminal state), counted from when it opened or was reopened
with nobody holding it; a claimed ticket never climbs. `next_timer_ms` tells the runtime when
a conversation's timers next have something to decide, so its sweeper visits only
conversations that are due (an indexed table) instead of loading every conversation.

Both steps are decided from the recorded inbound's instant and the fact it carries, so a
replay climbs at the same moments and says the same words.
"""

from __future__ import annotations

from typing import Final

from domain.business_hours import HoursFact
from domain.cards import Card, Reply
from domain.conversation import persona_values
from domain.decision import Recorder
from domain.desk import show_ticket
from domain.desk_cards import age_words, desk_card
from domain.events import TicketEscalated, TicketRepinged
from domain.flow import GuardContext, next_transition
from domain.policy import Policy
from domain.state import ConversationState, TicketRecord

WAITING_TEMPLATE: Final = "handoff_waiting"
"""What a waiting prospect is told at the re-ping, within business hours (or without any)."""
WAITING_CLOSED_TEMPLATE: Final = "handoff_waiting.after_hours"
"""The same outside business hours; `{hours}` says when the team answers."""
ESCALATED_REF_PREFIX: Final = "escalated:"
"""The escalation post's card `ref`: its own message, not the ticket card in the handoff
channel (which `replaces` the ticket key updates)."""


def waiting_ticket(state: ConversationState, policy: Policy) -> TicketRecord | None:
    """The handoff ticket that waits for someone to claim it while the conversation waits
    for a person, if any."""
    ticket = state.open_handoff_ticket()
    if ticket is None or ticket.status != "open" or ticket.waiting_since_ms is None:
        return None
    flow = policy.flow
    if state.flow_state != flow.handoff and state.flow_state not in flow.terminal:
        return None
    return ticket


def ladder_delays(state: ConversationState, policy: Policy) -> tuple[int | None, int | None]:
    """(re-ping, escalate) delays for this conversation's ticket: the priority tier's
    (`[pursuit] unclaimed_reping_ms`, `unclaimed_escalate_ms`) for a lead pursued now, each
    where set, else `[handoff]`'s. None where a step is off."""
    config = policy.handoff
    if config is None:
        return None, None
    reping, escalate = config.unclaimed_reping_ms, config.unclaimed_escalate_ms
    tier = policy.pursuit
    if tier is not None and state.pursue_now:
        reping = tier.unclaimed_reping_ms or reping
        escalate = tier.unclaimed_escalate_ms or escalate
    return reping, escalate


def climb(rec: Recorder, hours: HoursFact | None) -> bool:
    """The sweeper's timer: take the ladder's steps that are due; True when one was taken."""
    reping, escalate = ladder_delays(rec.state, rec.policy)
    if (reping is None and escalate is None) or not rec.state.started:
        return False
    ticket = waiting_ticket(rec.state, rec.policy)
    if ticket is None or ticket.waiting_since_ms is None:
        return False
    age = rec.now_ms - ticket.waiting_since_ms
    climbed = False
    if reping is not None and not ticket.repinged and age >= reping:
        _reping(rec, ticket, age, hours)
        climbed = True
    if escalate is not None and not ticket.escalated and age >= escalate:
        _escalate(rec, ticket, age)
        climbed = True
    return climbed


def _reping(rec: Recorder, ticket: TicketRecord, age: int, hours: HoursFact | None) -> None:
    config = rec.policy.handoff
    assert config is not None  # checked by `climb`
    tell = bool(rec.state.prospect_texts)
    rec.record(
        TicketRepinged(
            ticket_key=ticket.key,
            age_ms=age,
            told_prospect=tell,
            open_now=None if hours is None else hours.open_now,
            next_open_ms=None if hours is None else hours.next_open_ms,
        )
    )
    waited = age_words(age)
    show_ticket(rec, ticket.key, f"Unclaimed for {waited}: on-call paged")
    title = desk_card(rec.state, rec.state.tickets[ticket.key], rec.now_ms).title
    rec.reply(
        Reply(
            audience="handoff",
            text=f"On-call: a ticket has waited {waited} for someone to claim it ({title}).",
            mention="on_call",
        )
    )
    if not tell:
        return
    values = persona_values(rec)
    business = config.business_hours
    if business is not None and hours is not None and not hours.open_now:
        values["hours"] = business.words(rec.language_for("conversation"))
        rec.say(WAITING_CLOSED_TEMPLATE, values)
    else:
        rec.say(WAITING_TEMPLATE, values)


def _escalate(rec: Recorder, ticket: TicketRecord, age: int) -> None:
    rec.record(TicketEscalated(ticket_key=ticket.key, age_ms=age))
    waited = age_words(age)
    status = f"Escalated: unclaimed for {waited}"
    show_ticket(rec, ticket.key, status)
    card = desk_card(rec.state, rec.state.tickets[ticket.key], rec.now_ms, status=status)
    posted = Card(
        kind=card.kind,
        title=f"Escalated — {card.title}",
        text=card.text,
        fields=card.fields,
        lines=("Nobody has claimed it: claim it on its card in the handoff channel.",),
        status=status,
        ref=f"{ESCALATED_REF_PREFIX}{ticket.key}",
    )
    rec.reply(
        Reply(
            audience="escalation",
            text=f"Escalated: a ticket has waited {waited} for someone to claim it.",
            card=posted,
            mention="on_call",
        )
    )


def next_timer_ms(state: ConversationState, policy: Policy) -> int | None:
    """The earliest instant the sweeper's timer (`domain.decide`, `TimerElapsed`) may decide
    something for this conversation; None when nothing can happen until the next inbound.
    Never later than the truth (the runtime's sweeper visits a conversation only from then);
    at worst early, when the flow has no transition for an idle timeout at that instant."""
    if not state.started:
        return None
    flow = policy.flow
    config = policy.handoff
    dues: list[int] = []
    waiting = waiting_ticket(state, policy)
    reping, escalate = ladder_delays(state, policy)
    if waiting is not None:
        since = waiting.waiting_since_ms or 0
        if reping is not None and not waiting.repinged:
            dues.append(since + reping)
        if escalate is not None and not waiting.escalated:
            dues.append(since + escalate)
    if state.flow_state in flow.terminal:
        return min(dues, default=None)
    ticket = state.open_handoff_ticket()
    if config is not None and ticket is not None and ticket.status == "claimed":
        # `domain.handoff.hand_back_if_idle`: a held conversation has no idle timeout.
        if config.rep_idle_handback_ms is not None:
            since = max(ticket.claimed_at_ms or 0, state.last_rep_at_ms or 0)
            dues.append(since + config.rep_idle_handback_ms)
        return min(dues, default=None)
    if state.flow_state != flow.handoff:
        guards = GuardContext(qualified=state.qualified)
        if next_transition(flow, state.flow_state, "idle_timeout", guards) is not None:
            last = state.last_prospect_at_ms or state.started_at_ms or 0
            dues.append(last + policy.conversation.abandon_after_ms)
    return min(dues, default=None)
