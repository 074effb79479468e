"""The conversation flow as data: states, events, named guards and prioritised transitions.

The flow lives in the policy file so that it can be read, drawn (`to_mermaid`, `to_dot`) and
checked (`verify_flow`) without running the bot. Stepping (`next_transition`) is a pure lookup:
the same spec, state, event and context always give the same transition.

`FlowSpec` rejects only the obviously malformed (duplicate names, names that would break a
diagram). Everything semantic — unreachable states, missing escapes to a human, ambiguous
transitions, unknown guards — is reported by `verify_flow` as a list, so that `salesbot check`
can print every problem in one run instead of one per edit.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from types import MappingProxyType

from pydantic import ConfigDict, Field, field_validator, model_validator

from domain.errors import DomainError
from domain.model import Frozen

# Names end up verbatim in Mermaid and DOT output and in `salesbot check` lines; restricting
# them to identifiers keeps every rendering well-formed without any escaping rules.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a valid name; use letters, digits and underscores, "
            "starting with a letter or underscore."
        )
    return value


def _check_unique(values: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    duplicates: list[str] = []
    for value in values:
        if value in seen and value not in duplicates:
            duplicates.append(value)
        seen.add(value)
    if duplicates:
        listed = ", ".join(repr(name) for name in duplicates)
        raise ValueError(f"{what} lists {listed} more than once.")


class Transition(Frozen):
    """One row of the flow table: in `source`, on `on`, if `guard` holds, go to `to`.

    Among the transitions of one (state, event), the lowest `priority` number whose guard holds
    fires; an unguarded transition always holds.
    """

    model_config = ConfigDict(populate_by_name=True)

    source: str = Field(alias="from")
    on: str
    to: str
    guard: str | None = None
    priority: int = 100

    @field_validator("source", "on", "to", "guard")
    @classmethod
    def _names_are_identifiers(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value, "Transition name")


class FlowSpec(Frozen):
    """The whole flow as loaded from the policy's `[flow]` table."""

    start: str
    handoff: str
    states: tuple[str, ...]
    terminal: tuple[str, ...]
    events: tuple[str, ...]
    transitions: tuple[Transition, ...]
    exclusive_guards: tuple[tuple[str, ...], ...] = ()

    @model_validator(mode="after")
    def _reject_malformed(self) -> FlowSpec:
        for name in (self.start, self.handoff, *self.states, *self.terminal, *self.events):
            _check_name(name, "Flow name")
        for group in self.exclusive_guards:
            for name in group:
                _check_name(name, "Guard name")
            _check_unique(group, "An exclusive_guards group")
            if len(group) < 2:
                raise ValueError(
                    "Every exclusive_guards group needs at least two guards; "
                    f"{list(group)!r} has {len(group)}."
                )
        _check_unique(self.states, "The flow's states")
        _check_unique(self.terminal, "The flow's terminal states")
        _check_unique(self.events, "The flow's events")
        return self


class GuardContext(Frozen):
    """The signals a guard may look at, computed by the caller before stepping.

    `buying`, `leaving` and `engaged` are set only under a policy with `[dialog]`
    (`domain.dialog.dialog_signals`): the message shows the prospect wants to buy (the
    reader's buying intent, or the lead qualified with this very message); the prospect is
    taking their leave (a `close_on` reason, unless a buying signal or a meeting request in
    the same message outranks it — a chosen competitor outranks both); the message gives the
    bot something to work on again (a qualification signal, an amount, a date or a head count,
    a buying signal or a meeting request) after the prospect left.
    """

    sensitive: bool = False
    low_confidence: bool = False
    objection: bool = False
    qualified: bool = False
    turn_limit_reached: bool = False
    buying: bool = False
    leaving: bool = False
    engaged: bool = False


def is_sensitive(ctx: GuardContext) -> bool:
    return ctx.sensitive


def is_low_confidence(ctx: GuardContext) -> bool:
    return ctx.low_confidence


