"""The Teams connector client against a fake Bot Framework connector on 127.0.0.1: how each
answer becomes an outbox outcome (what on-call sees as "sent", "will retry" or "gave up"),
where the bot's token goes, and which service URLs it is ever sent to."""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from adapters.ports import Rejected, RetryLater, Sent, TimedOut
from adapters.teams.connector import (
    CONNECTIONS,
    Connector,
    ConnectorError,
    Gone,
    MsalTokenProvider,
    NoToken,
    TokenProvider,
    check_service_url,
)
from tests.fakes.teams_connector import FakeConnector, thread_id

CHANNEL = "19:abc123@thread.tacv2"
TENANT = "tenant-0001"
BOT = {"id": "28:bot", "name": "Salesbot"}
ROSTER = {
    "aad-ada": {"id": "29:ada", "name": "Ada Lovelace"},
    "29:gus": {"name": "Gus Guest", "aadObjectId": "aad-gus", "userRole": "guest"},
}


def message(text: str = "hello") -> dict[str, object]:
    return {"type": "message", "text": text}


class StaticToken:
    def __init__(self, token: str) -> None:
        self.value = token

    async def token(self) -> str | None:
        return self.value


class BrokenToken:
    async def token(self) -> str | None:
        raise OSError("Entra is unreachable")


@pytest.fixture
async def fake() -> AsyncIterator[FakeConnector]:
    async with FakeConnector(members=ROSTER, tenant_id=TENANT) as connector:
        yield connector


@asynccontextmanager
async def client(
    tokens: TokenProvider | None = None, *, timeout_s: float = 5.0
) -> AsyncIterator[Connector]:
    connector = Connector(tokens or NoToken(), timeout_s=timeout_s)
    try:
        yield connector
    finally:
        await connector.close()


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with client() as connector:
        yield connector


