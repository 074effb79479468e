"""What the whole-product ingest benches share (`bench.slack_ingest`, `bench.teams_ingest`):
a saturation run and a fixed-rate run of the load generator against one server process,
each charged the server's own CPU from /proc, flattened into `make bench`'s figures."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import proc, profile
from bench.ingest_bodies import TEXTS
from bench.served import Server, loadgen, outbox_counts, salesbot_serve

CONVERSATIONS = 500
CONCURRENCY = 32
WARMUP_S = 2.0
MESSAGES_PER_CONVERSATION = len(TEXTS)
"""Each conversation is the script once (`bench.loadgen.place`): reported with the figures
(`*_messages_per_conversation`), since every figure depends on the mix."""


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
    """A load generator job: `run` keeps each run's message ids apart. Each conversation
    is the script's messages once (`bench.loadgen.place`), so every run sends the same mix
    however long it is: a saturation and the run at half of its rate measure the same
    work."""
    return {
        "url": url,
        "kind": kind,
        "run": run,
        "conversations": CONVERSATIONS,
        "messages_per_conversation": MESSAGES_PER_CONVERSATION,
        "warmup_s": WARMUP_S,
        **fields,
    }


async def saturate_salesbot(
    env: dict[str, str], log: Path, job: Callable[[Server], dict[str, Any]], seconds: float
) -> tuple[dict[str, Any], dict[str, int]]:
    """One saturation of a fresh `salesbot serve` (environment `env`, its store at
    `SALESBOT_DB`, its output to `log`), and that store's outbox by status at the end."""
    product = await Server.start(salesbot_serve(), env, log)
    try:
        result = await saturate(product, job(product), seconds, 20_000)
        return result, outbox_counts(Path(env["SALESBOT_DB"]))
    finally:
        await product.stop()


Run = dict[str, Any]
"""One load generator run's figures (`phase`)."""


@dataclass
class Rounds:
    """Saturations round by round: the baseline (bare bolt, the SDK echo bot; none when it
    is not installed), a fresh salesbot with its outbox at the end, a fresh floor."""

    baseline: list[Run] = field(default_factory=list)
    salesbot: list[tuple[Run, dict[str, int]]] = field(default_factory=list)
    floor: list[Run] = field(default_factory=list)

    @property
    def salesbot_runs(self) -> list[Run]:
        return [run for run, _ in self.salesbot]

    def salesbot_median(self) -> tuple[Run, dict[str, int]]:
        return self.salesbot[median_run(self.salesbot_runs)]

    def figures(self, prefix: str, baseline: str) -> dict[str, float]:
        """Each server's median run (`<prefix>_<server>_saturated_*`, the baseline's named
        `baseline`), salesbot's outbox at the end of its, how many rounds, and the mix."""
        ours, counts = self.salesbot_median()
        results: dict[str, float] = {}
        if self.baseline:
            median = self.baseline[median_run(self.baseline)]
            results.update(flat(f"{prefix}_{baseline}_saturated", median))
        results.update(flat(f"{prefix}_minimal_saturated", self.floor[median_run(self.floor)]))
        results.update(flat(f"{prefix}_salesbot_saturated", ours))
        results.update(backlog(f"{prefix}_salesbot_saturated", counts))
        results[f"{prefix}_rounds"] = float(len(self.salesbot))
        results[f"{prefix}_messages_per_conversation"] = float(MESSAGES_PER_CONVERSATION)
        return results


def spread(runs: list[Run], against: list[Run]) -> tuple[float, float]:
    """The lowest and highest round-by-round ratio of acknowledgements per second."""
    ratios = [
        ours["acks_per_s"] / theirs["acks_per_s"]
        for ours, theirs in zip(runs, against, strict=True)
    ]
    return min(ratios), max(ratios)


async def saturate_rounds(
    rounds: int,
    baseline: Callable[[int], Awaitable[Run]] | None,
    salesbot: Callable[[int], Awaitable[tuple[Run, dict[str, int]]]],
    floor: Callable[[int], Awaitable[Run]],
) -> Rounds:
    """`rounds` times, the baseline (when given), salesbot and the floor in turn, each
    called with the round's number: one saturation of each moves ±25 % from run to run on a
    2-core machine, so the benches report the median run beside the spread."""
    result = Rounds()
    for turn in range(rounds):
        if baseline is not None:
            result.baseline.append(await baseline(turn))
        result.salesbot.append(await salesbot(turn))
        result.floor.append(await floor(turn))
    return result


def median_run(runs: list[dict[str, Any]]) -> int:
    """The index of the run with the median acknowledgements per second (of an even number,
    the lower of the two middle ones): its figures are reported together, as one run's."""
    order = sorted(range(len(runs)), key=lambda index: runs[index]["acks_per_s"])
    return order[(len(order) - 1) // 2]


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


async def profiled(
    server: Server, job: dict[str, Any], seconds: float, out: Path, what: str
) -> None:
    """One saturation of `server` (stopped afterwards) sampled by py-spy while it is
    measured: where the server's time goes to `out`, py-spy's stacks beside it (`.raw`, for
    a flame graph)."""
    raw = out.with_suffix(".pyspy")
    sampler: list[subprocess.Popen[bytes]] = []
    try:
        result = await saturate(
            server,
            job,
            seconds,
            cap=20_000,
            on_start=lambda: sampler.append(profile.record(server.pid, seconds, raw)),
        )
    finally:
        for process in sampler:
            await asyncio.to_thread(process.wait)
        await server.stop()
    header = (
        f"salesbot serve sampled by py-spy during a {what} saturation ({CONCURRENCY} in "
        f"flight, {result['sent']} requests in {result['elapsed_s']:.1f} s, "
        f"{result['acks_per_s']:.0f} acks/s while sampled, server CPU "
        f"{result['server_cpu_ms_per_request']:.1f} ms per request), "
        f"{time.strftime('%Y-%m-%d %H:%M')}, load average {proc.load_average()[0]:.1f}\n"
    )
    text = raw.read_text() if raw.exists() else ""
    raw.unlink(missing_ok=True)
    out.with_suffix(".raw").write_text(text)
    out.write_text(header + profile.report(text, product_top=30))
