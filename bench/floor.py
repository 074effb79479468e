"""What the two floors under the ingest benches share (`bench.minimal_bolt` for Slack,
`bench.minimal_teams` for Teams): the store they commit to, the client they answer with,
how they are served, and how the benches run them. Each floor is only its platform's app."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.append import RawGroupCommit
from bench.ingest import at_rate, saturate
from bench.served import Server
from storage.sqlite import SqliteStore

CONNECTIONS = 16
"""Connections to the platform's API at most, as salesbot's senders keep (without a pool of
their own, the platforms' clients open a connection per call)."""

App = Callable[[RawGroupCommit, aiohttp.ClientSession], web.Application]
"""A floor's app, given the raw writer on the store and the pooled client session."""


async def serve(app: App) -> None:
    """Serve `app` on 127.0.0.1 (a free port, printed as the first line, as
    `bench.served.Server` reads it) over the product's schema at `SALESBOT_DB`, written by
    the raw group-commit loop of `bench.append`; until cancelled."""
    path = Path(os.environ["SALESBOT_DB"])
    store = await SqliteStore.open(path)  # the product's schema; then the raw loop writes
    await store.close()
    writer = RawGroupCommit(path)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS))
    runner = web.AppRunner(app(writer, session), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}/", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await session.close()
        writer.close()


async def measure(
    module: str,
    env: dict[str, str],
    job: Callable[[Server, str], dict[str, Any]],
    directory: Path,
    rate: float | None,
    seconds: float,
) -> dict[str, Any]:
    """A fresh process of the floor `module` (environment `env`, its files in `directory`),
    saturated (`rate` None) or at `rate` requests per second, with the load `job` makes for
    it and a run name."""
    directory.mkdir()
    server = await Server.start([sys.executable, "-m", module], env, directory / "floor.log")
    try:
        if rate is None:
            return await saturate(server, job(server, "m"), seconds, 20_000)
        return await at_rate(server, job(server, "n"), rate, seconds)
    finally:
        await server.stop()
