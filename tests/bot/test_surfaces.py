"""The seam for outside systems (issue 16, step 0): a surface registers once, in one place,
and the bot routes, delivers, serves and reports it without a line of `bot/` naming it.

The proof is an "echo" surface written here, in the test: one HTTP route in, a sender that
keeps what it is given. It is handed to `build_service` as an extra registration and
driven end to end — a request to its route, the domain's decision, the outbox, its sender —
on the real server, runtime and outbox worker.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.ids import LEADS, IdScheme
from adapters.leadfeed.reply import LeadReplyRouter, LeadReplyTarget
from adapters.outbound import OutboundPolicy
from adapters.playground.ids import SCHEME as PLAYGROUND
from adapters.playground.router import PlaygroundRouter, PlaygroundTarget
from adapters.ports import Delivery, Route, SendOutcome, Sent
from adapters.slack import ids as slack_ids
from adapters.slack.router import SlackRouter, SlackTarget
from adapters.teams import ids as teams_ids
from adapters.teams.router import TeamsRouter, TeamsTarget, conversation_route, destination_route
from adapters.terminal.ids import SCHEME as TERMINAL
from bot.policy_loader import load_policy
from bot.server import build_app
from bot.service import build_service
from bot.settings import Settings
from bot.surfaces import default_registrations
from bot.surfaces.base import Registration, Surface, Wiring
from domain.cards import Reply
from domain.decide import new_conversation
from domain.inbound import Actor, CommandInvoked, Inbound, LeadDetails, MessagePosted
from domain.policy import Policy
from domain.state import ConversationState
from storage.memory import MemoryStore
from tests.e2e.harness import eventually, outbox_drained

ECHO = IdScheme(
    adapter="echo",
    channel_prefix="echo:",
    delivery_prefixes=("echo:",),
    conversation_prefix="echo-",
)


@dataclass(frozen=True)
class EchoSection:
    greeting: str


class EchoRouter:
    """The prospect's own conversation hears the bot; nothing else goes to echo."""

    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        if reply.audience != "conversation" or not ECHO.owns_conversation(state.conversation_id):
            return []
        return [
            Route(
                channel=ECHO.channel(state.conversation_id),
                target={"who": inbound.actor.id},
                adapter=ECHO.adapter,
                adapter_version=1,
            )
        ]


class EchoSender:
    def __init__(self) -> None:
        self.delivered: list[Delivery] = []

    async def send(self, delivery: Delivery) -> SendOutcome:
        self.delivered.append(delivery)
        return Sent(remote_id=f"echoed-{len(self.delivered)}")

    async def find_sent(self, delivery: Delivery) -> str | None:
        return None


def echo_registration(sender: EchoSender) -> Registration[EchoSection]:
    def build(section: EchoSection, wiring: Wiring) -> Surface:
        async def receive(request: web.Request) -> web.Response:
            body = await request.json()
            conversation = ECHO.conversation_id(request.match_info["who"])
            result = await wiring.host.handle(
                MessagePosted(
                    delivery_id=ECHO.delivery_id(str(body["id"])),
                    conversation_id=conversation,
                    actor=Actor(id=f"echo-person-{request.match_info['who']}", role="prospect"),
                    text=str(body["text"]),
                )
            )
            return web.json_response({"status": result.status, "greeting": section.greeting})

        def mount(app: web.Application) -> None:
            app.router.add_post("/echo/{who}", receive)

        return Surface(
            name=ECHO.adapter,
            scheme=ECHO,
            router=EchoRouter(),
            sender=sender,
            mount=mount,
            status=lambda: "echoing",
            parts=(sender,),
        )

    return Registration(
        name=ECHO.adapter,
        scheme=ECHO,
        section=lambda _settings: EchoSection(greeting="hello"),
        build=build,
    )


Client = TestClient[web.Request, web.Application]


@pytest.fixture
def sender() -> EchoSender:
    return EchoSender()


@pytest.fixture
async def client(sender: EchoSender) -> AsyncIterator[Client]:
    service = build_service(
        Settings(),
        load_policy("default"),
        MemoryStore(),
        clock=lambda: int(time.time() * 1000),
        extra_surfaces=[echo_registration(sender)],
    )
    async with TestClient(TestServer(build_app(service), host="127.0.0.1")) as test_client:
        yield test_client


