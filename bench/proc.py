"""What a process costs, read from Linux's /proc (no dependency): CPU seconds, resident
memory, open file descriptors. Used by the whole-product benches to charge each server
process for its own work (every thread, not the load generator's or the fakes')."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Sample:
    """One reading of a process: CPU seconds used so far (user + system, all threads),
    resident bytes, open file descriptors."""

    cpu_s: float
    rss_bytes: int
    fds: int


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of `pid` so far, every thread included."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / TICKS_PER_S


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` (statm's second field, in pages)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sample(pid: int) -> Sample:
    return Sample(cpu_s=cpu_seconds(pid), rss_bytes=rss_bytes(pid), fds=open_fds(pid))


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q ≤ 100) of values sorted ascending: the
    smallest value with at least q % of the values at or below it (p99.9 of 1,000 values
    is the 999th, of 10,000 the 9,990th)."""
    if not sorted_values:
        return math.nan
    # 99.9 / 100 * 1000 is 999.0000000000001 in binary floating point: not rank 1000.
    rank = max(1, math.ceil(q * len(sorted_values) / 100 - 1e-9))
    return sorted_values[rank - 1]


def within(values: Sequence[float], reference: float, tolerance: float) -> bool:
    """Whether every value is within ±`tolerance` (a fraction) of `reference`."""
    return all(abs(v - reference) <= tolerance * reference for v in values)
