"""`decide(state, inbound, policy, now_ms) -> Decision`: the whole bot, as a pure function.

The runtime loads the conversation's state, calls this, commits what it returns and only
then acknowledges the platform; the outbox sends the replies afterwards. Because nothing
here reads a clock, a file or the network, replaying the stored inbounds through the same
policy reproduces every decision exactly.
"""

from __future__ import annotations

from domain.button_handlers import on_button
from domain.cards import Card, CardField, Reply
from domain.command_handlers import on_command
from domain.commands import command_spec, parse_text_command
from domain.conversation import on_idle_check, on_lead, on_prospect_message
from domain.crm_sync import crm_backfill, crm_events, crm_settled
from domain.decision import Decision, Recorder
from domain.errors import CommandError
from domain.events import DeliveryDeadLettered, MessageRead, RepMessageRecorded
from domain.handoff import (
    RESUME_WORD,
    hand_back_if_idle,
    is_resume,
    take_over,
    take_over_by_reply,
)
from domain.inbound import (
    Actor,
    ButtonClicked,
    CommandInvoked,
    CrmBackfillRequested,
    CrmWriteSettled,
    DeliveryFailed,
    Inbound,
    LeadArrived,
    MessagePosted,
    TimerElapsed,
)
from domain.installations import note_installation
from domain.lead_room import in_lead_room, marked_for_prospect, send_to_prospect
from domain.policy import Policy
from domain.presenters import help_card
from domain.sla import climb
from domain.state import ConversationState, initial_state


def new_conversation(conversation_id: str, policy: Policy) -> ConversationState:
    return initial_state(conversation_id, policy.flow.start)


def decide(
    state: ConversationState,
    inbound: Inbound,
    policy: Policy,
    now_ms: int,
    *,
    recorded_reading: MessageRead | None = None,
    explain: bool = True,
) -> Decision:
    """Decide what `inbound` does to the conversation in `state` under `policy` at `now_ms`.

    `recorded_reading` is for replay only: the `message_read` this inbound produced when it
    was decided, whose features stand in for extracting them again when the policy's reader
    has the same fingerprint (a what-if under retrained weights).

    `explain=False` is for replay only too: each `message_read` is recorded without its
    per-head explanations (`MessageRead.explanations` left empty), which only the audit
    reads. Replay compares what was decided — flow state, replies, scores, quotes,
    tickets, what the team is told, the event types — and throws the events away;
    explaining every head of every message was a fifth of its deciding. Nothing else a
    decision holds or does depends on them (the state folds a reading's features and
    signals, never its explanations), so everything else is the same.
    """
    if inbound.conversation_id != state.conversation_id:
        raise ValueError("inbound and state belong to different conversations")
    rec = Recorder(state, policy, now_ms, inbound.delivery_id, recorded_reading, explain=explain)
    match inbound:
        case LeadArrived():
            on_lead(rec, inbound.actor, inbound.lead)
        case MessagePosted():
            _on_message(rec, inbound)
        case CommandInvoked():
            try:
                spec = command_spec(inbound.command)
            except CommandError as exc:
                rec.tell(inbound.actor, str(exc))
            else:
                on_command(
                    rec,
                    inbound.actor,
                    spec,
                    inbound.args,
                    installation=inbound.installation,
                    channel=inbound.channel,
                    users=inbound.users,
                )
        case ButtonClicked():
            on_button(rec, inbound)
        case TimerElapsed():
            # The SLA ladder acts on a ticket nobody holds, the hand-back on one held: at most
            # one of them (and the idle check, outside handoff) has anything to decide.
            climb(rec, inbound.hours)
            if not hand_back_if_idle(rec):
                on_idle_check(rec)
        case DeliveryFailed():
            _on_delivery_failed(rec, inbound)
        case CrmBackfillRequested():
            crm_backfill(rec)
        case CrmWriteSettled():
            crm_settled(rec, inbound, alert_ref=f"{ALERT_REF_PREFIX}{inbound.outbox_key}")
    if not state.version and rec.state.version and not rec.state.started:
        note_installation(rec, inbound.actor)
    if policy.crm is not None:
        # What the team's CRM should now show, one write per changed record (`domain.crm`).
        for event in crm_events(state, rec.state, policy.crm):
            rec.record(event)
    return rec.decision()


ALERT_REF_PREFIX = "alert:"


def _on_delivery_failed(rec: Recorder, failure: DeliveryFailed) -> None:
    rec.record(
        DeliveryDeadLettered(
            outbox_key=failure.outbox_key, channel=failure.channel, reason=failure.reason
        )
    )
    if failure.was_alert:
        return  # an alert that cannot be delivered must not raise another alert
    card = Card(
        kind="notice",
        title="A message could not be delivered",
        fields=(
            CardField(label="Conversation", value=rec.state.conversation_id),
            CardField(label="Channel", value=failure.channel),
            CardField(label="Reason", value=failure.reason),
        ),
        status="Dead-lettered",
        ref=f"{ALERT_REF_PREFIX}{failure.outbox_key}",
    )
    rec.reply(Reply(audience="handoff", text=card.title, card=card))


def _rep_wrote(rec: Recorder, actor: Actor, text: str) -> None:
    """A rep's words in the conversation: recorded, and under `[handoff]
    takeover_by_presence` a takeover (`domain.handoff.take_over`)."""
    name = actor.label if rec.policy.handoff is not None else None
    rec.record(RepMessageRecorded(actor_id=actor.id, text=text, name=name))
    take_over(rec, actor)


def _on_message(rec: Recorder, message: MessagePosted) -> None:
    actor = message.actor
    if actor.role == "prospect":
        on_prospect_message(rec, actor, message.text, later=True)
        return
    if actor.role != "rep":
        return
    if rec.policy.handoff is not None and is_resume(message.text):
        # `resume`, typed where the rep's words go to the conversation (a thread, the
        # terminal): the rep hands the conversation back, whether or not it names the bot.
        on_command(rec, actor, command_spec(RESUME_WORD), "")
        return
    marked = marked_for_prospect(message.text, addressed=message.addressed)
    if marked is not None and in_lead_room(rec):
        # `> …` or `@salesbot say …` in a lead's thread: words for the prospect.
        if send_to_prospect(rec, actor, *marked):
            take_over_by_reply(rec, actor)
        return
    if not message.addressed:
        if rec.state.started:
            _rep_wrote(rec, actor, message.text)
        return
    try:
        parsed = parse_text_command(message.text)
    except CommandError as exc:
        rec.tell(actor, str(exc))
        return
    if parsed is not None:
        spec, args = parsed
        on_command(rec, actor, spec, args)
        return
    if rec.state.started:
        # A rep talking in a prospect's conversation: part of the record, not for the bot.
        _rep_wrote(rec, actor, message.text)
        return
    rec.reply(
        Reply(
            audience="requester",
            text="I can help with quotes, lead scores, audits and metrics. Try one of these:",
            card=help_card(),
        )
    )
