"""Hypothesis fuzzers for `/api/messages` through the real server (issue 10, item 7): garbage
bodies, and Microsoft's recorded activities (plus our own signed card clicks) mutated field by
field — wrong types, lone surrogates, overlong text, huge lists, odd `value`s — in local
unauthenticated mode and with a valid token.

For every request: never a 5xx; an `Action.Execute` click answered 200 is a message or card
with `statusCode` 200; a refused request (4xx) wrote nothing — no delivery, inbound or
event, no conversation reference or user account — read from the SQLite file itself. After
each run the server still answers a plain message and stores it.

Examples are bounded (`max_examples`) so each fuzzer takes a few seconds; with `CI` set
the derandomised profile makes them the same on every run (tests/conftest.py).
"""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from adapters.teams.binding import Placement
from adapters.teams.connector import NoToken
from bot.server import SERVICE_KEY
from bot.settings import Settings
from storage.sqlite import SqliteStore
from tests.e2e.harness import eventually, serving
from tests.fakes.teams_connector import FakeConnector
from tests.teams.keys import LocalIssuer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "teams"
ACTIVITIES = (
    "teams_message_personal.json",
    "teams_message_channel_mention.json",
    "teams_message_action_submit.json",
    "teams_invoke_adaptivecard_action.json",
    "teams_conversation_update_bot_added_personal.json",
    "teams_conversation_update_bot_added_team.json",
)
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # the tenant of most of the fixtures
APP_ID = "app-0001"
FUZZ = settings(
    max_examples=200,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)

Client = TestClient[web.Request, web.Application]


@dataclass
class Bot:
    client: Client
    db: Path
    service_url: str
    bases: list[dict[str, Any]]
    """Activities to mutate: the recorded fixtures and signed clicks on our own cards."""
    authorization: Callable[[str], str] | None = None
    """With credentials: a valid `Authorization` header for a service URL."""

    async def post(self, body: bytes, content_type: str, authorization: str | None) -> Any:
        headers = {"Content-Type": content_type}
        if authorization is not None:
            headers["Authorization"] = authorization
        return await self.client.post("/api/messages", data=body, headers=headers)


def recorded(name: str, service_url: str) -> dict[str, Any]:
    activity: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    activity.pop("_source", None)
    activity["serviceUrl"] = service_url
    return activity


def bases(client: Client, service_url: str) -> list[dict[str, Any]]:
    """The recorded activities, and clicks carrying real signed data (signed with the running
    service's key for the fixture's own conversation), so the click path is fuzzed too."""
    found = [recorded(name, service_url) for name in ACTIVITIES]
    app = client.app
    assert app is not None
    key = app[SERVICE_KEY].action_key
    submit = recorded("teams_message_action_submit.json", service_url)
    where = submit["conversation"]["id"]
    data = Placement(key, TENANT, where).action_data(
        f"teams:{where}", "accept_quote", "Q-1", "nonce-1", "Q-1"
    )
    submit["value"] = data
    execute = recorded("teams_invoke_adaptivecard_action.json", service_url)
    execute["conversation"] = copy.deepcopy(submit["conversation"])
    execute["value"]["action"].update(verb="accept_quote", data=dict(data))
    return [*found, submit, execute]


