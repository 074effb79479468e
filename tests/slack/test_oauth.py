"""The "Add to Slack" flow through the real server, the SQLite store and a fake Slack on
127.0.0.1: `/slack/install` hands out a link with a state bound to the browser, and
`/slack/oauth_redirect` installs the workspace once for that state — every other visit (no
state, a foreign or used or expired state, a cancelled install, a refused code) is a clear
4xx page and installs nothing; Slack unreachable is a 502 page; a token is never logged."""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from adapters.slack.manifest import BOT_SCOPES
from adapters.slack.oauth import STATE_COOKIE
from adapters.slack.oauth_store import (
    STATE_PREFIX,
    STATE_TTL_MS,
    StoreInstallations,
    TokenSeal,
)
from adapters.slack.sender import make_client
from bot.policy_loader import load_policy
from bot.server import build_app
from bot.service import build_service
from bot.settings import Settings, SettingsError
from bot.surfaces.slack import section
from storage.sqlite import SqliteStore
from tests.fakes.slack_api import FakeSlackApi

SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"
PUBLIC = "https://bot.example.org"
NEW_TOKEN = "xoxb-globex-0000-secret"

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@dataclass
class Clock:
    now: int = 1_767_000_000_000

    def __call__(self) -> int:
        return self.now


@dataclass
class Site:
    """A browser on the bot's site. The state cookie is Secure (the public URL is https)
    while the test server is plain http, so the browser's cookie is kept here and sent
    back by hand, as a browser would over https."""

    client: TestClient[web.Request, web.Application]
    store: SqliteStore
    clock: Clock
    cookie: str | None = None

    async def start_install(self) -> str:
        """Open the install page like a browser; the state of its Add to Slack link."""
        response = await self.client.get("/slack/install")
        assert response.status == 200
        self.cookie = response.cookies[STATE_COOKIE].value
        page = await response.text()
        link = re.search(r'href="([^"]+)">Add to Slack<', page)
        assert link is not None
        query = parse_qs(urlsplit(unescape(link.group(1))).query)
        assert query["scope"] == [",".join(BOT_SCOPES)]
        assert query["redirect_uri"] == [f"{PUBLIC}/slack/oauth_redirect"]
        (state,) = query["state"]
        return state

    async def back_from_slack(self, **query: str) -> tuple[int, str]:
        headers = {"Cookie": f"{STATE_COOKIE}={self.cookie}"} if self.cookie else {}
        response = await self.client.get("/slack/oauth_redirect", params=query, headers=headers)
        return response.status, await response.text()

    async def bot_of(self, team: str) -> str | None:
        installations = StoreInstallations(
            self.store, self.clock, TokenSeal(["fake-client-secret"])
        )
        bot = await installations.async_find_bot(enterprise_id=None, team_id=team)
        return None if bot is None else bot.bot_token


