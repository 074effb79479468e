"""Slack ingest, whole product (issue 18, item 1), beside a bare slack-bolt app, in one run.

`salesbot serve` runs as a real subprocess (SQLite file in a temporary directory, the fake
Slack Web API of the tests on 127.0.0.1, so the outbox really sends: verify, dedupe,
decide, durable commit, outbox), and beside it a bare slack-bolt `AsyncApp` that only
acknowledges (its signature check on, its client pointed at the same fake, served by
aiohttp as `AsyncApp.web_app()` serves it). The load generator is a third process
(`bench.loadgen`) sending the same signed `event_callback` bodies (bolt-python's fixture
shape) spread over 500 conversations, each a thread in a channel of its own.

Measured, each server charged its own CPU from /proc:
1. saturation (a closed loop, 32 requests in flight): acknowledgements per second and
   server CPU per request, bare bolt, then salesbot, then the floor (`bench.minimal_bolt`:
   bolt plus the least any product must do per message — `decide`, a raw durable commit,
   the reply posted), whose ratio to bare bolt is the ceiling of any such product's;
2. at half of salesbot's maximum (an open loop, on a schedule): ack latency p50/p99/p99.9,
   salesbot on a fresh process and store (so the saturation run's backlog does not drain
   into it), then bare bolt at the same rate — what the generator and the loopback add —
   and a fresh floor at the same rate — what deciding, storing and answering add;
3. the outbox backlog (items not yet sent) when each salesbot run ends: replies are paced
   one per second per channel, so acknowledgements, not sends, are the throughput.

Saturation runs in rounds (`ROUNDS`), the three servers in turn within each: the
saturated figures are each server's median run, and the round-by-round ratio of salesbot to
the floor is reported with its lowest and highest. The half-rate runs are at half of
salesbot's median.

    python -m bench.slack_ingest [--seconds 8] [--rate-seconds 10] [--rounds 3] [--profile FILE]

`--profile FILE` runs one more salesbot saturation sampled by py-spy (the `bench` extra;
every thread, during the measured part only) and writes its top 10 functions by cumulative
share of the samples to FILE (`bench.profile`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from bench import floor, ingest, proc
from bench.ingest import (
    at_rate,
    backlog,
    flat,
    saturate,
    saturate_rounds,
    saturate_salesbot,
    spread,
)
from bench.served import Server, base_env, outbox_counts, salesbot_serve
from tests.fakes.slack_api import FakeSlackApi

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-bench"

BARE_BOLT = """
import asyncio, os
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

app = AsyncApp(
    client=AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]),
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
)

@app.event("message")
async def acknowledge_only():
    pass

async def main():
    runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}/", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _slack_env(db: Path, api: FakeSlackApi) -> dict[str, str]:
    return {
        **base_env(db),
        "SLACK_BOT_TOKEN": api.token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": api.base_url,
    }


def _job(server: Server, run: str) -> dict[str, Any]:
    return ingest.job(f"{server.base_url}/slack/events", "slack", run, secret=SECRET)


ROUNDS = 3
"""Saturation rounds, each bare bolt, a fresh salesbot and a fresh floor in turn: one
saturation of each moved ±25 % from run to run on the 2-core machine, so the figures are the
median run's, beside the spread of the round-by-round ratios."""


async def measure(
    seconds: float = 8.0,
    rate_seconds: float = 10.0,
    profile: Path | None = None,
    rounds: int = ROUNDS,
) -> dict[str, float]:
    results: dict[str, float] = {"slack_ingest_load_average_1m_start": proc.load_average()[0]}
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        async with FakeSlackApi(token=TOKEN) as api:
            bolt = await Server.start(
                [sys.executable, "-c", BARE_BOLT],
                _slack_env(directory / "unused.db", api),
                directory / "bolt.log",
            )
            try:
                runs = await saturate_rounds(
                    rounds,
                    lambda turn: saturate(bolt, _job(bolt, f"a{turn}"), seconds, 60_000),
                    lambda turn: saturate_salesbot(
                        _slack_env(directory / f"saturation-{turn}.db", api),
                        directory / f"serve-{turn}.log",
                        partial(_job, run=f"b{turn}"),
                        seconds,
                    ),
                    lambda turn: _minimal(api, directory / f"minimal-{turn}", None, seconds),
                )
                results.update(runs.figures("slack_ingest", "bolt"))
                lowest, highest = spread(runs.salesbot_runs, runs.floor)
                results["slack_ingest_salesbot_vs_minimal_lowest"] = lowest
                results["slack_ingest_salesbot_vs_minimal_highest"] = highest
                ours, _ = runs.salesbot_median()
                rate = ours["acks_per_s"] / 2
                results["slack_ingest_half_rate_per_s"] = rate
                db = directory / "half.db"
                product = await Server.start(
                    salesbot_serve(), _slack_env(db, api), directory / "serve-half.log"
                )
                try:
                    ours_half = await at_rate(product, _job(product, "c"), rate, rate_seconds)
                finally:
                    half_counts = outbox_counts(db)
                    await product.stop()
                bare_half = await at_rate(bolt, _job(bolt, "d"), rate, rate_seconds)
                floor_half = await _minimal(api, directory / "minimal-half", rate, rate_seconds)
                results.update(flat("slack_ingest_salesbot_half", ours_half))
                results.update(flat("slack_ingest_minimal_half", floor_half))
                results.update(flat("slack_ingest_bolt_half", bare_half))
                results.update(backlog("slack_ingest_salesbot_half", half_counts))
                if profile is not None:
                    await _profile(api, directory, seconds, profile)
            finally:
                await bolt.stop()
    results["slack_ingest_load_average_1m_end"] = proc.load_average()[0]
    results.update(ratios(results))
    return results


