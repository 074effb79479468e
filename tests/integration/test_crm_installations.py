"""Each installation's own CRM (issue 17, item 7), through the running service and two fake
HubSpot accounts on 127.0.0.1: the first installation's writes go to the configured CRM
(`SALESBOT_CRM`), another installation's to the CRM its table in
`SALESBOT_CRM_INSTALLATIONS_FILE` names — never the other way round — and an installation
without one keeps its writes parked, not dead-lettered. A file the service cannot use
refuses the start in one line that names the installation and the setting, never a value."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from adapters.crm.ids import outbox_key
from bot.service import build_service
from bot.settings import Settings, SettingsError
from domain.events import ConversationStarted, CrmSyncRequested, CrmSyncSettled
from domain.inbound import Actor, CommandInvoked, LeadArrived, LeadDetails
from domain.policy import Policy
from storage.memory import MemoryStore
from tests.integration.test_crm_hubspot_contract import TOKEN, FakeHubSpot
from tests.integration.test_crm_webhooks_hubspot import PUBLIC_URL, signed
from tests.support.cli import run
from tests.unit.test_crm import CRM, crm_policy

GLOBEX, INITECH = "slack:T0002", "teams:7f3c0000-0000-0000-0000-000000000001"


def lead(name: str, email: str) -> LeadDetails:
    return LeadDetails(
        name=name,
        email=email,
        company=f"{name.split()[-1]}co",
        message="I'm the CTO, $40k budget approved, we want to start next month",
    )


@pytest.fixture
async def accounts() -> AsyncIterator[tuple[FakeHubSpot, FakeHubSpot]]:
    async with FakeHubSpot() as first, FakeHubSpot() as globex:
        for account in (first, globex):
            account.set_up_salesbot_properties()
        yield first, globex
    assert first.spec_errors == []
    assert globex.spec_errors == []


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return crm_policy(tmp_path)


async def test_each_installation_s_writes_go_to_its_own_crm_and_no_other(
    accounts: tuple[FakeHubSpot, FakeHubSpot], policy: Policy, tmp_path: Path
) -> None:
    first, globex = accounts
    file = tmp_path / "crms.toml"
    file.write_text(
        f'["{GLOBEX}"]\ncrm = "hubspot"\nhubspot_access_token = "{TOKEN}"\n'
        f'hubspot_api_url = "{globex.base_url}"\n',
        encoding="utf-8",
    )
    settings = Settings(
        salesbot_crm="hubspot",
        hubspot_access_token=SecretStr(TOKEN),
        hubspot_api_url=first.base_url,
        salesbot_crm_installations_file=str(file),
    )
    ticks = itertools.count()
    store = MemoryStore()
    service = build_service(
        settings, policy, store, clock=lambda: 1_790_000_000_000 + 1000 * next(ticks)
    )
    leads = {
        "": ("lead-first", lead("Dana Fox", "dana@fox.example")),
        GLOBEX: ("lead-globex", lead("Gil Globex", "gil@globex.example")),
        INITECH: ("lead-initech", lead("Ina Tech", "ina@initech.example")),
    }
    for installation, (lead_id, details) in leads.items():
        feed = Actor(id="feed", role="prospect", installation=installation)
        rep = Actor(id="R", name="Rae", role="rep", installation=installation)
        await service.handle(
            LeadArrived(
                delivery_id=f"{lead_id}-1", conversation_id=lead_id, actor=feed, lead=details
            )
        )
        await service.handle(
            CommandInvoked(
                delivery_id=f"{lead_id}-2",
                conversation_id=lead_id,
                actor=rep,
                command="won",
                args="",
            )
        )
    for _ in range(20):
        if not await service.worker.drain_once():
            break

    assert [c["email"] for c in first.records("contacts")] == ["dana@fox.example"]
    assert [c["email"] for c in globex.records("contacts")] == ["gil@globex.example"]
    assert [d["dealstage"] for d in globex.records("deals")] == ["closedwon"]
    assert [d for d in await store.dead_letters() if d.channel.startswith("crm")] == []
    # The installation without a CRM: every write still waits, none was attempted.
    initech = [
        env for env in await store.load("lead-initech") if isinstance(env.event, CrmSyncRequested)
    ]
    assert initech
    for env in initech:
        item = await store.outbox_item(outbox_key("lead-initech", env.seq))
        assert item is not None
        assert (item.status, item.attempts) == ("pending", 0)
    # The second installation's writes are recorded as written, by HubSpot.
    settled = [
        env.event
        for env in await store.load("lead-globex")
        if isinstance(env.event, CrmSyncSettled)
    ]
    assert settled
    assert {event.outcome for event in settled} == {"sent"}
    assert service.platform_status()["crm-installations"] == f"{GLOBEX} hubspot"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('["slack:T0002"]\ncrm = "hubspot"\n', 'crm = "hubspot" needs hubspot_access_token'),
        ('["slack:T0002"]\ncrm = "pipedrive"\n', "['slack:T0002']: invalid crm"),
        ('["slack:T0002"]\ncrm = "hubspot"\nhubspot_token = "s3cret-value"\n', "invalid"),
        ('[T0002]\ncrm = "hubspot"\n', "is not a table named by an installation id"),
        ('["slack:T0002"\ncrm = "hubspot"\n', "is not TOML"),
        (
            '["teams:x"]\ncrm = "salesforce"\nsalesforce_client_secret = "s3cret-value"\n',
            "['teams:x']",
        ),
    ],
)
def test_a_file_the_service_cannot_use_refuses_the_start_in_one_line(
    policy: Policy, tmp_path: Path, text: str, says: str
) -> None:
    file = tmp_path / "crms.toml"
    file.write_text(text, encoding="utf-8")
    settings = Settings(salesbot_crm_installations_file=str(file))
    with pytest.raises(SettingsError) as refused:
        build_service(settings, policy, MemoryStore(), clock=lambda: 0)
    message = str(refused.value)
    assert says in message
    assert "SALESBOT_CRM_INSTALLATIONS_FILE" in message
    assert "s3cret-value" not in message
    assert "\n" not in message


def test_a_missing_file_refuses_the_start(policy: Policy, tmp_path: Path) -> None:
    settings = Settings(salesbot_crm_installations_file=str(tmp_path / "nowhere.toml"))
    with pytest.raises(SettingsError, match="SALESBOT_CRM_INSTALLATIONS_FILE: no file at"):
        build_service(settings, policy, MemoryStore(), clock=lambda: 0)


async def test_crm_check_and_setup_answer_for_the_installation_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`salesbot crm check|setup --installation slack:T0002` work on that installation's
    CRM, never the first installation's; an installation without a CRM is one line."""
    policy_file = tmp_path / "crm.toml"
    policy_file.write_text(f'extends = "default"\n{CRM}', encoding="utf-8")
    monkeypatch.setenv("SALESBOT_POLICY", str(policy_file))
    async with FakeHubSpot() as first, FakeHubSpot() as globex:
        first.set_up_salesbot_properties()
        file = tmp_path / "crms.toml"
        file.write_text(
            f'["{GLOBEX}"]\ncrm = "hubspot"\nhubspot_access_token = "{TOKEN}"\n'
            f'hubspot_api_url = "{globex.base_url}"\n',
            encoding="utf-8",
        )
        monkeypatch.setenv("SALESBOT_CRM", "hubspot")
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
        monkeypatch.setenv("HUBSPOT_API_URL", first.base_url)
        monkeypatch.setenv("SALESBOT_CRM_INSTALLATIONS_FILE", str(file))
        code, out, _ = await asyncio.to_thread(run, "crm", "check")
        assert (code, out) == (0, "hubspot: ready for salesbot's writes\n")
        code, out, _ = await asyncio.to_thread(run, "crm", "check", "--installation", GLOBEX)
        assert code == 1
        assert "salesbot_id" in out
        code, out, _ = await asyncio.to_thread(run, "crm", "setup", "--installation", GLOBEX)
        assert code == 0
        assert "created deals.salesbot_id" in out
        code, out, _ = await asyncio.to_thread(run, "crm", "check", "--installation", GLOBEX)
        assert (code, out) == (0, "hubspot: ready for salesbot's writes\n")
        code, out, err = await asyncio.to_thread(
            run, "crm", "check", "--installation", "slack:T0404"
        )
    assert (code, out) == (2, "")
    assert err == (
        "salesbot: error: installation slack:T0404 has no CRM: give it a table in "
        "SALESBOT_CRM_INSTALLATIONS_FILE (docs/crm.md)\n"
    )


