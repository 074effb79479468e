"""`/metrics` at 1k and at 1M stored events, on SQLite and on PostgreSQL, in one run (issue 17,
item 5; target: the 1M/1k ratio at most 1.2 on both).

The stores hold the same rows. The SQLite store grows as `bench.growth` grows it (one
template conversation committed through the store, then cloned at the SQL level with fresh
keys, re-sealed values and recomputed chain links); at each size it is copied into a fresh
PostgreSQL schema by `salesbot migrate`'s own copy (`storage.pg_import.copy_store`: COPY in
pages of 5,000 rows, one transaction), which is timed too. Then, on each store, the
measurements of `bench.growth.per_message_on`: per-message latency through the runtime
(load, `decide`, the durable commit) and `/metrics` — the answer (`bot.queries.load_metrics`
and its rendering, read from the counters the commits keep; best and median of 15) and its
acknowledgement through the runtime (best of 3). Before the copy, every conversation is
given a distinct time to qualify (`spread_qualification`), so the answer reads the
percentiles' tree at its fullest. Last, the answer again on the four stores side by side,
alternated for 100 rounds (`paired`): the ratios to read against the target.

PostgreSQL is the tests' throwaway cluster (`tests.support.postgres`: Debian's binaries,
loopback, `fsync=off` and `synchronous_commit=off`), or `--dsn` for a server of yours (an
empty database: each size gets a schema of its own, dropped afterwards). With the throwaway
cluster a commit does not wait for the disk, so PostgreSQL's per-message figures flatter it
against SQLite's `synchronous=FULL`; `/metrics` is a read and is not affected.

    python -m bench.growth_pg [--events 1000000] [--dsn postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from bench.growth import clone, counts, per_message_on, write_template


@contextmanager
def server(dsn: str | None) -> Iterator[str]:
    """The DSN to measure on: `dsn`, or a throwaway cluster's, stopped afterwards."""
    if dsn is not None:
        yield dsn
        return
    from tests.support.postgres import start

    cluster = start()
    try:
        yield cluster.dsn
    finally:
        cluster.stop()


@asynccontextmanager
async def fresh_schema(dsn: str) -> AsyncIterator[str]:
    """An empty schema on the server, as a DSN whose search path is that schema."""
    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE SCHEMA "{name}"')
        separator = "&" if "?" in dsn else "?"
        yield f"{dsn}{separator}search_path={name}"
    finally:
        try:
            await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
        finally:
            await admin.close()


async def on_postgres(path: Path, dsn: str, label: str, conversations: int) -> dict[str, float]:
    """Copy the SQLite store into a fresh schema, then measure there."""
    from storage.pg_import import copy_store
    from storage.postgres import PostgresStore

    async with fresh_schema(dsn) as target:
        start = time.perf_counter()
        summary = await copy_store(path, target)
        took = time.perf_counter() - start
        figures = {
            f"copy_rows_{label}": float(summary.rows),
            f"copy_events_per_s_{label}": summary.tables["events"] / took,
            f"copy_seconds_{label}": took,
        }
        async with await PostgresStore.open(target) as store:
            figures.update(await per_message_on(store, label, conversations))
    return figures


async def on_sqlite(path: Path, label: str, conversations: int) -> dict[str, float]:
    from storage.sqlite import SqliteStore

    async with await SqliteStore.open(path) as store:
        return await per_message_on(store, label, conversations)


SPREAD_MS = 14 * 24 * 3600 * 1000
"""The span the benchmark stores' times to qualify are drawn over (`spread_qualification`)."""


def spread_qualification(path: Path) -> int:
    """Give every started conversation of the SQLite store its own time to qualify, drawn
    over two weeks (seeded by its id), and recount the counters; the number of times.

    The clones are copies of one conversation that does not qualify, so without this the
    counted times are empty and `/metrics` would not read the percentiles' tree at all. With
    it, the tree holds one distinct time per conversation (72 at 1k events, about 71,400
    at 1M): the read's worst case, measured. The projection then no longer matches the log
    (`salesbot projections rebuild` would undo it): a benchmark store only."""
    import zlib

    from storage.sqlite_projections import recount

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        rows = conn.execute(
            "SELECT conversation_id, started_at_ms FROM projection_streams "
            "WHERE started_at_ms IS NOT NULL"
        ).fetchall()
        conn.executemany(
            "UPDATE projection_streams SET qualified_at_ms = ? WHERE conversation_id = ?",
            [
                (started + random.Random(zlib.crc32(cid.encode())).randrange(SPREAD_MS), cid)
                for cid, started in rows
            ],
        )
        recount(conn)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return len(rows)


PAIRED_ROUNDS = 100
"""Rounds of the paired `/metrics` answer (`paired`), after 5 of warm-up."""


