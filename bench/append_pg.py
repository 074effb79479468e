"""Durable append on PostgreSQL (issue 18, item 3; target: the store at least 0.7× the raw
loop): the PostgreSQL store's `commit` against a raw single-writer group-commit loop on the
same schema, in one run, 200 conversations committing at once, 5 commits each.

The commits are `bench.append`'s (the envelopes a real `decide` produced, about six per
prospect message), timed in its frame (`timed`, `alternate`: store and raw loop one after
the other, each round in a fresh schema, best of 3 and the ratio of every round). The
store commits as the product does: the commits queued while one transaction is written
grouped into the next (`storage.postgres_group`: the dedupe inserts, the expected-version
checks on the stream rows, the chain links read, sealing, the projections' counters), so
its commits per transaction is the groups' size. The raw loop is one connection and one task
draining a queue into one transaction per batch of whatever is queued (up to
`bench.append.RAW_BATCH`), inserting the same stream, event, delivery and inbound rows
(`bench.append.raw_rows`) and nothing else — each table's rows of the whole batch in one
pipelined `executemany`, the cheapest way asyncpg has to send them.

PostgreSQL is a throwaway cluster (`tests.support.postgres`), started twice: as the tests
run it (`fsync=off`, `synchronous_commit=off`: a commit waits for no disk at all, so the
figures are CPU and round trips only, and flatter both sides against SQLite's
`synchronous=FULL`), and `durable` (`fsync`, `synchronous_commit` and `full_page_writes`
on, PostgreSQL's defaults: each transaction waits for its WAL flush, which the raw loop
pays once per batch and the store once per group of commits). `--dsn` measures a server of yours instead, as it is configured (an
empty database: each round gets a schema of its own, dropped afterwards).

Beside them, `guarantees_bound_vs_raw` (`guarantees_bound`): the most a store paying only
for the guarantees' computations could reach against the raw loop.

Beside the rates: this process's CPU per commit (the client: the store's Python, or the
raw loop's) and the cluster's (postmaster and backends, from /proc, as `bench.replicas`
reads it), each the least over the rounds.

    python -m bench.append_pg [--dsn postgresql://…] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import asyncpg

from bench import proc
from bench.append import (
    RAW_BATCH,
    RAW_DELIVERY,
    RAW_EVENTS,
    RAW_INBOUND,
    RAW_STREAM,
    Side,
    alternate,
    build_commits,
    guarantee_costs,
    raw_rows,
    timed,
)
from bench.growth_pg import fresh_schema
from bench.replicas import postgres_cpu_s
from storage.ports import Commit
from storage.postgres import PostgresStore
from storage.postgres_pool import POOL_MAX
from tests.support.postgres import Cluster
from tests.support.postgres import start as start_cluster


def numbered(sql: str) -> str:
    """SQLite's `?` placeholders as PostgreSQL's `$1, $2, …` (the raw statements hold no
    literal question marks)."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


PG_STREAM, PG_EVENTS, PG_DELIVERY, PG_INBOUND = (
    numbered(sql) for sql in (RAW_STREAM, RAW_EVENTS, RAW_DELIVERY, RAW_INBOUND)
)


def batch_rows(commits: list[Commit]) -> tuple[list[tuple[object, ...]], ...]:
    """One batch's rows table by table (streams, events, deliveries, inbounds), in the
    order the foreign keys accept. Each conversation has at most one commit in a batch (it
    waits for its previous commit's answer), so no stream row appears twice."""
    rows = [raw_rows(commit) for commit in commits]
    return (
        [r.stream for r in rows],
        [event for r in rows for event in r.events],
        [r.delivery for r in rows],
        [r.inbound for r in rows],
    )


class RawPgGroupCommit:
    """The baseline: one connection, one task, a queue; each batch is one transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.queue: asyncio.Queue[tuple[Commit, asyncio.Future[None]] | None] = asyncio.Queue()
        self.batches = 0
        self.task = asyncio.create_task(self._loop(), name="raw-pg-writer")

    async def submit(self, commit: Commit) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((commit, done))
        await done

    async def _loop(self) -> None:
        while True:
            first = await self.queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < RAW_BATCH and not self.queue.empty():
                item = self.queue.get_nowait()
                if item is None:
                    self.queue.put_nowait(None)  # stop after this batch
                    break
                batch.append(item)
            try:
                streams, events, deliveries, inbounds = batch_rows([c for c, _ in batch])
                async with self.conn.transaction():
                    await self.conn.executemany(PG_STREAM, streams)
                    await self.conn.executemany(PG_EVENTS, events)
                    await self.conn.executemany(PG_DELIVERY, deliveries)
                    await self.conn.executemany(PG_INBOUND, inbounds)
            except Exception as exc:  # the bench fails loudly, every waiter with it
                for _, done in batch:
                    done.set_exception(exc)
                raise
            self.batches += 1
            for _, done in batch:
                done.set_result(None)

    async def close(self) -> None:
        self.queue.put_nowait(None)
        await self.task


@dataclass
class Costs:
    """CPU seconds charged to each side, round by round: this process's and the cluster's."""

    cluster: Cluster | None
    client: dict[str, list[float]] = field(default_factory=dict)
    server: dict[str, list[float]] = field(default_factory=dict)

    @contextmanager
    def measuring(self, name: str) -> Iterator[None]:
        """Charge the CPU used inside to `name` (only the timed part: not the schema's
        creation and migration around it)."""
        client, server = time.process_time(), postgres_cpu_s(self.cluster)
        yield
        self.client.setdefault(name, []).append(time.process_time() - client)
        self.server.setdefault(name, []).append(postgres_cpu_s(self.cluster) - server)

    def figures(self, commits: int) -> dict[str, float]:
        """Each side's least CPU per commit over the rounds, in ms (the cluster's is 0 for
        a server of one's own: its processes are not ours to read)."""
        results = {}
        for where, spent in (("client", self.client), ("server", self.server)):
            for name, seconds in spent.items():
                results[f"{name}_{where}_cpu_ms_per_commit"] = 1000 * min(seconds) / commits
        return results


