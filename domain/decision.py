"""What `decide` returns, and the recorder that builds it.

A `Decision` lists what should happen — events to append, replies to send, queries the
runtime must run against the store — and the state after the events. Nothing has
happened yet: the runtime commits the events, the delivery id, the outbox items and
the tickets in one transaction and only then acknowledges the platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

from domain.cards import Audience, Card, CardField, Reply
from domain.errors import RenderError
from domain.events import (
    ActionIgnored,
    BotReplied,
    ClaimRefused,
    Event,
    EventEnvelope,
    FlowAdvanced,
    HandedBack,
    MessageRead,
    TicketClaimed,
    TicketKind,
    TicketOpened,
    TicketReopened,
    TicketResolved,
)
from domain.flow import GuardContext, Transition, next_transition
from domain.inbound import Actor
from domain.languages import localized
from domain.model import Frozen, trusted
from domain.persona import Persona, Rendered, guard_problems, render, variant_seed
from domain.policy import Policy
from domain.state import ConversationState, apply
from domain.tickets import ticket_key

EVENT_TYPES: frozenset[type[object]] = frozenset(get_args(get_args(Event)[0]))
"""The classes of `Event`'s union: an instance of one is a valid event by construction."""

PROSPECT_AUDIENCES: tuple[Audience, ...] = ("conversation", "requester")
"""Audiences that hear the prospect's language; every other one hears the team's."""

CLAIM_ALERT_TITLE = "A reply was withheld by the claims guard"


def _claim_alert(conversation_id: str, refused: tuple[tuple[str, tuple[str, ...]], ...]) -> Card:
    """For sales ops: which template broke which rule; the policy needs a fix."""
    return Card(
        kind="notice",
        title=CLAIM_ALERT_TITLE,
        text="The fallback was said instead. Fix the policy's template "
        "(`salesbot check` lists every violation).",
        fields=(
            CardField(label="Conversation", value=conversation_id),
            *(
                CardField(label=f"Template {template!r}", value="; ".join(problems))
                for template, problems in refused
            ),
        ),
        status="Withheld",
    )


class Query(Frozen):
    """Work that needs the whole store (an audit, the metrics), already authorised here."""

    kind: Literal["audit", "metrics"]
    requested_by: str
    target: str = ""
    audience: Audience = "requester"
    installation: str = ""
    """The requester's installation (`Actor.installation`): the audit of a conversation of
    another installation is answered as if it did not exist, and the metrics count this
    installation's conversations only."""


class Decision(Frozen):
    events: tuple[EventEnvelope, ...] = ()
    replies: tuple[Reply, ...] = ()
    queries: tuple[Query, ...] = ()
    state: ConversationState

    @property
    def ticket_events(
        self,
    ) -> tuple[TicketOpened | TicketClaimed | TicketResolved | TicketReopened | HandedBack, ...]:
        """Ticket changes the runtime mirrors into the ticket store in the same commit
        (handing back resolves the ticket a human held)."""
        return tuple(
            env.event
            for env in self.events
            if isinstance(
                env.event,
                TicketOpened | TicketClaimed | TicketResolved | TicketReopened | HandedBack,
            )
        )


