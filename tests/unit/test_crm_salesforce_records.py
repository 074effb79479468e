"""What each Salesforce record holds, decided without a network: amounts exact to the cent
(and to the fils), names split as Salesforce's required LastName needs, an open
opportunity's CloseDate 30 days out and a closed one's the day it closed, fields a rep may
have edited left alone on update, and text cut to the field's length instead of refused."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from adapters.crm.salesforce_records import (
    NOT_PROVIDED,
    amount,
    contact_fields,
    lead_fields,
    opportunity_fields,
    task_fields,
)
from domain.crm import CrmContact, CrmDeal, CrmRecord, CrmStage

TODAY = date(2026, 12, 7)


def record(
    stage: CrmStage = "qualified",
    *,
    name: str | None = "Dana Fox",
    company: str | None = "Foxco",
    artifact: str = "deal",
    lines: tuple[str, ...] = (),
    amount_cents: int | None = None,
    minor_units: int | None = None,
) -> CrmRecord:
    deal = CrmDeal(
        external_id="salesbot:deal:c-1",
        stage=stage,
        crm_stage={"won": "Closed Won"}.get(stage, "Qualification"),
        pipeline="default",
        amount_cents=amount_cents,
        currency="USD" if amount_cents is not None else None,
        minor_units=minor_units,
        band="hot",
        hot_probability=Decimal("0.873125"),
    )
    return CrmRecord.model_validate(
        {
            "artifact": artifact,
            "external_id": "salesbot:note:c-1:transcript:9"
            if artifact == "note"
            else deal.external_id,
            "conversation_id": "c-1",
            "event_seq": 9,
            "deal": deal,
            "contact": CrmContact(
                external_id="salesbot:contact:c-1",
                email="dana@example.com",
                name=name,
                company=company,
            ),
            "note": "transcript" if artifact == "note" else None,
            "note_lines": lines,
        }
    )


@pytest.mark.parametrize(
    ("cents", "minor_units", "text"),
    [(189050, 2, "1890.5"), (1, 2, "0.01"), (1234567, 3, "1234.567"), (500, 0, "500.0")],
)
def test_an_amount_is_the_exact_decimal_of_its_minor_units(
    cents: int, minor_units: int, text: str
) -> None:
    assert json.dumps(amount(cents, minor_units)) == text
    assert Decimal(json.dumps(amount(cents, minor_units))) == Decimal(cents).scaleb(-minor_units)


def test_an_amount_a_json_number_cannot_hold_exactly_is_refused_not_rounded() -> None:
    with pytest.raises(ValueError, match="no exact JSON number"):
        amount(2**60 + 1, 2)


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("Dana Fox", "Dana", "Fox"),
        ("Cher", None, "Cher"),
        ("Mary Ann de la Cruz", "Mary Ann de la", "Cruz"),
        (None, None, NOT_PROVIDED),
        ("   ", None, NOT_PROVIDED),
    ],
)
def test_the_required_last_name_is_always_there(
    name: str | None, first: str | None, last: str
) -> None:
    fields = contact_fields(record(name=name))
    assert fields["LastName"] == last
    assert fields.get("FirstName") == first


def test_a_lead_without_a_company_gets_salesforces_placeholder() -> None:
    fields = lead_fields(record(company=None))
    assert fields["Company"] == NOT_PROVIDED
    assert fields["Salesbot_Hot_Probability__c"] == 0.8731
    assert "Salesbot_Id__c" not in fields  # the external id is in the URL, never the body


def test_an_open_opportunity_closes_in_30_days_a_won_one_today() -> None:
    created = opportunity_fields(record("qualified"), today=TODAY, creating=True, contact_id="003X")
    assert (created["CloseDate"], created["ContactId"], created["Name"]) == (
        "2027-01-06",
        "003X",
        "Foxco",
    )
    updated = opportunity_fields(
        record("quote_sent", amount_cents=189050, minor_units=2), today=TODAY, creating=False
    )
    # What a rep may have edited (name, close date) and what is create-only stay untouched.
    assert not {"Name", "CloseDate", "ContactId"} & set(updated)
    assert updated["Amount"] == 1890.5
    won = opportunity_fields(record("won"), today=TODAY, creating=False)
    assert (won["StageName"], won["CloseDate"]) == ("Closed Won", "2026-12-07")


def test_a_long_transcript_is_cut_to_the_description_field() -> None:
    lines = tuple(f"prospect: line {i} " + "x" * 100 for i in range(400))
    fields = task_fields(record(artifact="note", lines=lines), who_id="00QX", what_id=None)
    assert len(fields["Description"]) == 32000
    assert fields["Description"].startswith("prospect: line 0 ")
    assert (fields["WhoId"], fields["Status"]) == ("00QX", "Completed")
    assert "WhatId" not in fields
    assert fields["Subject"] == "salesbot transcript (deal qualified)"


def test_an_address_too_long_for_the_email_field_is_left_out_not_cut() -> None:
    long = record().model_copy(
        update={
            "contact": CrmContact(external_id="k", email="x" * 75 + "@example.com", name="Dana Fox")
        }
    )
    assert "Email" not in lead_fields(long)
    assert "Email" not in contact_fields(long)
    assert lead_fields(record())["Email"] == "dana@example.com"
