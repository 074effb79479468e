"""Socket Mode: with SLACK_APP_TOKEN the bot opens a WebSocket to Slack (here the fake on
127.0.0.1), needs no public URL, and handles envelopes through the same runtime."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from bot.settings import Settings
from tests.e2e.harness import serving
from tests.fakes.slack_api import FakeSlackApi

TEAM, BOT, SHARED = "T0001", "UBOT", "C0SHARED"


@pytest.fixture
async def running(
    tmp_path: Path,
) -> AsyncIterator[tuple[FakeSlackApi, TestClient[web.Request, web.Application]]]:
    async with FakeSlackApi(
        token="xoxb-test", app_token="xapp-test", team_id=TEAM, bot_user_id=BOT
    ) as api:
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-test"),
            slack_app_token=SecretStr("xapp-test"),
            slack_api_url=api.base_url,
        )
        async with serving(api, settings) as client:
            yield api, client


async def test_a_prospect_message_over_socket_mode_is_acked_and_answered_in_its_thread(
    running: tuple[FakeSlackApi, TestClient[web.Request, web.Application]],
) -> None:
    api, client = running
    ts = api.add_message(SHARED, "Hello, we are looking at CRMs", user="U0PAT")
    ack = await asyncio.wait_for(
        api.push(
            "events_api",
            {
                "type": "event_callback",
                "team_id": TEAM,
                "api_app_id": "A0001",
                "event_id": "Ev1",
                "event_time": int(time.time()),
                "event": {
                    "type": "message",
                    "channel": SHARED,
                    "channel_type": "channel",
                    "user": "U0PAT",
                    "user_team": "T0ACME",
                    "text": "Hello, we are looking at CRMs",
                    "ts": ts,
                },
                "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}],
            },
        ),
        timeout=10,  # a safety net against a hang, not a timing assertion
    )
    assert ack["envelope_id"].startswith("env-")
    deadline = time.monotonic() + 10
    while not [m for m in api.messages(SHARED) if m.get("user") == BOT]:
        assert time.monotonic() < deadline, "no reply over the Web API"
        await asyncio.sleep(0.01)
    reply = next(m for m in api.messages(SHARED) if m.get("user") == BOT)
    assert reply["thread_ts"] == ts
    # No public HTTP route is needed (or mounted) without a signing secret.
    assert (await client.post("/slack/events", data=b"{}")).status in (404, 405)
