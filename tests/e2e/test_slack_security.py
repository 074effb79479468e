"""Slack's defects from issue 10, each as a regression test through the real server and a
fake Slack on 127.0.0.1: signed slash commands that were dropped (the substring "payload",
a channel the bot is not in), hostile headers and bodies answered 500, and clicks that
were not bound to their card."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from bot.settings import Settings
from domain.inbound import CUT_MARKER
from tests.e2e.harness import eventually, outbox_drained, serving
from tests.e2e.test_slack import (
    HANDOFF,
    PROSPECT,
    REP,
    SECRET,
    SHARED,
    TEAM,
    Slack,
    bot_messages,
    click,
    post_form,
    slack,
    texts,
)
from tests.fakes.slack_api import FakeSlackApi

__all__ = ["slack"]  # the fixture, shared with test_slack

OUTSIDE = "C0OUTSIDE"  # a channel the bot was never invited to


def command(
    name: str,
    text: str,
    *,
    response_url: str,
    channel: str = SHARED,
    user: str = REP,
    team: str = TEAM,
    **extra: str,
) -> dict[str, str]:
    return {
        "token": "x",
        "team_id": team,
        "team_domain": "acme",
        "channel_id": channel,
        "channel_name": "sales",
        "user_id": user,
        "user_name": user.lower(),
        "command": name,
        "text": text,
        "api_app_id": "A0001",
        "response_url": response_url,
        "trigger_id": f"trig-{time.monotonic_ns()}",
        **extra,
    }


def signed(body: bytes) -> dict[str, str]:
    """Signed as Slack signs: an HMAC over the raw bytes, whatever they are."""
    ts = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest.hexdigest()}"}


async def stored_rows(slack: Slack) -> tuple[int, int]:
    """(deliveries recorded, conversations with events): what a refused request must not change."""
    return len(await slack.store.recent(0)), len(await slack.store.conversation_ids())


# ---- a slash command whose form mentions "payload" is still a command ---------------------


@pytest.mark.parametrize(
    "field",
    ["text", "channel_name", "user_name", "team_domain"],
)
async def test_a_command_whose_form_contains_payload_anywhere_is_answered(
    slack: Slack, field: str
) -> None:
    url = slack.api.response_url(SHARED, REP)
    fields = command("/lead", "We need a CRM, budget $5000", response_url=url)
    fields[field] = 'payload={"type":"block_actions"} & payload'

    response = await post_form(slack, fields)

    assert response.status == 200
    await eventually(lambda: bool(slack.api.response_posts(url)), "the answer to /lead")
    assert "score" in texts(slack.api.response_posts(url)).lower()


# ---- a slash command in a channel the bot is not in ---------------------------------------


async def test_a_command_in_a_channel_the_bot_is_not_in_is_answered_through_its_response_url(
    slack: Slack,
) -> None:
    api = slack.api
    api.not_a_member(OUTSIDE)
    quote_url = api.response_url(OUTSIDE, REP)
    metrics_url = api.response_url(OUTSIDE, REP)

    quoted = await post_form(
        slack, command("/quote", "10 pro 10%", response_url=quote_url, channel=OUTSIDE)
    )
    measured = await post_form(
        slack, command("/metrics", "", response_url=metrics_url, channel=OUTSIDE)
    )

    assert (quoted.status, measured.status) == (200, 200)
    await eventually(
        lambda: "1,791.00 USD" in texts(bot_messages(api, OUTSIDE)), "the quote card in the channel"
    )
    [card] = api.response_posts(quote_url)
    assert card["response_type"] == "in_channel"
    await eventually(lambda: bool(api.response_posts(metrics_url)), "the metrics, privately")
    assert api.response_posts(metrics_url)[0]["response_type"] == "ephemeral"
    await outbox_drained(slack.client)
    assert await slack.store.dead_letters() == []


async def test_a_command_with_an_expired_response_url_falls_back_to_chat(slack: Slack) -> None:
    api = slack.api
    url = api.response_url(SHARED, REP)
    api.expire(url)

    response = await post_form(slack, command("/metrics", "", response_url=url))

    assert response.status == 200
    await eventually(lambda: bool(api.ephemerals(SHARED)), "the metrics through chat.postEphemeral")
    assert api.response_posts(url) == []


async def test_a_response_url_off_slacks_hooks_host_is_never_posted_to(slack: Slack) -> None:
    # This Slack is local (SLACK_API_URL on loopback), so only loopback response URLs are
    # its own; hooks.slack.com, or any other host, is not contacted.
    response = await post_form(
        slack, command("/metrics", "", response_url="https://hooks.slack.com/commands/T/1/x")
    )

    assert response.status == 200
    await eventually(lambda: bool(slack.api.ephemerals(SHARED)), "the metrics through chat.*")


# ---- hostile headers and bodies get a 4xx with a one-line reason, and store nothing -------

NOW = str(int(time.time()))
GOOD_EVENT = json.dumps({"type": "event_callback", "team_id": TEAM, "event": {}}).encode()


def _hostile() -> list[tuple[str, dict[str, str] | None, bytes, str, int]]:
    """(name, headers or None for correctly signed, body, content type, status)."""
    form = "application/x-www-form-urlencoded"
    json_type = "application/json"
    sig = "v0=" + "0" * 64
    return [
        ("no timestamp", {"X-Slack-Signature": sig}, GOOD_EVENT, json_type, 401),
        (
            "timestamp not an integer",
            {"X-Slack-Request-Timestamp": "12.5e3", "X-Slack-Signature": sig},
            GOOD_EVENT,
            json_type,
            401,
        ),
        (
            "timestamp in other digits",
            {"X-Slack-Request-Timestamp": "١٧٠٠٠٠٠٠٠٠", "X-Slack-Signature": sig},
            GOOD_EVENT,
            json_type,
            401,
        ),
        (
            "signature not ASCII",
            {"X-Slack-Request-Timestamp": NOW, "X-Slack-Signature": "v0=" + "é" * 64},
            GOOD_EVENT,
            json_type,
            401,
        ),
        ("no signature", {"X-Slack-Request-Timestamp": NOW}, GOOD_EVENT, json_type, 401),
        ("body not UTF-8", None, b'{"type": "\xff\xfe"}', json_type, 400),
        ("form not UTF-8", None, b"command=%2Fquote&text=%ff", form, 400),
        ("lone surrogate", None, b'{"type": "event_callback", "x": "\\ud800"}', json_type, 400),
        ("nested JSON", None, b"[" * 100_000 + b"]" * 100_000, json_type, 400),
        ("nested payload", None, b"payload=" + b"%5B" * 5000, form, 400),
        ("JSON not an object", None, b"[1, 2]", json_type, 400),
        ("form field twice", None, b"command=%2Fquote&command=%2Flead&text=1", form, 400),
        ("payload not JSON", None, b"payload=%7Bbroken", form, 400),
        ("a form that is nothing", None, b"hello=world", form, 400),
        ("text/plain", None, b"command=/quote", "text/plain", 415),
        ("a latin-1 charset", None, GOOD_EVENT, "application/json; charset=latin-1", 415),
        ("over a megabyte", None, b"{" + b" " * (1024 * 1024) + b"}", json_type, 413),
        (
            "a command without a user",
            None,
            urlencode({"command": "/quote", "text": "1", "channel_id": SHARED}).encode(),
            form,
            400,
        ),
    ]


@pytest.mark.parametrize(
    ("headers", "body", "content_type", "status"),
    [case[1:] for case in _hostile()],
    ids=[case[0] for case in _hostile()],
)
async def test_hostile_headers_and_bodies_get_a_4xx_with_a_reason_and_store_nothing(
    slack: Slack, headers: dict[str, str] | None, body: bytes, content_type: str, status: int
) -> None:
    before = await stored_rows(slack)
    sent = signed(body) if headers is None else headers

    response = await slack.client.post(
        "/slack/events", data=body, headers=sent | {"Content-Type": content_type}
    )

    assert response.status == status
    reason = (await response.json())["error"]
    assert isinstance(reason, str)
    assert reason
    assert "\n" not in reason
    assert await stored_rows(slack) == before
    assert (await slack.client.get("/healthz")).status == 200


@pytest.mark.parametrize(
    "event",
    [
        {"type": "message", "channel": SHARED, "user": 7, "text": ["x"], "ts": {"a": 1}},
        {"type": ["message"], "channel": None},
        {"type": "app_mention", "text": None, "user": REP, "channel": SHARED, "ts": 1.5},
        {"type": "message", "channel": SHARED, "ts": "1.1", "user": "U0PAT", "user_team": 9},
    ],
)
async def test_signed_events_with_wrong_typed_fields_are_acknowledged(
    slack: Slack, event: dict[str, Any]
) -> None:
    assert (await slack.events(event)).status == 200
    assert (await slack.events("not an event")).status == 200


async def test_a_message_over_forty_thousand_characters_is_answered_and_recorded_cut(
    slack: Slack,
) -> None:
    api = slack.api
    text = "We have a $5000 budget. " + "x" * 50_000
    ts = api.add_message(SHARED, text, user=PROSPECT["user"])

    response = await slack.events(
        {"type": "message", "channel": SHARED, "text": text, "ts": ts, **PROSPECT}
    )

    assert response.status == 200
    await eventually(lambda: bool(bot_messages(api, SHARED)), "the reply")
    stored = await slack.store.inbound(f"slack:msg:{SHARED}:{ts}")
    assert stored is not None
    assert stored.inbound["text"].endswith(CUT_MARKER)
    assert len(stored.inbound["text"]) == 40_000


# ---- every click is bound to its card -----------------------------------------------------


async def _quote_in_a_thread(slack: Slack, opening: str) -> tuple[str, dict[str, Any]]:
    """A prospect's thread with a rep's quote in it: (thread ts, the quote card)."""
    api = slack.api
    thread = api.add_message(SHARED, opening, user=PROSPECT["user"])
    await slack.events(
        {"type": "message", "channel": SHARED, "text": opening, "ts": thread, **PROSPECT}
    )
    mention = "<@UBOT> quote 10 pro 10%"
    ts = api.add_message(SHARED, mention, user=REP, thread_ts=thread)
    await slack.events(
        {
            "type": "app_mention",
            "channel": SHARED,
            "user": REP,
            "team": TEAM,
            "text": mention,
            "ts": ts,
            "thread_ts": thread,
        }
    )

    def card() -> dict[str, Any] | None:
        return next(
            (
                m
                for m in bot_messages(api, SHARED)
                if m.get("thread_ts") == thread and "accept_quote" in json.dumps(m["blocks"])
            ),
            None,
        )

    await eventually(lambda: card() is not None, "the quote card")
    found = card()
    assert found is not None
    return thread, found


def accept_value(card: dict[str, Any]) -> dict[str, Any]:
    for block in card["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == "accept_quote":
                value: dict[str, Any] = json.loads(element["value"])
                return value
    raise AssertionError("no accept button")


async def accepted(slack: Slack) -> list[str]:
    """The conversations in which a quote was accepted."""
    found = []
    for conversation in await slack.store.conversation_ids():
        for envelope in await slack.store.load(conversation):
            if type(envelope.event).__name__ == "QuoteAccepted":
                found.append(conversation)
    return found


async def clicks(slack: Slack) -> list[dict[str, Any]]:
    inbounds = []
    for conversation in await slack.store.conversation_ids():
        for stored in await slack.store.inbounds(conversation):
            if stored.inbound["kind"] == "action":
                inbounds.append(stored.inbound)
    return inbounds


async def test_accept_clicked_elsewhere_tampered_or_from_another_workspace_accepts_nothing(
    slack: Slack,
) -> None:
    thread_a, card_a = await _quote_in_a_thread(slack, "Hi, we are evaluating CRMs")
    thread_b, card_b = await _quote_in_a_thread(slack, "Hello, we look for a CRM too")
    value_a, value_b = accept_value(card_a), accept_value(card_b)
    prospect = (PROSPECT["user"], PROSPECT["user_team"])

    # A's button, copied into B's thread.
    copied = {**card_a, "thread_ts": thread_b}
    assert (await click(slack, copied, "accept_quote", *prospect)).status == 200
    # A's button with B's quote as its target.
    tampered = json.dumps({**value_a, "t": value_b["t"]})
    assert (await click(slack, card_a, "accept_quote", *prospect, value=tampered)).status == 200
    # A's button, clicked in another workspace's channel.
    assert (
        await click(slack, card_a, "accept_quote", *prospect, channel="C0THEIRS", team="T0THEIRS")
    ).status == 200

    await outbox_drained(slack.client)
    refused = {(c["binding"], c["conversation_id"]) for c in await clicks(slack)}
    assert refused == {
        ("wrong_conversation", f"slack:{TEAM}:{SHARED}:{thread_b}"),
        ("bad_signature", f"slack:{TEAM}:{SHARED}:{thread_a}"),
        ("wrong_workspace", f"slack:{TEAM}:C0THEIRS:{thread_a}"),
    }
    assert await accepted(slack) == []
    assert "Accepted by" not in texts(bot_messages(slack.api, SHARED))

    # The real click, where the card is, still works.
    assert (await click(slack, card_a, "accept_quote", *prospect)).status == 200
    await eventually(lambda: "Accepted by" in texts(bot_messages(slack.api, SHARED)), "accepted")
    assert await accepted(slack) == [f"slack:{TEAM}:{SHARED}:{thread_a}"]


async def test_a_ticket_card_in_the_handoff_channel_is_bound_to_the_prospects_conversation(
    slack: Slack,
) -> None:
    api = slack.api
    ts = api.add_message(SHARED, "Can we cancel the contract and get a refund?", **_pat())
    await slack.events(
        {
            "type": "message",
            "channel": SHARED,
            "text": "Can we cancel the contract and get a refund?",
            "ts": ts,
            **PROSPECT,
        }
    )
    await eventually(lambda: bool(bot_messages(api, HANDOFF)), "the ticket card")
    ticket = bot_messages(api, HANDOFF)[0]

    await click(slack, ticket, "claim_ticket", REP, channel=HANDOFF)

    await eventually(lambda: "Claimed by" in texts(bot_messages(api, HANDOFF)), "claimed")
    [claim] = await clicks(slack)
    assert (claim["binding"], claim["conversation_id"]) == ("ok", f"slack:{TEAM}:{SHARED}:{ts}")


def _pat() -> dict[str, str]:
    return {"user": PROSPECT["user"]}


# ---- Socket Mode goes through the same handlers -------------------------------------------


@pytest.fixture
async def socket() -> AsyncIterator[tuple[FakeSlackApi, TestClient[web.Request, web.Application]]]:
    async with FakeSlackApi(token="xoxb-test", app_token="xapp-test", team_id=TEAM) as api:
        api.add_user(REP, name="rae")
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-test"),
            slack_app_token=SecretStr("xapp-test"),
            slack_api_url=api.base_url,
        )
        async with serving(api, settings) as client:
            yield api, client


async def test_over_socket_mode_a_command_saying_payload_outside_the_bots_channels_is_answered(
    socket: tuple[FakeSlackApi, TestClient[web.Request, web.Application]],
) -> None:
    api, _ = socket
    api.not_a_member(OUTSIDE)
    url = api.response_url(OUTSIDE, REP)

    ack = await asyncio.wait_for(
        api.push(
            "slash_commands",
            command("/lead", "payload: we need a CRM", response_url=url, channel=OUTSIDE),
        ),
        timeout=10,  # a safety net against a hang, not a timing assertion
    )
    usage = await asyncio.wait_for(
        api.push("slash_commands", command("/nope", "payload", response_url=url)), timeout=10
    )

    assert ack["envelope_id"].startswith("env-")
    await eventually(lambda: bool(api.response_posts(url)), "the answer to /lead")
    assert "/quote" in usage["payload"]["text"]
