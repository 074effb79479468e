"""Several workspaces on one bot, through the real server, the SQLite store and a fake Slack
on 127.0.0.1: a workspace installed with "Add to Slack" is answered by its own bot with its
own token, the first workspace (`SLACK_BOT_TOKEN`) by the configured one; an uninstall
deletes that workspace's installation and touches nothing else; a pause of the configured
token holds only its own workspace's replies."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from adapters.slack.oauth import STATE_COOKIE
from adapters.slack.oauth_store import StoreInstallations, TokenSeal
from adapters.slack.sender import make_client
from bot.policy_loader import load_policy
from bot.server import build_app
from bot.service import build_service
from bot.settings import Settings
from storage.sqlite import SqliteStore
from tests.e2e.harness import eventually
from tests.fakes.slack_api import FakeSlackApi

SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"
FIRST, SECOND = "T0001", "T0002"
SECOND_TOKEN = "xoxb-globex-0000-secret"
FIRST_CHANNEL, SECOND_CHANNEL = "C0ACME", "C0GLOBEX"
PROSPECT = {"user": "U0PAT", "user_team": "T0PROSPECT"}

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@dataclass
class Site:
    client: TestClient[web.Request, web.Application]
    store: SqliteStore
    api: FakeSlackApi
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def install(self, code: str) -> None:
        """Add to Slack, as the browser of an admin of the granted workspace."""
        page = await (response := await self.client.get("/slack/install")).text()
        link = re.search(r'href="([^"]+)">Add to Slack<', page)
        assert link is not None
        (state,) = parse_qs(urlsplit(unescape(link.group(1))).query)["state"]
        cookie = response.cookies[STATE_COOKIE].value
        done = await self.client.get(
            "/slack/oauth_redirect",
            params={"code": code, "state": state},
            headers={"Cookie": f"{STATE_COOKIE}={cookie}"},
        )
        assert done.status == 200

    async def event(self, team: str, event: dict[str, Any]) -> None:
        body = json.dumps(
            {
                "token": "x",
                "team_id": team,
                "api_app_id": "A0001",
                "type": "event_callback",
                "event_id": f"Ev{time.monotonic_ns()}{next(self.counter)}",
                "event_time": int(time.time()),
                "event": event,
            }
        ).encode()
        response = await self.signed_post(body, "application/json")
        assert response.status == 200

    async def command(self, form: dict[str, str]) -> dict[str, Any]:
        """A slash command answered at once; returns the answer's JSON."""
        response = await self.signed_post(urlencode(form).encode())
        assert response.status == 200
        answer: dict[str, Any] = await response.json()
        return answer

    async def signed_post(
        self, body: bytes, content_type: str = "application/x-www-form-urlencoded"
    ) -> ClientResponse:
        """`body` to `/slack/events`, signed as Slack signs it."""
        ts = str(int(time.time()))
        signature = SignatureVerifier(SIGNING).generate_signature(timestamp=ts, body=body)
        headers = {
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": str(signature),
            "Content-Type": content_type,
        }
        return await self.client.post("/slack/events", data=body, headers=headers)

    async def prospect_says(self, team: str, channel: str, text: str) -> None:
        ts = self.api.add_message(channel, text, user=PROSPECT["user"])
        event = {"type": "message", "channel": channel, "channel_type": "channel", "text": text}
        await self.event(team, event | {"ts": ts, **PROSPECT})

    def bot_posts(self, channel: str) -> list[dict[str, Any]]:
        return [m for m in self.api.messages(channel) if m.get("bot_id")]

    async def slack_status(self) -> str:
        body = await (await self.client.get("/readyz")).json()
        return str(body["slack"])

    async def second_bot(self) -> str | None:
        installations = StoreInstallations(
            self.store, lambda: 0, TokenSeal([self.api.client_secret])
        )
        bot = await installations.async_find_bot(enterprise_id=None, team_id=SECOND)
        return None if bot is None else bot.bot_token


@asynccontextmanager
async def serving(
    api: FakeSlackApi,
    path: Path,
    token: str | None = "xoxb-test",
    *,
    socket: bool = False,
    **more: Any,
) -> AsyncIterator[Site]:
    """`token` None: no SLACK_BOT_TOKEN, only Add to Slack installations; `socket`: Socket
    Mode too (SLACK_APP_TOKEN); `more`: further settings."""
    store = await SqliteStore.open(path)
    settings = Settings(
        slack_bot_token=SecretStr(token) if token else None,
        slack_app_token=SecretStr(api.app_token) if socket else None,
        slack_signing_secret=SecretStr(SIGNING),
        slack_api_url=api.base_url,
        salesbot_public_url="https://bot.example.org",
        salesbot_action_secret=SecretStr("workspaces-action-secret"),
        slack_client_id=api.client_id,
        slack_client_secret=SecretStr(api.client_secret),
        **more,
    )
    try:
        service = build_service(
            settings,
            load_policy("default"),
            store,
            clock=lambda: int(time.time() * 1000),
            slack_client=make_client(token or "", api.base_url, timeout_s=2),
            slack_pacing_ms=0,
        )
        async with TestClient(TestServer(build_app(service), host="127.0.0.1")) as client:
            yield Site(client, store, api)
    finally:
        await store.close()


@pytest.fixture
async def api() -> AsyncIterator[FakeSlackApi]:
    async with FakeSlackApi(token="xoxb-test", team_id=FIRST) as api:
        api.grant("code-globex", token=SECOND_TOKEN, team_id=SECOND, team="Globex")
        yield api