async def store_side(dsn: str, commits: list[list[Commit]], costs: Costs) -> tuple[float, int]:
    """The store's commits, in a fresh schema, and the transactions they took (grouped
    across conversations: `storage.postgres_group`)."""
    async with fresh_schema(dsn) as target, await PostgresStore.open(target) as store:
        # The pool grown to its bound before timing, as a serving process's is.
        await asyncio.gather(*(store.version(f"warm-{n}") for n in range(POOL_MAX)))
        before = store._group.transactions
        with costs.measuring("store"):
            elapsed = await timed(store.commit, commits)
        return elapsed, store._group.transactions - before


async def raw_side(dsn: str, commits: list[list[Commit]], costs: Costs) -> tuple[float, int]:
    """The raw loop's commits, in a fresh schema the store created and let go of."""
    async with fresh_schema(dsn) as target:
        async with await PostgresStore.open(target):
            pass
        conn = await asyncpg.connect(target)
        try:
            writer = RawPgGroupCommit(conn)
            try:
                with costs.measuring("raw"):
                    elapsed = await timed(writer.submit, commits)
            finally:
                await writer.close()
            return elapsed, writer.batches
        finally:
            await conn.close()


async def compare(
    dsn: str, cluster: Cluster | None, commits: list[list[Commit]], rounds: int
) -> dict[str, float]:
    """One configuration: store and raw loop alternated, with their CPU."""
    costs = Costs(cluster)
    sides: dict[str, Side] = {
        "store": lambda _n, c: store_side(dsn, c, costs),
        "raw": lambda _n, c: raw_side(dsn, c, costs),
    }
    results = await alternate(sides, commits, rounds)
    results.update(costs.figures(sum(len(conversation) for conversation in commits)))
    conn = await asyncpg.connect(dsn)
    try:
        for setting in ("fsync", "synchronous_commit"):
            results[f"server_{setting}_on"] = float(await conn.fetchval(f"SHOW {setting}") == "on")
    finally:
        await conn.close()
    return results


@contextmanager
def cluster(durable: bool) -> Iterator[Cluster]:
    started = start_cluster(durable=durable)
    try:
        yield started
    finally:
        started.stop()


def guarantees_bound(figures: Mapping[str, float], guarantees_us: float) -> float:
    """The most any store could reach against the raw loop here, paying for the
    guarantees' own computations (`bench.append.guarantee_costs`: the masked JSON,
    sealing, links, the projections' fold, the inbound) and nothing else: the raw loop's
    client and cluster CPU per commit, the guarantees added to the client's. The two add
    up because each group waits for the one before (a conversation's next commit waits
    for its answer), on both sides alike. Needs the cluster's CPU: a local cluster."""
    raw_ms = figures["raw_client_cpu_ms_per_commit"] + figures["raw_server_cpu_ms_per_commit"]
    return raw_ms / (raw_ms + guarantees_us / 1000)


CONFIGURATIONS = {"throwaway": False, "durable": True}
"""The throwaway clusters measured by default, by label: whether each waits for the disk."""


async def measure(
    dsn: str | None = None, conversations: int = 200, messages: int = 5, rounds: int = 3
) -> dict[str, float]:
    commits = build_commits(conversations, messages)
    results: dict[str, float] = {"append_pg_load_average_1m_start": proc.load_average()[0]}
    guarantees_us = guarantee_costs(commits)["guarantees_us_per_commit"]
    results["append_pg_guarantees_us_per_commit"] = guarantees_us
    if dsn is not None:
        figures = await compare(dsn, None, commits, rounds)
        results.update({f"append_pg_server_{k}": v for k, v in figures.items()})
    else:
        for label, durable in CONFIGURATIONS.items():
            with cluster(durable) as started:
                figures = await compare(started.dsn, started, commits, rounds)
            figures["guarantees_bound_vs_raw"] = guarantees_bound(figures, guarantees_us)
            results.update({f"append_pg_{label}_{k}": v for k, v in figures.items()})
    results["append_pg_load_average_1m_end"] = proc.load_average()[0]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.append_pg")
    parser.add_argument(
        "--dsn", help="an empty PostgreSQL database (default: throwaway local clusters)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds (best of)")
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5, help="commits per conversation")
    options = parser.parse_args(argv)
    figures = asyncio.run(
        measure(options.dsn, options.conversations, options.messages, options.rounds)
    )
    for key, value in figures.items():
        print(f"{key:56} {value:14,.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
