import math
import re
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.policy_loader import load_document
from domain.errors import QuoteError
from domain.quotes import (
    MAX_QTY,
    CatalogConfig,
    Quote,
    QuoteRequest,
    Sku,
    approve_quote,
    compute_quote,
)

NOW = 1_700_000_000_000  # 2023-11-14T22:13:20Z
DAY = 86_400_000


def make_catalog(**overrides: Any) -> CatalogConfig:
    fields: dict[str, Any] = {
        "currency": "USD",
        "skus": (
            Sku(code="STARTER", name="Starter seat", unit_cents=4900),
            Sku(code="PRO", name="Pro seat (annual, per user)", unit_cents=19900),
        ),
        "max_discount": Decimal("0.30"),
        "rep_discount_cap": Decimal("0.15"),
    }
    return CatalogConfig.model_validate(fields | overrides)


CATALOG = make_catalog()


def quote(
    catalog: CatalogConfig = CATALOG, now_ms: int = NOW, context_key: str = "", **request: Any
) -> Quote:
    return compute_quote(QuoteRequest(**request), catalog, now_ms=now_ms, context_key=context_key)


def half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


# --- the seed example and the proof -------------------------------------------------------


def test_the_seed_quote_of_ten_pro_seats_at_ten_percent_totals_1791_dollars():
    q = quote(qty=10, sku="PRO", discount=Decimal("0.1"))
    assert (q.unit_cents, q.subtotal_cents, q.discount_cents) == (19900, 199000, 19900)
    assert (q.tax_cents, q.total_cents) == (0, 179100)
    assert q.figures()["total"] == "1,791.00 USD"


def test_a_custom_unit_price_gives_the_same_seed_total():
    q = quote(qty=10, unit_cents=19900, discount=Decimal("0.1"))
    assert q.total_cents == 179100
    assert q.sku is None
    assert q.description == "Custom item"


def test_the_proof_shows_each_step_with_the_actual_figures():
    q = quote(qty=10, sku="PRO", discount=Decimal("0.1"), tax_rate=Decimal("0.08"))
    assert q.proof[1:6] == (
        "subtotal = 10 × 199.00 = 1,990.00 USD",
        "discount = 1,990.00 × 10% = 199.00 USD (ROUND_HALF_UP to the cent)",
        "taxable = 1,990.00 − 199.00 = 1,791.00 USD",
        "tax = 1,791.00 × 8% = 143.28 USD (ROUND_HALF_UP to the cent) [requested rate]",
        "total = 1,791.00 + 143.28 = 1,934.28 USD",
    )
    assert "PRO" in q.proof[0]
    assert "199.00 USD" in q.proof[0]
    assert q.proof[-1] == (
        "issued 2023-11-14T22:13:20Z, valid 30 days, expires 2023-12-14T22:13:20Z"
    )


def test_the_proof_shows_the_unrounded_value_when_rounding_changed_it():
    q = quote(qty=1, unit_cents=119760, tax_rate=Decimal("0.08875"))
    assert q.tax_cents == 10629
    assert (
        "tax = 1,197.60 × 8.875% = 106.287 → 106.29 USD (ROUND_HALF_UP to the cent)" in q.proof[4]
    )


def test_a_yen_catalog_quotes_whole_yen():
    yen = make_catalog(
        currency="JPY", minor_units=0, skus=(Sku(code="PRO", name="Pro", unit_cents=1999),)
    )
    q = quote(yen, qty=3, sku="pro", discount=Decimal("0.1"))
    assert (q.subtotal_cents, q.discount_cents, q.total_cents) == (5997, 600, 5397)
    assert q.proof[2] == "discount = 5,997 × 10% = 599.7 → 600 JPY (ROUND_HALF_UP to 1 JPY)"
    assert q.figures()["total"] == "5,397 JPY"


# --- rounding at exact halves -------------------------------------------------------------


