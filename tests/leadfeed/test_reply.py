"""The prospect hears back: replies routed to a lead's reply URL and POSTed, signed, to a
local receiver on 127.0.0.1 (allow-listed, as SALESBOT_OUTBOUND_ALLOW=127.0.0.1 would), and
each receiver answer classified for the outbox."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.leadfeed.reply import LeadReplyRouter, LeadReplySender, sign, verify_signature
from adapters.outbound import OutboundPolicy
from adapters.ports import Delivery, Rejected, RetryLater, Route, Sent, TimedOut
from domain import GENERATOR
from domain.cards import Button, Card, CardField, Reply
from domain.inbound import SYSTEM, LeadDetails, TimerElapsed
from domain.state import ConversationState
from tests.support.schemas import assert_valid

SECRET = "reply-secret"
LEAD_ID = "lead-0123456789abcdef"
LOCAL = OutboundPolicy(["127.0.0.1"])
"""The receivers below listen on 127.0.0.1 over plain http."""


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A prospect-side endpoint (web-chat widget, CRM): it verifies nothing itself, records
    every request, keeps one reply per Idempotency-Key, and can be scripted to misbehave."""

    requests: list[Received] = field(default_factory=list)
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    script: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    redirected_to: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Received(dict(request.headers), body))
        action = self.script.pop(0) if self.script else "ok"
        if action == "drop":
            assert request.transport is not None
            request.transport.abort()
            raise web.HTTPServiceUnavailable  # never reaches the client: the socket is gone
        if action == "hang":
            await self.release.wait()
        if action == "429":
            return web.Response(status=429, headers={"Retry-After": "7"})
        if action == "redirect":
            raise web.HTTPFound("/elsewhere")
        if action.isdigit():
            return web.Response(status=int(action), text="<html>no</html>")
        self.replies.setdefault(request.headers["Idempotency-Key"], json.loads(body))
        return web.json_response({"ok": True})

    async def elsewhere(self, request: web.Request) -> web.Response:
        self.redirected_to += 1
        return web.json_response({"ok": True})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    fake = Receiver()
    app = web.Application()
    app.router.add_post("/replies", fake.handle)
    app.router.add_route("*", "/elsewhere", fake.elsewhere)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("/replies"))
    yield fake
    fake.release.set()  # let a hung handler finish, or shutdown would wait for it
    await server.close()
    for body in fake.replies.values():  # every body received is the published contract
        assert_valid("lead_reply", body)


@pytest.fixture
async def sender() -> AsyncIterator[LeadReplySender]:
    lead_sender = LeadReplySender(secret=SECRET, outbound=LOCAL, timeout_s=5.0)
    yield lead_sender
    await lead_sender.close()


def lead_state(reply_url: str | None) -> ConversationState:
    return ConversationState(
        conversation_id=LEAD_ID,
        flow_state="qualifying",
        started=True,
        lead=LeadDetails(name="Dana Reyes", message="Pricing for 40 seats?", reply_url=reply_url),
    )


INBOUND = TimerElapsed(delivery_id="idle:1", conversation_id=LEAD_ID, actor=SYSTEM)
QUOTE = Card(
    kind="quote",
    title="Quote Q-7",
    fields=(CardField(label="Total", value="$7,164.00"),),
    lines=("40 × 199.00 = 7,960.00", "discount 10% = -796.00"),
    buttons=(Button(action="accept_quote", label="Accept", target="Q-7", style="primary"),),
    ref="Q-7",
)


def delivery(reply: Reply, route: Route, key: str = "outbox-1") -> Delivery:
    return Delivery(
        key=key,
        conversation_id=LEAD_ID,
        channel=route.channel,
        payload={"reply": reply.model_dump(mode="json"), "target": route.target},
    )


def routed(url: str, reply: Reply, key: str = "outbox-1") -> Delivery:
    [route] = LeadReplyRouter(default_reply_url=None, outbound=LOCAL).route(
        INBOUND, reply, lead_state(url)
    )
    return delivery(reply, route, key)


