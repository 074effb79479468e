"""The lead room in the playground (issue 14 item 6): a lead from the feed has a thread on
the page; the prospect's later messages appear there as their words, a rep's line stays with
the team unless it starts with `>`, and a marked line reaches the lead's reply URL as the
rep's and takes the conversation over (the handoff pane shows who holds it)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.policy_loader import load_policy
from bot.server import build_app
from bot.service import build_service
from bot.settings import Settings
from storage.memory import MemoryStore
from tests.e2e.desk import Client, drained, history, say, tickets
from tests.e2e.harness import eventually
from tests.e2e.test_lead_room import AUTH, Receiver, feed_settings, new_lead, prospect_writes
from tests.e2e.test_lead_room import receiver as receiver  # the fixture: the widget


@pytest.fixture
async def page() -> AsyncIterator[Client]:
    settings = Settings(salesbot_playground=True, **feed_settings())
    service = build_service(
        settings, load_policy("default"), MemoryStore(), clock=lambda: int(time.time() * 1000)
    )
    async with TestClient(TestServer(build_app(service), host="127.0.0.1")) as client:
        yield client


def shown(messages: list[dict[str, Any]], lead_id: str, audience: str) -> list[str]:
    return [
        m["reply"]["text"]
        for m in messages
        if m["conversation"] == lead_id and m["audience"] == audience
    ]


async def test_playground_the_lead_thread_is_the_teams_room(
    page: Client, receiver: Receiver
) -> None:
    lead_id = await new_lead(page, receiver, "form-pg")
    await prospect_writes(page, lead_id, "We are 40 people <b>now</b>")
    await eventually(lambda: len(receiver.replies) == 2, "the bot's answer")
    await drained(page)
    assert "Priya Shah wrote: “We are 40 people <b>now</b>”" in shown(
        await history(page), lead_id, "team"
    )

    await say(page, "rep", "A good one, I'll call them", lead_id)
    assert len(receiver.replies) == 2, "the room's words stay with the team"
    assert (await tickets(page))["tickets"] == []

    await say(page, "rep", "> Hi Priya, this is the sales team.", lead_id)
    await eventually(lambda: len(receiver.replies) == 3, "the rep's words at the reply URL")
    assert receiver.texts()[2] == "Hi Priya, this is the sales team."
    assert "Hi Priya, this is the sales team." in shown(
        await history(page), lead_id, "conversation"
    )
    (ticket,) = (await tickets(page))["tickets"]
    assert (ticket["conversation"], ticket["status"]) == (lead_id, "claimed")
    assert ticket["reason"] == "rep_took_over"

    await prospect_writes(page, lead_id, "Thanks!")
    await drained(page)
    assert len(receiver.replies) == 3, "the bot does not talk over the rep"
    assert "Priya Shah wrote: “Thanks!”" in shown(await history(page), lead_id, "team")
    transcript = await (await page.get(f"/leads/{lead_id}/messages", headers=AUTH)).json()
    assert transcript["state"] == "handoff"
