"""What an operator's log holds after real traffic (issue 11, "Logging an operator can
use"): a conversation through the real server — Slack (signed events into `/slack/events`,
replies to the fake Slack Web API), the lead feed (a lead, a follow-up, its replies signed
to a receiver) and the playground behind its token — at DEBUG, with every line captured.

Every line is one JSON object; there is one line per request with the route pattern; every
runtime line carries its conversation and delivery ids; and no secret and no prospect text
appears anywhere — neither from the requests that succeeded nor from the ones refused
because a field was invalid (pydantic's messages quote the refused input), nor from a
failure inside the runtime whose exception message quotes the prospect's text. The mask
for secrets never had to act either: nothing tried to log one.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, SecretStr

from adapters.leadfeed.reply import verify_signature
from bot.logs import configure_logging
from bot.settings import Settings
from storage.memory import MemoryStore
from storage.ports import Commit, CommitResult
from tests.e2e.harness import eventually, outbox_drained, serving
from tests.e2e.test_slack import signed
from tests.fakes.slack_api import FakeSlackApi

BOT_TOKEN = "xoxb-logging-e2e-7f3a91"
SIGNING_SECRET = "signing-secret-logging-e2e-9c1d"
LEADS_TOKEN = "leads-token-logging-e2e-4be2"
REPLY_SECRET = "reply-secret-logging-e2e-d00d"
ACTION_SECRET = "action-secret-logging-e2e-5ea1"
PLAYGROUND_TOKEN = "playground-token-logging-e2e-0123"
SECRETS = [BOT_TOKEN, SIGNING_SECRET, LEADS_TOKEN, REPLY_SECRET, ACTION_SECRET, PLAYGROUND_TOKEN]

TEAM, BOT, SHARED, HANDOFF = "T0001", "UBOT", "C0SHARED", "C0HANDOFF"
PROSPECT = {"user": "U0PAT", "user_team": "T0ACME"}

SLACK_OPENING = "Hi, we are evaluating CRMs for Zephyrine Logistics"
SLACK_ANSWER = "We have a $5000 budget, I am the CTO of Quillfeather, next month"
SLACK_BROKEN = "Hello from the Brackenmoor depot about pricing"
LEAD = {
    "name": "Oriel Vantablack",
    "company": "Marrowgate Holdings",
    "email": "oriel@marrowgate.example",
    "message": "Looking for a CRM for our Kestrelford office",
    "source": "web",
}
LEAD_ANSWER = "Budget is $9000, I am the COO, we start in Thistlemere next month"
INVALID_NAME = "Glimmerfen Oakhollow " * 30  # too long: refused, and pydantic quotes it
INVALID_EMAIL = "sorrelwick at nowhere"
FAILING_TEXTS = (
    "Please call me back at Wrenfield Mews tomorrow",
    "Our Pellucid Quay office wants a demo",
)
PROSPECT_TEXTS = [
    SLACK_OPENING,
    SLACK_ANSWER,
    SLACK_BROKEN,
    *(value for key, value in LEAD.items() if key != "source"),
    LEAD_ANSWER,
    "Glimmerfen Oakhollow",
    INVALID_EMAIL,
    *FAILING_TEXTS,
    "Zephyrine",
    "Quillfeather",
    "Vantablack",
    "Kestrelford",
    "Thistlemere",
    "Wrenfield",
    "Pellucid",
]


class _Echo(BaseModel):
    """Stands in for any model that refuses a prospect's text: its ValidationError's
    message quotes the refused input."""

    text: int


class FailingStore(MemoryStore):
    """Refuses the commit of some messages with a validation error that quotes their text,
    as any model deep in a commit path would."""

    async def commit(self, commit: Commit) -> CommitResult:
        text = (commit.inbound or {}).get("text")
        if text in FAILING_TEXTS:
            _Echo.model_validate({"text": text})
        return await super().commit(commit)


class Receiver:
    """The lead's web widget on 127.0.0.1."""

    def __init__(self) -> None:
        self.replies: dict[str, dict[str, Any]] = {}
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify_signature(
            REPLY_SECRET, body, request.headers.get("X-Salesbot-Signature", "")
        ):
            return web.Response(status=401)
        self.replies.setdefault(request.headers["Idempotency-Key"], json.loads(body))
        return web.Response(status=204)


@dataclass
class Served:
    api: FakeSlackApi
    client: TestClient[web.Request, web.Application]
    receiver: Receiver
    store: FailingStore


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    receiver = Receiver()
    widget = web.Application()
    widget.router.add_post("/reply", receiver.handle)
    async with (
        TestServer(widget, host="127.0.0.1") as widget_server,
        FakeSlackApi(token=BOT_TOKEN, team_id=TEAM, bot_user_id=BOT) as api,
    ):
        receiver.url = str(widget_server.make_url("/reply"))
        settings = Settings(
            slack_bot_token=SecretStr(BOT_TOKEN),
            slack_signing_secret=SecretStr(SIGNING_SECRET),
            slack_api_url=api.base_url,
            slack_handoff_channel=HANDOFF,
            salesbot_leads_token=SecretStr(LEADS_TOKEN),
            salesbot_lead_reply_secret=SecretStr(REPLY_SECRET),
            salesbot_outbound_allow=("127.0.0.1",),
            salesbot_action_secret=SecretStr(ACTION_SECRET),
            salesbot_playground=True,
            salesbot_playground_token=SecretStr(PLAYGROUND_TOKEN),
            salesbot_log_level="DEBUG",
            salesbot_log_format="json",
        )
        # As `salesbot` does at start: from the settings, before anything logs.
        configure_logging(settings.salesbot_log_level, settings.salesbot_log_format)
        store = FailingStore()
        async with serving(api, settings, store) as client:
            yield Served(api=api, client=client, receiver=receiver, store=store)