def test_a_reply_to_the_conversation_goes_to_the_leads_own_reply_url():
    router = LeadReplyRouter(default_reply_url="https://crm.example/default", outbound=LOCAL)
    reply = Reply(audience="conversation", text="Hi Dana")

    routes = router.route(INBOUND, reply, lead_state("https://widget.example/r"))

    assert routes == [
        Route(
            channel=f"lead-reply:{LEAD_ID}",
            target={"url": "https://widget.example/r", "lead_id": LEAD_ID},
            adapter="leadfeed",
            adapter_version=2,
        )
    ]


def test_a_lead_without_a_reply_url_uses_the_configured_default_or_gets_none():
    reply = Reply(audience="conversation", text="Hi Dana")

    with_default = LeadReplyRouter(default_reply_url="https://crm.example/default", outbound=LOCAL)
    without = LeadReplyRouter(default_reply_url=None, outbound=LOCAL)

    [route] = with_default.route(INBOUND, reply, lead_state(None))
    assert route.target["url"] == "https://crm.example/default"
    assert without.route(INBOUND, reply, lead_state(None)) == []


@pytest.mark.parametrize("audience", ["team", "requester", "handoff", "approvers"])
def test_the_prospect_never_gets_messages_meant_for_the_team(audience):
    router = LeadReplyRouter(default_reply_url="https://crm.example/default", outbound=LOCAL)
    reply = Reply(audience=audience, text="Credit penalty applied")

    assert router.route(INBOUND, reply, lead_state("https://widget.example/r")) == []


def test_conversations_that_are_not_leads_get_no_reply_route():
    router = LeadReplyRouter(default_reply_url="https://crm.example/default", outbound=LOCAL)
    chat = ConversationState(conversation_id="chat-1", flow_state="greeting")

    assert router.route(INBOUND, Reply(audience="conversation", text="Hi"), chat) == []


def test_a_plain_http_default_reply_url_to_a_public_host_is_refused_at_start():
    with pytest.raises(ValueError, match="SALESBOT_LEAD_REPLY_URL"):
        LeadReplyRouter(default_reply_url="http://crm.example/replies", outbound=LOCAL)


async def test_the_receiver_gets_each_reply_once_with_a_valid_signature(receiver, sender):
    hello = Reply(audience="conversation", text="Hi Dana, how many seats?")
    quote = Reply(audience="conversation", text="Here is your quote.", card=QUOTE)

    outcomes = [
        await sender.send(routed(receiver.url, hello, key="k-1")),
        await sender.send(routed(receiver.url, quote, key="k-2")),
    ]

    assert outcomes == [Sent(), Sent()]
    assert len(receiver.requests) == 2
    for received in receiver.requests:
        assert verify_signature(SECRET, received.body, received.headers["X-Salesbot-Signature"])
        assert received.headers["Content-Type"] == "application/json"
    versions = {"schema_version": 2, "generator_version": GENERATOR}
    assert receiver.replies == {
        "k-1": {
            "lead_id": LEAD_ID,
            "text": hello.text,
            "card": None,
            "actions": [],
            "reply_key": "k-1",
            **versions,
        },
        "k-2": {
            "lead_id": LEAD_ID,
            "text": quote.text,
            "card": QUOTE.model_dump(mode="json"),
            "actions": [],  # no action key: no links (see tests/leadfeed/test_links.py)
            "reply_key": "k-2",
            **versions,
        },
    }


async def test_a_resent_delivery_carries_the_same_key_so_the_receiver_keeps_one(receiver, sender):
    item = routed(receiver.url, Reply(audience="conversation", text="Hi Dana"), key="k-9")

    first = await sender.send(item)
    again = await sender.send(item)  # the outbox resending after an uncertain send

    assert (first, again) == (Sent(), Sent())
    assert await sender.find_sent(item) is None  # nothing to look up: resending is the answer
    one, two = receiver.requests
    assert one.headers["Idempotency-Key"] == two.headers["Idempotency-Key"] == "k-9"
    assert one.body == two.body
    assert list(receiver.replies) == ["k-9"]


