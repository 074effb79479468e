"""Money as integers of minor units, fractions as `Decimal`, and their text forms.

Why integers: a quote is a claim a customer can hold us to, so every amount is an exact
count of the currency's minor unit (cents for USD, yen for JPY). Fractions (discounts, tax
rates) are `Decimal`s with at most `MAX_FRACTION_PLACES` places, so a product of an amount
and a fraction is exact; the only inexact step is the explicit `round_half_up` back to
whole minor units, and that step is named in every quote's proof.

Text is parsed strictly: an amount with more precision than the currency has (`199.001`
USD) is refused instead of rounded, because silently changing a price a rep typed is
exactly the kind of covert arithmetic a quote must not contain.
"""

import re
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

from domain.errors import QuoteError

MAX_AMOUNT_MINOR = 10**12
"""Largest amount a person may type or a catalog may list, in minor units (10 billion USD).

Far above any real price, low enough that products with `MAX_QTY` stay readable."""

MAX_FRACTION_PLACES = 6
"""Decimal places a discount or tax fraction may have (0.0001 of a percent)."""

_MAX_TEXT = 40
"""Longer number texts are refused before parsing, so junk never reaches `Decimal`."""

# 60 significant digits hold any product of an amount (<= 19 digits) and a fraction
# (<= 7 digits) exactly; trapping Inexact makes "exact" a checked claim, not a hope.
_EXACT = Context(prec=60, traps=[InvalidOperation, Inexact, Overflow, DivisionByZero])
_ROUNDING = Context(prec=60, rounding=ROUND_HALF_UP, traps=[InvalidOperation])

_AMOUNT = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_FRACTION = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)%?")


def exact_product(minor: int, fraction: Decimal) -> Decimal:
    """`minor × fraction` with no rounding at all (raises if that were ever inexact)."""
    return _EXACT.multiply(Decimal(minor), fraction)


def round_half_up(value: Decimal) -> int:
    """Round to a whole number of minor units, halves away from zero (2.5 → 3, −2.5 → −3).

    ROUND_HALF_UP is the rule people learn at school and the one a reader recomputing a
    quote by hand will apply; banker's rounding (Python's default) would surprise them.
    """
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP, context=_ROUNDING))


def parse_amount(text: str, minor_units: int) -> int:
    """Parse a non-negative amount in major units ("1,990.50") into minor units (199050).

    Thousands separators must be well placed; more decimal places than the currency has are
    accepted only when the extra digits are zeros ("199.000" is 199.00, "199.001" is refused).
    """
    cleaned = text.strip()
    if cleaned.startswith("-"):
        raise QuoteError(f"The amount {cleaned} is negative; amounts cannot be negative.")
    if len(cleaned) > _MAX_TEXT or not _AMOUNT.fullmatch(cleaned):
        raise QuoteError(
            f"“{_shorten(cleaned)}” is not an amount; write digits like 199, 199.00 or 1,990.50."
        )
    major = Decimal(cleaned.replace(",", ""))
    minor = major.scaleb(minor_units, context=_EXACT)
    if minor != minor.to_integral_value(context=_EXACT):
        unit = format_amount(1, "", minor_units).strip()
        raise QuoteError(
            f"The amount {cleaned} has more precision than the currency allows ({unit}); "
            "it is refused rather than rounded."
        )
    result = int(minor)
    if result > MAX_AMOUNT_MINOR:
        limit = format_amount(MAX_AMOUNT_MINOR, "", minor_units).strip()
        raise QuoteError(f"The amount {cleaned} is above the largest accepted amount, {limit}.")
    return result


def parse_fraction(text: str) -> Decimal:
    """Parse "10%", "12.5%", "0.1" or "-10%" into a fraction (0.1, 0.125, 0.1, 0.1).

    The sign is ignored because a discount is conventionally written "-10%". A bare number
    above 1 is refused: "10" could mean 10% or 1000%, and guessing would put a wrong number
    on a quote.
    """
    cleaned = text.strip().replace(" ", "")
    if len(cleaned) > _MAX_TEXT or not _FRACTION.fullmatch(cleaned):
        raise QuoteError(
            f"“{_shorten(cleaned)}” is not a percentage; write it like 10%, 12.5% or 0.1."
        )
    unsigned = cleaned.lstrip("+-")
    if unsigned.endswith("%"):
        fraction = Decimal(unsigned[:-1]).scaleb(-2, context=_EXACT)
    else:
        fraction = Decimal(unsigned)
        if fraction > 1:
            raise QuoteError(
                f"“{cleaned}” is ambiguous; write a percentage like {unsigned}% "
                "or a fraction between 0 and 1."
            )
    fraction = canonical_fraction(fraction)
    check_fraction_places(fraction, cleaned)
    return fraction


def canonical_fraction(fraction: Decimal) -> Decimal:
    """The same value with trailing zeros removed and no negative zero (0.10 → 0.1).

    Equal fractions must print, hash and serialise identically, or the same quote asked
    twice would get two ids.
    """
    places = fraction_places(fraction)
    return (
        abs(fraction)
        .quantize(Decimal(1).scaleb(-places), context=_EXACT)
        .copy_sign(Decimal(-1 if fraction < 0 else 1))
    )


def fraction_places(fraction: Decimal) -> int:
    """Decimal places `fraction` really has, trailing zeros not counted (0.10 has 1)."""
    _sign, digits, exponent = fraction.as_tuple()
    if not isinstance(exponent, int):
        raise QuoteError("A percentage must be a finite number.")
    if not any(digits):
        return 0
    end = len(digits)
    while exponent < 0 and end > 1 and digits[end - 1] == 0:
        end -= 1
        exponent += 1
    return max(0, -exponent)


def check_fraction_places(fraction: Decimal, shown: str | None = None) -> None:
    """Refuse fractions finer than `MAX_FRACTION_PLACES`; nobody negotiates 0.00001%."""
    if fraction_places(fraction) > MAX_FRACTION_PLACES:
        # The default context (not _EXACT) so that even an absurdly long number can be shown.
        shown = shown or f"{fraction.scaleb(2):f}%"
        raise QuoteError(
            f"The percentage {_shorten(shown)} is too precise; use at most "
            f"{MAX_FRACTION_PLACES - 2} decimal places of a percent."
        )


def format_amount(minor: int, currency: str, minor_units: int) -> str:
    """ "1,791.00 USD": grouped thousands, exactly `minor_units` decimals, currency code last."""
    major = Decimal(minor).scaleb(-minor_units, context=_EXACT)
    return f"{major:,.{minor_units}f} {currency}".rstrip()


def format_exact(value_minor: Decimal, minor_units: int) -> str:
    """An unrounded amount in major units with every digit it has, at least `minor_units`.

    Used in proofs so the reader sees the value before ROUND_HALF_UP ("248.745 → 248.75").
    """
    major = value_minor.scaleb(-minor_units, context=_EXACT).normalize(context=_EXACT)
    exponent = major.as_tuple().exponent
    places = max(minor_units, -exponent if isinstance(exponent, int) else 0)
    return f"{major:,.{places}f}"


def format_percent(fraction: Decimal) -> str:
    """Decimal("0.1") → "10%", Decimal("0.125") → "12.5%": no trailing zeros, no exponent."""
    if fraction.is_finite() and abs(fraction.adjusted()) <= _MAX_TEXT:
        percent = canonical_fraction(fraction.scaleb(2, context=_EXACT))
        return f"{percent:f}%"
    # Absurd values only reach here on their way into an error message.
    return f"{fraction.scaleb(2):E}%"


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"
