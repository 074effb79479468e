"""A sampling profile of a running server with py-spy (`bench` extra): every thread, on CPU
only, while the load generator's measured part runs — no start-up, no idle waiting, and
none of cProfile's distortions of coroutines (each resumption counted as a call).

The raw output (one line per distinct stack: frames root first, `;`-separated, then a
count) is summed into each function's inclusive share (its samples anywhere on the stack:
"cumulative") and its own share (samples where it is the innermost frame)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

PRODUCT = re.compile(r"\((?:.*/)?(?:bot|domain|adapters|storage)/[^/]+\.py:")
"""A frame of the product's own code: py-spy prints `name (bot/runtime.py:163)`, the path
shortened to the package (or in full outside the search path)."""


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start sampling `pid` for `seconds` (100 Hz, without pausing it) into `out`."""
    tool = py_spy()
    if tool is None:
        raise RuntimeError("py-spy is not installed (pip install -e '.[bench]')")
    return subprocess.Popen(
        [
            tool,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "100",
            "--nonblocking",
            "--function",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarise(raw: str) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, inclusive samples per function, own samples per function)."""
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    return total, inclusive, own


def report(raw: str, top: int = 10, product_top: int = 10) -> str:
    total, inclusive, own = summarise(raw)
    if not total:
        return "no samples\n"

    def table(counts: Counter[str], keep: re.Pattern[str] | None, n: int) -> list[str]:
        rows = [
            (count, frame)
            for frame, count in counts.most_common()
            if keep is None or keep.search(frame)
        ][:n]
        return [f"  {100 * count / total:5.1f} %  {frame}" for count, frame in rows]

    lines = [f"{total} samples (100 Hz, threads on CPU)"]
    lines += [f"top {product_top} cumulative, the product's own functions:"]
    lines += table(inclusive, PRODUCT, product_top)
    lines += [f"top {top} cumulative, everything:"]
    lines += table(inclusive, None, top)
    lines += ["top 20 by own time:"]
    lines += table(own, None, 20)
    return "\n".join(lines) + "\n"
