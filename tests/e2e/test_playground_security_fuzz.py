"""Fuzzing the playground through the real server, runtime and SQLite store: whatever is
posted, sent on the socket or asked for, the answer is never a 5xx, a refused request
stores nothing (no events, no inbounds), and the server is healthy afterwards.

Bounded (`max_examples`) so each fuzzer stays within a few seconds; under `CI` the
derandomised profile in `tests/conftest.py` runs the same examples every time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
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
from domain.commands import COMMANDS
from domain.inbound import ActionId
from storage.sqlite import SqliteStore
from tests.e2e.harness import serving

Client = TestClient[web.Request, web.Application]
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Served:
    client: Client
    store: SqliteStore

    async def stored(self) -> tuple[int, int]:
        """(events, inbounds) in the store."""
        events = inbounds = 0
        for conversation in await self.store.conversation_ids():
            events += len(await self.store.load(conversation))
            inbounds += len(await self.store.inbounds(conversation))
        return events, inbounds

    async def healthy(self) -> None:
        assert (await self.client.get("/healthz")).status == 200
        ready = await self.client.get("/readyz")
        assert ready.status == 200
        assert (await ready.json())["status"] == "ready"
        page = await self.client.post("/playground/send", json={"role": "prospect", "text": "hi"})
        assert page.status == 200


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    store = await SqliteStore.open(tmp_path / "fuzz.db")
    try:
        async with serving(None, Settings(), store) as client:
            yield Served(client, store)
            await Served(client, store).healthy()
    finally:
        await store.close()


TOKEN = "fuzzing-the-playground-token"


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Served]:
    """Token required: nothing gets through without it, whatever the headers say."""
    store = await SqliteStore.open(tmp_path / "guarded.db")
    settings = Settings(salesbot_playground_token=SecretStr(TOKEN))
    try:
        async with serving(None, settings, store) as client:
            yield Served(client, store)
    finally:
        await store.close()


# Any code point, control characters included; lone surrogates put in explicitly (a JSON
# body can carry "\ud800", and Hypothesis rarely draws one on its own).
_CHARS = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)
ANY_TEXT = st.one_of(
    _CHARS,
    st.builds(
        lambda before, lone, after: before + lone + after,
        _CHARS,
        st.sampled_from(["\ud800", "\udbff", "\udc80", "\udfff"]),
        _CHARS,
    ),
)
IDS = st.one_of(
    st.none(),
    st.just("playground:fuzz0001"),
    ANY_TEXT,
    st.integers(),
    st.lists(st.integers(), max_size=2),
    st.text(min_size=190, max_size=220),
)
ROLES = st.one_of(
    st.sampled_from(["prospect", "rep", "manager"]), ANY_TEXT, st.none(), st.booleans()
)
COMMAND_LINES = st.builds(
    lambda name, args: f"/{name} {args}",
    st.sampled_from([spec.name for spec in COMMANDS] + ["as", "click", "quit", ""]),
    ANY_TEXT,
)
TEXTS = st.one_of(
    ANY_TEXT,
    COMMAND_LINES,
    st.builds(lambda n: "x" * n, st.sampled_from([39_999, 40_000, 40_001, 70_000])),
    st.integers(),
    st.none(),
)
ACTIONS = st.one_of(st.sampled_from(ActionId.__args__), ANY_TEXT)  # type: ignore[attr-defined]


def _encode(body: Any) -> bytes:
    """As a browser would send it: lone surrogates escaped as \\udXXX."""
    return json.dumps(body).encode()


async def _post(served: Served, path: str, raw: bytes, content_type: str) -> None:
    before = await served.stored()
    response = await served.client.post(path, data=raw, headers={"Content-Type": content_type})
    text = await response.text()
    assert response.status < 500, text
    if response.status >= 400:
        assert "error" in json.loads(text)
        assert await served.stored() == before, f"{response.status} {text} stored something"


@FUZZ
@given(
    role=ROLES, conversation=IDS, text=TEXTS, extra=st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=2)
)
async def test_send_never_answers_5xx_and_a_refusal_stores_nothing(
    served: Served, role: Any, conversation: Any, text: Any, extra: dict[str, str]
) -> None:
    body = {**extra, "role": role, "conversation": conversation, "text": text}
    await _post(served, "/playground/send", _encode(body), "application/json")


@FUZZ
@given(
    role=st.sampled_from(["prospect", "rep", "manager"]),
    conversation=st.sampled_from([None, "playground:fuzz0001", "playground:fuzz0002"]),
    text=st.one_of(COMMAND_LINES, ANY_TEXT),
)
async def test_any_line_from_a_local_person_is_answered_or_refused_never_5xx(
    served: Served, role: str, conversation: str | None, text: str
) -> None:
    """The domain-facing path: commands with arbitrary arguments, arbitrary messages."""
    await _post(
        served,
        "/playground/send",
        _encode({"role": role, "conversation": conversation, "text": text}),
        "application/json",
    )


@FUZZ
@given(
    role=ROLES,
    conversation=IDS,
    action=ACTIONS,
    target=st.one_of(ANY_TEXT, st.integers(), st.none()),
    ref=st.one_of(ANY_TEXT, st.none()),
    nonce=st.one_of(ANY_TEXT, st.none()),
    signature=st.one_of(st.none(), ANY_TEXT, st.just("v1." + "0" * 32), st.integers()),
)
async def test_click_never_answers_5xx_and_a_refusal_stores_nothing(
    served: Served,
    role: Any,
    conversation: Any,
    action: Any,
    target: Any,
    ref: Any,
    nonce: Any,
    signature: Any,
) -> None:
    body = {
        "role": role,
        "conversation": conversation,
        "action": action,
        "target": target,
        "ref": ref,
        "nonce": nonce,
        "signature": signature,
    }
    await _post(
        served,
        "/playground/click",
        _encode({k: v for k, v in body.items() if v is not None}),
        "application/json",
    )


@FUZZ
@given(
    path=st.sampled_from(["/playground/send", "/playground/click"]),
    raw=st.one_of(
        st.binary(max_size=200),
        st.builds(lambda depth: b"[" * depth + b"]" * depth, st.integers(1, 20_000)),
        st.builds(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth, st.integers(1, 5_000)),
        st.just(b"1" * 5000),
        st.just(b'"\\ud800"'),
    ),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
    ),
)
async def test_any_body_never_answers_5xx(
    served: Served, path: str, raw: bytes, content_type: str
) -> None:
    await _post(served, path, raw, content_type)


@FUZZ
@given(
    frames=st.lists(
        st.one_of(ANY_TEXT.map(lambda text: text.encode("utf-8", "surrogatepass")), st.binary()),
        max_size=4,
    ),
    as_text=st.booleans(),
)
async def test_whatever_is_sent_on_the_socket_changes_nothing(
    served: Served, frames: list[bytes], as_text: bool
) -> None:
    before = await served.stored()
    async with served.client.ws_connect("/playground/ws") as ws:
        for frame in frames:
            if as_text:
                await ws.send_str(frame.decode("utf-8", "replace"))
            else:
                await ws.send_bytes(frame)
    assert await served.stored() == before
    assert (await served.client.get("/playground/history")).status == 200


HEADER_VALUES = st.one_of(
    st.sampled_from(["websocket", "Upgrade", "13", "8", "dGhlIHNhbXBsZSBub25jZQ==", ""]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    st.text(st.characters(min_codepoint=0xA0, max_codepoint=0xFF), min_size=1, max_size=24),
)


@FUZZ
@given(
    headers=st.dictionaries(
        st.sampled_from(
            [
                "Upgrade",
                "Connection",
                "Sec-WebSocket-Version",
                "Sec-WebSocket-Key",
                "Sec-WebSocket-Protocol",
                "Sec-WebSocket-Extensions",
                "Origin",
            ]
        ),
        HEADER_VALUES,
        max_size=7,
    )
)
async def test_an_odd_handshake_is_never_a_5xx(served: Served, headers: dict[str, str]) -> None:
    encoded = {name: value.encode("latin-1").decode("latin-1") for name, value in headers.items()}
    response = await served.client.get("/playground/ws", headers=encoded)
    assert response.status < 500, await response.text()
    response.close()


@FUZZ
@given(
    name=st.text(
        st.characters(codec="utf-8", exclude_categories=["Cc"], exclude_characters="/?#"),
        max_size=40,
    ),
    where=st.sampled_from(["/playground/static/", "/playground/history", "/playground/", "/"]),
)
async def test_static_and_history_paths_are_never_a_5xx(
    served: Served, name: str, where: str
) -> None:
    response = await served.client.get(where + name)
    assert response.status < 500
    if where == "/playground/static/" and name not in ("playground.css", "playground.js"):
        assert response.status == 404


ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=50)


@FUZZ
@given(
    route=st.sampled_from(
        [
            ("GET", "/"),
            ("GET", "/?token=" + TOKEN[:-1]),
            ("GET", "/playground/static/playground.js"),
            ("GET", "/playground/history"),
            ("GET", "/playground/ws"),
            ("POST", "/playground/send"),
            ("POST", "/playground/click"),
        ]
    ),
    headers=st.fixed_dictionaries(
        {},
        optional={
            "Host": st.one_of(ASCII, st.sampled_from(["127.0.0.1", "attacker.example"])),
            "Origin": st.one_of(ASCII, st.just("null")),
            "Authorization": st.one_of(
                ASCII,
                st.builds(lambda text: f"Bearer {text}", ASCII),
                st.just(f"Bearer {TOKEN[:-1]}"),
                st.just(f"bearer {TOKEN}x"),
            ),
            "Cookie": st.builds(lambda text: f"salesbot_playground={text}", ASCII),
        },
    ),
)
async def test_without_the_token_no_header_gets_through(
    guarded: Served, route: tuple[str, str], headers: dict[str, str]
) -> None:
    method, path = route
    body = {"role": "rep", "text": "/audit everything", "conversation": "c", "action": "escalate"}
    if method == "POST":
        response = await guarded.client.post(path, json=body, headers=headers)
    else:
        response = await guarded.client.get(path, headers=headers)
    assert response.status in (400, 401, 403), await response.text()
    assert await guarded.stored() == (0, 0)