def is_objection(ctx: GuardContext) -> bool:
    return ctx.objection


def is_qualified(ctx: GuardContext) -> bool:
    return ctx.qualified


def is_not_qualified(ctx: GuardContext) -> bool:
    return not ctx.qualified


def is_turn_limit_reached(ctx: GuardContext) -> bool:
    return ctx.turn_limit_reached


def is_buying(ctx: GuardContext) -> bool:
    return ctx.buying


def is_leaving(ctx: GuardContext) -> bool:
    return ctx.leaving


def is_engaged(ctx: GuardContext) -> bool:
    return ctx.engaged


GUARDS: Mapping[str, Callable[[GuardContext], bool]] = MappingProxyType(
    {
        "is_sensitive": is_sensitive,
        "is_low_confidence": is_low_confidence,
        "is_objection": is_objection,
        "is_qualified": is_qualified,
        "is_not_qualified": is_not_qualified,
        "is_turn_limit_reached": is_turn_limit_reached,
        "is_buying": is_buying,
        "is_leaving": is_leaving,
        "is_engaged": is_engaged,
    }
)


def all_guard_contexts() -> tuple[GuardContext, ...]:
    """Every combination of guard signals, for exhaustive checks and tests (2^8 contexts)."""
    names = tuple(GuardContext.model_fields)
    return tuple(
        GuardContext.model_validate(dict(zip(names, values, strict=True)))
        for values in itertools.product((False, True), repeat=len(names))
    )


class Violation(Frozen):
    """One broken flow invariant; `message` is a single line naming what to fix."""

    rule: str
    message: str


def describe(transition: Transition) -> str:
    """The one-line form used in violation messages."""
    guard = f" [{transition.guard}]" if transition.guard else ""
    return (
        f"{transition.source} -> {transition.to} on {transition.on}{guard} "
        f"(priority {transition.priority})"
    )


def successors(spec: FlowSpec) -> Mapping[str, tuple[str, ...]]:
    """Where each state can go on some event and context, ignoring guards and priorities.

    Keys are the declared states (with `()` for none) plus any undeclared transition source;
    targets keep first-declared order and appear once.
    """
    graph: dict[str, list[str]] = {state: [] for state in spec.states}
    for transition in spec.transitions:
        targets = graph.setdefault(transition.source, [])
        if transition.to not in targets:
            targets.append(transition.to)
    return MappingProxyType({state: tuple(targets) for state, targets in graph.items()})


def _closure(graph: Mapping[str, Iterable[str]], origin: str) -> frozenset[str]:
    seen = {origin}
    frontier = [origin]
    while frontier:
        for target in graph.get(frontier.pop(), ()):
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return frozenset(seen)


def reachable(spec: FlowSpec, from_state: str) -> frozenset[str]:
    """Every state some sequence of transitions leads to from `from_state`, itself included.

    Guards are ignored: this is the over-approximation the verifier needs ("could the
    conversation ever get there"), not a promise that some context makes it happen.
    """
    if from_state not in spec.states:
        raise DomainError(f"The flow has no state named {from_state!r}.")
    return _closure(successors(spec), from_state)


def _predecessors(spec: FlowSpec) -> Mapping[str, tuple[str, ...]]:
    graph: dict[str, list[str]] = {}
    for transition in spec.transitions:
        graph.setdefault(transition.to, []).append(transition.source)
    return {state: tuple(sources) for state, sources in graph.items()}


def _exclusive(spec: FlowSpec, first: str | None, second: str | None) -> bool:
    if first is None or second is None or first == second:
        return False
    return any(first in group and second in group for group in spec.exclusive_guards)


def _uses(
    transitions: Iterable[Transition], names: Callable[[Transition], Iterable[str]]
) -> dict[str, list[Transition]]:
    found: dict[str, list[Transition]] = {}
    for transition in transitions:
        for name in names(transition):
            found.setdefault(name, []).append(transition)
    return found


