"""The flow diagram with its traffic, as Graphviz DOT text (`bot.report_flow` runs `dot`).

The same graph `salesbot flow --format dot` prints (terminal states double-circled, the
handoff state bold, the start arrow), each edge labelled with its transition and how many
conversations took it in the report's window; the width of an edge grows with its traffic,
and a transition nobody took is grey and dashed. Transitions taken that the policy no longer
has (decided under an earlier one) are drawn red. The text is a function of `FlowTraffic`
only, so the picture is the same for the same window.
"""

from __future__ import annotations

from domain.report_data import FlowEdge, FlowTraffic

_UNUSED = "#9e9e9e"
_USED = "#1f3a5f"
_FOREIGN = "#c62828"


def quoted(text: str) -> str:
    """A DOT string literal: backslashes and double quotes escaped, newlines as `\\n`."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def traffic_label(edge: FlowEdge) -> str:
    noun = "conversation" if edge.conversations == 1 else "conversations"
    times = f", {edge.taken}×" if edge.taken != edge.conversations else ""
    return f"{edge.label}\n{edge.conversations} {noun}{times}"


def flow_dot(traffic: FlowTraffic) -> str:
    """The digraph (the module docstring)."""
    busiest = max((edge.conversations for edge in traffic.edges), default=0)
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
    for edge in traffic.edges:
        if not edge.in_policy:
            color, style = _FOREIGN, "solid"
        elif edge.conversations == 0:
            color, style = _UNUSED, "dashed"
        else:
            color, style = _USED, "solid"
        width = 1 + (4 * edge.conversations / busiest if busiest else 0)
        lines.append(
            f"    {quoted(edge.source)} -> {quoted(edge.to)} "
            f"[label={quoted(traffic_label(edge))}, color={quoted(color)}, "
            f"fontcolor={quoted(color)}, style={style}, penwidth={width:.2f}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
