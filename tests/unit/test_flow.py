import random
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.policy_loader import load_document
from domain.errors import DomainError
from domain.flow import (
    GUARDS,
    FlowSpec,
    GuardContext,
    Transition,
    all_guard_contexts,
    next_transition,
    reachable,
    step,
    successors,
    to_dot,
    to_mermaid,
    verify_flow,
)


def load_product_flow() -> FlowSpec:
    return FlowSpec.model_validate(load_document("default")["flow"])


PRODUCT = load_product_flow()
CONTEXTS = all_guard_contexts()


def t(source: str, on: str, to: str, guard: str | None = None, priority: int = 100) -> Transition:
    return Transition(source=source, on=on, to=to, guard=guard, priority=priority)


def spec(**overrides: object) -> FlowSpec:
    """A small sound flow: start -> talk -> done, with talk escaping to handoff and back."""
    base = {
        "start": "start",
        "handoff": "handoff",
        "states": ("start", "talk", "handoff", "done"),
        "terminal": ("done",),
        "events": ("message", "escalate", "handed_back", "finish"),
        "transitions": (
            t("start", "message", "talk"),
            t("talk", "message", "talk"),
            t("talk", "escalate", "handoff"),
            t("talk", "finish", "done"),
            t("handoff", "handed_back", "talk"),
        ),
    }
    return FlowSpec.model_validate({**base, **overrides})


def rules(flow: FlowSpec, guards: set[str] | None = None) -> list[str]:
    return [violation.rule for violation in verify_flow(flow, guards)]


# --- the product flow ----------------------------------------------------------------------


def test_the_product_flow_verifies_clean():
    assert verify_flow(PRODUCT) == ()


def test_the_product_flow_declares_the_states_the_product_needs():
    assert PRODUCT.states == (
        "start",
        "greeting",
        "qualify",
        "objection",
        "proposal",
        "farewell",
        "handoff",
        "closed",
        "abandoned",
    )
    assert set(PRODUCT.terminal) == {"closed", "abandoned"}
    assert (PRODUCT.start, PRODUCT.handoff) == ("start", "handoff")


@pytest.mark.parametrize(
    ("state", "event", "signals", "expected"),
    [
        ("proposal", "prospect_message", {"sensitive": True, "qualified": True}, "handoff"),
        ("qualify", "prospect_message", {"low_confidence": True, "objection": True}, "handoff"),
        ("qualify", "prospect_message", {"objection": True, "qualified": True}, "objection"),
        ("qualify", "prospect_message", {"qualified": True}, "proposal"),
        ("greeting", "prospect_message", {"turn_limit_reached": True}, "handoff"),
        ("start", "prospect_message", {}, "greeting"),
        ("greeting", "prospect_message", {}, "qualify"),
        ("qualify", "prospect_message", {}, "qualify"),
        ("objection", "prospect_message", {}, "qualify"),
        ("proposal", "prospect_message", {}, "proposal"),
        ("qualify", "idle_timeout", {}, "abandoned"),
        ("qualify", "idle_timeout", {"qualified": True}, "handoff"),
        ("objection", "escalation_requested", {}, "handoff"),
        ("greeting", "quote_issued", {}, "proposal"),
        ("proposal", "quote_accepted", {}, "closed"),
        ("handoff", "quote_accepted", {}, "closed"),
        ("proposal", "deal_lost", {}, "closed"),
        ("handoff", "prospect_message", {"sensitive": True}, "handoff"),
        ("handoff", "handed_back", {"qualified": True}, "proposal"),
        ("handoff", "handed_back", {}, "qualify"),
    ],
)
def test_the_product_flow_steps_where_the_product_issue_says(state, event, signals, expected):
    assert step(PRODUCT, state, event, GuardContext(**signals)) == expected


@pytest.mark.parametrize(
    ("state", "event"),
    [
        ("start", "quote_accepted"),
        ("start", "handed_back"),
        ("handoff", "idle_timeout"),
        ("handoff", "escalation_requested"),
        ("closed", "prospect_message"),
        ("abandoned", "handed_back"),
    ],
)
def test_an_event_with_no_transition_leaves_the_state_unchanged(state, event):
    assert next_transition(PRODUCT, state, event, GuardContext(qualified=True)) is None
    assert step(PRODUCT, state, event, GuardContext(qualified=True)) == state


