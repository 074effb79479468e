"""A `CrmRecord` in HubSpot's words: the property values of its contact, deal, line item and
note, and the custom properties those values need (`salesbot crm setup` creates them).

Pure translation, no I/O, so what HubSpot receives for a record can be read (and tested)
without a server. The rules it follows:

- Money stays exact: HubSpot takes amounts as decimal strings in the currency's major unit,
  so integer minor units become `Decimal(cents).scaleb(-minor_units)` — never a float.
- salesbot writes only what it knows. A field the conversation has no value for (no amount
  yet, no mapped owner) is left out of the write rather than cleared, so what a rep typed in
  HubSpot is not wiped by the next stage change.
- User text is data: a note's body is HTML in HubSpot, so every line is escaped and lines
  are joined with `<br>`; plain-text fields (names, descriptions) are sent as they are.
- Every object carries `salesbot_adapter` (this adapter's name and version), and a note —
  which has no custom properties salesbot could rely on — ends with a marker line naming
  the adapter and the record's external id: how salesbot recognises its own writes (the
  look-before-resend, and later the webhooks that must ignore them).
"""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Literal

from domain.crm import CrmContact, CrmQuote, CrmRecord
from domain.model import Frozen

ADAPTER = "hubspot"
ADAPTER_VERSION = 1
"""Bumped when what this adapter writes to HubSpot changes meaning (a property renamed, an
amount computed differently), so a record in HubSpot says which rules wrote it."""
ADAPTER_TAG = f"salesbot-{ADAPTER}/{ADAPTER_VERSION}"
"""The value of `salesbot_adapter` on every object, and the note marker's prefix."""

ID_PROPERTY = "salesbot_id"
"""The unique custom property holding a record's external id (`domain.crm`)."""

ObjectType = Literal["contacts", "deals", "line_items"]


class CustomProperty(Frozen):
    """One custom property salesbot writes, as the properties API creates it."""

    object_type: ObjectType
    name: str
    label: str
    type: Literal["string", "number"]
    field_type: Literal["text", "number"]
    unique: bool = False
    description: str


def _id_property(object_type: ObjectType) -> CustomProperty:
    return CustomProperty(
        object_type=object_type,
        name=ID_PROPERTY,
        label="salesbot id",
        type="string",
        field_type="text",
        unique=True,
        description="salesbot's external id of this record: a retried write updates it, "
        "never a second one. Do not edit.",
    )


def _adapter_property(object_type: ObjectType) -> CustomProperty:
    return CustomProperty(
        object_type=object_type,
        name="salesbot_adapter",
        label="salesbot adapter",
        type="string",
        field_type="text",
        description="The salesbot adapter and version that last wrote this record.",
    )


CUSTOM_PROPERTIES: tuple[CustomProperty, ...] = (
    _id_property("contacts"),
    _adapter_property("contacts"),
    _id_property("deals"),
    _adapter_property("deals"),
    CustomProperty(
        object_type="deals",
        name="salesbot_band",
        label="salesbot band",
        type="string",
        field_type="text",
        description="The lead's band when salesbot last scored it (hot, warm, cold).",
    ),
    CustomProperty(
        object_type="deals",
        name="salesbot_hot_probability",
        label="salesbot hot probability",
        type="number",
        field_type="number",
        description="salesbot's probability that the lead is hot, 0 to 1.",
    ),
    CustomProperty(
        object_type="deals",
        name="salesbot_conversation_id",
        label="salesbot conversation",
        type="string",
        field_type="text",
        description="The salesbot conversation this deal mirrors (for `salesbot audit`).",
    ),
    CustomProperty(
        object_type="deals",
        name="salesbot_source",
        label="salesbot lead source",
        type="string",
        field_type="text",
        description="Where the lead came from, as salesbot received it (web form, event, …).",
    ),
    _id_property("line_items"),
    _adapter_property("line_items"),
)
"""Everything `setup()` creates and `check()` looks for."""

GROUP_NAME = "salesbot"
GROUP_LABEL = "salesbot"


def amount_text(minor: int, minor_units: int) -> str:
    """Integer minor units as HubSpot's decimal string, exactly: 189050, 2 → "1890.50"."""
    if minor_units < 0:
        raise ValueError(f"minor units must be >= 0, not {minor_units}")
    value = Decimal(minor).scaleb(-minor_units)
    return f"{value:.{minor_units}f}"


def split_name(name: str | None) -> tuple[str | None, str | None]:
    """(firstname, lastname): the first word and the rest, as HubSpot's form fields take a
    typed-in name; a single word is a first name. Names are not parsed further (no titles,
    no particles): a rep can correct the split in HubSpot, and salesbot rewrites both only
    when the lead's name changes."""
    words = (name or "").split()
    if not words:
        return None, None
    return words[0], " ".join(words[1:]) or None


