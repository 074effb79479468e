"""The lead feed through the real server: a lead POSTed by a web form becomes a conversation,
and the prospect hears back at the lead's reply URL, signed, exactly once per reply."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from adapters.leadfeed.reply import verify_signature
from bot.policy_loader import load_policy
from bot.server import build_app
from bot.service import build_service
from bot.settings import Settings
from storage.memory import MemoryStore
from tests.e2e.harness import eventually

TOKEN, SECRET = "leads-token", "reply-secret"


class Receiver:
    """A web-chat widget's endpoint on 127.0.0.1: dedupes by Idempotency-Key, as asked."""

    def __init__(self) -> None:
        self.replies: dict[str, dict[str, Any]] = {}
        self.bad_signatures = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify_signature(SECRET, body, request.headers.get("X-Salesbot-Signature", "")):
            self.bad_signatures += 1
            return web.Response(status=401)
        self.replies.setdefault(request.headers["Idempotency-Key"], json.loads(body))
        return web.Response(status=204)


@pytest.fixture
async def feed() -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Receiver]]:
    receiver = Receiver()
    widget = web.Application()
    widget.router.add_post("/reply", receiver.handle)
    async with TestServer(widget, host="127.0.0.1") as widget_server:
        receiver.url = str(widget_server.make_url("/reply"))
        settings = Settings(
            salesbot_leads_token=SecretStr(TOKEN),
            salesbot_lead_reply_secret=SecretStr(SECRET),
            salesbot_outbound_allow=("127.0.0.1",),  # the widget below listens there
        )
        service = build_service(
            settings, load_policy("default"), MemoryStore(), clock=lambda: int(time.time() * 1000)
        )
        async with TestClient(TestServer(build_app(service), host="127.0.0.1")) as client:
            yield client, receiver


async def test_a_lead_from_a_web_form_is_greeted_at_its_reply_url_once_and_signed(
    feed: tuple[TestClient[web.Request, web.Application], Receiver],
) -> None:
    client, receiver = feed
    lead = {
        "name": "Priya Shah",
        "company": "Northwind",
        "email": "priya@northwind.example",
        "message": "Hello, tell me more about your CRM",
        "source": "web",
        "reply_url": receiver.url,
    }
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "form-123"}
    created = await client.post("/leads", json=lead, headers=headers)
    assert created.status == 201
    lead_id = (await created.json())["lead_id"]
    again = await client.post("/leads", json=lead, headers=headers)
    assert again.status == 200
    assert (await again.json())["lead_id"] == lead_id
    await eventually(lambda: len(receiver.replies) == 1, "the greeting at the reply URL")
    (greeting,) = receiver.replies.values()
    assert greeting["lead_id"] == lead_id
    assert greeting["text"].startswith("Hi Priya")

    answer = await client.post(
        f"/leads/{lead_id}/messages",
        json={"text": "We have a $5000 budget, I am the CTO, next month", "message_id": "m-1"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status in (200, 201)
    await eventually(lambda: len(receiver.replies) == 2, "the proposal")
    transcript = await client.get(
        f"/leads/{lead_id}/messages", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    body = await transcript.json()
    assert body["state"] == "proposal"
    assert [m["from"] for m in body["messages"]][:2] == ["prospect", "bot"]
    assert receiver.bad_signatures == 0


async def test_the_feed_refuses_a_missing_token_and_a_changed_body_under_the_same_key(
    feed: tuple[TestClient[web.Request, web.Application], Receiver],
) -> None:
    client, receiver = feed
    lead = {"name": "Sam", "email": "sam@example.org", "message": "Hi", "reply_url": receiver.url}
    assert (await client.post("/leads", json=lead)).status == 401
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "k-9"}
    assert (await client.post("/leads", json=lead, headers=headers)).status == 201
    changed = await client.post(
        "/leads", json=lead | {"message": "Something else"}, headers=headers
    )
    assert changed.status == 409
