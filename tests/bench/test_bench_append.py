"""The durable-append benches' helpers (issue 18, item 3): the raw loop on PostgreSQL writes
the rows the store writes for the same commits (so the comparison is on the same work), the
report's arithmetic says what it claims, and the PostgreSQL bench runs end to end on a
tiny size — on the tests' cluster through `--dsn`, and on clusters of its own, one of them
durable. No timing is asserted; the figures are `python -m bench.append_pg`'s."""

from __future__ import annotations

import asyncio
import pickle
import socket
import sqlite3
from contextlib import closing
from pathlib import Path
from unittest import mock

import asyncpg
import pytest

from bench.append import (
    build_commits,
    crossing_costs,
    figures,
    floor,
    guarantee_costs,
    product,
    raw,
    socket_costs,
    store_statements,
    timed,
    with_guarantees,
)
from bench.append_pg import PG_EVENTS, RawPgGroupCommit, guarantees_bound, measure, numbered
from bot.cli_verify import verify_store
from bot.policy_loader import load_policy
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore
from storage.sqlite_process import FRAME, JOB
from tests.storage.conftest import fresh_database, postgres_cluster  # noqa: F401
from tests.support.postgres import Cluster


def test_placeholders_are_numbered_for_postgresql() -> None:
    assert numbered("INSERT INTO t (a, b) VALUES (?, ?)") == "INSERT INTO t (a, b) VALUES ($1, $2)"
    assert numbered("SELECT 1") == "SELECT 1"
    assert PG_EVENTS.endswith("VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")


def test_the_report_takes_each_sides_best_round_and_every_rounds_ratio() -> None:
    commits = build_commits(2, 2)  # 4 commits
    events = sum(len(c.events) for conversation in commits for c in conversation)
    rounds = [
        {"store": (2.0, 4), "raw": (1.0, 2)},
        {"store": (1.0, 4), "raw": (0.5, 1)},  # both sides' best
        {"store": (4.0, 4), "raw": (4.0, 4)},
    ]
    report = figures(rounds, commits)
    assert report["store_commits_per_s"] == 4.0
    assert report["raw_commits_per_s"] == 8.0
    assert report["store_events_per_s"] == events
    assert report["store_commits_per_batch"] == 1.0
    assert report["raw_commits_per_batch"] == 4.0
    assert report["events_per_commit"] == events / 4
    assert report["store_vs_raw"] == 0.5
    assert [report[f"round_{n}_store_vs_raw"] for n in (1, 2, 3)] == [0.5, 0.5, 1.0]


def test_every_store_side_is_reported_against_the_raw_loop() -> None:
    commits = build_commits(2, 2)  # 4 commits
    rounds = [
        {"store": (2.0, 4), "store_process": (1.0, 4), "raw": (1.0, 2)},
        {"store": (1.0, 4), "store_process": (2.0, 4), "raw": (0.5, 1)},
    ]
    report = figures(rounds, commits)
    assert report["store_vs_raw"] == 0.5
    assert report["store_process_vs_raw"] == 0.5  # 4 against 8 commits/s, both best rounds
    assert report["round_1_store_process_vs_raw"] == 1.0
    assert report["round_2_store_process_vs_raw"] == 0.25


def test_with_a_floor_each_store_is_also_reported_against_it() -> None:
    commits = build_commits(2, 2)  # 4 commits
    rounds = [{"store_process": (2.0, 4), "floor": (1.0, 2), "raw": (0.5, 1)}]
    report = figures(rounds, commits)
    assert report["floor_vs_raw"] == 0.5
    assert report["store_process_vs_raw"] == 0.25
    assert report["store_process_vs_floor"] == 0.5
    assert "floor_vs_floor" not in report
    assert "store_vs_floor" not in figures([{"store": (1.0, 4), "raw": (1.0, 4)}], commits)


