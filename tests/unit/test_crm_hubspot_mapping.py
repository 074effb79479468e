"""What HubSpot receives for a CRM record, without a server: amounts exact to the cent in
any currency, names split as a rep would type them, notes whose user text stays text, and
nothing written that salesbot does not know (a rep's own edits survive a stage change)."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from adapters.crm.hubspot import DEFAULT_API_URL, HubSpotApis, HubSpotSender, make_client
from adapters.crm.hubspot_mapping import (
    ADAPTER_TAG,
    CUSTOM_PROPERTIES,
    amount_text,
    contact_upsert,
    deal_properties,
    line_item_properties,
    note_body,
    split_name,
)
from domain.crm import CrmContact, CrmDeal, CrmQuote, CrmRecord


@pytest.mark.parametrize(
    ("minor", "units", "text"),
    [
        (189050, 2, "1890.50"),
        (5, 2, "0.05"),
        (0, 2, "0.00"),
        (-150, 2, "-1.50"),
        (123456, 0, "123456"),
        (1234567, 3, "1234.567"),
        (99_999_999_999_999_999, 2, "999999999999999.99"),
    ],
)
def test_amounts_are_exact_decimal_strings_in_the_major_unit(
    minor: int, units: int, text: str
) -> None:
    assert amount_text(minor, units) == text
    assert Decimal(text).scaleb(units) == minor


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("Dana Fox", ("Dana", "Fox")),
        ("Dana", ("Dana", None)),
        ("  María José  de la Cruz ", ("María", "José de la Cruz")),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_a_name_is_split_into_first_and_last_as_typed(
    name: str | None, split: tuple[str | None, str | None]
) -> None:
    assert split_name(name) == split


def deal(**changes: object) -> CrmDeal:
    values: dict[str, object] = {
        "external_id": "salesbot:deal:c-1",
        "stage": "qualified",
        "crm_stage": "qualifiedtobuy",
        "pipeline": "default",
    }
    return CrmDeal.model_validate(values | changes)


def record(crm_deal: CrmDeal, contact: CrmContact | None = None) -> CrmRecord:
    return CrmRecord(
        artifact="deal",
        external_id=crm_deal.external_id,
        conversation_id="c-1",
        event_seq=4,
        deal=crm_deal,
        contact=contact,
    )


def test_a_contact_is_keyed_by_email_and_without_one_by_salesbots_id() -> None:
    with_email = CrmContact(
        external_id="salesbot:contact:c-1", email="dana@example.com", name="Dana Fox"
    )
    assert contact_upsert(with_email) == (
        "email",
        "dana@example.com",
        {
            "salesbot_adapter": ADAPTER_TAG,
            "firstname": "Dana",
            "lastname": "Fox",
            "email": "dana@example.com",
        },
    )
    anonymous = CrmContact(external_id="salesbot:contact:c-1", company="Foxco")
    assert contact_upsert(anonymous) == (
        "salesbot_id",
        "salesbot:contact:c-1",
        {
            "salesbot_adapter": ADAPTER_TAG,
            "company": "Foxco",
            "salesbot_id": "salesbot:contact:c-1",
        },
    )


def test_a_deal_carries_only_what_salesbot_knows() -> None:
    fresh = deal_properties(record(deal()))
    assert fresh == {
        "salesbot_id": "salesbot:deal:c-1",
        "salesbot_adapter": ADAPTER_TAG,
        "salesbot_conversation_id": "c-1",
        "dealname": "salesbot c-1",
        "dealstage": "qualifiedtobuy",
        "pipeline": "default",
    }
    lost = deal(
        stage="lost",
        crm_stage="closedlost",
        amount_cents=123456,
        currency="JPY",
        minor_units=0,
        owner="75001",
        band="warm",
        hot_probability=Decimal("0.4125"),
        lost_reason="went with a competitor",
        source="webinar",
    )
    contact = CrmContact(external_id="salesbot:contact:c-1", company="Foxco")
    assert (
        deal_properties(record(lost, contact)).items()
        >= {
            "dealname": "Foxco",
            "dealstage": "closedlost",
            "amount": "123456",
            "deal_currency_code": "JPY",
            "hubspot_owner_id": "75001",
            "closed_lost_reason": "went with a competitor",
            "salesbot_band": "warm",
            "salesbot_hot_probability": "0.4125",
            "salesbot_source": "webinar",
        }.items()
    )
    # A lost reason is the CRM's only for a lost deal.
    assert "closed_lost_reason" not in deal_properties(
        record(deal(lost_reason="stale", stage="won", crm_stage="closedwon"))
    )
    with pytest.raises(ValueError, match="without its minor units"):
        deal_properties(record(deal(amount_cents=100, currency="USD")))


def test_a_quote_is_a_line_item_whose_figures_add_up_to_the_quote() -> None:
    quote = CrmQuote(
        quote_id="Q-0123456789",
        version=2,
        sku="PRO",
        description="Pro plan",
        qty=3,
        unit_cents=3333,
        discount=Decimal("0.075"),
        discount_cents=750,
        tax_cents=1850,
        total_cents=11099,
        currency="EUR",
        minor_units=2,
        proof=("3 × 33.33 EUR = 99.99 EUR", "7.5% off: −7.50 EUR"),
    )
    properties = line_item_properties(quote, "salesbot:quote:Q-0123456789:v2")
    assert properties == {
        "salesbot_id": "salesbot:quote:Q-0123456789:v2",
        "salesbot_adapter": ADAPTER_TAG,
        "name": "Pro plan",
        "description": "3 × 33.33 EUR = 99.99 EUR\n7.5% off: −7.50 EUR",
        "quantity": "3",
        "price": "33.33",
        "hs_discount_percentage": "7.5",
        "amount": "92.49",
        "hs_sku": "PRO",
    }


def test_a_notes_user_text_stays_text() -> None:
    body = note_body(
        ('prospect: <img src=x onerror="alert(1)"> & co', "bot: 5 > 4"),
        "salesbot:note:c-1:transcript:9",
        "salesbot transcript",
    )
    assert body == (
        "salesbot transcript<br>"
        "prospect: &lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; co<br>"
        "bot: 5 &gt; 4<br>"
        f"[{ADAPTER_TAG} salesbot:note:c-1:transcript:9]"
    )


def test_every_api_group_is_pointed_at_the_configured_host_without_retries() -> None:
    apis = HubSpotApis.of(make_client("pat-test", "http://127.0.0.1:9/"))
    groups = [
        apis.contacts,
        apis.deals,
        apis.deals_basic,
        apis.line_items,
        apis.notes_basic,
        apis.notes_batch,
        apis.associations,
        *apis.searches.values(),
        apis.properties,
        apis.groups,
        apis.pipelines,
    ]
    for api in groups:
        configuration = api.api_client.configuration
        assert configuration.host == "http://127.0.0.1:9"
        assert configuration.retries is False
    # The client logs whole response bodies (prospects' data) at DEBUG: never ours.
    assert logging.getLogger("hubspot.crm.deals.rest").getEffectiveLevel() >= logging.INFO
    assert DEFAULT_API_URL == "https://api.hubapi.com"


def test_the_sender_never_shows_its_token() -> None:
    sender = HubSpotSender("pat-na1-secret", "http://127.0.0.1:9")
    assert "secret" not in repr(sender)
    with pytest.raises(ValueError, match="access token"):
        HubSpotSender("", "http://127.0.0.1:9")


def test_every_record_salesbot_keys_on_has_a_unique_id_property() -> None:
    unique = {(p.object_type, p.name) for p in CUSTOM_PROPERTIES if p.unique}
    assert unique == {
        ("contacts", "salesbot_id"),
        ("deals", "salesbot_id"),
        ("line_items", "salesbot_id"),
    }
