"""The floor under Teams ingest (`bench.minimal_teams`) does what its figure claims: the
activity read, `decide`, a durable commit before the acknowledgement, and the reply posted
to the activity's connector. A floor that skipped any of them would make the distance it
shows between a product and the SDK look larger than it is."""

from __future__ import annotations

import json

import aiohttp
from aiohttp import web

from bench.ingest_bodies import TeamsBodies
from bench.minimal_teams import make_app
from tests.bench.conftest import FloorStore
from tests.fakes.teams_connector import FakeConnector


async def test_the_floor_acknowledges_a_stored_decision_and_posts_its_reply(
    floor_store: FloorStore,
) -> None:
    writer = floor_store.writer
    async with FakeConnector() as connector, aiohttp.ClientSession() as session:
        bodies = TeamsBodies(connector.base_url, run="t")
        runner = web.AppRunner(make_app(writer, session))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/messages"
        try:
            raw, headers = bodies.request(7, 2)
            async with session.post(url, data=raw, headers=headers) as response:
                acknowledged = response.status
            # Durable before the acknowledgement: the rows are there once it arrives.
            events, deliveries = floor_store.stored()
            conversation = json.loads(raw)["conversation"]["id"]
            posts = await connector.wait_for_posts(conversation, 1, timeout=30)
        finally:
            await runner.cleanup()
    assert acknowledged == 200
    assert ("prospect_message_received",) in events
    assert len(events) >= 3
    assert deliveries == [(f"teams:{json.loads(raw)['id']}",)]
    assert posts[0]["type"] == "message"
    assert posts[0]["text"]
