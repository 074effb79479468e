"""The CRM wired in (issue 16): with `SALESBOT_CRM=hubspot` the running service sends the
writes its decisions committed to HubSpot (a fake on 127.0.0.1 holding HubSpot's published
shapes), in the order decided, once each; a vendor named without its credentials refuses
the start in one line; `salesbot crm check` and `salesbot crm setup` answer for the account
the settings name."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from pydantic import SecretStr

from bot.service import build_service
from bot.settings import Settings, SettingsError
from domain.events import CrmSyncRequested, CrmSyncSettled
from domain.inbound import Actor, CommandInvoked, LeadArrived, LeadDetails
from domain.policy import Policy
from storage.memory import MemoryStore
from tests.integration.test_crm_hubspot_contract import TOKEN, FakeHubSpot
from tests.support.cli import run
from tests.unit.test_crm import CRM, crm_policy

REP = Actor(id="R", name="Rae", role="rep")
FEED = Actor(id="feed", role="prospect")
LEAD = "lead-crm-wired"


@pytest.fixture
async def hubspot() -> AsyncIterator[FakeHubSpot]:
    async with FakeHubSpot() as fake:
        fake.set_up_salesbot_properties()
        yield fake
    assert fake.spec_errors == []


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return crm_policy(tmp_path)


async def test_the_service_sends_what_its_decisions_committed_to_hubspot(
    hubspot: FakeHubSpot, policy: Policy
) -> None:
    settings = Settings(
        salesbot_crm="hubspot",
        hubspot_access_token=SecretStr(TOKEN),
        hubspot_api_url=hubspot.base_url,
    )
    ticks = itertools.count()
    store = MemoryStore()
    service = build_service(
        settings, policy, store, clock=lambda: 1_790_000_000_000 + 1000 * next(ticks)
    )
    # What `service.start()` does first: without the key the lead's card (its buttons are
    # signed) fails to send, and, retried as the clock runs, was dead-lettered in one run
    # of ten — the test's assertion, not the CRM's doing.
    service.action_key.load(b"crm-wired-test-action-secret")
    lead = LeadDetails(
        name="Dana Fox",
        email="dana@example.com",
        company="Foxco",
        message="I'm the CTO, $40k budget approved, we want to start next month",
    )
    await service.handle(LeadArrived(delivery_id="l1", conversation_id=LEAD, actor=FEED, lead=lead))
    await service.handle(
        CommandInvoked(
            delivery_id="q1", conversation_id=LEAD, actor=REP, command="quote", args="10 pro"
        )
    )
    await service.handle(
        CommandInvoked(delivery_id="w1", conversation_id=LEAD, actor=REP, command="won", args="")
    )
    for _ in range(10):
        if not await service.worker.drain_once():
            break
    assert await store.dead_letters() == []
    (deal,) = hubspot.records("deals")
    assert deal["dealstage"] == "closedwon"
    assert deal["salesbot_id"] == f"salesbot:deal:{LEAD}"
    (contact,) = hubspot.records("contacts")
    assert contact["email"] == "dana@example.com"
    assert len(hubspot.records("line_items")) == 1
    assert len(hubspot.records("notes")) == 2  # the score, the transcript
    assert service.platform_status()["crm"] == "hubspot"


def test_a_vendor_without_its_credentials_refuses_the_start(policy: Policy) -> None:
    with pytest.raises(SettingsError, match="SALESBOT_CRM=hubspot needs HUBSPOT_ACCESS_TOKEN"):
        build_service(Settings(salesbot_crm="hubspot"), policy, MemoryStore(), clock=lambda: 0)
    with pytest.raises(SettingsError, match="SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET"):
        build_service(Settings(salesbot_crm="salesforce"), policy, MemoryStore(), clock=lambda: 0)


async def test_crm_check_and_setup_answer_for_the_configured_account(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    policy_file = tmp_path / "crm.toml"
    policy_file.write_text(f'extends = "default"\n{CRM}', encoding="utf-8")
    monkeypatch.setenv("SALESBOT_POLICY", str(policy_file))
    monkeypatch.setenv("SALESBOT_CRM", "hubspot")
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    async with FakeHubSpot() as fake:  # a new account: none of salesbot's properties
        monkeypatch.setenv("HUBSPOT_API_URL", fake.base_url)
        code, out, _ = await asyncio.to_thread(run, "crm", "check")
        assert code == 1
        assert all(line.startswith("hubspot: ") for line in out.splitlines())
        assert "salesbot_id" in out
        code, out, _ = await asyncio.to_thread(run, "crm", "setup")
        assert code == 0
        assert "created deals.salesbot_id" in out
        code, out, _ = await asyncio.to_thread(run, "crm", "check")
        assert (code, out) == (0, "hubspot: ready for salesbot's writes\n")
        code, out, _ = await asyncio.to_thread(run, "crm", "setup")
        assert out == "hubspot: every property salesbot needs is there; nothing created\n"


def test_crm_commands_without_a_crm_say_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SALESBOT_CRM", raising=False)
    code, out, err = run("crm", "check")
    assert (code, out) == (2, "")
    assert err == (
        "salesbot: error: no CRM is configured: set SALESBOT_CRM to hubspot or salesforce\n"
    )


async def test_each_write_records_its_outcome_and_a_refusal_alerts_the_handoff_channel(
    hubspot: FakeHubSpot, policy: Policy
) -> None:
    """Item 2 and 3: every write the CRM sender finishes is an event in its conversation
    naming the record in HubSpot and the adapter that wrote it; a write HubSpot refuses for
    good is dead-lettered, recorded and alerted naming the record, with the e-mail address
    HubSpot quoted redacted everywhere salesbot keeps or shows it."""
    settings = Settings(
        salesbot_crm="hubspot",
        hubspot_access_token=SecretStr(TOKEN),
        hubspot_api_url=hubspot.base_url,
    )
    ticks = itertools.count()
    store = MemoryStore()
    service = build_service(
        settings, policy, store, clock=lambda: 1_790_000_000_000 + 1000 * next(ticks)
    )
    service.action_key.load(b"crm-wired-test-action-secret")  # as in the test above
    hubspot.fail_next(
        "POST",
        "/crm/v3/objects/notes",
        400,
        message="Property values were not valid: dana@example.com",
        category="VALIDATION_ERROR",
    )
    lead = LeadDetails(
        name="Dana Fox",
        email="dana@example.com",
        company="Foxco",
        message="I'm the CTO, $40k budget approved, we want to start next month",
    )
    await service.handle(LeadArrived(delivery_id="l1", conversation_id=LEAD, actor=FEED, lead=lead))
    for _ in range(10):
        if not await service.worker.drain_once():
            break
    events = [e.event for e in await store.load(LEAD)]
    settled = [e for e in events if isinstance(e, CrmSyncSettled)]
    requested = [e for e in events if isinstance(e, CrmSyncRequested)]
    assert [(s.artifact, s.outcome) for s in settled] == [
        ("deal", "sent"),
        ("note", "dead_lettered"),
    ]
    deal, note = settled
    (hubspot_deal,) = hubspot.objects["deals"].values()
    assert deal.remote_id == hubspot_deal["id"]
    assert (deal.adapter, deal.adapter_version) == ("hubspot", 1)
    assert deal.library == "hubspot-api-client 12.0.0"
    assert [s.request_seq for s in settled] == [
        e.seq for e in await store.load(LEAD) if isinstance(e.event, CrmSyncRequested)
    ]
    assert note.external_id == requested[1].external_id
    assert note.reason == "400: Property values were not valid: [e-mail]"
    (dead,) = await store.dead_letters()
    assert dead.last_error == "400: Property values were not valid: [e-mail]"
    # The alert is an outbox item for the handoff channel, whatever surface delivers it.
    (card,) = [
        item.payload["reply"]["card"]
        for item in store._outbox.values()  # every item, sent or not
        if ((item.payload.get("reply") or {}).get("card") or {}).get("title")
        == "A CRM write was refused"
    ]
    fields = {f["label"]: f["value"] for f in card["fields"]}
    assert fields["Record"] == f"note {note.external_id}"
    assert fields["The CRM said"] == "400: Property values were not valid: [e-mail]"
    assert fields["CRM"] == "hubspot v1"
    assert "dana@example.com" not in str(card)
    metrics = generate_latest(service.metrics.registry).decode()
    assert 'salesbot_crm_writes_total{artifact="deal",outcome="sent"} 1.0' in metrics
    assert 'salesbot_crm_writes_total{artifact="note",outcome="dead_lettered"} 1.0' in metrics
    assert 'salesbot_crm_sync_lag_seconds_count{artifact="deal"} 1.0' in metrics
