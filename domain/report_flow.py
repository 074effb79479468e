"""The flow diagram with its traffic, as Graphviz DOT text (`bot.report_flow` runs `dot`).

The states of `salesbot flow --format dot` (terminal states double-circled, the handoff
state bold, the start arrow), with one edge per pair of states rather than per transition:
the default policy has about sixty transitions, mostly several guarded ones between the same
two states, and drawn one by one their labels bury the picture. An edge someone took is
labelled with how many conversations went that way in the report's window and the
transitions they took (the table under the picture lists every transition, taken or not);
its width grows with its traffic. A pair nobody took is a thin grey dashed line without a
label. A pair taken only under another policy (an earlier one) is red. The text is a
function of `FlowTraffic` only, so the picture is the same for the same window.
"""

from __future__ import annotations

from domain.report_data import FlowPair, FlowTraffic

_UNUSED = "#9e9e9e"
_USED = "#1f3a5f"
_FOREIGN = "#c62828"


def quoted(text: str) -> str:
    """A DOT string literal: backslashes and double quotes escaped, newlines as `\\n`."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


LABELS_SHOWN = 3
"""Transition labels written on one edge; more are counted ("+2 more")."""


def traffic_label(pair: FlowPair) -> str:
    """ "N conversations" (and "M×" when some went more than once), then what they took."""
    noun = "conversation" if pair.conversations == 1 else "conversations"
    times = f", {pair.taken}×" if pair.taken != pair.conversations else ""
    lines = [f"{pair.conversations} {noun}{times}", *pair.labels[:LABELS_SHOWN]]
    if len(pair.labels) > LABELS_SHOWN:
        lines.append(f"+{len(pair.labels) - LABELS_SHOWN} more")
    return "\n".join(lines)


def flow_dot(traffic: FlowTraffic) -> str:
    """The digraph (the module docstring)."""
    busiest = max((pair.conversations for pair in traffic.pairs), default=0)
    terminal = set(traffic.terminal)
    lines = [
        "digraph flow {",
        "    rankdir=LR;",
        '    graph [fontname="DejaVu Sans", fontsize=11, nodesep=0.35, ranksep=0.6];',
        '    node [shape=box, style="rounded", fontname="DejaVu Sans", fontsize=11];',
        '    edge [fontname="DejaVu Sans", fontsize=9];',
        '    "__start__" [shape=point, label=""];',
    ]
    for state in traffic.states:
        if state in terminal:
            attributes = "shape=doublecircle"
        elif state == traffic.handoff:
            attributes = 'style="rounded,bold"'
        else:
            attributes = ""
        lines.append(f"    {quoted(state)}" + (f" [{attributes}]" if attributes else "") + ";")
    lines.append(
        f'    "__start__" -> {quoted(traffic.start)} '
        f"[label={quoted(f'{traffic.started} started')}, color={quoted(_USED)}];"
    )
    for pair in traffic.pairs:
        head = f"    {quoted(pair.source)} -> {quoted(pair.to)} "
        if pair.taken == 0:
            lines.append(head + f"[color={quoted(_UNUSED)}, style=dashed, penwidth=0.6];")
            continue
        color = _USED if pair.in_policy else _FOREIGN
        width = 1 + 4 * pair.conversations / busiest
        lines.append(
            head + f"[label={quoted(traffic_label(pair))}, color={quoted(color)}, "
            f"fontcolor={quoted(color)}, penwidth={width:.2f}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