async def test_each_workspace_is_answered_by_its_own_bot(api: FakeSlackApi, tmp_path: Path) -> None:
    async with serving(api, tmp_path / "bot.db") as site:
        await site.install("code-globex")
        await site.prospect_says(SECOND, SECOND_CHANNEL, "Hi, we are evaluating CRMs")
        await site.prospect_says(FIRST, FIRST_CHANNEL, "Hello, pricing please")
        await eventually(lambda: bool(site.bot_posts(SECOND_CHANNEL)), "the second's reply")
        await eventually(lambda: bool(site.bot_posts(FIRST_CHANNEL)), "the first's reply")

    second, first = site.bot_posts(SECOND_CHANNEL)[0], site.bot_posts(FIRST_CHANNEL)[0]
    assert (second["team"], second["user"]) == (SECOND, "UBOTT0002")
    assert (first["team"], first["user"]) == (FIRST, api.bot_user_id)


async def test_an_uninstall_deletes_only_that_workspaces_installation(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    async with serving(api, tmp_path / "bot.db") as site:
        await site.install("code-globex")
        assert await site.second_bot() == SECOND_TOKEN
        await site.event(SECOND, {"type": "app_uninstalled"})
        assert await site.second_bot() is None
        assert await site.slack_status() == "ok"  # the first workspace is not paused
        await site.prospect_says(FIRST, FIRST_CHANNEL, "Hello, pricing please")
        await eventually(lambda: bool(site.bot_posts(FIRST_CHANNEL)), "the first's reply")


async def test_a_revoked_bot_token_of_an_installed_workspace_deletes_its_bot(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    async with serving(api, tmp_path / "bot.db") as site:
        await site.install("code-globex")
        await site.event(SECOND, {"type": "tokens_revoked", "tokens": {"oauth": ["U0ADMIN"]}})
        assert await site.second_bot() == SECOND_TOKEN  # a user token: nothing changes
        revoked = {"type": "tokens_revoked", "tokens": {"bot": ["UBOTT0002"]}}
        await site.event(SECOND, revoked)
        assert await site.second_bot() is None
        assert await site.slack_status() == "ok"


async def test_a_paused_first_workspace_does_not_hold_another_workspaces_replies(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    async with serving(api, tmp_path / "bot.db") as site:
        await site.install("code-globex")
        await site.event(FIRST, {"type": "app_uninstalled"})
        assert await site.slack_status() == "paused: app_uninstalled"
        await site.prospect_says(SECOND, SECOND_CHANNEL, "Hi, we are evaluating CRMs")
        await eventually(lambda: bool(site.bot_posts(SECOND_CHANNEL)), "the second's reply")
        assert await site.second_bot() == SECOND_TOKEN


async def test_a_reinstall_after_an_uninstall_answers_again(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    async with serving(api, tmp_path / "bot.db") as site:
        await site.install("code-globex")
        await site.event(SECOND, {"type": "app_uninstalled"})
        api.grant("code-again", token="xoxb-globex-new", team_id=SECOND, team="Globex")
        await site.install("code-again")
        await site.prospect_says(SECOND, SECOND_CHANNEL, "Back again")
        await eventually(lambda: bool(site.bot_posts(SECOND_CHANNEL)), "the reply")
    assert site.bot_posts(SECOND_CHANNEL)[0]["team"] == SECOND


async def test_without_a_configured_token_only_installed_workspaces_are_served(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    async with serving(api, tmp_path / "bot.db", token=None) as site:
        assert await site.slack_status() == "ok"
        await site.prospect_says(FIRST, FIRST_CHANNEL, "Hello, pricing please")  # not installed
        await site.install("code-globex")
        await site.prospect_says(SECOND, SECOND_CHANNEL, "Hi, we are evaluating CRMs")
        await eventually(lambda: bool(site.bot_posts(SECOND_CHANNEL)), "the second's reply")
        form = {
            "command": "/salesbot",
            "text": "help",
            "team_id": FIRST,
            "channel_id": FIRST_CHANNEL,
            "user_id": "U0SOMEONE",
            "trigger_id": "1.2.3",
            "response_url": "https://hooks.slack.com/commands/T0001/1/x",
        }
        answer = await site.command(form)
        assert "not installed in this workspace" in answer["text"]
        assert await site.slack_status() == "ok"
    assert site.bot_posts(FIRST_CHANNEL) == []
    assert site.bot_posts(SECOND_CHANNEL)[0]["team"] == SECOND


async def test_socket_mode_without_a_configured_token_serves_an_installed_workspace(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    async with serving(api, tmp_path / "bot.db", token=None, socket=True) as site:
        await site.install("code-globex")
        ts = api.add_message(SECOND_CHANNEL, "Hi, we are evaluating CRMs", user="U0PAT")
        envelope = {
            "type": "event_callback",
            "team_id": SECOND,
            "api_app_id": "A0001",
            "event_id": "EvSocket1",
            "event_time": int(time.time()),
            "event": {
                "type": "message",
                "channel": SECOND_CHANNEL,
                "channel_type": "channel",
                "text": "Hi, we are evaluating CRMs",
                "ts": ts,
                **PROSPECT,
            },
            "authorizations": [{"team_id": SECOND, "user_id": "UBOTT0002", "is_bot": True}],
        }
        await asyncio.wait_for(api.push("events_api", envelope), timeout=10)  # a safety net
        await eventually(lambda: bool(site.bot_posts(SECOND_CHANNEL)), "the reply")
    reply = site.bot_posts(SECOND_CHANNEL)[0]
    assert (reply["team"], reply["user"], reply["thread_ts"]) == (SECOND, "UBOTT0002", ts)
