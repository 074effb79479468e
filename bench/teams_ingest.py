"""Teams ingest, whole product (issue 18, item 2), beside a Microsoft 365 Agents SDK echo bot,
in one run.

`salesbot serve` runs as a real subprocess (SQLite file in a temporary directory, Teams in
its unauthenticated local mode, replies sent by the outbox to the tests' fake Bot Framework
connector on 127.0.0.1). Beside it, the Agents SDK's own `CloudAdapter` sample shape — an
`AgentApplication` whose message handler echoes the text with `send_activity`, served by
aiohttp through `start_agent_process` behind the SDK's `jwt_authorization_middleware`,
anonymous requests allowed — replying to the same fake connector. The load generator
(`bench.loadgen`, its own process) sends the same 1:1 `message` activities (Microsoft's
fixture shape) spread over 500 conversations. Measured as for Slack (`bench.slack_ingest`):
saturation (acks/s, server CPU per request), latency at half of salesbot's maximum,
salesbot's outbox backlog at the end.

Beside both, the floor (`bench.minimal_teams`): plain aiohttp, `decide`, a raw durable
commit before the acknowledgement and the reply posted — the least any product that
decides, stores and answers must do, without the SDK or salesbot's guarantees. Its ratio to
the SDK bounds what any such product can reach against the SDK on these cores; salesbot's
ratio to it is what salesbot's guarantees and machinery cost.

Token checking is off on both sides alike. With it on, the SDK fetches its signing keys
from Microsoft's fixed addresses (`BOTFRAMEWORK_JWKS_URIS`, login.microsoftonline.com; no
setting points it at a local JWKS, as our `TEAMS_OPENID_METADATA_URL` does for salesbot) and
sends its echo with an MSAL token from Entra ID: neither works on loopback without patching
the SDK's internals. The token check alone is measured in `bench.endpoints`
(`teams_token_validations_per_s`).

Note what an acknowledgement means on each side: the echo bot answers 202 once its turn
is over, i.e. after its reply was posted to the connector; salesbot answers 200 once the
decision is committed, and its outbox posts the reply afterwards (paced per conversation).

The SDK is in the `bench` extra only (`pip install -e '.[bench]'`); without it the
baseline is skipped with one line and salesbot is measured alone.

Saturation runs in rounds (`ROUNDS`), the three servers in turn within each: the
saturated figures are each server's median run, and the round-by-round ratio's lowest and
highest are reported beside them. The half-rate runs are at half of salesbot's median.

    python -m bench.teams_ingest [--seconds 8] [--rate-seconds 10] [--rounds 3] [--profile FILE]

`--profile FILE --profile-only` runs one salesbot saturation sampled by py-spy (the `bench`
extra) and writes where the server's time goes, as `bench.slack_ingest` does.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
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
from tests.fakes.teams_connector import FakeConnector

TENANT = "tenant-0001"  # salesbot's home tenant; the fixture's sender is in another one
SDK = "microsoft_agents.hosting.aiohttp"

ECHO_BOT = """
import asyncio, os
from aiohttp import web
from microsoft_agents.activity import load_configuration_from_env
from microsoft_agents.authentication.msal import MsalConnectionManager
from microsoft_agents.hosting.aiohttp import (
    CloudAdapter, jwt_authorization_middleware, start_agent_process,
)
from microsoft_agents.hosting.core import AgentApplication, MemoryStorage, TurnContext, TurnState

CONFIG = load_configuration_from_env(os.environ)
CONNECTION_MANAGER = MsalConnectionManager(**CONFIG)
ADAPTER = CloudAdapter(connection_manager=CONNECTION_MANAGER)
AGENT_APP = AgentApplication[TurnState](
    storage=MemoryStorage(), adapter=ADAPTER, connection_manager=CONNECTION_MANAGER
)

@AGENT_APP.activity("message")
async def on_message(context: TurnContext, _state: TurnState):
    await context.send_activity(f"you said: {context.activity.text}")

async def messages(request):
    return await start_agent_process(request, request.app["agent_app"], request.app["adapter"])

async def main():
    app = web.Application(middlewares=[jwt_authorization_middleware])
    app.router.add_post("/api/messages", messages)
    app["agent_configuration"] = CONNECTION_MANAGER.get_default_connection_configuration()
    app["agent_app"] = AGENT_APP
    app["adapter"] = ADAPTER
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}/", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

ECHO_ENV = {"CONNECTIONS__SERVICE_CONNECTION__SETTINGS__ANONYMOUS_ALLOWED": "true"}
"""The SDK's configuration from the environment, as its samples read it: one service
connection without a client id, anonymous requests allowed (token checking off)."""


def sdk_installed() -> bool:
    return importlib.util.find_spec(SDK) is not None


def _teams_env(db: Path) -> dict[str, str]:
    return {
        **base_env(db),
        "TEAMS_ALLOW_UNAUTHENTICATED": "true",
        "TEAMS_APP_TENANT_ID": TENANT,
    }


def _job(server: Server, run: str, connector: FakeConnector) -> dict[str, Any]:
    url = f"{server.base_url}/api/messages"
    return ingest.job(url, "teams", run, service_url=connector.base_url)


async def _saturate_sdk(
    echo: Server, connector: FakeConnector, seconds: float, turn: int
) -> dict[str, Any]:
    return await saturate(echo, _job(echo, f"a{turn}", connector), seconds, 60_000)


ROUNDS = 3
"""Saturation rounds, each the SDK echo bot, a fresh salesbot and a fresh floor in turn: one
saturation of each moved ±25 % from run to run on the 2-core machine, so the figures are the
median run's, beside the spread of the round-by-round ratio."""