async def paired(files: dict[str, Path], dsn: str) -> dict[str, float]:
    """The `/metrics` answer on every store at once, alternated round by round: the small
    and the large store of each backend open side by side, so each ratio compares answers
    taken under the same load (on this shared machine the load moves more between two
    phases a minute apart than the answer does between 1k and 1M events). Best and median
    of `PAIRED_ROUNDS`."""
    import statistics
    from contextlib import AsyncExitStack

    from bot.policy_loader import load_policy
    from bot.queries import load_metrics
    from domain.analytics import render_metrics
    from storage.pg_import import copy_store
    from storage.ports import Store
    from storage.postgres import PostgresStore
    from storage.sqlite import SqliteStore

    policy = load_policy("default")
    async with AsyncExitStack() as stack:
        stores: dict[str, Store] = {}
        for label, path in files.items():
            target = await stack.enter_async_context(fresh_schema(dsn))
            await copy_store(path, target)
            stores[f"pg_{label}"] = await stack.enter_async_context(
                await PostgresStore.open(target)
            )
            stores[f"sqlite_{label}"] = await stack.enter_async_context(
                await SqliteStore.open(path)
            )
        took: dict[str, list[float]] = {name: [] for name in stores}
        for round_ in range(PAIRED_ROUNDS + 5):
            for name, store in stores.items():
                start = time.perf_counter()
                render_metrics(await load_metrics(store, policy))
                if round_ >= 5:
                    took[name].append(time.perf_counter() - start)
    results: dict[str, float] = {}
    for name, values in took.items():
        results[f"paired_{name}_answer_ms"] = 1000 * min(values)
        results[f"paired_{name}_answer_ms_median"] = 1000 * statistics.median(values)
    return results


def measure(events: int = 1_000_000, dsn: str | None = None) -> dict[str, float]:
    from bench import proc

    results: dict[str, float] = {"growth_pg_load_average_1m_start": proc.load_average()[0]}
    big = f"{events // 1000}k"
    with server(dsn) as base, tempfile.TemporaryDirectory() as name:
        path = Path(name) / "growth.db"
        per = asyncio.run(write_template(path))
        have = 1
        kept: dict[str, Path] = {}
        for size, label in ((1_000, "1k"), (events, big)):
            wanted = max(-(-size // per), 2)
            clone(path, have, wanted - have)
            have = wanted
            stored_conversations, stored_events = counts(path)
            results[f"growth_pg_stored_events_{label}"] = float(stored_events)
            results[f"growth_pg_qualified_{label}"] = float(spread_qualification(path))
            # Copied first, so both stores hold the same rows when measured.
            pg = asyncio.run(on_postgres(path, base, label, stored_conversations))
            lite = asyncio.run(on_sqlite(path, label, stored_conversations))
            for key, value in pg.items():
                results[f"pg_{key.removeprefix('growth_')}"] = value
            for key, value in lite.items():
                results[f"sqlite_{key.removeprefix('growth_')}"] = value
            kept[label] = Path(name) / f"growth-{label}.db"
            with sqlite3.connect(path) as source, sqlite3.connect(kept[label]) as copy:
                source.backup(copy)  # this size's store, for the paired answers
        results.update(asyncio.run(paired(kept, base)))
        for backend in ("sqlite", "pg"):
            for what in ("answer_ms", "answer_ms_median"):
                results[f"paired_{backend}_{what}_{big}_vs_1k"] = (
                    results[f"paired_{backend}_{big}_{what}"]
                    / results[f"paired_{backend}_1k_{what}"]
                )
    for backend in ("sqlite", "pg"):
        for what in (
            "metrics_answer_ms",
            "metrics_answer_ms_median",
            "metrics_ack_ms",
            "message_ms_p50",
        ):
            results[f"{backend}_{what}_{big}_vs_1k"] = (
                results[f"{backend}_{what}_{big}"] / results[f"{backend}_{what}_1k"]
            )
    results["pg_vs_sqlite_metrics_answer_ms_1k"] = (
        results["pg_metrics_answer_ms_1k"] / results["sqlite_metrics_answer_ms_1k"]
    )
    results[f"pg_vs_sqlite_metrics_answer_ms_{big}"] = (
        results[f"pg_metrics_answer_ms_{big}"] / results[f"sqlite_metrics_answer_ms_{big}"]
    )
    results["growth_pg_load_average_1m_end"] = proc.load_average()[0]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.growth_pg")
    parser.add_argument("--events", type=int, default=1_000_000, help="the large store's size")
    parser.add_argument(
        "--dsn", help="an empty PostgreSQL database (default: a throwaway local cluster)"
    )
    options = parser.parse_args(argv)
    for key, value in measure(options.events, options.dsn).items():
        print(f"{key:48} {value:14,.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
