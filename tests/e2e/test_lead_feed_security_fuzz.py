"""Hostile input to the lead feed through the real server (issue 10, item 7): garbage
bodies, wrong types, bytes that are not UTF-8, lone surrogates, deep nesting, huge fields,
odd Authorization, Idempotency-Key and Content-Type headers, raw header bytes. Every answer
is a 4xx with a one-line JSON reason (or a 2xx for what happens to be a valid request),
never a 5xx; a refused request stores nothing (no conversation, no inbound); the server is
healthy afterwards and takes a valid lead.

Bounded (`max_examples`), one server per test shared by its examples (hence the suppressed
function-scoped-fixture health check: every example measures the store before and after
itself). Under `CI` the profile is derandomised (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bot.settings import Settings
from storage.sqlite import SqliteStore
from tests.e2e.harness import serving

TOKEN = "leads-token"
AUTH = f"Bearer {TOKEN}"
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

Client = TestClient[web.Request, web.Application]


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@dataclass
class Feed:
    client: Client
    store: SqliteStore
    lead_id: str

    async def counts(self) -> tuple[int, int]:
        inbounds = [item async for item in self.store.all_inbounds()]
        return len(await self.store.conversation_ids()), len(inbounds)


VALID_LEAD: dict[str, Any] = {
    "name": "Dana Reyes",
    "company": "Acme Logistics",
    "email": "dana@acme.example",
    "message": "We need pricing for 40 seats this quarter.",
    "source": "web_form",
    "company_size": 250,
    "credit_score": 710,
    "metadata": {"utm_campaign": "spring"},
}


@pytest.fixture
async def feed(tmp_path: Path) -> AsyncIterator[Feed]:
    # SQLite, as served: a string it cannot encode would fail there, not in memory.
    store = await SqliteStore.open(tmp_path / "fuzz.db")
    config = Settings(
        salesbot_leads_token=SecretStr(TOKEN),
        salesbot_outbound_allow=("127.0.0.1",),
    )
    async with serving(None, config, store, outbound_lookup=no_dns) as client:
        created = await client.post(
            "/leads", json=VALID_LEAD, headers={"Authorization": AUTH, "Idempotency-Key": "seed"}
        )
        assert created.status == 201
        yield Feed(client=client, store=store, lead_id=(await created.json())["lead_id"])
        # Healthy after everything the test threw at it.
        health = await client.get("/healthz")
        assert health.status == 200
        again = await client.post("/leads", json=VALID_LEAD, headers={"Authorization": AUTH})
        assert again.status == 201
    await store.close()


# What an HTTP client can put in a header value (no control characters, no surrogates).
header_text = st.text(
    st.characters(
        exclude_categories=["Cs"],
        exclude_characters="".join(map(chr, [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])),
    ),
    max_size=300,
)
authorizations = st.one_of(
    st.just(AUTH),
    st.just(AUTH),  # mostly authorised, so the body checks are what gets exercised
    st.none(),
    st.just("Bearer"),
    st.just(f"bearer {TOKEN}"),
    st.just(f"Bearer {TOKEN}\u00e9"),
    st.builds(lambda s: f"Bearer {s}", header_text),
    header_text,
)
idempotency_keys = st.one_of(
    st.none(),
    header_text,
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=250, max_size=260),
    st.just(" "),
    st.just("k" * 256),
)
content_types = st.one_of(
    st.none(),
    st.just("application/json"),
    st.just("application/json; charset=utf-8"),
    st.just("application/json; charset=latin-1"),
    st.just("application/vnd.crm+json"),
    st.just("text/plain"),
    st.just("application/x-www-form-urlencoded"),
    st.just("multipart/form-data; boundary=x"),
    st.just(";;;"),
    header_text,
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False),
    st.text(max_size=50),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
lone_surrogate = st.sampled_from(["\ud800", "\udfff", "a\udc80b", "\ud83d"])


def huge(around: int) -> st.SearchStrategy[str]:
    """A long string near a limit, built cheaply (Hypothesis caps drawn text sizes)."""
    return st.builds(
        lambda char, n: char * n,
        st.characters(exclude_categories=["Cs"]),
        st.integers(min_value=around - 10, max_value=around + 10),
    )


@st.composite
def lead_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid lead with some fields replaced, removed or added."""
    body = dict(VALID_LEAD)
    fields = [*VALID_LEAD, "external_id", "reply_url", "favourite_colour"]
    for name in draw(st.lists(st.sampled_from(fields), max_size=4, unique=True)):
        body[name] = draw(
            st.one_of(
                json_values,
                lone_surrogate,
                huge(20_000),  # around the message limit
                st.sampled_from(
                    [
                        "https://127.0.0.1/",
                        "http://2130706433/",
                        "https://10.0.0.7/x",
                        "https://crm.example.com/r",
                        "javascript:alert(1)",
                        "https://[::ffff:169.254.169.254]/",
                        "http://127.0.0.1:9/replies",
                    ]
                ),
            )
        )
    if draw(st.booleans()) and body:
        del body[draw(st.sampled_from(sorted(body)))]
    return body