async def measure(
    seconds: float = 8.0, rate_seconds: float = 10.0, rounds: int = ROUNDS
) -> dict[str, float]:
    results: dict[str, float] = {"teams_ingest_load_average_1m_start": proc.load_average()[0]}
    with_sdk = sdk_installed()
    if not with_sdk:
        print(
            f"teams_ingest: {SDK} is not installed (pip install -e '.[bench]'): "
            "the Agents SDK echo bot baseline is skipped",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        async with FakeConnector(tenant_id=TENANT) as connector:
            echo = None
            if with_sdk:
                env = {"PATH": base_env(directory / "unused.db")["PATH"], **ECHO_ENV}
                echo = await Server.start(
                    [sys.executable, "-c", ECHO_BOT], env, directory / "echo.log"
                )
            try:
                runs = await saturate_rounds(
                    rounds,
                    None if echo is None else partial(_saturate_sdk, echo, connector, seconds),
                    lambda turn: saturate_salesbot(
                        _teams_env(directory / f"saturation-{turn}.db"),
                        directory / f"serve-{turn}.log",
                        partial(_job, run=f"b{turn}", connector=connector),
                        seconds,
                    ),
                    lambda turn: _minimal(connector, directory / f"minimal-{turn}", None, seconds),
                )
                results.update(runs.figures("teams_ingest", "sdk"))
                if runs.baseline:
                    lowest, highest = spread(runs.salesbot_runs, runs.baseline)
                    results["teams_ingest_throughput_vs_sdk_lowest"] = lowest
                    results["teams_ingest_throughput_vs_sdk_highest"] = highest
                ours, _ = runs.salesbot_median()
                rate = ours["acks_per_s"] / 2
                results["teams_ingest_half_rate_per_s"] = rate
                db = directory / "half.db"
                product = await Server.start(
                    salesbot_serve(), _teams_env(db), directory / "serve-half.log"
                )
                try:
                    half = await at_rate(product, _job(product, "c", connector), rate, rate_seconds)
                finally:
                    half_counts = outbox_counts(db)
                    await product.stop()
                results.update(flat("teams_ingest_salesbot_half", half))
                results.update(backlog("teams_ingest_salesbot_half", half_counts))
                floor_half = await _minimal(
                    connector, directory / "minimal-half", rate, rate_seconds
                )
                results.update(flat("teams_ingest_minimal_half", floor_half))
                if echo is not None:
                    bare_half = await at_rate(echo, _job(echo, "d", connector), rate, rate_seconds)
                    results.update(flat("teams_ingest_sdk_half", bare_half))
            finally:
                if echo is not None:
                    await echo.stop()
    results["teams_ingest_load_average_1m_end"] = proc.load_average()[0]
    results.update(ratios(results))
    return results


async def _minimal(
    connector: FakeConnector, directory: Path, rate: float | None, seconds: float
) -> dict[str, Any]:
    """The least a product must do per activity (`bench.minimal_teams`: aiohttp, `decide`,
    a raw durable commit, the reply posted), on a database of its own in `directory`."""
    env = base_env(directory / "minimal.db")
    return await floor.measure(
        "bench.minimal_teams",
        env,
        lambda server, run: _job(server, run, connector),
        directory,
        rate,
        seconds,
    )


def ratios(results: dict[str, float]) -> dict[str, float]:
    """The issue's target: throughput ≥ 1.0× the Agents SDK echo bot; and beside it, the
    floor (`bench.minimal_teams`) against the SDK and salesbot against the floor."""
    floor = {
        "teams_ingest_salesbot_vs_minimal": results["teams_ingest_salesbot_saturated_acks_per_s"]
        / results["teams_ingest_minimal_saturated_acks_per_s"],
        "teams_ingest_cpu_per_request_vs_minimal": results[
            "teams_ingest_salesbot_saturated_server_cpu_ms_per_request"
        ]
        / results["teams_ingest_minimal_saturated_server_cpu_ms_per_request"],
        "teams_ingest_half_p99_vs_minimal": results["teams_ingest_salesbot_half_latency_p99_ms"]
        / results["teams_ingest_minimal_half_latency_p99_ms"],
    }
    if "teams_ingest_sdk_saturated_acks_per_s" not in results:
        return floor
    return {
        **floor,
        "teams_ingest_minimal_vs_sdk": results["teams_ingest_minimal_saturated_acks_per_s"]
        / results["teams_ingest_sdk_saturated_acks_per_s"],
        "teams_ingest_throughput_vs_sdk": results["teams_ingest_salesbot_saturated_acks_per_s"]
        / results["teams_ingest_sdk_saturated_acks_per_s"],
        "teams_ingest_cpu_per_request_vs_sdk": results[
            "teams_ingest_salesbot_saturated_server_cpu_ms_per_request"
        ]
        / results["teams_ingest_sdk_saturated_server_cpu_ms_per_request"],
        "teams_ingest_half_p99_vs_sdk": results["teams_ingest_salesbot_half_latency_p99_ms"]
        / results["teams_ingest_sdk_half_latency_p99_ms"],
    }


async def profile_only(seconds: float, out: Path) -> None:
    """One saturation of a fresh salesbot, sampled by py-spy while it is measured."""
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        async with FakeConnector(tenant_id=TENANT) as connector:
            product = await Server.start(
                salesbot_serve(), _teams_env(directory / "p.db"), directory / "prof.log"
            )
            await ingest.profiled(product, _job(product, "p", connector), seconds, out, "Teams")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.teams_ingest")
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
    figures = asyncio.run(measure(options.seconds, options.rate_seconds, options.rounds))
    for key, value in figures.items():
        print(f"{key:58} {value:12,.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
