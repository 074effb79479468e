"""A lead's thread is the team's room; the web-form prospect hears only what is meant for
them (issue 14 item 6), through the real server with the lead feed, on Slack (fake Web API)
and Teams (fake connector). The "Why" it answers:

    A web-form prospect never hears the human who took over, and cannot accept a quote at
    all (the lead feed has no way back for a click); the prospect's later messages do not
    appear in the lead thread.

Now: the prospect's later messages are posted in the lead's thread; a rep's words there
stay with the team unless marked (`> …`, `@salesbot say …`, the lead card's *Reply to
prospect*), and marked words reach the prospect's reply URL as the rep's and take the
conversation over (the bot falls silent); the bot's replies carry signed links that press
the quote card's *Accept quote* and *Talk to a person*, refused when tampered with or used
for another lead, a no-op when posted again. The playground's run is in
`tests/e2e/test_playground_lead_room.py`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from adapters.leadfeed.reply import verify_signature
from bot.settings import Settings
from tests.e2e import test_teams as teams_e2e
from tests.e2e.harness import eventually, outbox_drained, serving
from tests.e2e.test_slack_leads import signed
from tests.e2e.test_teams import card_of, invoke, message, texts
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.teams_connector import FakeConnector, thread_id

TOKEN, SECRET = "leads-token", "reply-secret"
TEAM, BOT, LEADS, HANDOFF, REP = "T0001", "UBOT", "C0LEADS", "C0HANDOFF", "U0REP"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[web.Request, web.Application]


class Receiver:
    """The web form's widget on 127.0.0.1: what the prospect reads, deduped by key."""

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

    def read(self) -> list[dict[str, Any]]:
        return list(self.replies.values())

    def texts(self) -> list[str]:
        return [reply["text"] for reply in self.read()]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    widget = Receiver()
    app = web.Application()
    app.router.add_post("/reply", widget.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        widget.url = str(server.make_url("/reply"))
        yield widget


def feed_settings(**platform: Any) -> dict[str, Any]:
    return {
        "salesbot_leads_token": SecretStr(TOKEN),
        "salesbot_lead_reply_secret": SecretStr(SECRET),
        "salesbot_outbound_allow": ("127.0.0.1",),
        "salesbot_public_url": "https://bot.example.org",
        **platform,
    }


async def new_lead(client: Client, receiver: Receiver, key: str) -> str:
    lead = {
        "name": "Priya Shah",
        "company": "Northwind",
        "email": "priya@northwind.example",
        "message": "Hello, tell me more about your CRM",
        "reply_url": receiver.url,
    }
    created = await client.post("/leads", json=lead, headers=AUTH | {"Idempotency-Key": key})
    assert created.status == 201
    lead_id: str = (await created.json())["lead_id"]
    await eventually(lambda: len(receiver.replies) == 1, "the greeting at the reply URL")
    return lead_id


async def another_lead(client: Client, key: str) -> str:
    """A second lead, whose id a link of the first must not work for."""
    lead = {"name": "Sam Other", "email": "sam@other.example", "message": "Hi"}
    created = await client.post("/leads", json=lead, headers=AUTH | {"Idempotency-Key": key})
    assert created.status == 201
    other: str = (await created.json())["lead_id"]
    return other


async def prospect_writes(client: Client, lead_id: str, text: str) -> None:
    answer = await client.post(f"/leads/{lead_id}/messages", json={"text": text}, headers=AUTH)
    assert answer.status == 201, await answer.text()


def link(reply: dict[str, Any], action: str) -> str:
    (found,) = [a for a in reply["actions"] if a["action"] == action]
    assert found["method"] == "POST"
    url: str = found["url"]
    assert url.startswith("https://bot.example.org/leads/")
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"  # the same route on the test server


def tampered(path: str, **changes: str) -> str:
    route, _, query = path.partition("?")
    fields = {name: values[0] for name, values in parse_qs(query).items()}
    return f"{route}?{urlencode(fields | changes)}"


async def links_are_checked_and_pressed_once(
    client: Client, receiver: Receiver, lead_id: str, other_lead: str
) -> None:
    """The quote card's links: a tampered or foreign one refused (4xx, one-line JSON), the
    real one accepted once and a no-op posted again; the prospect hears the acceptance."""
    quote = next(r for r in receiver.read() if r["card"] and r["card"]["kind"] == "quote")
    assert [a["label"] for a in quote["actions"]] == ["Accept quote", "Talk to a person"]
    accept = link(quote, "accept_quote")
    for bad in (
        tampered(accept, target="Q-forged"),
        tampered(accept, sig="v1." + "0" * 32),
        tampered(accept, action="approve_quote"),
        accept.replace(lead_id, other_lead),
    ):
        refused = await client.post(bad)
        assert 400 <= refused.status < 500, bad
        body = await refused.json()
        assert list(body) in (["error"], ["error", "errors"])
        assert "\n" not in body["error"]
    heard = len(receiver.replies)
    first = await client.post(accept)
    assert first.status == 201
    again = await client.post(accept)
    assert again.status == 200
    assert (await again.json())["status"] == "existing"
    await eventually(lambda: len(receiver.replies) > heard, "the acceptance at the reply URL")
    await outbox_drained(client)
    said = json.dumps(receiver.read()[heard:])
    assert "Accepted" in said


# --- Slack ---------------------------------------------------------------------------------


@dataclass
class SlackRoom:
    api: FakeSlackApi
    client: Client

    def ours(self, channel: str) -> list[dict[str, Any]]:
        return [m for m in self.api.messages(channel) if m.get("user") == BOT]

    def thread(self, card_ts: str) -> list[dict[str, Any]]:
        return [m for m in self.ours(LEADS) if m.get("thread_ts") == card_ts]

    async def post(self, body: bytes, content_type: str) -> None:
        response = await self.client.post(
            "/slack/events", data=body, headers=signed(body) | {"Content-Type": content_type}
        )
        assert response.status == 200

    async def rep_writes(self, thread_ts: str, text: str, *, mention: bool = False) -> None:
        shown = f"<@{BOT}> {text}" if mention else text
        ts = self.api.add_message(LEADS, shown, user=REP, thread_ts=thread_ts)
        event = {"type": "app_mention" if mention else "message", "channel": LEADS, "user": REP}
        event |= {"team": TEAM, "text": shown, "ts": ts, "thread_ts": thread_ts}
        if not mention:
            event["channel_type"] = "channel"
        body = {
            "type": "event_callback",
            "team_id": TEAM,
            "api_app_id": "A0001",
            "event_id": f"Ev-{ts}",
            "event": event,
            "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}],
        }
        await self.post(json.dumps(body).encode(), "application/json")

    async def press(self, card: dict[str, Any], action_id: str, note: str) -> None:
        button = next(
            e
            for b in card["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == action_id
        )
        payload = {
            "type": "block_actions",
            "user": {"id": REP, "team_id": TEAM, "name": "rae"},
            "team": {"id": TEAM},
            "api_app_id": "A0001",
            "trigger_id": f"trigger-{time.monotonic_ns()}",
            "channel": {"id": LEADS},
            "container": {"type": "message", "message_ts": card["ts"], "channel_id": LEADS},
            "message": card,
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "b",
                    "value": button["value"],
                    "action_ts": str(time.time()),
                }
            ],
            "state": {"values": {"note": {"note": {"type": "plain_text_input", "value": note}}}},
        }
        await self.post(urlencode({"payload": json.dumps(payload)}).encode(), _FORM)


_FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def slack_room() -> AsyncIterator[SlackRoom]:
    async with FakeSlackApi(token="xoxb-test", team_id=TEAM, bot_user_id=BOT) as api:
        api.add_user(REP, name="rae", profile={"display_name": "", "real_name": "Rae Rep"})
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-test"),
            slack_signing_secret=SecretStr("slack-secret"),
            slack_api_url=api.base_url,
            slack_leads_channel=LEADS,
            slack_handoff_channel=HANDOFF,
            **feed_settings(),
        )
        async with serving(api, settings) as client:
            yield SlackRoom(api=api, client=client)


async def test_slack_the_lead_thread_is_the_teams_room_and_the_prospect_hears_the_rep(
    slack_room: SlackRoom, receiver: Receiver
) -> None:
    room, client = slack_room, slack_room.client
    lead_id = await new_lead(client, receiver, "form-1")
    await eventually(lambda: len(room.ours(LEADS)) >= 2, "the lead card and its thread")
    card = room.ours(LEADS)[0]
    thread = card["ts"]

    # The prospect's later message appears in the lead's thread, as their words.
    await prospect_writes(client, lead_id, "We are 40 people, <!channel> *urgent*")
    await eventually(
        lambda: any("Priya Shah wrote:" in m["text"] for m in room.thread(thread)),
        "the prospect's words in the lead's thread",
    )
    shown = next(m for m in room.thread(thread) if "Priya Shah wrote:" in m["text"])
    assert "&lt;!channel&gt;" in json.dumps(shown), "their words are data, never a mention"
    await eventually(lambda: len(receiver.replies) == 2, "the bot's answer to the prospect")

    # A rep's words in the thread stay with the team.
    await room.rep_writes(thread, "Looks promising, I'll take it.")
    await outbox_drained(client)
    assert len(receiver.replies) == 2
    assert room.ours(HANDOFF) == []

    # Marked for the prospect: they hear the rep, and the rep holds the conversation.
    await room.rep_writes(thread, "&gt; Hi Priya, Rae here. When can we talk?")
    await eventually(lambda: len(receiver.replies) == 3, "the rep's words at the reply URL")
    rep_reply = receiver.read()[2]
    assert rep_reply["text"] == "Hi Priya, Rae here. When can we talk?"
    assert rep_reply["card"]["title"] == "Rae Rep, from the sales team"
    await eventually(lambda: len(room.ours(HANDOFF)) == 1, "the ticket card")
    assert "Taken over by Rae Rep" in json.dumps(room.ours(HANDOFF)[0]["blocks"])

    await prospect_writes(client, lead_id, "Tomorrow at 10 works")
    await eventually(
        lambda: any("Tomorrow at 10 works" in m["text"] for m in room.thread(thread)),
        "the prospect's answer in the lead's thread",
    )
    await outbox_drained(client)
    assert len(receiver.replies) == 3, "the bot does not talk over the rep"

    # `@salesbot say …` and the lead card's *Reply to prospect* reach the prospect too.
    await room.rep_writes(thread, "say Great, talk tomorrow.", mention=True)
    await eventually(lambda: len(receiver.replies) == 4, "@salesbot say")
    await room.press(card, "reply_to_prospect", "I'll send an agenda tonight.")
    await eventually(lambda: len(receiver.replies) == 5, "Reply to prospect")
    assert receiver.texts()[3:] == ["Great, talk tomorrow.", "I'll send an agenda tonight."]
    assert receiver.bad_signatures == 0