class Recorder:
    """Accumulates one decision. Each recorded event is folded into `state` at once, so
    later steps of the same decision see its effect (and its sequence number)."""

    def __init__(
        self,
        state: ConversationState,
        policy: Policy,
        now_ms: int,
        delivery_id: str,
        recorded_reading: MessageRead | None = None,
        *,
        explain: bool = True,
    ) -> None:
        self.state = state
        self.policy = policy
        self.now_ms = now_ms
        self.delivery_id = delivery_id
        self.recorded_reading = recorded_reading
        """A replay's recorded reading of this inbound's message: its features are reused
        when the policy's reader extracts the same features (same fingerprint)."""
        self.explain = explain
        """Whether readings are recorded with their per-head explanations (False in replay
        only: `decide`)."""
        self._plain = (
            type(now_ms) is int
            and now_ms >= 0
            and type(delivery_id) is str
            and type(policy.version) is str
            and type(state.conversation_id) is str
            and type(state.version) is int
            and state.version >= 0
        )
        """Whether this decision's envelopes can be built without validation: the inputs
        that validation would check are of their exact types and in range."""
        self._events: list[EventEnvelope] = []
        self._rendered: dict[tuple[object, ...], tuple[Persona, Rendered]] = {}
        self._replies: list[Reply] = []
        self._queries: list[Query] = []

    def record(self, event: Event) -> int:
        state = self.state
        if self._plain and type(event) in EVENT_TYPES:
            # Every part is valid already (`domain.model.trusted`): the state's id and
            # version, the event (a model of one of `Event`'s types), the inputs checked once.
            envelope = trusted(
                EventEnvelope,
                conversation_id=state.conversation_id,
                seq=state.version + 1,
                at_ms=self.now_ms,
                policy_version=self.policy.version,
                delivery_id=self.delivery_id,
                event=event,
            )
        else:
            envelope = EventEnvelope(
                conversation_id=state.conversation_id,
                seq=state.version + 1,
                at_ms=self.now_ms,
                policy_version=self.policy.version,
                delivery_id=self.delivery_id,
                event=event,
            )
        self._events.append(envelope)
        self.state = apply(self.state, envelope)
        return envelope.seq

    def reply(self, reply: Reply, *, first: bool = False) -> None:
        """Queue a reply; `first` puts it before everything queued so far (a lead card must
        exist before the replies threaded under it)."""
        if first:
            self._replies.insert(0, reply)
        else:
            self._replies.append(reply)

    def tell(self, actor: Actor, text: str, card: Card | None = None) -> None:
        """An ephemeral answer to the person who acted."""
        del actor  # the runtime knows the requester from the inbound
        self._replies.append(Reply(audience="requester", text=text, card=card))

    def query(self, query: Query) -> None:
        self._queries.append(query)

    def say(
        self,
        action: str,
        values: Mapping[str, str],
        *,
        audience: Audience = "conversation",
        evidence: Mapping[str, str] | None = None,
        card: Card | None = None,
        echoes: Mapping[str, str] | None = None,
        acknowledge: str | None = None,
    ) -> str:
        """Speak through the persona, and record exactly what was said and why.

        With the claims guard on, a template that breaks the claims rules is withheld: its
        fallback is said instead, the refusal recorded and the handoff channel told.

        A template with variants says the wording a hash of the conversation id and the turn
        picks, never the text the prospect read last while another wording renders.
        `echoes` are the prospect's own words (the reading's entities) for echo
        placeholders; `acknowledge` names an `ack.*` template said first, when it renders.
        """
        persona = self.persona_for(audience)
        guard = self.policy.safeguards.claims_guard
        seed = variant_seed(self.state.conversation_id, self.state.bot_turns, action)
        avoid = self.state.last_said if audience == "conversation" else None
        lead_in = self._acknowledgement(persona, acknowledge, values, echoes, guard)
        rendered = self.render(
            persona,
            action,
            values,
            evidence=evidence,
            guard=guard,
            echoes=echoes,
            seed=seed,
            avoid=avoid,
        )
        self.refused(action, rendered.refused)
        text = rendered.text if lead_in is None else f"{lead_in.text} {rendered.text}"
        self.speak(
            rendered.action,
            rendered.template_action,
            text,
            audience=audience,
            used_fallback=rendered.used_fallback,
            card=card,
            variant=rendered.variant,
            acknowledged=None if lead_in is None else lead_in.template_action,
            echoed={**(lead_in.echoed if lead_in else {}), **rendered.echoed},
        )
        return text

    def render(
        self,
        persona: Persona,
        action: str,
        values: Mapping[str, str],
        *,
        evidence: Mapping[str, str] | None = None,
        guard: bool = False,
        echoes: Mapping[str, str] | None = None,
        seed: int = 0,
        avoid: str | None = None,
        fallbacks: bool = True,
    ) -> Rendered:
        """`domain.persona.render`, remembered for this decision: a reply planned without
        parroting (`domain.reply_plan`) is rendered to see whether it may be said and then
        said with the same arguments; the second rendering is the first one's result (a
        rendering is a pure function of its arguments and immutable)."""
        key = (
            action,
            tuple(values.items()),
            None if evidence is None else tuple(evidence.items()),
            guard,
            None if echoes is None else tuple(echoes.items()),
            seed,
            avoid,
            fallbacks,
        )
        entry = self._rendered.get(key)
        if entry is not None and entry[0] is persona:
            return entry[1]
        rendered = render(
            persona,
            action,
            values,
            evidence=evidence,
            guard=guard,
            echoes=echoes,
            seed=seed,
            avoid=avoid,
            fallbacks=fallbacks,
        )
        self._rendered[key] = (persona, rendered)
        return rendered

    def speak(
        self,
        action: str,
        template: str,
        text: str,
        *,
        audience: Audience = "conversation",
        used_fallback: bool = False,
        card: Card | None = None,
        variant: int | None = None,
        acknowledged: str | None = None,
        echoed: Mapping[str, str] | None = None,
    ) -> None:
        """Say `text`, already rendered and checked, recording which template (and which of
        its wordings) said it. `say` uses this after the persona rendered a template; a
        knowledge answer uses it directly (its claims were checked by `domain.knowledge`)."""
        self.record(
            BotReplied(
                audience=audience,
                action=action,
                template=template,
                text=text,
                used_fallback=used_fallback,
                variant=variant,
                acknowledged=acknowledged,
                echoed=dict(echoed or {}),
                language=self.language_for(audience),
            )
        )
        self.reply(Reply(audience=audience, text=text, card=card))

    def language_for(self, audience: Audience) -> str | None:
        """The language of a message to `audience` under the policy's `[languages]`: the
        prospect's (the conversation, or a prospect asking for help) or the team's; None
        without `[languages]` (templates are said as written)."""
        config = self.policy.languages
        if config is None:
            return None
        if audience in PROSPECT_AUDIENCES:
            return self.state.reply_language or config.fallback
        return config.team

    def persona_for(self, audience: Audience) -> Persona:
        """The active persona speaking the language of `audience` (`language_for`)."""
        persona = self.policy.active_persona
        config = self.policy.languages
        language = self.language_for(audience)
        if config is None or language is None:
            return persona
        return localized(persona, config, language)

    def _acknowledgement(
        self,
        persona: Persona,
        action: str | None,
        values: Mapping[str, str],
        echoes: Mapping[str, str] | None,
        guard: bool,
    ) -> Rendered | None:
        """The `ack.*` lead-in as written, or None: it has no fallback, and one the claims
        guard withholds is recorded and reported like any other."""
        if action is None:
            return None
        problems = guard_problems(persona, action) if guard else ()
        if problems:
            self.refused(action, ((action, problems),))
            return None
        seed = variant_seed(self.state.conversation_id, self.state.bot_turns, action)
        try:
            return self.render(persona, action, values, echoes=echoes, seed=seed, fallbacks=False)
        except RenderError:
            return None

    def refused(self, action: str, refused: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
        """Record each reply the claims guard withheld, and tell the handoff channel."""
        for template, problems in refused:
            self.record(ClaimRefused(action=action, template=template, problems=problems))
        if refused:
            self.reply(
                Reply(
                    audience="handoff",
                    text=CLAIM_ALERT_TITLE,
                    card=_claim_alert(self.state.conversation_id, refused),
                )
            )

    def advance(self, trigger: str, guards: GuardContext) -> Transition | None:
        """Take the flow transition for `trigger`, if any; None when the state stays."""
        transition = next_transition(self.policy.flow, self.state.flow_state, trigger, guards)
        if transition is None:
            return None
        self.record(
            FlowAdvanced(
                from_state=self.state.flow_state,
                to_state=transition.to,
                trigger=trigger,
                guard=transition.guard,
                priority=transition.priority,
            )
        )
        return transition

    def open_ticket(
        self, kind: TicketKind, reason: str, summary: str, *, quote_id: str | None = None
    ) -> str | None:
        """Open a ticket keyed by the triggering event; None if that ticket exists already."""
        trigger_seq = self.state.version
        key = ticket_key(self.state.conversation_id, reason, trigger_seq)
        if key in self.state.tickets:
            return None
        self.record(
            TicketOpened(
                ticket_key=key,
                kind=kind,
                reason=reason,
                trigger_seq=trigger_seq,
                summary=summary,
                quote_id=quote_id,
            )
        )
        return key

    def ignore(self, actor: Actor, action: str, target: str, reason: str, message: str) -> None:
        """A click that changes nothing: say so to the clicker, and keep the record."""
        self.record(ActionIgnored(action=action, target=target, by=actor.id, reason=reason))
        self.tell(actor, message)

    def decision(self) -> Decision:
        return trusted(  # the recorder's own tuples of valid values (`domain.model.trusted`)
            Decision,
            events=tuple(self._events),
            replies=tuple(self._replies),
            queries=tuple(self._queries),
            state=self.state,
        )
