"""Slack end to end: signed requests into the real server, the runtime and outbox, and a
fake Slack Web API on 127.0.0.1 receiving what the bot posts."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from bot.settings import Settings
from storage.sqlite import SqliteStore
from tests.e2e.harness import eventually, outbox_drained, serving
from tests.fakes.slack_api import FakeSlackApi
from tests.support.slack_clicks import BOT as BOT
from tests.support.slack_clicks import TEAM as TEAM
from tests.support.slack_clicks import block_actions
from tests.support.slack_clicks import bot_messages as bot_messages

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ACTION_SECRET = "e2e-action-secret"
SHARED, HANDOFF = "C0SHARED", "C0HANDOFF"
PROSPECT = {"user": "U0PAT", "user_team": "T0ACME"}  # Slack Connect: another workspace
REP, BOSS = "U0REP", "U0BOSS"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slack"


@dataclass
class Slack:
    api: FakeSlackApi
    client: TestClient[web.Request, web.Application]
    events: Callable[..., Any]
    store: SqliteStore


def signed(body: bytes, *, timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": str(signature)}


@pytest.fixture
async def slack(tmp_path: Path) -> AsyncIterator[Slack]:
    async with FakeSlackApi(token="xoxb-test", team_id=TEAM, bot_user_id=BOT) as api:
        api.add_user(REP, name="rae")
        api.add_user(BOSS, name="morgan")
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-test"),
            slack_signing_secret=SecretStr(SECRET),
            slack_api_url=api.base_url,
            slack_handoff_channel=HANDOFF,
            salesbot_approvers=(BOSS,),
            salesbot_action_secret=SecretStr(ACTION_SECRET),
        )
        store = await SqliteStore.open(tmp_path / "e2e.db")
        try:
            async with serving(api, settings, store) as client:
                counter = itertools.count(1)

                async def post_event(
                    event: dict[str, Any], *, retry: int | None = None, event_id: str | None = None
                ) -> ClientResponse:
                    body = json.dumps(
                        {
                            "token": "x",
                            "team_id": TEAM,
                            "api_app_id": "A0001",
                            "type": "event_callback",
                            "event_id": event_id or f"Ev{next(counter)}",
                            "event_time": int(time.time()),
                            "event": event,
                            "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}],
                        }
                    ).encode()
                    headers = signed(body) | {"Content-Type": "application/json"}
                    if retry is not None:
                        headers |= {
                            "X-Slack-Retry-Num": str(retry),
                            "X-Slack-Retry-Reason": "http_timeout",
                        }
                    return await client.post("/slack/events", data=body, headers=headers)

                yield Slack(api=api, client=client, events=post_event, store=store)
        finally:
            await store.close()


async def post_form(slack: Slack, fields: dict[str, str]) -> Any:
    body = urlencode(fields).encode()
    headers = signed(body) | {"Content-Type": "application/x-www-form-urlencoded"}
    return await slack.client.post("/slack/events", data=body, headers=headers)


async def click(
    slack: Slack,
    message: dict[str, Any],
    action: str,
    user: str,
    user_team: str = TEAM,
    *,
    channel: str = SHARED,
    team: str = TEAM,
    value: str | None = None,
) -> Any:
    """`user` clicks `action` on `message` as it sits in `channel` (and its thread)."""
    payload = block_actions(
        message, action, user, channel=channel, user_team=user_team, team=team, value=value
    )
    return await post_form(slack, {"payload": json.dumps(payload)})


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(m.get("blocks", [])) + m.get("text", "") for m in messages)


async def test_url_verification_answers_the_challenge(slack: Slack) -> None:
    body = (FIXTURES / "url_verification.slack_docs.json").read_bytes()
    response = await slack.client.post(
        "/slack/events", data=body, headers=signed(body) | {"Content-Type": "application/json"}
    )
    assert response.status == 200
    assert (await response.json())["challenge"] == json.loads(body)["challenge"]


async def test_a_prospect_is_qualified_quoted_in_the_thread_and_accepts(slack: Slack) -> None:
    api = slack.api
    thread = api.add_message(SHARED, "Hi, we are evaluating CRMs", user=PROSPECT["user"])
    response = await slack.events(
        {
            "type": "message",
            "channel": SHARED,
            "channel_type": "channel",
            "text": "Hi, we are evaluating CRMs",
            "ts": thread,
            **PROSPECT,
        }
    )
    assert response.status == 200
    await eventually(lambda: len(bot_messages(api, SHARED)) == 1, "the greeting")
    greeting = bot_messages(api, SHARED)[0]
    assert greeting["thread_ts"] == thread
    assert greeting["text"].startswith("Hi")  # a greeting, in the wording the hash picked

    ts = api.add_message(
        SHARED,
        "We have a $5000 budget, I am the CTO, next month",
        user=PROSPECT["user"],
        thread_ts=thread,
    )
    await slack.events(
        {
            "type": "message",
            "channel": SHARED,
            "channel_type": "channel",
            "text": "We have a $5000 budget, I am the CTO, next month",
            "ts": ts,
            "thread_ts": thread,
            **PROSPECT,
        }
    )
    await eventually(lambda: len(bot_messages(api, SHARED)) == 2, "the proposal")

    mention_ts = api.add_message(SHARED, f"<@{BOT}> quote 10 pro 10%", user=REP, thread_ts=thread)
    await slack.events(
        {
            "type": "app_mention",
            "channel": SHARED,
            "user": REP,
            "team": TEAM,
            "text": f"<@{BOT}> quote 10 pro 10%",
            "ts": mention_ts,
            "thread_ts": thread,
        }
    )
    await eventually(lambda: len(bot_messages(api, SHARED)) == 3, "the quote card")
    card = bot_messages(api, SHARED)[2]
    assert card["thread_ts"] == thread
    assert "1,791.00 USD" in texts([card])
    assert card["metadata"]["event_type"] == "salesbot_outbox"

    response = await click(slack, card, "accept_quote", PROSPECT["user"], PROSPECT["user_team"])
    assert response.status == 200
    await eventually(
        lambda: "Accepted by" in texts(bot_messages(api, SHARED)), "the card updated in place"
    )
    assert len(api.calls_of("chat.update")) == 1
    await eventually(
        lambda: "plan your onboarding" in texts(bot_messages(api, SHARED)),
        "the thank-you and what happens next",
    )


async def test_every_event_delivered_four_times_gives_one_reply(slack: Slack) -> None:
    api = slack.api
    ts = api.add_message(SHARED, "Hello there", user=PROSPECT["user"])
    event = {
        "type": "message",
        "channel": SHARED,
        "channel_type": "channel",
        "text": "Hello there",
        "ts": ts,
        **PROSPECT,
    }
    for retry in (None, 1, 2, 3):
        response = await slack.events(event, retry=retry, event_id="EvSame")
        assert response.status == 200
    # The same message as a second event id (as an @mention arrives twice) is the same delivery.
    await slack.events(event, event_id="EvOther")
    # Everything the five deliveries produced was committed before each ack; once the outbox
    # is drained, a duplicate reply would have been posted.
    await outbox_drained(slack.client)
    assert len(bot_messages(api, SHARED)) == 1


async def test_an_objection_with_contract_terms_goes_to_the_handoff_channel_claimed_and_resolved(
    slack: Slack,
) -> None:
    api = slack.api
    ts = api.add_message(
        SHARED, "Can we cancel the contract and get a refund?", user=PROSPECT["user"]
    )
    await slack.events(
        {
            "type": "message",
            "channel": SHARED,
            "channel_type": "channel",
            "text": "Can we cancel the contract and get a refund?",
            "ts": ts,
            **PROSPECT,
        }
    )
    await eventually(lambda: len(bot_messages(api, HANDOFF)) == 1, "the ticket card")
    ticket = bot_messages(api, HANDOFF)[0]
    assert "refund" in texts([ticket])
    response = await click(slack, ticket, "claim_ticket", REP, channel=HANDOFF)
    assert response.status == 200
    await eventually(
        lambda: "Claimed by" in texts(bot_messages(api, HANDOFF)), "the claimed ticket"
    )
    assert "claim_ticket" not in texts(bot_messages(api, HANDOFF)), "a held ticket offers no claim"
    # A second person who clicked on the card as it was before the update:
    second = await click(slack, ticket, "claim_ticket", BOSS, channel=HANDOFF)
    assert second.status == 200
    await eventually(
        lambda: any("already claimed" in e.get("text", "") for e in api.ephemerals(SHARED)),
        "the second claimer told",
    )
    await click(slack, bot_messages(api, HANDOFF)[0], "resolve_ticket", REP, channel=HANDOFF)
    # Resolve asks for the outcome on the card (the policy's `[handoff] ask_outcome`).
    await eventually(
        lambda: "how did it end?" in texts(bot_messages(api, HANDOFF)), "the outcome picker"
    )
    picker = bot_messages(api, HANDOFF)[0]
    closed = next(
        element["value"]
        for block in picker["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["text"]["text"] == "Closed"
    )
    await click(slack, picker, "resolve_ticket", REP, channel=HANDOFF, value=closed)
    await eventually(lambda: "Closed by" in texts(bot_messages(api, HANDOFF)), "the closed ticket")


async def test_a_discount_above_the_cap_goes_through_approval_by_an_approver(slack: Slack) -> None:
    api = slack.api
    response = await post_form(
        slack,
        {
            "command": "/quote",
            "text": "10 pro 20%",
            "team_id": TEAM,
            "channel_id": SHARED,
            "user_id": REP,
            "user_name": "rae",
            "trigger_id": "trig-1",
            "response_url": "https://hooks.slack.com/commands/x",
        },
    )
    assert response.status == 200
    # The shared channel (a prospect may read it) hears a quote is being prepared; the
    # quote, its rule and the Request approval button reach only the rep.
    await eventually(lambda: len(bot_messages(api, SHARED)) == 1, "the note to the channel")
    assert "as soon as it" in bot_messages(api, SHARED)[0]["text"]  # quote in preparation
    assert "request_approval" not in texts(bot_messages(api, SHARED))
    await eventually(
        lambda: any(e.get("blocks") for e in api.ephemerals(SHARED)), "the rep's private card"
    )
    card = next(e for e in api.ephemerals(SHARED) if e.get("blocks"))
    assert "rep cap of 15%" in json.dumps(card["blocks"])
    await click(slack, card, "request_approval", REP)
    await eventually(lambda: len(bot_messages(api, HANDOFF)) == 1, "the approval card")
    approval = bot_messages(api, HANDOFF)[0]
    await click(slack, approval, "approve_quote", REP, channel=HANDOFF)  # not an approver
    await eventually(
        lambda: any(
            "only configured approvers" in e.get("text", "") for e in api.ephemerals(SHARED)
        ),
        "the refusal",
    )
    await click(slack, approval, "approve_quote", BOSS, channel=HANDOFF)
    await eventually(
        lambda: re.search(r"Quote Q-[0-9a-f]{10} v2", texts(bot_messages(api, SHARED))) is not None,
        "the approved quote v2",
    )
    assert "rep cap" not in texts(bot_messages(api, SHARED))


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"X-Slack-Signature": "v0=deadbeef"}, b"{}", 401),
        ("stale", b"{}", 401),
        ("signed", b"{not json", 400),
        ("signed", b"payload=%7Bbroken", 400),
    ],
)
async def test_bad_requests_get_4xx_and_store_nothing(
    slack: Slack, headers: Any, body: bytes, status: int
) -> None:
    if headers == "stale":
        headers = signed(body, timestamp=int(time.time()) - 600)
    elif headers == "signed":
        headers = signed(body)
    else:
        headers = headers | {"X-Slack-Request-Timestamp": str(int(time.time()))}
    content_type = (
        "application/x-www-form-urlencoded" if body.startswith(b"payload") else "application/json"
    )
    response = await slack.client.post(
        "/slack/events", data=body, headers=headers | {"Content-Type": content_type}
    )
    assert response.status == status


async def test_an_unknown_subcommand_gets_a_friendly_ephemeral_usage(slack: Slack) -> None:
    response = await post_form(
        slack,
        {
            "command": "/salesbot",
            "text": "frobnicate",
            "team_id": TEAM,
            "channel_id": SHARED,
            "user_id": REP,
            "trigger_id": "trig-2",
        },
    )
    assert response.status == 200
    assert "/quote" in await response.text()  # Slack shows a plain-text answer to the user only


async def test_an_event_no_listener_wants_is_acknowledged(slack: Slack) -> None:
    response = await slack.events(
        {
            "type": "reaction_added",
            "user": REP,
            "reaction": "tada",
            "item": {"type": "message", "channel": SHARED, "ts": "1.1"},
        }
    )
    assert response.status == 200


async def test_the_quote_button_opens_a_form_whose_submission_posts_the_quote_in_the_thread(
    slack: Slack,
) -> None:
    from adapters.action_binding import ActionKey
    from adapters.slack.ids import ButtonSigner, button_value, conversation_id

    api = slack.api
    thread = api.add_message(SHARED, "Hello", user=PROSPECT["user"])
    conversation = conversation_id(TEAM, SHARED, thread)
    card = {
        "ts": thread,
        "blocks": [
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "open_quote_form",
                        "value": button_value(
                            conversation,
                            conversation,
                            "n-form",
                            action="open_quote_form",
                            signer=ButtonSigner(ActionKey(ACTION_SECRET.encode()), TEAM),
                        ),
                    }
                ],
            }
        ],
    }
    response = await click(slack, card, "open_quote_form", REP)
    assert response.status == 200
    (view,) = api.views
    assert view["private_metadata"] == conversation
    submission = {
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": REP, "team_id": TEAM, "name": "rae"},
        "api_app_id": "A0001",
        "view": {
            **view,
            "hash": "h1",
            "state": {
                "values": {
                    "qty": {"value": {"type": "plain_text_input", "value": "3"}},
                    "sku": {"value": {"type": "plain_text_input", "value": "enterprise"}},
                    "discount": {"value": {"type": "plain_text_input", "value": "5"}},
                    "tax": {"value": {"type": "plain_text_input", "value": None}},
                }
            },
        },
    }
    response = await post_form(slack, {"payload": json.dumps(submission)})
    assert response.status == 200
    await eventually(
        lambda: "1,422.15 USD" in texts(bot_messages(api, SHARED)), "the quote from the form"
    )
    quote = next(m for m in bot_messages(api, SHARED) if "1,422.15 USD" in texts([m]))
    assert quote["thread_ts"] == thread
