"""Recorded Slack payloads, in their wire encoding, posted to the real endpoint and signed
with the real verifier: every one is acknowledged (2xx), none is a server error."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from bot.settings import Settings
from tests.e2e.harness import serving
from tests.fakes.slack_api import FakeSlackApi

SECRET = "fixture-signing-secret"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slack"
RECORDED = [
    ("url_verification.slack_docs.json", "application/json"),
    ("app_mention.bolt_fixture.json", "application/json"),
    ("event_callback_message.bolt_fixture.json", "application/json"),
    ("block_actions.wire_form_encoded.bolt_fixture.txt", "application/x-www-form-urlencoded"),
    ("slash_command.bolt_fixture.txt", "application/x-www-form-urlencoded"),
    ("slash_command.slack_docs.txt", "application/x-www-form-urlencoded"),
]


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    # The fixtures' workspace and bot: T111, with W111 as the bot user.
    async with FakeSlackApi(token="xoxb-test", team_id="T111", bot_user_id="W111") as api:
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-test"),
            slack_signing_secret=SecretStr(SECRET),
            slack_api_url=api.base_url,
        )
        async with serving(api, settings) as test_client:
            yield test_client


@pytest.mark.parametrize(("name", "content_type"), RECORDED)
async def test_a_recorded_payload_is_acknowledged(
    client: TestClient[web.Request, web.Application], name: str, content_type: str
) -> None:
    body = (FIXTURES / name).read_bytes().strip()
    timestamp = str(int(time.time()))
    signature = str(SignatureVerifier(SECRET).generate_signature(timestamp=timestamp, body=body))
    response = await client.post(
        "/slack/events",
        data=body,
        headers={
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature,
        },
    )
    assert 200 <= response.status < 300, await response.text()