def _where(uses: list[Transition]) -> str:
    more = len(uses) - 1
    tail = f" and {more} more transition{'s' if more > 1 else ''}" if more else ""
    return f"{describe(uses[0])}{tail}"


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else "."


def _undeclared(spec: FlowSpec) -> Iterator[Violation]:
    declared = set(spec.states)
    for role, state in (("start", spec.start), ("handoff", spec.handoff)):
        if state not in declared:
            yield Violation(
                rule="undeclared_state",
                message=f"The {role} state {state!r} is not declared in states"
                + _suggest(state, declared),
            )
    for state in spec.terminal:
        if state not in declared:
            yield Violation(
                rule="undeclared_state",
                message=f"The terminal state {state!r} is not declared in states"
                + _suggest(state, declared),
            )
    state_uses = _uses(spec.transitions, lambda t: dict.fromkeys((t.source, t.to)))
    for state, uses in state_uses.items():
        if state not in declared:
            yield Violation(
                rule="undeclared_state",
                message=f"State {state!r}, used by {_where(uses)}, is not declared in states"
                + _suggest(state, declared),
            )
    events = set(spec.events)
    for event, uses in _uses(spec.transitions, lambda t: (t.on,)).items():
        if event not in events:
            yield Violation(
                rule="undeclared_event",
                message=f"Event {event!r}, used by {_where(uses)}, is not declared in events"
                + _suggest(event, events),
            )


def _undefined_guards(spec: FlowSpec, guards: Collection[str]) -> Iterator[Violation]:
    known = set(guards)
    guard_uses = _uses(spec.transitions, lambda t: (t.guard,) if t.guard else ())
    for guard, uses in guard_uses.items():
        if guard not in known:
            yield Violation(
                rule="undefined_guard",
                message=f"Guard {guard!r}, used by {_where(uses)}, is not defined"
                + _suggest(guard, known),
            )
    reported = set(guard_uses)
    for group in spec.exclusive_guards:
        for guard in group:
            if guard not in known and guard not in reported:
                reported.add(guard)
                yield Violation(
                    rule="undefined_guard",
                    message=f"Guard {guard!r}, listed in exclusive_guards, is not defined"
                    + _suggest(guard, known),
                )


def _terminal_rules(spec: FlowSpec) -> Iterator[Violation]:
    terminal = set(spec.terminal)
    for role, state in (("start", spec.start), ("handoff", spec.handoff)):
        if state in terminal:
            yield Violation(
                rule=f"{role}_is_terminal",
                message=f"The {role} state {state!r} is listed as terminal; "
                f"a conversation must be able to continue from {role}.",
            )
    for state in spec.terminal:
        outgoing = [t for t in spec.transitions if t.source == state]
        if outgoing:
            yield Violation(
                rule="terminal_has_transitions",
                message=f"Terminal state {state!r} has {len(outgoing)} outgoing "
                f"transition{'s' if len(outgoing) > 1 else ''} (first: {describe(outgoing[0])}); "
                "a terminal state must have none.",
            )


def _graph_rules(spec: FlowSpec) -> Iterator[Violation]:
    declared = set(spec.states)
    terminal = set(spec.terminal)
    graph = successors(spec)
    if spec.start in declared:
        from_start = _closure(graph, spec.start)
        for state in spec.states:
            if state not in from_start:
                yield Violation(
                    rule="unreachable_state",
                    message=f"State {state!r} cannot be reached from the start state "
                    f"{spec.start!r}.",
                )
    for state in spec.states:
        if state not in terminal and state != spec.handoff and not graph[state]:
            yield Violation(
                rule="dead_end",
                message=f"State {state!r} has no outgoing transitions and is not terminal; "
                "add a way out or list it in terminal.",
            )
    if spec.handoff in declared:
        to_handoff = _closure(_predecessors(spec), spec.handoff)
        for state in spec.states:
            if state not in terminal and state not in to_handoff:
                yield Violation(
                    rule="no_path_to_handoff",
                    message=f"State {state!r} has no path to the handoff state "
                    f"{spec.handoff!r}; a prospect there could never reach a human.",
                )
        bot_states = declared - terminal - {spec.handoff}
        if not any(target in bot_states for target in graph[spec.handoff]):
            yield Violation(
                rule="handoff_dead_end",
                message=f"The handoff state {spec.handoff!r} has no transition back to a bot "
                "state, so a human can never hand the conversation back.",
            )


