"""What an on-call engineer reads from `/metrics` (issue 11), scraped from the real server
after real Slack traffic through the fake Slack Web API: requests by route and status, the
acknowledgement latency per route, decide latency, the outbox backlog and its oldest item's
age per platform, dead letters, and sends by outcome (sent, retry, timeout, rejected)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from bot.settings import Settings
from tests.e2e.harness import eventually, outbox_drained, serving
from tests.e2e.test_slack import signed
from tests.fakes.slack_api import FakeSlackApi

SECRET = "metrics-e2e-signing-secret"
TEAM, BOT, SHARED, HANDOFF = "T0001", "UBOT", "C0SHARED", "C0HANDOFF"
PROSPECT = {"user": "U0PAT", "user_team": "T0ACME"}


@dataclass
class Bot:
    api: FakeSlackApi
    client: TestClient[web.Request, web.Application]


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    async with FakeSlackApi(token="xoxb-test", team_id=TEAM, bot_user_id=BOT) as api:
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-test"),
            slack_signing_secret=SecretStr(SECRET),
            slack_api_url=api.base_url,
            slack_handoff_channel=HANDOFF,
            salesbot_action_secret=SecretStr("metrics-e2e-action-secret"),
        )
        async with serving(api, settings) as client:
            yield Bot(api=api, client=client)


_ids = itertools.count(1)


async def say(bot: Bot, text: str, channel: str = SHARED) -> None:
    """A prospect's new thread in `channel`: one signed event, acknowledged."""
    ts = bot.api.add_message(channel, text, user=PROSPECT["user"])
    event = {"type": "message", "channel": channel, "channel_type": "channel", "text": text}
    body = json.dumps(
        {
            "team_id": TEAM,
            "api_app_id": "A0001",
            "type": "event_callback",
            "event_id": f"EvMetrics{next(_ids)}",
            "event_time": int(time.time()),
            "event": event | {"ts": ts, **PROSPECT},
            "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}],
        }
    ).encode()
    headers = signed(body, secret=SECRET) | {"Content-Type": "application/json"}
    response = await bot.client.post("/slack/events", data=body, headers=headers)
    assert response.status == 200


async def scrape(bot: Bot) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await bot.client.get("/metrics")
    assert response.status == 200
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def calls(api: FakeSlackApi) -> int:
    return len(api.calls_of("chat.postMessage"))


async def test_metrics_show_requests_latencies_backlog_dead_letters_and_sends_by_outcome(
    bot: Bot,
) -> None:
    api = bot.api
    # Sent: a greeting.
    await say(bot, "Hi, we are evaluating CRMs")
    await outbox_drained(bot.client)
    # Timeout: the connection drops after Slack stored the post; the look-up finds it.
    api.drop_next("chat.postMessage")
    await say(bot, "Hello, a question about pricing")
    await outbox_drained(bot.client)
    # Rejected: Slack says the channel is gone; the reply is dead-lettered (and an alert
    # goes to the handoff channel).
    api.fail_next("chat.postMessage", error="channel_not_found")
    await say(bot, "Hello from another team")
    await outbox_drained(bot.client)
    # Retry: rate limited for a long while, so the reply waits in the outbox.
    before = calls(api)
    api.fail_next("chat.postMessage", status=429, retry_after=600)
    await say(bot, "Hello again")
    await eventually(lambda: calls(api) > before, "the rate-limited attempt")
    await outbox_drained(bot.client, leaving=1)

    samples = await scrape(bot)

    events = value(
        samples, "salesbot_http_requests_total", method="POST", route="/slack/events", status="200"
    )
    assert events == 4
    assert (
        value(samples, "salesbot_http_request_duration_seconds_count", route="/slack/events") == 4
    )
    slow = value(
        samples, "salesbot_http_request_duration_seconds_bucket", route="/slack/events", le="3.0"
    )
    assert slow == 4  # every acknowledgement within Slack's 3 s
    decided = value(samples, "salesbot_decide_duration_seconds_count")
    assert decided is not None
    assert decided >= 4

    sent = value(samples, "salesbot_outbox_sends_total", platform="slack", outcome="sent")
    assert sent is not None
    assert sent >= 2
    assert value(samples, "salesbot_outbox_sends_total", platform="slack", outcome="timeout") == 1
    assert value(samples, "salesbot_outbox_sends_total", platform="slack", outcome="rejected") == 1
    assert value(samples, "salesbot_outbox_sends_total", platform="slack", outcome="retry") == 1

    assert value(samples, "salesbot_outbox_pending", platform="slack") == 1
    age = value(samples, "salesbot_outbox_oldest_pending_age_seconds", platform="slack")
    assert age is not None
    assert age >= 0
    assert value(samples, "salesbot_outbox_dead_letters", platform="slack") == 1
    # A platform that is not configured (the lead feed's replies) has no series.
    assert value(samples, "salesbot_outbox_pending", platform="lead-reply") is None

    # The scrape itself is a request too, by its route pattern.
    again = await scrape(bot)
    scraped = value(
        again, "salesbot_http_requests_total", method="GET", route="/metrics", status="200"
    )
    assert scraped == 1
    unmatched = await bot.client.get("/conversations/slack:T0001:C0SHARED/secret-path")
    assert unmatched.status == 404
    after = await scrape(bot)
    assert (
        value(after, "salesbot_http_requests_total", method="GET", route="unmatched", status="404")
        == 1
    )
    assert not [key for key in after if "secret-path" in str(key)]


async def test_a_platform_whose_backlog_drained_shows_zero_not_its_last_figures(bot: Bot) -> None:
    api = bot.api
    api.fail_next("chat.postMessage", status=429, retry_after=0)
    await say(bot, "Hi there")
    await outbox_drained(bot.client)
    samples = await scrape(bot)
    assert value(samples, "salesbot_outbox_pending", platform="slack") == 0
    assert value(samples, "salesbot_outbox_oldest_pending_age_seconds", platform="slack") == 0
    assert value(samples, "salesbot_outbox_dead_letters", platform="slack") == 0
    assert value(samples, "salesbot_outbox_sends_total", platform="slack", outcome="retry") == 1
