"""The PostgreSQL replay bench (issue 18, item 4): its arithmetic says what it claims, and on a
tiny store it measures a copy on both backends — the copy on PostgreSQL replays with 0
differences and verifies (the bench raises otherwise) and the store it was given is left as it was. No
timing is asserted; the figures are `python -m bench.replay_pg`'s."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from bench.replay import generate
from bench.replay_pg import Cost, least, measure, report
from tests.storage.conftest import postgres_cluster  # noqa: F401
from tests.support.postgres import Cluster


def test_each_figure_is_its_own_best_over_the_rounds() -> None:
    assert least([Cost(2.0, 1.0, 0.5), Cost(1.0, 3.0, 0.25)]) == Cost(1.0, 1.0, 0.25)


def test_the_report_compares_postgresql_with_sqlite_in_wall_time_and_both_processes_cpu() -> None:
    costs = {
        ("sqlite", "read"): [Cost(2.0, 2.0, 0.0), Cost(1.0, 1.0, 0.0)],
        ("pg", "read"): [Cost(3.0, 1.0, 0.5)],
        ("pg", "copy"): [Cost(9.0, 1.0, 1.0)],  # no SQLite side: no ratio
    }
    figures = report(costs, events=600)
    assert figures["sqlite_read_wall_events_per_s"] == 600.0
    assert figures["pg_read_cpu_events_per_s"] == 400.0  # client and server together
    assert figures["pg_read_server_cpu_s"] == 0.5
    assert figures["pg_vs_sqlite_read_wall"] == 3.0
    assert figures["pg_vs_sqlite_read_cpu"] == 1.5
    assert "pg_vs_sqlite_copy_wall" not in figures


def test_the_bench_replays_a_copy_of_the_store_on_both_backends(
    postgres_cluster: Cluster,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SALESBOT_DB", str(tmp_path / "unused.db"))  # the bench sets it
    store = tmp_path / "given.db"
    conversations, inbounds, events = asyncio.run(generate(store, 120))
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    files = sorted(tmp_path.iterdir())
    figures = measure(store=store, repeat=1, dsn=postgres_cluster.dsn)
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    assert sorted(tmp_path.iterdir()) == files
    assert figures["replay_pg_store_events"] == events
    assert figures["replay_pg_store_inbounds"] == inbounds
    assert figures["replay_pg_store_conversations"] == conversations
    assert figures["replay_pg_copy_rows"] > events  # the events and everything beside them
    for backend in ("sqlite", "pg"):
        for what in ("read", "replay", "verify"):
            assert figures[f"replay_pg_{backend}_{what}_wall_events_per_s"] > 0
    assert figures["replay_pg_pg_replay_server_cpu_s"] == 0.0  # a server of one's own
    assert figures["replay_pg_pg_vs_sqlite_replay_wall"] > 0
