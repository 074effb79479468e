"""The lead feed over HTTP, against a fake runtime that dedupes by delivery id as the real
one does: what a web form or CRM sees, and what reaches the runtime."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.leadfeed.web import LeadFeed
from adapters.outbound import OutboundPolicy
from domain.inbound import Inbound, LeadArrived, LeadDetails, MessagePosted
from domain.state import ConversationState
from tests.support.schemas import assert_valid, problems

TOKEN = "leads-token-s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}

Client = TestClient[web.Request, web.Application]


@dataclass(frozen=True)
class Result:
    status: str


class FakeRuntime:
    """Commits each delivery id once; a duplicate waits for the first, as the runtime does.
    `first_inbound` sees an inbound only once it is committed."""

    def __init__(self) -> None:
        self.commits: list[Inbound] = []
        self.stored: dict[str, Inbound] = {}
        self.states: dict[str, ConversationState] = {}
        self._inflight: dict[str, asyncio.Event] = {}
        self.fail_with: Exception | None = None

    async def handle(self, inbound: Inbound) -> Result:
        if self.fail_with is not None:
            raise self.fail_with
        if inbound.delivery_id in self.stored:
            return Result("duplicate")
        pending = self._inflight.get(inbound.delivery_id)
        if pending is not None:
            await pending.wait()
            return Result("duplicate")
        self._inflight[inbound.delivery_id] = done = asyncio.Event()
        for _ in range(3):  # a commit takes a few turns of the loop
            await asyncio.sleep(0)
        self.commits.append(inbound)
        self.stored[inbound.delivery_id] = inbound
        self._apply(inbound)
        del self._inflight[inbound.delivery_id]
        done.set()
        return Result("committed")

    async def conversation(self, conversation_id: str) -> ConversationState | None:
        return self.states.get(conversation_id)

    async def first_inbound(self, delivery_id: str) -> Inbound | None:
        return self.stored.get(delivery_id)

    def _apply(self, inbound: Inbound) -> None:
        if isinstance(inbound, LeadArrived):
            self.states[inbound.conversation_id] = ConversationState(
                conversation_id=inbound.conversation_id,
                flow_state="greeting",
                started=True,
                lead=inbound.lead,
                transcript=(("prospect", inbound.lead.message), ("bot", "Hi! How many seats?")),
            )
        elif isinstance(inbound, MessagePosted):
            state = self.states[inbound.conversation_id]
            self.states[inbound.conversation_id] = state.model_copy(
                update={
                    "flow_state": "qualifying",
                    "transcript": (
                        *state.transcript,
                        ("prospect", inbound.text),
                        ("bot", "Noted."),
                    ),
                }
            )


def lead(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Dana Reyes",
        "company": "Acme Logistics",
        "email": "dana@acme.example",
        "message": "We need pricing for 40 seats this quarter.",
        "source": "web_form",
        "reply_url": "https://widget.example/replies",
        "company_size": 250,
        "credit_score": 710,
        "metadata": {"utm_campaign": "spring", "pages_viewed": 7, "returning": True},
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


async def public_dns(host: str, port: int) -> list[str]:
    """No network: every name is a public (documentation-free) address."""
    return ["93.184.215.14"]


async def serve(runtime: FakeRuntime, token: str | None = TOKEN) -> Client:
    app = web.Application()
    LeadFeed(
        token=token,
        handle=runtime.handle,
        conversation=runtime.conversation,
        first_inbound=runtime.first_inbound,
        # As with SALESBOT_OUTBOUND_ALLOW=127.0.0.1: a local receiver may use plain http.
        outbound=OutboundPolicy(["127.0.0.1"], lookup=public_dns),
    ).add_routes(app)
    return TestClient(TestServer(app, host="127.0.0.1"))


@pytest.fixture
async def client(runtime: FakeRuntime) -> AsyncIterator[Client]:
    async with await serve(runtime) as test_client:
        yield test_client


async def post_lead(client: Client, body: Any, **headers: str) -> tuple[int, Any]:
    """POST a lead. The published schema (`docs/schemas/lead.schema.json`) holds: a body the
    feed accepts validates, and one that breaks the schema is refused."""
    response = await client.post("/leads", json=body, headers={**AUTH, **headers})
    if response.status < 300:
        assert_valid("lead", body)
    if problems("lead", body):
        assert response.status >= 400
    return response.status, await response.json()


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def test_a_new_lead_is_created_and_reaches_the_runtime_as_a_lead_arrival(client, runtime):
    status, answer = await post_lead(client, lead())

    assert status == 201
    assert answer["status"] == "created"
    [arrival] = runtime.commits
    assert isinstance(arrival, LeadArrived)
    assert arrival.conversation_id == answer["lead_id"]
    assert answer["lead_id"].startswith("lead-")
    assert arrival.actor.id == f"lead:{answer['lead_id']}"
    assert arrival.actor.role == "prospect"
    assert arrival.actor.name == "Dana Reyes"
    assert arrival.lead == LeadDetails(
        name="Dana Reyes",
        company="Acme Logistics",
        email="dana@acme.example",
        message="We need pricing for 40 seats this quarter.",
        source="web_form",
        reply_url="https://widget.example/replies",
        company_size=250,
        credit_score=710,
    )


async def test_the_idempotency_key_header_decides_the_lead_and_delivery_ids(client, runtime):
    status, answer = await post_lead(
        client, lead(external_id="crm-9"), **{"Idempotency-Key": "form-123"}
    )

    assert status == 201
    assert answer["lead_id"] == "lead-" + digest("form-123")[:16]
    assert runtime.commits[0].delivery_id == "lead:" + digest("form-123")


async def test_the_external_id_dedupes_when_no_idempotency_key_is_sent(client, runtime):
    first = await post_lead(client, lead(external_id="crm-42"))
    second = await post_lead(client, lead(external_id="crm-42"))

    assert first == (201, {"lead_id": "lead-" + digest("crm-42")[:16], "status": "created"})
    assert second == (200, {"lead_id": first[1]["lead_id"], "status": "existing"})
    assert len(runtime.commits) == 1


async def test_without_any_key_every_post_is_a_new_lead(client, runtime):
    first = await post_lead(client, lead())
    second = await post_lead(client, lead())

    assert first[0] == second[0] == 201
    assert first[1]["lead_id"] != second[1]["lead_id"]
    assert len(runtime.commits) == 2


async def test_the_same_key_with_the_same_body_returns_the_original_result(client, runtime):
    key = {"Idempotency-Key": "retry-me"}
    created = await post_lead(client, lead(), **key)
    replayed = await post_lead(client, lead(), **key)

    assert created[0] == 201
    assert replayed == (200, {"lead_id": created[1]["lead_id"], "status": "existing"})
    assert len(runtime.commits) == 1


async def test_the_same_key_with_a_different_body_is_a_conflict(client, runtime):
    key = {"Idempotency-Key": "reused"}
    await post_lead(client, lead(), **key)
    status, answer = await post_lead(client, lead(message="Actually, 400 seats."), **key)

    assert status == 409
    assert "different body" in answer["error"]
    assert len(runtime.commits) == 1


async def test_concurrent_identical_posts_commit_one_lead(client, runtime):
    key = {"Idempotency-Key": "double-click"}
    answers = await asyncio.gather(*(post_lead(client, lead(), **key) for _ in range(5)))

    assert len(runtime.commits) == 1
    assert sorted(status for status, _ in answers) == [200, 200, 200, 200, 201]
    assert len({answer["lead_id"] for _, answer in answers}) == 1


async def test_a_duplicate_the_runtime_already_had_answers_with_the_stored_result(runtime):
    # Committed by another process: first_inbound misses it once, the runtime reports a duplicate.
    async with await serve(runtime) as client:
        await post_lead(client, lead(), **{"Idempotency-Key": "elsewhere"})
        original = runtime.first_inbound
        misses = iter([None])

        async def stale_once(delivery_id: str) -> Inbound | None:
            return next(misses, await original(delivery_id))

        runtime.first_inbound = stale_once
        fresh = await serve(runtime)
        async with fresh:
            status, answer = await post_lead(fresh, lead(), **{"Idempotency-Key": "elsewhere"})

    assert (status, answer["status"]) == (200, "existing")
    assert len(runtime.commits) == 1


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"],
    ids=["missing", "wrong", "other-scheme", "longer", "empty"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/leads"),
        ("POST", "/leads/lead-0123456789abcdef/messages"),
        ("GET", "/leads/lead-0123456789abcdef/messages"),
    ],
)
async def test_requests_without_a_valid_token_are_refused(
    client, runtime, authorization, method, path
):
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.request(method, path, json=lead(), headers=headers)

    assert response.status == 401
    assert TOKEN not in await response.text()
    assert runtime.commits == []


@pytest.mark.parametrize("token", [None, ""])
async def test_an_unconfigured_feed_refuses_everything_and_says_how_to_enable_it(runtime, token):
    async with await serve(runtime, token=token) as client:
        response = await client.post("/leads", json=lead(), headers={"Authorization": "Bearer "})
        answer = await response.json()

    assert response.status == 401
    assert "SALESBOT_LEADS_TOKEN" in answer["error"]
    assert runtime.commits == []


async def test_a_body_over_64_kb_is_refused(client, runtime):
    status, answer = await post_lead(client, lead(message="x" * (64 * 1024)))

    assert status == 413
    assert "64 KB" in answer["error"]
    assert runtime.commits == []


async def test_a_chunked_body_over_64_kb_is_refused_without_a_content_length(client, runtime):
    async def chunks() -> AsyncIterable[bytes]:
        for _ in range(20):
            yield b" " * 4096  # whitespace: valid JSON padding, so only the size can refuse it
        yield json.dumps(lead()).encode()

    response = await client.post("/leads", data=chunks(), headers=AUTH | JSON)

    assert response.status == 413
    assert runtime.commits == []


@pytest.mark.parametrize("raw", [b'{"name": "Dana",', b"\xff\xfe", b'{"credit_score": NaN}'])
async def test_a_body_that_is_not_json_is_a_bad_request(client, runtime, raw):
    response = await client.post("/leads", data=raw, headers=AUTH | JSON)

    assert response.status == 400
    assert "JSON" in (await response.json())["error"]
    assert runtime.commits == []


@pytest.mark.parametrize(
    ("body", "field", "secret_value"),
    [
        (lead(name=None), "name", None),
        (lead(email="dana-at-acme.example"), "email", "dana-at-acme.example"),
        (lead(credit_score=2000), "credit_score", None),
        (lead(reply_url="http://widget.example/replies"), "reply_url", None),
        (lead(reply_url="https://user:pw@widget.example/"), "reply_url", "user:pw"),
        (lead(metadata={f"k{i}": i for i in range(51)}), "metadata", None),
        (lead(metadata={"credit_score": 700}), "metadata", None),
        (lead(favourite_colour="teal"), "favourite_colour", "teal"),
    ],
    ids=[
        "missing-name",
        "bad-email",
        "credit-2000",
        "plain-http-public-host",
        "credentials-in-url",
        "51-metadata-keys",
        "credit-in-metadata",
        "unknown-field",
    ],
)
async def test_an_invalid_lead_gets_field_level_errors_without_the_rejected_values(
    client, runtime, body, field, secret_value
):
    status, answer = await post_lead(client, body)

    assert status == 422
    assert field in [error["field"] for error in answer["errors"]]
    assert all(error["message"] for error in answer["errors"])
    if secret_value is not None:
        assert secret_value not in json.dumps(answer)
    assert runtime.commits == []


async def test_several_bad_fields_are_reported_together(client):
    status, answer = await post_lead(client, lead(name=None, email="nope", credit_score=-1))

    assert status == 422
    assert {e["field"] for e in answer["errors"]} == {"name", "email", "credit_score"}


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/replies", "http://localhost/replies"])
async def test_a_plain_http_reply_url_is_allowed_for_a_local_receiver(client, runtime, url):
    status, _ = await post_lead(client, lead(reply_url=url))

    assert status == 201
    assert runtime.commits[0].lead.reply_url == url


async def test_an_over_long_idempotency_key_is_refused(client, runtime):
    status, answer = await post_lead(client, lead(), **{"Idempotency-Key": "k" * 256})

    assert status == 422
    assert answer["errors"][0]["field"] == "Idempotency-Key"
    assert runtime.commits == []


async def created_lead(client: Client) -> str:
    _, answer = await post_lead(client, lead())
    lead_id: str = answer["lead_id"]
    return lead_id


async def test_a_message_is_appended_to_the_leads_conversation_and_listed(client, runtime):
    lead_id = await created_lead(client)

    response = await client.post(
        f"/leads/{lead_id}/messages", json={"text": "40 seats, starting in May."}, headers=AUTH
    )
    listing = await client.get(f"/leads/{lead_id}/messages", headers=AUTH)

    assert response.status == 201
    assert await response.json() == {"lead_id": lead_id, "status": "created"}
    message = runtime.commits[-1]
    assert isinstance(message, MessagePosted)
    assert message.conversation_id == lead_id
    assert message.actor.id == f"lead:{lead_id}"
    assert message.actor.role == "prospect"
    assert message.text == "40 seats, starting in May."
    assert listing.status == 200
    assert await listing.json() == {
        "lead_id": lead_id,
        "state": "qualifying",
        "messages": [
            {"from": "prospect", "text": "We need pricing for 40 seats this quarter."},
            {"from": "bot", "text": "Hi! How many seats?"},
            {"from": "prospect", "text": "40 seats, starting in May."},
            {"from": "bot", "text": "Noted."},
        ],
    }


async def test_a_retried_message_with_the_same_message_id_is_posted_once(client, runtime):
    lead_id = await created_lead(client)
    path = f"/leads/{lead_id}/messages"
    body = {"text": "Can we pay yearly?", "message_id": "m-1"}

    first = await client.post(path, json=body, headers=AUTH)
    retry = await client.post(path, json=body, headers=AUTH)
    changed = await client.post(path, json={**body, "text": "Monthly?"}, headers=AUTH)

    assert (first.status, retry.status, changed.status) == (201, 200, 409)
    assert await retry.json() == {"lead_id": lead_id, "status": "existing"}
    assert [m.text for m in runtime.commits if isinstance(m, MessagePosted)] == [
        "Can we pay yearly?"
    ]


async def test_messages_without_an_id_are_each_posted(client, runtime):
    lead_id = await created_lead(client)
    for _ in range(2):
        response = await client.post(
            f"/leads/{lead_id}/messages", json={"text": "Hello?"}, headers=AUTH
        )
        assert response.status == 201

    assert len([m for m in runtime.commits if isinstance(m, MessagePosted)]) == 2


async def test_a_blank_message_gets_a_field_error(client):
    lead_id = await created_lead(client)
    response = await client.post(f"/leads/{lead_id}/messages", json={"text": "  "}, headers=AUTH)

    assert response.status == 422
    assert (await response.json())["errors"][0]["field"] == "text"


@pytest.mark.parametrize(
    "lead_id", ["lead-0123456789abcdef", "slack:T1:C1:1690000000.000100", "chat-1"]
)
async def test_messages_of_an_unknown_lead_are_not_found(client, runtime, lead_id):
    # A conversation that exists but did not come from the feed is not reachable through it.
    runtime.states["chat-1"] = ConversationState(conversation_id="chat-1", flow_state="greeting")
    # A lead entered some other way (a `/lead` command in a chat thread) is not the feed's either.
    runtime.states["slack:T1:C1:1690000000.000100"] = ConversationState(
        conversation_id="slack:T1:C1:1690000000.000100",
        flow_state="greeting",
        lead=LeadDetails(name="Sam", message="Typed in by a rep"),
    )

    posted = await client.post(f"/leads/{lead_id}/messages", json={"text": "Hi"}, headers=AUTH)
    listed = await client.get(f"/leads/{lead_id}/messages", headers=AUTH)

    assert (posted.status, listed.status) == (404, 404)
    assert runtime.commits == []


async def test_an_unexpected_failure_is_a_500_that_reveals_nothing(client, runtime, caplog):
    runtime.fail_with = RuntimeError("db at /var/lib/salesbot broke on dana@acme.example")

    with caplog.at_level(logging.ERROR):
        response = await client.post("/leads", json=lead(), headers=AUTH)
    text = await response.text()

    assert response.status == 500
    assert "error" in json.loads(text)
    assert "dana@acme.example" not in text
    assert "Traceback" not in text
    assert "RuntimeError" in caplog.text
    assert "dana@acme.example" not in caplog.text


async def raw_post(
    client: Client, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> int:
    """A request as bytes on the socket: header values no HTTP client library would send."""
    request = b"".join(
        [
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
            *(name + b": " + value + b"\r\n" for name, value in headers),
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n",
            body,
        ]
    )
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()
    finally:
        writer.close()
    return int(status_line.split()[1])


@pytest.mark.parametrize(
    ("header", "value", "status"),
    [
        (b"Authorization", b"Bearer \xff\xfe", 401),
        (b"Authorization", b"Bearer " + TOKEN.encode() + b"\x80", 401),
        (b"Idempotency-Key", b"key-\xff", 422),
        (b"Idempotency-Key", b"\xc3\x28", 422),
    ],
)
async def test_a_header_that_is_not_utf8_is_refused_with_a_4xx_not_a_500(
    client, runtime, header, value, status
):
    headers = [
        (b"Authorization", f"Bearer {TOKEN}".encode()),
        (b"Content-Type", b"application/json"),
    ]
    headers = [(name, value if name == header else v) for name, v in headers]
    if header not in dict(headers):
        headers.append((header, value))

    assert await raw_post(client, "/leads", headers, json.dumps(lead()).encode()) == status
    assert runtime.commits == []


@pytest.mark.parametrize("key", ["tab\tinside", " ", "k" * 256])
async def test_an_idempotency_key_that_is_not_printable_text_of_1_to_255_is_refused(
    client, runtime, key
):
    status, answer = await post_lead(client, lead(), **{"Idempotency-Key": key})

    assert status == 422
    assert answer["errors"] == [
        {"field": "Idempotency-Key", "message": "must be 1 to 255 printable characters"}
    ]
    assert runtime.commits == []


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "application/octet-stream",
        "json",
    ],
)
async def test_a_body_declared_as_anything_but_utf8_json_is_415(client, runtime, content_type):
    response = await client.post(
        "/leads",
        data=json.dumps(lead()).encode(),
        headers=AUTH | {"Content-Type": content_type},
    )

    assert response.status == 415
    assert "application/json" in (await response.json())["error"]
    assert runtime.commits == []


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", 'Application/JSON; charset="UTF-8"', "application/vnd.crm+json"],
)
async def test_a_json_body_with_or_without_a_content_type_is_accepted(
    client, runtime, content_type
):
    headers = AUTH | ({"Content-Type": content_type} if content_type else {})
    response = await client.post(
        "/leads",
        data=json.dumps(lead()).encode(),
        headers=headers,
        skip_auto_headers=["Content-Type"],
    )

    assert response.status == 201
    assert len(runtime.commits) == 1


@pytest.mark.parametrize("opener", ["[", '{"a":'])
async def test_a_body_nested_too_deep_is_refused_before_it_is_parsed(
    client, runtime, monkeypatch, opener
):
    from adapters.leadfeed import web as feed_web

    class NoParser:
        @staticmethod
        def loads(*args: object, **kwargs: object) -> object:
            raise AssertionError("parsed a body that was too deep")

    monkeypatch.setattr(feed_web, "json", NoParser)
    closer = "]" if opener == "[" else "}"
    body = (opener * 17 + "1" + closer * 17).encode()

    response = await client.post("/leads", data=body, headers=AUTH | JSON)

    assert response.status == 400
    assert "16 levels" in (await response.json())["error"]
    assert runtime.commits == []


async def test_brackets_inside_strings_do_not_count_as_nesting(client, runtime):
    text = '[[[[[[[[[[[[[[[[[[[[ {{{{{{{{{{{{{{{{{{{{ \\" [[[[[[[[[[[[[[[[[[[['
    response = await client.post(
        "/leads", data=json.dumps(lead(message=text)).encode(), headers=AUTH | JSON
    )

    assert response.status == 201
    assert runtime.commits[0].lead.message == text


@pytest.mark.parametrize("field", ["name", "external_id", "metadata"])
async def test_a_lone_surrogate_escape_is_refused_as_a_bad_request(client, runtime, field):
    value: object = {"\ud800": 1} if field == "metadata" else "Dana \ud800"
    body = json.dumps(lead(**{field: value})).encode()  # ascii JSON with a \ud800 escape

    response = await client.post("/leads", data=body, headers=AUTH | JSON)

    assert response.status == 400
    assert "surrogate" in (await response.json())["error"]
    assert runtime.commits == []


async def test_a_message_with_a_lone_surrogate_is_refused_as_a_bad_request(client, runtime):
    lead_id = await created_lead(client)
    body = json.dumps({"text": "hi \udfff", "message_id": "m-1"}).encode()

    response = await client.post(f"/leads/{lead_id}/messages", data=body, headers=AUTH | JSON)

    assert response.status == 400
    assert len(runtime.commits) == 1  # the lead only
