"""Quotes as Salesforce Quote objects (`[crm] quote_as = "quote"`, issue 16): in mode
`contact_opportunity` a quote is a Quote on the opportunity with one QuoteLineItem per line,
priced by the PricebookEntry of its SKU; written twice, or again after an answer that never
came, it is still one Quote and one line; a SKU Salesforce cannot price is refused by name
before anything is written (and dead-lettered by the outbox); mode `lead` keeps the Task; a
policy without the switch writes what it always wrote.

Against the fake org of `test_crm_salesforce_fake.py`, which checks every request against
Salesforce's documented shapes (`tests/fixtures/crm/salesforce/rest_shapes.json`)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.crm.common import payload_for
from adapters.crm.salesforce_setup import check, setup_steps
from adapters.ports import Rejected, Sent, TimedOut
from bot.outbox_worker import OutboxWorker
from bot.policy_loader import load_policy
from domain.crm import CrmRecord
from domain.crm_sync import crm_record
from domain.events import CrmSyncRequested
from domain.inbound import Actor, LeadArrived, LeadDetails
from storage.memory import MemoryStore
from storage.ports import OutboxItem
from tests.integration.test_crm_salesforce import (
    FEED,
    HOT,
    REP,
    crm_toml,
    delivery,
    item_key,
    send_all,
    sender_for,
)
from tests.integration.test_crm_salesforce_fake import FakeSalesforce
from tests.support.cli import run
from tests.support.conversation import Recording

APPROVER = Actor(id="U_BOSS", name="Morgan Manager", role="rep", approver=True)
PRO_PRICE = 199  # the default policy's PRO seat: 19900 cents


def quote_policy(tmp_path: Path, extra: str = 'quote_as = "quote"\n') -> Path:
    """The Salesforce test policy with `extra` lines in its `[crm]` table."""
    path = tmp_path / "crm-quote.toml"
    path.write_text(
        crm_toml("contact_opportunity").replace("[crm]\n", f"[crm]\n{extra}"), encoding="utf-8"
    )
    return path


def records_of(
    tmp_path: Path,
    *commands: tuple[str, str, Actor],
    extra: str = 'quote_as = "quote"\n',
    conversation_id: str = "lead-sfq-1",
) -> list[CrmRecord]:
    """Every CRM write a lead then `commands` ask for, in order, as the outbox gets them."""
    policy = load_policy(str(quote_policy(tmp_path, extra)))
    assert policy.crm is not None
    config = policy.crm
    rec = Recording(policy, conversation_id, lead_actor=FEED)
    lead = LeadDetails(name="Dana Fox", email="dana@example.com", company="Foxco", message=HOT)
    decisions = [rec.send(LeadArrived(lead=lead, actor=FEED, **rec.ids()))]
    for command, args, actor in commands:
        if command == "approve_quote":
            decisions.append(rec.click("approve_quote", rec.quote_ids()[-1], actor))
        else:
            decisions.append(rec.command(command, args, actor))
    # Each write prepared from its own decision's state, as `bot.crm_outbox` does.
    return [
        crm_record(env, decision.state, config)
        for decision in decisions
        for env in decision.events
        if isinstance(env.event, CrmSyncRequested)
    ]


QUOTED = (("quote", "10 pro 5%", REP),)
WON = (*QUOTED, ("won", "", REP))


@pytest.fixture
def org() -> Iterator[FakeSalesforce]:
    with FakeSalesforce() as fake:
        yield fake


def counts(org: FakeSalesforce) -> dict[str, int]:
    names = ("Contact", "Opportunity", "Quote", "QuoteLineItem", "Task")
    return {name: len(org.records(name)) for name in names}


async def test_a_quote_is_a_salesforce_quote_on_the_opportunity_with_its_line_priced_by_sku(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    entry = org.price_book_entry("PRO", PRO_PRICE)
    book = org.price_book(standard=True)
    records = records_of(tmp_path, *WON)
    assert [r.artifact for r in records] == ["deal", "note", "deal", "quote", "deal", "note"]
    ids = await send_all(sender_for(org, "contact_opportunity"), records)

    (opportunity,) = org.records("Opportunity").values()
    (contact,) = org.records("Contact").values()
    (quote,) = org.records("Quote").values()
    (line,) = org.records("QuoteLineItem").values()
    written = next(r for r in records if r.artifact == "quote")
    assert written.quote is not None
    assert ids[3] == quote["Id"]
    assert quote["Salesbot_Id__c"] == written.external_id
    assert written.external_id.startswith("salesbot:quote:Q-")
    assert written.external_id.endswith(":v1")
    assert quote["Name"] == f"salesbot {written.quote.quote_id} v1"
    assert (quote["OpportunityId"], quote["ContactId"]) == (opportunity["Id"], contact["Id"])
    assert quote["Pricebook2Id"] == book
    assert quote["Status"] == "Presented"  # issued: sent to the buyer
    assert quote["ExpirationDate"] == "2026-10-21"  # the quote's expiry, 30 days after issue
    assert quote["Tax"] == 0
    assert quote["Description"].splitlines()[: len(written.quote.proof)] == list(
        written.quote.proof
    )
    assert quote["Salesbot_Adapter__c"] == "salesbot salesforce/1"

    assert line["Salesbot_Id__c"] == f"{written.external_id}:line:1"
    assert (line["QuoteId"], line["PricebookEntryId"]) == (quote["Id"], entry)
    assert (line["Quantity"], line["UnitPrice"], line["Discount"]) == (10, 199, 5)
    assert line["Description"] == (
        "Pro seat (annual, per user): 10 × 199.00 = 1990.00 USD; discount 5% = 99.50; "
        "net 1890.50 USD"
    )
    # The quote is no longer a Task: only the two notes are.
    tasks = org.records("Task")
    assert len(tasks) == 2
    assert not any(t["Subject"].startswith("salesbot quote") for t in tasks.values())
    (soql,) = org.queries
    assert soql == (
        "SELECT Id, Pricebook2Id, UnitPrice FROM PricebookEntry WHERE ProductCode = 'PRO' "
        "AND IsActive = true AND Pricebook2.IsStandard = true LIMIT 2"
    )
    assert org.violations == []


async def test_the_same_quote_sent_twice_is_one_quote_and_one_line(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    org.price_book_entry("PRO", PRO_PRICE)
    records = records_of(tmp_path, *WON)
    sender = sender_for(org, "contact_opportunity")
    first = [await sender.send(delivery(r)) for r in records]
    again = [await sender.send(delivery(r)) for r in records]
    assert again == first
    assert counts(org) == {
        "Contact": 1,
        "Opportunity": 1,
        "Quote": 1,
        "QuoteLineItem": 1,
        "Task": 2,
    }
    # The resend updated without the create-only parents (the fake refuses them on update).
    quote_writes = [body for sobject, _, body in org.writes if sobject == "Quote"]
    assert "OpportunityId" in quote_writes[0]
    assert "OpportunityId" not in quote_writes[1]
    line_writes = [body for sobject, _, body in org.writes if sobject == "QuoteLineItem"]
    assert "QuoteId" in line_writes[0]
    assert "QuoteId" not in line_writes[1]


@pytest.mark.parametrize("hung", ["Quote", "QuoteLineItem"])
async def test_a_quote_whose_answer_never_came_is_resent_into_the_same_records(
    org: FakeSalesforce, tmp_path: Path, hung: str
) -> None:
    org.price_book_entry("PRO", PRO_PRICE)
    deal, _note, _deal, quote, *_ = records_of(tmp_path, *QUOTED, ("won", "", REP))
    sender = sender_for(org, "contact_opportunity", timeout_s=0.5)
    assert isinstance(await sender.send(delivery(deal)), Sent)
    release = org.hang_next(hung)
    outcome = await sender.send(delivery(quote))
    release.set()
    assert isinstance(outcome, TimedOut)
    assert await sender.find_sent(delivery(quote)) is None  # so the outbox sends it again
    resent = await sender.send(delivery(quote))
    assert isinstance(resent, Sent)
    (written,) = org.records("Quote").values()
    assert resent.remote_id == written["Id"]
    assert (counts(org)["Quote"], counts(org)["QuoteLineItem"]) == (1, 1)
    (line,) = org.records("QuoteLineItem").values()
    assert line["QuoteId"] == written["Id"]


async def test_a_sku_without_a_price_book_entry_is_refused_by_name_before_anything_is_written(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    org.price_book_entry("STARTER", 49)  # the catalog's PRO was never added to Salesforce
    org.price_book_entry("PRO", PRO_PRICE, active=False)  # or only as an inactive entry
    deal, _note, _deal, quote, *_ = records_of(tmp_path, *WON)
    sender = sender_for(org, "contact_opportunity")
    assert isinstance(await sender.send(delivery(deal)), Sent)
    outcome = await sender.send(delivery(quote))
    assert outcome == Rejected(
        reason="not written as a Salesforce Quote: SKU 'PRO' has no active price book entry "
        "in the standard price book: add the product with Product Code 'PRO' to it in "
        "Salesforce"
    )
    assert org.records("Quote") == org.records("QuoteLineItem") == {}


async def test_a_refused_quote_is_dead_lettered_by_the_outbox_and_the_rest_still_lands(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    records = records_of(tmp_path, *WON)  # no price book entry at all
    store = MemoryStore()
    now = [1_790_000_000_000]

    async def no_sleep(seconds: float) -> None:
        now[0] += round(seconds * 1000)

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
    dead: list[str] = []

    async def on_dead_letter(item: OutboxItem, reason: str) -> None:
        dead.append(f"{item.key}: {reason}")

    sender = sender_for(org, "contact_opportunity")
    worker = OutboxWorker(
        store,
        lambda channel: sender if channel.startswith("crm:") else None,
        clock=lambda: now[0],
        sleep=no_sleep,
        rng=random.Random(0),
        pacing_ms=lambda _channel: 0,
        on_dead_letter=on_dead_letter,
    )
    for _ in range(20):
        await worker.drain_once()
        if await store.pending_count() == 0:
            break
    quote = next(r for r in records if r.artifact == "quote")
    (letter,) = await store.dead_letters()
    assert letter.key == item_key(quote)
    assert dead
    assert "SKU 'PRO' has no active price book entry" in dead[0]
    assert counts(org)["Opportunity"] == 1
    assert counts(org)["Quote"] == 0
    (opportunity,) = org.records("Opportunity").values()
    assert opportunity["StageName"] == "Closed Won"


async def test_a_custom_priced_line_has_no_price_book_entry_and_is_refused_saying_why(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    deal, *_, quote = records_of(tmp_path, ("quote", "3 x 250", REP))
    sender = sender_for(org, "contact_opportunity")
    assert isinstance(await sender.send(delivery(deal)), Sent)
    outcome = await sender.send(delivery(quote))
    assert isinstance(outcome, Rejected)
    assert "custom unit price and no SKU" in outcome.reason
    assert org.queries == []
    assert org.records("Quote") == {}


async def test_a_configured_price_book_prices_the_lines_instead_of_the_standard_one(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    org.price_book_entry("PRO", 250)  # the standard book's list price
    partner = org.price_book("Partner prices")
    entry = org.price_book_entry("PRO", 180, book=partner)
    extra = f'quote_as = "quote"\nprice_book = "{partner}"\n'
    records = records_of(tmp_path, *QUOTED, extra=extra)
    await send_all(sender_for(org, "contact_opportunity"), records)
    (quote,) = org.records("Quote").values()
    (line,) = org.records("QuoteLineItem").values()
    assert (quote["Pricebook2Id"], line["PricebookEntryId"]) == (partner, entry)
    assert line["UnitPrice"] == Decimal(199)  # salesbot's price, not either book's list price
    assert f"Pricebook2Id = '{partner}'" in org.queries[0]


async def test_a_revised_quote_is_a_second_quote_and_the_first_keeps_its_status(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    org.price_book_entry("PRO", PRO_PRICE)
    records = records_of(
        tmp_path,
        ("quote", "10 pro 20%", REP),  # above the rep cap: waits for approval
        ("approve_quote", "", APPROVER),
    )
    quotes = [r for r in records if r.artifact == "quote"]
    assert [r.external_id.rsplit(":", 1)[1] for r in quotes] == ["v1", "v2"]
    await send_all(sender_for(org, "contact_opportunity"), records)
    written = org.records("Quote")
    assert {k.rsplit(":", 1)[1]: v["Status"] for k, v in written.items()} == {
        "v1": "Needs Review",
        "v2": "Presented",
    }
    lines = org.records("QuoteLineItem")
    assert sorted(lines) == sorted(f"{r.external_id}:line:1" for r in quotes)
    assert {line["Discount"] for line in lines.values()} == {20}


async def test_mode_lead_keeps_the_quote_as_a_task(org: FakeSalesforce, tmp_path: Path) -> None:
    org.add_picklist_values("Lead", "Status", "Qualified", "Meeting", "Quote Sent", "Won", "Lost")
    path = tmp_path / "lead.toml"
    path.write_text(
        crm_toml("lead").replace("[crm]\n", '[crm]\nquote_as = "quote"\n'), encoding="utf-8"
    )
    policy = load_policy(str(path))
    assert policy.crm is not None
    assert policy.crm.quote_as == "quote"
    rec = Recording(policy, "lead-sfq-lead", lead_actor=FEED)
    lead = LeadDetails(name="Dana Fox", email="dana@example.com", company="Foxco", message=HOT)
    rec.send(LeadArrived(lead=lead, actor=FEED, **rec.ids()))
    rec.command("quote", "10 pro 5%", REP)
    records = [
        crm_record(env, rec.state, policy.crm)
        for env in rec.events
        if isinstance(env.event, CrmSyncRequested)
    ]
    await send_all(sender_for(org, "lead"), records)
    assert org.records("Quote") == {}
    assert org.queries == []
    subjects = [t["Subject"] for t in org.records("Task").values()]
    assert any(
        s.startswith("salesbot quote Q-") and s.endswith("v1: 1890.50 USD") for s in subjects
    )


def test_a_policy_without_the_switch_writes_the_payload_it_always_wrote(tmp_path: Path) -> None:
    """The outbox payload of a quote under a policy without `quote_as = "quote"` carries
    none of the Quote's extra fields: byte for byte what the previous release wrote."""
    records = records_of(tmp_path, *QUOTED, extra="")
    quote = next(r for r in records if r.artifact == "quote")
    payload = payload_for(quote)["crm"]
    assert payload["quote_as"] == "line_items"
    assert "price_book" not in payload
    assert {"status", "expires_at_ms"}.isdisjoint(payload["quote"])
    with_switch = next(r for r in records_of(tmp_path, *QUOTED) if r.artifact == "quote")
    assert with_switch.quote is not None
    assert (with_switch.quote.status, with_switch.quote.expires_at_ms is not None) == (
        "issued",
        True,
    )