def test_every_state_and_event_pair_steps_to_exactly_one_declared_state_in_every_context():
    for state in PRODUCT.states:
        for event in PRODUCT.events:
            for ctx in CONTEXTS:
                fired = next_transition(PRODUCT, state, event, ctx)
                assert fired == next_transition(PRODUCT, state, event, ctx)
                if fired is None:
                    continue
                assert (fired.source, fired.on) == (state, event)
                assert fired.to in PRODUCT.states
                rivals = [
                    other
                    for other in PRODUCT.transitions
                    if (other.source, other.on, other.priority) == (state, event, fired.priority)
                    and (other.guard is None or GUARDS[other.guard](ctx))
                ]
                assert rivals == [fired], (state, event, ctx)


def test_an_unknown_state_or_event_is_refused():
    with pytest.raises(DomainError, match="no state named 'qualifying'"):
        next_transition(PRODUCT, "qualifying", "prospect_message", GuardContext())
    with pytest.raises(DomainError, match="no event named 'prospect_replied'"):
        next_transition(PRODUCT, "qualify", "prospect_replied", GuardContext())


def test_stepping_through_a_flow_with_an_undefined_guard_is_refused():
    flow = spec(transitions=(*spec().transitions, t("start", "escalate", "handoff", "is_vip")))
    with pytest.raises(DomainError, match="guard 'is_vip'"):
        next_transition(flow, "start", "escalate", GuardContext())


def test_the_reachability_helpers_follow_every_transition_regardless_of_guards():
    assert successors(PRODUCT)["handoff"] == ("handoff", "closed", "proposal", "qualify")
    assert successors(PRODUCT)["closed"] == ()
    assert reachable(PRODUCT, "start") == frozenset(PRODUCT.states)
    assert reachable(PRODUCT, "abandoned") == {"abandoned"}
    with pytest.raises(DomainError):
        reachable(PRODUCT, "nowhere")


# --- structural validation -------------------------------------------------------------------


def test_a_transition_reads_from_the_policy_key_from():
    parsed = Transition.model_validate({"from": "qualify", "on": "deal_lost", "to": "closed"})
    assert parsed == Transition(source="qualify", on="deal_lost", to="closed")
    assert parsed.priority == 100


def test_a_state_listed_twice_is_rejected_when_loading():
    with pytest.raises(ValidationError, match="'talk' more than once"):
        spec(states=("start", "talk", "talk", "handoff", "done"))


def test_a_name_that_would_break_a_diagram_is_rejected_when_loading():
    with pytest.raises(ValidationError, match="not a valid name"):
        spec(transitions=(t("start", "message", "talk --> done"),))
    with pytest.raises(ValidationError, match="not a valid name"):
        spec(events=("message", "hand back"))


def test_an_exclusive_guards_group_of_one_is_rejected_when_loading():
    with pytest.raises(ValidationError, match="at least two guards"):
        spec(exclusive_guards=(("is_qualified",),))


# --- the verifier, one rule at a time --------------------------------------------------------


def test_the_small_fixture_flow_is_sound():
    assert verify_flow(spec()) == ()


def test_the_notebooks_five_state_flow_lacks_a_terminal_state_and_a_way_back_from_handoff():
    notebook = FlowSpec(
        start="start",
        handoff="handoff",
        states=("start", "qualify", "proposal", "handoff", "closed"),
        terminal=(),
        events=("next", "accept", "escalate"),
        transitions=(
            t("start", "next", "qualify"),
            t("qualify", "next", "proposal"),
            t("proposal", "accept", "closed"),
            t("proposal", "escalate", "handoff"),
        ),
    )
    found = verify_flow(notebook)
    assert [(v.rule, v.message.split("'")[1]) for v in found] == [
        ("dead_end", "closed"),
        ("no_path_to_handoff", "closed"),
        ("handoff_dead_end", "handoff"),
    ]
    fixed = notebook.model_copy(
        update={
            "terminal": ("closed",),
            "transitions": (*notebook.transitions, t("handoff", "next", "proposal")),
        }
    )
    assert verify_flow(fixed) == ()


def test_an_unreachable_state_is_reported_each_time():
    flow = spec(
        states=(*spec().states, "orphan", "lonely"),
        transitions=(
            *spec().transitions,
            t("orphan", "escalate", "handoff"),
            t("lonely", "escalate", "handoff"),
        ),
    )
    found = verify_flow(flow)
    assert [v.rule for v in found] == ["unreachable_state", "unreachable_state"]
    assert "'orphan'" in found[0].message
    assert "'lonely'" in found[1].message


