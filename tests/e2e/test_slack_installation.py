"""A revocation pauses only what it names (RELIABILITY.md rule 9), through the real server,
the SQLite store and a fake Slack Web API on 127.0.0.1.

A revoked *user* token changes nothing for the bot; a revoked *bot* token or an uninstall
pauses the workspace's replies: they stay in the outbox (no attempt counted, not an hour
away), the pause survives a restart, and a working token (`auth.test`) lifts it, after
which the kept replies go out in order. Time moves by the injected clock only.
"""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from adapters.slack.installation import CHECK_EVERY_MS, RECHECK_MS
from adapters.slack.sender import make_client
from bot.pause import HOLD_MS
from bot.policy_loader import load_policy
from bot.server import build_app
from bot.service import build_service
from bot.settings import Settings
from storage.sqlite import SqliteStore
from tests.e2e.harness import eventually, outbox_drained
from tests.fakes.slack_api import FakeSlackApi

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM, BOT, BOT_ID = "T0001", "UBOT", "BBOT"
SHARED = "C0SHARED"
PROSPECT = {"user": "U0PAT", "user_team": "T0ACME"}
REP = "U0REP"
WORDS = ["Hello again?", "Are you there?", "We have a $5000 budget", "Anyone?"]

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@dataclass
class Clock:
    """Wall time (Slack's signatures are checked against it) plus what the test advanced."""

    offset_ms: int = 0
    _ticks: itertools.count[int] = field(default_factory=itertools.count)

    def __call__(self) -> int:
        return int(time.time() * 1000) + self.offset_ms + next(self._ticks)

    def advance(self, ms: int) -> None:
        self.offset_ms += ms


@dataclass
class Bot:
    client: TestClient[web.Request, web.Application]
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def event(self, event: dict[str, Any], *, team: str = TEAM) -> ClientResponse:
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
        ts = str(int(time.time()))
        signature = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
        headers = {
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": str(signature),
            "Content-Type": "application/json",
        }
        return await self.client.post("/slack/events", data=body, headers=headers)

    async def ready(self) -> dict[str, Any]:
        response = await self.client.get("/readyz")
        assert response.status == 200  # a paused platform never fails readiness
        body: dict[str, Any] = await response.json()
        return body


def settings_for(api: FakeSlackApi, token: str = "xoxb-test") -> Settings:
    return Settings(
        slack_bot_token=SecretStr(token),
        slack_signing_secret=SecretStr(SECRET),
        slack_api_url=api.base_url,
        salesbot_action_secret=SecretStr("e2e-action-secret"),
    )


@asynccontextmanager
async def serving(
    api: FakeSlackApi, path: Path, clock: Clock, token: str = "xoxb-test"
) -> AsyncIterator[Bot]:
    """`salesbot serve` on the SQLite file at `path`, with the injected clock; leaving it is
    a graceful stop, entering it again on the same file a restart."""
    store = await SqliteStore.open(path)
    try:
        service = build_service(
            settings_for(api, token),
            load_policy("default"),
            store,
            clock=clock,
            slack_client=make_client(token, api.base_url, timeout_s=2),
            slack_pacing_ms=0,
        )
        assert service.slack_installation is not None
        service.slack_installation.tick_s = 0.01  # look often whether the clock made a check due
        async with TestClient(TestServer(build_app(service), host="127.0.0.1")) as client:
            yield Bot(client)
    finally:
        await store.close()


@pytest.fixture
async def api() -> AsyncIterator[FakeSlackApi]:
    async with FakeSlackApi(token="xoxb-test", team_id=TEAM, bot_user_id=BOT, bot_id=BOT_ID) as api:
        api.add_user(REP, name="rae")
        yield api


def prospect_says(api: FakeSlackApi, text: str, thread: str | None = None) -> dict[str, Any]:
    ts = api.add_message(SHARED, text, user=PROSPECT["user"], thread_ts=thread)
    event = {"type": "message", "channel": SHARED, "channel_type": "channel", "text": text}
    return event | {"ts": ts, **PROSPECT} | ({"thread_ts": thread} if thread else {})


def bot_posts(api: FakeSlackApi) -> list[dict[str, Any]]:
    return [m for m in api.messages(SHARED) if m.get("user") == BOT or m.get("bot_id")]


def outbox(path: Path) -> list[tuple[str, str, int, int, str | None]]:
    """(key, status, attempts, available_at_ms, last_error) of every item, oldest first."""
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT key, status, attempts, available_at_ms, last_error FROM outbox ORDER BY id"
        ).fetchall()


def held_until(path: Path, key: str) -> int:
    with sqlite3.connect(path) as conn:
        (available_at_ms,) = conn.execute(
            "SELECT available_at_ms FROM outbox WHERE key = ?", (key,)
        ).fetchone()
    return int(available_at_ms)


