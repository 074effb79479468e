"""Send time: a reply goes only to an address that passed the outbound rules after DNS, and
to exactly that address — a DNS server that answers differently the next time (rebinding)
gets no next time. DNS is faked; the receivers are https on 127.0.0.1 (allow-listed, the
stand-in for a public address) with a certificate for the name, and a trap listens on
127.0.0.2 (loopback, not allow-listed: the stand-in for a private address)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.leadfeed.reply import LeadReplySender
from adapters.outbound import OutboundPolicy
from adapters.ports import Delivery, Rejected, RetryLater, Sent
from domain.cards import Reply
from tests.leadfeed.tls import local_ca

SECRET = "reply-secret"
NAME = "widget.example.com"
PUBLIC, PRIVATE = "127.0.0.1", "127.0.0.2"


class ScriptedDns:
    """Answers each question about `NAME` with the next answer of the script (the last one
    repeats); counts the questions. Other names do not resolve."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in {NAME, "crm.internal"} or not self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@dataclass
class Receiver:
    hosts: list[str] = field(default_factory=list)
    bodies: list[dict[str, object]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.hosts.append(request.host)
        self.bodies.append(json.loads(await request.read()))
        return web.json_response({"ok": True})


@dataclass
class Trap:
    """A listener on the forbidden address: it must never see a connection."""

    connections: int = 0

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@dataclass
class Site:
    receiver: Receiver
    trap: Trap
    port: int
    client_tls: ssl.SSLContext


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    ca = local_ca(NAME, "crm.internal")
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/replies", receiver.handle)
    server = TestServer(app, host=PUBLIC)
    await server.start_server(ssl=ca.server)
    assert server.port is not None
    trap = Trap()
    # The same port on the other address, so a connection to the wrong address would land.
    trap_server = await asyncio.start_server(trap.accept, PRIVATE, server.port)
    try:
        yield Site(receiver=receiver, trap=trap, port=server.port, client_tls=ca.client)
    finally:
        trap_server.close()
        await trap_server.wait_closed()
        await server.close()


def delivery(url: str, key: str = "k-1") -> Delivery:
    reply = Reply(audience="conversation", text="Hi Dana")
    return Delivery(
        key=key,
        conversation_id="lead-0123456789abcdef",
        channel="lead-reply:lead-0123456789abcdef",
        payload={
            "reply": reply.model_dump(mode="json"),
            "target": {"url": url, "lead_id": "lead-0123456789abcdef"},
        },
    )


async def send(site: Site, dns: ScriptedDns, url: str, *, allow: Sequence[str] = (PUBLIC,)):
    sender = LeadReplySender(
        secret=SECRET,
        outbound=OutboundPolicy(allow, lookup=dns),
        ssl_context=site.client_tls,
        timeout_s=5.0,
    )
    try:
        return [await sender.send(delivery(url, key=f"k-{n}")) for n in range(2)]
    finally:
        await sender.close()


async def test_a_name_that_resolves_to_a_public_address_gets_the_reply_with_its_own_name(site):
    dns = ScriptedDns([PUBLIC])

    outcomes = await send(site, dns, f"https://{NAME}:{site.port}/replies")

    assert outcomes == [Sent(), Sent()]
    # TLS verified the certificate for the name (it names no address), and Host is the name.
    assert site.receiver.hosts == [f"{NAME}:{site.port}"] * 2
    assert dns.asked == [NAME, NAME]  # one look-up per connection, no cache, no second look


async def test_a_name_that_resolves_to_a_forbidden_address_is_rejected_unsent(site):
    dns = ScriptedDns([PRIVATE])

    outcomes = await send(site, dns, f"https://{NAME}:{site.port}/replies")

    assert all(isinstance(outcome, Rejected) for outcome in outcomes)
    assert isinstance(outcomes[0], Rejected)
    assert outcomes[0].reason == (
        "the reply URL resolves to a loopback address (127.0.0.2), which "
        "SALESBOT_OUTBOUND_ALLOW does not list"
    )
    assert site.trap.connections == 0
    assert site.receiver.bodies == []


async def test_dns_rebinding_gets_no_second_answer(site):
    # The first answer passes the check; every later answer is the forbidden address. A
    # sender that checked one answer and let the connection look the name up again would
    # connect to the trap.
    dns = ScriptedDns([PUBLIC], [PRIVATE])

    first, second = await send(site, dns, f"https://{NAME}:{site.port}/replies")

    assert first == Sent()
    assert len(site.receiver.bodies) == 1
    assert isinstance(second, Rejected)  # the next send asked again, and was refused
    assert site.trap.connections == 0
    assert dns.asked == [NAME, NAME]


async def test_of_mixed_answers_only_the_allowed_address_is_connected_to(site):
    dns = ScriptedDns([PRIVATE, PUBLIC])

    outcomes = await send(site, dns, f"https://{NAME}:{site.port}/replies")

    assert outcomes == [Sent(), Sent()]
    assert site.trap.connections == 0


async def test_an_allow_listed_name_is_reached_whatever_it_resolves_to(site):
    dns = ScriptedDns([PUBLIC])

    outcomes = await send(
        site, dns, f"https://crm.internal:{site.port}/replies", allow=["crm.internal"]
    )

    assert outcomes == [Sent(), Sent()]


async def test_a_name_that_does_not_resolve_is_retried(site):
    dns = ScriptedDns()

    outcomes = await send(site, dns, f"https://{NAME}:{site.port}/replies")

    assert all(isinstance(outcome, RetryLater) for outcome in outcomes)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("https://[::ffff:127.0.0.2]/", "loopback address"),
        ("http://0x7f.1/", "four decimal numbers"),
        ("https://metadata.google.internal/", "cloud metadata host"),
        ("http://127.0.0.2/", "must use https"),
    ],
)
async def test_a_stored_url_the_rules_forbid_is_rejected_before_any_lookup(site, url, reason):
    # A lead stored before the rules existed, or under an allow-list since shortened.
    dns = ScriptedDns([PRIVATE])

    outcomes = await send(site, dns, url)

    assert all(isinstance(outcome, Rejected) and reason in outcome.reason for outcome in outcomes)
    assert dns.asked == []
    assert site.trap.connections == 0


async def test_control_the_trap_does_see_a_connection_the_allow_list_permits(site):
    # Proves the tests above can fail: allow the trap's address and the reply goes there.
    dns = ScriptedDns([PRIVATE])

    outcomes = await send(site, dns, f"https://{NAME}:{site.port}/replies", allow=["127.0.0.0/8"])

    assert site.trap.connections >= 1
    assert not any(isinstance(outcome, Sent) for outcome in outcomes)
