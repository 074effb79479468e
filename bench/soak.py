"""Soak (issue 18, item 7): `salesbot serve` held at half of its maximum for minutes, its
resident memory and open file descriptors sampled as it goes.

The whole product as in `bench.slack_ingest` (a real `salesbot serve` subprocess, SQLite
file, the tests' fake Slack Web API so the outbox sends, the load generator in a process of
its own, signed `event_callback` bodies). First a short saturation run measures the
maximum (unless `--rate` is given); then the open-loop generator sends at half of it for
`--minutes`, over 500 lanes of conversations of 10 messages each, the lanes out of phase
(`bench.loadgen.place`: new leads keep arriving at a steady pace, as in production, rather
than 500 threads growing without end or a block of 500 starting at once).
Every `--every` seconds: the server's RSS and open file descriptors (/proc) — also by
kind: connections accepted from the generator, its own outbound connections (the fake Web
API), and the rest (`bench.proc.fd_kinds`) — and, from its own `/metrics`, its state cache
(`salesbot_state_cache_bytes` and `_entries`) and its dedupe view
(`salesbot_dedupe_view_entries`: delivery ids, up to 200,000 at about 170 bytes each, so
RSS grows by up to ≈ 33 MB while it fills). The generator opens its 64 connections before
the run and keeps them: the descriptors then measure the server. The server's outbound
pool is aiohttp's, bounded at 100 connections; it grows to what the sends' concurrency
needs and keeps them alive, so "the rest" is the figure a leak would move.

Reported: first, last and maximum of each, and whether every sample after the warm-up
(the first fifth of the run, at least a minute) stays within ±10 % of the first sample
after it. The state cache is bounded (`SALESBOT_STATE_CACHE_MB`, 256 MiB by default), so
RSS may legitimately grow while it fills; its own figures say how much of the growth
it is.

    python -m bench.soak [--minutes 10] [--rate R] [--every 5] [--samples FILE] [--cache-mb N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import ingest, proc
from bench.ingest import saturate
from bench.served import Server, loadgen, outbox_counts, salesbot_serve
from bench.slack_ingest import SECRET, TOKEN, _slack_env
from tests.fakes.slack_api import FakeSlackApi

MESSAGES_PER_CONVERSATION = 10
TOLERANCE = 0.10
CONNECTIONS = 64
"""The generator's connections, all opened before the run and held to the end (a pool
that grows during a latency spike would step the server's descriptors with it)."""


GAUGES = {
    "state_cache_bytes": "salesbot_state_cache_bytes",
    "state_cache_entries": "salesbot_state_cache_entries",
    "dedupe_entries": "salesbot_dedupe_view_entries",
}
"""The server's own gauges the soak samples: what its bounded memory holds."""


def read_gauges(text: str) -> dict[str, float]:
    """`GAUGES` from a Prometheus exposition (NaN for one that is missing)."""
    found = {}
    for key, name in GAUGES.items():
        match = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.MULTILINE)
        found[key] = float(match.group(1)) if match else float("nan")
    return found


async def _gauges(session: aiohttp.ClientSession, server: Server) -> dict[str, float]:
    async with session.get(f"{server.base_url}/metrics") as response:
        return read_gauges(await response.text())


def verdict(values: list[float], warm: int) -> tuple[bool, float]:
    """(every sample after the warm-up within ±10 % of the first one after it, the largest
    deviation from it as a fraction)."""
    after = values[warm:]
    if not after:
        return False, float("nan")
    reference = after[0]
    deviation = max(abs(v - reference) / reference for v in after) if reference else 0.0
    return proc.within(after, reference, TOLERANCE), deviation


