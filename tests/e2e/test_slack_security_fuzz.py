"""Hypothesis against `POST /slack/events` through the real server and a fake Slack on
127.0.0.1, one fuzzer per surface — events (JSON), slash commands (form), interactivity
(form with a JSON payload) — with unsigned garbage (always 4xx) and *correctly signed*
mutated payloads (2xx or 4xx): never a 5xx, nothing stored from a refused request, the
server healthy and still answering after. And the property the issue asks for: every
correctly signed slash command, whatever its text, channel, user or workspace names say,
gets an answer.

All of them share one server (module scope), so the last test can check that it is still
healthy and answering after everything the fuzzers sent. Example counts are bounded so
each test stays within a few seconds; under `CI` the profile is derandomised
(tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import count
from typing import Any, NamedTuple
from urllib.parse import urlencode

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from pydantic import SecretStr

from adapters.action_binding import ActionKey
from adapters.slack.app import SLASH_COMMANDS
from adapters.slack.ids import ButtonSigner, button_value, conversation_id
from bot.settings import Settings
from storage.sqlite import SqliteStore
from tests.e2e.harness import eventually, serving
from tests.e2e.test_slack import (
    ACTION_SECRET,
    BOSS,
    BOT,
    HANDOFF,
    PROSPECT,
    REP,
    SECRET,
    SHARED,
    TEAM,
    bot_messages,
)
from tests.fakes.slack_api import FakeSlackApi

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Slack:
    """The served bot, its fake Slack and its store (this module posts its own bodies)."""

    api: FakeSlackApi
    client: TestClient[web.Request, web.Application]
    store: SqliteStore


FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=(HealthCheck.function_scoped_fixture, HealthCheck.too_slow),
)
OUTSIDE = "C0OUTSIDE"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
SIGNER = ButtonSigner(ActionKey(ACTION_SECRET.encode()), TEAM)
THREAD = "1700000000.000100"
_serial = count(1)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Slack]:
    """One served bot for the whole module, on a fake Slack, with a store to inspect."""
    async with FakeSlackApi(token="xoxb-test", team_id=TEAM, bot_user_id=BOT) as api:
        api.add_user(REP, name="rae")
        api.add_user(BOSS, name="morgan")
        api.not_a_member(OUTSIDE)
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-test"),
            slack_signing_secret=SecretStr(SECRET),
            slack_api_url=api.base_url,
            slack_handoff_channel=HANDOFF,
            salesbot_approvers=(BOSS,),
            salesbot_action_secret=SecretStr(ACTION_SECRET),
        )
        store = await SqliteStore.open(tmp_path_factory.mktemp("fuzz") / "fuzz.db")
        try:
            async with serving(api, settings, store) as client:
                yield Slack(api=api, client=client, store=store)
        finally:
            await store.close()


def signed(body: bytes) -> dict[str, str]:
    """Signed as Slack signs: an HMAC over the raw bytes, whatever they are."""
    ts = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest.hexdigest()}"}


async def slack_deliveries(slack: Slack) -> set[str]:
    """Deliveries that came in through Slack (the outbox's dead letters and the sweeper's
    timers are the server's own and may be written at any time)."""
    return {d for d in await slack.store.recent(0) if d.startswith("slack:")}


async def post(
    slack: Slack, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """POST and check the invariants: no 5xx; a refusal is a 4xx with a one-line JSON
    reason and stores nothing. Returns the status and the body."""
    before = await slack_deliveries(slack)
    sent = signed(body) if headers is None else headers
    response = await slack.client.post(
        "/slack/events", data=body, headers=sent | {"Content-Type": content_type}
    )
    text = await response.text()
    if currently_in_test_context():  # counted for --hypothesis-show-statistics
        event(f"HTTP {response.status}")
    assert response.status < 500, text
    if response.status >= 400:
        reason = json.loads(text)["error"]
        assert isinstance(reason, str)
        assert "\n" not in reason
        assert await slack_deliveries(slack) == before
    return response.status, text


async def still_healthy(slack: Slack) -> None:
    """`/healthz` answers, and a prospect's ordinary message is still answered."""
    assert (await slack.client.get("/healthz")).status == 200
    api = slack.api
    ts = api.add_message(SHARED, "Hello, we are looking for a CRM", user=PROSPECT["user"])
    body = json.dumps(
        {
            "type": "event_callback",
            "team_id": TEAM,
            "event_id": f"EvHealth{next(_serial)}",
            "event": {
                "type": "message",
                "channel": SHARED,
                "text": "Hello, we are looking for a CRM",
                "ts": ts,
                **PROSPECT,
            },
        }
    ).encode()
    assert (await post(slack, body, JSON))[0] == 200
    await eventually(
        lambda: any(m.get("thread_ts") == ts for m in bot_messages(api, SHARED)), "an answer"
    )


# ---- strategies -----------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
)
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes anything at all."""
    return st.one_of(valid, valid, junk)


words = st.text(alphabet=st.characters(codec="utf-8"), max_size=60) | st.sampled_from(
    ["payload", "payload={}", "a&b=c%20d", "", "quote 10 pro 10%", "ünïcødé ✓"]
)
channels = st.sampled_from([SHARED, HANDOFF, OUTSIDE, "D0DIRECT"])
users = st.sampled_from([REP, BOSS, PROSPECT["user"], BOT])
stamps = st.sampled_from(["1700000000.000100", "1700000001.000200", "1.1"])


@st.composite
def mutated(draw: st.DrawFn, raw: bytes) -> bytes:
    """`raw` with a few bytes inserted, replaced or removed."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data)))
        match draw(st.sampled_from(["insert", "replace", "delete"])):
            case "insert":
                data[where:where] = draw(st.binary(min_size=1, max_size=4))
            case "replace" if where < len(data):
                data[where] = draw(st.integers(0, 255))
            case _:
                del data[where : where + draw(st.integers(1, 8))]
    return bytes(data)


events = st.fixed_dictionaries(
    {
        "type": maybe(st.sampled_from(["message", "app_mention", "reaction_added"])),
        "channel": maybe(channels),
        "user": maybe(users),
        "text": maybe(words),
        "ts": maybe(stamps),
    },
    optional={
        "thread_ts": maybe(stamps),
        "user_team": maybe(st.sampled_from([TEAM, "T0ACME"])),
        "team": maybe(st.sampled_from([TEAM, "T0ACME"])),
        "subtype": maybe(st.sampled_from(["thread_broadcast", "message_changed", "bot_message"])),
        "channel_type": maybe(st.sampled_from(["channel", "im"])),
        "bot_id": junk,
    },
)
event_bodies = st.fixed_dictionaries(
    {
        "type": maybe(st.sampled_from(["event_callback", "url_verification"])),
        "team_id": maybe(st.just(TEAM)),
        "event_id": st.text(max_size=10),
        "event": maybe(events),
    },
    optional={"challenge": junk, "authorizations": junk},
)


@st.composite
def command_forms(draw: st.DrawFn, api_url: str = "") -> dict[str, str]:
    fields = {
        "command": draw(st.sampled_from([*SLASH_COMMANDS, "/salesbot", "/nope"]) | words),
        "text": draw(words),
        "team_id": draw(st.sampled_from([TEAM, "T0ACME"]) | words),
        "team_domain": draw(words),
        "channel_id": draw(channels | words),
        "channel_name": draw(words),
        "user_id": draw(users | words),
        "user_name": draw(words),
        "trigger_id": f"fuzz-{next(_serial)}",
        "response_url": draw(st.sampled_from(["", "https://hooks.slack.com/x", api_url]) | words),
    }
    drop = draw(st.sets(st.sampled_from(sorted(fields))))
    return {k: v for k, v in fields.items() if k not in drop or k == "command"}


def signed_value(action: str, conversation: str, target: str) -> str:
    return button_value(
        conversation, target, f"n{next(_serial)}", action=action, ref=target, signer=SIGNER
    )


clicks = st.fixed_dictionaries(
    {
        "type": maybe(st.sampled_from(["block_actions", "view_submission", "shortcut"])),
        "user": maybe(st.fixed_dictionaries({"id": maybe(users), "team_id": maybe(st.just(TEAM))})),
        "team": maybe(st.fixed_dictionaries({"id": maybe(st.sampled_from([TEAM, "T0OTHER"]))})),
        "trigger_id": maybe(st.just("trig")),
        "container": maybe(
            st.fixed_dictionaries(
                {"channel_id": maybe(channels), "message_ts": maybe(stamps)},
                optional={"thread_ts": maybe(stamps)},
            )
        ),
        "actions": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "action_id": maybe(
                            st.sampled_from(["accept_quote", "claim_ticket", "open_quote_form"])
                        ),
                        "value": maybe(
                            st.builds(
                                signed_value,
                                st.sampled_from(["accept_quote", "claim_ticket"]),
                                st.just(conversation_id(TEAM, SHARED, THREAD)),
                                # Any target we could have signed: ours never hold U+001F.
                                st.text(st.characters(blacklist_characters="\x1f"), max_size=12),
                            )
                            | words
                        ),
                    }
                ),
                max_size=2,
            )
        ),
    },
    optional={
        "view": maybe(
            st.fixed_dictionaries(
                {
                    "callback_id": maybe(st.just("quote_form")),
                    "private_metadata": maybe(st.just(conversation_id(TEAM, SHARED, THREAD))),
                    "id": maybe(st.just("V1")),
                    "hash": maybe(st.text(max_size=5)),
                    "state": junk,
                }
            )
        )
    },
)


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


