"""What a prospect's question gets: a knowledge answer, a request to clarify, or a person.

Decided here as a plan, carried out by `domain.conversation` (which records the events,
speaks and opens tickets), so the choice itself is a small pure function with its own
tests. The rules, in order, for a message the reader gives a `question` or
`pricing_question` intent, under a policy with a knowledge base:

0. a message the reader reads as an objection keeps the flow's objection reply: "we
   already use HubSpot, why switch?" asks for a reason to switch, not for the integration;
1. the best entry (BM25 over the examples, `domain.knowledge.retrieve`) scores at least
   `min_score`: its answer, in the prospect's language (the knowledge base's first language
   when it does not speak the prospect's). An entry with a `handoff` reason says its answer
   and brings in a person;
2. a pricing question that matched nothing well enough: the policy's `pricing_entry` (the
   plans with their catalog prices);
3. otherwise, when the flow had only a generic qualifying question or greeting to say:
   ask what the prospect means (`clarify`), or bring in a person — at once under
   `below_threshold = "person"`, or when the bot's previous reply already asked to clarify;
4. otherwise the flow's own reply (an objection reply, a proposal) stands.

An answer whose text breaks the claims rules is never said: the plan says so, and the flow's
reply is said instead (defence in depth: `salesbot check` refuses such a policy).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal

from domain.errors import RenderError
from domain.events import KnowledgeAnswered, KnowledgeUnanswered
from domain.knowledge import (
    QUESTION_INTENTS,
    KnowledgeConfig,
    answer_language,
    evidence_values,
    render_answer,
    retrieve,
    text_problems,
)
from domain.model import Frozen
from domain.quotes import CatalogConfig

ANSWER_ACTION = "answer_question"
CLARIFY_ACTION = "clarify_question"
PERSON_ACTION = "offer_person"
CLARIFY_TEMPLATE = "knowledge.clarify"
PERSON_TEMPLATE = "knowledge.person"
UNANSWERED_REASON = "unanswered_question"
"""The handoff ticket's reason when a person takes up a question the bot could not answer."""

GENERIC_ACTIONS = frozenset({"greet", "ask_qualifying"})
"""π's actions that a clarifying question may replace: they say nothing the prospect asked."""
OBJECTION_ACTION = "handle_objection"
"""π's action for an objection: a question that comes with one gets the objection reply."""

FlowReply = Literal["generic", "objection", "other"]
"""What the flow would say instead: a generic greeting or qualifying question, an objection
reply, or something else worth saying (a proposal)."""


class Plan(Frozen):
    """What to do with a question. `kind` says which; `event` is recorded before speaking
    (none for `refused`); `text` is said with `action` and `template`; `handoff` is the
    ticket's reason when a person takes over."""

    kind: Literal["answer", "clarify", "person", "flow", "refused"]
    event: KnowledgeAnswered | KnowledgeUnanswered | None = None
    action: str = ""
    template: str = ""
    text: str = ""
    handoff: str | None = None
    refused: tuple[tuple[str, tuple[str, ...]], ...] = ()


def plan_question(
    config: KnowledgeConfig | None,
    catalog: CatalogConfig,
    *,
    text: str,
    language: str,
    intents: Collection[str],
    flow_reply: FlowReply,
    answer_in: str | None = None,
    last_reply_template: str | None,
    values: Mapping[str, str],
    no_repeat: bool = False,
    said_counts: Mapping[str, int] | None = None,
) -> Plan | None:
    """The plan for a prospect's message, or None when it is not a question for the
    knowledge base (no knowledge base, no question intent, or an objection to answer).

    With `no_repeat` (the policy's `[replies]`), the entry the bot answered with last is
    not said again right away: the prospect asking again means the answer did not help, so
    the bot asks what they would like to know, as below the threshold; the same question
    once more after that (`said_counts` shows the entry was said) brings in a person."""
    if config is None or not QUESTION_INTENTS.intersection(intents):
        return None
    if flow_reply == "objection":
        return None
    base = config.base
    # Retrieval searches the language the message was read in; the answer is said in the
    # conversation's language (`answer_in`, under the policy's `[languages]`) when given.
    spoken = answer_language(base, answer_in or language)
    threshold = config.threshold
    match = retrieve(config, text, language)
    entry_id: str | None = None
    via: Literal["retrieval", "pricing_question"] = "retrieval"
    if match is not None and match.score >= threshold:
        entry_id = match.entry_id
    elif "pricing_question" in intents and config.pricing_entry is not None:
        entry_id, via = config.pricing_entry, "pricing_question"
    said_before = (said_counts or {}).get(f"knowledge.{entry_id}", 0) > 0
    repeated = (
        no_repeat
        and entry_id is not None
        and (
            last_reply_template == f"knowledge.{entry_id}"
            or (last_reply_template == CLARIFY_TEMPLATE and said_before)
        )
    )
    if repeated:
        entry_id = None
    merged = {**values, **evidence_values(config, catalog)}
    if entry_id is not None:
        entry = base.entry(entry_id)
        template = f"knowledge.{entry.id}"
        answer = entry.answers.get(spoken) or entry.answers.get(base.languages[0], "")
        said = _checked(config, catalog, template, answer, entry.claims, merged)
        if isinstance(said, Plan):
            return said
        return Plan(
            kind="answer",
            event=KnowledgeAnswered(
                entry_id=entry.id,
                language=spoken,
                read_language=language,
                matched_language=match.language if match is not None else None,
                score=match.score if match is not None else 0,
                threshold=threshold,
                terms=match.terms if match is not None and via == "retrieval" else (),
                via=via,
                handoff=entry.handoff,
            ),
            action=ANSWER_ACTION,
            template=template,
            text=said,
            handoff=entry.handoff,
        )
    if flow_reply != "generic":
        outcome: Literal["clarify", "person", "flow"] = "flow"
    elif config.below_threshold == "person" or last_reply_template == CLARIFY_TEMPLATE:
        outcome = "person"
    else:
        outcome = "clarify"
    event = KnowledgeUnanswered(
        best_entry_id=match.entry_id if match is not None else None,
        language=spoken,
        read_language=language,
        score=match.score if match is not None else 0,
        threshold=threshold,
        outcome=outcome,
        repeated=repeated,
    )
    if outcome == "flow":
        return Plan(kind="flow", event=event)
    texts = base.clarify if outcome == "clarify" else base.person
    template = CLARIFY_TEMPLATE if outcome == "clarify" else PERSON_TEMPLATE
    wording = texts.get(spoken) or texts.get(base.languages[0], "")
    said = _checked(config, catalog, template, wording, (), merged)
    if isinstance(said, Plan):
        return said
    return Plan(
        kind=outcome,
        event=event,
        action=CLARIFY_ACTION if outcome == "clarify" else PERSON_ACTION,
        template=template,
        text=said,
        handoff=UNANSWERED_REASON if outcome == "person" else None,
    )


def _checked(
    config: KnowledgeConfig,
    catalog: CatalogConfig,
    template: str,
    text: str,
    claims: tuple[str, ...],
    values: Mapping[str, str],
) -> str | Plan:
    """The rendered text, or a `refused` plan when the claims rules forbid saying it."""
    problems = text_problems(config, catalog, text, claims)
    if not problems:
        try:
            return render_answer(text, values)
        except RenderError as error:
            problems = (str(error),)
    return Plan(kind="refused", refused=((template, problems),))