def _group(spec: FlowSpec) -> dict[tuple[str, str], list[Transition]]:
    """Transitions per (state, event) in firing order; ties keep declaration order."""
    groups: dict[tuple[str, str], list[Transition]] = {}
    for transition in spec.transitions:
        groups.setdefault((transition.source, transition.on), []).append(transition)
    for transitions in groups.values():
        transitions.sort(key=lambda t: t.priority)
    return groups


def _determinism_rules(spec: FlowSpec) -> Iterator[Violation]:
    groups = _group(spec).items()
    for (state, event), transitions in groups:
        for first, second in itertools.combinations(transitions, 2):
            if first.priority == second.priority and not _exclusive(
                spec, first.guard, second.guard
            ):
                yield Violation(
                    rule="nondeterministic",
                    message=f"In {state!r} on {event!r}, {describe(first)} and "
                    f"{describe(second)} could both fire; give them different priorities or "
                    "declare their guards in exclusive_guards.",
                )
    for (state, event), transitions in groups:
        for later in transitions:
            shadow = next(
                (
                    earlier
                    for earlier in transitions
                    if earlier.priority < later.priority
                    and (earlier.guard is None or earlier.guard == later.guard)
                ),
                None,
            )
            if shadow is not None:
                why = "is unguarded" if shadow.guard is None else "has the same guard"
                yield Violation(
                    rule="unreachable_transition",
                    message=f"In {state!r} on {event!r}, {describe(later)} can never fire: "
                    f"{describe(shadow)} {why} and fires first.",
                )


def _overlapping_exclusive_guards(spec: FlowSpec, guards: Collection[str]) -> Iterator[Violation]:
    # A wrong exclusivity declaration would hide real nondeterminism, so the guards this module
    # implements are checked against every context. Guards known only by name cannot be.
    contexts = all_guard_contexts()
    for group in spec.exclusive_guards:
        for first, second in itertools.combinations(group, 2):
            if not {first, second} <= set(guards) or not {first, second} <= set(GUARDS):
                continue
            both = next((c for c in contexts if GUARDS[first](c) and GUARDS[second](c)), None)
            if both is not None:
                signals = ", ".join(name for name, on in both if on) or "no signals"
                yield Violation(
                    rule="exclusive_guards_overlap",
                    message=f"Guards {first!r} and {second!r} are declared exclusive but both "
                    f"hold when {signals}.",
                )


def verify_flow(spec: FlowSpec, guards: Collection[str] | None = None) -> tuple[Violation, ...]:
    """Every broken flow invariant, in a stable order; `()` means the flow is sound.

    `guards` names the guards the runtime can evaluate (default: `GUARDS`). Graph checks
    ignore guards: they ask whether a path exists at all, which is what "a prospect can always
    reach a human" needs.
    """
    known = tuple(GUARDS) if guards is None else tuple(guards)
    return (
        *_undeclared(spec),
        *_undefined_guards(spec, known),
        *_terminal_rules(spec),
        *_graph_rules(spec),
        *_determinism_rules(spec),
        *_overlapping_exclusive_guards(spec, known),
    )


# Stepping happens once per message, and hashing a whole spec by value costs more than the
# lookup itself, so the firing-order index is memoised by identity. Each entry keeps its spec
# alive, so an id cannot be reused by another spec while its entry exists.
_INDEXES: dict[int, tuple[FlowSpec, Mapping[tuple[str, str], tuple[Transition, ...]]]] = {}
_INDEXES_KEPT = 16


