"""What a process costs, read from Linux's /proc (no dependency): CPU seconds, resident
memory, open file descriptors. Used by the whole-product benches to charge each server
process for its own work (every thread, and every process it started — salesbot's SQLite
writer — not the load generator's or the fakes')."""

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
    """One reading of a process and the processes it started: CPU seconds used so far (user
    + system, all threads, children that exited included), resident bytes, open file
    descriptors."""

    cpu_s: float
    rss_bytes: int
    fds: int


def _stat(pid: int) -> list[str]:
    """`pid`'s /proc stat fields from the third on (proc(5) field n is index n - 3)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    return stat[stat.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of `pid` so far, every thread included, and of its
    children that exited and were waited for (fields 14–17 of proc(5))."""
    fields = _stat(pid)
    return sum(int(field) for field in fields[11:15]) / TICKS_PER_S


def descendants(pid: int) -> list[int]:
    """The processes `pid` started that still run, and theirs."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat(int(entry))[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue  # it ended meanwhile
    found: list[int] = []
    waiting = list(children.get(pid, ()))
    while waiting:
        child = waiting.pop()
        found.append(child)
        waiting += children.get(child, ())
    return found


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` (statm's second field, in pages)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_kinds(pid: int, listening_port: int) -> dict[str, int]:
    """`pid`'s descriptors by kind: TCP connections accepted on `listening_port` (its
    clients'), other TCP connections (its own, outbound), and everything else (files, the
    listening socket, pipes, the event loop's) — so a soak tells a leak from a connection
    pool that grew to its bound."""
    sockets: set[str] = set()
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        total += 1
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            total -= 1
            continue
        if target.startswith("socket:["):
            sockets.add(target[len("socket:[") : -1])
    accepted = outbound = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            columns = line.split()
            if columns[9] not in sockets:
                continue
            local_port = int(columns[1].rsplit(":", 1)[1], 16)
            remote_port = int(columns[2].rsplit(":", 1)[1], 16)
            if remote_port == 0:
                continue  # a listening socket: counted with the rest
            if local_port == listening_port:
                accepted += 1
            else:
                outbound += 1
    return {"accepted": accepted, "outbound": outbound, "other": total - accepted - outbound}


def sample(pid: int) -> Sample:
    """`pid` and every process it started that still runs, summed."""
    total = Sample(cpu_s=cpu_seconds(pid), rss_bytes=rss_bytes(pid), fds=open_fds(pid))
    for child in descendants(pid):
        try:
            total = Sample(
                cpu_s=total.cpu_s + cpu_seconds(child),
                rss_bytes=total.rss_bytes + rss_bytes(child),
                fds=total.fds + open_fds(child),
            )
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    return total


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
