import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import QuoteError
from domain.money import (
    MAX_AMOUNT_MINOR,
    format_amount,
    format_percent,
    parse_amount,
    parse_fraction,
    round_half_up,
)


@pytest.mark.parametrize(
    ("text", "minor_units", "expected"),
    [
        ("199", 2, 19900),
        ("199.00", 2, 19900),
        ("199.5", 2, 19950),
        ("1,990.50", 2, 199050),
        (" 1,234,567.89 ", 2, 123456789),
        ("199.000", 2, 19900),
        ("0.01", 2, 1),
        ("1500", 0, 1500),
        ("1.234", 3, 1234),
    ],
)
def test_amounts_in_major_units_become_exact_minor_units(text, minor_units, expected):
    assert parse_amount(text, minor_units) == expected


def test_the_seed_unit_price_of_199_is_19900_cents():
    assert parse_amount("199", 2) == 19900


@pytest.mark.parametrize("text", ["199.001", "199.005", "0.001"])
def test_a_sub_cent_price_is_refused_rather_than_rounded(text):
    with pytest.raises(QuoteError, match="more precision than the currency allows"):
        parse_amount(text, 2)


def test_a_fractional_yen_is_refused():
    with pytest.raises(QuoteError, match="more precision"):
        parse_amount("1500.5", 0)


def test_a_negative_amount_is_refused():
    with pytest.raises(QuoteError, match="negative"):
        parse_amount("-199", 2)


@pytest.mark.parametrize("text", ["", "abc", "1,99", "19,90.00", "1e5", "$199", "1.2.3", "12,"])
def test_text_that_is_not_an_amount_is_refused_with_an_example(text):
    with pytest.raises(QuoteError, match="is not an amount; write digits like 199"):
        parse_amount(text, 2)


def test_an_absurdly_large_amount_is_refused():
    with pytest.raises(QuoteError, match=re.escape("largest accepted amount, 10,000,000,000.00.")):
        parse_amount("10000000000.01", 2)
    assert parse_amount("10,000,000,000", 2) == MAX_AMOUNT_MINOR


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10%", Decimal("0.1")),
        ("0.1", Decimal("0.1")),
        ("-10%", Decimal("0.1")),
        ("+10%", Decimal("0.1")),
        ("12.5%", Decimal("0.125")),
        ("8.875%", Decimal("0.08875")),
        ("0%", Decimal(0)),
        ("100%", Decimal(1)),
        ("1", Decimal(1)),
        (".25", Decimal("0.25")),
    ],
)
def test_percentages_and_fractions_become_the_same_fraction(text, expected):
    assert parse_fraction(text) == expected


def test_equal_fractions_are_written_the_same_way():
    assert str(parse_fraction("10%")) == str(parse_fraction("0.10")) == "0.1"


def test_a_bare_number_above_one_is_refused_as_ambiguous():
    with pytest.raises(QuoteError, match="ambiguous; write a percentage like 10%"):
        parse_fraction("10")


@pytest.mark.parametrize("text", ["", "abc", "%", "ten%", "10%%", "1e-1", "NaN"])
def test_text_that_is_not_a_percentage_is_refused(text):
    with pytest.raises(QuoteError, match="is not a percentage"):
        parse_fraction(text)


def test_a_percentage_finer_than_a_ten_thousandth_of_a_percent_is_refused():
    assert parse_fraction("12.3456%") == Decimal("0.123456")
    with pytest.raises(QuoteError, match="too precise"):
        parse_fraction("12.34567%")


@pytest.mark.parametrize(
    ("minor", "currency", "minor_units", "expected"),
    [
        (179100, "USD", 2, "1,791.00 USD"),
        (5, "USD", 2, "0.05 USD"),
        (0, "USD", 2, "0.00 USD"),
        (150000, "JPY", 0, "150,000 JPY"),
        (1234, "BHD", 3, "1.234 BHD"),
        (10**18, "USD", 2, "10,000,000,000,000,000.00 USD"),
    ],
)
def test_amounts_are_shown_with_grouping_decimals_and_currency(
    minor, currency, minor_units, expected
):
    assert format_amount(minor, currency, minor_units) == expected


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (Decimal("0.1"), "10%"),
        (Decimal("0.10"), "10%"),
        (Decimal("0.125"), "12.5%"),
        (Decimal("0.08875"), "8.875%"),
        (Decimal(0), "0%"),
        (Decimal("0.30"), "30%"),
        (Decimal(1), "100%"),
    ],
)
def test_percentages_are_shown_without_trailing_zeros(fraction, expected):
    assert format_percent(fraction) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("100.5"), 101),
        (Decimal("0.5"), 1),
        (Decimal("2.5"), 3),
        (Decimal("2.4999"), 2),
        (Decimal("2.5001"), 3),
        (Decimal("7"), 7),
        (Decimal("-2.5"), -3),
    ],
)
def test_halves_round_up_not_to_even(value, expected):
    assert round_half_up(value) == expected


@settings(deadline=None)
@given(minor=st.integers(0, MAX_AMOUNT_MINOR), minor_units=st.integers(0, 4))
def test_a_shown_amount_parses_back_to_the_same_minor_units(minor, minor_units):
    shown = format_amount(minor, "USD", minor_units).removesuffix(" USD")
    assert parse_amount(shown, minor_units) == minor


@settings(deadline=None)
@given(fraction=st.decimals(min_value=0, max_value=1, places=6))
def test_a_shown_percentage_parses_back_to_the_same_fraction(fraction):
    assert parse_fraction(format_percent(fraction)) == fraction