async def test_a_surface_registered_in_one_place_is_served_decided_and_delivered(
    client: Client, sender: EchoSender
) -> None:
    answer = await client.post(
        "/echo/ada", json={"id": "m1", "text": "Hi, we are 40 people and need a CRM by March"}
    )
    assert answer.status == 200
    assert await answer.json() == {"status": "committed", "greeting": "hello"}

    await eventually(lambda: len(sender.delivered) >= 1, "the bot's reply at the echo sender")
    await outbox_drained(client)
    delivery = sender.delivered[0]
    assert delivery.conversation_id == "echo-ada"
    assert delivery.channel == "echo:echo-ada"
    assert delivery.target == {"who": "echo-person-ada"}
    assert delivery.payload["adapter"] == "echo"
    assert delivery.reply.audience == "conversation"
    assert delivery.reply.text.strip(), "the prospect hears the bot's answer"

    # The same delivery again (a retry) is decided once and sent once.
    again = await client.post("/echo/ada", json={"id": "m1", "text": "Hi again"})
    assert (await again.json())["status"] == "duplicate"
    await outbox_drained(client)
    assert len({d.key for d in sender.delivered}) == len(sender.delivered)
    first_round = len(sender.delivered)

    # A second message in the same conversation continues it, on the same channel.
    await client.post("/echo/ada", json={"id": "m2", "text": "Our budget is 20k a year"})
    await eventually(lambda: len(sender.delivered) > first_round, "the second answer")
    assert {d.channel for d in sender.delivered} == {"echo:echo-ada"}


async def test_the_operator_routes_report_the_new_surface_like_the_built_in_ones(
    client: Client, sender: EchoSender
) -> None:
    await client.post("/echo/bo", json={"id": "m1", "text": "hello"})
    await eventually(lambda: len(sender.delivered) >= 1, "the reply")
    ready = await (await client.get("/readyz")).json()
    assert ready["echo"] == "echoing"
    metrics = await (await client.get("/metrics")).text()
    assert 'salesbot_outbox_pending{platform="echo"} 0.0' in metrics
    assert 'salesbot_outbox_sends_total{outcome="sent",platform="echo"}' in metrics
    assert 'salesbot_outbox_pending{platform="playground"} 0.0' in metrics


def test_a_surface_claiming_another_surfaces_channels_is_refused() -> None:
    greedy: Registration[object] = Registration(
        name="greedy",
        scheme=IdScheme(adapter="greedy", channel_prefix="slack", delivery_prefixes=("g:",)),
        section=lambda _settings: None,
        build=lambda _section, _wiring: Surface(name="greedy", scheme=ECHO),
    )
    with pytest.raises(ValueError, match="'slack' also claims 'slack:'"):
        build_service(
            Settings(),
            load_policy("default"),
            MemoryStore(),
            clock=lambda: 0,
            extra_surfaces=[greedy],
        )


def test_a_surface_registered_twice_is_refused(sender: EchoSender) -> None:
    with pytest.raises(ValueError, match="registered twice"):
        build_service(
            Settings(),
            load_policy("default"),
            MemoryStore(),
            clock=lambda: 0,
            extra_surfaces=[echo_registration(sender), echo_registration(sender)],
        )


SCHEMES = [registration.scheme for registration in default_registrations()] + [TERMINAL]


def test_the_built_in_surfaces_claim_disjoint_channels_deliveries_and_conversations() -> None:
    for scheme in SCHEMES:
        for other in SCHEMES:
            if other is scheme:
                continue
            assert not other.owns_channel(scheme.channel("x")), (scheme, other)
            for kind in range(len(scheme.delivery_prefixes)):
                assert not other.owns_delivery(scheme.delivery_id("x", kind=kind)), (scheme, other)
            if scheme.conversation_prefix is not None:
                assert not other.owns_conversation(scheme.conversation_id("x")), (scheme, other)


@pytest.mark.parametrize(
    ("built", "scheme"),
    [
        (slack_ids.conversation_id("T1", "C1", "1.2"), slack_ids.SCHEME),
        (teams_ids.conversation_id("19:abc@thread.tacv2"), teams_ids.SCHEME),
        (PLAYGROUND.conversation_id("0123456789ab"), PLAYGROUND),
        (LEADS.conversation_id("0123456789abcdef"), LEADS),
        (TERMINAL.conversation_id("18c0"), TERMINAL),
    ],
)
def test_each_id_is_recognised_by_its_own_scheme_only(built: str, scheme: IdScheme) -> None:
    assert [s.adapter for s in SCHEMES if s.owns_conversation(built)] == [scheme.adapter]