def test_a_signature_does_not_verify_a_changed_body_or_another_secret():
    body = b'{"lead_id":"lead-1","text":"Hi","card":null,"reply_key":"k"}'
    header = sign(SECRET, body)

    assert verify_signature(SECRET, body, header)
    assert not verify_signature(SECRET, body.replace(b"Hi", b"Yo"), header)
    assert not verify_signature("other-secret", body, header)
    assert not verify_signature(SECRET, body, header.removeprefix("sha256="))
    assert not verify_signature(SECRET, body, "")


async def test_a_429_is_retried_after_the_receivers_retry_after(receiver, sender):
    receiver.script.append("429")

    outcome = await sender.send(routed(receiver.url, Reply(audience="conversation", text="Hi")))

    assert isinstance(outcome, RetryLater)
    assert outcome.retry_after_ms == 7000


@pytest.mark.parametrize("status", ["500", "503"])
async def test_a_server_error_is_retried_later(receiver, sender, status):
    receiver.script.append(status)

    outcome = await sender.send(routed(receiver.url, Reply(audience="conversation", text="Hi")))

    assert isinstance(outcome, RetryLater)


@pytest.mark.parametrize("status", ["400", "401", "404", "410"])
async def test_a_client_error_is_a_permanent_refusal(receiver, sender, status):
    receiver.script.append(status)

    outcome = await sender.send(routed(receiver.url, Reply(audience="conversation", text="Hi")))

    assert isinstance(outcome, Rejected)
    assert status in outcome.reason


async def test_a_redirect_is_refused_and_never_followed(receiver, sender):
    receiver.script.append("redirect")

    outcome = await sender.send(routed(receiver.url, Reply(audience="conversation", text="Hi")))

    assert isinstance(outcome, Rejected)
    assert "redirect" in outcome.reason
    assert receiver.redirected_to == 0


async def test_no_answer_in_time_is_timed_out(receiver):
    receiver.script.append("hang")
    impatient = LeadReplySender(secret=SECRET, outbound=LOCAL, timeout_s=0.2)
    try:
        outcome = await impatient.send(
            routed(receiver.url, Reply(audience="conversation", text="Hi"))
        )
    finally:
        await impatient.close()

    assert isinstance(outcome, TimedOut)
    assert len(receiver.requests) == 1  # it arrived: only the answer is missing


async def test_a_connection_dropped_after_the_request_is_timed_out(receiver, sender):
    receiver.script.append("drop")

    outcome = await sender.send(routed(receiver.url, Reply(audience="conversation", text="Hi")))

    assert isinstance(outcome, TimedOut)
    assert len(receiver.requests) == 1


async def test_a_refused_connection_is_retried_later(sender):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.

    outcome = await sender.send(
        routed(f"http://127.0.0.1:{port}/replies", Reply(audience="conversation", text="Hi"))
    )

    assert isinstance(outcome, RetryLater)


async def test_without_a_secret_nothing_is_sent_unsigned(receiver):
    unsigned = LeadReplySender(secret=None, outbound=LOCAL)
    try:
        outcome = await unsigned.send(
            routed(receiver.url, Reply(audience="conversation", text="Hi"))
        )
    finally:
        await unsigned.close()

    assert isinstance(outcome, Rejected)
    assert "SALESBOT_LEAD_REPLY_SECRET" in outcome.reason
    assert receiver.requests == []


async def test_a_delivery_to_a_plain_http_public_url_is_refused_unsent(sender):
    route = Route(channel=f"lead-reply:{LEAD_ID}", target={"url": "http://crm.example/r"})

    outcome = await sender.send(delivery(Reply(audience="conversation", text="Hi"), route))

    assert isinstance(outcome, Rejected)