# ---- unsigned garbage -----------------------------------------------------------------------

header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=80,
)


@FUZZ
@given(
    timestamp=st.none() | header_text | st.integers(0, 10**12).map(str),
    signature=st.none()
    | header_text
    | st.binary(min_size=32, max_size=32).map(lambda b: "v0=" + b.hex()),
    body=st.binary(max_size=2000),
    content_type=st.sampled_from([JSON, FORM, "text/plain", "application/json; charset=utf-16"]),
)
async def test_unsigned_garbage_is_refused_with_a_4xx(
    slack: Slack, timestamp: str | None, signature: str | None, body: bytes, content_type: str
) -> None:
    headers = {}
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
    if signature is not None:
        headers["X-Slack-Signature"] = signature
    status, _ = await post(slack, body, content_type, headers)
    assert 400 <= status < 500


# ---- correctly signed, mutated --------------------------------------------------------------


@FUZZ
@given(body=event_bodies, data=st.data())
async def test_signed_events_however_mutated_get_2xx_or_4xx(
    slack: Slack, body: dict[str, Any], data: st.DataObject
) -> None:
    raw = dumps(body).encode("utf-8", "surrogatepass")
    if data.draw(st.booleans()):
        raw = data.draw(mutated(raw))
    await post(slack, raw, JSON)


