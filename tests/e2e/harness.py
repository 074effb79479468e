"""The bot as `salesbot serve` builds it, in-process, talking to a fake Slack on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.slack.sender import make_client
from bot.policy_loader import load_policy
from bot.server import build_app
from bot.service import build_service
from bot.settings import Settings
from domain.policy import Policy
from storage.memory import MemoryStore
from storage.ports import Store
from tests.fakes.slack_api import FakeSlackApi


@asynccontextmanager
async def serving(
    api: FakeSlackApi | None,
    settings: Settings,
    store: Store | None = None,
    *,
    policy: Policy | None = None,
    **build: Any,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """Wall-clock time (signatures and tokens are checked against it), strictly increasing;
    no pacing, so tests never wait a second per Slack message. `api` None: no Slack.
    `policy`: the default policy unless given. `build` goes to `build_service` (e.g.
    `teams_tokens`)."""
    ticks = itertools.count()
    if api is not None:
        build["slack_client"] = make_client(api.token, api.base_url, timeout_s=2)
    service = build_service(
        settings,
        policy if policy is not None else load_policy("default"),
        store if store is not None else MemoryStore(),
        clock=lambda: int(time.time() * 1000) + next(ticks),
        slack_pacing_ms=0,
        **build,
    )
    async with TestClient(TestServer(build_app(service), host="127.0.0.1")) as client:
        yield client


async def eventually(check: Callable[[], bool], what: str, *, limit_s: float = 10) -> None:
    """Poll for an asynchronous effect (the outbox sends after the ack) with a time limit:
    a safety net against a hang, not a timing assertion."""
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def outbox_drained(
    client: TestClient[web.Request, web.Application], *, leaving: int = 0
) -> None:
    """Wait until the served bot's outbox holds `leaving` items (by `/readyz`): what was
    going to be sent has been, so a duplicate would have shown by now."""
    deadline = time.monotonic() + 10
    while (await (await client.get("/readyz")).json())["outbox_pending"] != leaving:
        if time.monotonic() > deadline:
            raise AssertionError(f"the outbox did not settle at {leaving} pending")
        await asyncio.sleep(0.01)
