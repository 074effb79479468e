"""`salesbot check`: every rule a policy must satisfy, reported all at once.

Loading already validated types and ranges; these are the rules that span sections —
the flow's invariants, the persona's templates and claims, the knowledge base's answers and
claims, the order `[dialog]` promises (`domain.dialog_check`), and the places where one
section names something another must define.
"""

from __future__ import annotations

from domain.dialog_check import check_dialog
from domain.flow import verify_flow
from domain.knowledge import check_knowledge
from domain.languages import check_languages
from domain.meetings import BOOKING_TEMPLATE
from domain.persona import ESCALATE, check_persona
from domain.policy import Policy
from domain.presenters import REASON_TEXT
from domain.reply_plan import ACKNOWLEDGED, SAID_AGAIN_UNPLANNED


def check_policy(policy: Policy) -> tuple[str, ...]:
    """One human-readable line per violation; empty when the policy is sound."""
    problems: list[str] = [f"flow: {v.rule}: {v.message}" for v in verify_flow(policy.flow)]
    states = policy.flow.states
    for key, persona in policy.personas.items():
        problems += [
            f"personas.{key}: {line}" for line in check_persona(persona, known_states=states)
        ]
        for objection in policy.objections.classes:
            action = f"objection.{objection.name}"
            if action not in persona.templates and action not in persona.fallbacks:
                problems.append(
                    f"personas.{key}: objection class {objection.name!r} has no template "
                    f"{action!r} and no fallback for it"
                )
    problems += _safeguard_problems(policy)
    if policy.knowledge is not None:
        problems += check_knowledge(
            policy.knowledge, policy.catalog, has_reader=policy.understanding is not None
        )
    if policy.languages is not None:
        for key, persona in policy.personas.items():
            problems += check_languages(key, persona, policy.languages)
    problems += _no_repeat_problems(policy)
    problems += _unused_template_problems(policy)
    problems += _meeting_problems(policy)
    problems += check_dialog(policy)
    return tuple(problems)


def _meeting_problems(policy: Policy) -> list[str]:
    """`[meetings]`: the booking link is a declared fact making `meetings.claim`; the
    persona must allow that claim, and `meeting.booking` must exist, state `{link}` in every
    wording and declare the claim (else a meeting request gets the flow's reply)."""
    config = policy.meetings
    if config is None:
        return []
    problems: list[str] = []
    for key, persona in policy.personas.items():
        if config.claim not in persona.allowed_claims:
            problems.append(
                f"personas.{key}: the booking link's claim {config.claim!r} "
                "(meetings.claim) is not allowed"
            )
        template = persona.templates.get(BOOKING_TEMPLATE)
        if template is None:
            problems.append(
                f"personas.{key}: [meetings] is set but there is no {BOOKING_TEMPLATE!r} template"
            )
            continue
        if config.claim not in template.claims:
            problems.append(
                f"personas.{key}: template {BOOKING_TEMPLATE!r} states the booking link but "
                f"does not declare the {config.claim!r} claim"
            )
        if any("{link}" not in text for text in template.texts):
            problems.append(
                f"personas.{key}: template {BOOKING_TEMPLATE!r}: every wording must give the "
                "booking link ({link})"
            )
    return problems


def _unused_template_problems(policy: Policy) -> list[str]:
    """An `ack.*` or `escalate.*` template whose name the bot never looks up is a typo that
    would otherwise pass silently (the prospect would get the generic line)."""
    problems: list[str] = []
    for key, persona in policy.personas.items():
        for action in persona.templates:
            kind, _, name = action.partition(".")
            if kind == "ack" and name not in ACKNOWLEDGED:
                known = ", ".join(ACKNOWLEDGED)
                problems.append(
                    f"personas.{key}: template {action!r} is never said; acknowledgements "
                    f"exist for {known}"
                )
            elif kind == ESCALATE and name and name not in REASON_TEXT:
                problems.append(
                    f"personas.{key}: template {action!r} is never said; {name!r} is not a "
                    "handoff reason"
                )
    return problems


def _no_repeat_problems(policy: Policy) -> list[str]:
    """With `replies.no_repeat`, a template the bot may say in two messages in a row outside
    the reply plan (a flood notice a minute after another, two quotes in preparation) needs a
    second wording, or the prospect would read the same line twice."""
    if not policy.replies.no_repeat:
        return []
    problems: list[str] = []
    for key, persona in policy.personas.items():
        for action in SAID_AGAIN_UNPLANNED:
            template = persona.templates.get(action)
            if template is not None and len(set(template.texts)) < 2:
                problems.append(
                    f"personas.{key}: replies.no_repeat is on but template {action!r} has one "
                    "wording, and the bot may say it twice in a row; add a variant"
                )
    return problems


def _safeguard_problems(policy: Policy) -> list[str]:
    """A switched-on safeguard needs words to say: its template, or an explicit fallback."""
    needed: list[tuple[str, str]] = []
    if policy.safeguards.prospect_view:
        needed.append(("quote_in_preparation", "safeguards.prospect_view"))
    if policy.safeguards.flood_limit_per_minute is not None:
        needed.append(("flood_notice", "safeguards.flood_limit_per_minute"))
    problems: list[str] = []
    for key, persona in policy.personas.items():
        for action, switch in needed:
            if action not in persona.templates and action not in persona.fallbacks:
                problems.append(
                    f"personas.{key}: {switch} is on but there is no template {action!r} "
                    "and no fallback for it"
                )
    return problems