async def test_slack_a_web_form_prospect_accepts_a_quote_through_its_signed_link(
    slack_room: SlackRoom, receiver: Receiver
) -> None:
    room, client = slack_room, slack_room.client
    lead_id = await new_lead(client, receiver, "form-2")
    other = await another_lead(client, "form-3")
    await eventually(lambda: len(room.ours(LEADS)) >= 2, "the lead card")
    card = next(m for m in room.ours(LEADS) if lead_id in json.dumps(m.get("metadata", {})))
    await room.rep_writes(card["ts"], "quote 10 pro 10%", mention=True)
    await eventually(
        lambda: any(r["card"] and r["card"]["kind"] == "quote" for r in receiver.read()),
        "the quote at the reply URL",
    )
    await links_are_checked_and_pressed_once(client, receiver, lead_id, other)
    transcript = await (await client.get(f"/leads/{lead_id}/messages", headers=AUTH)).json()
    assert transcript["state"] == "closed"  # accepted: the deal is won and the flow ends


# --- Teams ---------------------------------------------------------------------------------


async def test_teams_the_lead_thread_is_the_teams_room_and_links_press_the_quote(
    receiver: Receiver,
) -> None:
    async with FakeConnector(members=teams_e2e.ROSTER, tenant_id=teams_e2e.TENANT) as connector:
        settings = teams_e2e.local_settings(
            teams_leads_conversation=teams_e2e.LEADS, **feed_settings()
        )
        async with serving(None, settings) as client:
            url = connector.base_url
            rep, leads = teams_e2e.REP, teams_e2e.LEADS
            hello = message(leads, rep, "hello", mention=True, service_url=url)
            await client.post("/api/messages", json=hello)
            lead_id = await new_lead(client, receiver, "crm-1")
            other = await another_lead(client, "crm-2")
            await eventually(lambda: len(connector.posted(leads)) >= 2, "the lead cards")
            card = next(a for a in connector.posted(leads) if lead_id in texts([a]))
            thread = thread_id(leads, card["id"])

            await prospect_writes(client, lead_id, "We are 40 people")
            await eventually(
                lambda: "Priya Shah wrote: “We are 40 people”" in texts(connector.posted(thread)),
                "the prospect's words in the lead's thread",
            )
            await eventually(lambda: len(receiver.replies) == 2, "the bot's answer")

            await client.post(
                "/api/messages", json=message(thread, rep, "Internal: a good one", service_url=url)
            )
            await client.post(
                "/api/messages",
                json=message(thread, rep, "> Hi Priya, Rae here.", service_url=url),
            )
            await eventually(lambda: len(receiver.replies) == 3, "the rep's words")
            assert receiver.texts()[2] == "Hi Priya, Rae here."
            assert receiver.read()[2]["card"]["title"] == "Rae Rep, from the sales team"
            (ticket,) = await connector.wait_for_posts(teams_e2e.HANDOFF, 1)
            assert "Taken over by Rae Rep" in texts([ticket])

            await prospect_writes(client, lead_id, "Great, thanks Rae")
            await eventually(
                lambda: "Great, thanks Rae" in texts(connector.posted(thread)), "in the thread"
            )
            await outbox_drained(client)
            assert len(receiver.replies) == 3, "the bot does not talk over the rep"

            # The lead card's *Reply to prospect*, with the card's text box.
            action = next(a for a in card_of(card)["actions"] if a["verb"] == "reply_to_prospect")
            click = invoke(
                thread,
                rep,
                action["verb"],
                action["data"] | {"note": "Agenda tonight."},
                service_url=url,
            )
            assert (await client.post("/api/messages", json=click)).status == 200
            await eventually(lambda: len(receiver.replies) == 4, "Reply to prospect")
            assert receiver.texts()[3] == "Agenda tonight."

            await client.post(
                "/api/messages",
                json=message(thread, rep, "quote 10 pro 10%", mention=True, service_url=url),
            )
            await eventually(
                lambda: any(r["card"] and r["card"]["kind"] == "quote" for r in receiver.read()),
                "the quote at the reply URL",
            )
            await links_are_checked_and_pressed_once(client, receiver, lead_id, other)
            assert receiver.bad_signatures == 0