def _index(spec: FlowSpec) -> Mapping[tuple[str, str], tuple[Transition, ...]]:
    entry = _INDEXES.get(id(spec))
    if entry is not None and entry[0] is spec:
        return entry[1]
    index = MappingProxyType({key: tuple(ts) for key, ts in _group(spec).items()})
    while len(_INDEXES) >= _INDEXES_KEPT:
        _INDEXES.pop(next(iter(_INDEXES)))
    _INDEXES[id(spec)] = (spec, index)
    return index


def next_transition(
    spec: FlowSpec,
    state: str,
    event: str,
    ctx: GuardContext,
    *,
    guards: Mapping[str, Callable[[GuardContext], bool]] = GUARDS,
) -> Transition | None:
    """The transition that fires, or None when none applies and the state stays as it is.

    Candidates are tried by ascending priority and the first whose guard holds wins. In a
    verified flow no two candidates of one priority can both hold; in an unverified one the
    first declared wins, so stepping is deterministic either way.
    """
    if state not in spec.states:
        raise DomainError(f"The flow has no state named {state!r}.")
    if event not in spec.events:
        raise DomainError(f"The flow has no event named {event!r}.")
    for transition in _index(spec).get((state, event), ()):
        if transition.guard is None:
            return transition
        guard = guards.get(transition.guard)
        if guard is None:
            raise DomainError(
                f"The flow uses guard {transition.guard!r}, which is not defined; "
                "run `salesbot check` on the policy."
            )
        if guard(ctx):
            return transition
    return None


def step(spec: FlowSpec, state: str, event: str, ctx: GuardContext) -> str:
    """The state after `event`: the fired transition's target, or `state` when none fires."""
    transition = next_transition(spec, state, event, ctx)
    return state if transition is None else transition.to


def _label(transition: Transition) -> str:
    return f"{transition.on} [{transition.guard}]" if transition.guard else transition.on


def _drawing_order(spec: FlowSpec) -> list[Transition]:
    # Sorted by declared order of states and events, then priority, so the drawing does not
    # depend on how the policy file happens to order its transition entries.
    def rank(names: tuple[str, ...], name: str) -> int:
        return names.index(name) if name in names else len(names)

    return sorted(
        spec.transitions,
        key=lambda t: (
            rank(spec.states, t.source),
            t.source,
            rank(spec.events, t.on),
            t.on,
            t.priority,
            t.guard or "",
            rank(spec.states, t.to),
            t.to,
        ),
    )


def to_mermaid(spec: FlowSpec) -> str:
    """A Mermaid `stateDiagram-v2`, one line per transition labelled `event [guard]`."""
    lines = ["stateDiagram-v2", f"    [*] --> {spec.start}"]
    connected = {spec.start, *spec.terminal}
    for transition in _drawing_order(spec):
        connected.update((transition.source, transition.to))
        lines.append(f"    {transition.source} --> {transition.to} : {_label(transition)}")
    lines.extend(f"    {state} --> [*]" for state in spec.terminal)
    lines.extend(f"    {state}" for state in spec.states if state not in connected)
    return "\n".join(lines) + "\n"


def to_dot(spec: FlowSpec) -> str:
    """A Graphviz digraph: terminal states double-circled, the handoff state bold."""
    terminal = set(spec.terminal)
    lines = [
        "digraph flow {",
        "    rankdir=LR;",
        '    node [shape=box, style="rounded"];',
        '    "__start__" [shape=point, label=""];',
    ]
    for state in spec.states:
        if state in terminal:
            attributes = "shape=doublecircle"
        elif state == spec.handoff:
            attributes = 'style="rounded,bold"'
        else:
            attributes = ""
        lines.append(f'    "{state}"' + (f" [{attributes}]" if attributes else "") + ";")
    lines.append(f'    "__start__" -> "{spec.start}";')
    lines.extend(
        f'    "{t.source}" -> "{t.to}" [label="{_label(t)}"];' for t in _drawing_order(spec)
    )
    lines.append("}")
    return "\n".join(lines) + "\n"
