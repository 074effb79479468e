"""Salesforce Leads become leads (issue 16 items 3 and 6): an outbound message (SOAP, the
shape of tests/fixtures/crm/webhooks/salesforce_outbound_message.xml) posted to
`/crm/salesforce/<secret>` on the running service.

What an operator and a sales team would notice: Salesforce gets its `Ack` (so it stops
resending); the Lead is a scored lead posted for a rep that says there is no chat with the
prospect, and nothing goes to the prospect; the same message again makes no second lead;
Leads salesbot itself wrote do not come back; a message to the wrong URL or from another
org is refused and leaves nothing behind."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.service import build_service
from bot.settings import Settings, SettingsError
from domain.events import BotReplied, ConversationStarted, LeadLeftForRep
from storage.memory import MemoryStore
from tests.unit.test_crm import crm_policy

FIXTURES = Path(__file__).parents[1] / "fixtures" / "crm" / "webhooks"
MESSAGE = (FIXTURES / "salesforce_outbound_message.xml").read_bytes()
ORG_ID = "00D5e000000KQ2eEAG"
URL_SECRET = "sf-outbound-9c1d7e2a4b"
NOW = 1_790_000_000_000
XML = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
NO_CHAT = "Came from Salesforce — no chat with this prospect; reply in Salesforce"

Client = TestClient[web.Request, web.Application]


def settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "salesbot_crm": "salesforce",
        "salesforce_login_url": "https://127.0.0.1:9",  # never reached: nothing is drained
        "salesforce_client_id": "connected-app",
        "salesforce_client_secret": SecretStr("connected-app-secret"),
        "salesforce_org_id": ORG_ID,
        "salesforce_webhook_secret": SecretStr(URL_SECRET),
        "salesbot_lead_reply_secret": SecretStr("lead-reply-secret"),
        "salesbot_lead_reply_url": "https://replies.example.org/in",
    }
    values.update(changes)
    return Settings(**values)


class Running:
    def __init__(self, store: MemoryStore, client: Client) -> None:
        self.store, self.client = store, client

    async def post(
        self, body: bytes = MESSAGE, path: str = f"/crm/salesforce/{URL_SECRET}"
    ) -> tuple[int, str, str]:
        response = await self.client.post(path, data=body, headers=XML)
        return response.status, response.content_type, await response.text()

    async def events(self) -> list[Any]:
        found = []
        for conversation_id in await self.store.conversation_ids():
            found += [env.event for env in await self.store.load(conversation_id)]
        return found


async def serve(tmp_path: Path, config: Settings) -> tuple[MemoryStore, Client]:
    ticks = itertools.count()
    store = MemoryStore()
    service = build_service(
        config, crm_policy(tmp_path), store, clock=lambda: NOW + 1000 * next(ticks)
    )
    app = web.Application()
    for surface in service.surfaces:
        if surface.mount is not None:
            surface.mount(app)
    return store, TestClient(TestServer(app, host="127.0.0.1"))


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    store, client = await serve(tmp_path, settings())
    async with client:
        yield Running(store, client)


def acknowledged(status: int, content_type: str, text: str) -> bool:
    return (
        status == 200
        and content_type == "text/xml"
        and '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
        "<Ack>true</Ack></notificationsResponse>"
        in text
    )


async def test_a_lead_created_in_salesforce_is_acknowledged_and_left_for_a_rep(
    running: Running,
) -> None:
    assert acknowledged(*await running.post())
    events = await running.events()
    (started,) = [e for e in events if isinstance(e, ConversationStarted)]
    lead = started.lead
    assert lead is not None
    assert (lead.name, lead.email, lead.company, lead.source, lead.company_size) == (
        "Dana Fox",
        "dana@example.com",
        "Foxco",
        "Web",
        120,
    )
    assert lead.reply_in == "Salesforce"
    assert lead.external_id == "salesforce:00D5e000000KQ2e:Lead:00Q5e00000AbCdEEAV"
    assert LeadLeftForRep(reply_in="Salesforce") in events
    assert not [e for e in events if isinstance(e, BotReplied)]
    assert await running.store.claim_due(10**15, 100, 1, prefixes=("lead-reply:",)) == []
    team = await running.store.claim_due(10**15, 100, 1, prefixes=("playground:",))
    assert NO_CHAT in json.dumps([i.payload for i in team], ensure_ascii=False)


async def test_the_same_message_again_is_acknowledged_and_makes_no_second_lead(
    running: Running,
) -> None:
    for _ in range(3):  # Salesforce resends until acknowledged
        assert acknowledged(*await running.post())
    assert len(await running.store.conversation_ids()) == 1
    assert len([e for e in await running.events() if isinstance(e, ConversationStarted)]) == 1


@pytest.mark.parametrize("field", ["Salesbot_Id__c", "Salesbot_Adapter__c"])
async def test_leads_salesbot_wrote_to_salesforce_are_acknowledged_and_ignored(
    running: Running, field: str
) -> None:
    value = (
        "salesbot:deal:lead-0123456789abcdef"
        if field == "Salesbot_Id__c"
        else "salesbot salesforce/1"
    )
    ours = MESSAGE.replace(
        b"<sf:LastName>Fox</sf:LastName>",
        f"<sf:LastName>Fox</sf:LastName><sf:{field}>{value}</sf:{field}>".encode(),
    )
    assert acknowledged(*await running.post(ours))
    assert await running.store.conversation_ids() == []


async def test_other_objects_are_acknowledged_and_make_no_lead(running: Running) -> None:
    contact = MESSAGE.replace(b'xsi:type="sf:Lead"', b'xsi:type="sf:Contact"')
    assert acknowledged(*await running.post(contact))
    assert await running.store.conversation_ids() == []


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        pytest.param("/crm/salesforce/not-the-secret-at-all", MESSAGE, 401, id="wrong secret"),
        pytest.param("/crm/salesforce", MESSAGE, 401, id="no secret"),
        pytest.param(
            f"/crm/salesforce/{URL_SECRET}",
            MESSAGE.replace(ORG_ID.encode(), b"00D000000000001AAA"),
            403,
            id="another org",
        ),
        pytest.param(
            f"/crm/salesforce/{URL_SECRET}",
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
            400,
            id="a DTD",
        ),
        pytest.param(f"/crm/salesforce/{URL_SECRET}", b"<not-soap/>", 400, id="not SOAP"),
    ],
)
async def test_a_message_that_is_not_our_orgs_is_refused_and_nothing_is_stored(
    running: Running, path: str, body: bytes, status: int
) -> None:
    answered, _, text = await running.post(body, path)
    assert answered == status
    assert "Ack" not in text
    assert await running.store.conversation_ids() == []


async def test_a_15_character_org_id_accepts_its_18_character_form(tmp_path: Path) -> None:
    store, client = await serve(tmp_path, settings(salesforce_org_id=ORG_ID[:15]))
    async with client:
        response = await client.post(f"/crm/salesforce/{URL_SECRET}", data=MESSAGE, headers=XML)
        assert response.status == 200
    assert len(await store.conversation_ids()) == 1


async def test_without_the_org_id_and_secret_every_message_is_refused(tmp_path: Path) -> None:
    store, client = await serve(
        tmp_path, settings(salesforce_org_id=None, salesforce_webhook_secret=None)
    )
    async with client:
        response = await client.post(f"/crm/salesforce/{URL_SECRET}", data=MESSAGE, headers=XML)
        assert response.status == 401
        assert "SALESFORCE_WEBHOOK_SECRET and SALESFORCE_ORG_ID" in await response.text()
    assert await store.conversation_ids() == []


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"salesforce_org_id": "not-an-org"}, "SALESFORCE_ORG_ID"),
        ({"salesforce_webhook_secret": SecretStr("short")}, "SALESFORCE_WEBHOOK_SECRET"),
        (
            {"salesforce_webhook_secret": SecretStr("has/a/slash/in/it/x")},
            "SALESFORCE_WEBHOOK_SECRET",
        ),
    ],
)
def test_a_malformed_org_id_or_url_secret_refuses_the_start(
    tmp_path: Path, changes: dict[str, Any], names: str
) -> None:
    with pytest.raises(SettingsError, match=names):
        build_service(settings(**changes), crm_policy(tmp_path), MemoryStore(), clock=lambda: NOW)