_events = itertools.count(1)


async def slack_event(
    served: Served, event: dict[str, Any], *, secret: str = SIGNING_SECRET
) -> int:
    body = json.dumps(
        {
            "token": "x",
            "team_id": TEAM,
            "api_app_id": "A0001",
            "type": "event_callback",
            "event_id": f"EvLog{next(_events)}",
            "event_time": int(time.time()),
            "event": event,
            "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}],
        }
    ).encode()
    headers = signed(body, secret=secret) | {"Content-Type": "application/json"}
    response = await served.client.post("/slack/events", data=body, headers=headers)
    return response.status


def bot_posts(api: FakeSlackApi, channel: str) -> list[dict[str, Any]]:
    return [m for m in api.messages(channel) if m.get("user") == BOT or m.get("bot_id")]


async def test_a_debug_log_of_real_traffic_has_ids_and_routes_and_no_secret_or_prospect_text(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    api, client = served.api, served.client
    # Slack: a prospect opens a thread and qualifies.
    thread = api.add_message(SHARED, SLACK_OPENING, user=PROSPECT["user"])
    opening = {"type": "message", "channel": SHARED, "channel_type": "channel", **PROSPECT}
    assert await slack_event(served, opening | {"text": SLACK_OPENING, "ts": thread}) == 200
    await eventually(lambda: len(bot_posts(api, SHARED)) == 1, "the greeting")
    ts = api.add_message(SHARED, SLACK_ANSWER, user=PROSPECT["user"], thread_ts=thread)
    answer = opening | {"text": SLACK_ANSWER, "ts": ts, "thread_ts": thread}
    assert await slack_event(served, answer) == 200
    await eventually(lambda: len(bot_posts(api, SHARED)) == 2, "the proposal")
    # A message signed with another secret: refused, and only its request is logged.
    forged = opening | {"text": SLACK_BROKEN, "ts": "1700000099.000001"}
    assert await slack_event(served, forged, secret="not-the-signing-secret") == 401

    # The lead feed: a lead, its follow-up, and two leads refused for invalid fields.
    auth = {"Authorization": f"Bearer {LEADS_TOKEN}"}
    created = await client.post(
        "/leads", json=LEAD | {"reply_url": served.receiver.url}, headers=auth
    )
    assert created.status == 201
    lead_id = (await created.json())["lead_id"]
    followed = await client.post(
        f"/leads/{lead_id}/messages", json={"text": LEAD_ANSWER, "message_id": "m-1"}, headers=auth
    )
    assert followed.status in (200, 201)
    for invalid in ({"name": INVALID_NAME}, {"email": INVALID_EMAIL}):
        refused = await client.post("/leads", json=LEAD | invalid, headers=auth)
        assert refused.status == 422
    # Failures inside the commit whose exception quotes the prospect's text: the lead
    # feed logs the type, the playground the traceback.
    failed = await client.post(
        f"/leads/{lead_id}/messages",
        json={"text": FAILING_TEXTS[0], "message_id": "m-2"},
        headers=auth,
    )
    assert failed.status == 500
    await eventually(lambda: len(served.receiver.replies) >= 2, "the lead's replies")

    # The playground: its token in the query string, then a message that fails.
    page = await client.get(f"/?token={PLAYGROUND_TOKEN}")
    assert page.status == 200
    sent = await client.post(
        "/playground/send",
        json={"role": "prospect", "text": FAILING_TEXTS[1]},
        headers={"Authorization": f"Bearer {PLAYGROUND_TOKEN}"},
    )
    assert sent.status == 500
    await outbox_drained(client)

    log = capsys.readouterr().err
    lines = [json.loads(line) for line in log.splitlines()]  # every line is one JSON object

    for secret in SECRETS:
        assert secret not in log
    assert "**********" not in log  # nothing even tried to log a secret
    for text in PROSPECT_TEXTS:
        assert text not in log, text

    requests = [line for line in lines if "route" in line]
    routes = {(line["method"], line["route"], line["status"]) for line in requests}
    assert ("POST", "/slack/events", 200) in routes
    assert ("POST", "/slack/events", 401) in routes
    assert ("POST", "/leads", 201) in routes
    assert ("POST", "/leads", 422) in routes
    assert ("POST", "/leads/{id}/messages", 500) in routes
    assert ("GET", "/", 200) in routes
    assert ("POST", "/playground/send", 500) in routes
    assert lead_id not in {line["route"] for line in requests}  # patterns, never paths
    assert all(isinstance(line["latency_ms"], float) for line in requests)

    runtime = [line for line in lines if line["logger"] == "bot.runtime"]
    assert runtime, "the runtime logs each inbound at DEBUG"
    assert all(line.get("conversation_id") and line.get("delivery_id") for line in runtime)
    assert lead_id in {line["conversation_id"] for line in runtime}
    worker = [line for line in lines if line["logger"] == "bot.outbox_worker"]
    assert worker, "the outbox worker logs each send at DEBUG"
    assert all(line.get("conversation_id") and line.get("outbox_key") for line in worker)
    [traced] = [line for line in lines if "exception" in line]
    assert traced["logger"] == "adapters.playground.web"
    assert traced["exception"]["type"].endswith("ValidationError")
    assert "File " in traced["exception"]["traceback"]  # where it failed is kept