@dataclass
class Scripted:
    """A server answering every request with one scripted response (for what the fake does not
    script: redirects, HTTP-date `Retry-After`), keeping the raw request bodies."""

    base_url: str
    bodies: list[bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@asynccontextmanager
async def answering(
    status: int, headers: dict[str, str] | None = None, body: bytes = b'{"id": "1"}'
) -> AsyncIterator[Scripted]:
    seen = Scripted(base_url="")

    async def handle(request: web.Request) -> web.Response:
        seen.paths.append(request.rel_url.raw_path)
        seen.bodies.append(await request.read())
        return web.Response(
            status=status, headers=headers, body=body, content_type="application/json"
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    seen.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        yield seen
    finally:
        await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- answers as outcomes ---------------------------------------------------------------------


async def test_an_accepted_post_is_sent_with_the_activity_id_teams_gave_it(fake, connector):
    outcome = await connector.post(fake.base_url, CHANNEL, message("hi"))

    [posted] = fake.posted(CHANNEL)
    assert outcome == Sent(remote_id=posted["id"])
    assert posted["text"] == "hi"


async def test_a_throttled_post_waits_as_long_as_retry_after_says(fake, connector):
    fake.fail_next("send", status=429, retry_after=7)

    outcome = await connector.post(fake.base_url, CHANNEL, message())

    assert isinstance(outcome, RetryLater)
    assert outcome.retry_after_ms == 7000
    assert fake.posted(CHANNEL) == []


async def test_a_retry_after_given_as_an_http_date_is_read_as_the_time_until_then(connector):
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    async with answering(429, {"Retry-After": later}) as server:
        outcome = await connector.post(server.base_url, CHANNEL, message())

    assert isinstance(outcome, RetryLater)
    assert outcome.retry_after_ms is not None
    assert 100_000 <= outcome.retry_after_ms <= 121_000


@pytest.mark.parametrize("status", [500, 502, 503, 412])
async def test_a_server_side_failure_is_retried_later_after_one_request(fake, connector, status):
    fake.fail_next("send", status=status)

    outcome = await connector.post(fake.base_url, CHANNEL, message())

    assert isinstance(outcome, RetryLater)
    assert str(status) in outcome.reason
    assert len(fake.calls) == 1
    assert fake.posted(CHANNEL) == []


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_a_refusal_is_rejected_and_never_retried(fake, connector, status):
    fake.fail_next("send", status=status)

    outcome = await connector.post(fake.base_url, CHANNEL, message())

    assert type(outcome) is Rejected
    assert str(status) in outcome.reason
    assert len(fake.calls) == 1


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_rejected_and_not_followed(connector, status):
    async with answering(status, {"Location": "/elsewhere"}, b"") as server:
        outcome = await connector.post(server.base_url, CHANNEL, message())

    assert isinstance(outcome, Rejected)
    assert "redirect" in outcome.reason
    assert len(server.paths) == 1
    assert "/elsewhere" not in server.paths


async def test_a_refused_connection_is_retried_later_since_nothing_was_sent(connector):
    url = f"http://127.0.0.1:{closed_port()}/"

    outcome = await connector.post(url, CHANNEL, message())

    assert isinstance(outcome, RetryLater)


async def test_an_answer_that_never_comes_is_a_timeout_though_teams_posted_it(fake):
    release = fake.hang_next("send")
    async with client(timeout_s=0.2) as connector:
        outcome = await connector.post(fake.base_url, CHANNEL, message())
    release.set()

    assert isinstance(outcome, TimedOut)
    assert len(fake.posted(CHANNEL)) == 1  # why the outbox must not treat it as "not sent"


async def test_a_connection_dropped_after_the_request_is_a_timeout(fake, connector):
    fake.drop_next("send")

    outcome = await connector.post(fake.base_url, CHANNEL, message())

    assert isinstance(outcome, TimedOut)
    assert len(fake.posted(CHANNEL)) == 1


async def test_an_update_replaces_the_card_in_place_and_a_vanished_one_is_gone(fake, connector):
    posted = await connector.post(fake.base_url, CHANNEL, message("v1"))
    assert isinstance(posted, Sent)
    assert posted.remote_id is not None

    updated = await connector.update(fake.base_url, CHANNEL, posted.remote_id, message("v2"))
    missing = await connector.update(fake.base_url, CHANNEL, "404404", message("v2"))

    assert updated == Sent(remote_id=posted.remote_id)
    assert fake.activity(CHANNEL, posted.remote_id) == {
        "type": "message",
        "text": "v2",
        "id": posted.remote_id,
    }
    assert [call.method for call in fake.calls_of("update")] == ["PUT", "PUT"]
    assert isinstance(missing, Gone)


async def test_non_ascii_text_is_sent_as_utf_8_not_as_escapes(connector):
    # The card renderer measures cards as UTF-8; `\uXXXX` escapes would double their size.
    async with answering(201) as server:
        await connector.post(server.base_url, CHANNEL, message("Größe 価格"))

    [body] = server.bodies
    assert "Größe 価格".encode() in body
    assert json.loads(body)["text"] == "Größe 価格"


async def test_a_broken_emoji_from_a_user_is_still_sent(connector):
    async with answering(201) as server:
        outcome = await connector.post(server.base_url, CHANNEL, message("hi \ud83d"))

    assert isinstance(outcome, Sent)
    [body] = server.bodies
    assert json.loads(body)["text"] == "hi \ud83d"


# --- the token -------------------------------------------------------------------------------


async def test_the_bots_token_is_sent_as_a_bearer_token():
    async with FakeConnector(token="tok") as fake, client(StaticToken("tok")) as connector:
        outcome = await connector.post(fake.base_url, CHANNEL, message())

    assert isinstance(outcome, Sent)
    assert fake.calls[-1].authorization


async def test_a_token_the_connector_does_not_accept_is_rejected():
    async with FakeConnector(token="tok") as fake, client(StaticToken("stale")) as connector:
        outcome = await connector.post(fake.base_url, CHANNEL, message())

    assert type(outcome) is Rejected
    assert "401" in outcome.reason
    assert fake.posted(CHANNEL) == []


async def test_without_a_token_no_authorization_header_is_sent(fake, connector):
    outcome = await connector.post(fake.base_url, CHANNEL, message())

    assert isinstance(outcome, Sent)
    assert not fake.calls[-1].authorization


async def test_a_token_that_cannot_be_had_is_retried_later_and_nothing_is_sent(fake):
    async with client(BrokenToken()) as connector:
        outcome = await connector.post(fake.base_url, CHANNEL, message())
        with pytest.raises(ConnectorError) as raised:
            await connector.member(fake.base_url, CHANNEL, "29:ada")

    assert isinstance(outcome, RetryLater)
    assert isinstance(raised.value.outcome, RetryLater)
    assert fake.calls == []


def test_the_msal_token_provider_is_built_without_touching_the_network():
    provider = MsalTokenProvider(
        app_id="00000000-0000-0000-0000-000000000001", password="s3cret", tenant_id=None
    )

    assert callable(provider.token)


# --- which service URLs get the token -------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://smba.trafficmanager.net/amer/", "https://smba.trafficmanager.net/amer/"),
        ("https://smba.trafficmanager.net/amer", "https://smba.trafficmanager.net/amer/"),
        ("https://smba.trafficmanager.net", "https://smba.trafficmanager.net/"),
    ],
)
def test_an_https_service_url_is_accepted_with_one_trailing_slash(url, expected):
    assert check_service_url(url, allow_loopback_http=False) == expected
    assert check_service_url(url, allow_loopback_http=True) == expected


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:3978/", "http://localhost:3978", "http://[::1]:3978/", "http://127.0.0.2/"],
)
def test_http_to_this_machine_is_accepted_only_in_local_mode(url):
    assert check_service_url(url, allow_loopback_http=True).endswith("/")
    with pytest.raises(ValueError, match="https"):
        check_service_url(url, allow_loopback_http=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://smba.trafficmanager.net/amer/",
        "http://10.0.0.1/",
        "http://localhost.evil.example/",
        "http://127.0.0.1.evil.example/",
        "ftp://127.0.0.1/",
        "ftp://smba.trafficmanager.net/",
        "https://user:pass@smba.trafficmanager.net/",
        "https://user@smba.trafficmanager.net/",
        "http://user:pass@127.0.0.1/",
        "not a url",
        "https://",
        "",
        "https://[::1/",
        "https://smba.trafficmanager.net/amer/?x=1",
        "https://smba.trafficmanager.net/amer/#frag",
    ],
)
def test_any_other_service_url_is_refused(url):
    with pytest.raises(ValueError, match="serviceUrl"):
        check_service_url(url, allow_loopback_http=True)


