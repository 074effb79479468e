"""`salesbot check` for `[dialog]`: the priorities it promises hold in the flow table.

`verify_flow` already checks the new transitions like the old ones (every state reachable, an
escape to a person from each, one transition per context). What it cannot know is the order
`[dialog]` promises (`domain.dialog`): in every bot state, a person's matter before a polite
close, a polite close before an objection reply, a buyer before an objection reply; a close
that the prospect can come back from; and words for every close.
"""

from __future__ import annotations

from collections.abc import Iterable

from domain.dialog import (
    AGAIN_TEMPLATE,
    BUYING_GUARD,
    CLOSE_PREFIX,
    CLOSE_TEMPLATES,
    KEPT_OPEN_TEMPLATE,
    LEAVING_GUARD,
)
from domain.dialog_config import LEXICON_PREFIX
from domain.flow import FlowSpec, Transition
from domain.policy import Policy

SENSITIVE_GUARD = "is_sensitive"
OBJECTION_GUARD = "is_objection"
MESSAGE = "prospect_message"


def check_dialog(policy: Policy) -> list[str]:
    """One line per broken `[dialog]` promise; empty without `[dialog]`."""
    config = policy.dialog
    if config is None:
        return []
    problems: list[str] = []
    if (config.close_on or config.not_a_buyer) and policy.understanding is None:
        problems.append(
            "dialog: close_on and not_a_buyer read the trained reader's intents and words, "
            "and the policy has no [understanding]: no message would ever close"
        )
    if policy.understanding is not None:
        lexicons = policy.understanding.reader.spec.lexicons
        for reason, features in config.heard.items():
            for feature in features:
                if feature.removeprefix(LEXICON_PREFIX) not in lexicons:
                    problems.append(
                        f"dialog: heard.{reason} names {feature!r}, which the reader does not "
                        "extract; the reason could never count"
                    )
    if "not_a_buyer" in config.close_on and not config.not_a_buyer:
        problems.append("dialog: close_on lists not_a_buyer but not_a_buyer lists no words")
    if config.not_a_buyer and "not_a_buyer" not in config.close_on:
        problems.append("dialog: not_a_buyer lists words but close_on does not list not_a_buyer")
    problems += [f"flow: {line}" for line in _order_problems(policy.flow, bool(config.close_on))]
    problems += _template_problems(policy)
    return problems


def _bot_states(flow: FlowSpec) -> list[str]:
    return [s for s in flow.states if s not in flow.terminal and s != flow.handoff]


def _on_message(flow: FlowSpec, state: str, guard: str) -> list[Transition]:
    return [
        t for t in flow.transitions if t.source == state and t.on == MESSAGE and t.guard == guard
    ]


def _first(transitions: Iterable[Transition]) -> int | None:
    priorities = [t.priority for t in transitions]
    return min(priorities) if priorities else None


def _order_problems(flow: FlowSpec, closes: bool) -> list[str]:
    problems: list[str] = []
    close_states: set[str] = set()
    for state in _bot_states(flow):
        if not any(t.source == state and t.on == MESSAGE for t in flow.transitions):
            continue
        leaving = _on_message(flow, state, LEAVING_GUARD)
        close_states.update(t.to for t in leaving)
        buying = _first(_on_message(flow, state, BUYING_GUARD))
        objection = _first(_on_message(flow, state, OBJECTION_GUARD))
        sensitive = _first(_on_message(flow, state, SENSITIVE_GUARD))
        if closes and not leaving:
            problems.append(
                f"[dialog] in state {state!r} a prospect who leaves gets no polite close: add a "
                f"{MESSAGE} transition guarded by {LEAVING_GUARD}"
            )
        if buying is None:
            problems.append(
                f"[dialog] in state {state!r} a buyer is not moved on: add a {MESSAGE} "
                f"transition guarded by {BUYING_GUARD} (to the proposal)"
            )
        elif objection is not None and buying >= objection:
            problems.append(
                f"[dialog] in state {state!r} a buying signal does not outrank an objection: "
                f"{BUYING_GUARD} has priority {buying}, {OBJECTION_GUARD} {objection}"
            )
        close = _first(leaving)
        if close is None:
            continue
        if objection is not None and close >= objection:
            problems.append(
                f"[dialog] in state {state!r} a prospect who leaves would get an objection "
                f'reply ("we went with HubSpot" is also a competitor objection): '
                f"{LEAVING_GUARD} has priority {close}, {OBJECTION_GUARD} {objection}"
            )
        if sensitive is not None and close <= sensitive:
            problems.append(
                f"[dialog] in state {state!r} a polite close would talk over a request for a "
                f"person: {LEAVING_GUARD} has priority {close}, {SENSITIVE_GUARD} {sensitive}"
            )
    for state in sorted(close_states):
        if state in flow.terminal or state == flow.handoff:
            continue
        ways_back = [
            t
            for t in flow.transitions
            if t.source == state and t.on == MESSAGE and t.to not in (state, flow.handoff)
        ]
        if not ways_back:
            problems.append(
                f"[dialog] the close state {state!r} has no way back: a prospect who writes "
                "again could never reopen the conversation"
            )
    return problems


def _template_problems(policy: Policy) -> list[str]:
    config = policy.dialog
    assert config is not None
    needed = [f"{CLOSE_PREFIX}{reason}" for reason in config.close_on]
    if "goodbye" in config.close_on:
        needed.append(KEPT_OPEN_TEMPLATE)
    problems: list[str] = []
    for key, persona in policy.personas.items():
        for action in needed:
            if action not in persona.templates:
                problems.append(
                    f"personas.{key}: [dialog] closes on {action.removeprefix(CLOSE_PREFIX)!r} "
                    f"but there is no template {action!r}"
                )
        for action in persona.templates:
            if action.startswith(CLOSE_PREFIX) and action not in CLOSE_TEMPLATES:
                known = ", ".join(CLOSE_TEMPLATES)
                problems.append(
                    f"personas.{key}: template {action!r} is never said; the closes are {known}"
                )
        if policy.replies.no_repeat:
            for action in (*needed, AGAIN_TEMPLATE):
                template = persona.templates.get(action)
                if template is not None and len(set(template.texts)) < 2:
                    problems.append(
                        f"personas.{key}: replies.no_repeat is on but template {action!r} has "
                        "one wording, and a prospect who says goodbye twice would read it "
                        "twice in a row; add a variant"
                    )
    return problems
