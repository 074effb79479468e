"""The Salesforce sender against a fake Salesforce org over https on 127.0.0.1: a
conversation from lead to won becomes exactly the records a sales team expects in each mode,
a retried write never makes a second record, what may pass is retried and what never will
is refused in Salesforce's words, an expired session costs one token refresh, and
`check()` tells an admin which set-up step is missing.

The records come from the domain (`domain.crm_sync.crm_record`) for a real conversation, as
the runtime will hand them to the outbox; the fake validates every request against
Salesforce's documented shapes (`tests/fixtures/crm/salesforce/`)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from adapters.crm.common import payload_for
from adapters.crm.salesforce import SalesforceCredentials, SalesforceSender
from adapters.crm.salesforce_records import Mode
from adapters.crm.salesforce_setup import check, setup_steps
from adapters.ports import Delivery, Rejected, RetryLater, Sender, Sent, TimedOut
from bot.outbox_worker import OutboxWorker
from bot.policy_loader import load_policy
from domain.crm import CrmRecord
from domain.crm_sync import crm_record
from domain.events import CrmSyncRequested
from domain.inbound import Actor, LeadArrived, LeadDetails
from storage.memory import MemoryStore
from storage.ports import OutboxItem
from tests.integration.test_crm_salesforce_fake import FakeSalesforce
from tests.support.conversation import Recording

TODAY = date(2026, 12, 7)
OWNERS = {
    "owner-alex": "005000000000001AAA",
    "owner-sam": "005000000000002AAA",
    "owner-jordan": "005000000000003AAA",
}
STAGES: dict[Mode, dict[str, str]] = {
    "contact_opportunity": {
        "new": "Prospecting",
        "qualified": "Qualification",
        "meeting": "Needs Analysis",
        "quote_sent": "Proposal/Price Quote",
        "won": "Closed Won",
        "lost": "Closed Lost",
    },
    # docs/crm.md asks the admin to add these Lead Status values (none marked Converted).
    "lead": {
        "new": "Open - Not Contacted",
        "qualified": "Qualified",
        "meeting": "Meeting",
        "quote_sent": "Quote Sent",
        "won": "Won",
        "lost": "Lost",
    },
}
REP = Actor(id="R", name="Rae", role="rep")
FEED = Actor(id="feed", role="prospect")
HOT = "I'm the CTO, we have a $40k budget approved and want to start next month"


def crm_toml(mode: Mode) -> str:
    stages = "\n".join(f'{k} = "{v}"' for k, v in STAGES[mode].items())
    owners = "\n".join(f'{k} = "{v}"' for k, v in OWNERS.items())
    return f'extends = "default"\n[crm]\n[crm.stages]\n{stages}\n[crm.owners]\n{owners}\n'


def lead_to_won(
    tmp_path: Path, mode: Mode, conversation_id: str = "lead-sf-1", email: str = "dana@example.com"
) -> list[CrmRecord]:
    """Every CRM write a lead that becomes a quote and a won deal asks for, in order."""
    path = tmp_path / f"crm-{mode}.toml"
    path.write_text(crm_toml(mode), encoding="utf-8")
    policy = load_policy(str(path))
    assert policy.crm is not None
    rec = Recording(policy, conversation_id, lead_actor=FEED)
    lead = LeadDetails(name="Dana Fox", email=email, company="Foxco", message=HOT, source="Webinar")
    rec.send(LeadArrived(lead=lead, actor=FEED, **rec.ids()))
    rec.command("quote", "10 pro 5%", REP)
    rec.command("won", "", REP)
    return [
        crm_record(env, rec.state, policy.crm)
        for env in rec.events
        if isinstance(env.event, CrmSyncRequested)
    ]


def item_key(record: CrmRecord) -> str:
    """One outbox item per `crm_sync_requested` event: a deal's external id is the same for
    every update of it, so it cannot be the item's key (the outbox would keep only one)."""
    return f"crm:{record.conversation_id}:{record.event_seq}"


