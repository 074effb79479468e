"""The playground over HTTP and WebSocket, on 127.0.0.1, with a recording `handle`."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from adapters.action_binding import ActionKey
from adapters.playground.desk import DeskTicket
from adapters.playground.hub import PlaygroundHub
from adapters.playground.router import CHANNEL_PREFIX, PlaygroundRouter
from adapters.playground.web import MANAGER, REP, add_routes, render_page
from adapters.ports import Delivery
from domain.cards import Button, Card, Reply
from domain.inbound import Actor, ButtonClicked, CommandInvoked, Inbound, MessagePosted
from domain.state import ConversationState

STATIC = Path(__file__).resolve().parents[2] / "adapters" / "playground" / "static"
NOW_MS = 1_790_000_000_000
KEY = ActionKey(b"playground unit-test key")

Client = TestClient[web.Request, web.Application]


class Recorder:
    """The injected `handle`: remembers every inbound, optionally fails."""

    def __init__(self) -> None:
        self.inbounds: list[Inbound] = []
        self.fail = False

    async def __call__(self, inbound: Inbound) -> object:
        if self.fail:
            raise RuntimeError("store exploded at /secret/path")
        self.inbounds.append(inbound)
        return None


@pytest.fixture
def hub() -> PlaygroundHub:
    return PlaygroundHub(action_key=KEY, history_limit=50, clock=lambda: NOW_MS)


@pytest.fixture
def handle() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(hub: PlaygroundHub, handle: Recorder) -> AsyncIterator[Client]:
    app = web.Application()
    add_routes(app, hub, handle, clock=lambda: NOW_MS, action_key=KEY)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


def delivery(
    key: str, reply: Reply, conversation: str = "playground:abc", actor_id: str = "playground-rep"
) -> Delivery:
    actor = Actor(id=actor_id, role="rep")
    inbound = MessagePosted(delivery_id="d1", conversation_id=conversation, actor=actor, text="hi")
    state = ConversationState(conversation_id=conversation, flow_state="greeting")
    (route,) = PlaygroundRouter().route(inbound, reply, state)
    return Delivery(
        key=key,
        conversation_id=conversation,
        channel=route.channel,
        payload={"reply": reply.model_dump(mode="json"), "target": route.target},
    )


def quote_card(status: str, buttons: tuple[Button, ...] = ()) -> Card:
    return Card(
        kind="quote",
        title="Quote Q-1",
        fields=(),
        lines=("10 × Pro = €1,000.00",),
        buttons=buttons,
        status=status,
        ref="Q-1",
    )


# --- POST /playground/send ---------------------------------------------------------------


async def test_a_prospect_line_without_a_conversation_starts_a_new_thread(
    client: Client, handle: Recorder
) -> None:
    response = await client.post(
        "/playground/send", json={"role": "prospect", "conversation": None, "text": " Hi there "}
    )
    assert response.status == 200
    conversation = (await response.json())["conversation"]
    assert re.fullmatch(r"playground:[0-9a-f]{12}", conversation)
    (inbound,) = handle.inbounds
    assert isinstance(inbound, MessagePosted)
    assert inbound.conversation_id == conversation
    assert inbound.text == "Hi there"
    assert inbound.addressed
    assert inbound.actor.role == "prospect"
    assert inbound.delivery_id.startswith("playground:")


async def test_two_new_conversations_get_different_ids(client: Client, handle: Recorder) -> None:
    for _ in range(2):
        await client.post("/playground/send", json={"role": "prospect", "text": "hello"})
    first, second = (inbound.conversation_id for inbound in handle.inbounds)
    assert first != second
    assert handle.inbounds[0].delivery_id != handle.inbounds[1].delivery_id


async def test_a_slash_line_from_the_rep_is_a_command_run_by_the_trusted_local_rep(
    client: Client, handle: Recorder
) -> None:
    response = await client.post(
        "/playground/send",
        json={"role": "rep", "conversation": "playground:abc", "text": "/quote 10 pro 10%"},
    )
    assert await response.json() == {"conversation": "playground:abc"}
    (inbound,) = handle.inbounds
    assert isinstance(inbound, CommandInvoked)
    assert (inbound.command, inbound.args) == ("quote", "10 pro 10%")
    assert inbound.conversation_id == "playground:abc"
    assert inbound.actor == REP
    assert inbound.actor.approver
    assert inbound.actor.auditor


async def test_a_command_alias_is_sent_under_its_command_name(
    client: Client, handle: Recorder
) -> None:
    await client.post(
        "/playground/send",
        json={"role": "rep", "conversation": "c", "text": "/SCORE Acme wants 50"},
    )
    (inbound,) = handle.inbounds
    assert isinstance(inbound, CommandInvoked)
    assert (inbound.command, inbound.args) == ("lead", "Acme wants 50")


async def test_a_command_typed_as_the_prospect_is_sent_as_the_prospect(
    client: Client, handle: Recorder
) -> None:
    await client.post("/playground/send", json={"role": "prospect", "text": "/metrics"})
    (inbound,) = handle.inbounds
    assert isinstance(inbound, CommandInvoked)
    assert inbound.actor.role == "prospect"
    assert not inbound.actor.approver


async def test_the_typed_line_is_shown_in_its_thread_with_its_author(
    client: Client, hub: PlaygroundHub
) -> None:
    await client.post(
        "/playground/send", json={"role": "rep", "conversation": "c", "text": "/quote 10 pro"}
    )
    await client.post(
        "/playground/send", json={"role": "prospect", "conversation": "c", "text": "ok"}
    )
    command, message = (await (await client.get("/playground/history")).json())["messages"]
    assert (command["author"], command["audience"], command["reply"]["text"]) == (
        "rep",
        "requester",
        "/quote 10 pro",
    )
    assert (message["author"], message["audience"], message["conversation"]) == (
        "prospect",
        "conversation",
        "c",
    )
    assert message["at"] == NOW_MS


# --- POST /playground/click --------------------------------------------------------------


async def test_a_card_button_becomes_a_click_by_the_rep(client: Client, handle: Recorder) -> None:
    response = await client.post(
        "/playground/click",
        json={"conversation": "playground:abc", "action": "accept_quote", "target": "Q-1"},
    )
    assert response.status == 200
    (inbound,) = handle.inbounds
    assert isinstance(inbound, ButtonClicked)
    assert (inbound.conversation_id, inbound.action, inbound.target) == (
        "playground:abc",
        "accept_quote",
        "Q-1",
    )
    assert inbound.actor == REP


async def test_a_click_carries_what_was_typed_in_the_cards_text_box(
    client: Client, handle: Recorder
) -> None:
    await client.post(
        "/playground/click",
        json={
            "conversation": "c",
            "action": "resolve_ticket",
            "target": "T-1:lost:price",
            "note": "  Budget frozen until next year ",
        },
    )
    (inbound,) = handle.inbounds
    assert isinstance(inbound, ButtonClicked)
    assert inbound.note == "Budget frozen until next year"


async def test_a_rep_line_is_said_in_the_conversation_not_to_the_bot(
    client: Client, handle: Recorder
) -> None:
    """The handoff desk: the rep's words reach the prospect, and take the conversation over."""
    await client.post(
        "/playground/send",
        json={"role": "rep", "conversation": "playground:abc", "text": "Hi, Rae here"},
    )
    (inbound,) = handle.inbounds
    assert isinstance(inbound, MessagePosted)
    assert not inbound.addressed
    assert inbound.actor == REP


