"""Replay's read and the whole `salesbot replay` on PostgreSQL beside SQLite (issue 18, item
4, on the store of issue 17), on the same rows, in one run.

The SQLite store is `bench.replay`'s (its `--store`, or one it writes of `EVENTS` events),
copied first (the original is only read), opened once by `SqliteStore` (migrated to this
version) and then copied into a fresh schema of a throwaway PostgreSQL cluster
(`tests.support.postgres`) by `salesbot migrate`'s own copy (`storage.pg_import.copy_store`,
as `bench.growth_pg` does), followed by an `ANALYZE` (what autovacuum does soon after a bulk
load: the planner's statistics in place). Then, on each store, alternated round by round:

* `read`: `Store.replay_logs` over every conversation, every event decoded and every
  inbound validated (`bench.replay.read_logs`, what `bench.replay` reports as
  `read_batched`);
* `replay`: `salesbot replay --json --fail-on-diff` in this process (`--jobs 1`);
* `verify`: `salesbot verify --json` in this process (`--jobs 1`: `Store.verify_logs`,
  every chain recomputed).

Each is charged wall time, this process's CPU (`time.process_time`: the client, and on
SQLite its reader thread, i.e. all of SQLite's work) and on PostgreSQL the cluster's CPU
(postmaster and backends, from /proc: `bench.replicas.postgres_cpu_s`); the best of
`--repeat` rounds for each figure. The cluster runs with `fsync=off`, which does not matter
here: these are reads.

    python -m bench.replay_pg [EVENTS] [--store PATH] [--repeat N] [--dsn postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import asyncpg

from bench import proc
from bench.replay import _counts, generate, read_logs, replay_in_process
from bench.replicas import postgres_cpu_s
from bot.cli import main as cli_main
from storage.pg_import import copy_store
from storage.ports import Store
from storage.postgres import PostgresStore, is_postgres_url
from storage.sqlite import SqliteStore
from tests.support.postgres import Cluster
from tests.support.postgres import start as start_cluster


@dataclass(frozen=True)
class Cost:
    """What one run took: wall seconds, this process's CPU seconds, the cluster's."""

    wall_s: float
    client_cpu_s: float
    server_cpu_s: float


def least(costs: Sequence[Cost]) -> Cost:
    """Each figure's best over the rounds, taken separately (the least wall time and the
    least CPU need not come from the same round on a shared machine)."""
    return Cost(
        wall_s=min(c.wall_s for c in costs),
        client_cpu_s=min(c.client_cpu_s for c in costs),
        server_cpu_s=min(c.server_cpu_s for c in costs),
    )


def metered(cluster: Cluster | None, run: Callable[[], object]) -> Cost:
    """Run `run` once and charge it (the cluster's CPU is 0 without a cluster of ours)."""
    server, client, start = postgres_cpu_s(cluster), time.process_time(), time.perf_counter()
    run()
    wall = time.perf_counter() - start
    return Cost(wall, time.process_time() - client, postgres_cpu_s(cluster) - server)


def report(costs: dict[tuple[str, str], list[Cost]], events: int) -> dict[str, float]:
    """The figures of every (backend, what) measured: events per second of wall time and
    of the two processes' CPU together, each CPU in seconds, and PostgreSQL against SQLite
    in wall time and in total CPU (above 1: PostgreSQL is slower)."""
    results: dict[str, float] = {}
    best = {key: least(values) for key, values in costs.items()}
    for (backend, what), cost in best.items():
        cpu = cost.client_cpu_s + cost.server_cpu_s
        results[f"{backend}_{what}_wall_s"] = cost.wall_s
        results[f"{backend}_{what}_client_cpu_s"] = cost.client_cpu_s
        results[f"{backend}_{what}_server_cpu_s"] = cost.server_cpu_s
        results[f"{backend}_{what}_wall_events_per_s"] = events / cost.wall_s
        results[f"{backend}_{what}_cpu_events_per_s"] = events / cpu
    for what in sorted({what for _backend, what in best}):
        if ("pg", what) in best and ("sqlite", what) in best:
            pg, lite = best[("pg", what)], best[("sqlite", what)]
            results[f"pg_vs_sqlite_{what}_wall"] = pg.wall_s / lite.wall_s
            results[f"pg_vs_sqlite_{what}_cpu"] = (pg.client_cpu_s + pg.server_cpu_s) / (
                lite.client_cpu_s + lite.server_cpu_s
            )
    return results


@asynccontextmanager
async def opened(database: str) -> AsyncIterator[Store]:
    store: Store
    if is_postgres_url(database):
        store = await PostgresStore.open(database)
    else:
        store = await SqliteStore.open(Path(database))
    async with store:
        yield store


async def _read(database: str) -> None:
    async with opened(database) as store:
        await read_logs(store, replay_decodes=False)


def verify_in_process(database: str) -> None:
    """`salesbot verify --json` in this process on `database` (`Store.verify_logs` under
    the command); raises unless every chain verifies."""
    os.environ["SALESBOT_DB"] = database
    code = cli_main(["verify", "--json"], out=io.StringIO(), err=io.StringIO())
    if code != 0:
        raise RuntimeError(f"the store at {database} does not verify")


async def _copy(path: Path, target: str) -> tuple[int, float]:
    """The SQLite store copied into the empty schema at `target`, then analyzed: (rows,
    seconds of the copy)."""
    start = time.perf_counter()
    summary = await copy_store(path, target)
    took = time.perf_counter() - start
    conn = await asyncpg.connect(target)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return summary.rows, took


async def _schema(dsn: str, statement: str) -> None:
    """Create or drop the measured schema (each `asyncio.run` has its own connections:
    the rounds in between run event loops of their own, as the command does)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def server(dsn: str | None) -> Iterator[tuple[str, Cluster | None]]:
    """The server to measure on: `dsn` (its CPU not ours to read), or a throwaway cluster."""
    if dsn is not None:
        yield dsn, None
        return
    cluster = start_cluster()
    try:
        yield cluster.dsn, cluster
    finally:
        cluster.stop()


def measure_store(path: Path, repeat: int = 2, dsn: str | None = None) -> dict[str, float]:
    """Every figure on a SQLite store at `path`, a copy this may migrate."""

    async def migrated() -> None:
        async with await SqliteStore.open(path):
            pass

    asyncio.run(migrated())
    conversations, inbounds, events = asyncio.run(_counts(path))
    # The commands' imports, outside their timing.
    import bot.cli_replay
    import bot.cli_verify  # noqa: F401

    results: dict[str, float] = {
        "replay_pg_load_average_1m_start": proc.load_average()[0],
        "replay_pg_store_events": float(events),
        "replay_pg_store_conversations": float(conversations),
        "replay_pg_store_inbounds": float(inbounds),
    }
    with server(dsn) as (base, cluster):
        name = f"bench_{uuid.uuid4().hex[:12]}"
        target = f"{base}{'&' if '?' in base else '?'}search_path={name}"
        asyncio.run(_schema(base, f'CREATE SCHEMA "{name}"'))
        try:
            rows, took = asyncio.run(_copy(path, target))
            results["replay_pg_copy_rows"] = float(rows)
            results["replay_pg_copy_s"] = took
            databases = {"sqlite": str(path), "pg": target}
            costs: dict[tuple[str, str], list[Cost]] = {}
            for _ in range(repeat):
                for backend, database in databases.items():
                    charged = cluster if backend == "pg" else None
                    runs: dict[str, Callable[[], object]] = {
                        "read": partial(asyncio.run, _read(database)),
                        "replay": partial(replay_in_process, database),
                        "verify": partial(verify_in_process, database),
                    }
                    for what, run in runs.items():
                        costs.setdefault((backend, what), []).append(metered(charged, run))
        finally:
            asyncio.run(_schema(base, f'DROP SCHEMA "{name}" CASCADE'))
    results.update({f"replay_pg_{k}": v for k, v in report(costs, events).items()})
    for (backend, what), values in costs.items():
        for n, cost in enumerate(values, start=1):
            results[f"replay_pg_{backend}_{what}_round_{n}_wall_s"] = cost.wall_s
    results["replay_pg_load_average_1m_end"] = proc.load_average()[0]
    return results


def measure(
    events: int = 100_000, store: Path | None = None, repeat: int = 2, dsn: str | None = None
) -> dict[str, float]:
    """Copy `store` (or write one of `events` events) to a temporary directory and measure
    the copy on both backends."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "replay.db"
        if store is not None:
            for suffix in ("", "-wal"):  # the original is only read
                if Path(f"{store}{suffix}").exists():
                    shutil.copyfile(f"{store}{suffix}", f"{path}{suffix}")
        else:
            asyncio.run(generate(path, events))
        return measure_store(path, repeat, dsn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay_pg")
    parser.add_argument("events", nargs="?", type=int, default=100_000)
    parser.add_argument("--store", type=Path, help="a SQLite store to measure (copied first)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds per figure (best counts)")
    parser.add_argument("--dsn", help="an empty PostgreSQL database (default: a throwaway one)")
    options = parser.parse_args(argv)
    for key, value in measure(options.events, options.store, options.repeat, options.dsn).items():
        print(f"{key:52} {value:14,.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