def endpoint_rows(db: Path) -> tuple[Any, ...]:
    """Everything the endpoint writes for a request, read from the database file: deliveries,
    inbounds and events of Teams deliveries, and the adapter state the endpoint keeps
    (references, accounts, the install channel, invoke answers). What the outbox worker
    writes meanwhile for earlier requests (card ids, dead letters) is left out."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return (
            conn.execute(
                "SELECT delivery_id FROM deliveries WHERE delivery_id LIKE 'teams:%' ORDER BY 1"
            ).fetchall(),
            conn.execute(
                "SELECT count(*) FROM inbounds WHERE delivery_id LIKE 'teams:%'"
            ).fetchall(),
            conn.execute("SELECT count(*) FROM events WHERE delivery_id LIKE 'teams:%'").fetchall(),
            conn.execute(
                "SELECT key, value FROM adapter_state WHERE key LIKE 'teams:conv:%' "
                "OR key LIKE 'teams:user:%' OR key LIKE 'teams:invoke:%' "
                "OR key IN ('teams:install', 'teams:service-url') ORDER BY 1"
            ).fetchall(),
        )


async def still_serving(bot: Bot) -> None:
    """The server answers, and a plain message is accepted and stored."""
    assert (await bot.client.get("/healthz")).status == 200
    hello = recorded("teams_message_personal.json", bot.service_url)
    hello["id"] = "after-the-fuzz"
    hello["text"] = "Hello, we are evaluating CRMs"
    auth = bot.authorization(bot.service_url) if bot.authorization else None
    response = await bot.post(json.dumps(hello).encode(), "application/json", auth)
    assert response.status == 200
    await eventually(
        lambda: ("teams:act:after-the-fuzz",) in endpoint_rows(bot.db)[0], "the message stored"
    )


@pytest.fixture
async def local_bot(tmp_path: Path) -> AsyncIterator[Bot]:
    db = tmp_path / "fuzz.db"
    async with FakeConnector(tenant_id=TENANT) as connector:
        store = await SqliteStore.open(db)
        try:
            settings = Settings(teams_allow_unauthenticated=True, teams_app_tenant_id=TENANT)
            async with serving(None, settings, store) as client:
                bot = Bot(client, db, connector.base_url, bases(client, connector.base_url))
                yield bot
                await still_serving(bot)
        finally:
            await store.close()


@pytest.fixture
async def signed_in_bot(tmp_path: Path) -> AsyncIterator[Bot]:
    db = tmp_path / "fuzz.db"
    async with (
        LocalIssuer(app_id=APP_ID) as issuer,
        FakeConnector(tenant_id=TENANT) as connector,
    ):
        # https, as credentials require: the bot's later sends to the fake's http port fail
        # locally and harmlessly; nothing leaves 127.0.0.1.
        service_url = connector.base_url.replace("http://", "https://")
        store = await SqliteStore.open(db)
        try:
            settings = Settings(
                teams_app_id=APP_ID,
                teams_app_password=SecretStr("not-used-in-tests"),
                teams_app_tenant_id=TENANT,
                teams_openid_metadata_url=issuer.metadata_url,
            )
            async with serving(None, settings, store, teams_tokens=NoToken()) as client:

                def authorization(url: str) -> str:
                    return issuer.authorization(serviceUrl=url)

                bot = Bot(client, db, service_url, bases(client, service_url), authorization)
                yield bot
                await still_serving(bot)
        finally:
            await store.close()


# --- strategies ----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ODD_VALUES = st.one_of(
    JSON_VALUES,
    st.sampled_from(
        [
            "\ud800",  # a lone surrogate
            "ok \udfff then",
            "x" * 40_001,  # over what a message may hold
            "<at>salesbot</at> " * 50,
            "",
            " ",
            "\x00\x1f",
            "29:" + "a" * 5000,
            "a:" + "b" * 300,
            "http://169.254.169.254/",
            "https://evil.example.com/",
        ]
    ),
    # Distinct dicts: one list item changed later must not change them all.
    st.integers(1, 20_000).map(
        lambda n: [{"type": "mention", "text": "<at>x</at>"} for _ in range(n)]
    ),
    st.integers(1, 60).map(lambda n: json.loads("[" * n + "]" * n)),
    st.text(max_size=200),
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `node` (dict keys and list indices)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((*prefix, key))
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:8]):
            found.append((*prefix, index))
            found += paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """`base` with one to four changes: a value replaced, a key removed, a key added."""
    activity = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        where = paths(activity)
        path = draw(st.sampled_from(where)) if where else ()
        parent: Any = activity
        for step in path[:-1]:
            parent = parent[step]
        operation = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if not path or operation == "add":
            target = parent[path[-1]] if path else activity
            if isinstance(target, dict):
                target[draw(st.text(max_size=12))] = draw(ODD_VALUES)
            continue
        if operation == "remove":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(ODD_VALUES)
    return activity


GARBAGE = st.one_of(
    st.binary(max_size=600),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.integers(60, 20_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 5_000).map(lambda n: b'{"a":' * n),
    st.integers(1, 5_000).map(lambda n: b'{"type":"message","x":' + b'"\\' * n),
    st.text(max_size=200).map(lambda text: text.encode("utf-16")),
    st.text(max_size=400).map(lambda text: text.encode("utf-8", "surrogatepass")),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
    ]
)


def is_execute(activity: Any) -> bool:
    return (
        isinstance(activity, dict)
        and activity.get("type") == "invoke"
        and activity.get("name") == "adaptiveCard/action"
    )


async def check(bot: Bot, body: bytes, content_type: str, authorization: str | None) -> None:
    """One request: no 5xx; an Execute click answered 200 as Teams needs; a refusal stores
    nothing."""
    before = endpoint_rows(bot.db)
    response = await bot.post(body, content_type, authorization)
    assert response.status < 500, await response.text()
    if response.status >= 400:
        reason = (await response.json())["error"]
        assert reason
        assert "\n" not in reason
        assert endpoint_rows(bot.db) == before
        return
    try:
        activity = json.loads(body)
    except ValueError:
        return
    if is_execute(activity):
        assert response.status == 200
        answer = await response.json()
        assert answer["statusCode"] == 200
        assert answer["type"] in (
            "application/vnd.microsoft.activity.message",
            "application/vnd.microsoft.card.adaptive",
        )


# --- the fuzzers ---------------------------------------------------------------------------


@FUZZ
@given(body=GARBAGE, content_type=CONTENT_TYPES)
async def test_garbage_bodies_never_get_a_5xx_and_refused_ones_store_nothing(
    local_bot: Bot, body: bytes, content_type: str
) -> None:
    await check(local_bot, body, content_type, None)


@FUZZ
@given(data=st.data())
async def test_mutated_activities_never_get_a_5xx_locally(
    local_bot: Bot, data: st.DataObject
) -> None:
    base = data.draw(st.sampled_from(local_bot.bases))
    activity = data.draw(mutated(base))
    await check(local_bot, json.dumps(activity).encode(), "application/json", None)


@settings(parent=FUZZ, max_examples=120)
@given(data=st.data())
async def test_mutated_activities_never_get_a_5xx_with_a_valid_token(
    signed_in_bot: Bot, data: st.DataObject
) -> None:
    bot = signed_in_bot
    assert bot.authorization is not None
    base = data.draw(st.sampled_from(bot.bases))
    activity = data.draw(mutated(base))
    authorization = data.draw(
        st.one_of(
            st.just(bot.authorization(bot.service_url)),
            st.just(None),
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
            st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60).map(
                lambda token: f"Bearer {token}"
            ),
        )
    )
    await check(bot, json.dumps(activity).encode(), "application/json", authorization)


@settings(parent=FUZZ, max_examples=80)
@given(body=GARBAGE, content_type=CONTENT_TYPES)
async def test_garbage_with_a_valid_token_never_gets_a_5xx_and_stores_nothing(
    signed_in_bot: Bot, body: bytes, content_type: str
) -> None:
    assert signed_in_bot.authorization is not None
    await check(signed_in_bot, body, content_type, signed_in_bot.authorization("https://x/"))
