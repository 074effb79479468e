import re
from decimal import Decimal

import pytest

from domain.errors import CommandError, QuoteError
from domain.quote_args import QUOTE_USAGE, parse_quote_args
from domain.quotes import CatalogConfig, QuoteRequest, Sku, compute_quote

CATALOG = CatalogConfig(
    currency="USD",
    skus=(
        Sku(code="PRO", name="Pro seat (annual, per user)", unit_cents=19900),
        Sku(code="ENTERPRISE", name="Enterprise seat", unit_cents=49900),
    ),
    max_discount=Decimal("0.30"),
    rep_discount_cap=Decimal("0.15"),
)
TEN = Decimal("0.1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10 pro 10%", QuoteRequest(qty=10, sku="PRO", discount=TEN)),
        ("10 PRO -10%", QuoteRequest(qty=10, sku="PRO", discount=TEN)),
        ("10 pro 0.1", QuoteRequest(qty=10, sku="PRO", discount=TEN)),
        ("10 pro", QuoteRequest(qty=10, sku="PRO")),
        ("qty=10 sku=PRO discount=10%", QuoteRequest(qty=10, sku="PRO", discount=TEN)),
        ("SKU=pro QTY=10", QuoteRequest(qty=10, sku="PRO")),
        ("10 x 199.00 -10%", QuoteRequest(qty=10, unit_cents=19900, discount=TEN)),
        ("10 X 199", QuoteRequest(qty=10, unit_cents=19900)),
        ("10x199", QuoteRequest(qty=10, unit_cents=19900)),
        ("10×1,990.50 10%", QuoteRequest(qty=10, unit_cents=199050, discount=TEN)),
        ("qty=10 unit=199", QuoteRequest(qty=10, unit_cents=19900)),
        ("1,000 enterprise", QuoteRequest(qty=1000, sku="ENTERPRISE")),
        ("10 pro tax=8%", QuoteRequest(qty=10, sku="PRO", tax_rate=Decimal("0.08"))),
        (
            "tax=8.875% 10 pro 12.5%",
            QuoteRequest(qty=10, sku="PRO", discount=Decimal("0.125"), tax_rate=Decimal("0.08875")),
        ),
        ("10 tax=8% x 199", QuoteRequest(qty=10, unit_cents=19900, tax_rate=Decimal("0.08"))),
        ("10 pro discount=10%", QuoteRequest(qty=10, sku="PRO", discount=TEN)),
    ],
)
def test_every_documented_form_is_understood(text, expected):
    assert parse_quote_args(text, CATALOG) == expected


def test_the_seed_quote_typed_as_a_command_totals_1791_dollars():
    request = parse_quote_args("10 x 199.00 -10%", CATALOG)
    assert compute_quote(request, CATALOG, now_ms=0).total_cents == 179100


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "Say what to quote."),
        ("   ", "Say what to quote."),
        ("10 pro 10% please", "I don't understand “please”."),
        ("10 pro 10% 5%", "I don't understand “5%”."),
        ("10 pro colour=red", "Unknown option “colour=”."),
        ("10 pro qty=5", "“qty” is given twice."),
        ("10 pro discount=5% 10%", "“discount” is given twice."),
        ("tax=8% tax=9% 10 pro", "“tax” is given twice."),
        ("10 pro discount=", "“discount=” needs a value."),
        ("10", "Give either a SKU or a unit price (one is missing)."),
        ("qty=10 sku=pro unit=199", "Give either a SKU or a unit price (not both)."),
        ("sku=pro", "Give a quantity."),
        ("ten pro", "The quantity “ten” is not a whole number."),
        ("10.5 pro", "The quantity “10.5” is not a whole number."),
        ("10 x", "Give the unit price after “x”."),
        ("10 199", "“199” looks like a price; write “10 x 199”."),
        ("10 pro " + "a" * 200, "too long"),
    ],
)
def test_a_command_that_does_not_parse_says_why_and_shows_the_usage(text, reason):
    with pytest.raises(CommandError) as raised:
        parse_quote_args(text, CATALOG)
    message = str(raised.value)
    assert reason in message
    assert message.endswith(f"Usage: {QUOTE_USAGE}")
    assert "\n" not in message


def test_the_usage_is_one_line_showing_all_three_forms():
    assert "\n" not in QUOTE_USAGE
    assert "<qty> <sku>" in QUOTE_USAGE
    assert "<qty> x <unit price>" in QUOTE_USAGE
    assert "qty=<n>" in QUOTE_USAGE


def test_an_unknown_sku_lists_the_known_codes():
    expected = "Unknown SKU “gold”. Known codes: PRO, ENTERPRISE."
    with pytest.raises(QuoteError, match=re.escape(expected)):
        parse_quote_args("10 gold", CATALOG)


def test_a_sub_cent_unit_price_is_refused():
    with pytest.raises(QuoteError, match=re.escape("199.001 has more precision")):
        parse_quote_args("10 x 199.001", CATALOG)


def test_a_bare_discount_number_is_refused_as_ambiguous():
    with pytest.raises(QuoteError, match="ambiguous; write a percentage like 10%"):
        parse_quote_args("10 pro 10", CATALOG)


def test_a_non_positive_quantity_parses_and_is_refused_by_the_rules():
    request = parse_quote_args("0 pro", CATALOG)
    with pytest.raises(QuoteError, match="positive whole number"):
        compute_quote(request, CATALOG, now_ms=0)


def test_a_glued_x_inside_a_sku_code_is_not_split():
    catalog = CATALOG.model_copy(
        update={"skus": (Sku(code="A10X2", name="Adapter", unit_cents=500),)}
    )
    assert parse_quote_args("3 a10x2", catalog) == QuoteRequest(qty=3, sku="A10X2")