async def test_a_policy_without_the_switch_still_writes_the_quote_as_a_task(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    org.price_book_entry("PRO", PRO_PRICE)
    records = records_of(tmp_path, *QUOTED, extra="")
    await send_all(sender_for(org, "contact_opportunity"), records)
    assert org.records("Quote") == {}
    assert org.queries == []
    assert any(t["Subject"].startswith("salesbot quote") for t in org.records("Task").values())


# -- setting it up ---------------------------------------------------------------------------


def test_check_looks_for_the_quote_fields_and_says_when_quotes_are_off(
    org: FakeSalesforce,
) -> None:
    def checked(fake: FakeSalesforce, **kwargs: object) -> list[str]:
        return check(
            fake.credentials(),
            mode="contact_opportunity",
            api_version=fake.api_version,
            verify=fake.ca_file,
            quotes=True,
            **kwargs,  # type: ignore[arg-type]
        )

    assert checked(org) == []
    org.drop_field("QuoteLineItem", "Salesbot_Id__c")
    (problem,) = checked(org)
    assert problem.startswith("QuoteLineItem: field Salesbot_Id__c missing")
    with FakeSalesforce(quotes_enabled=False) as bare:
        assert checked(bare) == [
            "Quote: not in this org: enable Quotes (Setup → Quote Settings)",
            "QuoteLineItem: not in this org: enable Quotes (Setup → Quote Settings)",
        ]
    lead_problems = check(
        org.credentials(), mode="lead", api_version=org.api_version, verify=org.ca_file, quotes=True
    )
    assert lead_problems[0].startswith('[crm] quote_as = "quote" needs SALESFORCE_RECORDS')


def test_setup_steps_turn_quotes_on_and_name_the_quote_fields() -> None:
    steps = "\n".join(setup_steps("contact_opportunity", quotes=True))
    assert "Setup → Quote Settings → Enable" in steps
    assert "Object Manager → Quote → Fields & Relationships" in steps
    assert "Object Manager → Quote Line Item → Fields & Relationships" in steps
    assert "Product Code = the SKU" in steps
    assert "Quote" not in "\n".join(setup_steps("contact_opportunity"))


def test_salesbot_crm_setup_prints_the_quote_steps_when_the_policy_asks_for_quotes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESBOT_POLICY", str(quote_policy(tmp_path)))
    monkeypatch.setenv("SALESBOT_CRM", "salesforce")
    monkeypatch.setenv("SALESFORCE_LOGIN_URL", "https://example.my.salesforce.com")
    monkeypatch.setenv("SALESFORCE_CLIENT_ID", "3MVG9fake.client")
    monkeypatch.setenv("SALESFORCE_CLIENT_SECRET", "fake-secret-9c1e")
    monkeypatch.setenv("SALESFORCE_RECORDS", "contact_opportunity")
    code, out, err = run("crm", "setup")
    assert (code, err) == (0, "")
    assert "  Quotes: Setup → Quote Settings → Enable" in out
    assert "Quote Line Item" in out


# -- HubSpot has no Quote to write: the switch means line items there ------------------------


async def test_hubspot_writes_a_quote_as_line_items_when_the_policy_asks_for_quotes(
    tmp_path: Path,
) -> None:
    from tests.integration.test_crm_hubspot_contract import FakeHubSpot
    from tests.integration.test_crm_hubspot_contract import lead_to_won as hubspot_lead_to_won
    from tests.integration.test_crm_hubspot_contract import send_all as hubspot_send_all
    from tests.integration.test_crm_hubspot_contract import sender as hubspot_sender
    from tests.unit.test_crm import CRM, crm_policy

    policy = crm_policy(
        tmp_path, CRM.replace('pipeline = "sales"', 'pipeline = "sales"\nquote_as = "quote"')
    )
    records = hubspot_lead_to_won(policy)
    quote = next(r for r in records if r.artifact == "quote")
    async with FakeHubSpot() as hubspot:
        hubspot.set_up_salesbot_properties()
        outcomes = await hubspot_send_all(hubspot_sender(hubspot), records)
        assert all(isinstance(o, Sent) for o in outcomes), outcomes
        (line_item,) = hubspot.objects["line_items"].values()
        assert line_item["properties"]["salesbot_id"] == quote.external_id