def test_sides_that_measured_their_cpu_report_their_least_per_commit_against_the_raw_loop() -> None:
    commits = build_commits(2, 2)  # 4 commits
    rounds = [
        {"store": (2.0, 4, 0.004), "store_process": (1.0, 4, 0.006), "raw": (1.0, 2, 0.002)},
        {"store": (1.0, 4, 0.008), "store_process": (2.0, 4, 0.005), "raw": (0.5, 1, 0.001)},
    ]
    report = figures(rounds, commits)
    assert report["store_cpu_us_per_commit"] == 1000.0  # the least of 4 ms and 8 ms, per 4
    assert report["store_process_cpu_us_per_commit"] == 1250.0
    assert report["raw_cpu_us_per_commit"] == 250.0
    assert report["store_cpu_vs_raw"] == 4.0
    assert report["store_process_cpu_vs_raw"] == 5.0
    assert "store_cpu_vs_raw" not in figures([{"store": (1.0, 4), "raw": (1.0, 4)}], commits)


async def test_each_sqlite_side_is_charged_the_cpu_it_spent(tmp_path: Path) -> None:
    commits = build_commits(3, 2)
    for side in (
        product(tmp_path / "thread.db", commits),
        product(tmp_path / "process.db", commits, "process"),
        raw(tmp_path / "raw.db", commits),
    ):
        elapsed, transactions, spent = await side
        assert transactions >= 2  # each conversation waits for its commit's answer
        assert spent > 0  # this process's share alone is measured to the microsecond
        assert elapsed > 0


async def test_the_floor_writes_the_stores_rows_with_the_stores_own_statements(
    tmp_path: Path,
) -> None:
    """The floor replays the statements the store's jobs ran: its file holds the streams,
    events, deliveries, inbounds and projections the store's holds for the same commits,
    and the product reads it back as a store of its own — chain, keys and sealed values
    included, since they were recorded as the store wrote them."""
    commits = build_commits(3, 3)
    statements = await store_statements(commits)
    assert set(statements) == {c.delivery_id for conversation in commits for c in conversation}
    await product(tmp_path / "store.db", commits)
    _, transactions, _ = await floor(tmp_path / "floor.db", commits, statements)
    assert transactions >= 3  # each conversation waits for its commit's answer
    queries = {
        **{table: _rows(table) for table in ("streams", "events", "deliveries", "inbounds")},
        "projection_streams": "SELECT * FROM projection_streams ORDER BY conversation_id",
        "projection_counters": "SELECT * FROM projection_counters ORDER BY 1, 2, 3, 4",  # its key
        "keys": "SELECT conversation_id, COUNT(*) FROM conversation_keys GROUP BY 1 ORDER BY 1",
    }
    written = {}
    for name in ("store", "floor"):
        with closing(sqlite3.connect(tmp_path / f"{name}.db")) as conn:
            written[name] = {table: conn.execute(sql).fetchall() for table, sql in queries.items()}
    assert written["floor"] == written["store"]
    assert len(written["floor"]["events"]) == sum(
        len(c.events) for conversation in commits for c in conversation
    )
    policy = load_policy("default")  # the commits' (`build_commits`), so verify re-decides
    async with await SqliteStore.open(tmp_path / "floor.db") as store:
        await store.put_policy(policy.version, policy.canonical_json())
        report = await verify_store(store)
        loaded = await store.load(commits[0][0].conversation_id)
    assert (report.conversations, report.problems) == (3, 0)
    assert loaded == [event for commit in commits[0] for event in commit.events]


def _rows(table: str) -> str:
    keys = {
        "streams": "conversation_id, version",
        "events": "conversation_id, seq, at_ms, type, delivery_id",
        "deliveries": "delivery_id, conversation_id, received_at_ms, committed_version",
        "inbounds": "conversation_id, delivery_id, received_at_ms, policy_version",
    }[table]
    return f"SELECT {keys} FROM {table} ORDER BY {keys}"


