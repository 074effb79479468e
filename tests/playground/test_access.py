"""Who may use the playground: the mode decided at start, and each request's Host, Origin
and token, checked on every route (page, static files, history, WebSocket, posts)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.action_binding import ActionKey
from adapters.loopback import is_loopback_host
from adapters.playground.access import (
    COOKIE,
    PlaygroundAccess,
    PlaygroundRefusedError,
)
from adapters.playground.hub import PlaygroundHub
from adapters.playground.web import add_routes
from domain.inbound import Inbound

TOKEN = "correct-horse-battery-staple"
KEY = ActionKey(b"access test key")
NOW_MS = 1_790_000_000_000
WS_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}

Client = TestClient[web.Request, web.Application]


# --- the mode, decided at start ---------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2", "LOCALHOST"])
def test_on_loopback_alone_the_playground_is_local_only(host: str) -> None:
    access = PlaygroundAccess.decide(host=host, token=None, platforms=[])
    assert not access.token_required
    assert access.startup_line("http://127.0.0.1:3000/") == (
        "playground: local only at http://127.0.0.1:3000/"
    )


@pytest.mark.parametrize(
    ("host", "platforms", "says"),
    [
        ("0.0.0.0", [], "on '0.0.0.0'"),
        ("::", [], "on '::'"),
        ("bot.example.org", [], "on 'bot.example.org'"),
        ("192.168.1.5", [], "on '192.168.1.5'"),
        ("127.0.0.1", ["Slack"], "beside Slack"),
        ("127.0.0.1", ["Teams"], "beside Teams"),
        ("0.0.0.0", ["Slack", "Teams"], "on '0.0.0.0' and beside Slack and Teams"),
    ],
)
def test_off_loopback_or_beside_a_platform_it_is_refused_without_a_token(
    host: str, platforms: list[str], says: str
) -> None:
    with pytest.raises(PlaygroundRefusedError) as refused:
        PlaygroundAccess.decide(host=host, token=None, platforms=platforms)
    message = str(refused.value)
    assert says in message
    assert "SALESBOT_PLAYGROUND_TOKEN" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("host", "platforms", "why"),
    [
        ("0.0.0.0", [], " (off loopback)"),
        ("127.0.0.1", ["Slack"], " (beside Slack)"),
        ("0.0.0.0", ["Slack"], " (off loopback, beside Slack)"),
        ("127.0.0.1", [], ""),
    ],
)
def test_with_a_token_it_starts_and_the_line_says_the_token_is_required(
    host: str, platforms: list[str], why: str
) -> None:
    access = PlaygroundAccess.decide(host=host, token=TOKEN, platforms=platforms)
    assert access.token_required
    line = access.startup_line("http://0.0.0.0:3000/")
    assert line.startswith(f"playground: token required{why} at http://0.0.0.0:3000/")
    assert TOKEN not in line


def test_the_token_never_shows_in_a_repr() -> None:
    access = PlaygroundAccess.decide(host="0.0.0.0", token=TOKEN, platforms=[])
    assert TOKEN not in repr(access)
    assert TOKEN not in str(access)


def test_a_short_token_is_refused() -> None:
    with pytest.raises(PlaygroundRefusedError, match="at least 16 characters"):
        PlaygroundAccess.decide(host="0.0.0.0", token="short", platforms=[])


@pytest.mark.parametrize(
    ("name", "loopback"),
    [
        ("127.0.0.1", True),
        ("[::1]", True),
        ("localhost.", True),
        ("0.0.0.0", False),
        ("localhost.attacker.example", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
    ],
)
def test_loopback_names(name: str, loopback: bool) -> None:
    assert is_loopback_host(name) is loopback


# --- every request, through the routes --------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.inbounds: list[Inbound] = []

    async def __call__(self, inbound: Inbound) -> object:
        self.inbounds.append(inbound)
        return None


@pytest.fixture
def handle() -> Recorder:
    return Recorder()


async def _client(access: PlaygroundAccess, handle: Recorder) -> Client:
    app = web.Application()
    hub = PlaygroundHub(action_key=KEY, clock=lambda: NOW_MS)
    add_routes(app, hub, handle, clock=lambda: NOW_MS, action_key=KEY, access=access)
    return TestClient(TestServer(app, host="127.0.0.1"))


@pytest.fixture
async def local(handle: Recorder) -> AsyncIterator[Client]:
    async with await _client(PlaygroundAccess(), handle) as client:
        yield client


@pytest.fixture
async def guarded(handle: Recorder) -> AsyncIterator[Client]:
    access = PlaygroundAccess.decide(host="0.0.0.0", token=TOKEN, platforms=[])
    async with await _client(access, handle) as client:
        yield client


ROUTES = [
    ("GET", "/"),
    ("GET", "/playground/static/playground.js"),
    ("GET", "/playground/history"),
    ("GET", "/playground/tickets"),
    ("GET", "/playground/ws"),
    ("POST", "/playground/send"),
    ("POST", "/playground/click"),
]
SEND = {"role": "rep", "conversation": "playground:abc", "text": "/audit playground:abc"}


async def _request(
    client: Client, method: str, path: str, headers: dict[str, str]
) -> tuple[int, str]:
    if path == "/playground/ws":
        headers = {**WS_HEADERS, **headers}
    body = SEND if path == "/playground/send" else {"conversation": "c", "action": "escalate"}
    if method == "POST":
        response = await client.post(path, json=body, headers=headers)
    else:
        response = await client.get(path, headers=headers)
    async with response:
        return response.status, await response.text()


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:3000", "127.0.0.1.nip.io", "0.0.0.0:80"]
)
async def test_a_dns_rebinding_page_is_refused_on_every_route(
    local: Client, handle: Recorder, method: str, path: str, host: str
) -> None:
    """The attacker's name resolves to 127.0.0.1, so the browser connects here, but it
    says whose page it is in `Host` (and `Origin`, same-origin to the attacker)."""
    status, text = await _request(local, method, path, {"Host": host, "Origin": f"http://{host}"})
    assert status == 403, text
    assert "127.0.0.1, localhost or [::1]" in text
    assert handle.inbounds == []


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost:3000", "[::1]:3000", "localhost"])
async def test_a_loopback_host_with_any_port_is_served(local: Client, host: str) -> None:
    response = await local.get("/playground/history", headers={"Host": host})
    assert response.status == 200


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_another_origin_is_refused_on_every_route(
    local: Client, handle: Recorder, method: str, path: str
) -> None:
    status, text = await _request(local, method, path, {"Origin": "http://evil.example"})
    assert status == 403, text
    assert handle.inbounds == []


async def test_an_origin_of_null_is_refused(local: Client, handle: Recorder) -> None:
    response = await local.post("/playground/send", json=SEND, headers={"Origin": "null"})
    assert response.status == 403
    assert handle.inbounds == []


async def test_the_same_origin_is_served(local: Client, handle: Recorder) -> None:
    origin = f"http://127.0.0.1:{local.port}"
    response = await local.post("/playground/send", json=SEND, headers={"Origin": origin})
    assert response.status == 200
    assert len(handle.inbounds) == 1


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token-of-some-length", f"Basic {TOKEN}", "Bearer "]
)
async def test_with_a_token_every_route_needs_it(
    guarded: Client, handle: Recorder, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Host": "bot.example.org"}
    if authorization is not None:
        headers["Authorization"] = authorization
    status, text = await _request(guarded, method, path, headers)
    assert status == 401, text
    assert "token" in text
    assert TOKEN not in text
    assert handle.inbounds == []


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_with_the_token_as_a_bearer_every_route_is_served_on_any_host(
    guarded: Client, method: str, path: str
) -> None:
    headers = {"Host": "bot.example.org", "Authorization": f"Bearer {TOKEN}"}
    status, text = await _request(guarded, method, path, headers)
    assert status in (101, 200), text


async def test_with_a_token_another_origin_is_still_refused(
    guarded: Client, handle: Recorder
) -> None:
    response = await guarded.post(
        "/playground/send",
        json=SEND,
        headers={"Authorization": f"Bearer {TOKEN}", "Origin": "https://evil.example"},
    )
    assert response.status == 403
    assert handle.inbounds == []


async def test_the_token_in_the_address_is_exchanged_for_a_strict_http_only_cookie(
    guarded: Client, handle: Recorder
) -> None:
    response = await guarded.get(f"/?token={TOKEN}", allow_redirects=False)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    page = await response.text()
    assert 'http-equiv="refresh" content="0; url=/"' in page
    assert TOKEN not in page
    cookie = response.cookies[COOKIE]
    assert cookie.value
    assert cookie.value != TOKEN
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    # The browser now sends the cookie with everything it asks for.
    page_again = await guarded.get("/")
    assert page_again.status == 200
    assert "composer-input" in await page_again.text()
    sent = await guarded.post("/playground/send", json=SEND)
    assert sent.status == 200
    assert len(handle.inbounds) == 1
    async with guarded.ws_connect("/playground/ws") as ws:
        assert not ws.closed


async def test_a_wrong_token_in_the_address_sets_no_cookie(guarded: Client) -> None:
    response = await guarded.get("/?token=not-the-token-at-all")
    assert response.status == 401
    assert COOKIE not in response.cookies
    assert (await guarded.get("/playground/history")).status == 401


async def test_a_forged_cookie_is_refused(guarded: Client) -> None:
    guarded.session.cookie_jar.update_cookies({COOKIE: TOKEN})
    assert (await guarded.get("/playground/history")).status == 401


async def test_local_only_ignores_a_token_in_the_address(local: Client) -> None:
    response = await local.get("/?token=anything")
    assert response.status == 200
    assert COOKIE not in response.cookies
