"""A quote as a Salesforce Quote, decided without a network (`[crm] quote_as = "quote"`):
the price book entry query quotes the SKU safely and names the book and currency asked for,
the line's figures are exact and its arithmetic fits the field, a discount finer than
Salesforce's Discount field is refused rather than rounded, and the policy switch leaves a
policy that does not use it exactly as it was."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from adapters.crm.salesforce_records import (
    QuoteRefusedError,
    discount_percent,
    line_description,
    pricebook_entry_query,
    quote_lines,
)
from domain.crm import CrmConfig, CrmQuote
from domain.errors import DomainError
from tests.unit.test_crm import CRM, crm_policy


def crm_quote(**changes: object) -> CrmQuote:
    fields: dict[str, object] = {
        "quote_id": "Q-0123456789",
        "version": 1,
        "sku": "PRO",
        "description": "Pro seat",
        "qty": 3,
        "unit_cents": 19999,
        "discount": Decimal("0.125"),
        "discount_cents": 7500,
        "tax_cents": 0,
        "total_cents": 52497,
        "currency": "USD",
        "minor_units": 2,
        "proof": ("…",),
    }
    return CrmQuote.model_validate(fields | changes)


def test_the_query_quotes_the_sku_and_names_the_book_and_currency() -> None:
    assert pricebook_entry_query(
        "PRO' OR Name != '", currency="EUR", price_book="01s000000000001AAA", multicurrency=True
    ) == (
        "SELECT Id, Pricebook2Id, UnitPrice FROM PricebookEntry WHERE "
        "ProductCode = 'PRO\\' OR Name != \\'' AND IsActive = true "
        "AND Pricebook2Id = '01s000000000001AAA' AND CurrencyIsoCode = 'EUR' LIMIT 2"
    )


def test_a_lines_figures_are_exact_and_its_arithmetic_fits_the_field() -> None:
    quote = crm_quote()
    (line,) = quote_lines(quote)
    assert line.number == 1
    assert discount_percent(line.discount) == 12.5
    assert line_description(quote, line) == (
        "Pro seat: 3 × 199.99 = 599.97 USD; discount 12.5% = 75.00; net 524.97 USD"
    )
    long = crm_quote(description="x" * 400)
    assert len(line_description(long, quote_lines(long)[0])) == 255


def test_a_discount_finer_than_salesforces_field_is_refused_not_rounded() -> None:
    with pytest.raises(QuoteRefusedError, match=r"12\.345% has more than 2 decimal places"):
        discount_percent(Decimal("0.12345"))


def test_the_switch_is_policy_data_and_leaves_other_policies_as_they_were(
    tmp_path: Path,
) -> None:
    before = crm_policy(tmp_path)
    assert before.crm is not None
    assert before.crm.quote_as == "line_items"
    assert "price_book" not in before.crm.model_dump()
    switched = crm_policy(
        tmp_path,
        CRM.replace(
            'pipeline = "sales"',
            'pipeline = "sales"\nquote_as = "quote"\nprice_book = "01s000000000001AAA"',
        ),
    )
    assert switched.crm is not None
    assert (switched.crm.quote_as, switched.crm.price_book) == ("quote", "01s000000000001AAA")
    assert switched.version != before.version
    with pytest.raises(DomainError, match="price_book"):
        crm_policy(tmp_path, CRM.replace('pipeline = "sales"', 'price_book = "my book"'))
    assert CrmConfig.model_validate({"stages": before.crm.stages}).quote_as == "line_items"
