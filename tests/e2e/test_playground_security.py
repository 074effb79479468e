"""The playground's defects of issue 10, each through the real server: the trusted local
identities are served only on loopback and alone, unless a token guards them; a rebinding
page is refused; a click must carry its button's signature; the rep's discount request is
approved by the second local identity, the manager."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSServerHandshakeError, web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from adapters.teams.connector import NoToken
from bot.cli import main
from bot.policy_loader import load_policy
from bot.service import build_service
from bot.settings import Settings, SettingsError
from domain.events import QuoteApproved
from storage.memory import MemoryStore
from tests.e2e.harness import outbox_drained, serving
from tests.fakes.slack_api import FakeSlackApi

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "playground-token-for-tests"
Client = TestClient[web.Request, web.Application]

SLACK: dict[str, Any] = {
    "slack_bot_token": SecretStr("xoxb-test"),
    "slack_signing_secret": SecretStr("signing-secret"),
}
TEAMS: dict[str, Any] = {"teams_app_id": "app-id", "teams_app_password": SecretStr("app-password")}


# --- refused configurations -------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"salesbot_host": "0.0.0.0"}, "on '0.0.0.0'"),
        ({"salesbot_host": "bot.example.org"}, "on 'bot.example.org'"),
        ({**SLACK, "salesbot_playground": True}, "beside Slack"),
        ({**TEAMS, "salesbot_playground": True}, "beside Teams"),
        (
            {"teams_allow_unauthenticated": True, "salesbot_playground": True},
            "beside Teams",
        ),
        (
            {**SLACK, "salesbot_playground": True, "salesbot_host": "0.0.0.0"},
            "on '0.0.0.0' and beside Slack",
        ),
    ],
    ids=["any-address", "a-name", "slack", "teams", "teams-local", "both"],
)
async def test_the_playground_is_refused_off_loopback_or_beside_a_platform_without_a_token(
    settings: dict[str, Any], says: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        build_service(
            Settings(**settings),
            load_policy("default"),
            MemoryStore(),
            clock=lambda: 0,
            teams_tokens=NoToken(),
        )
    message = str(refused.value)
    assert message.startswith("invalid configuration: the playground would be served")
    assert says in message
    assert "SALESBOT_PLAYGROUND_TOKEN" in message


async def test_beside_slack_without_the_playground_switch_nothing_is_refused() -> None:
    service = build_service(
        Settings(**SLACK, salesbot_host="0.0.0.0"),
        load_policy("default"),
        MemoryStore(),
        clock=lambda: 0,
    )
    assert service.playground is None


@pytest.mark.parametrize(
    "settings",
    [{"salesbot_host": "0.0.0.0"}, {**SLACK, "salesbot_playground": True}],
    ids=["any-address", "slack"],
)
async def test_with_a_token_the_playground_starts_and_requires_it(
    settings: dict[str, Any],
) -> None:
    service = build_service(
        Settings(**settings, salesbot_playground_token=SecretStr(TOKEN)),
        load_policy("default"),
        MemoryStore(),
        clock=lambda: 0,
    )
    assert service.playground is not None
    assert service.playground_access.token_required


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SALESBOT_DB": str(tmp_path / "serve.db"),
        "SALESBOT_ENV_FILE": os.devnull,  # never a developer's .env
        **extra,
    }


def test_serve_refuses_with_one_line_and_exit_code_2(tmp_path: Path) -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--port", "0"],
        cwd=ROOT,
        env=_env(tmp_path, **env, SALESBOT_PLAYGROUND="1"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("salesbot: error: invalid configuration: the playground would be")
    assert "beside Slack" in line
    assert "SALESBOT_PLAYGROUND_TOKEN" in line
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("env", "args"),
    [({}, ["--host", "0.0.0.0"]), ({"SALESBOT_HOST": "0.0.0.0"}, [])],
    ids=["host-flag", "host-variable"],
)
def test_serve_refuses_any_address_without_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], args: list[str]
) -> None:
    for name, value in _env(tmp_path, **env).items():
        monkeypatch.setenv(name, value)
    out, err = io.StringIO(), io.StringIO()
    assert main(["serve", "--port", "0", *args], out=out, err=err) == 2
    (line,) = err.getvalue().splitlines()
    assert "the playground would be served on '0.0.0.0'" in line
    assert out.getvalue() == ""


@pytest.fixture
def serve_process(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`salesbot serve` with the environment `request.param`; yields (base URL, mode line)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", "0"],
        cwd=ROOT,
        env=_env(tmp_path, **request.param),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        assert match, first + (process.stderr.read() if process.stderr else "")
        yield f"http://127.0.0.1:{match.group(1)}", process.stdout.readline().rstrip("\n")
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("serve_process", [{}], indirect=True)
def test_serve_says_the_playground_is_local_only(serve_process: tuple[str, str]) -> None:
    base, line = serve_process
    assert line == f"playground: local only at {base}/"
    with urllib.request.urlopen(f"{base}/playground/history", timeout=10) as response:
        assert response.status == 200


@pytest.mark.parametrize(
    "serve_process",
    [
        {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": "secret",
            "SLACK_API_URL": "http://127.0.0.1:9/api/",
            "SALESBOT_PLAYGROUND": "1",
            "SALESBOT_PLAYGROUND_TOKEN": TOKEN,
        }
    ],
    indirect=True,
)
def test_serve_beside_slack_with_a_token_says_so_and_requires_it(
    serve_process: tuple[str, str],
) -> None:
    base, line = serve_process
    assert line.startswith(f"playground: token required (beside Slack) at {base}/")
    assert TOKEN not in line
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{base}/playground/history", timeout=10)
    assert refused.value.code == 401
    authorized = urllib.request.Request(
        f"{base}/playground/history", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(authorized, timeout=10) as response:
        assert response.status == 200


# --- the running server ---------------------------------------------------------------------


async def _stored(store: MemoryStore) -> tuple[int, int]:
    conversations = await store.conversation_ids()
    events = sum([len(await store.load(conversation)) for conversation in conversations])
    return events, len(await store.recent(0))


async def test_beside_slack_a_playground_request_without_the_token_reaches_nothing() -> None:
    """Before: with SALESBOT_PLAYGROUND=1 beside Slack, anyone who reached the server could
    audit a Slack conversation and approve its discount as the trusted local rep."""
    store = MemoryStore()
    async with FakeSlackApi(token="xoxb-test") as api:
        settings = Settings(
            **SLACK,
            slack_api_url=api.base_url,
            salesbot_playground=True,
            salesbot_playground_token=SecretStr(TOKEN),
        )
        async with serving(api, settings, store) as client:
            audit = {"role": "rep", "conversation": "slack:C1:1.0", "text": "/audit slack:C1:1.0"}
            approve = {"conversation": "slack:C1:1.0", "action": "approve_quote", "target": "Q-1"}
            for path, body in (("/playground/send", audit), ("/playground/click", approve)):
                response = await client.post(path, json=body, headers={"Host": "bot.example"})
                assert response.status == 401
            with pytest.raises(WSServerHandshakeError) as feed:
                await client.ws_connect("/playground/ws")
            assert feed.value.status == 401
    assert await _stored(store) == (0, 0)


async def test_beside_slack_the_token_holder_is_served() -> None:
    store = MemoryStore()
    async with FakeSlackApi(token="xoxb-test") as api:
        settings = Settings(
            **SLACK,
            slack_api_url=api.base_url,
            salesbot_playground=True,
            salesbot_playground_token=SecretStr(TOKEN),
        )
        async with serving(api, settings, store) as client:
            response = await client.post(
                "/playground/send",
                json={"role": "prospect", "text": "Hello"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert response.status == 200
    assert (await _stored(store))[1] == 1


async def test_a_dns_rebinding_page_cannot_speak_as_the_rep() -> None:
    store = MemoryStore()
    async with serving(None, Settings(), store) as client:
        response = await client.post(
            "/playground/send",
            json={"role": "rep", "text": "/metrics"},
            headers={"Host": "attacker.example:3000", "Origin": "http://attacker.example:3000"},
        )
        assert response.status == 403
        assert (await client.get("/healthz")).status == 200
    assert await _stored(store) == (0, 0)


# --- clicks bound to their buttons; the manager approves the rep's request ------------------


async def _history(client: Client) -> list[dict[str, Any]]:
    response = await client.get("/playground/history")
    assert response.status == 200
    messages: list[dict[str, Any]] = (await response.json())["messages"]
    return messages


async def _card_button(
    client: Client, conversation: str, action: str, *, status: str = ""
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The latest delivered card in `conversation` with a button `action` (and a status
    starting with `status`), and that button as the page got it."""
    found: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def look() -> bool:
        for message in reversed(await _history(client)):
            card = message["reply"].get("card") or {}
            if message["conversation"] != conversation or not card.get("status", "").startswith(
                status
            ):
                continue
            for button in card.get("buttons", []):
                if button["action"] == action:
                    found.append((message, button))
                    return True
        return False

    for _ in range(500):
        if await look():
            return found[0]
        await outbox_drained(client)
    raise AssertionError(f"no {action} button in {conversation}")