async def measure(
    minutes: float = 10.0,
    rate: float | None = None,
    every: float = 5.0,
    samples: Path | None = None,
    cache_mb: int | None = None,
) -> dict[str, float]:
    """`cache_mb`: the server's `SALESBOT_STATE_CACHE_MB` (default: the product's), small
    to see whether memory is flat once the state cache is full."""
    results: dict[str, float] = {"soak_load_average_1m_start": proc.load_average()[0]}
    seconds = minutes * 60
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        db = directory / "soak.db"
        async with FakeSlackApi(token=TOKEN) as api, aiohttp.ClientSession() as session:
            env = _slack_env(db, api)
            if cache_mb is not None:
                env["SALESBOT_STATE_CACHE_MB"] = str(cache_mb)
                results["soak_state_cache_bound_mb"] = float(cache_mb)
            server = await Server.start(salesbot_serve(), env, directory / "s.log")
            try:
                url = f"{server.base_url}/slack/events"
                port = int(server.base_url.rsplit(":", 1)[1])
                if rate is None:
                    job = ingest.job(url, "slack", "s", secret=SECRET)
                    peak = await saturate(server, job, 8.0, cap=20_000)
                    results["soak_saturated_acks_per_s"] = peak["acks_per_s"]
                    rate = peak["acks_per_s"] / 2
                results["soak_rate_per_s"] = rate
                job = ingest.job(
                    url,
                    "slack",
                    "k",
                    secret=SECRET,
                    mode="open",
                    rate=rate,
                    seconds=seconds,
                    warmup_s=0,
                    messages_per_conversation=MESSAGES_PER_CONVERSATION,
                    connections=CONNECTIONS,
                    preopen=CONNECTIONS,
                )
                running = asyncio.create_task(loadgen(job))
                start = time.perf_counter()
                while not running.done():
                    taken = server.sample()
                    kinds = proc.fd_kinds(server.pid, port)
                    gauges = await _gauges(session, server)
                    rows.append(
                        {
                            "t_s": time.perf_counter() - start,
                            "rss_mb": taken.rss_bytes / 2**20,
                            "fds": float(taken.fds),
                            "fds_accepted": float(kinds["accepted"]),
                            "fds_outbound": float(kinds["outbound"]),
                            "fds_other": float(kinds["other"]),
                            "cpu_s": taken.cpu_s,
                            "state_cache_mb": gauges["state_cache_bytes"] / 2**20,
                            "state_cache_entries": gauges["state_cache_entries"],
                            "dedupe_entries": gauges["dedupe_entries"],
                            "load_1m": proc.load_average()[0],
                        }
                    )
                    await asyncio.wait({running}, timeout=every)
                result, _, _ = running.result()
            finally:
                counts = outbox_counts(db)
                await server.stop()
    results["soak_minutes"] = minutes
    results["soak_requests"] = float(result["sent"])
    results["soak_acked"] = float(result["acked"])
    results["soak_acks_per_s"] = result["acks_per_s"]
    for key, value in result["latency_ms"].items():
        results[f"soak_latency_{key.replace('.', '_')}_ms"] = value
    results["soak_seconds_with_a_request_over_100ms"] = float(len(result["slow_seconds"]))
    results["soak_backlog_at_end"] = float(counts["pending"] + counts["in_flight"])
    results["soak_sent_at_end"] = float(counts["sent"])
    results["soak_dead_at_end"] = float(counts["dead"])
    warm = next(
        (i for i, row in enumerate(rows) if row["t_s"] >= max(60.0, seconds / 5)), len(rows)
    )
    results["soak_samples"] = float(len(rows))
    results["soak_warmup_samples"] = float(warm)
    for key in (
        "rss_mb",
        "fds",
        "fds_accepted",
        "fds_outbound",
        "fds_other",
        "state_cache_mb",
        "state_cache_entries",
        "dedupe_entries",
    ):
        values = [row[key] for row in rows]
        results[f"soak_{key}_first"] = values[0]
        results[f"soak_{key}_after_warmup"] = values[warm] if warm < len(values) else float("nan")
        results[f"soak_{key}_last"] = values[-1]
        results[f"soak_{key}_max"] = max(values)
        if key in ("rss_mb", "fds", "fds_other"):
            flat, deviation = verdict(values, warm)
            results[f"soak_{key}_flat_within_10pct"] = float(flat)
            results[f"soak_{key}_max_deviation_after_warmup"] = deviation
    if len(rows) > 1:
        results["soak_server_cpu_share"] = (rows[-1]["cpu_s"] - rows[0]["cpu_s"]) / (
            rows[-1]["t_s"] - rows[0]["t_s"]
        )
    results["soak_load_average_1m_end"] = proc.load_average()[0]
    if samples is not None:
        late = {"worst": result["worst"], "slow_seconds": result["slow_seconds"]}
        samples.write_text("".join(json.dumps(row) + "\n" for row in [*rows, late]))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="requests/s (default: half the measured max)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument(
        "--samples",
        type=Path,
        metavar="FILE",
        help="every sample, JSON lines; the last line the slowest requests and slow seconds",
    )
    parser.add_argument("--cache-mb", type=int, help="the server's SALESBOT_STATE_CACHE_MB")
    options = parser.parse_args(argv)
    figures = asyncio.run(
        measure(options.minutes, options.rate, options.every, options.samples, options.cache_mb)
    )
    for key, value in figures.items():
        print(f"{key:48} {value:14,.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