def test_a_discount_of_exactly_half_a_cent_rounds_up():
    # 10.05 × 10% = 1.005: banker's rounding would give 1.00, half-up gives 1.01.
    q = quote(qty=1, unit_cents=1005, discount=Decimal("0.1"))
    assert q.discount_cents == 101
    assert q.total_cents == 904
    assert "1.005 → 1.01 USD" in q.proof[2]


def test_a_tax_of_exactly_half_a_cent_rounds_up():
    # 10.50 × 5% = 0.525 → 0.53; 10.70 × 5% = 0.535 → 0.54 (half-even would differ on one).
    assert quote(qty=1, unit_cents=1050, tax_rate=Decimal("0.05")).tax_cents == 53
    assert quote(qty=1, unit_cents=1070, tax_rate=Decimal("0.05")).tax_cents == 54


def test_tax_is_charged_on_the_discounted_amount():
    q = quote(qty=1, unit_cents=10000, discount=Decimal("0.1"), tax_rate=Decimal("0.1"))
    assert (q.discount_cents, q.tax_cents, q.total_cents) == (1000, 900, 9900)


def test_without_a_requested_tax_rate_the_catalog_default_applies():
    taxed = make_catalog(default_tax_rate=Decimal("0.2"))
    assert quote(taxed, qty=1, sku="PRO").tax_cents == 3980
    assert quote(taxed, qty=1, sku="PRO", tax_rate=Decimal(0)).tax_cents == 0
    assert "[catalog default rate]" in quote(taxed, qty=1, sku="PRO").proof[4]


# --- discount caps ------------------------------------------------------------------------


def test_a_discount_exactly_at_the_rep_cap_needs_no_approval():
    assert quote(qty=1, sku="PRO", discount=Decimal("0.15")).needs_approval is False


def test_a_discount_just_above_the_rep_cap_needs_approval_and_is_not_clamped():
    q = quote(qty=1, sku="PRO", discount=Decimal("0.1501"))
    assert q.needs_approval is True
    assert q.discount == Decimal("0.1501")
    assert q.discount_cents == 2987  # 199.00 × 15.01% = 29.8699
    assert "above the rep cap of 15%" in q.proof[6]


def test_a_discount_exactly_at_the_maximum_is_allowed_with_approval():
    q = quote(qty=1, sku="PRO", discount=Decimal("0.30"))
    assert q.needs_approval is True
    assert q.total_cents == 13930


def test_a_discount_above_the_maximum_is_refused_naming_the_maximum():
    with pytest.raises(QuoteError, match=r"35% is above the maximum of 30%\."):
        quote(qty=1, sku="PRO", discount=Decimal("0.35"))
    with pytest.raises(QuoteError, match="maximum of 30%"):
        quote(qty=1, sku="PRO", discount=Decimal("0.3001"))


# --- refused requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"qty": 0, "sku": "PRO"}, "quantity must be a positive whole number, not 0"),
        ({"qty": -3, "sku": "PRO"}, "quantity must be a positive whole number, not -3"),
        ({"qty": MAX_QTY + 1, "sku": "PRO"}, "above the largest accepted, 1,000,000"),
        ({"qty": 1, "sku": "PRO", "discount": Decimal("-0.1")}, "discount cannot be negative"),
        ({"qty": 1, "sku": "GOLD"}, "Unknown SKU “GOLD”. Known codes: STARTER, PRO."),
        ({"qty": 1}, "Give either a SKU or a unit price."),
        ({"qty": 1, "sku": "PRO", "unit_cents": 100}, "not both"),
        ({"qty": 1, "unit_cents": 0}, "unit price must be positive"),
        ({"qty": 1, "unit_cents": 10**12 + 1}, "above the largest accepted amount"),
        ({"qty": 1, "sku": "PRO", "tax_rate": Decimal("1.5")}, "between 0% and 100%"),
        ({"qty": 1, "sku": "PRO", "tax_rate": Decimal("-0.1")}, "between 0% and 100%"),
        ({"qty": 1, "sku": "PRO", "discount": Decimal("0.1000001")}, "too precise"),
    ],
)
def test_requests_the_rules_refuse_get_a_one_line_reason(request_fields, message):
    with pytest.raises(QuoteError, match=re.escape(message)) as raised:
        quote(**request_fields)
    assert "\n" not in str(raised.value)


