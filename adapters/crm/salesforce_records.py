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
by `Salesbot_Id__c` like everything else and shows on the record's activity timeline. The
Quote object (and line items, which need a price book entry per product) are not written.

Every record carries `Salesbot_Id__c` (its external id, in the URL of the upsert, never in
the body: Salesforce refuses the external id field in the sObject data) and
`Salesbot_Adapter__c` (this adapter's name and version), so each write traces back to the
salesbot record and the code that wrote it.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

from domain.crm import CrmRecord

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
