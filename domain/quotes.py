"""Exact, auditable quotes: integer minor units, explicit rounding, a proof a reader can redo.

The arithmetic, in minor units (cents for USD), with the only two rounding points marked:

    subtotal_cents = qty × unit_cents                                  (exact, integers)
    discount_cents = round_half_up(subtotal_cents × discount)          (rounding point 1)
    taxable_cents  = subtotal_cents − discount_cents                   (exact)
    tax_cents      = round_half_up(taxable_cents × tax_rate)           (rounding point 2)
    total_cents    = taxable_cents + tax_cents                         (exact)

`round_half_up` rounds to the whole minor unit, halves up (0.5 cent → 1 cent). Products are
computed exactly in `Decimal` first, so each rounding happens once, where the proof says.
Tax is charged on the discounted amount, the usual rule for a trade discount.

Discount rules come from the catalog: above `max_discount` a quote is refused; above the
rep's `rep_discount_cap` (and at most the maximum) it is issued with `needs_approval=True`
rather than clamped, because a quietly lowered discount is a number the rep never agreed to.

A line is either a catalog SKU or a custom unit price, never both: letting a rep override a
SKU's price would make the discount cap meaningless (cut the price instead of discounting).

Quote ids are content hashes, so asking for the same quote twice at the same moment in the
same conversation yields the same id (retries are idempotent), and any change yields another.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Self

from pydantic import Field, model_validator

from domain.errors import QuoteError
from domain.model import Frozen, Sparse
from domain.money import (
    MAX_AMOUNT_MINOR,
    canonical_fraction,
    check_fraction_places,
    exact_product,
    format_amount,
    format_exact,
    format_percent,
    fraction_places,
    round_half_up,
)

QUOTE_SCHEMA_VERSION = 1
"""Version of a quote's JSON, in events and in `salesbot quote --json`."""

MAX_QTY = 1_000_000
"""Largest quantity on one line; bigger numbers are typos, and would overflow displays."""

_DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SKU_CODE = r"^[A-Za-z][A-Za-z0-9_-]{0,31}$"


class Sku(Frozen):
    """A catalog item; `unit_cents` is in the catalog currency's minor units (yen for JPY)."""

    code: str = Field(pattern=_SKU_CODE)
    name: str = Field(min_length=1, max_length=200)
    unit_cents: int = Field(gt=0, le=MAX_AMOUNT_MINOR)

    @model_validator(mode="after")
    def _not_a_grammar_word(self) -> Self:
        # "x" separates quantity and price in `/quote 10 x 199`; a SKU named X would be ambiguous.
        if self.code.lower() == "x":
            raise ValueError("a SKU code cannot be 'x' (it is the '10 x 199' separator)")
        return self


class CatalogConfig(Frozen):
    """What may be sold, at which prices, and the discount rules (the policy's `[catalog]`)."""

    currency: str = Field(pattern=r"^[A-Z]{3}$")
    minor_units: int = Field(default=2, ge=0, le=4)
    skus: tuple[Sku, ...]
    max_discount: Decimal
    rep_discount_cap: Decimal
    default_tax_rate: Decimal = Decimal(0)
    validity_days: int = Field(default=30, ge=1, le=3650)

    @model_validator(mode="after")
    def _rules_are_consistent(self) -> Self:
        if not Decimal(0) <= self.rep_discount_cap <= self.max_discount <= 1:
            raise ValueError(
                "discounts must satisfy 0 <= rep_discount_cap <= max_discount <= 1, got "
                f"rep_discount_cap={self.rep_discount_cap} and max_discount={self.max_discount}"
            )
        if not Decimal(0) <= self.default_tax_rate <= 1:
            raise ValueError(
                f"default_tax_rate must be between 0 and 1, got {self.default_tax_rate}"
            )
        for name in ("max_discount", "rep_discount_cap", "default_tax_rate"):
            value: Decimal = getattr(self, name)
            if fraction_places(value) > 6:
                raise ValueError(f"{name} has more than 6 decimal places: {value}")
        codes = [sku.code.upper() for sku in self.skus]
        duplicates = sorted({code for code in codes if codes.count(code) > 1})
        if duplicates:
            raise ValueError(f"SKU codes must be unique (ignoring case): {', '.join(duplicates)}")
        return self

    def sku(self, code: str) -> Sku:
        """The SKU with this code, ignoring case; reps type `pro` for `PRO`."""
        wanted = code.strip().upper()
        for sku in self.skus:
            if sku.code.upper() == wanted:
                return sku
        known = ", ".join(sku.code for sku in self.skus) or "none"
        raise QuoteError(f"Unknown SKU “{code.strip()[:40]}”. Known codes: {known}.")