async def test_a_click_may_say_the_prospect_pressed_it(client: Client, handle: Recorder) -> None:
    await client.post(
        "/playground/click",
        json={"conversation": "c", "action": "accept_quote", "target": "Q-1", "role": "prospect"},
    )
    assert handle.inbounds[0].actor.role == "prospect"


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/playground/send", b"{not json", 400, "not valid JSON"),
        ("/playground/send", b"[1, 2]", 400, "JSON object"),
        ("/playground/send", b'{"role": "admin", "text": "hi"}', 400, '"role"'),
        ("/playground/send", b'{"role": ["rep"], "text": "hi"}', 400, '"role"'),
        ("/playground/send", b'{"role": "rep", "text": "   "}', 400, '"text"'),
        ("/playground/send", b'{"role": "rep", "text": 5}', 400, '"text"'),
        (
            "/playground/send",
            b'{"role": "rep", "conversation": 7, "text": "hi"}',
            400,
            "conversation",
        ),
        ("/playground/click", b'{"conversation": "c", "action": "drop_tables"}', 400, '"action"'),
        ("/playground/click", b'{"action": "accept_quote", "target": "Q"}', 400, "conversation"),
        (
            "/playground/click",
            b'{"conversation": "c", "action": "escalate", "target": 3}',
            400,
            '"target"',
        ),
        (
            "/playground/click",
            b'{"conversation": "c", "action": "escalate", "note": 3}',
            400,
            '"note"',
        ),
        (
            "/playground/click",
            b'{"conversation": "c", "action": "escalate", "note": "' + b"x" * 501 + b'"}',
            400,
            '"note"',
        ),
    ],
)
async def test_a_malformed_post_is_refused_with_a_clear_json_error_and_never_handled(
    client: Client, handle: Recorder, path: str, body: bytes, status: int, message: str
) -> None:
    response = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert response.status == status
    assert message in (await response.json())["error"]
    assert handle.inbounds == []


