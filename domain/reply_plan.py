"""What the bot says back to a prospect without parroting them (the policy's `[replies]`).

A person qualifying a lead does not ask "Do you have a budget range in mind?" five times in a
row: they ask something else, offer a call, or bring in a colleague. `plan_reply` turns π's
action into the template to say under two rules of the policy:

- `max_asks_per_slot`: each qualification question (`ask.<slot>`, the generic
  `ask_qualifying`), the proposal offer (`propose`) and each objection class's reply
  (`objection.<class>`) is said at most that many times;
- `no_repeat`: a template whose every wording would repeat the prospect's last bot message
  is not said;
- `[dialog] move_on_after_objection`: an objection class's reply is not said right after
  itself ("too expensive" twice in a row gets the budget question the second time).

Questions go to the slots the prospect has not answered, the least asked first (so the same
question is not asked twice in a row while another is open; after an objection's replies are
used up, its closest slot first: price → budget); when none is left, the bot offers the
proposal; when that is used up too, a person takes over with a ticket that says
why. Every prospect message still gets a reply or reaches a person.

Where the prospect just stated something the bot asks about (an amount, a head count, a
date), the reply opens with the policy's `ack.<entity>` template echoing their words
("A team of 25 — thanks.").
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from pydantic import Field

from domain.decision import Recorder
from domain.errors import RenderError
from domain.events import ReplyRedirected
from domain.model import Frozen
from domain.persona import ACKNOWLEDGEMENT_PREFIX, ESCALATE, variant_seed

QUESTION_PREFIX: Final = "ask."
GENERIC_QUESTION: Final = "ask_qualifying"
PROPOSAL: Final = "propose"
OBJECTION_PREFIX: Final = "objection."

SLOTS: Final = ("budget", "timeline", "authority", "need")
"""The qualification slots the trained reader hears, in the order they are first asked."""

OBJECTION_SLOTS: Final = {
    "price": "budget",
    "timing": "timeline",
    "needs": "need",
    "competitor": "need",
}
"""After an objection class's reply is used up, the question closest to it comes first: "too
expensive" leads to the budget, "not now" to the timeline."""

OBJECTION_ANSWERS: Final = {"authority": ("authority",)}
"""Objections that answer a question themselves: "I need to check with my boss" says who
else decides, so the bot does not ask it in the same turn."""

ENTITY_SLOTS: Final = {"budget": "budget", "date": "timeline"}
"""Echoed entities that answer a question in the turn they are said (an amount, a date)."""

ACKNOWLEDGED: Final = ("budget", "team_size", "date")
"""Entities an `ack.*` template may acknowledge before a question, first found first."""

SAID_AGAIN_UNPLANNED: Final = (
    "flood_notice",
    "conversation_closed",
    "quote_in_preparation",
    "quote_pending_approval",
    "handed_back",
)
"""Templates the bot may say in two messages in a row without a plan choosing them: a flood
notice a minute after another, a second message after a closed conversation's ticket was
resolved, two quotes waiting for approval, a hand-back after an idle handoff. Under
`no_repeat`, `salesbot check` requires a second wording for each."""

QUESTIONS_EXHAUSTED: Final = "questions_exhausted"
QUALIFIED_FOLLOW_UP: Final = "qualified_follow_up"
"""Ticket reasons when the bot has nothing new to say (not qualified / qualified)."""


class ReplyPlan(Frozen):
    """What to say: a template (with an acknowledgement and the prospect's words to echo),
    or, when `handoff_reason` is set, a handoff to a person for that reason."""

    action: str
    acknowledge: str | None = None
    echoes: dict[str, str] = Field(default_factory=dict)
    handoff_reason: str | None = None


def echoes_from(entities: Mapping[str, object]) -> dict[str, str]:
    """The prospect's own words the echo placeholders may repeat, from one message's entities
    (`Entities.as_json`): the first amount and the first date as written, the head count and
    the competitor's name."""
    echoes: dict[str, str] = {}
    for key, placeholder in (("money", "budget"), ("dates", "date")):
        mentions = entities.get(key)
        if isinstance(mentions, list) and mentions and isinstance(mentions[0], dict):
            text = mentions[0].get("text")
            if isinstance(text, str) and text.strip():
                echoes[placeholder] = " ".join(text.split())
    team = entities.get("team_size")
    if isinstance(team, int) and not isinstance(team, bool) and team > 0:
        echoes["team_size"] = str(team)
    competitor = entities.get("competitor")
    if isinstance(competitor, str) and competitor.strip():
        echoes["competitor"] = competitor.strip()
    return echoes


def is_limited(template: str) -> bool:
    """Whether `max_asks_per_slot` counts this template: a question, the proposal, or the
    reply to one objection class (the third "not now" gets something else than the first)."""
    return template.startswith((QUESTION_PREFIX, OBJECTION_PREFIX)) or template in (
        GENERIC_QUESTION,
        PROPOSAL,
    )


def is_question(template: str) -> bool:
    """A qualification question or the proposal: what an acknowledgement may open."""
    return template.startswith(QUESTION_PREFIX) or template in (GENERIC_QUESTION, PROPOSAL)


