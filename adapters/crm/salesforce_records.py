"""A `CrmRecord` in Salesforce's words: which sObject each write lands on and its fields.

Pure translation, no I/O, so every field the sender writes can be read and tested here:

- mode "lead": the deal is a **Lead** (`Status` = the policy's `[crm.stages]` name);
- mode "contact_opportunity": the deal is a **Contact** (the person) and an **Opportunity**
  (`StageName`, `Amount`, `CloseDate`), the contact set as its primary contact when the
  opportunity is created;
- a quote and a note are each a completed **Task** on the deal's record (`WhoId` the lead or
  contact, `WhatId` the opportunity): Subject and Description with the lines.

Why a Task for the quote too, not a Note or ContentNote: neither can carry an External ID
field (classic Notes take no custom fields; a ContentNote is a ContentVersion facade that
REST cannot upsert), so neither could be written exactly once under retries. A Task upserts
by `Salesbot_Id__c` like everything else and shows on the record's activity timeline.

With `[crm] quote_as = "quote"` in mode "contact_opportunity", a quote is instead a
**Quote** on the opportunity (`quote_fields`) with one **QuoteLineItem** per line
(`quote_line_fields`), each priced by the PricebookEntry of its SKU (`pricebook_entry_query`:
the SKU is the product's `ProductCode`), each upserted by its own `Salesbot_Id__c`. Mode
"lead" keeps the Task: a Quote belongs to an Opportunity, and a Lead has none.

Every record carries `Salesbot_Id__c` (its external id, in the URL of the upsert, never in
the body: Salesforce refuses the external id field in the sObject data) and
`Salesbot_Adapter__c` (this adapter's name and version), so each write traces back to the
salesbot record and the code that wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from simple_salesforce.format import format_soql

from domain.crm import CrmQuote, CrmRecord

ADAPTER_NAME = "salesforce"
ADAPTER_VERSION = 1
"""Bumped whenever what a record holds in Salesforce changes (fields, their meaning)."""

EXTERNAL_ID_FIELD = "Salesbot_Id__c"
ADAPTER_FIELD = "Salesbot_Adapter__c"
BAND_FIELD = "Salesbot_Band__c"
HOT_PROBABILITY_FIELD = "Salesbot_Hot_Probability__c"
SOURCE_FIELD = "Salesbot_Source__c"
LOST_REASON_FIELD = "Salesbot_Lost_Reason__c"
AMOUNT_FIELD = "Salesbot_Amount__c"
"""A Lead has no amount of its own: the latest live quote's total goes here."""

Mode = Literal["lead", "contact_opportunity"]
MODES: tuple[Mode, ...] = ("lead", "contact_opportunity")

OPEN_DEAL_DAYS = 30
"""An open opportunity's CloseDate (required by Salesforce) when salesbot creates it:
the day it is written plus 30 days; a won or lost one closes on the day it is written."""

NOT_PROVIDED = "[not provided]"
"""Salesforce's own placeholder (web-to-lead) for a required name or company left blank."""

_LENGTHS = {
    "FirstName": 40,
    "LastName": 80,
    "Company": 255,
    "Email": 80,
    "Name": 120,
    "Subject": 255,
    "Description": 32000,
    LOST_REASON_FIELD: 255,
    SOURCE_FIELD: 80,
    BAND_FIELD: 20,
}
_LINE_DESCRIPTION_LENGTH = 255
"""QuoteLineItem.Description is a 255-character string (Task's and Quote's are 32000)."""

QUOTE_STATUS: dict[str, str] = {
    "issued": "Presented",
    "needs_approval": "Needs Review",
    "approval_requested": "In Review",
    "accepted": "Accepted",
    "rejected": "Rejected",
}
"""salesbot's quote status → a Quote `Status` of a new org's picklist (Draft, Needs Review,
In Review, Approved, Rejected, Presented, Accepted, Denied). An issued quote was sent to the
buyer: "Presented". Not listed (superseded, or no status known): no Status is written, so
a new Quote takes the org's default ("Draft") and an existing one keeps its own."""

DISCOUNT_PLACES = 2
"""QuoteLineItem.Discount is a percent with 2 decimal places."""
"""Field lengths (standard ones from the object reference; ours from `setup_steps`):
longer text is cut rather than refused with STRING_TOO_LONG."""


def adapter_stamp() -> str:
    return f"salesbot {ADAPTER_NAME}/{ADAPTER_VERSION}"