def deep(depth: int, kind: str) -> bytes:
    opener, closer = ("[", "]") if kind == "list" else ('{"a":', "}")
    return (opener * depth + "1" + closer * depth).encode()


raw_bodies = st.one_of(
    st.builds(lambda b: json.dumps(b).encode(), lead_bodies()),  # surrogates as \\ud800 escapes
    st.builds(
        lambda b: json.dumps(b, ensure_ascii=False).encode("utf-8", "surrogatepass"), lead_bodies()
    ),
    st.builds(lambda v: json.dumps(v).encode(), json_values),
    st.binary(max_size=200),
    st.builds(deep, st.integers(min_value=1, max_value=3000), st.sampled_from(["list", "dict"])),
    st.builds(lambda n: b'{"name": "' + b"x" * n + b'"}', st.integers(60_000, 70_000)),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b'"just a string"',
            b"\xff\xfe{}",
            b'{"name": "\xc3\x28"}',
            b'{"credit_score": NaN}',
            b'{"credit_score": 1' + b"0" * 5000 + b"}",
            b'{"text": "\\ud800"}',
            b'{"text": "\\"}',
        ]
    ),
)


def headers_for(
    authorization: str | None, key: str | None, content_type: str | None
) -> dict[str, str]:
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization
    if key is not None:
        headers["Idempotency-Key"] = key
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


async def post(feed: Feed, path: str, data: bytes, headers: dict[str, str]) -> Any:
    """POST exactly these headers: without one, aiohttp would add its own Content-Type."""
    return await feed.client.post(
        path, data=data, headers=headers, skip_auto_headers=["Content-Type"]
    )


async def check_answer(feed: Feed, response: Any, before: tuple[int, int]) -> None:
    status = response.status
    text = await response.text()
    assert status < 500, (status, text)
    assert "Traceback" not in text
    if status >= 400:
        if response.content_type == "application/json":
            answer = json.loads(text)
            assert isinstance(answer["error"], str)
            assert answer["error"]
            assert "\n" not in answer["error"]
        else:
            # aiohttp's own answer for a path no route matches (a lead id with a brace).
            assert status in {404, 405}, (status, text)
        assert await feed.counts() == before, "a refused request stored something"


valid_keys = st.one_of(
    st.none(),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
)
json_content_types = st.sampled_from([None, "application/json", "application/json; charset=UTF-8"])


@FUZZ
@given(key=valid_keys, content_type=json_content_types, body=raw_bodies)
async def test_post_leads_answers_a_hostile_body_with_a_4xx_and_stores_nothing(
    feed: Feed, key: str | None, content_type: str | None, body: bytes
) -> None:
    before = await feed.counts()

    response = await post(feed, "/leads", data=body, headers=headers_for(AUTH, key, content_type))

    await check_answer(feed, response, before)


