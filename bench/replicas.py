"""Throughput of replicas (issue 17, "Measured"): one `salesbot serve` on SQLite, one on
PostgreSQL and two on one PostgreSQL, saturated with the same Slack load, in one run.

Each configuration gets fresh stores (a SQLite file; a schema of its own on a throwaway
PostgreSQL cluster, `tests.support.postgres`) and the fake Slack Web API of the tests on
127.0.0.1, so the outbox really sends. The load is two generator processes
(`bench.loadgen`), 16 requests in flight each, over conversations of their own: both at the
one server, or one at each replica — the split a load balancer would make, without a proxy
process of its own competing for the two cores. Acknowledgements per second are the two
generators' sum; each server is charged its own CPU from /proc, and PostgreSQL's share of
the two cores (postmaster and backends, warm-up included) is shown beside it.

    python -m bench.replicas [--seconds 8]

Loopback only; nothing stays running.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from bench import ingest, proc
from bench.served import Server, base_env, loadgen, salesbot_serve
from tests.fakes.slack_api import FakeSlackApi
from tests.support.postgres import Cluster
from tests.support.postgres import start as start_cluster

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-bench"
PER_GENERATOR = 16
CAP = 20_000


async def _schema(cluster: Cluster) -> str:
    """A new empty schema on the cluster, as the DSN of a database holding only it."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(cluster.dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await conn.close()
    return f"{cluster.dsn}?search_path={name}"


async def _servers(
    database: str, count: int, api: FakeSlackApi, directory: Path, label: str
) -> list[Server]:
    env = {
        **base_env(Path(database)),
        "SALESBOT_DB": database,
        "SLACK_BOT_TOKEN": api.token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": api.base_url,
    }
    return list(
        await asyncio.gather(
            *(
                Server.start(salesbot_serve(), env, directory / f"{label}-{n}.log")
                for n in range(count)
            )
        )
    )


def postgres_cpu_s(cluster: Cluster | None) -> float:
    """CPU seconds the cluster used so far: the postmaster, its live backends, and the
    backends that have exited (the postmaster's reaped children)."""
    if cluster is None:
        return 0.0
    postmaster = int((cluster.base / "data" / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        pid, parent = int(entry.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(f) for f in fields[11:15]) / proc.TICKS_PER_S  # with children
        elif parent == postmaster:
            total += (int(fields[11]) + int(fields[12])) / proc.TICKS_PER_S
    return total


async def saturate(
    servers: list[Server], seconds: float, run: str, cluster: Cluster | None
) -> dict[str, float]:
    """Two generators at once, spread over `servers` (both at one, or one each)."""
    postgres_before = postgres_cpu_s(cluster)
    jobs = [
        {
            **ingest.job(
                f"{servers[g % len(servers)].base_url}/slack/events",
                "slack",
                f"{run}{g}",
                secret=SECRET,
            ),
            "mode": "closed",
            "concurrency": PER_GENERATOR,
            "seconds": seconds,
            "max_requests": CAP,
        }
        for g in range(2)
    ]
    outcomes = await asyncio.gather(
        *(loadgen(job, servers[g % len(servers)]) for g, job in enumerate(jobs))
    )
    postgres = postgres_cpu_s(cluster) - postgres_before  # the warm-up too
    results = [result for result, _before, _after in outcomes]
    if any(r["acked"] != r["sent"] for r in results):
        raise RuntimeError(f"not every request was acknowledged: {results}")
    acks = sum(float(r["acks_per_s"]) for r in results)
    # Each server's CPU over the measured part (when both generators sampled the same
    # server, its span is the earlier start to the later end).
    cpu = 0.0
    for index in range(len(servers)):
        spans = [(b, a) for g, (_r, b, a) in enumerate(outcomes) if g % len(servers) == index]
        first = min((b for b, _a in spans if b is not None), key=lambda s: s.cpu_s)
        last = max((a for _b, a in spans if a is not None), key=lambda s: s.cpu_s)
        cpu += last.cpu_s - first.cpu_s
    acked = sum(int(r["acked"]) for r in results)
    p99 = max(float(r["latency_ms"]["p99"]) for r in results)
    p50 = max(float(r["latency_ms"]["p50"]) for r in results)
    return {
        "acks_per_s": acks,
        "server_cpu_ms_per_request": 1000 * cpu / max(acked, 1),
        "latency_p50_ms": p50,
        "latency_p99_ms": p99,
        "requests": float(acked),
        "postgres_cpu_share": postgres / (seconds + ingest.WARMUP_S),
    }


async def measure(seconds: float = 8.0) -> dict[str, float]:
    results: dict[str, float] = {"replicas_load_average_1m_start": proc.load_average()[0]}
    cluster = await asyncio.to_thread(start_cluster)
    try:
        with tempfile.TemporaryDirectory() as name:
            directory = Path(name)
            async with FakeSlackApi(token=TOKEN) as api:
                configurations: list[tuple[str, str, int]] = [
                    ("sqlite_1", str(directory / "one.db"), 1),
                    ("postgres_1", await _schema(cluster), 1),
                    ("postgres_2", await _schema(cluster), 2),
                ]
                for label, database, count in configurations:
                    servers = await _servers(database, count, api, directory, label)
                    shared = cluster if label.startswith("postgres") else None
                    try:
                        figures = await saturate(servers, seconds, label.replace("_", ""), shared)
                    finally:
                        for server in servers:
                            await server.stop()
                    results.update({f"replicas_{label}_{k}": v for k, v in figures.items()})
    finally:
        await asyncio.to_thread(cluster.stop)
    results["replicas_load_average_1m_end"] = proc.load_average()[0]
    base = results["replicas_sqlite_1_acks_per_s"]
    for label in ("postgres_1", "postgres_2"):
        results[f"replicas_{label}_vs_sqlite_1"] = results[f"replicas_{label}_acks_per_s"] / base
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas")
    parser.add_argument("--seconds", type=float, default=8.0, help="each saturation run (s)")
    options = parser.parse_args(argv)
    figures: dict[str, Any] = asyncio.run(measure(options.seconds))
    for key, value in figures.items():
        print(f"{key:52} {value:12,.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