def exact_number(value: Decimal) -> float:
    """A decimal as the JSON number Salesforce reads, exactly: the float is used only when
    its shortest representation is the same decimal (always so for amounts below 2**53
    minor units), so the JSON text `json.dumps` writes is the decimal itself."""
    number = float(value)
    if Decimal(repr(number)) != value:
        raise ValueError(f"{value} has no exact JSON number representation")
    return number


def amount(cents: int, minor_units: int) -> float:
    """Integer minor units as the currency amount (189050, 2 → 1890.5)."""
    return exact_number(Decimal(cents).scaleb(-minor_units))


def amount_text(cents: int, minor_units: int) -> str:
    return str(Decimal(cents).scaleb(-minor_units))


def _cut(name: str, value: str) -> str:
    limit = _LENGTHS.get(name)
    return value[:limit] if limit is not None else value


def _text_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Text cut to its field's length; an e-mail address too long for the field is left out
    rather than cut into another address."""
    return {
        name: _cut(name, value) if isinstance(value, str) else value
        for name, value in fields.items()
        if not (name == "Email" and isinstance(value, str) and len(value) > _LENGTHS["Email"])
    }


def _names(record: CrmRecord) -> tuple[str | None, str]:
    """(FirstName, LastName) from the contact's name; LastName is required."""
    name = record.contact.name if record.contact is not None else None
    words = (name or "").split()
    if not words:
        return None, NOT_PROVIDED
    if len(words) == 1:
        return None, words[0]
    return " ".join(words[:-1]), words[-1]


def _salesbot_fields(record: CrmRecord) -> dict[str, Any]:
    """What salesbot decided about the deal, on the Lead or the Opportunity."""
    deal = record.deal
    fields: dict[str, Any] = {ADAPTER_FIELD: adapter_stamp()}
    if deal.band is not None:
        fields[BAND_FIELD] = deal.band
    if deal.hot_probability is not None:
        fields[HOT_PROBABILITY_FIELD] = exact_number(
            deal.hot_probability.quantize(Decimal("0.0001"))
        )
    if deal.source is not None:
        fields[SOURCE_FIELD] = deal.source
    if deal.lost_reason is not None:
        fields[LOST_REASON_FIELD] = deal.lost_reason
    if deal.owner is not None:
        fields["OwnerId"] = deal.owner
    return fields


def lead_fields(record: CrmRecord, *, multicurrency: bool = False) -> dict[str, Any]:
    """The Lead for a deal (mode "lead"). LastName and Company are required by Salesforce."""
    deal = record.deal
    first, last = _names(record)
    contact = record.contact
    fields: dict[str, Any] = {
        "LastName": last,
        "Company": (contact.company if contact is not None else None) or NOT_PROVIDED,
        "Status": deal.crm_stage,
    }
    if first is not None:
        fields["FirstName"] = first
    if contact is not None and contact.email is not None:
        fields["Email"] = contact.email
    if deal.amount_cents is not None and deal.minor_units is not None:
        fields[AMOUNT_FIELD] = amount(deal.amount_cents, deal.minor_units)
        if multicurrency and deal.currency is not None:
            fields["CurrencyIsoCode"] = deal.currency
    fields.update(_salesbot_fields(record))
    return _text_fields(fields)


def contact_fields(record: CrmRecord) -> dict[str, Any]:
    """The Contact behind a deal (mode "contact_opportunity"). LastName is required."""
    first, last = _names(record)
    fields: dict[str, Any] = {"LastName": last, ADAPTER_FIELD: adapter_stamp()}
    if first is not None:
        fields["FirstName"] = first
    if record.contact is not None and record.contact.email is not None:
        fields["Email"] = record.contact.email
    return _text_fields(fields)


def opportunity_name(record: CrmRecord) -> str:
    contact = record.contact
    who = (contact.company or contact.name) if contact is not None else None
    return who or f"salesbot conversation {record.conversation_id}"


def close_date(record: CrmRecord, today: date) -> date:
    if record.deal.stage in ("won", "lost"):
        return today
    return today + timedelta(days=OPEN_DEAL_DAYS)