def test_a_state_that_cannot_reach_handoff_is_reported():
    flow = spec(
        states=(*spec().states, "loop"),
        transitions=(
            *spec().transitions,
            t("start", "finish", "loop"),
            t("loop", "message", "loop"),
        ),
    )
    found = verify_flow(flow)
    assert rules(flow) == ["no_path_to_handoff"]
    assert "'loop'" in found[0].message


def test_a_terminal_state_with_transitions_is_reported():
    flow = spec(transitions=(*spec().transitions, t("done", "message", "talk")))
    found = verify_flow(flow)
    assert rules(flow) == ["terminal_has_transitions"]
    assert "'done'" in found[0].message


def test_a_non_terminal_state_with_no_way_out_is_a_dead_end():
    flow = spec(
        states=(*spec().states, "stuck"),
        transitions=(*spec().transitions, t("start", "finish", "stuck")),
    )
    assert rules(flow) == ["dead_end", "no_path_to_handoff"]


def test_two_transitions_that_could_both_fire_are_nondeterministic():
    flow = spec(
        transitions=(
            *spec().transitions,
            t("talk", "escalate", "done"),
            t("start", "escalate", "handoff", "is_sensitive", 10),
            t("start", "escalate", "talk", "is_objection", 10),
        )
    )
    found = verify_flow(flow)
    assert rules(flow) == ["nondeterministic", "nondeterministic"]
    assert "'talk' on 'escalate'" in found[0].message
    assert "[is_sensitive]" in found[1].message
    assert "[is_objection]" in found[1].message


def test_guards_declared_exclusive_may_share_a_priority():
    both = (
        t("start", "escalate", "handoff", "is_qualified", 10),
        t("start", "escalate", "done", "is_not_qualified", 10),
    )
    undeclared = spec(transitions=(*spec().transitions, *both))
    declared = undeclared.model_copy(
        update={"exclusive_guards": (("is_qualified", "is_not_qualified"),)}
    )
    assert rules(undeclared) == ["nondeterministic"]
    assert rules(declared) == []


def test_a_guard_is_never_exclusive_with_itself_or_with_no_guard():
    exclusive = (("is_qualified", "is_not_qualified"),)
    same_guard = spec(
        transitions=(
            *spec().transitions,
            t("start", "escalate", "handoff", "is_qualified", 10),
            t("start", "escalate", "talk", "is_qualified", 10),
        ),
        exclusive_guards=exclusive,
    )
    guard_and_fallback = spec(
        transitions=(
            *spec().transitions,
            t("start", "escalate", "handoff", "is_qualified", 10),
            t("start", "escalate", "talk", priority=10),
        ),
        exclusive_guards=exclusive,
    )
    assert rules(same_guard) == ["nondeterministic"]
    assert rules(guard_and_fallback) == ["nondeterministic"]


def test_guards_wrongly_declared_exclusive_are_reported_with_a_context_where_both_hold():
    flow = spec(
        transitions=(
            *spec().transitions,
            t("start", "escalate", "handoff", "is_sensitive", 10),
            t("start", "escalate", "talk", "is_objection", 10),
        ),
        exclusive_guards=(("is_sensitive", "is_objection"),),
    )
    found = verify_flow(flow)
    assert [v.rule for v in found] == ["exclusive_guards_overlap"]
    assert "sensitive" in found[0].message
    assert "objection" in found[0].message


def test_a_transition_shadowed_by_an_unguarded_or_identically_guarded_one_is_unreachable():
    flow = spec(
        transitions=(
            *spec().transitions,
            t("talk", "escalate", "done", "is_sensitive", 200),
            t("start", "escalate", "handoff", "is_sensitive", 10),
            t("start", "escalate", "talk", "is_sensitive", 20),
        )
    )
    found = verify_flow(flow)
    assert rules(flow) == ["unreachable_transition", "unreachable_transition"]
    assert "talk -> done on escalate [is_sensitive] (priority 200)" in found[0].message
    assert "is unguarded" in found[0].message
    assert "start -> talk on escalate [is_sensitive] (priority 20)" in found[1].message
    assert "same guard" in found[1].message


def test_a_guard_name_typo_is_reported_as_undefined_with_a_suggestion():
    flow = spec(
        transitions=(*spec().transitions, t("start", "escalate", "handoff", "is_sensitve", 10))
    )
    found = verify_flow(flow)
    assert [v.rule for v in found] == ["undefined_guard"]
    assert "'is_sensitve'" in found[0].message
    assert "did you mean 'is_sensitive'?" in found[0].message