def test_the_largest_accepted_quote_still_displays_in_full():
    q = quote(qty=MAX_QTY, unit_cents=10**12)
    assert q.figures()["total"] == "10,000,000,000,000,000.00 USD"


# --- ids and expiry -----------------------------------------------------------------------


def test_asking_for_the_same_quote_again_gives_the_same_id():
    first = quote(qty=10, sku="PRO", discount=Decimal("0.1"), context_key="conv-1")
    again = quote(qty=10, sku="pro", discount=Decimal("0.10"), context_key="conv-1")
    assert first.quote_id == again.quote_id
    assert first == again


def test_the_same_request_in_another_conversation_gets_another_id():
    a = quote(qty=10, sku="PRO", context_key="conv-1")
    b = quote(qty=10, sku="PRO", context_key="conv-2")
    assert a.quote_id != b.quote_id


def test_a_quote_expires_after_the_catalogs_validity_days():
    q = quote(make_catalog(validity_days=14), qty=1, sku="PRO")
    assert q.expires_at_ms == NOW + 14 * DAY
    assert q.figures()["expires"] == "2023-11-28"


def test_figures_are_ready_to_show():
    figures = quote(qty=1000, sku="PRO", discount=Decimal("0.125")).figures()
    assert figures == figures | {
        "qty": "1,000",
        "sku": "PRO",
        "unit_price": "199.00 USD",
        "subtotal": "199,000.00 USD",
        "discount": "24,875.00 USD",
        "discount_percent": "12.5%",
        "tax": "0.00 USD",
        "total": "174,125.00 USD",
        "currency": "USD",
        "expires": "2023-12-14",
    }
    assert figures["quote_id"].startswith("Q-")


def test_a_stored_quote_reloads_unchanged():
    q = quote(qty=7, sku="PRO", discount=Decimal("0.125"), tax_rate=Decimal("0.08875"))
    assert Quote.model_validate_json(q.model_dump_json()) == q


def test_a_stored_quote_whose_total_was_edited_fails_to_load():
    stored = quote(qty=10, sku="PRO").model_dump()
    with pytest.raises(ValidationError, match="do not match the arithmetic"):
        Quote.model_validate(stored | {"total_cents": 100})


# --- approval -----------------------------------------------------------------------------


def test_approving_reissues_the_quote_as_a_new_version():
    original = quote(qty=10, sku="PRO", discount=Decimal("0.2"))
    later = NOW + 3_600_000
    approved = approve_quote(original, approver="U-MANAGER", now_ms=later)
    assert approved.version == 2
    assert approved.needs_approval is False
    assert approved.approved_by == "U-MANAGER"
    assert approved.quote_id != original.quote_id
    assert approved.total_cents == original.total_cents == 159200
    assert (approved.issued_at_ms, approved.expires_at_ms) == (later, later + 30 * DAY)
    assert approved.proof[:-1] == original.proof
    assert approved.proof[-1].startswith(
        f"approved by U-MANAGER at 2023-11-14T23:13:20Z: version 2 of {original.quote_id}"
    )


def test_approving_the_same_quote_twice_gives_the_same_approved_id():
    original = quote(qty=10, sku="PRO", discount=Decimal("0.2"))
    once = approve_quote(original, approver="U1", now_ms=NOW + 1)
    twice = approve_quote(original, approver="U1", now_ms=NOW + 2)
    assert once.quote_id == twice.quote_id


def test_a_quote_within_the_rep_cap_cannot_be_approved():
    with pytest.raises(QuoteError, match="does not need approval"):
        approve_quote(quote(qty=1, sku="PRO"), approver="U1", now_ms=NOW + 1)


def test_an_expired_quote_cannot_be_approved():
    original = quote(qty=1, sku="PRO", discount=Decimal("0.2"))
    with pytest.raises(QuoteError, match="expired on 2023-12-14"):
        approve_quote(original, approver="U1", now_ms=original.expires_at_ms)


