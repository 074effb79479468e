"""Capacity: the highest rate one `salesbot serve` sustains with every reply sent, against
the saturated rate of acknowledgements the ingest benches report (issue 18).

Why. A saturation counts acknowledgements: its commits share transactions and the outbox's
replies, paced per channel, fall behind. At a steady rate every request is alone in its
transaction and every reply is sent, so a request costs about twice the CPU
(docs/benchmarks.md, "2026-12-07"). "Half of the maximum" is then most of what the machine
sustains, and the soak's tail measures capacity, not a stall. This bench measures the
sustained rate itself.

How. First a saturation of a fresh server (the Slack ingest bench's, 8 s) gives the
acknowledgement maximum M. Then bisection over [0, M]: each probe is a fresh server and store
loaded on a schedule (`bench.loadgen`'s open loop, 2 s of warm-up, then `--seconds`). A
rate holds when every request was acknowledged, the p99 acknowledgement stayed within
`--p99-ms` (100 ms by default: Slack waits 3 s, a person notices much less), and the outbox
held at most `BACKLOG_S` seconds of that rate at the end (its replies keep up). The
reported rate is the highest that held.

    python -m bench.capacity [--seconds 20] [--steps 5] [--p99-ms 100]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from bench import proc
from bench.ingest import at_rate, saturate_salesbot
from bench.served import Server, outbox_counts, salesbot_serve
from bench.slack_ingest import TOKEN, _job, _slack_env
from tests.fakes.slack_api import FakeSlackApi

P99_MS = 100.0
BACKLOG_S = 2.0
"""At the end of a probe, the outbox may hold at most this many seconds of its rate."""
STEPS = 5
"""Bisection steps: the answer is within the saturated rate ÷ 2^STEPS of the true one."""


def holds(result: Mapping[str, Any], unsent: int, rate: float, p99_ms: float) -> bool:
    """Whether a probe at `rate` held: every request acknowledged, the p99 within `p99_ms`,
    and no more than `BACKLOG_S` seconds of replies still unsent (`unsent`) at its end."""
    return (
        result["acked"] == result["sent"]
        and result["latency_ms"]["p99"] <= p99_ms
        and unsent <= rate * BACKLOG_S
    )


async def search(
    probe: Callable[[float], Awaitable[bool]], high: float, steps: int = STEPS
) -> tuple[float, list[tuple[float, bool]]]:
    """Bisection over [0, `high`]: the highest rate `probe` found to hold (0 when none
    did), and every rate tried with its outcome, in order."""
    low, tried = 0.0, []
    for _ in range(steps):
        middle = (low + high) / 2
        held = await probe(middle)
        tried.append((middle, held))
        low, high = (middle, high) if held else (low, middle)
    return low, tried


async def measure(
    seconds: float = 20.0, steps: int = STEPS, p99_ms: float = P99_MS
) -> dict[str, float]:
    results: dict[str, float] = {"capacity_load_average_1m_start": proc.load_average()[0]}
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        async with FakeSlackApi(token=TOKEN) as api:
            saturated, _ = await saturate_salesbot(
                _slack_env(directory / "saturation.db", api),
                directory / "saturation.log",
                partial(_job, run="s"),
                8.0,
            )
            maximum = saturated["acks_per_s"]
            probes: list[dict[str, float]] = []

            async def probe(rate: float) -> bool:
                n = len(probes)
                db = directory / f"probe-{n}.db"
                server = await Server.start(
                    salesbot_serve(), _slack_env(db, api), directory / f"probe-{n}.log"
                )
                result: dict[str, Any] | None
                try:
                    result = await at_rate(server, _job(server, f"p{n}"), rate, seconds)
                except RuntimeError:  # not every request was acknowledged: it did not hold
                    result = None
                finally:
                    counts = outbox_counts(db)
                    await server.stop()
                unsent = counts["pending"] + counts["in_flight"]
                held = result is not None and holds(result, unsent, rate, p99_ms)
                probes.append(
                    {
                        "rate_per_s": rate,
                        "held": float(held),
                        "p99_ms": result["latency_ms"]["p99"] if result else math.inf,
                        "unsent_at_end": float(unsent),
                        "server_cpu_ms_per_request": (
                            result["server_cpu_ms_per_request"] if result else math.nan
                        ),
                    }
                )
                return held

            sustained, _ = await search(probe, maximum, steps)
    results["capacity_saturated_acks_per_s"] = maximum
    results["capacity_sustained_per_s"] = sustained
    results["capacity_sustained_vs_saturated"] = sustained / maximum if maximum else 0.0
    results["capacity_p99_bound_ms"] = p99_ms
    for n, figures in enumerate(probes, start=1):
        results.update({f"capacity_probe_{n}_{key}": value for key, value in figures.items()})
    results["capacity_load_average_1m_end"] = proc.load_average()[0]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity")
    parser.add_argument("--seconds", type=float, default=20.0, help="each probe's measured part")
    parser.add_argument("--steps", type=int, default=STEPS, help="bisection steps")
    parser.add_argument("--p99-ms", type=float, default=P99_MS, help="the p99 a rate must keep")
    options = parser.parse_args(argv)
    if options.seconds <= 0 or options.p99_ms <= 0:
        parser.error("--seconds and --p99-ms must be positive")
    if options.steps < 1:
        parser.error("--steps must be at least 1")
    figures = asyncio.run(measure(options.seconds, options.steps, options.p99_ms))
    for key, value in figures.items():
        print(f"{key:48} {value:14,.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
