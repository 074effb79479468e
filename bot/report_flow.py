"""The flow diagram as SVG, drawn by Graphviz's `dot` (Debian's `graphviz` package, which
`make test` installs like the browser test's Chromium).

Why `dot` rather than a Python layout: the flow has cycles, self-loops and several labelled
edges between the same states; a layered layout that keeps those legible is what Graphviz
is for, and the DOT text is already what `salesbot flow --format dot` prints. The text
comes from `domain.report_flow.flow_dot`; this module only runs the program (no shell, a
time limit, the text on stdin) and hands back the SVG. Without `dot` on PATH (or when it
fails) the report is still written: `FlowPicture.problem` says why in one line, which the
command prints on stderr and the page shows in the flow section.

The SVG is deterministic for the same DOT text and Graphviz version: `dot` writes no time
or random id into it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

DOT_TIMEOUT_S = 30
MISSING = (
    "the flow diagram needs Graphviz's `dot` (Debian: apt-get install graphviz; "
    "`make test` installs it); the rest of the report was written"
)


@dataclass(frozen=True, slots=True)
class FlowPicture:
    """The SVG, or why there is none."""

    svg: bytes | None
    problem: str | None = None


def render_flow(dot_text: str, program: str = "dot") -> FlowPicture:
    """`dot -Tsvg` of `dot_text`; a `FlowPicture` with `problem` set when it cannot run."""
    found = shutil.which(program)
    if found is None:
        return FlowPicture(None, MISSING)
    try:
        done = subprocess.run(
            [found, "-Tsvg"],
            input=dot_text.encode("utf-8"),
            capture_output=True,
            timeout=DOT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return FlowPicture(
            None, f"the flow diagram could not be drawn ({exc}); the rest of the report was written"
        )
    if done.returncode != 0 or not done.stdout:
        first = done.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        why = first[0] if first else f"exit {done.returncode}"
        return FlowPicture(
            None,
            f"the flow diagram could not be drawn (dot: {why}); the rest of the report was written",
        )
    return FlowPicture(done.stdout)