def contact_upsert(contact: CrmContact) -> tuple[str, str, dict[str, str]]:
    """(idProperty, id, properties) of the contact's batch upsert.

    With an e-mail the contact is upserted by `email`, HubSpot's own identity for a person:
    a prospect already in the CRM is updated, not duplicated. `salesbot_id` is then not
    written, because the same person may reach salesbot in several conversations (each with
    its own contact id) and a unique property can hold only one. Without an e-mail the
    contact is keyed by `salesbot_id` (the conversation's contact id)."""
    first, last = split_name(contact.name)
    properties = {"salesbot_adapter": ADAPTER_TAG}
    if first is not None:
        properties["firstname"] = first
    if last is not None:
        properties["lastname"] = last
    if contact.company:
        properties["company"] = contact.company
    if contact.email:
        properties["email"] = contact.email
        return "email", contact.email, properties
    properties[ID_PROPERTY] = contact.external_id
    return ID_PROPERTY, contact.external_id, properties


def deal_name(record: CrmRecord) -> str:
    """The company when the lead named one (what a rep scans a pipeline for); otherwise
    "salesbot <conversation id>", which names no person and finds the conversation."""
    company = record.contact.company if record.contact is not None else None
    return company if company else f"salesbot {record.conversation_id}"


def deal_properties(record: CrmRecord) -> dict[str, str]:
    """The deal's properties: stage and pipeline as `[crm]` names them, the amount of the
    live quote, the owner when mapped, the reason when lost, and salesbot's own."""
    deal = record.deal
    properties = {
        ID_PROPERTY: deal.external_id,
        "salesbot_adapter": ADAPTER_TAG,
        "salesbot_conversation_id": record.conversation_id,
        "dealname": deal_name(record),
        "dealstage": deal.crm_stage,
        "pipeline": deal.pipeline,
    }
    if deal.amount_cents is not None:
        if deal.minor_units is None:
            raise ValueError(f"deal {deal.external_id} has an amount without its minor units")
        properties["amount"] = amount_text(deal.amount_cents, deal.minor_units)
    if deal.currency:
        properties["deal_currency_code"] = deal.currency
    if deal.owner:
        properties["hubspot_owner_id"] = deal.owner
    if deal.stage == "lost" and deal.lost_reason:
        properties["closed_lost_reason"] = deal.lost_reason
    if deal.band:
        properties["salesbot_band"] = deal.band
    if deal.hot_probability is not None:
        properties["salesbot_hot_probability"] = f"{deal.hot_probability:f}"
    if deal.source:
        properties["salesbot_source"] = deal.source
    return properties


def line_item_properties(quote: CrmQuote, external_id: str) -> dict[str, str]:
    """The quote as one line item: quantity, unit price and SKU as issued, the discount as
    HubSpot's percentage (exact; HubSpot's `discount` is an amount *per unit*, which a
    discount rounded on the subtotal does not always divide into), `amount` the net before
    tax (what HubSpot itself computes for a line), and the buyer's arithmetic, tax included,
    as the description."""
    properties = {
        ID_PROPERTY: external_id,
        "salesbot_adapter": ADAPTER_TAG,
        "name": quote.description,
        "description": "\n".join(quote.proof),
        "quantity": str(quote.qty),
        "price": amount_text(quote.unit_cents, quote.minor_units),
        "hs_discount_percentage": f"{(quote.discount * 100).normalize():f}",
        "amount": amount_text(quote.total_cents - quote.tax_cents, quote.minor_units),
    }
    if quote.sku:
        properties["hs_sku"] = quote.sku
    return properties


def note_marker(external_id: str) -> str:
    """The last line of every note salesbot writes: its adapter and the record's id. The
    look-before-resend finds a note by it (notes have no unique property)."""
    return f"[{ADAPTER_TAG} {external_id}]"


def note_body(lines: tuple[str, ...], external_id: str, title: str) -> str:
    """The note as HubSpot's HTML: the title, each line escaped, then the marker."""
    escaped = [html.escape(line) for line in (title, *lines, note_marker(external_id))]
    return "<br>".join(escaped)


def note_title(record: CrmRecord) -> str:
    """What the note is, in the rep's words."""
    if record.artifact == "quote" and record.quote is not None:
        label = record.quote.quote_id
        if record.quote.version > 1:
            label = f"{label} v{record.quote.version}"
        return f"salesbot quote {label}"
    if record.note == "transcript":
        return "salesbot transcript"
    if record.note == "score":
        return "salesbot score attribution"
    return "salesbot note"


def note_lines(record: CrmRecord) -> tuple[str, ...]:
    """The note's lines: the quote's buyer-facing arithmetic for a quote written as a note,
    the recorded lines otherwise."""
    if record.artifact == "quote" and record.quote is not None:
        return record.quote.proof
    return record.note_lines