def test_guards_are_checked_against_the_names_the_caller_can_evaluate():
    flow = spec(transitions=(*spec().transitions, t("start", "escalate", "handoff", "is_vip", 10)))
    assert rules(flow) == ["undefined_guard"]
    assert rules(flow, guards={"is_vip"}) == []
    assert rules(PRODUCT, guards=set()) == ["undefined_guard"] * len(GUARDS)


def test_an_undefined_guard_in_exclusive_guards_is_reported():
    assert rules(spec(exclusive_guards=(("is_qualified", "is_unqualified"),))) == [
        "undefined_guard"
    ]


def test_a_state_used_but_not_declared_is_reported_once_with_where_it_is_used():
    flow = spec(
        transitions=(
            *spec().transitions,
            t("start", "escalate", "handof"),
            t("handof", "message", "talk"),
        )
    )
    found = verify_flow(flow)
    assert [v.rule for v in found] == ["undeclared_state"]
    assert "'handof'" in found[0].message
    assert "and 1 more transition" in found[0].message
    assert "did you mean 'handoff'?" in found[0].message


def test_an_event_used_but_not_declared_is_reported():
    flow = spec(transitions=(*spec().transitions, t("talk", "timeout", "done")))
    found = verify_flow(flow)
    assert [v.rule for v in found] == ["undeclared_event"]
    assert "'timeout'" in found[0].message


def test_an_undeclared_or_terminal_start_and_handoff_are_reported():
    assert rules(spec(start="begin")) == ["undeclared_state"]
    assert rules(spec(handoff="human")) == ["undeclared_state"]
    assert rules(spec(terminal=("done", "finished"))) == ["undeclared_state"]
    assert "start_is_terminal" in rules(spec(terminal=("done", "start")))
    assert "handoff_is_terminal" in rules(spec(terminal=("done", "handoff")))


def test_a_handoff_with_no_way_back_to_the_bot_is_a_dead_end():
    only_to_terminal = tuple(
        t("handoff", "finish", "done") if tr.source == "handoff" else tr
        for tr in spec().transitions
    )
    found = verify_flow(spec(transitions=only_to_terminal))
    assert [v.rule for v in found] == ["handoff_dead_end"]
    assert "'handoff'" in found[0].message


def test_every_violation_is_reported_at_once():
    broken = FlowSpec(
        start="begin",
        handoff="handoff",
        states=("start", "talk", "handoff", "done", "orphan"),
        terminal=("done", "handoff"),
        events=("message", "finish"),
        transitions=(
            t("start", "message", "talk", "is_qualifed", 10),
            t("start", "message", "handoff", "is_sensitive", 10),
            t("talk", "message", "talk"),
            t("talk", "message", "done", "is_objection", 150),
            t("talk", "timeout", "handoff"),
            t("done", "message", "start"),
            t("handoff", "finish", "done"),
        ),
    )
    assert rules(broken) == [
        "undeclared_state",  # start state 'begin'
        "undeclared_event",  # 'timeout'
        "undefined_guard",  # 'is_qualifed'
        "handoff_is_terminal",
        "terminal_has_transitions",  # done
        "terminal_has_transitions",  # handoff
        "dead_end",  # orphan
        "no_path_to_handoff",  # orphan
        "handoff_dead_end",
        "nondeterministic",  # start on message at priority 10
        "unreachable_transition",  # talk -> done behind the unguarded talk -> talk
    ]


# --- properties -------------------------------------------------------------------------------

contexts = st.builds(
    GuardContext,
    sensitive=st.booleans(),
    low_confidence=st.booleans(),
    objection=st.booleans(),
    qualified=st.booleans(),
    turn_limit_reached=st.booleans(),
)


@settings(deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PRODUCT.events), contexts), max_size=40))
def test_random_conversations_stay_in_the_flow_and_never_leave_a_terminal_state(walk):
    state = PRODUCT.start
    for event, ctx in walk:
        after = step(PRODUCT, state, event, ctx)
        assert after in PRODUCT.states
        if state in PRODUCT.terminal:
            assert after == state
        state = after


def _can_step_to_handoff(flow: FlowSpec, origin: str) -> bool:
    """Breadth-first over real steps (every event in every context), not the guard-free graph."""
    seen = {origin}
    queue = deque([origin])
    while queue:
        state = queue.popleft()
        if state == flow.handoff:
            return True
        for event in flow.events:
            for ctx in CONTEXTS:
                after = step(flow, state, event, ctx)
                if after not in seen:
                    seen.add(after)
                    queue.append(after)
    return False