def opportunity_fields(
    record: CrmRecord,
    *,
    today: date,
    creating: bool,
    contact_id: str | None = None,
    multicurrency: bool = False,
) -> dict[str, Any]:
    """The Opportunity for a deal. Creating it sets Name, CloseDate and the primary contact
    (`ContactId` can be given only on create); an update leaves the name and close date the
    rep may have edited, except that a deal that closes gets the day it closed."""
    deal = record.deal
    fields: dict[str, Any] = {"StageName": deal.crm_stage}
    if creating:
        fields["Name"] = opportunity_name(record)
        fields["CloseDate"] = close_date(record, today).isoformat()
        if contact_id is not None:
            fields["ContactId"] = contact_id
    elif deal.stage in ("won", "lost"):
        fields["CloseDate"] = close_date(record, today).isoformat()
    if deal.amount_cents is not None and deal.minor_units is not None:
        fields["Amount"] = amount(deal.amount_cents, deal.minor_units)
        if multicurrency and deal.currency is not None:
            fields["CurrencyIsoCode"] = deal.currency
    fields.update(_salesbot_fields(record))
    return _text_fields(fields)


def task_subject(record: CrmRecord) -> str:
    if record.artifact == "quote":
        quote = record.quote
        if quote is None:
            return f"salesbot quote {record.external_id}"
        total = amount_text(quote.total_cents, quote.minor_units)
        return f"salesbot quote {quote.quote_id} v{quote.version}: {total} {quote.currency}"
    if record.note == "transcript":
        return f"salesbot transcript (deal {record.deal.stage})"
    if record.note == "score":
        return f"salesbot score: {record.deal.band or 'unscored'}"
    return f"salesbot note {record.external_id}"


def task_lines(record: CrmRecord) -> tuple[str, ...]:
    if record.artifact == "quote":
        return record.quote.proof if record.quote is not None else ()
    return record.note_lines


def task_fields(record: CrmRecord, *, who_id: str | None, what_id: str | None) -> dict[str, Any]:
    """A quote or a note as a completed Task on the deal's records. The lines are plain
    text (Description is a plain textarea: nothing in them is markup)."""
    description = "\n".join((*task_lines(record), "", adapter_stamp()))
    fields: dict[str, Any] = {
        "Subject": task_subject(record),
        "Description": description,
        "Status": "Completed",
        ADAPTER_FIELD: adapter_stamp(),
    }
    if who_id is not None:
        fields["WhoId"] = who_id
    if what_id is not None:
        fields["WhatId"] = what_id
    return _text_fields(fields)


# -- a quote as a Quote (quote_as = "quote", mode contact_opportunity) ---------------------


class QuoteRefusedError(ValueError):
    """A quote Salesforce's Quote object cannot hold as salesbot issued it (no SKU, a
    discount finer than the Discount field): refused for good, before anything is written."""


@dataclass(frozen=True)
class QuoteLine:
    """One line of a quote as a QuoteLineItem: its number (1, 2, …) and figures."""

    number: int
    sku: str | None
    qty: int
    unit_cents: int
    discount: Decimal
    discount_cents: int
    description: str


def quote_lines(quote: CrmQuote) -> tuple[QuoteLine, ...]:
    """The quote's lines (a salesbot quote has one: a SKU or a custom price, a quantity)."""
    return (
        QuoteLine(
            number=1,
            sku=quote.sku,
            qty=quote.qty,
            unit_cents=quote.unit_cents,
            discount=quote.discount,
            discount_cents=quote.discount_cents,
            description=quote.description,
        ),
    )


def quote_line_external_id(quote_external_id: str, line: QuoteLine) -> str:
    """`salesbot:quote:<id>:v<version>:line:<n>`: each line its own record, so a resent
    quote updates its lines instead of adding them again."""
    return f"{quote_external_id}:line:{line.number}"


def pricebook_entry_query(
    sku: str, *, currency: str, price_book: str | None, multicurrency: bool
) -> str:
    """The SOQL finding the active price book entry of `sku` (a Product2 `ProductCode`) in
    `price_book` (a Pricebook2 Id) or, without one, the org's standard price book; in a
    multi-currency org, the entry in the quote's currency. `LIMIT 2`: two answers mean two
    products share the code, which the sender refuses rather than pick one."""
    where = ["ProductCode = {sku}", "IsActive = true"]
    values: dict[str, Any] = {"sku": sku}
    if price_book is not None:
        where.append("Pricebook2Id = {book}")
        values["book"] = price_book
    else:
        where.append("Pricebook2.IsStandard = true")
    if multicurrency:
        where.append("CurrencyIsoCode = {currency}")
        values["currency"] = currency
    return format_soql(
        "SELECT Id, Pricebook2Id, UnitPrice FROM PricebookEntry WHERE "
        + " AND ".join(where)
        + " LIMIT 2",
        **values,
    )