@FUZZ
@given(data=st.data())
async def test_signed_slash_commands_however_mutated_get_2xx_or_4xx(
    slack: Slack, data: st.DataObject
) -> None:
    form = data.draw(command_forms(slack.api.response_url(OUTSIDE, REP)))
    raw = urlencode(form).encode()
    if data.draw(st.booleans()):
        raw = data.draw(mutated(raw))
    await post(slack, raw, FORM)


@FUZZ
@given(payload=clicks, data=st.data())
async def test_signed_interactions_however_mutated_get_2xx_or_4xx(
    slack: Slack, payload: dict[str, Any], data: st.DataObject
) -> None:
    raw = urlencode({"payload": dumps(payload)}, encoding="utf-8", errors="surrogatepass").encode()
    if data.draw(st.booleans()):
        raw = data.draw(mutated(raw))
    await post(slack, raw, FORM)


# ---- every signed slash command is answered -------------------------------------------------

names = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["payload", "my-payload-team", "a&b=c", "100%", "ünïcødé", ""]
)


class Invocation(NamedTuple):
    name: str
    text: str
    member: bool
    """Whether the bot is in the channel the command is run in."""
    user: str
    channel_name: str
    user_name: str
    team_domain: str


invocations = st.builds(
    Invocation,
    name=st.sampled_from([*SLASH_COMMANDS, "/salesbot", "/nope"]),
    text=names | st.sampled_from(["10 pro 10%", "help", "quote 10 pro", "payload=%7B%7D"]),
    member=st.booleans(),
    user=st.sampled_from([REP, BOSS, PROSPECT["user"]]),
    channel_name=names,
    user_name=names,
    team_domain=names,
)


@settings(FUZZ, max_examples=12)
@given(batch=st.lists(invocations, min_size=1, max_size=6))
async def test_every_correctly_signed_slash_command_gets_an_answer(
    slack: Slack, batch: list[Invocation]
) -> None:
    """Each example sends a few commands at once (as several people would) and waits for
    all their answers: an answer on the spot (the usage line), through the command's
    response_url, or a message where it was run."""
    api = slack.api
    waiting: list[tuple[Invocation, str, str]] = []
    for command in batch:
        # A channel of its own, so each answer is told apart from the others'.
        channel = f"C0{'IN' if command.member else 'OUT'}{next(_serial)}"
        if not command.member:
            api.not_a_member(channel)
        url = api.response_url(channel, command.user)
        form = {
            "token": "x",
            "team_id": PROSPECT["user_team"] if command.user == PROSPECT["user"] else TEAM,
            "team_domain": command.team_domain,
            "channel_id": channel,
            "channel_name": command.channel_name,
            "user_id": command.user,
            "user_name": command.user_name,
            "command": command.name,
            "text": command.text,
            "response_url": url,
            "trigger_id": f"prop-{next(_serial)}",
        }

        status, ack = await post(slack, urlencode(form).encode(), FORM)

        assert status == 200
        if ack:  # answered on the spot: the usage line
            assert json.loads(ack)["text"]
            event("answered in the ack")
        else:
            waiting.append((command, url, channel))

    def unanswered() -> list[Invocation]:
        return [
            command
            for command, url, channel in waiting
            if not (api.response_posts(url) or api.messages(channel) or api.ephemerals(channel))
        ]

    deadline = time.monotonic() + 5  # the outbox polls every 0.25 s; a miss shrinks faster
    while unanswered():
        assert time.monotonic() < deadline, f"no answer to {unanswered()}"
        await asyncio.sleep(0.01)
    for _, url, _ in waiting:
        event("answered through the response_url" if api.response_posts(url) else "by chat.*")


async def test_after_all_of_it_the_server_is_healthy_and_answers(slack: Slack) -> None:
    await still_healthy(slack)