def plan_reply(
    rec: Recorder,
    action: str,
    values: Mapping[str, str],
    entities: Mapping[str, object],
) -> ReplyPlan:
    """The reply to a prospect's message for π's `action`, moving on where it would parrot.

    Records `reply_redirected` when the first choice was skipped, with each reason.
    """
    config = rec.policy.replies
    echoes = echoes_from(entities)
    candidates = _candidates(rec, action, echoes)
    skipped: list[tuple[str, str]] = []
    chosen: str | None = None
    dialog = rec.policy.dialog
    move_on = dialog is not None and dialog.move_on_after_objection
    for candidate in candidates:
        if (
            move_on
            and candidate.startswith(OBJECTION_PREFIX)
            and candidate == rec.state.last_reply_template
        ):
            skipped.append((candidate, "was the reply just before (answered once, then move on)"))
            continue
        asked = rec.state.said_counts.get(candidate, 0)
        limit = config.max_asks_per_slot
        if limit is not None and is_limited(candidate) and asked >= limit:
            times = "once" if asked == 1 else f"{asked} times"
            skipped.append((candidate, f"already said {times} (the limit is {limit})"))
            continue
        why_not = _unsayable(rec, candidate, values, echoes) if config.no_repeat else None
        if why_not is not None:
            skipped.append((candidate, why_not))
            continue
        chosen = candidate
        break
    said = chosen if chosen is not None else ESCALATE
    if skipped:
        rec.record(ReplyRedirected(planned=candidates[0], said=said, skipped=tuple(skipped)))
    if chosen is None:
        reason = QUALIFIED_FOLLOW_UP if rec.state.qualified else QUESTIONS_EXHAUSTED
        return ReplyPlan(action=candidates[0], echoes=echoes, handoff_reason=reason)
    return ReplyPlan(
        action=chosen, acknowledge=_acknowledgement(rec, chosen, echoes), echoes=echoes
    )


def escalation_action(rec: Recorder, reason: str) -> str:
    """The words for a handoff: the policy's `escalate.<reason>` template when it has one
    (the first of several reader reasons), so the prospect hears why a person is coming
    instead of "a specialist for that request" when they requested nothing."""
    first = reason.split(",")[0].strip()
    specific = f"{ESCALATE}.{first}"
    return specific if specific in rec.policy.active_persona.templates else ESCALATE


def _candidates(rec: Recorder, action: str, echoes: Mapping[str, str]) -> list[str]:
    """π's action made concrete, then where to move on to, in order of preference."""
    templates = rec.policy.active_persona.templates
    # What the prospect just said answers a question for this turn, even where the reader
    # does not count it as the slot's signal: no "When…?" right after "next quarter".
    answered = {slot for entity, slot in ENTITY_SLOTS.items() if entity in echoes}
    if action == "handle_objection":
        objection = rec.state.last_objection or ""
        specific = f"{OBJECTION_PREFIX}{objection}" if objection else action
        first = specific if specific in templates else action
        answered |= set(OBJECTION_ANSWERS.get(objection, ()))
        related = OBJECTION_SLOTS.get(objection)
        return [first, *_questions(rec, answered, first=related), PROPOSAL]
    if action == GENERIC_QUESTION:
        return [*_questions(rec, answered), PROPOSAL]
    return [action]


def _questions(rec: Recorder, answered: set[str], *, first: str | None = None) -> list[str]:
    """Questions about the slots the prospect has not answered, the least asked first (ties
    in slot order; the slot `first` names ahead of all), then the generic question."""
    templates = rec.policy.active_persona.templates
    open_slots = [
        slot
        for slot in _unheard_slots(rec)
        if slot not in answered and f"{QUESTION_PREFIX}{slot}" in templates
    ]
    counts = rec.state.said_counts
    ranked = sorted(
        enumerate(open_slots),
        key=lambda item: (
            item[1] != first,
            counts.get(f"{QUESTION_PREFIX}{item[1]}", 0),
            item[0],
        ),
    )
    return [f"{QUESTION_PREFIX}{slot}" for _, slot in ranked] + [GENERIC_QUESTION]


def _unheard_slots(rec: Recorder) -> list[str]:
    """Slots not yet heard: the reader's signals, or the lexicon scorer's positive features
    that scored nothing (the same notion `_concrete_action` asks about)."""
    if rec.policy.understanding is not None:
        return [slot for slot in SLOTS if not rec.state.signals.get(slot)]
    score = rec.state.score
    return [
        feature.name
        for feature in rec.policy.scoring.features
        if feature.weight > Decimal(0) and (score is None or score.features.get(feature.name) == 0)
    ]


def _unsayable(
    rec: Recorder, action: str, values: Mapping[str, str], echoes: Mapping[str, str]
) -> str | None:
    """Why `action` cannot be said now without parroting, or None when it can."""
    persona = rec.persona_for("conversation")
    try:
        rendered = rec.render(
            persona,
            action,
            values,
            guard=rec.policy.safeguards.claims_guard,
            echoes=echoes,
            seed=variant_seed(rec.state.conversation_id, rec.state.bot_turns, action),
            avoid=rec.state.last_said,
        )
    except RenderError:
        return "cannot be rendered"
    if rendered.template_action == ESCALATE and action != ESCALATE:
        return "has no words of its own (only the handoff line)"
    if rendered.repeated:
        return "would repeat the last message word for word"
    return None


def _acknowledgement(rec: Recorder, action: str, echoes: Mapping[str, str]) -> str | None:
    """The `ack.<entity>` template to open a question or the proposal with, when the prospect
    just stated that entity."""
    if not is_question(action):
        return None
    templates = rec.policy.active_persona.templates
    for entity in ACKNOWLEDGED:
        ack = f"{ACKNOWLEDGEMENT_PREFIX}{entity}"
        if entity in echoes and ack in templates:
            return ack
    return None