def price_book_name(price_book: str | None) -> str:
    return f"price book {price_book}" if price_book is not None else "the standard price book"


def discount_percent(discount: Decimal) -> float:
    """The discount fraction as Salesforce's percent (0.05 → 5), refused when it has more
    decimals than the Discount field keeps (it would round, and the line would show another
    total than the buyer was quoted)."""
    percent = discount.scaleb(2).normalize()
    exponent = percent.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > DISCOUNT_PLACES:
        raise QuoteRefusedError(
            f"the discount {percent:f}% has more than {DISCOUNT_PLACES} decimal places, which "
            'Salesforce\'s QuoteLineItem Discount keeps; set [crm] quote_as = "line_items" '
            "for such quotes"
        )
    return exact_number(percent)


def quote_name(quote: CrmQuote) -> str:
    return f"salesbot {quote.quote_id} v{quote.version}"


def quote_fields(
    record: CrmRecord,
    *,
    creating: bool,
    opportunity_id: str,
    pricebook_id: str,
    contact_id: str | None = None,
) -> dict[str, Any]:
    """The Quote for a quote version. Creating it sets the opportunity, the price book and
    the contact (`OpportunityId` cannot change after; the price book cannot once it has
    lines); an update writes the rest again, unchanged, which a retry may do safely.

    `Tax` is salesbot's tax, so Salesforce's Grand Total (the lines' total plus tax) is the
    quote's total; the Description is the buyer's arithmetic, line by line."""
    quote = record.quote
    if quote is None:
        raise QuoteRefusedError(f"quote {record.external_id} is no longer in the conversation")
    lines = (*quote.proof, "", adapter_stamp())
    fields: dict[str, Any] = {
        "Name": quote_name(quote),
        "Description": "\n".join(lines),
        "Tax": amount(quote.tax_cents, quote.minor_units),
        ADAPTER_FIELD: adapter_stamp(),
    }
    status = QUOTE_STATUS.get(quote.status or "")
    if status is not None:
        fields["Status"] = status
    if quote.expires_at_ms is not None:
        expires = datetime.fromtimestamp(quote.expires_at_ms / 1000, tz=UTC).date()
        fields["ExpirationDate"] = expires.isoformat()
    if creating:
        fields["OpportunityId"] = opportunity_id
        fields["Pricebook2Id"] = pricebook_id
        if contact_id is not None:
            fields["ContactId"] = contact_id
    return _text_fields(fields)


def line_description(quote: CrmQuote, line: QuoteLine) -> str:
    """The line's arithmetic in one line (cut to the field's 255 characters)."""
    units = quote.minor_units
    subtotal = line.qty * line.unit_cents
    text = (
        f"{line.description}: {line.qty:,} × {amount_text(line.unit_cents, units)} = "
        f"{amount_text(subtotal, units)} {quote.currency}"
    )
    if line.discount_cents:
        text += (
            f"; discount {line.discount.scaleb(2).normalize():f}% = "
            f"{amount_text(line.discount_cents, units)}; net "
            f"{amount_text(subtotal - line.discount_cents, units)} {quote.currency}"
        )
    return text[:_LINE_DESCRIPTION_LENGTH]


def quote_line_fields(
    record: CrmRecord,
    line: QuoteLine,
    *,
    creating: bool,
    quote_id: str,
    pricebook_entry_id: str,
) -> dict[str, Any]:
    """One QuoteLineItem: Quantity, UnitPrice (exact, from integer minor units), Discount
    (percent) and the arithmetic as Description. `QuoteId` and `PricebookEntryId` are set
    when it is created (neither can change after)."""
    quote = record.quote
    if quote is None:
        raise QuoteRefusedError(f"quote {record.external_id} is no longer in the conversation")
    fields: dict[str, Any] = {
        "Quantity": line.qty,
        "UnitPrice": amount(line.unit_cents, quote.minor_units),
        "Description": line_description(quote, line),
        ADAPTER_FIELD: adapter_stamp(),
    }
    if line.discount:
        fields["Discount"] = discount_percent(line.discount)
    if creating:
        fields["QuoteId"] = quote_id
        fields["PricebookEntryId"] = pricebook_entry_id
    return fields
