"""The `/quote` argument grammar: what a rep types after the command, as a QuoteRequest.

Accepted forms (words are case-insensitive, keywords may appear anywhere):

    10 pro                10 pro 10%            10 pro -10%
    10 x 199              10 x 199.00 -10%      10x199
    qty=10 sku=PRO discount=10%                 qty=10 unit=199 tax=8%
    10 pro tax=8%

The parser only decides *what was asked*; whether it may be quoted (quantity limits,
discount caps) is `compute_quote`'s decision. Structural mistakes raise CommandError with
the usage line; values that parse but are wrong (`199.001`, an unknown SKU, `10` as a
percentage) raise QuoteError from `domain.money`/the catalog with a message about the value.
"""

import re
from decimal import Decimal

from domain.errors import CommandError
from domain.money import parse_amount, parse_fraction
from domain.quotes import CatalogConfig, QuoteRequest

QUOTE_USAGE = (
    "quote <qty> <sku> [discount%]  |  quote <qty> x <unit price> [-discount%]  |  "
    "quote qty=<n> sku=<code>|unit=<price> [discount=<pct>]  (tax=<pct> may follow any form)"
)

_MAX_TEXT = 200
_KEYWORDS = {
    "qty": "qty",
    "quantity": "qty",
    "sku": "sku",
    "unit": "unit",
    "price": "unit",
    "discount": "discount",
    "tax": "tax",
}
_TIMES = {"x", "×"}
# "10x199" / "10×199": a token that starts with a digit is never a SKU (codes start with a
# letter), so splitting it at the "x" cannot break a SKU code such as "A10X2".
_GLUED_TIMES = re.compile(r"([\d,]+)([x×])(\d\S*)", re.IGNORECASE)
_QTY = re.compile(r"\d{1,3}(?:,\d{3})+|[+-]?\d+")


def parse_quote_args(text: str, catalog: CatalogConfig) -> QuoteRequest:
    """Parse the text after `quote` into a request, resolving the SKU code via `catalog`."""
    if not text.strip():
        raise _usage_error("Say what to quote.")
    if len(text) > _MAX_TEXT:
        raise _usage_error(f"That is too long for a quote (over {_MAX_TEXT} characters).")
    keywords: dict[str, str] = {}
    positional: list[str] = []
    for token in _tokens(text):
        key, sep, value = token.partition("=")
        if not sep:
            positional.append(token)
            continue
        name = _KEYWORDS.get(key.lower())
        if name is None:
            raise _usage_error(f"Unknown option “{_shorten(key)}=”.")
        if name in keywords:
            raise _usage_error(f"“{name}” is given twice.")
        if not value:
            raise _usage_error(f"“{key}=” needs a value.")
        keywords[name] = value
    fields = _positional_fields(positional)
    for name, value in fields.items():
        if name in keywords:
            raise _usage_error(f"“{name}” is given twice.")
        keywords[name] = value
    return _request(keywords, catalog)


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    for token in text.split():
        glued = _GLUED_TIMES.fullmatch(token)
        tokens.extend(glued.groups() if glued else (token,))
    return tokens


def _positional_fields(tokens: list[str]) -> dict[str, str]:
    """`<qty> <sku> [disc]` or `<qty> x <price> [disc]` (or nothing, when keywords say it all)."""
    if not tokens:
        return {}
    fields = {"qty": tokens[0]}
    rest = tokens[1:]
    if rest and rest[0].lower() in _TIMES:
        if len(rest) < 2:
            raise _usage_error("Give the unit price after “x”.")
        fields["unit"] = rest[1]
        rest = rest[2:]
    elif rest and not _looks_like_discount(rest[0]):
        if _looks_like_number(rest[0]):
            raise _usage_error(
                f"“{_shorten(rest[0])}” looks like a price; write “{tokens[0]} x {rest[0]}”."
            )
        fields["sku"] = rest[0]
        rest = rest[1:]
    if rest and (_looks_like_discount(rest[0]) or _looks_like_number(rest[0])):
        fields["discount"] = rest[0]
        rest = rest[1:]
    if rest:
        raise _usage_error(f"I don't understand “{_shorten(' '.join(rest))}”.")
    return fields


def _request(fields: dict[str, str], catalog: CatalogConfig) -> QuoteRequest:
    if "qty" not in fields:
        raise _usage_error("Give a quantity.")
    qty_text = fields["qty"]
    if not _QTY.fullmatch(qty_text):
        raise _usage_error(f"The quantity “{_shorten(qty_text)}” is not a whole number.")
    if ("sku" in fields) == ("unit" in fields):
        which = "not both" if "sku" in fields else "one is missing"
        raise _usage_error(f"Give either a SKU or a unit price ({which}).")
    discount = fields.get("discount")
    tax = fields.get("tax")
    return QuoteRequest(
        qty=int(qty_text.replace(",", "")),
        sku=catalog.sku(fields["sku"]).code if "sku" in fields else None,
        unit_cents=parse_amount(fields["unit"], catalog.minor_units) if "unit" in fields else None,
        discount=parse_fraction(discount) if discount is not None else Decimal(0),
        tax_rate=parse_fraction(tax) if tax is not None else None,
    )


def _looks_like_discount(token: str) -> bool:
    # Starts with a sign or ends with "%", or is a plain fraction such as 0.1.
    return token.endswith("%") or token[:1] in "+-" or token.startswith(("0.", "."))


def _looks_like_number(token: str) -> bool:
    return bool(re.fullmatch(r"[\d,]+(?:\.\d*)?", token))


def _usage_error(reason: str) -> CommandError:
    return CommandError(f"{reason} Usage: {QUOTE_USAGE}")


def _shorten(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "…"