@settings(deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PRODUCT.events), contexts), max_size=20))
def test_from_every_reachable_non_terminal_state_a_prospect_can_still_reach_a_human(walk):
    state = PRODUCT.start
    for event, ctx in walk:
        state = step(PRODUCT, state, event, ctx)
    if state not in PRODUCT.terminal:
        assert _can_step_to_handoff(PRODUCT, state)


NAMES = ("a", "b", "c", "d", "e")
EVENTS = ("x", "y", "z")

random_transitions = st.builds(
    Transition,
    source=st.sampled_from(NAMES),
    on=st.sampled_from(EVENTS),
    to=st.sampled_from(NAMES),
    guard=st.none() | st.sampled_from(sorted(GUARDS)),
    priority=st.sampled_from((10, 20, 100)),
)
random_flows = st.builds(
    FlowSpec,
    start=st.just("a"),
    handoff=st.just("b"),
    states=st.just(NAMES),
    terminal=st.sampled_from(((), ("e",), ("d", "e"))),
    events=st.just(EVENTS),
    transitions=st.lists(random_transitions, max_size=12).map(tuple),
    exclusive_guards=st.just((("is_qualified", "is_not_qualified"),)),
)


@settings(deadline=None, max_examples=50)  # generating whole flows is the slow part
@given(random_flows)
def test_a_flow_the_verifier_finds_deterministic_never_has_two_transitions_able_to_fire(flow):
    if "nondeterministic" in rules(flow):
        return
    for state in flow.states:
        for event in flow.events:
            for ctx in CONTEXTS:
                fired = next_transition(flow, state, event, ctx)
                if fired is None:
                    continue
                able = [
                    other
                    for other in flow.transitions
                    if (other.source, other.on, other.priority) == (state, event, fired.priority)
                    and (other.guard is None or GUARDS[other.guard](ctx))
                ]
                assert able == [fired]


@settings(deadline=None, max_examples=50)  # generating whole flows is the slow part
@given(random_flows, st.randoms(use_true_random=False))
def test_diagrams_draw_every_transition_and_do_not_depend_on_the_order_of_the_file(flow, rnd):
    shuffled = list(flow.transitions)
    rnd.shuffle(shuffled)
    reordered = flow.model_copy(update={"transitions": tuple(shuffled)})
    mermaid, dot = to_mermaid(flow), to_dot(flow)
    assert to_mermaid(reordered) == mermaid
    assert to_dot(reordered) == dot
    mermaid_lines, dot_lines = mermaid.splitlines(), dot.splitlines()
    for tr in flow.transitions:
        label = f"{tr.on} [{tr.guard}]" if tr.guard else tr.on
        assert f"    {tr.source} --> {tr.to} : {label}" in mermaid_lines
        assert f'    "{tr.source}" -> "{tr.to}" [label="{label}"];' in dot_lines
    assert len(mermaid_lines) >= len(flow.transitions) + 1
    for state in flow.states:
        assert f'"{state}"' in dot


def test_the_product_diagrams_show_the_entry_the_terminals_and_every_transition():
    mermaid = to_mermaid(PRODUCT)
    dot = to_dot(PRODUCT)
    assert mermaid.startswith("stateDiagram-v2\n    [*] --> start\n")
    assert "    closed --> [*]" in mermaid
    assert "    abandoned --> [*]" in mermaid
    assert "    qualify --> objection : prospect_message [is_objection]" in mermaid
    assert "    qualify --> qualify : prospect_message" in mermaid.splitlines()
    assert sum(" : " in line for line in mermaid.splitlines()) == len(PRODUCT.transitions)
    assert dot.startswith("digraph flow {\n")
    assert dot.endswith("}\n")
    assert '"closed" [shape=doublecircle];' in dot
    assert '"handoff" [style="rounded,bold"];' in dot
    assert '"handoff" -> "proposal" [label="handed_back [is_qualified]"];' in dot
    assert dot.count(" -> ") == len(PRODUCT.transitions) + 1
    assert (to_mermaid(PRODUCT), to_dot(PRODUCT)) == (mermaid, dot)


def test_reordering_the_product_flows_transitions_does_not_change_its_diagrams():
    shuffled = list(PRODUCT.transitions)
    random.Random(7).shuffle(shuffled)
    reordered = PRODUCT.model_copy(update={"transitions": tuple(shuffled)})
    assert to_mermaid(reordered) == to_mermaid(PRODUCT)
    assert to_dot(reordered) == to_dot(PRODUCT)