def test_an_approval_needs_an_approver():
    original = quote(qty=1, sku="PRO", discount=Decimal("0.2"))
    with pytest.raises(QuoteError, match="approver"):
        approve_quote(original, approver="  ", now_ms=NOW + 1)


# --- the catalog --------------------------------------------------------------------------


def test_the_shipped_catalog_loads_from_the_default_policy():
    data = load_document("default")
    catalog = CatalogConfig(**data["catalog"])
    assert catalog.sku("pro").unit_cents == 19900
    assert catalog.rep_discount_cap < catalog.max_discount


def test_sku_lookup_ignores_case():
    assert CATALOG.sku(" pro ").code == "PRO"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rep_discount_cap": Decimal("0.4")}, "rep_discount_cap <= max_discount"),
        ({"max_discount": Decimal("1.5")}, "max_discount <= 1"),
        ({"rep_discount_cap": Decimal("-0.1")}, "0 <= rep_discount_cap"),
        ({"currency": "usd"}, "currency"),
        ({"default_tax_rate": Decimal(2)}, "default_tax_rate"),
        (
            {
                "skus": (
                    Sku(code="PRO", name="a", unit_cents=1),
                    Sku(code="pro", name="b", unit_cents=2),
                )
            },
            "unique",
        ),
    ],
)
def test_an_inconsistent_catalog_is_rejected(overrides, message):
    with pytest.raises(ValidationError, match=message):
        make_catalog(**overrides)


@pytest.mark.parametrize(
    "fields",
    [
        {"code": "X", "name": "Ambiguous", "unit_cents": 100},
        {"code": "10PACK", "name": "Starts with a digit", "unit_cents": 100},
        {"code": "FREE", "name": "Free", "unit_cents": 0},
    ],
)
def test_a_sku_the_grammar_or_arithmetic_could_not_handle_is_rejected(fields):
    with pytest.raises(ValidationError):
        Sku(**fields)


# --- properties ---------------------------------------------------------------------------

quantities = st.integers(1, MAX_QTY)
unit_prices = st.integers(1, 10**8)
discounts = st.decimals(min_value=0, max_value=Decimal("0.30"), places=4)
tax_rates = st.decimals(min_value=0, max_value=Decimal("0.3"), places=5)


@settings(deadline=None)
@given(qty=quantities, unit=unit_prices, discount=discounts, tax=tax_rates)
def test_every_quote_adds_up_exactly(qty, unit, discount, tax):
    q = quote(qty=qty, unit_cents=unit, discount=discount, tax_rate=tax)
    assert q.subtotal_cents == qty * unit
    assert 0 <= q.discount_cents <= q.subtotal_cents
    assert q.total_cents == q.subtotal_cents - q.discount_cents + q.tax_cents


@settings(deadline=None)
@given(qty=quantities, unit=unit_prices, discount=discounts, tax=tax_rates)
def test_every_quote_matches_an_independent_fraction_computation(qty, unit, discount, tax):
    q = quote(qty=qty, unit_cents=unit, discount=discount, tax_rate=tax)
    subtotal = qty * unit
    discount_cents = half_up(Fraction(subtotal) * Fraction(discount))
    tax_cents = half_up(Fraction(subtotal - discount_cents) * Fraction(tax))
    assert (q.discount_cents, q.tax_cents, q.total_cents) == (
        discount_cents,
        tax_cents,
        subtotal - discount_cents + tax_cents,
    )


@settings(deadline=None)
@given(
    qty=quantities,
    unit=unit_prices,
    discount=discounts,
    now=st.integers(0, 2**42),
    later=st.integers(1, 2**40),
)
def test_the_quote_id_depends_on_the_inputs_and_the_issue_time(qty, unit, discount, now, later):
    def quote_id(at: int) -> str:
        return quote(now_ms=at, qty=qty, unit_cents=unit, discount=discount).quote_id

    assert quote_id(now) == quote_id(now)
    assert quote_id(now) != quote_id(now + later)
