"""HubSpot contacts become leads (issue 16 items 3 and 6): `POST /crm/hubspot` on the running
service, signed as HubSpot signs (signature v3, tests/fixtures/crm/webhooks/), its contacts
read back from a fake HubSpot on 127.0.0.1 that checks each request against HubSpot's
published OpenAPI excerpt.

What a sales team would notice: a contact created in HubSpot is a scored lead posted for a
rep whose card says there is no chat with the prospect, and nothing is ever sent to the
prospect; HubSpot delivering the event again makes no second lead; contacts salesbot itself
wrote to HubSpot do not come back as leads; a request HubSpot did not sign is refused and
leaves nothing behind."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from adapters.crm.hubspot_webhook import signature_v3, signed_uri
from bot.service import Service, build_service
from bot.settings import Settings
from domain.events import BotReplied, ConversationStarted, LeadLeftForRep
from domain.inbound import LeadArrived, LeadDetails
from storage.memory import MemoryStore
from storage.ports import OutboxItem
from tests.integration.test_crm_hubspot_contract import TOKEN, FakeHubSpot
from tests.unit.test_crm import FEED, HOT, crm_policy

FIXTURES = Path(__file__).parents[1] / "fixtures" / "crm" / "webhooks"
SECRET = "hubspot-app-client-secret-0f9e"
PUBLIC_URL = "https://bot.example.org"
NOW = 1_790_000_000_000
PORTAL = 12345678
NO_CHAT = "Came from HubSpot — no chat with this prospect; reply in HubSpot"

Client = TestClient[web.Request, web.Application]


def delivery(*object_ids: int, subscription: str = "contact.creation") -> list[dict[str, Any]]:
    """HubSpot's body (the fixture's event), one event per contact id."""
    (template,) = json.loads((FIXTURES / "hubspot_contact_creation.json").read_text())["body"]
    return [
        {**template, "objectId": object_id, "eventId": 1000 + n, "subscriptionType": subscription}
        for n, object_id in enumerate(object_ids)
    ]


def signed(
    body: bytes, *, at_ms: int = NOW, secret: str = SECRET, path: str = "/crm/hubspot"
) -> dict[str, str]:
    """The headers HubSpot sends to `path`: the documented steps, computed here
    independently of the adapter (HMAC-SHA256 over method + URI + body + timestamp, base64)."""
    timestamp = str(at_ms)
    text = "POST" + PUBLIC_URL + path + body.decode() + timestamp
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
        "X-HubSpot-Request-Timestamp": timestamp,
        "X-HubSpot-Signature-Version": "v3",
    }


class Running:
    def __init__(self, service: Service, store: MemoryStore, client: Client) -> None:
        self.service, self.store, self.client = service, store, client

    async def post(self, events: Any, **options: Any) -> tuple[int, Any]:
        body = json.dumps(events).encode()
        headers = options.pop("headers", None) or signed(body, **options)
        response = await self.client.post("/crm/hubspot", data=body, headers=headers)
        text = await response.text()
        return response.status, json.loads(text) if text else None

    async def events(self) -> list[Any]:
        found = []
        for conversation_id in await self.store.conversation_ids():
            found += [env.event for env in await self.store.load(conversation_id)]
        return found

    async def pending(self, prefix: str) -> list[OutboxItem]:
        return await self.store.claim_due(10**15, 1000, 1, prefixes=(prefix,))


@pytest.fixture
async def hubspot() -> AsyncIterator[FakeHubSpot]:
    async with FakeHubSpot() as fake:
        fake.set_up_salesbot_properties()
        yield fake
    assert fake.spec_errors == [], "requests or answers outside HubSpot's published spec"


@pytest.fixture
async def running(hubspot: FakeHubSpot, tmp_path: Path) -> AsyncIterator[Running]:
    settings = Settings(
        salesbot_crm="hubspot",
        hubspot_access_token=SecretStr(TOKEN),
        hubspot_api_url=hubspot.base_url,
        hubspot_client_secret=SecretStr(SECRET),
        salesbot_public_url=PUBLIC_URL,
        # The lead feed could reply to any lead: a CRM's lead must still get nothing.
        salesbot_lead_reply_secret=SecretStr("lead-reply-secret"),
        salesbot_lead_reply_url="https://replies.example.org/in",
    )
    ticks = itertools.count()
    store = MemoryStore()
    service = build_service(
        settings, crm_policy(tmp_path), store, clock=lambda: NOW + 1000 * next(ticks)
    )
    app = web.Application()
    for surface in service.surfaces:
        if surface.mount is not None:
            surface.mount(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Running(service, store, client)


def add_contact(hubspot: FakeHubSpot, contact_id: int, **properties: str) -> None:
    now = "2026-12-06T00:00:00Z"
    hubspot.objects["contacts"][str(contact_id)] = {
        "id": str(contact_id),
        "properties": {"hs_object_id": str(contact_id), **properties},
        "createdAt": now,
        "updatedAt": now,
    }


def dana(hubspot: FakeHubSpot, contact_id: int = 901) -> None:
    add_contact(
        hubspot,
        contact_id,
        email="dana@example.com",
        firstname="Dana",
        lastname="Fox",
        company="Foxco",
        message=HOT,
        hs_analytics_source="OFFLINE",
    )


async def test_a_contact_created_in_hubspot_is_a_lead_for_a_rep_and_the_prospect_hears_nothing(
    running: Running, hubspot: FakeHubSpot
) -> None:
    dana(hubspot)
    status, answer = await running.post(delivery(901))
    assert status == 200
    (lead,) = answer["leads"]
    assert lead["status"] == "created"
    events = await running.events()
    (started,) = [e for e in events if isinstance(e, ConversationStarted)]
    assert started.lead is not None
    assert (started.lead.name, started.lead.email, started.lead.company) == (
        "Dana Fox",
        "dana@example.com",
        "Foxco",
    )
    assert started.lead.message == HOT
    assert started.lead.reply_in == "HubSpot"
    assert started.lead.external_id == f"hubspot:{PORTAL}:contact:901"
    assert [e for e in events if isinstance(e, LeadLeftForRep)] == [
        LeadLeftForRep(reply_in="HubSpot")
    ]
    assert not [e for e in events if isinstance(e, BotReplied)]
    # Nothing waits for the prospect, though a default reply URL is configured …
    assert await running.pending("lead-reply:") == []
    # … and the team's lead card says why, in plain words.
    team = json.dumps(
        [item.payload for item in await running.pending("playground:")], ensure_ascii=False
    )
    assert NO_CHAT in team


async def test_the_crm_lead_goes_back_to_hubspot_as_a_deal_on_the_same_contact(
    running: Running, hubspot: FakeHubSpot
) -> None:
    dana(hubspot)
    await running.post(delivery(901))
    for _ in range(10):
        if not await running.service.worker.drain_once():
            break
    assert await running.store.dead_letters() == []
    (deal,) = hubspot.records("deals")
    assert deal["dealname"] == "Foxco"
    # The contact was HubSpot's already: updated by e-mail, not duplicated.
    (contact,) = hubspot.records("contacts")
    assert contact["email"] == "dana@example.com"
    # Its creation delivered again now carries salesbot's stamp: still one lead.
    status, answer = await running.post(delivery(901), at_ms=NOW + 60_000)
    assert (status, answer["leads"]) == (200, [])
    assert len(await running.store.conversation_ids()) == 1


async def test_hubspot_delivering_the_event_again_makes_no_second_lead(
    running: Running, hubspot: FakeHubSpot
) -> None:
    dana(hubspot)
    first = await running.post(delivery(901))
    again = await running.post(delivery(901), at_ms=NOW + 30_000)
    twice_in_one = await running.post(delivery(901, 901), at_ms=NOW + 40_000)
    assert first[1]["leads"][0]["status"] == "created"
    assert again[1]["leads"] == [{**first[1]["leads"][0], "status": "existing"}]
    assert twice_in_one[1]["leads"] == again[1]["leads"]
    assert len(await running.store.conversation_ids()) == 1
    started = [e for e in await running.events() if isinstance(e, ConversationStarted)]
    assert len(started) == 1


async def test_contacts_salesbot_wrote_to_hubspot_do_not_come_back_as_leads(
    running: Running, hubspot: FakeHubSpot
) -> None:
    # A chat's lead, synced to HubSpot by salesbot: its contact's creation fires the webhook.
    lead = LeadDetails(name="Sam Chat", email="sam@example.com", company="Chatco", message=HOT)
    await running.service.handle(
        LeadArrived(delivery_id="feed-1", conversation_id="lead-chat", actor=FEED, lead=lead)
    )
    for _ in range(10):
        if not await running.service.worker.drain_once():
            break
    (ours,) = hubspot.records("contacts")
    assert ours["salesbot_adapter"].startswith("salesbot-hubspot/")
    # And a contact carrying salesbot's external id (written without an e-mail).
    add_contact(hubspot, 777, firstname="Anon", salesbot_id="salesbot:contact:lead-x")
    status, answer = await running.post(delivery(int(ours["hs_object_id"]), 777))
    assert status == 200
    assert answer["leads"] == []
    assert [s["reason"] for s in answer["skipped"]] == ["written by salesbot"] * 2
    assert await running.store.conversation_ids() == ["lead-chat"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: signed(body, secret="not-the-secret"), id="wrong secret"),
        pytest.param(lambda body: signed(body, at_ms=NOW - 5 * 60_000 - 1), id="stale"),
        pytest.param(lambda body: signed(body, at_ms=NOW + 5 * 60_000 + 1), id="from the future"),
        pytest.param(lambda body: signed(body + b" "), id="another body"),
        pytest.param(
            lambda body: {**signed(body), "X-HubSpot-Signature-v3": "not base64!"}, id="malformed"
        ),
        pytest.param(
            lambda body: {
                k: v for k, v in signed(body).items() if k != "X-HubSpot-Request-Timestamp"
            },
            id="no timestamp",
        ),
        pytest.param(lambda body: {"Content-Type": "application/json"}, id="unsigned"),
    ],
)
async def test_a_request_hubspot_did_not_sign_is_refused_and_nothing_is_stored(
    running: Running, hubspot: FakeHubSpot, headers: Any
) -> None:
    dana(hubspot)
    body = json.dumps(delivery(901)).encode()
    response = await running.client.post("/crm/hubspot", data=body, headers=headers(body))
    assert response.status == 401
    assert "error" in await response.json()
    assert await running.store.conversation_ids() == []
    assert not [c for c in hubspot.calls if "contacts" in c.path]  # nothing read either


async def test_hubspot_unreadable_now_is_a_503_and_the_redelivery_makes_the_lead(
    running: Running, hubspot: FakeHubSpot
) -> None:
    dana(hubspot)
    hubspot.fail_next("POST", "/crm/v3/objects/contacts/batch/read", 502)
    status, _ = await running.post(delivery(901))
    assert status == 503
    assert await running.store.conversation_ids() == []
    status, answer = await running.post(delivery(901), at_ms=NOW + 60_000)
    assert (status, answer["leads"][0]["status"]) == (200, "created")


async def test_other_events_and_vanished_contacts_are_acknowledged_and_make_no_lead(
    running: Running, hubspot: FakeHubSpot
) -> None:
    dana(hubspot)
    status, answer = await running.post(
        [*delivery(901, subscription="contact.propertyChange"), *delivery(404)]
    )
    assert status == 200
    assert answer == {
        "leads": [],
        "skipped": [
            {"object_id": "901", "reason": "not a contact creation"},
            {"object_id": "404", "reason": "no longer in HubSpot"},
        ],
    }
    assert await running.store.conversation_ids() == []


async def test_a_signed_body_that_is_not_hubspots_events_is_a_400(running: Running) -> None:
    status, answer = await running.post({"objectId": 1})
    assert status == 400
    assert answer == {
        "error": "Not HubSpot's webhook events: the body must be a JSON array of HubSpot events."
    }


def test_the_signature_is_hubspots_v3_and_decodes_the_uri_as_documented() -> None:
    body, timestamp = '[{"objectId":1}]', "1790000000000"
    uri = "https://bot.example.org/crm/hubspot?a=b%3Ac%2Fd%20e"
    assert signed_uri(uri) == "https://bot.example.org/crm/hubspot?a=b:c/d%20e"
    text = "POST" + signed_uri(uri) + body + timestamp
    digest = hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).digest()
    assert signature_v3(SECRET, "POST", uri, body, timestamp) == base64.b64encode(digest).decode()


async def test_without_the_client_secret_every_request_is_refused(
    hubspot: FakeHubSpot, tmp_path: Path
) -> None:
    settings = Settings(
        salesbot_crm="hubspot",
        hubspot_access_token=SecretStr(TOKEN),
        hubspot_api_url=hubspot.base_url,
    )
    store = MemoryStore()
    service = build_service(settings, crm_policy(tmp_path), store, clock=lambda: NOW)
    app = web.Application()
    for surface in service.surfaces:
        if surface.mount is not None:
            surface.mount(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        body = json.dumps(delivery(901)).encode()
        response = await client.post("/crm/hubspot", data=body, headers=signed(body))
        assert response.status == 401
        assert await response.json() == {
            "error": "HubSpot webhooks are refused until HUBSPOT_CLIENT_SECRET is set."
        }
    assert await store.conversation_ids() == []