async def held(path: Path, key: str, clock: Clock) -> None:
    """Wait until the outbox has offered `key` and put it back for later: moving the clock
    after that makes it due (moving it before would only delay the hold)."""
    await eventually(lambda: held_until(path, key) > clock(), f"{key} to be held")


def posted_keys(api: FakeSlackApi) -> list[str]:
    return [str(m["metadata"]["event_payload"]["key"]) for m in bot_posts(api)]


async def open_thread(api: FakeSlackApi, bot: Bot) -> str:
    """A prospect's thread the bot has answered once: Slack and the bot know each other."""
    first = prospect_says(api, "Hi, we are evaluating CRMs")
    assert (await bot.event(first)).status == 200
    await eventually(lambda: len(bot_posts(api)) == 1, "the greeting")
    return str(first["ts"])


async def keep_replies(api: FakeSlackApi, bot: Bot, path: Path, thread: str) -> list[str]:
    """The prospect goes on talking while the installation is paused: the replies are
    decided and kept. Returns the kept items' keys, oldest first."""
    for text in WORDS:
        assert (await bot.event(prospect_says(api, text, thread))).status == 200
    await eventually(
        lambda: len([row for row in outbox(path) if row[1] != "sent"]) >= len(WORDS) - 1,
        "the replies to be decided",
    )
    return [key for key, status, *_ in outbox(path) if status != "sent"]


def assert_kept(path: Path, keys: list[str], clock: Clock) -> None:
    """Pending, no attempt spent, nothing dead-lettered, due again within a hold (not in an
    hour)."""
    rows = {row[0]: row for row in outbox(path)}
    assert [row for row in rows.values() if row[1] == "dead"] == []
    now = clock()
    for key in keys:
        _, status, attempts, available_at_ms, _ = rows[key]
        assert status in ("pending", "in_flight")
        assert attempts == 0
        assert available_at_ms <= now + HOLD_MS