# --- conversation ids on the wire -------------------------------------------------------------


async def test_a_thread_id_reaches_teams_as_that_thread(fake, connector):
    thread = thread_id(CHANNEL, "1700000000001")

    outcome = await connector.post(fake.base_url, thread, message())

    assert isinstance(outcome, Sent)
    assert fake.calls[-1].conversation_id == thread
    assert len(fake.posted(thread)) == 1
    assert ";messageid=1700000000001" in fake.calls[-1].path


async def test_a_personal_chat_id_with_colons_and_at_signs_reaches_that_chat(fake, connector):
    chat = "a:1Xy-Z_0@unq.gbl.spaces:8"

    outcome = await connector.post(fake.base_url, chat, message())

    assert isinstance(outcome, Sent)
    assert fake.calls[-1].conversation_id == chat


@pytest.mark.parametrize("odd", ["19:a/b@thread.tacv2", "19:a?b=c@thread.tacv2", "19:a#b%2F@x"])
async def test_a_slash_or_question_mark_in_an_id_is_escaped_and_stays_in_its_segment(
    fake, connector, odd
):
    outcome = await connector.post(fake.base_url, odd, message())

    assert isinstance(outcome, Sent)
    [call] = fake.calls
    assert call.kind == "send"
    assert call.conversation_id == odd
    assert call.path.startswith("/v3/conversations/19:a")
    assert call.path.endswith("/activities")
    assert call.path.count("/") == 4


# --- look-ups ---------------------------------------------------------------------------------


async def test_a_personal_chat_opened_twice_with_one_person_is_the_same_chat(fake, connector):
    first = await connector.open_personal_chat(
        fake.base_url, bot=BOT, user_id="29:ada", tenant_id=TENANT
    )
    again = await connector.open_personal_chat(
        fake.base_url, bot=BOT, user_id="29:ada", tenant_id=TENANT
    )
    other = await connector.open_personal_chat(
        fake.base_url, bot=BOT, user_id="29:gus", tenant_id=TENANT
    )

    assert first == again
    assert first.startswith("a:")
    assert other != first


async def test_a_member_look_up_gives_their_role(fake, connector):
    guest = await connector.member(fake.base_url, CHANNEL, "29:gus")
    user = await connector.member(fake.base_url, CHANNEL, "aad-ada")

    assert guest["userRole"] == "guest"
    assert user["userRole"] == "user"


async def test_a_stranger_is_not_a_member_and_that_is_not_retried(fake, connector):
    with pytest.raises(ConnectorError) as raised:
        await connector.member(fake.base_url, CHANNEL, "29:stranger")

    assert type(raised.value.outcome) is Rejected


async def test_a_failed_personal_chat_says_whether_to_retry(fake, connector):
    fake.fail_next("create", status=503)
    fake.fail_next("create", status=403)

    with pytest.raises(ConnectorError) as busy:
        await connector.open_personal_chat(
            fake.base_url, bot=BOT, user_id="29:ada", tenant_id=TENANT
        )
    with pytest.raises(ConnectorError) as refused:
        await connector.open_personal_chat(
            fake.base_url, bot=BOT, user_id="29:ada", tenant_id=TENANT
        )

    assert isinstance(busy.value.outcome, RetryLater)
    assert type(refused.value.outcome) is Rejected


async def test_a_burst_of_sends_keeps_within_the_clients_connections(fake: FakeConnector) -> None:
    """Sends held up by a slow connector wait for one of the client's connections instead of
    each opening its own: a burst leaves at most `CONNECTIONS` sockets open, not one per
    send."""
    burst = CONNECTIONS + 8
    release = fake.hang_next("send", times=burst)
    async with client(timeout_s=10.0) as connector:
        sends = [
            asyncio.create_task(
                connector.post(fake.base_url, thread_id(CHANNEL, str(n)), message(f"hi {n}"))
            )
            for n in range(burst)
        ]

        async def held() -> None:
            while len(fake.calls_of("send")) < CONNECTIONS:
                await asyncio.sleep(0)

        await asyncio.wait_for(held(), timeout=10)
        release.set()
        outcomes = await asyncio.gather(*sends)
    assert all(isinstance(outcome, Sent) for outcome in outcomes)
    assert len(fake.calls_of("send")) == burst
    assert len({peer for kind, peer in fake.peers if kind == "send"}) <= CONNECTIONS
