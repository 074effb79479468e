"""Salesforce's outbound messages, as leads: a SOAP `notifications` call naming the org and
up to 100 Lead records with the fields the message was set up to send, answered with the
`Ack` envelope (Salesforce resends a message until it is acknowledged, for 24 hours).

Why an outbound message rather than a Platform Event: it is pushed to our URL by Salesforce
itself (a record-triggered flow's *Outbound Message* action), carries the record's fields
(no API call back, no session), is retried by Salesforce until acknowledged and shows in
Setup's outbound message queue when it fails; a Platform Event would need a long-lived
subscriber (CometD or the Pub/Sub API's gRPC stream) and a replay-id store of our own.

**Checks** (outbound messages cannot be signed; docs/crm.md has the set-up):
- the endpoint URL ends with a secret of ours (`/crm/salesforce/<SALESFORCE_WEBHOOK_SECRET>`,
  compared in constant time; the URL is only known to Salesforce's Setup and us);
- `OrganizationId` must be the configured org's (`SALESFORCE_ORG_ID`; a 15-character id
  matches its 18-character form);
- the body must be the SOAP envelope of the WSDL's `notifications` element (the shape is
  tests/fixtures/crm/webhooks/salesforce_outbound_message.xml, from Salesforce's "Understanding
  the Outbound Messaging WSDL"), with no DTD: a document type declaration is refused before
  parsing, so no entity is ever expanded.

**Records.** Each `Notification` holds one `sObject`; only `sf:Lead` ones make leads, from
`Id`, `FirstName`, `LastName`, `Email`, `Company`, `Description` (the message),
`LeadSource` and `NumberOfEmployees`. A Lead carrying `Salesbot_Id__c` or
`Salesbot_Adapter__c` was written by salesbot's own sync (`adapters.crm.leads`): skipped, so
salesbot's writes never come back as new leads — set the flow's entry condition
`Salesbot_Id__c Is Null` too, so Salesforce does not send them at all.

Nothing here logs the body, the records' fields or the secret.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # DTDs are refused before parsing
from dataclasses import dataclass
from typing import Final

from adapters.crm.leads import CrmLead, is_salesbot_record, lead_key

VENDOR: Final = "Salesforce"
SOAP_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS: Final = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NS: Final = "urn:sobject.enterprise.soap.sforce.com"
XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS: Final = 100
ORG_ID: Final = re.compile(r"^00D[0-9A-Za-z]{12}(?:[0-9A-Za-z]{3})?$")

ACK: Final = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}">'
    "<soapenv:Body>"
    f'<notificationsResponse xmlns="{OUTBOUND_NS}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body>"
    "</soapenv:Envelope>"
)
"""The answer that tells Salesforce the message was received (the WSDL's
`notificationsResponse`); anything else makes it deliver the message again."""

_DTD: Final = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)


class MessageError(ValueError):
    """A body that is not an outbound message (the message says how)."""


def same_org(configured: str, presented: str) -> bool:
    """Org ids compared as Salesforce does: the 18-character form is the 15-character id
    plus a checksum of its case, so the first 15 characters (case-sensitive) decide."""
    configured, presented = configured.strip(), presented.strip()
    if not (ORG_ID.match(configured) and ORG_ID.match(presented)):
        return False
    return configured[:15] == presented[:15]


def is_org_id(value: str) -> bool:
    return bool(ORG_ID.match(value.strip()))


@dataclass(frozen=True)
class Skipped:
    record_id: str
    reason: str


@dataclass(frozen=True)
class OutboundMessage:
    org_id: str
    leads: tuple[CrmLead, ...]
    skipped: tuple[Skipped, ...]


def parse(body: bytes) -> OutboundMessage:
    """The message's org and its Lead records (salesbot's own and other objects skipped)."""
    if _DTD.search(body):
        raise MessageError("a document type declaration is not accepted")
    try:
        root = ET.fromstring(body)  # no DTD (checked above): no entities
    except ET.ParseError:
        raise MessageError("the body must be a SOAP envelope in XML") from None
    if root.tag != f"{{{SOAP_NS}}}Envelope":
        raise MessageError("the body must be a SOAP envelope")
    notifications = root.find(f"{{{SOAP_NS}}}Body/{{{OUTBOUND_NS}}}notifications")
    if notifications is None:
        raise MessageError("the envelope holds no outbound messaging notifications")
    org_id = _text(notifications, f"{{{OUTBOUND_NS}}}OrganizationId")
    items = notifications.findall(f"{{{OUTBOUND_NS}}}Notification")
    if len(items) > MAX_NOTIFICATIONS:
        raise MessageError(f"at most {MAX_NOTIFICATIONS} notifications per message")
    leads: list[CrmLead] = []
    skipped: list[Skipped] = []
    for item in items:
        record = item.find(f"{{{OUTBOUND_NS}}}sObject")
        if record is None:
            raise MessageError("a notification holds no sObject")
        record_id = _field(record, "Id")
        if not record_id:
            raise MessageError("an sObject has no Id")
        kind = record.get(f"{{{XSI_NS}}}type", "")
        if kind.rsplit(":", 1)[-1] != "Lead":
            skipped.append(Skipped(record_id, "not a Lead"))
            continue
        if is_salesbot_record(
            _field(record, "Salesbot_Id__c"), _field(record, "Salesbot_Adapter__c")
        ):
            skipped.append(Skipped(record_id, "written by salesbot"))
            continue
        leads.append(_lead(org_id, record_id, record))
    return OutboundMessage(org_id=org_id, leads=tuple(leads), skipped=tuple(skipped))


def _lead(org_id: str, record_id: str, record: ET.Element) -> CrmLead:
    size = _field(record, "NumberOfEmployees")
    return CrmLead(
        vendor=VENDOR,
        # The org's 15-character id: the same org however its id is written.
        key=lead_key(VENDOR, org_id[:15], "Lead", record_id),
        name=" ".join(p for p in (_field(record, "FirstName"), _field(record, "LastName")) if p),
        email=_field(record, "Email"),
        company=_field(record, "Company"),
        message=_field(record, "Description"),
        source=_field(record, "LeadSource"),
        company_size=int(size) if size.isdigit() and len(size) <= 9 else None,
    )


def _text(parent: ET.Element, path: str) -> str:
    node = parent.find(path)
    return (node.text or "").strip() if node is not None else ""


def _field(record: ET.Element, name: str) -> str:
    return _text(record, f"{{{SOBJECT_NS}}}{name}")
