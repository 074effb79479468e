"""`bench.commit_latency`: its baseline really is SQLite's automatic checkpoints inside the
commits (and only while asked for), and its report holds what it names. No timing is
asserted; the figures are `python -m bench.commit_latency`'s."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from bench.append import build_commits
from bench.commit_latency import (
    automatic_checkpoints,
    log_pages_per_commit,
    measure,
    median_round,
    summary,
)
from storage.sqlite import SqliteStore
from storage.sqlite_checkpoints import BACKSTOP_PAGES
from storage.sqlite_writer import Conn


def _autocheckpoint(conn: Conn) -> int:
    return int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


async def test_the_baseline_checkpoints_inside_the_commits_and_only_while_asked(
    tmp_path: Path,
) -> None:
    with automatic_checkpoints():
        async with await SqliteStore.open(tmp_path / "a.db") as store:
            assert await store._outside(_autocheckpoint) == 1000  # SQLite's own threshold
    async with await SqliteStore.open(tmp_path / "b.db") as store:
        assert await store._outside(_autocheckpoint) == BACKSTOP_PAGES


def test_the_summary_and_the_median_round() -> None:
    taken = [0.001] * 990 + [0.005] * 10  # 1 % of the commits at 5 ms
    figures = summary(taken)
    assert figures["p50_ms"] == 1.0
    assert figures["max_ms"] == 5.0
    assert figures["slow_share"] == 0.01
    rounds = [{"p99_ms": 3.0}, {"p99_ms": 1.0}, {"p99_ms": 2.0}]
    assert median_round(rounds) == {"p99_ms": 2.0}


async def test_the_report_names_every_side() -> None:
    result = await measure(conversations=4, messages=4, rounds=1, gap_s=0)
    assert result["commits"] == 16
    assert result["commit_log_pages"] > 1
    for side in ("thread", "automatic", "process"):
        p50, p99, top = (
            result[f"commit_latency_{side}_{k}"] for k in ("p50_ms", "p99_ms", "max_ms")
        )
        assert 0 < p50 <= p99 <= top
    assert result["commit_latency_p99_vs_automatic"] == (
        result["commit_latency_thread_p99_ms"] / result["commit_latency_automatic_p99_ms"]
    )


async def test_the_log_pages_counted_are_every_page_a_commit_wrote(tmp_path: Path) -> None:
    conversations = build_commits(10, 4)
    plain = await log_pages_per_commit(tmp_path / "plain.db", conversations)
    assert plain * 10 == int(plain * 10)  # whole frames, the log's header left out
    indexed = tmp_path / "indexed.db"
    async with await SqliteStore.open(indexed):
        pass
    with contextlib.closing(sqlite3.connect(indexed)) as conn:
        conn.execute("CREATE INDEX by_type ON events (type, at_ms)")
    # One more index of the events: each commit writes at least one more page of it.
    assert await log_pages_per_commit(indexed, conversations) >= plain + 1