async def test_the_raw_loop_writes_the_rows_the_store_writes_in_fewer_transactions(
    postgres_cluster: Cluster,  # noqa: F811
) -> None:
    commits = build_commits(4, 3)
    async with (
        fresh_database(postgres_cluster) as store_dsn,
        fresh_database(postgres_cluster) as raw_dsn,
    ):
        async with await PostgresStore.open(store_dsn) as store:
            await timed(store.commit, commits)
        async with await PostgresStore.open(raw_dsn):
            pass  # the schema, then the raw loop alone writes
        conn = await asyncpg.connect(raw_dsn)
        try:
            writer = RawPgGroupCommit(conn)
            await timed(writer.submit, commits)
            await writer.close()
        finally:
            await conn.close()
        written = {}
        for dsn in (store_dsn, raw_dsn):
            conn = await asyncpg.connect(dsn)
            try:
                written[dsn] = {
                    table: [tuple(row) for row in await conn.fetch(_rows(table))]
                    for table in ("streams", "events", "deliveries", "inbounds")
                }
            finally:
                await conn.close()
    assert written[raw_dsn] == written[store_dsn]
    assert len(written[raw_dsn]["deliveries"]) == 12
    assert written[raw_dsn]["streams"][0][1] == sum(len(c.events) for c in commits[0])
    # Each conversation waits for its commit's answer: at least 3 batches, at most one
    # per commit.
    assert 3 <= writer.batches <= 12


async def test_a_raw_batch_that_fails_fails_its_waiters_and_the_loop(
    postgres_cluster: Cluster,  # noqa: F811
) -> None:
    commits = build_commits(1, 1)
    async with fresh_database(postgres_cluster) as dsn:  # no schema: the insert fails
        conn = await asyncpg.connect(dsn)
        try:
            writer = RawPgGroupCommit(conn)
            with pytest.raises(asyncpg.UndefinedTableError):
                await writer.submit(commits[0][0])
            with pytest.raises(asyncpg.UndefinedTableError):
                await writer.task
        finally:
            await conn.close()


async def test_the_postgresql_bench_runs_on_a_server_of_ones_own(
    postgres_cluster: Cluster,  # noqa: F811
) -> None:
    report = await measure(postgres_cluster.dsn, conversations=3, messages=2, rounds=2)
    # The three conversations' commits, made at once, share each transaction.
    assert report["append_pg_server_store_commits_per_batch"] == 3.0
    assert report["append_pg_server_raw_commits_per_batch"] >= 1.0
    assert report["append_pg_server_store_vs_raw"] > 0
    assert {
        "append_pg_server_round_1_store_vs_raw",
        "append_pg_server_round_2_store_vs_raw",
    } <= set(report)
    assert report["append_pg_server_store_server_cpu_ms_per_commit"] == 0.0  # not ours to read
    assert report["append_pg_server_server_fsync_on"] == 0.0  # the tests' cluster
    conn = await asyncpg.connect(postgres_cluster.dsn)
    try:  # every round's schema is gone
        left = await conn.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'bench\\_%'"
        )
    finally:
        await conn.close()
    assert left == 0


def test_the_postgresql_bench_measures_a_throwaway_and_a_durable_cluster() -> None:
    report = asyncio.run(measure(conversations=2, messages=1, rounds=1))
    assert report["append_pg_throwaway_server_fsync_on"] == 0.0
    assert report["append_pg_throwaway_server_synchronous_commit_on"] == 0.0
    assert report["append_pg_durable_server_fsync_on"] == 1.0
    assert report["append_pg_durable_server_synchronous_commit_on"] == 1.0
    assert report["append_pg_durable_store_server_cpu_ms_per_commit"] >= 0.0
    assert report["append_pg_durable_raw_commits_per_s"] > 0
    assert report["append_pg_guarantees_us_per_commit"] > 0
    for label in ("throwaway", "durable"):
        assert 0 < report[f"append_pg_{label}_guarantees_bound_vs_raw"] < 1


def test_the_guarantees_bound_adds_their_cost_to_the_raw_loops_client() -> None:
    figures = {"raw_client_cpu_ms_per_commit": 0.08, "raw_server_cpu_ms_per_commit": 0.12}
    assert guarantees_bound(figures, 100.0) == pytest.approx(0.2 / 0.3)


def test_the_guarantees_costs_are_each_computation_timed_alone_and_what_they_add() -> None:
    costs = guarantee_costs(build_commits(3, 2), repeat=1)
    parts = ("json", "masked_json", "seal", "link", "fold", "inbound")
    assert all(costs[f"guarantee_{part}_us"] > 0 for part in parts)
    # The store's masked JSON replaces the raw loop's: only the difference is added.
    assert costs["guarantees_us_per_commit"] == pytest.approx(
        sum(costs[f"guarantee_{part}_us"] for part in parts[1:]) - costs["guarantee_json_us"]
    )


