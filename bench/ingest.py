"""What the whole-product ingest benches share (`bench.slack_ingest`, `bench.teams_ingest`):
a saturation run and a fixed-rate run of the load generator against one server process,
each charged the server's own CPU from /proc, flattened into `make bench`'s figures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.served import Server, loadgen

CONVERSATIONS = 500
CONCURRENCY = 32
WARMUP_S = 2.0


async def phase(
    server: Server, job: dict[str, Any], on_start: Callable[[], object] | None = None
) -> dict[str, Any]:
    """The generator's figures plus the server's CPU per acknowledged request."""
    result, before, after = await loadgen(job, server, on_start)
    assert before is not None
    assert after is not None
    cpu = after.cpu_s - before.cpu_s
    result["server_cpu_s"] = cpu
    result["server_cpu_ms_per_request"] = 1000 * cpu / max(result["acked"], 1)
    result["server_cpu_share"] = cpu / result["elapsed_s"]
    result["server_rss_mb"] = after.rss_bytes / 2**20
    if result["acked"] != result["sent"]:
        raise RuntimeError(f"not every request was acknowledged: {result}")
    return result


async def saturate(
    server: Server,
    job: dict[str, Any],
    seconds: float,
    cap: int,
    on_start: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """`CONCURRENCY` requests in flight for `seconds` (at most `cap` requests)."""
    load = {"mode": "closed", "concurrency": CONCURRENCY, "seconds": seconds, "max_requests": cap}
    return await phase(server, {**job, **load}, on_start)


async def at_rate(
    server: Server, job: dict[str, Any], rate: float, seconds: float
) -> dict[str, Any]:
    """`rate` requests per second on a schedule for `seconds`."""
    return await phase(server, {**job, "mode": "open", "rate": rate, "seconds": seconds})


def job(url: str, kind: str, run: str, **fields: Any) -> dict[str, Any]:
    """A load generator job: `run` keeps each run's message ids apart."""
    return {
        "url": url,
        "kind": kind,
        "run": run,
        "conversations": CONVERSATIONS,
        "warmup_s": WARMUP_S,
        **fields,
    }


def flat(prefix: str, result: dict[str, Any]) -> dict[str, float]:
    figures = {
        f"{prefix}_acks_per_s": result["acks_per_s"],
        f"{prefix}_server_cpu_ms_per_request": result["server_cpu_ms_per_request"],
        f"{prefix}_server_cpu_share": result["server_cpu_share"],
        f"{prefix}_generator_cpu_share": result["generator_cpu_share"],
        f"{prefix}_requests": float(result["sent"]),
    }
    for name, value in result["latency_ms"].items():
        figures[f"{prefix}_latency_{name.replace('.', '_')}_ms"] = value
    return figures


def backlog(prefix: str, counts: dict[str, int]) -> dict[str, float]:
    """Outbox items not yet sent (pending or leased), sent, and given up, at the end."""
    return {
        f"{prefix}_backlog_at_end": float(counts["pending"] + counts["in_flight"]),
        f"{prefix}_sent_at_end": float(counts["sent"]),
        f"{prefix}_dead_at_end": float(counts["dead"]),
    }