class QuoteRules(Sparse):
    """How the quotes of one conversation relate to each other (the policy's `[quotes]`).

    Both switches are off in a policy without the key, because a stored policy written
    before they existed must keep deciding as it did (replay reproduces it exactly); the
    shipped default policy turns them on.

    - `supersede_open`: a new quote in a conversation supersedes the quotes still open
      there (their cards read "Superseded by Q-…" and lose their Accept button), and
      accepting a superseded or expired quote is refused with the current quote offered,
      so a deal can only close on the quote the prospect was last given;
    - `approval_keeps_id`: an approved discount makes version 2 of the same quote
      (`Q-… v2`) instead of a quote under a new id, so one deal carries one quote id;
    - `accept_on_behalf` (below; left out of the canonical JSON while unset).
    """

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("accept_on_behalf",)

    supersede_open: bool = False
    approval_keeps_id: bool = False
    accept_on_behalf: bool | None = None
    """Accepting a quote is the prospect's act. False: a rep (or manager) pressing *Accept
    quote* is refused and told so; True: it is accepted and recorded as on the prospect's
    behalf (`quote_accepted.on_behalf`, the audit and the metrics say so). Unset (a stored
    policy from before the key): a rep's click is accepted as before."""


class QuoteRequest(Frozen):
    """What someone asked for. Checked by `compute_quote`, which owns the rules and messages."""

    qty: int
    sku: str | None = None
    unit_cents: int | None = None
    discount: Decimal = Decimal(0)
    tax_rate: Decimal | None = None


class Quote(Frozen):
    """An issued quote: every input, every figure and the proof that connects them.

    Construction re-checks the arithmetic, so a stored quote that was edited by hand (or by a
    bug) fails to load instead of showing a total that does not add up.
    """

    schema_version: int = QUOTE_SCHEMA_VERSION
    quote_id: str = Field(pattern=r"^Q-[0-9a-f]{10}$")
    version: int = Field(default=1, ge=1)
    currency: str
    minor_units: int
    qty: int
    sku: str | None
    description: str
    unit_cents: int
    subtotal_cents: int
    discount: Decimal
    discount_cents: int
    tax_rate: Decimal
    tax_cents: int
    total_cents: int
    needs_approval: bool
    issued_at_ms: int
    expires_at_ms: int
    proof: tuple[str, ...]
    approved_by: str | None = None

    @model_validator(mode="after")
    def _arithmetic_adds_up(self) -> Self:
        expected = _amounts(self.qty, self.unit_cents, self.discount, self.tax_rate)
        actual = (self.subtotal_cents, self.discount_cents, self.tax_cents, self.total_cents)
        if actual != expected:
            raise ValueError(
                f"quote figures {actual} do not match the arithmetic of its inputs {expected}"
            )
        if self.expires_at_ms <= self.issued_at_ms:
            raise ValueError("a quote must expire after it is issued")
        return self

    @property
    def label(self) -> str:
        """How people name this version: `Q-…` for the first, `Q-… v2` after a revision."""
        return self.quote_id if self.version == 1 else f"{self.quote_id} v{self.version}"

    def offer_proof(self) -> tuple[str, ...]:
        """The proof as the buyer may read it: the arithmetic of the offer, without the
        internal lines (the rep cap, the maximum, who approved the discount)."""
        return tuple(line for line in self.proof if not line.startswith(_INTERNAL_PROOF_LINES))

    def figures(self) -> dict[str, str]:
        """Display strings for templates; amounts already end with the currency code."""

        def money(minor: int) -> str:
            return format_amount(minor, self.currency, self.minor_units)

        return {
            "quote_id": self.quote_id,
            "version": str(self.version),
            "qty": f"{self.qty:,}",
            "sku": self.sku or "custom",
            "description": self.description,
            "unit_price": money(self.unit_cents),
            "subtotal": money(self.subtotal_cents),
            "discount": money(self.discount_cents),
            "discount_percent": format_percent(self.discount),
            "tax": money(self.tax_cents),
            "tax_percent": format_percent(self.tax_rate),
            "total": money(self.total_cents),
            "currency": self.currency,
            "expires": _utc(self.expires_at_ms).date().isoformat(),
        }


