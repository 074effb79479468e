"""The floor under Slack ingest (`bench.minimal_bolt`) does what its figure claims: bolt's
own check, `decide`, a durable commit before the acknowledgement, and the reply posted. A
floor that skipped any of them would make the ceiling it proves look lower than it is."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from bench.ingest_bodies import SlackBodies
from bench.minimal_bolt import make_app
from tests.bench.conftest import FloorStore
from tests.fakes.slack_api import FakeSlackApi

SECRET = "floor-secret"


async def test_the_floor_acknowledges_a_stored_decision_and_posts_its_reply(
    floor_store: FloorStore,
) -> None:
    writer = floor_store.writer
    bodies = SlackBodies(SECRET, run="t", timestamp=int(time.time()))
    async with FakeSlackApi(token="xoxb-floor") as api, aiohttp.ClientSession() as session:
        posted = asyncio.Event()

        def post(params: dict[str, Any]) -> dict[str, Any]:
            posted.set()
            return {"channel": params["channel"], "ts": "1790000009.000001"}

        api.on("chat.postMessage", post)
        app = make_app(
            writer, session, token=api.token, signing_secret=SECRET, api_url=api.base_url
        )
        runner = web.AppRunner(app.web_app(path="/slack/events"))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
        try:
            stamp = int(time.time())
            raw, headers = bodies.request(7, 2, timestamp=stamp)
            async with session.post(url, data=raw, headers=headers) as response:
                acknowledged = response.status
            # Durable before the acknowledgement: the rows are there once it arrives.
            events, deliveries = floor_store.stored()
            await asyncio.wait_for(posted.wait(), timeout=30)
            forged, headers = bodies.request(7, 3, timestamp=stamp)
            headers["X-Slack-Signature"] = "v0=" + "0" * 64
            async with session.post(url, data=forged, headers=headers) as response:
                refused = response.status
        finally:
            await runner.cleanup()
        posts = api.calls_of("chat.postMessage")
    assert acknowledged == 200
    assert ("prospect_message_received",) in events
    assert len(events) >= 3
    assert deliveries == [(json.loads(raw)["event_id"],)]
    assert len(posts) >= 1
    assert posts[0].params["channel"] == "Ct00007"
    assert posts[0].params["text"]
    assert refused == 401  # bolt's own signature check stays in the floor
