"""`salesbot check` on `[dialog]` and `[competitors]`: the promised order in every bot state
(a person first, then a polite close, a buyer before an objection), a close the prospect can
come back from, words for every close, and tables that cannot mean two things."""

from __future__ import annotations

from typing import Any

import pytest

from domain.dialog_config import DialogConfig, competitor_named
from domain.errors import PolicyError
from domain.flow import GuardContext, Transition, step, verify_flow
from domain.persona import Template
from domain.policy import Policy, build_policy
from domain.policy_check import check_policy


def with_transitions(policy: Policy, keep: Any, *extra: Transition) -> Policy:
    flow = policy.flow
    transitions = tuple(t for t in flow.transitions if keep(t)) + extra
    return policy.model_copy(update={"flow": flow.model_copy(update={"transitions": transitions})})


def with_templates(policy: Policy, **changes: Template | None) -> Policy:
    persona = policy.active_persona
    templates = dict(persona.templates)
    for name, template in changes.items():
        action = name.replace("__", ".")
        if template is None:
            templates.pop(action, None)
        else:
            templates[action] = template
    personas = {policy.persona: persona.model_copy(update={"templates": templates})}
    return policy.model_copy(update={"personas": personas, "languages": None})


def dialog_lines(policy: Policy) -> list[str]:
    return [line for line in check_policy(policy) if "dialog" in line or "close" in line]


def test_the_shipped_policies_pass(default_policy: Policy, seed_policy: Policy) -> None:
    assert check_policy(default_policy) == ()
    assert check_policy(seed_policy) == ()
    assert verify_flow(default_policy.flow) == ()


@pytest.mark.parametrize(
    ("state", "signals", "expected"),
    [
        # the order in every bot state: a person, a close, a buyer, an objection
        ("qualify", {"sensitive": True, "leaving": True}, "handoff"),
        ("qualify", {"leaving": True, "objection": True}, "farewell"),
        ("objection", {"buying": True, "objection": True}, "proposal"),
        ("greeting", {"buying": True, "objection": True, "qualified": True}, "proposal"),
        ("start", {"leaving": True, "buying": True}, "farewell"),
        ("proposal", {"leaving": True, "qualified": True}, "farewell"),
        # after the close: stay unless there is something to work on
        ("farewell", {}, "farewell"),
        ("farewell", {"qualified": True}, "farewell"),
        ("farewell", {"leaving": True}, "farewell"),
        ("farewell", {"engaged": True}, "qualify"),
        ("farewell", {"buying": True, "objection": True}, "proposal"),
        ("farewell", {"objection": True}, "objection"),
        ("farewell", {"sensitive": True, "engaged": True}, "handoff"),
    ],
)
def test_the_product_flow_puts_people_closes_and_buyers_in_the_promised_order(
    default_policy: Policy, state: str, signals: dict[str, bool], expected: str
) -> None:
    assert step(default_policy.flow, state, "prospect_message", GuardContext(**signals)) == expected


def test_a_lost_deal_left_idle_is_not_abandoned_but_a_qualified_one_reaches_a_person(
    default_policy: Policy,
) -> None:
    flow = default_policy.flow
    assert step(flow, "farewell", "idle_timeout", GuardContext()) == "farewell"
    assert step(flow, "farewell", "idle_timeout", GuardContext(qualified=True)) == "handoff"


def test_the_new_transitions_are_verified_like_the_old_ones(default_policy: Policy) -> None:
    # Determinism: a close at the buyer's priority could fire together with it.
    clash = Transition(
        source="qualify", on="prospect_message", to="farewell", guard="is_leaving", priority=25
    )
    broken = with_transitions(
        default_policy, lambda t: not (t.source == "qualify" and t.guard == "is_leaving"), clash
    )
    assert any(
        line.startswith("flow: nondeterministic: In 'qualify' on 'prospect_message'")
        for line in check_policy(broken)
    )
    # Reachability: without the closes, nothing leads to the farewell state.
    unreached = with_transitions(
        default_policy, lambda t: t.guard != "is_leaving" or t.source == "farewell"
    )
    assert (
        "flow: unreachable_state: State 'farewell' cannot be reached from the start state 'start'."
    ) in check_policy(unreached)


def test_a_state_without_a_buyer_transition_is_reported(default_policy: Policy) -> None:
    broken = with_transitions(
        default_policy, lambda t: not (t.source == "objection" and t.guard == "is_buying")
    )
    assert dialog_lines(broken) == [
        "flow: [dialog] in state 'objection' a buyer is not moved on: add a prospect_message "
        "transition guarded by is_buying (to the proposal)"
    ]


def test_a_buyer_behind_an_objection_is_reported(default_policy: Policy) -> None:
    late = Transition(
        source="qualify", on="prospect_message", to="proposal", guard="is_buying", priority=35
    )
    broken = with_transitions(
        default_policy, lambda t: not (t.source == "qualify" and t.guard == "is_buying"), late
    )
    assert dialog_lines(broken) == [
        "flow: [dialog] in state 'qualify' a buying signal does not outrank an objection: "
        "is_buying has priority 35, is_objection 30"
    ]