@FUZZ
@given(
    authorization=authorizations,
    key=idempotency_keys,
    content_type=content_types,
    body=st.builds(lambda b: json.dumps(b).encode(), lead_bodies()),
)
async def test_post_leads_answers_hostile_headers_with_a_4xx_and_stores_nothing(
    feed: Feed, authorization: str | None, key: str | None, content_type: str | None, body: bytes
) -> None:
    before = await feed.counts()

    response = await post(
        feed, "/leads", data=body, headers=headers_for(authorization, key, content_type)
    )

    await check_answer(feed, response, before)


message_bodies = st.one_of(
    st.builds(
        lambda d: json.dumps(d).encode(),
        st.fixed_dictionaries(
            {},
            optional={
                "text": st.one_of(json_values, lone_surrogate, huge(40_000)),
                "message_id": st.one_of(json_values, lone_surrogate),
                "extra": json_values,
            },
        ),
    ),
    raw_bodies,
)
lead_ids = st.one_of(
    st.just("known"),
    st.just("lead-0123456789abcdef"),
    st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="/?#%"), min_size=1, max_size=40
    ),
)


@FUZZ
@given(content_type=json_content_types, body=message_bodies)
async def test_post_messages_answers_a_hostile_body_with_a_4xx_and_stores_nothing(
    feed: Feed, content_type: str | None, body: bytes
) -> None:
    before = await feed.counts()

    response = await post(
        feed,
        f"/leads/{feed.lead_id}/messages",
        data=body,
        headers=headers_for(AUTH, None, content_type),
    )

    await check_answer(feed, response, before)


@FUZZ
@given(
    lead_id=lead_ids,
    authorization=authorizations,
    content_type=content_types,
    body=st.sampled_from([b'{"text": "How much for 40 seats?"}', b"{}", b"\xff"]),
)
async def test_post_messages_answers_hostile_headers_and_ids_with_a_4xx_and_stores_nothing(
    feed: Feed, lead_id: str, authorization: str | None, content_type: str | None, body: bytes
) -> None:
    target = feed.lead_id if lead_id == "known" else lead_id
    before = await feed.counts()

    response = await post(
        feed,
        f"/leads/{target}/messages",
        data=body,
        headers=headers_for(authorization, None, content_type),
    )

    await check_answer(feed, response, before)


@FUZZ
@given(lead_id=lead_ids, authorization=authorizations, key=idempotency_keys)
async def test_get_messages_answers_hostile_input_with_a_4xx_and_stores_nothing(
    feed: Feed, lead_id: str, authorization: str | None, key: str | None
) -> None:
    target = feed.lead_id if lead_id == "known" else lead_id
    before = await feed.counts()

    response = await feed.client.get(
        f"/leads/{target}/messages", headers=headers_for(authorization, key, None)
    )

    await check_answer(feed, response, before)
    if response.status == 200:
        assert target == feed.lead_id


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from([b"Authorization", b"Idempotency-Key", b"Content-Type"]),
    value=st.binary(max_size=80).filter(lambda b: b"\r" not in b and b"\n" not in b),
    path=st.sampled_from([b"/leads", b"/leads/known/messages"]),
)
async def test_raw_header_bytes_that_are_not_utf8_get_a_4xx(
    feed: Feed, name: bytes, value: bytes, path: bytes
) -> None:
    """What no HTTP client library would send: the bytes of a header value as they come."""
    headers = {b"Authorization": AUTH.encode(), b"Content-Type": b"application/json"}
    headers[name] = value
    body = json.dumps(VALID_LEAD).encode()
    path = path.replace(b"known", feed.lead_id.encode())
    request = (
        b"POST "
        + path
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + b"".join(k + b": " + v + b"\r\n" for k, v in headers.items())
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    before = await feed.counts()
    server = feed.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()
    finally:
        writer.close()
    status = int(status_line.split()[1])

    assert status < 500, status_line
    if status >= 400:
        assert await feed.counts() == before
