"""A lead from the feed gets a thread in the Slack leads channel: its card starts the
thread, the conversation continues under it, and reps act on the lead from there."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from bot.settings import Settings
from tests.e2e.harness import eventually, serving
from tests.fakes.slack_api import FakeSlackApi

SECRET, TOKEN = "slack-secret", "leads-token"
TEAM, BOT, LEADS, REP = "T0001", "UBOT", "C0LEADS", "U0REP"


def signed(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": str(
            SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
        ),
    }


@pytest.fixture
async def running() -> AsyncIterator[tuple[FakeSlackApi, TestClient[web.Request, web.Application]]]:
    async with FakeSlackApi(token="xoxb-test", team_id=TEAM, bot_user_id=BOT) as api:
        api.add_user(REP, name="rae")
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-test"),
            slack_signing_secret=SecretStr(SECRET),
            slack_api_url=api.base_url,
            slack_leads_channel=LEADS,
            salesbot_leads_token=SecretStr(TOKEN),
        )
        async with serving(api, settings) as client:
            yield api, client


def ours(api: FakeSlackApi, channel: str) -> list[dict[str, Any]]:
    return [m for m in api.messages(channel) if m.get("user") == BOT]


async def test_a_lead_gets_a_thread_in_the_leads_channel_and_a_reps_quote_there_applies_to_the_lead(
    running: tuple[FakeSlackApi, TestClient[web.Request, web.Application]],
) -> None:
    api, client = running
    auth = {"Authorization": f"Bearer {TOKEN}"}
    lead = {
        "name": "Priya Shah",
        "company": "Northwind",
        "email": "priya@northwind.example",
        "message": "Hello, tell me more about your CRM",
    }
    created = await client.post("/leads", json=lead, headers=auth | {"Idempotency-Key": "p-1"})
    lead_id = (await created.json())["lead_id"]

    await eventually(lambda: len(ours(api, LEADS)) >= 2, "the lead card and the greeting")
    card, greeting = ours(api, LEADS)[:2]
    assert "thread_ts" not in card
    assert card["metadata"]["event_payload"]["ref"] == f"lead:{lead_id}"
    assert greeting["thread_ts"] == card["ts"]
    assert "Priya" in greeting["text"]

    ts = api.add_message(LEADS, f"<@{BOT}> quote 10 pro 10%", user=REP, thread_ts=card["ts"])
    body = json.dumps(
        {
            "type": "event_callback",
            "team_id": TEAM,
            "api_app_id": "A0001",
            "event_id": "Ev-lead-1",
            "event": {
                "type": "app_mention",
                "channel": LEADS,
                "user": REP,
                "team": TEAM,
                "text": f"<@{BOT}> quote 10 pro 10%",
                "ts": ts,
                "thread_ts": card["ts"],
            },
            "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}],
        }
    ).encode()
    response = await client.post(
        "/slack/events", data=body, headers=signed(body) | {"Content-Type": "application/json"}
    )
    assert response.status == 200
    await eventually(
        lambda: any("1,791.00 USD" in json.dumps(m.get("blocks", [])) for m in ours(api, LEADS)),
        "the quote card in the lead's thread",
    )
    quote = next(m for m in ours(api, LEADS) if "1,791.00 USD" in json.dumps(m.get("blocks", [])))
    assert quote["thread_ts"] == card["ts"]
    transcript = await (await client.get(f"/leads/{lead_id}/messages", headers=auth)).json()
    assert transcript["state"] == "proposal"  # the rep's quote in Slack moved the lead itself

    button = next(
        e
        for b in card["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "open_quote_form"
    )
    payload = {
        "type": "block_actions",
        "user": {"id": REP, "team_id": TEAM, "name": "rae"},
        "team": {"id": TEAM},
        "api_app_id": "A0001",
        "trigger_id": "trig-lead",
        "channel": {"id": LEADS},
        "container": {"type": "message", "message_ts": card["ts"], "channel_id": LEADS},
        "message": card,
        "actions": [
            {
                "type": "button",
                "action_id": "open_quote_form",
                "block_id": "b",
                "value": button["value"],
                "action_ts": "1.2",
            }
        ],
    }
    form = urlencode({"payload": json.dumps(payload)}).encode()
    response = await client.post(
        "/slack/events",
        data=form,
        headers=signed(form) | {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 200
    (view,) = api.views
    assert view["private_metadata"] == lead_id
    submission = {
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": REP, "team_id": TEAM, "name": "rae"},
        "api_app_id": "A0001",
        "view": {
            **view,
            "hash": "h-lead",
            "state": {
                "values": {
                    "qty": {"value": {"type": "plain_text_input", "value": "2"}},
                    "sku": {"value": {"type": "plain_text_input", "value": "starter"}},
                    "discount": {"value": {"type": "plain_text_input", "value": None}},
                    "tax": {"value": {"type": "plain_text_input", "value": None}},
                }
            },
        },
    }
    form = urlencode({"payload": json.dumps(submission)}).encode()
    response = await client.post(
        "/slack/events",
        data=form,
        headers=signed(form) | {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 200
    await eventually(
        lambda: any("98.00 USD" in json.dumps(m.get("blocks", [])) for m in ours(api, LEADS)),
        "the form's quote in the thread",
    )
    form_quote = next(m for m in ours(api, LEADS) if "98.00 USD" in json.dumps(m.get("blocks", [])))
    assert form_quote["thread_ts"] == card["ts"]
