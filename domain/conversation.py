"""The qualification conversation: what a prospect's message does.

For each message: score the whole conversation so far (with exact attribution), assess
narrative resonance and urgency with the fairness correction, classify objections, take
the flow transition those signals select, and answer through the persona. Anything the
bot must not decide alone moves the flow to `handoff` and opens an idempotent ticket.
Under the policy's `[dialog]`, a prospect who leaves gets a polite close and a buyer the
proposal, ahead of any objection reply (`domain.dialog`: the order, and why).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import Field

from domain.cards import Reply
from domain.decision import Recorder
from domain.desk import at_desk
from domain.desk_cards import desk_card
from domain.dialog import (
    AGAIN_TEMPLATE,
    BUYING_GUARD,
    LEAVING_GUARD,
    Leaving,
    dialog_signals,
    record_leaving,
    reopen_if_back,
    say_goodbye,
)
from domain.events import (
    ConversationAbandoned,
    ConversationStarted,
    FloodLimited,
    HeadExplanation,
    LeadLeftForRep,
    LeadScored,
    MessageRead,
    NarrativeAssessed,
    ObjectionClassified,
    Origin,
    ProspectMessageReceived,
    ReplyLanguageChosen,
)
from domain.flow import GuardContext, next_transition
from domain.inbound import Actor, LeadDetails
from domain.languages import next_language, word_count
from domain.lead_room import show_prospect_words
from domain.meetings import on_hot_lead, on_lost_intent, on_meeting_request
from domain.model import Frozen, trusted
from domain.narrative import assess_conversation_narrative
from domain.objections import classify_objection
from domain.persona import ESCALATE, choose_action
from domain.presenters import lead_card, ticket_card, transcript_summary
from domain.pursuit import pursuit_decision
from domain.questions import (
    ANSWER_ACTION,
    GENERIC_ACTIONS,
    OBJECTION_ACTION,
    FlowReply,
    Plan,
    plan_question,
)
from domain.reply_plan import echoes_from, escalation_action, plan_reply
from domain.routing import assign_owner, owner_label, owner_person
from domain.scoring import score_lead
from domain.understanding.features import fingerprint
from domain.understanding.model import ReaderModel
from domain.understanding.reading import (
    Reading,
    aggregate,
    decide_reading,
    explained_heads,
    head_sums,
    read,
    read_conversation,
    retracted,
)
from domain.understanding.scores import reader_score

ASKED_SIGNALS = ("budget", "timeline", "authority")
"""What the bot asks about, in this order, while the trained reader has not heard it."""

MESSAGE_SEPARATOR = "\n.\n"
"""Joins a conversation's messages for scoring; the full stop ends negation windows so
"no" at the end of one message never negates the next."""

GUARD_TO_REASON = {
    "is_sensitive": "sensitive_terms",
    "is_low_confidence": "low_confidence",
    "is_turn_limit_reached": "turn_limit",
    "is_qualified": "idle_after_qualified",
}


def persona_values(rec: Recorder, actor: Actor | None = None) -> dict[str, str]:
    """Values the persona may place into templates. All are plain data."""
    persona = rec.policy.active_persona
    values = {"persona": persona.name}
    lead = rec.state.lead
    name = lead.name if lead is not None else (actor.name if actor is not None else "")
    if name.strip():
        values["name"] = name.strip().split()[0]
    if lead is not None and lead.company:
        values["company"] = lead.company
    if rec.state.last_objection:
        values["objection"] = rec.state.last_objection
    return values


def start_if_new(
    rec: Recorder, origin: Origin, actor: Actor, lead: LeadDetails | None = None
) -> None:
    if not rec.state.started:
        rec.record(
            ConversationStarted(
                origin=origin,
                started_by=actor.id,
                lead=lead,
                installation=actor.installation,
            )
        )


def on_lead(rec: Recorder, actor: Actor, lead: LeadDetails) -> None:
    first = not rec.state.started
    start_if_new(rec, "lead", actor, lead)
    on_prospect_message(rec, actor, lead.message)
    if first and rec.state.score is not None and rec.state.narrative is not None:
        rec.reply(
            Reply(
                audience="team",
                text=f"New lead from {lead.name}",
                card=lead_card(
                    rec.state.conversation_id,
                    lead,
                    rec.state.score,
                    rec.state.narrative,
                    outcome_buttons=rec.policy.handoff is not None
                    and rec.policy.handoff.outcome_buttons,
                    reply_box=rec.policy.handoff is not None and rec.policy.handoff.lead_room,
                    owner=owner_label(rec.state),
                ),
                notify=owner_person(rec.state),
            ),
            first=True,  # the lead's thread starts with its card; the greeting goes under it
        )


def on_prospect_message(rec: Recorder, actor: Actor, text: str, *, later: bool = False) -> None:
    """`later`: a message after the one that started the conversation (a lead's first is
    on its card; later ones are shown in its thread under `[handoff] lead_room`)."""
    start_if_new(rec, "direct", actor)
    assign_owner(rec)  # `[routing]`: once per conversation, when the prospect first speaks
    rec.record(ProspectMessageReceived(actor_id=actor.id, text=text))
    if later:
        show_prospect_words(rec, actor, text)
    if at_desk(rec):
        return  # `[handoff]`: a person holds the conversation, or has it back (reopened)
    flow = rec.policy.flow
    state = rec.state
    if state.flow_state in flow.terminal:
        _after_close(rec, actor)
        return
    if state.flow_state == flow.handoff:
        return  # a human holds the conversation: record, stay silent
    if _flooded(rec, actor):
        return
    was_qualified = state.qualified
    analysis = _analyse(rec, text)
    if state.lead is not None and not state.lead.reachable:
        # No way back to this prospect (a lead from a CRM): read and scored for the team,
        # who reply in the system the lead came from; nothing is said to the prospect.
        _tell_team(rec, analysis)
        rec.record(LeadLeftForRep(reply_in=state.lead.reply_in))
        return
    follow_language(rec, text, analysis.language)
    _tell_team(rec, analysis)
    moves = dialog_signals(
        rec.policy.dialog,
        intents=analysis.intents,
        evidence=analysis.evidence,
        signals=analysis.signals,
        stated=tuple(echoes_from(analysis.entities)),
        newly_qualified=rec.state.qualified and not was_qualified,
    )
    guards = GuardContext(
        sensitive=analysis.sensitive,
        low_confidence=analysis.low_confidence,
        objection=analysis.objection is not None,
        qualified=rec.state.qualified,
        turn_limit_reached=rec.state.bot_turns >= rec.policy.conversation.max_bot_turns,
        buying=moves.buying,
        leaving=moves.leaving is not None,
        engaged=moves.engaged,
    )
    before = rec.state.flow_state
    taken = rec.advance("prospect_message", guards)
    reopen_if_back(rec, before, taken)
    if rec.state.flow_state == flow.handoff:
        guard = taken.guard if taken is not None else None
        reason = analysis.reason if guard == "is_sensitive" and analysis.reason else None
        reason = reason or GUARD_TO_REASON.get(guard or "", "requested")
        plan = _question_plan(rec, text, analysis, flow_reply="other")
        if (
            plan is not None
            and plan.kind == "answer"
            and plan.handoff is not None
            and plan.handoff in reason.split(", ")
        ):
            # A question a person must take up, for the reason the reader gave, which the
            # knowledge base words for the prospect (a security review, contract terms):
            # its answer says what happens next, in their language.
            _carry_out(rec, plan, guards, ticket_reason=reason)
        else:
            escalate(rec, actor, reason)
        return
    if taken is not None and taken.guard == LEAVING_GUARD and moves.leaving is not None:
        _close_politely(rec, actor, text, analysis, moves.leaving, guards)
        return
    if on_meeting_request(
        rec, text, analysis.intents, analysis.entities, persona_values(rec, actor)
    ):
        return
    action = choose_action(rec.policy.active_persona, rec.state.flow_state, analysis.confidence)
    if action == ESCALATE and rec.advance("escalation_requested", guards):
        escalate(rec, actor, "low_confidence")
        return
    flow_reply: FlowReply = (
        "generic"
        if action in GENERIC_ACTIONS or action == AGAIN_TEMPLATE
        else "objection"
        if action == OBJECTION_ACTION
        else "other"
    )
    plan = _question_plan(rec, text, analysis, flow_reply=flow_reply)
    if plan is not None and _carry_out(rec, plan, guards):
        if taken is not None and taken.guard == BUYING_GUARD and plan.kind == "answer":
            # A buyer's question answered: the proposal follows, so the answer does not
            # leave a qualified buyer without a next step.
            _answer_without_parroting(rec, actor, action, analysis, guards)
        return
    if rec.policy.replies.active or (
        action == OBJECTION_ACTION and _moves_on_after_objections(rec)
    ):
        _answer_without_parroting(rec, actor, action, analysis, guards)
        return
    rec.say(_concrete_action(rec, action), persona_values(rec, actor))


def _moves_on_after_objections(rec: Recorder) -> bool:
    dialog = rec.policy.dialog
    return dialog is not None and dialog.move_on_after_objection


def _close_politely(
    rec: Recorder,
    actor: Actor,
    text: str,
    analysis: Analysis,
    leaving: Leaving,
    guards: GuardContext,
) -> None:
    """`[dialog]`: the prospect is leaving. Record why (and a lost deal), answer a question
    that came with the goodbye, then say goodbye in their language (`domain.dialog`)."""
    left = record_leaving(rec, actor, leaving, text, analysis.entities)
    plan = _question_plan(rec, text, analysis, flow_reply="other")
    if plan is not None and plan.kind == "answer" and plan.handoff is None:
        _carry_out(rec, plan, guards)
    say_goodbye(rec, left, persona_values(rec, actor))


def _tell_team(rec: Recorder, analysis: Analysis) -> None:
    """`[team_posts]`: a hot lead, or a prospect who is gone, posted once to the lead's thread.
    Under `[dialog]` the polite close tells the team of a lost deal (with its reason), so a
    goodbye while the deal is alive is not posted as lost."""
    on_hot_lead(rec)
    if rec.policy.dialog is None:
        on_lost_intent(rec, analysis.intents, analysis.entities)


def _question_plan(
    rec: Recorder, text: str, analysis: Analysis, *, flow_reply: FlowReply
) -> Plan | None:
    return plan_question(
        rec.policy.knowledge,
        rec.policy.catalog,
        text=text,
        language=analysis.language,
        answer_in=rec.language_for("conversation"),
        intents=analysis.intents,
        flow_reply=flow_reply,
        last_reply_template=rec.state.last_reply_template,
        values={"persona": rec.policy.active_persona.name},
        no_repeat=rec.policy.replies.no_repeat,
        said_counts=rec.state.said_counts,
    )


def _carry_out(
    rec: Recorder, plan: Plan, guards: GuardContext, *, ticket_reason: str | None = None
) -> bool:
    """Do what the question's plan says; False when the flow's own reply is still to be
    said (the plan defers to it, its text was withheld, or no way to a person exists).
    With `ticket_reason` the flow is already in handoff, and the ticket gets that reason."""
    if plan.kind == "refused":
        rec.refused(ANSWER_ACTION, plan.refused)
        return False
    if plan.handoff is not None and ticket_reason is None:
        flow = rec.policy.flow
        step = next_transition(flow, rec.state.flow_state, "escalation_requested", guards)
        if step is None or step.to != flow.handoff:
            return False
        rec.advance("escalation_requested", guards)
    if plan.event is not None:
        rec.record(plan.event)
    if plan.kind == "flow":
        return False
    rec.speak(plan.action, plan.template, plan.text)
    if plan.handoff is not None:
        post_handoff_ticket(rec, ticket_reason or plan.handoff)
    return True


def _answer_without_parroting(
    rec: Recorder, actor: Actor, action: str, analysis: Analysis, guards: GuardContext
) -> None:
    """The policy's `[replies]`: move on instead of asking the same thing again
    (`domain.reply_plan`); when nothing new is left to say, a person takes over."""
    values = persona_values(rec, actor)
    plan = plan_reply(rec, action, values, analysis.entities)
    if plan.handoff_reason is not None and rec.advance("escalation_requested", guards):
        escalate(rec, actor, plan.handoff_reason)
        return
    rec.say(plan.action, values, echoes=plan.echoes, acknowledge=plan.acknowledge)


def follow_language(rec: Recorder, text: str, read_language: str) -> None:
    """Answer in the prospect's language from now on, when their message says so clearly
    enough (`domain.languages.next_language`); recorded, so a replay follows the same way."""
    config = rec.policy.languages
    if config is None:
        return
    current = rec.state.reply_language or config.fallback
    language = next_language(config, current, read_language, text)
    if language is not None:
        rec.record(ReplyLanguageChosen(language=language, previous=current, words=word_count(text)))


FLOOD_WINDOW_MS = 60_000


def _flooded(rec: Recorder, actor: Actor) -> bool:
    """More prospect messages in the last minute than the policy allows: say so once a
    minute at most, and otherwise only record them. Replies stay bounded however fast
    someone writes (each one costs a platform call the bot's rate limit must cover); the
    messages themselves are kept, and the next one after the flood is read with them."""
    limit = rec.policy.safeguards.flood_limit_per_minute
    if limit is None:
        return False
    since = rec.now_ms - FLOOD_WINDOW_MS
    recent = sum(1 for at in rec.state.prospect_message_ms if at > since)
    if recent <= limit:
        return False
    noticed = rec.state.flood_noticed_at_ms
    if noticed is None or noticed <= since:
        rec.record(FloodLimited(messages=recent, window_ms=FLOOD_WINDOW_MS, limit=limit))
        rec.say("flood_notice", persona_values(rec, actor))
    return True


def escalate(rec: Recorder, actor: Actor, reason: str) -> None:
    """Tell the prospect a person will help, and put a ticket in the handoff channel."""
    rec.say(escalation_action(rec, reason), persona_values(rec, actor))
    post_handoff_ticket(rec, reason)


def post_handoff_ticket(rec: Recorder, reason: str) -> None:
    """Open the handoff ticket for this trigger (once) and post its card to the humans."""
    key = rec.open_ticket("handoff", reason, transcript_summary(rec.state))
    if key is None:
        return
    desk = rec.policy.handoff
    ticket = rec.state.tickets[key]
    card = (
        desk_card(rec.state, ticket, rec.now_ms, marks=desk.outcome_buttons)
        if desk is not None and desk.ticket_card
        else ticket_card(rec.state, ticket)
    )
    rec.reply(Reply(audience="handoff", text=card.title, card=card, notify=owner_person(rec.state)))


def on_idle_check(rec: Recorder) -> None:
    state = rec.state
    flow = rec.policy.flow
    if not state.started or state.flow_state in flow.terminal or state.flow_state == flow.handoff:
        return
    if state.lead is not None and not state.lead.reachable:
        return  # no chat with the prospect to abandon: the lead is its rep's (`reply_in`)
    last = state.last_prospect_at_ms or state.started_at_ms or 0
    idle = rec.now_ms - last
    if idle < rec.policy.conversation.abandon_after_ms:
        return
    guards = GuardContext(qualified=state.qualified)
    if not rec.advance("idle_timeout", guards):
        return
    if rec.state.flow_state == flow.handoff:
        post_handoff_ticket(rec, "idle_after_qualified")
    else:
        rec.record(ConversationAbandoned(idle_ms=idle))


class Analysis(Frozen):
    """What one prospect message means for the flow's guards."""

    sensitive: bool
    low_confidence: bool
    objection: str | None
    confidence: Decimal
    reason: str | None = None
    """Why a human is needed, when the reader says so (the ticket's reason)."""
    language: str = "und"
    """The message's language, when the trained reader read it."""
    intents: tuple[str, ...] = ()
    """The reader's intents for the message (none under lexicons)."""
    entities: dict[str, Any] = Field(default_factory=dict)
    """The message's entities, when the trained reader read it (what a reply may echo)."""
    evidence: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """The words the trained reader heard, by feature (`[dialog] not_a_buyer` reads them)."""
    signals: tuple[str, ...] = ()
    """The qualification signals this message states (trained reader only)."""


def _analyse(rec: Recorder, text: str) -> Analysis:
    policy = rec.policy
    state = rec.state
    lead = state.lead
    metadata = lead.scoring_metadata() if lead is not None else None
    if policy.understanding is not None:
        analysis = _read(rec, text, policy.understanding.reader, metadata)
    else:
        score = score_lead(MESSAGE_SEPARATOR.join(state.prospect_texts), policy.scoring, metadata)
        qualified = score.band in policy.conversation.qualified_bands
        if score != state.score or qualified != state.qualified:
            rec.record(LeadScored(score=score, qualified=qualified))
    credit = lead.credit_score if lead is not None else None
    narrative = assess_conversation_narrative(
        state.prospect_texts, MESSAGE_SEPARATOR, policy.narrative, policy.fairness, credit
    )
    if narrative != state.narrative:
        rec.record(NarrativeAssessed(audit=narrative))
    pursuit = pursuit_decision(
        policy.pursuit,
        qualified=rec.state.qualified,
        urgency=narrative.penalized_urgency,
        raw_urgency=narrative.raw_urgency,
        current=rec.state.pursue_now,
    )
    if pursuit is not None:
        rec.record(pursuit)
    if policy.understanding is not None:
        return analysis
    objection = classify_objection(text, policy.objections)
    if objection.objection is not None or objection.sensitive:
        rec.record(ObjectionClassified(result=objection))
    return Analysis(
        sensitive=objection.escalation_reason == "sensitive_terms",
        low_confidence=objection.escalation_reason == "low_confidence",
        objection=objection.objection,
        confidence=objection.confidence,
    )


def explanations(model: ReaderModel, reading: Reading) -> tuple[HeadExplanation, ...]:
    """The band head and every head that fired on this message, term by term."""
    fired = ["band", *(f"signal:{name}" for name, on in reading.signals.items() if on)]
    if reading.objection is not None:
        fired.append(f"objection:{reading.objection}")
    if reading.needs_human:
        fired.append("needs_human")
    fired += [f"reason:{name}" for name in reading.reasons]
    fired += [f"intent:{name}" for name in reading.intents]
    return tuple(
        trusted(  # validated parts (`domain.model.trusted`): the model's, `explained_heads`'
            HeadExplanation,
            head=head,
            terms=terms,
            bias=bias,
            total=total,
            threshold=threshold,
            probability=probability,
        )
        for head, terms, bias, total, threshold, probability in explained_heads(
            model, fired, reading.features
        )
    )


def plain_json(value: object) -> Any:
    """A value with exact decimals as text, so a stored event reads back equal to itself."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {key: plain_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(item) for item in value]
    return value


def _read(
    rec: Recorder, text: str, model: ReaderModel, metadata: Mapping[str, object] | None
) -> Analysis:
    """Read the message with the trained reader, add it to the conversation, and score the
    conversation from its aggregate features (see `domain.understanding.reading`)."""
    state = rec.state
    reader = fingerprint(model)
    recorded = rec.recorded_reading
    if recorded is not None and recorded.reader == reader:
        # A replay under the same features: reuse what was extracted, re-weigh it.
        features = dict(recorded.features)
        reading = decide_reading(model, recorded.language, features, head_sums(model, features))
        evidence = dict(recorded.evidence)
        entities = dict(recorded.entities)
    else:
        today = datetime.fromtimestamp(rec.now_ms / 1000, tz=UTC).date()
        reading, extraction = read(text, model, today=today, metadata=metadata)
        evidence = extraction.evidence
        entities = plain_json(extraction.entities.as_json())
    taken_back = retracted(model, reading)
    held = {
        name: (state.signals.get(name, False) or on) and name not in taken_back
        for name, on in reading.signals.items()
    }
    features = aggregate(state.read_features, reading.features, taken_back)
    conversation = read_conversation(model, reading, features, held, taken_back)
    rec.record(
        trusted(  # from the reading's validated parts (`domain.model.trusted`)
            MessageRead,
            reader=reader,
            language=reading.language,
            features=reading.features,
            evidence=evidence,
            entities=entities,
            band=reading.band,
            score=reading.score,
            signals=reading.signals,
            objection=reading.objection,
            needs_human=reading.needs_human,
            reasons=reading.reasons,
            intents=reading.intents,
            retracted=taken_back,
            conversation_signals=conversation.signals,
            explanations=explanations(model, reading) if rec.explain else (),
        )
    )
    score = reader_score(model, conversation, evidence)
    qualified = score.band in rec.policy.conversation.qualified_bands
    if score != state.score or qualified != state.qualified:
        rec.record(trusted(LeadScored, score=score, qualified=qualified))
    return trusted(  # of the reading's values (`domain.model.trusted`)
        Analysis,
        sensitive=reading.needs_human,
        low_confidence=False,
        objection=reading.objection,
        confidence=Decimal(1),
        reason=", ".join(reading.reasons) or None,
        language=reading.language,
        intents=reading.intents,
        entities=entities,
        evidence={feature: tuple(terms) for feature, terms in evidence.items()},
        signals=tuple(name for name, on in reading.signals.items() if on),
    )


def _concrete_action(rec: Recorder, action: str) -> str:
    """Refine π's generic action with what the conversation knows."""
    templates = rec.policy.active_persona.templates
    if action == "handle_objection" and rec.state.last_objection:
        specific = f"objection.{rec.state.last_objection}"
        return specific if specific in templates else action
    if action == "ask_qualifying" and rec.policy.understanding is not None:
        for signal in ASKED_SIGNALS:
            specific = f"ask.{signal}"
            if not rec.state.signals.get(signal) and specific in templates:
                return specific
        return action
    if action == "ask_qualifying" and rec.state.score is not None:
        for feature in rec.policy.scoring.features:
            if feature.weight > Decimal(0) and rec.state.score.features.get(feature.name) == 0:
                specific = f"ask.{feature.name}"
                if specific in templates:
                    return specific
    return action


def _after_close(rec: Recorder, actor: Actor) -> None:
    """A message after the end still reaches a person, once per open ticket."""
    if rec.state.open_handoff_ticket() is not None:
        return
    rec.say("conversation_closed", persona_values(rec, actor))
    post_handoff_ticket(rec, "message_after_close")