async def test_a_revoked_user_token_leaves_the_bots_replies_flowing(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    path, clock = tmp_path / "bot.db", Clock()
    async with serving(api, path, clock) as bot:
        thread = await open_thread(api, bot)
        revoked = {"type": "tokens_revoked", "tokens": {"oauth": [REP, PROSPECT["user"]]}}
        assert (await bot.event(revoked)).status == 200
        assert (await bot.ready())["slack"] == "ok"
        assert (await bot.event(prospect_says(api, "Still there?", thread))).status == 200
        await eventually(lambda: len(bot_posts(api)) == 2, "the reply after the revocation")
        await outbox_drained(bot.client)
        assert (await bot.ready())["slack"] == "ok"


async def test_a_revoked_bot_token_pauses_until_auth_test_succeeds_even_across_a_restart(
    api: FakeSlackApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path, clock = tmp_path / "bot.db", Clock()
    async with serving(api, path, clock) as bot:
        thread = await open_thread(api, bot)
        api.revoke_token()
        revoked = {"type": "tokens_revoked", "tokens": {"oauth": [REP], "bot": [BOT]}}
        assert (await bot.event(revoked)).status == 200
        assert (await bot.ready())["slack"] == "paused: bot token revoked"
        kept = await keep_replies(api, bot, path, thread)
        for _ in range(10):  # more holds than the outbox's attempts: none is spent
            clock.advance(HOLD_MS)
            await held(path, kept[0], clock)
        assert_kept(path, kept, clock)
        assert len(api.calls_of("chat.postMessage")) == 1  # no post was even tried

    checks = len(api.calls_of("auth.test"))
    async with serving(api, path, clock) as bot:
        await eventually(lambda: len(api.calls_of("auth.test")) > checks, "the check at start")
        assert (await bot.ready())["slack"].startswith("paused: ")
        assert_kept(path, kept, clock)
        assert len(bot_posts(api)) == 1

        api.restore_token()
        clock.advance(CHECK_EVERY_MS)
        await eventually(lambda: len(bot_posts(api)) == 1 + len(kept), "the kept replies")
        await outbox_drained(bot.client)
        assert (await bot.ready())["slack"] == "ok"
    assert len(kept) >= 3
    lines = [r.getMessage() for r in caplog.records if r.name == "adapters.slack.installation"]
    assert [line.split(":")[0] for line in lines if "paused:" in line or "resumed:" in line] == [
        "slack installation T0001 paused",
        "slack installation T0001 resumed",
    ]
    assert "xoxb" not in caplog.text
    assert not any(word in caplog.text for word in WORDS)
    assert posted_keys(api)[1:] == kept  # in the order they were decided
    assert all(m.get("thread_ts") == thread for m in bot_posts(api)[1:])


async def test_an_uninstall_pauses_and_a_reinstall_with_a_new_token_lifts_it_at_start(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    path, clock = tmp_path / "bot.db", Clock()
    async with serving(api, path, clock) as bot:
        thread = await open_thread(api, bot)
        api.revoke_token()
        # Slack revokes the tokens, then says the app is gone.
        assert (await bot.event({"type": "tokens_revoked", "tokens": {"bot": [BOT]}})).status == 200
        assert (await bot.event({"type": "app_uninstalled"})).status == 200
        assert (await bot.ready())["slack"] == "paused: app_uninstalled"
        kept = await keep_replies(api, bot, path, thread)
        await held(path, kept[0], clock)
        clock.advance(CHECK_EVERY_MS)  # the periodic check: still revoked
        checks = len(api.calls_of("auth.test"))
        await eventually(lambda: len(api.calls_of("auth.test")) > checks, "a periodic check")
        assert (await bot.ready())["slack"] == "paused: app_uninstalled"
        assert_kept(path, kept, clock)

    async with serving(api, path, clock) as bot:  # restarted, still the old token
        await eventually(lambda: len(api.calls_of("auth.test")) > checks + 1, "the check at start")
        assert (await bot.ready())["slack"] == "paused: app_uninstalled"
        assert len(bot_posts(api)) == 1

    # Installed again: Slack issues a new bot token, the operator configures it and restarts.
    api.token = "xoxb-reinstalled"
    api.restore_token()
    # A minute later: past the hold, and past the lease of an item the stopped process had
    # in hand (releasing leases at shutdown is another part of issue 11).
    clock.advance(CHECK_EVERY_MS)
    async with serving(api, path, clock, token="xoxb-reinstalled") as bot:
        await eventually(lambda: len(bot_posts(api)) == 1 + len(kept), "the kept replies")
        await outbox_drained(bot.client)
        assert (await bot.ready())["slack"] == "ok"
    assert posted_keys(api)[1:] == kept


async def test_a_request_from_the_paused_workspace_checks_the_token_at_once(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    path, clock = tmp_path / "bot.db", Clock()
    async with serving(api, path, clock) as bot:
        thread = await open_thread(api, bot)
        api.revoke_token()
        assert (await bot.event({"type": "app_uninstalled"})).status == 200
        kept = await keep_replies(api, bot, path, thread)
        await held(path, kept[0], clock)
        api.restore_token()  # installed again with the same token
        clock.advance(RECHECK_MS)  # well before the minute's check
        home = {"type": "app_home_opened", "user": REP, "channel": "D0REP", "tab": "home"}
        assert (await bot.event(home)).status == 200
        await eventually(lambda: len(bot_posts(api)) == 1 + len(kept), "the kept replies")
        assert (await bot.ready())["slack"] == "ok"
        assert posted_keys(api)[1:] == kept


async def test_an_uninstall_in_another_workspace_pauses_nothing_here(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    path, clock = tmp_path / "bot.db", Clock()
    async with serving(api, path, clock) as bot:
        thread = await open_thread(api, bot)
        await eventually(lambda: len(api.calls_of("auth.test")) >= 1, "the check at start")
        assert (await bot.event({"type": "app_uninstalled"}, team="T0OTHER")).status == 200
        other = {"type": "tokens_revoked", "tokens": {"bot": ["UOTHERBOT"]}}
        assert (await bot.event(other)).status == 200  # not this bot's user
        assert (await bot.ready())["slack"] == "ok"
        assert (await bot.event(prospect_says(api, "Still there?", thread))).status == 200
        await eventually(lambda: len(bot_posts(api)) == 2, "the reply")


async def test_a_token_slack_refuses_while_sending_pauses_instead_of_dead_lettering(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    """The revocation's event may come after the outbox has tried: the refusal itself pauses."""
    path, clock = tmp_path / "bot.db", Clock()
    async with serving(api, path, clock) as bot:
        thread = await open_thread(api, bot)
        api.fail_next("chat.postMessage", error="token_revoked")
        assert (await bot.event(prospect_says(api, "Hello?", thread))).status == 200
        await eventually(lambda: len(api.calls_of("chat.postMessage")) == 2, "the refused send")
        kept = [key for key, status, *_ in outbox(path) if status != "sent"]
        assert len(kept) == 1
        await held(path, kept[0], clock)
        assert (await bot.ready())["slack"] == "paused: Slack answered token_revoked"
        assert_kept(path, kept, clock)
        clock.advance(CHECK_EVERY_MS)  # the token works again (the fault was one answer)
        await eventually(lambda: len(bot_posts(api)) == 2, "the kept reply")
        assert (await bot.ready())["slack"] == "ok"