def settings_for(api: FakeSlackApi, **extra: object) -> Settings:
    return Settings(
        slack_bot_token=SecretStr("xoxb-test"),
        slack_signing_secret=SecretStr(SIGNING),
        slack_api_url=api.base_url,
        salesbot_public_url=PUBLIC,
        salesbot_action_secret=SecretStr("oauth-action-secret"),
        slack_client_id=api.client_id,
        slack_client_secret=SecretStr(api.client_secret),
        **extra,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def serving(
    api: FakeSlackApi, path: Path, settings: Settings | None = None
) -> AsyncIterator[Site]:
    store = await SqliteStore.open(path)
    clock = Clock()
    try:
        service = build_service(
            settings or settings_for(api),
            load_policy("default"),
            store,
            clock=clock,
            slack_client=make_client("xoxb-test", api.base_url, timeout_s=2),
            slack_pacing_ms=0,
        )
        async with TestClient(TestServer(build_app(service), host="127.0.0.1")) as client:
            yield Site(client, store, clock)
    finally:
        await store.close()


@pytest.fixture
async def api() -> AsyncIterator[FakeSlackApi]:
    async with FakeSlackApi(token="xoxb-test") as api:
        yield api


async def test_add_to_slack_installs_the_workspace_with_its_own_bot_token(
    api: FakeSlackApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # As in production (`bot.logs`): libraries at WARNING, no access log.
    caplog.set_level(logging.WARNING, logger="slack_sdk")
    caplog.set_level(logging.WARNING, logger="aiohttp.access")
    api.grant("code-1", token=NEW_TOKEN, team_id="T0002", team="Globex")
    async with serving(api, tmp_path / "s.db") as site:
        state = await site.start_install()
        status, page = await site.back_from_slack(code="code-1", state=state)
        assert status == 200
        assert "salesbot was added to <b>Globex</b>" in page
        assert await site.bot_of("T0002") == NEW_TOKEN
    # The code exchanged, the new token checked, then (once per process) the configured
    # token's workspace asked, to tell the first workspace from an added one.
    assert [call.method for call in api.calls if call.method.startswith(("oauth", "auth"))][
        -3:
    ] == ["oauth.v2.access", "auth.test", "auth.test"]
    assert NEW_TOKEN not in caplog.text
    assert "code-1" not in caplog.text
    with sqlite3.connect(tmp_path / "s.db") as db:
        assert not [
            row for (row,) in db.execute("SELECT value FROM adapter_state") if NEW_TOKEN in row
        ]


async def test_the_install_page_sets_a_browser_bound_state_cookie(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    async with serving(api, tmp_path / "s.db") as site:
        response = await site.client.get("/slack/install")
        cookie = response.cookies[STATE_COOKIE]
        assert cookie["httponly"]
        assert cookie["secure"]
        assert cookie["samesite"] == "Lax"
        assert cookie["path"] == "/slack"
        assert response.headers["Cache-Control"] == "no-store"


async def test_a_state_works_once(api: FakeSlackApi, tmp_path: Path) -> None:
    api.grant("code-1", token=NEW_TOKEN, team_id="T0002")
    api.grant("code-2", token="xoxb-other", team_id="T0003")
    async with serving(api, tmp_path / "s.db") as site:
        state = await site.start_install()
        assert (await site.back_from_slack(code="code-1", state=state))[0] == 200
        site.cookie = state  # the same browser, back again with the same link
        status, page = await site.back_from_slack(code="code-2", state=state)
        assert status == 400
        assert "expired or was already used" in page
        assert await site.bot_of("T0003") is None


async def test_an_expired_state_is_refused(api: FakeSlackApi, tmp_path: Path) -> None:
    api.grant("code-1", token=NEW_TOKEN, team_id="T0002")
    async with serving(api, tmp_path / "s.db") as site:
        state = await site.start_install()
        site.clock.now += STATE_TTL_MS
        status, page = await site.back_from_slack(code="code-1", state=state)
        assert status == 400
        assert "expired" in page
        assert await site.bot_of("T0002") is None
    assert not api.calls_of("oauth.v2.access")


async def test_an_install_link_nobody_came_back_with_is_deleted_once_expired(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    path = tmp_path / "s.db"
    async with serving(api, path) as site:
        abandoned = await site.start_install()
        kept = await site.start_install()
        # Made a whole time to live before the others (the injected clock).
        key = f"{STATE_PREFIX}{abandoned}"
        record = await site.store.get_state(key)
        assert record is not None
        await site.store.put_state(key, record, site.clock.now - STATE_TTL_MS)
    # The next start sweeps the expired states (then every minute), not the others.
    async with serving(api, path) as site:
        assert await site.store.get_state(key) is None
        assert await site.store.get_state(f"{STATE_PREFIX}{kept}") is not None


async def test_a_state_from_another_browser_is_refused(api: FakeSlackApi, tmp_path: Path) -> None:
    api.grant("code-1", token=NEW_TOKEN, team_id="T0002")
    async with serving(api, tmp_path / "s.db") as site:
        state = await site.start_install()
        site.cookie = None
        status, page = await site.back_from_slack(code="code-1", state=state)
        assert status == 400
        assert "started elsewhere" in page
        assert await site.bot_of("T0002") is None


@pytest.mark.parametrize(
    "query",
    [{}, {"code": "code-1"}, {"state": "x" * 43}, {"code": "c" * 600, "state": "s" * 43}],
)
async def test_a_visit_without_slacks_code_and_state_is_a_400(
    api: FakeSlackApi, tmp_path: Path, query: dict[str, str]
) -> None:
    async with serving(api, tmp_path / "s.db") as site:
        status, page = await site.back_from_slack(**query)
        assert status == 400
        assert "Start the installation again" in page


async def test_a_cancelled_install_is_a_400_and_installs_nothing(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    async with serving(api, tmp_path / "s.db") as site:
        state = await site.start_install()
        status, page = await site.back_from_slack(error="access_denied", state=state)
        assert status == 400
        assert "access_denied" in page
        status, page = await site.back_from_slack(error="<script>alert(1)</script>")
        assert status == 400
        assert "<script>" not in page
    assert not api.calls_of("oauth.v2.access")


async def test_a_code_slack_refuses_is_a_400(api: FakeSlackApi, tmp_path: Path) -> None:
    async with serving(api, tmp_path / "s.db") as site:
        state = await site.start_install()
        status, page = await site.back_from_slack(code="never-granted", state=state)
        assert status == 400
        assert "invalid_code" in page


async def test_slack_down_or_wrong_credentials_is_a_502_page(
    api: FakeSlackApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api.grant("code-1", token=NEW_TOKEN, team_id="T0002")
    api.fail_next("oauth.v2.access", status=503)
    async with serving(api, tmp_path / "s.db") as site:
        status, page = await site.back_from_slack(code="code-1", state=await site.start_install())
        assert status == 502
        assert "Nothing was installed" in page
        api.client_secret = "rotated-in-slack"
        status, _ = await site.back_from_slack(code="code-1", state=await site.start_install())
        assert status == 502
        assert "bad_client_secret" in caplog.text
        assert await site.bot_of("T0002") is None


async def test_without_client_credentials_no_install_route_is_served(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    settings = settings_for(api).model_copy(
        update={"slack_client_id": None, "slack_client_secret": None}
    )
    async with serving(api, tmp_path / "s.db", settings) as site:
        assert (await site.client.get("/slack/install")).status == 404
        assert (await site.client.get("/slack/oauth_redirect")).status == 404


def test_a_client_id_without_its_secret_is_refused_naming_the_variable() -> None:
    settings = Settings(
        slack_bot_token=SecretStr("xoxb-test"),
        slack_signing_secret=SecretStr(SIGNING),
        slack_client_id="1111.2222",
    )
    with pytest.raises(SettingsError, match="SLACK_CLIENT_SECRET"):
        section(settings)


def test_client_credentials_alone_configure_slack_without_a_bot_token() -> None:
    settings = Settings(
        slack_signing_secret=SecretStr(SIGNING),
        slack_client_id="1111.2222",
        slack_client_secret=SecretStr("secret"),
    )
    configured = section(settings)
    assert configured is not None
    assert configured.bot_token is None
    assert configured.oauth
    assert section(Settings(slack_signing_secret=SecretStr(SIGNING))) is None