async def test_the_crossing_is_timed_on_the_jobs_the_store_sends_its_writer_process() -> None:
    commits = build_commits(2, 2)
    jobs: dict[str, bytes] = {}
    await store_statements(commits, jobs)
    flat = [commit for conversation in commits for commit in conversation]
    assert set(jobs) == {commit.delivery_id for commit in flat}
    for commit in flat:  # each one the commit's own job, as the writer process reads it
        job = pickle.loads(jobs[commit.delivery_id])
        assert (job.conversation_id, job.delivery_id) == (
            commit.conversation_id,
            commit.delivery_id,
        )
        assert len(job.rows) == len(commit.events)
    costs = crossing_costs(commits, jobs, repeat=1)
    assert all(costs[f"crossing_{part}_us"] > 0 for part in ("in", "out", "send", "recv"))


def test_the_socket_is_timed_moving_every_job_framed_as_the_writer_process_reads_it() -> None:
    sent = [bytes([n]) * (100 + 50 * n) for n in range(40)]
    moved: list[bytes] = []
    real = socket.socket.recv_into

    def recorded(self: socket.socket, buffer: memoryview, *args: int) -> int:
        size = real(self, buffer, *args)
        moved.append(bytes(buffer[:size]))
        return size

    with mock.patch.object(socket.socket, "recv_into", recorded):
        socket_costs(sent, repeat=1)
    stream, jobs = b"".join(moved), []
    while stream:  # the frames the writer process would read: every job, in order, once
        size, kind = FRAME.unpack_from(stream)
        assert kind == JOB
        jobs.append(stream[FRAME.size : FRAME.size + size])
        stream = stream[FRAME.size + size :]
    assert jobs == sent


def test_a_job_larger_than_the_socket_holds_is_refused_not_waited_on() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        socket_costs([b"x" * (4 << 20)], repeat=1)


REPORT = {
    "raw_commits_per_s": 5000.0,  # 200 µs a commit
    "floor_commits_per_s": 4000.0,  # 250 µs a commit
    "guarantee_json_us": 40.0,
    "guarantee_masked_json_us": 70.0,
    "guarantee_seal_us": 10.0,
    "guarantee_link_us": 10.0,
    "guarantee_fold_us": 20.0,
    "guarantee_inbound_us": 10.0,
    "guarantees_us_per_commit": 80.0,
}
"""A run's figures, made up: only the estimates' arithmetic is tested."""


def test_the_estimates_with_the_guarantees_are_the_floor_plus_them_and_the_slower_half() -> None:
    report = dict(REPORT)
    estimates = with_guarantees(report)
    assert estimates["floor_with_guarantees_vs_raw"] == pytest.approx(200 / 330)
    # The writer's half: the floor's 250 µs less the raw JSON (made on the other side),
    # plus sealing, linking and folding: 250 - 40 + 40 = 250 µs, slower than 70 + 10.
    assert estimates["split_bound_vs_raw"] == pytest.approx(200 / 250)
    assert "process_bound_vs_raw" not in estimates  # no crossing measured: no such bound
    report["guarantee_masked_json_us"] = 400.0  # now the other half is the slower
    assert with_guarantees(report)["split_bound_vs_raw"] == pytest.approx(200 / 410)


def test_the_process_bound_adds_the_crossing_to_each_half() -> None:
    report = {
        **REPORT,
        "crossing_in_us": 30.0,
        "crossing_out_us": 15.0,
        "crossing_recv_us": 4.0,
        "crossing_send_us": 5.0,
    }
    estimates = with_guarantees(report)
    assert estimates["split_bound_vs_raw"] == pytest.approx(200 / 250)
    # The writer's half 250 µs plus the job read (4) and unpickled (30): slower than
    # 80 + 15 + 5.
    assert estimates["process_bound_vs_raw"] == pytest.approx(200 / 284)
    report["crossing_out_us"] = 300.0  # now the side that pickles and writes is the slower
    assert with_guarantees(report)["process_bound_vs_raw"] == pytest.approx(200 / 385)