def compute_quote(
    request: QuoteRequest, catalog: CatalogConfig, *, now_ms: int, context_key: str = ""
) -> Quote:
    """Price `request` against `catalog` at `now_ms`; raises QuoteError if the rules refuse it.

    `context_key` (e.g. the conversation id) separates identical requests made at the same
    millisecond in different places, so they do not share an id.
    """
    qty = _checked_qty(request.qty)
    sku, unit_cents = _resolve_line(request, catalog)
    discount = _checked_discount(request.discount, catalog)
    tax_source = "catalog default" if request.tax_rate is None else "requested"
    tax_rate = _checked_tax_rate(
        catalog.default_tax_rate if request.tax_rate is None else request.tax_rate
    )
    needs_approval = discount > catalog.rep_discount_cap
    expires_at_ms = now_ms + catalog.validity_days * _DAY_MS
    currency, minor_units = catalog.currency, catalog.minor_units
    subtotal, discount_cents, tax_cents, total = _amounts(qty, unit_cents, discount, tax_rate)
    quote_id = _quote_id(
        {
            "qty": qty,
            "sku": sku.code if sku else None,
            "unit_cents": unit_cents,
            "currency": currency,
            "minor_units": minor_units,
            "discount": f"{discount:f}",
            "tax_rate": f"{tax_rate:f}",
            "needs_approval": needs_approval,
            "issued_at_ms": now_ms,
            "expires_at_ms": expires_at_ms,
            "context_key": context_key,
        }
    )

    def money(minor: int) -> str:
        return format_amount(minor, currency, minor_units)

    def major(minor: int) -> str:
        return format_amount(minor, "", minor_units)

    rounding = "to the cent" if minor_units == 2 else f"to {money(1)}"
    taxable = subtotal - discount_cents
    item = (
        f"item = {sku.code} “{sku.name}” at {money(unit_cents)} per unit (catalog price)"
        if sku
        else f"item = custom line at {money(unit_cents)} per unit (price given by the rep)"
    )
    proof = (
        item,
        f"subtotal = {qty:,} × {major(unit_cents)} = {money(subtotal)}",
        _rounded_line(
            "discount", subtotal, discount, discount_cents, currency, minor_units, rounding
        ),
        f"taxable = {major(subtotal)} − {major(discount_cents)} = {money(taxable)}",
        _rounded_line("tax", taxable, tax_rate, tax_cents, currency, minor_units, rounding)
        + f" [{tax_source} rate]",
        f"total = {major(taxable)} + {major(tax_cents)} = {money(total)}",
        _approval_line(discount, catalog),
        f"issued {_iso(now_ms)}, valid {catalog.validity_days} days, expires {_iso(expires_at_ms)}",
    )
    return Quote(
        quote_id=quote_id,
        currency=currency,
        minor_units=minor_units,
        qty=qty,
        sku=sku.code if sku else None,
        description=sku.name if sku else "Custom item",
        unit_cents=unit_cents,
        subtotal_cents=subtotal,
        discount=discount,
        discount_cents=discount_cents,
        tax_rate=tax_rate,
        tax_cents=tax_cents,
        total_cents=total,
        needs_approval=needs_approval,
        issued_at_ms=now_ms,
        expires_at_ms=expires_at_ms,
        proof=proof,
    )


def approve_quote(quote: Quote, *, approver: str, now_ms: int, keep_id: bool = False) -> Quote:
    """Re-issue a quote that needs approval as version+1, approved by `approver` at `now_ms`.

    With `keep_id` (the policy's `quotes.approval_keeps_id`) the new version keeps the
    quote's id: one deal, one quote id, `Q-… v2`. Without it (policies from before) the new
    id depends only on the old id and the new version, so a double-clicked "approve"
    produces the same approved quote twice, which storage deduplicates. The validity period
    restarts: the customer gets the full period from the approval.
    """
    approver = approver.strip()
    if not approver:
        raise QuoteError("An approval needs the approver's name or id.")
    if not quote.needs_approval:
        raise QuoteError(f"Quote {quote.quote_id} does not need approval.")
    if now_ms < quote.issued_at_ms:
        raise QuoteError(f"Quote {quote.quote_id} cannot be approved before it was issued.")
    if now_ms >= quote.expires_at_ms:
        raise QuoteError(
            f"Quote {quote.quote_id} expired on {_iso(quote.expires_at_ms)}; issue a new quote."
        )
    version = quote.version + 1
    expires_at_ms = now_ms + (quote.expires_at_ms - quote.issued_at_ms)
    line = (
        f"{APPROVED_LINE}{approver} at {_iso(now_ms)}: version {version} of {quote.quote_id}, "
        f"discount {format_percent(quote.discount)} accepted, expires {_iso(expires_at_ms)}"
    )
    return Quote.model_validate(
        {
            **quote.model_dump(),
            "quote_id": (
                quote.quote_id
                if keep_id
                else _quote_id({"approved_from": quote.quote_id, "version": version})
            ),
            "version": version,
            "needs_approval": False,
            "approved_by": approver,
            "issued_at_ms": now_ms,
            "expires_at_ms": expires_at_ms,
            "proof": (*quote.proof, line),
        }
    )