GLOBEX_SECRET = "globex-hubspot-client-secret-7a1c"


def hubspot_signed(path: str, body: bytes, secret: str, at_ms: int) -> dict[str, str]:
    """HubSpot's signature v3 headers for `body` sent to `path`."""
    return signed(body, at_ms=at_ms, secret=secret, path=path)


async def test_a_contact_created_in_an_installation_s_own_hubspot_is_that_installation_s_lead(
    accounts: tuple[FakeHubSpot, FakeHubSpot], policy: Policy, tmp_path: Path
) -> None:
    """The second installation's HubSpot calls its own route, signed with its own app's
    secret: the contact becomes that installation's lead. The same request on the first
    installation's route, or signed with another secret, is refused and stores nothing."""
    first, globex = accounts
    globex.objects["contacts"]["901"] = {
        "id": "901",
        "properties": {
            "hs_object_id": "901",
            "email": "gil@globex.example",
            "firstname": "Gil",
            "lastname": "Globex",
        },
        "createdAt": "2026-12-06T00:00:00Z",
        "updatedAt": "2026-12-06T00:00:00Z",
    }
    file = tmp_path / "crms.toml"
    file.write_text(
        f'["{GLOBEX}"]\ncrm = "hubspot"\nhubspot_access_token = "{TOKEN}"\n'
        f'hubspot_api_url = "{globex.base_url}"\nhubspot_client_secret = "{GLOBEX_SECRET}"\n',
        encoding="utf-8",
    )
    now = 1_790_000_000_000
    settings = Settings(
        salesbot_crm="hubspot",
        hubspot_access_token=SecretStr(TOKEN),
        hubspot_api_url=first.base_url,
        hubspot_client_secret=SecretStr("first-hubspot-client-secret-0001"),
        salesbot_public_url=PUBLIC_URL,
        salesbot_crm_installations_file=str(file),
    )
    store = MemoryStore()
    service = build_service(settings, policy, store, clock=lambda: now)
    app = web.Application()
    for surface in service.surfaces:
        if surface.mount is not None:
            surface.mount(app)
    events = [
        {
            "eventId": 1001,
            "subscriptionId": 7,
            "portalId": 99887766,
            "appId": 4242,
            "occurredAt": now,
            "subscriptionType": "contact.creation",
            "attemptNumber": 0,
            "objectId": 901,
            "changeFlag": "CREATED",
            "changeSource": "CRM_UI",
        }
    ]
    body = json.dumps(events).encode()
    own = f"/crm/installations/{GLOBEX}/hubspot"
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        wrong_route = await client.post(
            "/crm/hubspot",
            data=body,
            headers=hubspot_signed("/crm/hubspot", body, GLOBEX_SECRET, now),
        )
        wrong_secret = await client.post(
            own, data=body, headers=hubspot_signed(own, body, "another-secret-entirely", now)
        )
        assert await store.conversation_ids() == []
        answer = await client.post(
            own, data=body, headers=hubspot_signed(own, body, GLOBEX_SECRET, now)
        )
        assert answer.status == 200, await answer.text()
        (lead,) = (await answer.json())["leads"]
    assert (wrong_route.status, wrong_secret.status) == (401, 401)
    started = [
        env.event
        for env in await store.load(lead["lead_id"])
        if isinstance(env.event, ConversationStarted)
    ]
    assert [event.installation for event in started] == [GLOBEX]
    assert started[0].lead is not None
    assert started[0].lead.email == "gil@globex.example"
