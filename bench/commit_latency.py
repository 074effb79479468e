"""A commit's latency when commits come one at a time (issue 18: the p99 at half of the
maximum), with the write-ahead log checkpointed on its own thread
(`storage.sqlite_checkpoints`) against SQLite's automatic checkpoints inside the commits,
in one run.

At a steady rate each message is a transaction of its own (its pages of log in `serve`: about
47 until two unread indexes of the events were dropped; the commit alone writes
`commit_log_pages`), and SQLite's automatic checkpoint (every 1,000 pages) fell inside one
commit in twenty:
that commit waits for the log's pages to be copied into the file and the file fsynced. The
same commits — the decisions `bench.append` builds, `CONVERSATIONS` conversations
round-robin, `GAP_S` apart — through the store on the writer thread with and without its
checkpointer (the baseline: `Checkpointer.start` made to decline, as when its connection
cannot open), alternated `ROUNDS` times, and through the writer process (`serve`'s
default) with its checkpointer. Reported: p50, p99, p99.9, max and the share of commits
over `SLOW_MS`, each side's median round.

    python -m bench.commit_latency
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import patch

from bench.append import build_commits
from storage import sqlite_checkpoints
from storage.ports import Commit
from storage.sqlite import SqliteStore
from storage.sqlite_checkpoints import Checkpointer
from storage.sqlite_writer import WriterKind

CONVERSATIONS = 400
MESSAGES = 6
GAP_S = 0.002
ROUNDS = 3
SLOW_MS = 3.0
LOG_CONVERSATIONS = 100
"""Conversations whose fourth message `commit_log_pages` counts the pages of."""
LOG_HEADER, FRAME_HEADER = 32, 24
"""Bytes of the write-ahead log's header, and of each frame's before its page
(sqlite.org/fileformat2.html, 4.1)."""


@contextmanager
def automatic_checkpoints() -> Iterator[None]:
    """Stores opened meanwhile on the writer thread checkpoint inside their commits, as
    before `storage.sqlite_checkpoints` (in this process only: not the writer process)."""
    with patch.object(Checkpointer, "start", return_value=None):
        yield


async def latencies(commits: list[Commit], writer: WriterKind, gap_s: float) -> list[float]:
    """Seconds each of `commits` took, committed one at a time, `gap_s` apart."""
    with tempfile.TemporaryDirectory() as directory:
        store = await SqliteStore.open(Path(directory) / "salesbot.db", writer=writer)
        try:
            taken = []
            for commit in commits:
                start = time.perf_counter()
                await store.commit(commit)
                taken.append(time.perf_counter() - start)
                await asyncio.sleep(gap_s)
            return taken
        finally:
            await store.close()


async def log_pages_per_commit(path: Path, conversations: list[list[Commit]]) -> float:
    """Pages the write-ahead log gains per commit, one commit per transaction: the fourth
    message of each conversation (a conversation's first messages write more: its stream,
    its key), committed after the first three with the log emptied, and no checkpoint at
    all (the checkpointer told nothing, the backstop out of reach), so the log's growth is
    every page they wrote."""
    warm = [each[m] for m in range(3) for each in conversations]
    measured = [each[3] for each in conversations]
    with (
        patch.object(Checkpointer, "committed", lambda self: None),
        patch.object(sqlite_checkpoints, "BACKSTOP_PAGES", 1 << 30),
    ):
        store = await SqliteStore.open(path)
        try:
            for commit in warm:
                await store.commit(commit)
            with contextlib.closing(sqlite3.connect(path)) as conn:
                (page_size,) = conn.execute("PRAGMA page_size").fetchone()
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            log = path.with_name(path.name + "-wal")
            before = max(log.stat().st_size, LOG_HEADER)  # emptied: the header comes back
            for commit in measured:
                await store.commit(commit)
            frames = (log.stat().st_size - before) / (FRAME_HEADER + int(page_size))
        finally:
            await store.close()
    return frames / len(measured)


def summary(taken: list[float]) -> dict[str, float]:
    """p50, p99, p99.9 and max in ms, and the share of commits slower than `SLOW_MS`."""
    cuts = statistics.quantiles(taken, n=1000, method="inclusive")
    return {
        "p50_ms": cuts[499] * 1000,
        "p99_ms": cuts[989] * 1000,
        "p99_9_ms": cuts[998] * 1000,
        "max_ms": max(taken) * 1000,
        "slow_share": sum(t * 1000 > SLOW_MS for t in taken) / len(taken),
    }


def median_round(rounds: list[dict[str, float]]) -> dict[str, float]:
    """The round whose p99 is the median of the rounds'."""
    return sorted(rounds, key=lambda figures: figures["p99_ms"])[len(rounds) // 2]


async def measure(
    conversations: int = CONVERSATIONS,
    messages: int = MESSAGES,
    rounds: int = ROUNDS,
    gap_s: float = GAP_S,
) -> dict[str, float]:
    built = build_commits(conversations, messages)
    commits = [each[m] for m in range(messages) for each in built]  # round-robin
    sides: dict[str, list[dict[str, float]]] = {"thread": [], "automatic": [], "process": []}
    for _ in range(rounds):
        sides["thread"].append(summary(await latencies(commits, "thread", gap_s)))
        with automatic_checkpoints():
            sides["automatic"].append(summary(await latencies(commits, "thread", gap_s)))
        sides["process"].append(summary(await latencies(commits, "process", gap_s)))
    result: dict[str, float] = {"commits": float(len(commits))}
    if messages > 3:
        with tempfile.TemporaryDirectory() as directory:
            result["commit_log_pages"] = await log_pages_per_commit(
                Path(directory) / "pages.db", built[:LOG_CONVERSATIONS]
            )
    for side, figures in sides.items():
        for key, value in median_round(figures).items():
            result[f"commit_latency_{side}_{key}"] = value
    result["commit_latency_p99_vs_automatic"] = (
        result["commit_latency_thread_p99_ms"] / result["commit_latency_automatic_p99_ms"]
    )
    result["commit_latency_p99_9_vs_automatic"] = (
        result["commit_latency_thread_p99_9_ms"] / result["commit_latency_automatic_p99_9_ms"]
    )
    return result


def main() -> None:
    for key, value in asyncio.run(measure()).items():
        print(f"{key:48s} {value:12,.3f}")


if __name__ == "__main__":
    main()