async def test_an_unknown_command_is_refused_with_the_command_list(
    client: Client, handle: Recorder, hub: PlaygroundHub
) -> None:
    response = await client.post("/playground/send", json={"role": "rep", "text": "/deploy prod"})
    assert response.status == 400
    body = await response.json()
    assert "/deploy" in body["error"]
    assert any(command.startswith("/quote") for command in body["commands"])
    assert handle.inbounds == []
    assert hub.history() == []


async def test_a_body_over_64_kb_is_refused_as_too_large(client: Client, handle: Recorder) -> None:
    text = "x" * (64 * 1024)
    response = await client.post("/playground/send", json={"role": "rep", "text": text})
    assert response.status == 413
    assert "64 KB" in (await response.json())["error"]
    assert handle.inbounds == []


async def test_a_chunked_body_over_64_kb_is_refused_as_too_large(
    client: Client, handle: Recorder
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"role": "rep", "text": "'
        for _ in range(20):
            yield b"y" * 4096
        yield b'"}'

    response = await client.post(
        "/playground/send", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status == 413
    assert handle.inbounds == []


async def test_a_post_that_is_not_json_is_refused(client: Client, handle: Recorder) -> None:
    response = await client.post(
        "/playground/send",
        data=b'{"role": "rep", "text": "hi"}',
        headers={"Content-Type": "text/plain"},
    )
    assert response.status == 415
    assert handle.inbounds == []


async def test_a_post_from_another_site_is_refused(client: Client, handle: Recorder) -> None:
    response = await client.post(
        "/playground/send",
        json={"role": "rep", "text": "/audit everything"},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status == 403
    assert handle.inbounds == []


async def test_a_failing_handle_answers_500_in_json_without_a_traceback(
    client: Client, handle: Recorder
) -> None:
    handle.fail = True
    response = await client.post("/playground/send", json={"role": "prospect", "text": "hi"})
    assert response.status == 500
    text = await response.text()
    assert "error" in await response.json()
    assert "Traceback" not in text
    assert "/secret/path" not in text


# --- the hub: history and the live feed ----------------------------------------------------


async def test_a_delivered_reply_is_pushed_to_an_open_page_and_kept_in_history(
    client: Client, hub: PlaygroundHub
) -> None:
    async with client.ws_connect("/playground/ws") as ws:
        reply = Reply(audience="team", text="Lead scored 82", card=quote_card("Issued"))
        sent = await hub.send(delivery("K1", reply, conversation="playground:abc"))
        pushed = await ws.receive_json(timeout=5)
    assert pushed["id"] == sent.remote_id
    assert pushed["key"] == "K1"
    assert pushed["conversation"] == "playground:abc"
    assert pushed["audience"] == "team"
    assert pushed["requester"] == "playground-rep"
    assert pushed["author"] == "bot"
    assert pushed["reply"]["card"]["lines"] == ["10 × Pro = €1,000.00"]
    history = (await (await client.get("/playground/history")).json())["messages"]
    assert history == [pushed]


async def test_every_open_page_gets_each_message(client: Client, hub: PlaygroundHub) -> None:
    async with (
        client.ws_connect("/playground/ws") as one,
        client.ws_connect("/playground/ws") as two,
    ):
        await hub.send(delivery("K1", Reply(audience="conversation", text="Hello!")))
        assert (await one.receive_json(timeout=5))["key"] == "K1"
        assert (await two.receive_json(timeout=5))["key"] == "K1"


async def test_a_card_update_is_broadcast_naming_the_card_it_replaces(
    client: Client, hub: PlaygroundHub
) -> None:
    button = Button(action="accept_quote", label="Accept", target="Q-1")
    await hub.send(
        delivery(
            "K1", Reply(audience="conversation", text="Quote", card=quote_card("Issued", (button,)))
        )
    )
    async with client.ws_connect("/playground/ws") as ws:
        update = Reply(
            audience="conversation",
            text="Quote Q-1 accepted",
            card=quote_card("Accepted by You (rep)"),
            replaces="Q-1",
        )
        await hub.send(delivery("K2", update))
        pushed = await ws.receive_json(timeout=5)
    assert pushed["replaces"] == "Q-1"
    assert pushed["reply"]["card"]["status"] == "Accepted by You (rep)"
    assert pushed["reply"]["card"]["buttons"] == []


async def test_the_same_delivery_sent_twice_is_shown_once(hub: PlaygroundHub) -> None:
    item = delivery("K1", Reply(audience="conversation", text="Hello!"))
    assert await hub.find_sent(item) is None
    first = await hub.send(item)
    second = await hub.send(item)
    assert first.remote_id == second.remote_id == await hub.find_sent(item)
    assert len(hub.history()) == 1


async def test_the_history_keeps_only_the_most_recent_messages() -> None:
    hub = PlaygroundHub(action_key=KEY, history_limit=3)
    for index in range(5):
        await hub.send(delivery(f"K{index}", Reply(audience="conversation", text=f"m{index}")))
    assert [message["key"] for message in hub.history()] == ["K2", "K3", "K4"]


async def test_a_page_that_stops_reading_is_dropped_instead_of_blocking_the_outbox() -> None:
    hub = PlaygroundHub(action_key=KEY, history_limit=10)
    queue = hub.subscribe()
    for index in range(queue.maxsize + 5):
        await hub.send(delivery(f"K{index}", Reply(audience="conversation", text="x")))
    assert hub.subscriber_count == 0
    drained: list[dict[str, Any] | None] = []
    while not queue.empty():
        drained.append(queue.get_nowait())
    assert drained[-1] is None  # told to reconnect


async def test_an_open_page_is_closed_cleanly_when_the_server_shuts_down(
    hub: PlaygroundHub, handle: Recorder
) -> None:
    app = web.Application()
    add_routes(app, hub, handle, clock=lambda: NOW_MS, action_key=KEY)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        ws = await test_client.ws_connect("/playground/ws")
        await test_client.server.close()
        message = await ws.receive(timeout=5)
        assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        await ws.close()
    assert hub.subscriber_count == 0


async def test_a_websocket_from_another_site_is_refused(client: Client) -> None:
    response = await client.get("/playground/ws", headers={"Origin": "http://evil.example"})
    assert response.status == 403


def test_the_router_shows_every_audience_in_the_playground() -> None:
    state = ConversationState(conversation_id="lead-7", flow_state="greeting")
    inbound = MessagePosted(
        delivery_id="d", conversation_id="lead-7", actor=Actor(id="u1", role="prospect"), text="hi"
    )
    for audience in ("conversation", "team", "requester", "handoff", "approvers"):
        reply = Reply(audience=audience, text="x")
        (route,) = PlaygroundRouter().route(inbound, reply, state)
        assert route.channel == f"{CHANNEL_PREFIX}lead-7"
        assert route.target == {"conversation": "lead-7", "audience": audience, "requester": "u1"}


# --- GET /playground/tickets ------------------------------------------------------------------


async def test_the_open_tickets_come_from_the_injected_source_aged_by_the_clock(
    hub: PlaygroundHub, handle: Recorder
) -> None:
    opened = DeskTicket(
        key="T-1",
        conversation_id="playground:abc",
        kind="handoff",
        reason="human_request",
        status="claimed",
        claimed_by=MANAGER.id,
        opened_at_ms=NOW_MS - 125_000,
        updated_at_ms=NOW_MS - 5_000,
    )

    async def source() -> list[DeskTicket]:
        return [opened]

    app = web.Application()
    add_routes(app, hub, handle, clock=lambda: NOW_MS, action_key=KEY, tickets=source)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        response = await test_client.get("/playground/tickets")
        assert response.status == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        body = await response.json()
        refused = await test_client.get(
            "/playground/tickets", headers={"Origin": "http://evil.example"}
        )
    assert refused.status == 403
    assert body["now"] == NOW_MS
    (ticket,) = body["tickets"]
    assert (ticket["key"], ticket["age_ms"], ticket["holder"], ticket["holder_name"]) == (
        "T-1",
        125_000,
        MANAGER.id,
        "You (manager)",
    )
    assert ticket["title"] == "Handoff: the prospect asked for a person"


async def test_without_a_ticket_source_no_ticket_is_open(client: Client) -> None:
    body = await (await client.get("/playground/tickets")).json()
    assert body["tickets"] == []


# --- the page and its files ------------------------------------------------------------------


async def test_the_page_is_served_with_the_command_list_and_a_strict_content_policy(
    client: Client,
) -> None:
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    page = await response.text()
    for command in ("/quote", "/lead", "/audit", "/metrics", "/help"):
        assert f"<code>{command}" in page
    for hook in ("composer-input", "composer-send", "composer-role", "handoff-pane"):
        assert f'data-testid="{hook}"' in page
    assert 'aria-live="polite"' in page


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("playground.css", "text/css"), ("playground.js", "text/javascript")],
)
async def test_the_stylesheet_and_script_are_served_with_their_content_types(
    client: Client, name: str, content_type: str
) -> None:
    response = await client.get(f"/playground/static/{name}")
    assert response.status == 200
    assert response.content_type == content_type
    assert await response.read() == (STATIC / name).read_bytes()


@pytest.mark.parametrize(
    "name", ["index.html", "missing.js", "..%2Fweb.py", "%2E%2E%2F__init__.py", ""]
)
async def test_only_the_known_static_files_are_served(client: Client, name: str) -> None:
    response = await client.get(f"/playground/static/{name}")
    assert response.status == 404


def test_the_page_has_no_inline_scripts_styles_or_event_handlers() -> None:
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"\son[a-z]+\s*=", page, re.IGNORECASE)
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert "style=" not in page
    assert "http://" not in page
    assert "https://" not in page