def _click(message: dict[str, Any], button: dict[str, Any], role: str) -> dict[str, Any]:
    return {
        "conversation": message["conversation"],
        "action": button["action"],
        "target": button["target"],
        "ref": message["reply"]["card"]["ref"],
        "nonce": button["nonce"],
        "signature": button["signature"],
        "role": role,
    }


async def _types(store: MemoryStore, conversation: str) -> list[str]:
    return [envelope.event.type for envelope in await store.load(conversation)]


async def test_the_manager_approves_the_reps_discount_request_with_signed_buttons() -> None:
    store = MemoryStore()
    async with serving(None, Settings(), store) as client:
        started = await client.post(
            "/playground/send", json={"role": "prospect", "text": "Hi, we look at CRMs"}
        )
        conversation = (await started.json())["conversation"]
        await client.post(
            "/playground/send",
            json={"role": "rep", "conversation": conversation, "text": "/quote 10 pro 20%"},
        )
        message, button = await _card_button(client, conversation, "request_approval")
        assert (
            await client.post("/playground/click", json=_click(message, button, "rep"))
        ).status == 200
        message, button = await _card_button(client, conversation, "approve_quote")
        assert message["audience"] == "approvers"
        assert (
            await client.post("/playground/click", json=_click(message, button, "manager"))
        ).status == 200
        await outbox_drained(client)
        types = await _types(store, conversation)
        assert "approval_requested" in types
        assert "quote_approved" in types
        (approved,) = [
            envelope.event
            for envelope in await store.load(conversation)
            if isinstance(envelope.event, QuoteApproved)
        ]
        assert approved.by == "playground-manager"
        clicks = [
            stored.inbound
            for stored in await store.inbounds(conversation)
            if stored.inbound["kind"] == "action"
        ]
        assert [click["binding"] for click in clicks] == ["ok", "ok"]
        assert [click["actor"]["id"] for click in clicks] == [
            "playground-rep",
            "playground-manager",
        ]