async def _minimal(
    api: FakeSlackApi, directory: Path, rate: float | None, seconds: float
) -> dict[str, Any]:
    """The least a product must do per message (`bench.minimal_bolt`: bolt, `decide`, a raw
    durable commit, the reply posted), on a database of its own in `directory`."""
    env = _slack_env(directory / "minimal.db", api)
    return await floor.measure("bench.minimal_bolt", env, _job, directory, rate, seconds)


def ratios(results: dict[str, float]) -> dict[str, float]:
    """The issue's targets: throughput ≥ 0.6× bare bolt; p99 ≤ 10 ms, p99.9 ≤ 30 ms. Beside
    them, the ceiling any product that decides, stores and answers reaches on this machine
    (`bench.minimal_bolt` against bare bolt), and salesbot against that floor."""
    saturated = "slack_ingest_{}_saturated_acks_per_s".format
    return {
        "slack_ingest_throughput_vs_bolt": results[saturated("salesbot")]
        / results[saturated("bolt")],
        "slack_ingest_minimal_vs_bolt": results[saturated("minimal")] / results[saturated("bolt")],
        "slack_ingest_salesbot_vs_minimal": results[saturated("salesbot")]
        / results[saturated("minimal")],
        "slack_ingest_cpu_per_request_vs_minimal": results[
            "slack_ingest_salesbot_saturated_server_cpu_ms_per_request"
        ]
        / results["slack_ingest_minimal_saturated_server_cpu_ms_per_request"],
        "slack_ingest_cpu_per_request_vs_bolt": results[
            "slack_ingest_salesbot_saturated_server_cpu_ms_per_request"
        ]
        / results["slack_ingest_bolt_saturated_server_cpu_ms_per_request"],
        "slack_ingest_half_p99_vs_bolt": results["slack_ingest_salesbot_half_latency_p99_ms"]
        / results["slack_ingest_bolt_half_latency_p99_ms"],
        "slack_ingest_half_p99_vs_minimal": results["slack_ingest_salesbot_half_latency_p99_ms"]
        / results["slack_ingest_minimal_half_latency_p99_ms"],
    }


async def _profile(api: FakeSlackApi, directory: Path, seconds: float, out: Path) -> None:
    """One more saturation of a fresh salesbot, sampled by py-spy while it is measured."""
    db = directory / "profiled.db"
    product = await Server.start(salesbot_serve(), _slack_env(db, api), directory / "prof.log")
    await ingest.profiled(product, _job(product, "p"), seconds, out, "Slack")


async def profile_only(seconds: float, out: Path) -> None:
    with tempfile.TemporaryDirectory() as name:
        async with FakeSlackApi(token=TOKEN) as api:
            await _profile(api, Path(name), seconds, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slack_ingest")
    parser.add_argument("--seconds", type=float, default=8.0, help="saturation runs (s)")
    parser.add_argument("--rate-seconds", type=float, default=10.0, help="half-rate runs (s)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="saturation rounds")
    parser.add_argument("--profile", type=Path, metavar="FILE")
    parser.add_argument("--profile-only", action="store_true", help="only the profiled run")
    options = parser.parse_args(argv)
    if options.profile_only:
        if options.profile is None:
            parser.error("--profile-only needs --profile FILE")
        asyncio.run(profile_only(options.seconds, options.profile))
        return 0
    if options.rounds < 1:
        parser.error("--rounds must be at least 1")
    figures = asyncio.run(
        measure(options.seconds, options.rate_seconds, options.profile, options.rounds)
    )
    for key, value in figures.items():
        print(f"{key:58} {value:12,.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