def test_the_schemes_describe_the_ids_earlier_releases_stored() -> None:
    """Stores written before the seam hold these exact strings: the schemes must keep them."""
    assert slack_ids.SCHEME.channel("C1") == "slack:C1"
    assert slack_ids.message_delivery_id("C1", "1.2") == "slack:msg:C1:1.2"
    assert slack_ids.conversation_id("T1", "C1") == "slack:T1:C1"
    assert teams_ids.SCHEME.channel("handoff") == "teams:handoff"
    assert teams_ids.activity_delivery_id("a1") == "teams:act:a1"
    assert PLAYGROUND.channel("playground:abc") == "playground:playground:abc"
    assert LEADS.channel("lead-abc") == "lead-reply:lead-abc"
    assert LEADS.conversation_id("abc") == "lead-abc"
    assert [LEADS.delivery_id("d", kind=k) for k in range(3)] == [
        "lead:d",
        "lead-msg:d",
        "lead-action:d",
    ]
    assert TERMINAL.channel() == "terminal"
    assert TERMINAL.delivery_id("s:1") == "chat:s:1"
    assert [s.platform for s in SCHEMES] == [
        "slack",
        "teams",
        "playground",
        "lead-reply",
        "crm",
        "crm-of",  # other installations' CRM writes (new with installations: no old rows)
        "terminal",
    ]


def _conforms(target: dict[str, object], shape: Any) -> None:
    """`target` has the shape's required keys and no key the shape does not declare."""
    keys = set(target)
    assert shape.__required_keys__ <= keys, (shape.__name__, target)
    assert keys <= shape.__required_keys__ | shape.__optional_keys__, (shape.__name__, target)


def test_every_built_in_route_target_has_its_declared_typed_shape(default_policy: Policy) -> None:
    """The typed shapes (`SlackTarget`, `TeamsTarget`, …) describe what the routers store,
    key for key — so they stay true of the outbox rows written before they existed."""
    rep = Actor(id="U0REP", role="rep", approver=True)
    command = CommandInvoked(
        delivery_id=slack_ids.command_delivery_id("trig-9"),
        conversation_id=slack_ids.conversation_id("T1", "C0SALES", "1.2"),
        actor=rep,
        command="quote",
        args="10 pro",
    )
    slack = SlackRouter(handoff_channel="C0HANDOFF", leads_channel="C0LEADS", on_call="S0ONCALL")
    teams = TeamsRouter(on_call="tag|On call")
    playground = PlaygroundRouter()
    state = new_conversation(command.conversation_id, default_policy)
    replies = [
        Reply(audience=audience, text="x", mention="on_call" if audience == "handoff" else None)
        for audience in ("conversation", "requester", "team", "handoff", "escalation")
    ]
    for reply in replies:
        for route in slack.route(command, reply, state):
            _conforms(route.target, SlackTarget)
        for route in playground.route(command, reply, state):
            _conforms(route.target, PlaygroundTarget)
    teams_command = command.model_copy(
        update={"conversation_id": teams_ids.conversation_id("19:abc@thread.tacv2")}
    )
    teams_state = new_conversation(teams_command.conversation_id, default_policy)
    for reply in replies:
        for route in teams.route(teams_command, reply, teams_state):
            _conforms(route.target, TeamsTarget)
    for route in (
        destination_route("leads", user="u", thread_of_ref="lead:x", starts_thread="lead:x"),
        conversation_route("19:abc", user="u"),
    ):
        _conforms(route.target, TeamsTarget)
    lead_reply = LeadReplyRouter(
        default_reply_url="https://example.com/r", outbound=OutboundPolicy()
    )
    lead_state = new_conversation(LEADS.conversation_id("0123456789abcdef"), default_policy)
    lead_state = lead_state.model_copy(
        update={"lead": LeadDetails(name="Ada", email="ada@example.com", message="Hi")}
    )
    (route,) = lead_reply.route(command, replies[0], lead_state)
    _conforms(route.target, LeadReplyTarget)