async def _conversation_with_quote(client: Client) -> str:
    started = await client.post(
        "/playground/send", json={"role": "prospect", "text": "Hi, we look at CRMs"}
    )
    conversation: str = (await started.json())["conversation"]
    await client.post(
        "/playground/send",
        json={"role": "rep", "conversation": conversation, "text": "/quote 10 pro 10%"},
    )
    return conversation


async def test_a_button_pressed_in_another_conversation_is_refused_and_recorded_there() -> None:
    """The Teams defect, in the playground: a click claiming another conversation's quote.
    It is recorded where it was posted, marked, and accepts nothing anywhere."""
    store = MemoryStore()
    async with serving(None, Settings(), store) as client:
        victim = await _conversation_with_quote(client)
        message, button = await _card_button(client, victim, "accept_quote")
        other = (
            await (
                await client.post("/playground/send", json={"role": "prospect", "text": "Hello"})
            ).json()
        )["conversation"]
        moved = _click(message, button, "prospect") | {"conversation": other}
        assert (await client.post("/playground/click", json=moved)).status == 200
        await outbox_drained(client)
        (click,) = [
            stored.inbound
            for stored in await store.inbounds(other)
            if stored.inbound["kind"] == "action"
        ]
        assert (click["binding"], click["conversation_id"]) == ("bad_signature", other)
        assert not any(s.inbound["kind"] == "action" for s in await store.inbounds(victim))
        for conversation in (victim, other):
            types = await _types(store, conversation)
            assert "quote_accepted" not in types
            assert "conversation_closed" not in types


async def test_a_click_without_its_signature_is_marked_unsigned_in_its_conversation() -> None:
    store = MemoryStore()
    async with serving(None, Settings(), store) as client:
        conversation = await _conversation_with_quote(client)
        message, button = await _card_button(client, conversation, "accept_quote")
        unsigned = {
            key: value
            for key, value in _click(message, button, "prospect").items()
            if key not in ("signature", "nonce")
        }
        assert (await client.post("/playground/click", json=unsigned)).status == 200
        tampered = _click(message, button, "prospect") | {"nonce": "0" * 16}
        assert (await client.post("/playground/click", json=tampered)).status == 200
        await outbox_drained(client)
        clicks = [
            stored.inbound
            for stored in await store.inbounds(conversation)
            if stored.inbound["kind"] == "action"
        ]
        assert [click["binding"] for click in clicks] == ["unsigned", "bad_signature"]
        assert {click["conversation_id"] for click in clicks} == {conversation}


async def test_after_a_rotation_an_old_card_is_posted_again_under_the_new_secret() -> None:
    """`SALESBOT_ACTION_SECRET=new,old`: a button signed with the old secret is ours but out
    of date — refused once, its card posted again signed with the new one, which works.
    With the old secret dropped, the same button is a bad signature."""
    store = MemoryStore()
    async with serving(None, Settings(salesbot_action_secret=SecretStr("old")), store) as client:
        conversation = await _conversation_with_quote(client)
        message, button = await _card_button(client, conversation, "accept_quote")
    old_click = _click(message, button, "prospect")
    rotated = Settings(salesbot_action_secret=SecretStr("new,old"))
    async with serving(None, rotated, store) as client:
        assert (await client.post("/playground/click", json=old_click)).status == 200
        message, button = await _card_button(client, conversation, "accept_quote")
        assert button["signature"] != old_click["signature"]
        assert "quote_accepted" not in await _types(store, conversation)
        fresh = _click(message, button, "prospect")
        assert (await client.post("/playground/click", json=fresh)).status == 200
        await outbox_drained(client)
        assert "quote_accepted" in await _types(store, conversation)
    dropped = Settings(salesbot_action_secret=SecretStr("new"))
    async with serving(None, dropped, store) as client:
        assert (await client.post("/playground/click", json=old_click)).status == 200
        await outbox_drained(client)
    bindings = [
        stored.inbound["binding"]
        for stored in await store.inbounds(conversation)
        if stored.inbound["kind"] == "action"
    ]
    assert bindings == ["unsigned", "ok", "bad_signature"]