def delivery(record: CrmRecord) -> Delivery:
    return Delivery(
        key=item_key(record),
        conversation_id=record.conversation_id,
        channel="crm:salesforce",
        payload=payload_for(record),
    )


@pytest.fixture
def org() -> Iterator[FakeSalesforce]:
    with FakeSalesforce() as fake:
        fake.add_picklist_values(
            "Lead", "Status", "Qualified", "Meeting", "Quote Sent", "Won", "Lost"
        )
        yield fake


def sender_for(
    org: FakeSalesforce, mode: Mode, *, timeout_s: float = 2.0, limit_retry_ms: int = 900_000
) -> SalesforceSender:
    return SalesforceSender(
        org.credentials(),
        mode=mode,
        api_version=org.api_version,
        verify=org.ca_file,
        timeout_s=timeout_s,
        limit_retry_ms=limit_retry_ms,
        today=lambda: TODAY,
    )


async def send_all(sender: SalesforceSender, records: list[CrmRecord]) -> list[str | None]:
    ids = []
    for record in records:
        outcome = await sender.send(delivery(record))
        assert isinstance(outcome, Sent), (record.artifact, outcome)
        ids.append(outcome.remote_id)
    return ids


async def test_lead_mode_a_conversation_is_one_lead_moved_to_won_with_its_quote_and_notes(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    records = lead_to_won(tmp_path, "lead")
    assert [r.artifact for r in records] == ["deal", "note", "deal", "quote", "deal", "note"]
    ids = await send_all(sender_for(org, "lead"), records)

    (lead,) = org.records("Lead").values()
    assert lead["Id"] == ids[0] == ids[2] == ids[4]
    assert (lead["FirstName"], lead["LastName"], lead["Company"], lead["Email"]) == (
        "Dana",
        "Fox",
        "Foxco",
        "dana@example.com",
    )
    assert lead["Status"] == "Won"
    assert lead["Salesbot_Amount__c"] == pytest.approx(1890.50)
    assert str(lead["Salesbot_Amount__c"]) == "1890.5"  # exactly the quote's 189050 cents
    assert (lead["Salesbot_Band__c"], lead["Salesbot_Source__c"]) == ("hot", "webinar")
    assert lead["OwnerId"] in OWNERS.values()
    assert lead["Salesbot_Adapter__c"] == "salesbot salesforce/1"
    assert org.records("Contact") == org.records("Opportunity") == {}

    tasks = org.records("Task")
    assert sorted(tasks) == sorted(r.external_id for r in records if r.artifact != "deal")
    assert {t["WhoId"] for t in tasks.values()} == {lead["Id"]}
    assert all(t["Status"] == "Completed" and "WhatId" not in t for t in tasks.values())
    quote = next(t for t in tasks.values() if t["Subject"].startswith("salesbot quote"))
    assert quote["Subject"].endswith("v1: 1890.50 USD")
    quote_record = next(r for r in records if r.quote is not None)
    assert quote_record.quote is not None
    assert quote["Description"].splitlines()[: len(quote_record.quote.proof)] == list(
        quote_record.quote.proof
    )
    transcript = next(t for t in tasks.values() if "transcript" in t["Subject"])
    assert HOT in transcript["Description"]
    assert transcript["Subject"] == "salesbot transcript (deal won)"


async def test_contact_opportunity_mode_a_conversation_is_a_contact_and_its_opportunity(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    records = lead_to_won(tmp_path, "contact_opportunity")
    ids = await send_all(sender_for(org, "contact_opportunity"), records)

    (contact,) = org.records("Contact").values()
    (opportunity,) = org.records("Opportunity").values()
    assert org.records("Lead") == {}
    assert (contact["FirstName"], contact["LastName"], contact["Email"]) == (
        "Dana",
        "Fox",
        "dana@example.com",
    )
    assert contact["Salesbot_Id__c"] == "salesbot:contact:lead-sf-1"
    assert opportunity["Salesbot_Id__c"] == "salesbot:deal:lead-sf-1"
    assert opportunity["Id"] == ids[0] == ids[2] == ids[4]
    assert opportunity["ContactId"] == contact["Id"]  # the primary contact, set on create
    assert opportunity["Name"] == "Foxco"
    assert opportunity["StageName"] == "Closed Won"
    assert str(opportunity["Amount"]) == "1890.5"
    assert opportunity["CloseDate"] == TODAY.isoformat()  # won today (was today + 30 while open)
    assert opportunity["Salesbot_Hot_Probability__c"] is not None

    tasks = org.records("Task")
    assert len(tasks) == 3
    assert {(t["WhatId"], t["WhoId"]) for t in tasks.values()} == {
        (opportunity["Id"], contact["Id"])
    }
    # The open deal was created closing 30 days out; the stages it went through, in order.
    opportunity_writes = [body for sobject, _, body in org.writes if sobject == "Opportunity"]
    assert opportunity_writes[0]["CloseDate"] == "2027-01-06"
    assert [w["StageName"] for w in opportunity_writes] == [
        "Qualification",
        "Proposal/Price Quote",
        "Closed Won",
    ]


@pytest.mark.parametrize("mode", ["lead", "contact_opportunity"])
async def test_every_item_sent_twice_makes_no_duplicate(
    org: FakeSalesforce, tmp_path: Path, mode: Mode
) -> None:
    records = lead_to_won(tmp_path, mode)
    sender: Sender = sender_for(org, mode)  # what the outbox will be handed
    first = [await sender.send(delivery(r)) for r in records]
    again = [await sender.send(delivery(r)) for r in records]
    assert again == first
    counts = {name: len(org.records(name)) for name in ("Lead", "Contact", "Opportunity", "Task")}
    expected = {"Lead": 1, "Contact": 0, "Opportunity": 0, "Task": 3}
    if mode == "contact_opportunity":
        expected = {"Lead": 0, "Contact": 1, "Opportunity": 1, "Task": 3}
    assert counts == expected


@pytest.mark.parametrize(
    ("status", "code"),
    [(503, "SERVER_UNAVAILABLE"), (500, "UNKNOWN_EXCEPTION"), (403, "REQUEST_LIMIT_EXCEEDED")],
)
async def test_what_may_pass_is_retried_then_delivered(
    org: FakeSalesforce, tmp_path: Path, status: int, code: str
) -> None:
    deal = lead_to_won(tmp_path, "lead")[0]
    sender = sender_for(org, "lead", limit_retry_ms=60_000)
    org.fail_next("Lead", status, code, "try later")
    outcome = await sender.send(delivery(deal))
    assert isinstance(outcome, RetryLater)
    assert outcome.reason.startswith(f"{status}: {code} on Lead")
    if code == "REQUEST_LIMIT_EXCEEDED":
        assert outcome.retry_after_ms == 60_000
    assert org.records("Lead") == {}
    assert isinstance(await sender.send(delivery(deal)), Sent)
    assert len(org.records("Lead")) == 1


async def test_a_write_whose_answer_never_came_times_out_and_its_resend_updates_the_same_record(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    deal = lead_to_won(tmp_path, "lead")[0]
    sender = sender_for(org, "lead", timeout_s=0.5)
    release = org.hang_next("Lead")
    outcome = await sender.send(delivery(deal))
    release.set()
    assert isinstance(outcome, TimedOut)
    assert len(org.records("Lead")) == 1  # it was written after all
    assert await sender.find_sent(delivery(deal)) is None  # so the outbox resends it
    resent = await sender.send(delivery(deal))
    assert isinstance(resent, Sent)
    (lead,) = org.records("Lead").values()
    assert resent.remote_id == lead["Id"]


async def test_an_org_specific_required_field_is_refused_by_name(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    org.require("Lead", "Industry")
    deal = lead_to_won(tmp_path, "lead")[0]
    outcome = await sender_for(org, "lead").send(delivery(deal))
    assert isinstance(outcome, Rejected)
    assert outcome.reason.startswith("400: REQUIRED_FIELD_MISSING on Lead")
    assert "Industry" in outcome.reason


async def test_a_duplicate_rule_refusal_is_named_and_leaves_no_trace_of_the_prospect(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    org.duplicate_rule("Lead", "Email")
    sender = sender_for(org, "lead")
    first = lead_to_won(tmp_path, "lead", "lead-sf-1")[0]
    second = lead_to_won(tmp_path, "lead", "lead-sf-2")[0]
    assert isinstance(await sender.send(delivery(first)), Sent)
    outcome = await sender.send(delivery(second))
    assert isinstance(outcome, Rejected)
    assert "DUPLICATES_DETECTED" in outcome.reason
    assert len(org.records("Lead")) == 1


async def test_salesforces_message_quoting_the_prospect_is_redacted(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    deal = lead_to_won(tmp_path, "lead", email="dana.fox-at-foxco")[0]
    outcome = await sender_for(org, "lead").send(delivery(deal))
    assert isinstance(outcome, Rejected)
    assert "INVALID_EMAIL_ADDRESS" in outcome.reason
    assert "dana.fox-at-foxco" not in outcome.reason
    assert "[redacted]" in outcome.reason


async def test_an_expired_session_costs_one_token_refresh(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    records = lead_to_won(tmp_path, "lead")
    sender = sender_for(org, "lead")
    assert isinstance(await sender.send(delivery(records[0])), Sent)
    assert len(org.token_requests) == 1
    org.expire_sessions()
    assert isinstance(await sender.send(delivery(records[1])), Sent)
    assert len(org.token_requests) == 2
    assert len(org.records("Task")) == 1


async def test_a_session_refused_after_the_refresh_is_rejected_without_a_second_refresh(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    deal = lead_to_won(tmp_path, "lead")[0]
    sender = sender_for(org, "lead")
    org.refuse_sessions()
    outcome = await sender.send(delivery(deal))
    assert outcome == Rejected(reason="401: INVALID_SESSION_ID on Lead: Session expired or invalid")
    assert len(org.token_requests) == 2


async def test_wrong_client_credentials_are_rejected_in_salesforces_words(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    deal = lead_to_won(tmp_path, "lead")[0]
    sender = SalesforceSender(
        org.credentials(secret="not-the-secret"), verify=org.ca_file, api_version=org.api_version
    )
    outcome = await sender.send(delivery(deal))
    assert outcome == Rejected(
        reason="token request refused (400): invalid_client: invalid client credentials"
    )
    assert "not-the-secret" not in repr(sender.__dict__)


async def test_the_username_password_flow_sends_the_password_with_the_security_token(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    deal = lead_to_won(tmp_path, "lead")[0]
    sender = SalesforceSender(
        org.credentials(password_flow=True),
        verify=org.ca_file,
        api_version=org.api_version,
    )
    assert isinstance(await sender.send(delivery(deal)), Sent)
    assert org.token_requests[0]["grant_type"] == "password"


async def test_the_daily_api_allocation_is_read_from_every_answer(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    sender = sender_for(org, "contact_opportunity")
    assert sender.api_usage is None
    await send_all(sender, lead_to_won(tmp_path, "contact_opportunity")[:1])
    usage = sender.api_usage
    assert usage is not None
    assert (usage.used, usage.total) == (org.api_calls, 15000)
    assert usage.remaining == 15000 - org.api_calls


async def test_a_note_whose_deal_never_reached_salesforce_is_refused(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    note = lead_to_won(tmp_path, "lead")[1]
    outcome = await sender_for(org, "lead").send(delivery(note))
    assert isinstance(outcome, Rejected)
    assert "salesbot:deal:lead-sf-1" in outcome.reason


@pytest.mark.parametrize("mode", ["lead", "contact_opportunity"])
def test_check_passes_on_an_org_set_up_as_documented(org: FakeSalesforce, mode: Mode) -> None:
    assert (
        check(org.credentials(), mode=mode, api_version=org.api_version, verify=org.ca_file) == []
    )


def test_check_reports_each_missing_field_on_its_own_line(org: FakeSalesforce) -> None:
    org.drop_field("Task", "Salesbot_Id__c")
    org.drop_field("Opportunity", "Salesbot_Band__c")
    problems = check(
        org.credentials(),
        mode="contact_opportunity",
        api_version=org.api_version,
        verify=org.ca_file,
    )
    assert len(problems) == 2
    assert problems[0].startswith("Opportunity: field Salesbot_Band__c missing")
    assert problems[1].startswith("Task: field Salesbot_Id__c missing")
    # The same field in lead mode is not needed on the Opportunity.
    lead_problems = check(
        org.credentials(), mode="lead", api_version=org.api_version, verify=org.ca_file
    )
    assert [p.split(":")[0] for p in lead_problems] == ["Task"]


def test_check_reports_an_external_id_that_is_not_unique_or_not_writable(
    org: FakeSalesforce,
) -> None:
    org.alter_field("Lead", "Salesbot_Id__c", unique=False)
    org.alter_field("Lead", "Salesbot_Band__c", updateable=False)
    assert check(
        org.credentials(), mode="lead", api_version=org.api_version, verify=org.ca_file
    ) == [
        "Lead: field Salesbot_Id__c must be marked Unique",
        "Lead: field Salesbot_Band__c is read-only for this user "
        "(Field-Level Security: give Edit access)",
    ]


def test_check_reports_a_bad_secret_and_an_unserved_api_version(org: FakeSalesforce) -> None:
    assert check(
        org.credentials(secret="wrong"),
        mode="lead",
        api_version=org.api_version,
        verify=org.ca_file,
    ) == ["token: token request refused (400): invalid_client: invalid client credentials"]
    (problem,) = check(org.credentials(), mode="lead", api_version="45.0", verify=org.ca_file)
    assert problem.startswith("API version 45.0 is not served by this org (newest: 62.0)")


def test_setup_steps_name_every_field_check_looks_for() -> None:
    modes: tuple[Mode, ...] = ("lead", "contact_opportunity")
    for mode in modes:
        steps = "\n".join(setup_steps(mode))
        assert "Salesbot_Id__c" in steps
        assert "Unique (case sensitive) and External ID" in steps
    assert "Salesbot_Amount__c" in "\n".join(setup_steps("lead"))
    assert "Object Manager → Activity" in "\n".join(setup_steps("contact_opportunity"))


async def test_through_the_outbox_every_write_lands_once_despite_busy_limits_and_timeouts(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    """The outbox worker as it will run the sender: a 503, the daily limit and an answer
    that never came are retried until everything is in Salesforce, each record once."""
    records = lead_to_won(tmp_path, "contact_opportunity")
    store = MemoryStore()
    now = [1_790_000_000_000]

    async def fake_sleep(seconds: float) -> None:
        now[0] += round(seconds * 1000)
        await asyncio.sleep(0)

    await store.enqueue(
        [
            OutboxItem(
                key=item_key(r),
                conversation_id=r.conversation_id,
                channel="crm:salesforce",
                payload=payload_for(r),
                created_at_ms=now[0],
                available_at_ms=now[0],
            )
            for r in records
        ]
    )
    sender = sender_for(org, "contact_opportunity", timeout_s=0.5, limit_retry_ms=60_000)
    worker = OutboxWorker(
        store,
        lambda channel: sender if channel.startswith("crm:") else None,
        clock=lambda: now[0],
        sleep=fake_sleep,
        rng=random.Random(0),
        pacing_ms=lambda _channel: 0,
        send_timeout_s=5.0,
    )
    org.fail_next("Opportunity", 503, "SERVER_UNAVAILABLE", "Server busy")
    org.fail_next("Task", 403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    release = org.hang_next("Task")
    try:
        for _ in range(200):
            await worker.drain_once()
            if await store.pending_count() == 0:
                break
            now[0] += 1000
    finally:
        release.set()
    assert await store.pending_count() == 0
    assert await store.dead_letters() == []
    assert len(org.records("Contact")) == len(org.records("Opportunity")) == 1
    assert sorted(org.records("Task")) == sorted(
        r.external_id for r in records if r.artifact != "deal"
    )
    (opportunity,) = org.records("Opportunity").values()
    assert opportunity["StageName"] == "Closed Won"
    sent = [await store.outbox_item(item_key(r)) for r in records]
    assert all(item is not None and item.remote_id for item in sent)


async def test_an_unreachable_salesforce_is_retried_not_refused(tmp_path: Path) -> None:
    deal = lead_to_won(tmp_path, "lead")[0]
    ca_file = tmp_path / "ca.pem"
    with FakeSalesforce() as gone:
        ca_file.write_bytes(Path(gone.ca_file).read_bytes())
        sender = SalesforceSender(gone.credentials(), verify=str(ca_file))
    outcome = await sender.send(delivery(deal))  # the port is closed now
    assert outcome == RetryLater(reason="token request failed: ConnectionError")


def test_credentials_go_to_https_only_and_never_show_their_secrets() -> None:
    with pytest.raises(ValueError, match="https"):
        SalesforceCredentials(
            login_url="http://example.my.salesforce.com", client_id="a", client_secret="b"
        )
    credentials = SalesforceCredentials(
        login_url="https://example.my.salesforce.com",
        client_id="key",
        client_secret="s3cr3t",
        username="u@example.com",
        password="pw-42",
        security_token="tok-7",
    )
    assert not {"s3cr3t", "pw-42", "tok-7"} & set(repr(credentials).replace("'", " ").split())
    assert credentials.form()["password"] == "pw-42tok-7"


async def test_a_lead_that_came_from_salesforce_is_written_back_to_its_own_lead_not_a_second(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    """A Lead created in Salesforce comes in as a lead (`adapters.crm.salesforce_outbound`)
    with no chat; its deal, quote and notes go back onto that Lead — claimed by Id with our
    external id — never onto a second Lead for the same person, however often resent."""
    own = org.create("Lead", LastName="Fox", Company="Foxco", Email="dana@example.com")
    path = tmp_path / "crm-lead.toml"
    path.write_text(crm_toml("lead"), encoding="utf-8")
    policy = load_policy(str(path))
    assert policy.crm is not None
    rec = Recording(policy, "lead-from-sf", lead_actor=FEED)
    lead = LeadDetails(
        name="Dana Fox",
        email="dana@example.com",
        company="Foxco",
        message=HOT,
        external_id=f"salesforce:00D000000000001:Lead:{own}",
        reply_in="Salesforce",
    )
    rec.send(LeadArrived(lead=lead, actor=FEED, **rec.ids()))
    rec.command("quote", "10 pro 5%", REP)
    rec.command("won", "", REP)
    records = [
        crm_record(env, rec.state, policy.crm)
        for env in rec.events
        if isinstance(env.event, CrmSyncRequested)
    ]
    assert {r.artifact for r in records} >= {"deal", "quote", "note"}
    sender = sender_for(org, "lead")
    ids = await send_all(sender, records)
    await send_all(sender, records)  # every write again: still the one Lead

    (only,) = org.records("Lead").values()
    assert only["Id"] == own
    assert set(ids) >= {own}
    deal = next(r for r in records if r.artifact == "deal")
    assert only["Salesbot_Id__c"] == deal.deal.external_id
    assert only["Status"] == "Won"
    assert only["Salesbot_Adapter__c"] == "salesbot salesforce/1"
    tasks = org.records("Task")
    assert tasks
    assert {t["WhoId"] for t in tasks.values()} == {own}