def test_the_script_never_parses_data_as_markup() -> None:
    script = (STATIC / "playground.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert "http://" not in script
    assert "https://" not in script


def test_every_form_control_on_the_page_is_labelled() -> None:
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    for control_id in re.findall(r'<input[^>]*\bid="([^"]+)"', page):
        assert f'<label for="{control_id}"' in page
    for button in re.findall(r"<button[^>]*>([^<]*)</button>", page):
        assert button.strip()


# --- two local approvers: the rep and the manager ---------------------------------------------


async def test_the_manager_is_a_second_approver_with_its_own_id(
    client: Client, handle: Recorder, hub: PlaygroundHub
) -> None:
    await client.post(
        "/playground/send", json={"role": "manager", "conversation": "c", "text": "/audit c"}
    )
    await client.post(
        "/playground/click",
        json={"conversation": "c", "action": "approve_quote", "target": "Q-1", "role": "manager"},
    )
    command, click = handle.inbounds
    assert command.actor == click.actor == MANAGER
    assert MANAGER.id != REP.id
    assert MANAGER.name != REP.name
    for approver in (REP, MANAGER):
        assert approver.may_approve
        assert approver.may_audit
        assert not approver.sole_approver
    (typed,) = hub.history()
    assert typed["author"] == "manager"


def test_the_page_offers_the_manager_and_says_what_each_person_may_do() -> None:
    page = render_page()
    assert 'data-testid="role-manager"' in page
    assert "Manager (approver, auditor)" in page
    assert "four eyes" in page


# --- clicks are bound to the button that was delivered ------------------------------------


async def _delivered_button(hub: PlaygroundHub, conversation: str = "playground:abc") -> Any:
    button = Button(action="accept_quote", label="Accept", target="Q-1")
    reply = Reply(audience="conversation", text="Quote", card=quote_card("Issued", (button,)))
    await hub.send(delivery("K1", reply, conversation=conversation))
    (message,) = hub.history()
    return message, message["reply"]["card"]["buttons"][0]


def _click_of(message: dict[str, Any], button: dict[str, Any], **override: Any) -> dict[str, Any]:
    return {
        "conversation": message["conversation"],
        "action": button["action"],
        "target": button["target"],
        "ref": message["reply"]["card"]["ref"],
        "nonce": button["nonce"],
        "signature": button["signature"],
        "role": "prospect",
        **override,
    }


async def test_each_delivered_button_is_signed_and_its_click_is_bound(
    client: Client, hub: PlaygroundHub, handle: Recorder
) -> None:
    message, button = await _delivered_button(hub)
    assert button["signature"].startswith("v1.")
    assert re.fullmatch(r"[0-9a-f]{16}", button["nonce"])
    response = await client.post("/playground/click", json=_click_of(message, button))
    assert response.status == 200
    (click,) = handle.inbounds
    assert isinstance(click, ButtonClicked)
    assert click.binding == "ok"
    assert (click.conversation_id, click.action, click.target) == (
        "playground:abc",
        "accept_quote",
        "Q-1",
    )


async def test_the_history_keeps_buttons_that_still_verify(
    client: Client, hub: PlaygroundHub, handle: Recorder
) -> None:
    await _delivered_button(hub)
    (message,) = (await (await client.get("/playground/history")).json())["messages"]
    button = message["reply"]["card"]["buttons"][0]
    await client.post("/playground/click", json=_click_of(message, button))
    (click,) = handle.inbounds
    assert isinstance(click, ButtonClicked)
    assert click.binding == "ok"


@pytest.mark.parametrize(
    "override",
    [
        {"conversation": "playground:other"},  # a button of one thread pressed in another
        {"target": "Q-2"},
        {"action": "approve_quote"},
        {"ref": "Q-2"},
        {"nonce": "0000000000000000"},
        {"signature": "v1.00000000000000000000000000000000"},
        {"signature": "v2.anything"},
        {"signature": ""},
    ],
    ids=["conversation", "target", "action", "ref", "nonce", "forged", "version", "empty"],
)
async def test_a_click_that_does_not_match_its_signature_is_marked_bad_signature(
    client: Client, hub: PlaygroundHub, handle: Recorder, override: dict[str, Any]
) -> None:
    message, button = await _delivered_button(hub)
    response = await client.post("/playground/click", json=_click_of(message, button, **override))
    assert response.status == 200  # handed on, for the domain to record and refuse
    (click,) = handle.inbounds
    assert isinstance(click, ButtonClicked)
    assert click.binding == "bad_signature"
    # Recorded where it was made: the conversation the page posted.
    expected = override.get("conversation", "playground:abc")
    assert click.conversation_id == expected


async def test_a_click_without_a_signature_is_marked_unsigned(
    client: Client, handle: Recorder
) -> None:
    await client.post(
        "/playground/click",
        json={"conversation": "c", "action": "accept_quote", "target": "Q-1"},
    )
    (click,) = handle.inbounds
    assert isinstance(click, ButtonClicked)
    assert click.binding == "unsigned"
    assert click.conversation_id == "c"


async def test_a_signature_of_the_wrong_type_is_refused(client: Client, handle: Recorder) -> None:
    response = await client.post(
        "/playground/click",
        json={"conversation": "c", "action": "accept_quote", "signature": ["v1.x"]},
    )
    assert response.status == 400
    assert '"signature"' in (await response.json())["error"]
    assert handle.inbounds == []


async def test_a_button_in_a_conversation_that_cannot_be_signed_is_left_unsigned(
    hub: PlaygroundHub,
) -> None:
    _message, button = await _delivered_button(hub, conversation="a\x1fb")
    assert "signature" not in button


# --- bad input: a clear 4xx before anything is handled ----------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"role": "rep", "text": "hi \ud800"}, 400, "lone surrogate"),
        ({"role": "rep", "text": "/quote 10 pro \udfff"}, 400, "lone surrogate"),
        ({"role": "rep", "text": "a\x00b"}, 400, "U+0000"),
        ({"role": "prospect", "text": "bell \x07"}, 400, "U+0007"),
        ({"role": "prospect", "text": "del \x7f"}, 400, "U+007F"),
        ({"role": "prospect", "text": "c1 \x85 next line"}, 400, "U+0085"),
        ({"role": "prospect", "conversation": "\ud800", "text": "hi"}, 400, "conversation"),
        ({"role": "prospect", "conversation": "a\x1fb", "text": "hi"}, 400, "conversation"),
        ({"role": "prospect", "conversation": "x" * 201, "text": "hi"}, 400, "conversation"),
        ({"role": "manager ", "text": "hi"}, 400, '"role"'),
    ],
)
async def test_text_the_domain_cannot_take_is_refused_before_it_is_handled(
    client: Client, handle: Recorder, hub: PlaygroundHub, body: Any, status: int, message: str
) -> None:
    raw = json.dumps(body).encode()  # escapes lone surrogates as \ud800, as a browser would
    response = await client.post(
        "/playground/send", data=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status == status
    assert message in (await response.json())["error"]
    assert handle.inbounds == []
    assert hub.history() == []


async def test_tabs_and_line_breaks_are_text(client: Client, handle: Recorder) -> None:
    response = await client.post(
        "/playground/send", json={"role": "prospect", "text": "one\n\ttwo\r\nthree"}
    )
    assert response.status == 200
    assert isinstance(handle.inbounds[0], MessagePosted)


async def test_a_click_naming_an_odd_target_is_refused(client: Client, handle: Recorder) -> None:
    for target in ("\ud800", "Q\x00", "x" * 201):
        response = await client.post(
            "/playground/click",
            data=json.dumps({"conversation": "c", "action": "escalate", "target": target}),
            headers={"Content-Type": "application/json"},
        )
        assert response.status == 400
    assert handle.inbounds == []


@pytest.mark.parametrize("depth", [17, 5000, 60_000])
async def test_a_deeply_nested_body_is_refused_before_it_is_parsed(
    client: Client, handle: Recorder, depth: int
) -> None:
    raw = b'{"role": "rep", "text": "hi", "x": ' + b"[" * depth + b"]" * depth + b"}"
    response = await client.post(
        "/playground/send", data=raw[: 64 * 1024], headers={"Content-Type": "application/json"}
    )
    assert response.status in (400, 413)
    assert handle.inbounds == []


async def test_a_body_that_is_not_utf8_is_refused(client: Client, handle: Recorder) -> None:
    response = await client.post(
        "/playground/send",
        data=b'{"role": "rep", "text": "\xff\xfe"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 400
    assert handle.inbounds == []


# --- the WebSocket: odd handshakes and messages sent to it ------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Upgrade": "websocket", "Connection": "Upgrade"},
        {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"},
        {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "99",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
        {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "Ã©Ã©Ã©Ã©Ã©Ã©Ã©Ã©Ã©Ã©Ã©==",
        },
        {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "short==",
        },
    ],
    ids=["plain-get", "no-version", "no-key", "bad-version", "non-ascii-key", "short-key"],
)
async def test_an_odd_websocket_handshake_is_a_400(
    client: Client, hub: PlaygroundHub, headers: dict[str, str]
) -> None:
    response = await client.get("/playground/ws", headers=headers)
    assert response.status == 400
    assert "WebSocket" in (await response.json())["error"]
    assert hub.subscriber_count == 0


async def test_what_a_page_sends_on_its_socket_is_ignored_and_a_flood_closes_it(
    client: Client, hub: PlaygroundHub, handle: Recorder
) -> None:
    async with client.ws_connect("/playground/ws") as ws:
        await ws.send_str('{"role": "rep", "text": "/audit everything"}')
        await ws.send_bytes(b"\x00\xff")
        await hub.send(delivery("K1", Reply(audience="conversation", text="still here")))
        assert (await ws.receive_json(timeout=5))["key"] == "K1"
        await ws.send_str("x" * 10_000)
        closed = await ws.receive(timeout=5)
        assert closed.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert handle.inbounds == []
    assert (await client.get("/playground/history")).status == 200
