"""The lead feed's reply URLs through the real server (issue 10, item 9): a URL that points
at this machine, a private network or a metadata service is refused at intake with a 422
naming `reply_url`, and nothing is stored; a name that resolves to such an address only
later is refused at send time, dead-lettered with the reason, never retried; the operator's
SALESBOT_OUTBOUND_ALLOW is the way in; a default reply URL that can never be allowed stops
the start. DNS is faked (`build_service(outbound_lookup=...)`): no network."""

from __future__ import annotations

import asyncio
import io
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from bot.cli import main
from bot.policy_loader import load_policy
from bot.service import build_service
from bot.settings import Settings, SettingsError
from domain.events import DeliveryDeadLettered
from storage.memory import MemoryStore
from tests.e2e.harness import serving

TOKEN, SECRET = "leads-token", "reply-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Client = TestClient[web.Request, web.Application]


class Dns:
    """A DNS table the test edits as it goes; an unknown name does not resolve."""

    def __init__(self) -> None:
        self.table: dict[str, Sequence[str]] = {}

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


def settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "salesbot_leads_token": SecretStr(TOKEN),
        "salesbot_lead_reply_secret": SecretStr(SECRET),
    }
    return Settings(**(values | changes))


def lead(reply_url: str) -> dict[str, str]:
    return {
        "name": "Dana Reyes",
        "email": "dana@acme.example",
        "message": "Pricing for 40 seats?",
        "reply_url": reply_url,
    }


async def stored(store: MemoryStore) -> tuple[int, int]:
    inbounds = [item async for item in store.all_inbounds()]
    return len(await store.conversation_ids()), len(inbounds)


@pytest.mark.parametrize(
    ("reply_url", "reason"),
    [
        ("https://127.0.0.1/replies", "loopback address"),
        ("https://localhost/replies", "loopback host"),
        ("https://10.0.0.7/replies", "private address"),
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("https://metadata.google.internal/computeMetadata/v1/", "cloud metadata host"),
        ("https://[::ffff:169.254.169.254]/", "cloud metadata address"),
        ("https://[fe80::1]/", "link-local address"),
        ("https://100.64.0.1/", "shared address"),
        ("http://2130706433/", "four decimal numbers"),
        ("https://0x7f.1/", "four decimal numbers"),
        ("https://crm.example.com@127.0.0.1/", "user name or password"),
        ("http://crm.example.com/replies", "must use https"),
        ("https://private.example.com/replies", "must not resolve to a private address"),
    ],
)
async def test_a_reply_url_to_a_forbidden_destination_is_refused_at_intake_and_nothing_stored(
    reply_url: str, reason: str
) -> None:
    dns = Dns()
    dns.table["private.example.com"] = ["10.0.0.7", "fd00::7"]
    store = MemoryStore()
    async with serving(None, settings(), store, outbound_lookup=dns) as client:
        response = await client.post("/leads", json=lead(reply_url), headers=AUTH)
        answer = await response.json()

    assert response.status == 422
    [error] = answer["errors"]
    assert error["field"] == "reply_url"
    assert reason in error["message"]
    assert reply_url not in str(answer)
    assert await stored(store) == (0, 0)


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """`eventually` for a check that has to ask the store."""
    deadline = time.monotonic() + 10
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_a_name_that_resolves_to_a_private_address_only_later_is_dead_lettered_unsent() -> (
    None
):
    dns = Dns()  # widget.example.com does not resolve yet: accepted at intake
    store = MemoryStore()
    async with serving(None, settings(), store, outbound_lookup=dns) as client:
        created = await client.post(
            "/leads", json=lead("https://widget.example.com/replies"), headers=AUTH
        )
        assert created.status == 201
        lead_id = (await created.json())["lead_id"]
        dns.table["widget.example.com"] = ["10.0.0.7"]  # ...and now it does, privately

        async def dead_lettered() -> list[DeliveryDeadLettered]:
            return [
                envelope.event
                for envelope in await store.load(lead_id)
                if isinstance(envelope.event, DeliveryDeadLettered)
            ]

        async def any_dead_lettered() -> bool:
            return bool(await dead_lettered())

        await until(any_dead_lettered, "the greeting dead-lettered")
        [event] = await dead_lettered()

    assert event.reason == (
        "the reply URL resolves to a private address (10.0.0.7), which "
        "SALESBOT_OUTBOUND_ALLOW does not list"
    )
    [item] = await store.dead_letters()
    assert item.attempts <= 1  # refused at once, not retried


async def test_the_allow_list_admits_a_private_receiver_the_operator_named() -> None:
    dns = Dns()
    dns.table["crm.corp.example.com"] = ["10.1.2.3"]
    allow = ("10.0.0.0/8", "crm.internal")
    async with serving(
        None, settings(salesbot_outbound_allow=allow), MemoryStore(), outbound_lookup=dns
    ) as client:
        statuses = [
            (await client.post("/leads", json=lead(url), headers=AUTH)).status
            for url in [
                "https://10.1.2.3/replies",
                "https://crm.corp.example.com/replies",
                "https://crm.internal/replies",
                "https://192.168.1.1/replies",
                "http://10.1.2.3/replies",  # plain http only to loopback
            ]
        ]

    assert statuses == [201, 201, 201, 422, 422]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"salesbot_lead_reply_url": "https://169.254.169.254/latest/"},
            "SALESBOT_LEAD_REPLY_URL must not point at a cloud metadata address unless "
            "SALESBOT_OUTBOUND_ALLOW lists it",
        ),
        (
            {"salesbot_lead_reply_url": "http://crm.example.com/replies"},
            "SALESBOT_LEAD_REPLY_URL must use https",
        ),
        (
            {"salesbot_lead_reply_url": "http://127.0.0.1:8080/replies"},
            "SALESBOT_LEAD_REPLY_URL must use https",
        ),
        (
            {"salesbot_outbound_allow": ("127.0.0.1", "not a host")},
            "SALESBOT_OUTBOUND_ALLOW: 'not a host' is not a host name, an IP address or a "
            "CIDR range",
        ),
    ],
    ids=["metadata-default", "plain-http-default", "loopback-not-allowed", "bad-allow-entry"],
)
def test_a_configuration_that_can_never_be_allowed_stops_the_start(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError) as error:
        build_service(settings(**changes), load_policy("default"), MemoryStore(), clock=lambda: 0)

    assert message in str(error.value)


def test_the_default_reply_url_allowed_by_the_operator_starts() -> None:
    build_service(
        settings(
            salesbot_lead_reply_url="http://127.0.0.1:8080/replies",
            salesbot_outbound_allow=("127.0.0.1",),
        ),
        load_policy("default"),
        MemoryStore(),
        clock=lambda: 0,
    )


def test_serve_refuses_a_forbidden_default_reply_url_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESBOT_DB", str(tmp_path / "s.db"))
    monkeypatch.setenv("SALESBOT_LEADS_TOKEN", TOKEN)
    monkeypatch.setenv("SALESBOT_LEAD_REPLY_SECRET", SECRET)
    monkeypatch.setenv("SALESBOT_LEAD_REPLY_URL", "https://10.0.0.7/replies")
    out, err = io.StringIO(), io.StringIO()

    code = main(["serve", "--port", "0"], out, err)

    assert code == 2
    assert err.getvalue() == (
        "salesbot: error: invalid configuration: SALESBOT_LEAD_REPLY_URL must not point at a "
        "private address unless SALESBOT_OUTBOUND_ALLOW lists it.\n"
    )