def test_a_close_behind_an_objection_or_ahead_of_a_person_is_reported(
    default_policy: Policy,
) -> None:
    late = Transition(
        source="greeting", on="prospect_message", to="farewell", guard="is_leaving", priority=31
    )
    early = Transition(
        source="proposal", on="prospect_message", to="farewell", guard="is_leaving", priority=5
    )
    broken = with_transitions(
        default_policy,
        lambda t: not (t.source in ("greeting", "proposal") and t.guard == "is_leaving"),
        late,
        early,
    )
    lines = dialog_lines(broken)
    assert any(
        "in state 'greeting' a prospect who leaves would get an objection" in line for line in lines
    )
    assert any(
        "in state 'proposal' a polite close would talk over a request for a person" in line
        for line in lines
    )


def test_a_state_where_a_leaving_prospect_gets_no_close_is_reported(default_policy: Policy) -> None:
    broken = with_transitions(
        default_policy, lambda t: not (t.source == "start" and t.guard == "is_leaving")
    )
    assert dialog_lines(broken) == [
        "flow: [dialog] in state 'start' a prospect who leaves gets no polite close: add a "
        "prospect_message transition guarded by is_leaving"
    ]


def test_a_close_state_with_no_way_back_is_reported(default_policy: Policy) -> None:
    broken = with_transitions(
        default_policy,
        lambda t: (
            not (
                t.source == "farewell"
                and t.on == "prospect_message"
                and t.to not in ("farewell", "handoff")
            )
        ),
    )
    assert (
        "flow: [dialog] the close state 'farewell' has no way back: a prospect who writes "
        "again could never reopen the conversation"
    ) in dialog_lines(broken)


def test_missing_misnamed_and_single_wording_closes_are_reported(default_policy: Policy) -> None:
    broken = with_templates(
        default_policy,
        close__goodbye=None,
        close__bye=Template(text="Bye!", variants=("See you!",)),
        close__not_interested=Template(text="Understood, all the best."),
    )
    lines = dialog_lines(broken)
    assert (
        "personas.salespro: [dialog] closes on 'goodbye' but there is no template 'close.goodbye'"
        in lines
    )
    assert any(
        line.startswith("personas.salespro: template 'close.bye' is never said") for line in lines
    )
    assert any("template 'close.not_interested' has one wording" in line for line in lines)


def test_dialog_settings_that_could_never_apply_are_reported(default_policy: Policy) -> None:
    assert default_policy.dialog is not None
    dialog = default_policy.dialog.model_copy(
        update={"heard": {"goodbye": ("lex:farewell",)}, "not_a_buyer": ()}
    )
    lines = dialog_lines(default_policy.model_copy(update={"dialog": dialog}))
    assert (
        "dialog: heard.goodbye names 'lex:farewell', which the reader does not extract; the "
        "reason could never count"
    ) in lines
    assert "dialog: close_on lists not_a_buyer but not_a_buyer lists no words" in lines
    lexicons = default_policy.model_copy(update={"understanding": None, "knowledge": None})
    assert any("has no [understanding]" in line for line in dialog_lines(lexicons))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"close_on": ["goodbye", "goodbye"]}, "close_on lists a reason more than once"),
        ({"heard": {"goodbye": ["w:bye"]}}, "lexicon features"),
        ({"not_a_buyer": ["student", " "]}, "must not be blank"),
        ({"close_on": ["lost_interest"]}, "close_on"),
    ],
)
def test_a_malformed_dialog_table_is_refused_with_its_key(
    table: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DialogConfig.model_validate(table)


def test_one_spelling_for_two_competitors_is_refused(default_policy: Policy) -> None:
    document = default_policy.model_dump(mode="json", by_alias=True)
    document["competitors"] = {"HubSpot": ["Hub"], "Hubble": ["hub"]}
    with pytest.raises(PolicyError, match="'hub' is listed for both 'HubSpot' and 'Hubble'"):
        build_policy(document, "test.toml")


COMPETITORS = {
    "HubSpot": ("Hubspot CRM",),
    "Microsoft Dynamics": ("Dynamics 365", "MS Dynamics"),
    "Drift": (),
}


@pytest.mark.parametrize(
    ("read", "text", "expected"),
    [
        ("HubSpot", "we chose HubSpot", "HubSpot"),
        ("hubspot crm", "we chose hubspot crm", "HubSpot"),  # an alias, any case
        ("Pipedrive", "we chose Pipedrive", "Pipedrive"),  # unlisted: as the reader spelled it
        (None, "we went with Dynamics  365 in the end", "Microsoft Dynamics"),
        (None, "ms dynamics won the evaluation", "Microsoft Dynamics"),
        (None, "we chose Driftwood Analytics", None),  # a whole word only
        (None, "we chose MS Dynamics, not Drift", "Microsoft Dynamics"),  # the first named
        (None, "we went another way", None),
    ],
)
def test_the_competitor_is_recorded_under_the_policys_name(
    read: str | None, text: str, expected: str | None
) -> None:
    assert competitor_named(COMPETITORS, read, text) == expected


def test_without_a_competitors_table_the_readers_name_is_kept() -> None:
    assert competitor_named(None, "HubSpot", "we chose HubSpot") == "HubSpot"
    assert competitor_named(None, None, "we chose MS Dynamics") is None