def _amounts(
    qty: int, unit_cents: int, discount: Decimal, tax_rate: Decimal
) -> tuple[int, int, int, int]:
    """(subtotal, discount, tax, total) in minor units; the module docstring's formula."""
    subtotal = qty * unit_cents
    discount_cents = round_half_up(exact_product(subtotal, discount))
    taxable = subtotal - discount_cents
    tax_cents = round_half_up(exact_product(taxable, tax_rate))
    return subtotal, discount_cents, tax_cents, taxable + tax_cents


def _checked_qty(qty: int) -> int:
    if qty < 1:
        raise QuoteError(f"The quantity must be a positive whole number, not {qty}.")
    if qty > MAX_QTY:
        raise QuoteError(f"The quantity {qty:,} is above the largest accepted, {MAX_QTY:,}.")
    return qty


def _resolve_line(request: QuoteRequest, catalog: CatalogConfig) -> tuple[Sku | None, int]:
    if request.sku is not None and request.unit_cents is not None:
        raise QuoteError(
            "Give either a SKU or a unit price, not both; catalog prices cannot be overridden."
        )
    if request.sku is not None:
        sku = catalog.sku(request.sku)
        return sku, sku.unit_cents
    if request.unit_cents is None:
        raise QuoteError("Give either a SKU or a unit price.")
    unit = request.unit_cents
    if unit < 1:
        raise QuoteError("The unit price must be positive.")
    if unit > MAX_AMOUNT_MINOR:
        limit = format_amount(MAX_AMOUNT_MINOR, catalog.currency, catalog.minor_units)
        raise QuoteError(f"The unit price is above the largest accepted amount, {limit}.")
    return None, unit


def _checked_discount(discount: Decimal, catalog: CatalogConfig) -> Decimal:
    # Finite and not too precise first: only then is formatting it for a message safe.
    if not discount.is_finite():
        raise QuoteError("The discount must be a finite number.")
    check_fraction_places(discount)
    if discount < 0:
        raise QuoteError(f"The discount cannot be negative ({format_percent(discount)}).")
    if discount > catalog.max_discount:
        raise QuoteError(
            f"A discount of {format_percent(discount)} is above the maximum of "
            f"{format_percent(catalog.max_discount)}."
        )
    return canonical_fraction(discount)


def _checked_tax_rate(tax_rate: Decimal) -> Decimal:
    if not tax_rate.is_finite():
        raise QuoteError("The tax rate must be a finite number.")
    check_fraction_places(tax_rate)
    if not Decimal(0) <= tax_rate <= 1:
        raise QuoteError(
            f"The tax rate must be between 0% and 100%, not {format_percent(tax_rate)}."
        )
    return canonical_fraction(tax_rate)


def _rounded_line(
    name: str,
    base: int,
    rate: Decimal,
    result: int,
    currency: str,
    minor_units: int,
    rounding: str,
) -> str:
    """`name = base × rate = exact → rounded CUR (ROUND_HALF_UP …)`; "→" only if it rounded."""
    exact = exact_product(base, rate)
    shown = format_exact(exact, minor_units)
    rounded = format_amount(result, currency, minor_units)
    value = rounded if exact == result else f"{shown} → {rounded}"
    return (
        f"{name} = {format_amount(base, '', minor_units)} × {format_percent(rate)} = {value} "
        f"(ROUND_HALF_UP {rounding})"
    )


APPROVAL_LINE = "approval = "
APPROVED_LINE = "approved by "
_INTERNAL_PROOF_LINES = (APPROVAL_LINE, APPROVED_LINE)


def _approval_line(discount: Decimal, catalog: CatalogConfig) -> str:
    cap = format_percent(catalog.rep_discount_cap)
    maximum = format_percent(catalog.max_discount)
    if discount > catalog.rep_discount_cap:
        return (
            f"{APPROVAL_LINE}needed: discount {format_percent(discount)} is above the rep cap "
            f"of {cap} (maximum {maximum})"
        )
    return f"{APPROVAL_LINE}not needed: discount {format_percent(discount)} is within the rep cap of {cap}"


def _quote_id(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "Q-" + hashlib.sha256(canonical.encode("ascii")).hexdigest()[:10]


def _utc(ms: int) -> datetime:
    # Integer arithmetic on a timedelta: no float seconds, no clock.
    return _EPOCH + timedelta(milliseconds=ms)


def _iso(ms: int) -> str:
    return _utc(ms).strftime("%Y-%m-%dT%H:%M:%SZ")
