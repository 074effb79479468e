"""A record created in the CRM, as the lead it becomes: the same `LeadArrived` the lead feed
(`POST /leads`) hands the runtime, with the CRM's id as its identity.

Both webhooks (`adapters.crm.hubspot_webhook`, `adapters.crm.salesforce_outbound`) read the
vendor's record into a `CrmLead` and hand it here. The lead and delivery ids are derived from
the CRM's own id of the record, so a webhook delivered again — the vendor retries until it
is acknowledged — lands on the same delivery and makes no second lead (the runtime dedupes
by delivery id):

    key          = "<vendor>:<account>:<object>:<id>"   (also the lead's `external_id`)
    lead id      = "lead-" + sha256("crm-lead" 0x1f key)[:16]
    delivery id  = "lead:"  + sha256("crm-lead" 0x1f key)

The digest is salted with "crm-lead" so no `Idempotency-Key` a feed client sends can land on
a CRM lead's conversation.

Such a lead has no reply path: `LeadDetails.reply_in` names the CRM, and the domain then
scores it and posts it for a rep without a word to the prospect (`domain.inbound`).

Records salesbot itself wrote come back through these webhooks (a contact upserted for a
chat's lead fires HubSpot's `contact.creation`; a Lead written by the sync fires the
outbound message): `is_salesbot_record` recognises them by what every write of ours carries
— its external id (`salesbot_id` / `Salesbot_Id__c`, `domain.crm.from_salesbot`) or the
adapter stamp (`salesbot_adapter` / `Salesbot_Adapter__c`; a HubSpot contact upserted by
e-mail carries only the stamp) — and the webhooks acknowledge them and store nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from adapters.ids import LEAD_DELIVERY, LEADS, lead_actor_id
from domain.crm import from_salesbot
from domain.inbound import Actor, LeadArrived, LeadDetails

_SALT: Final = "crm-lead\x1f"
OWN_STAMP_PREFIX: Final = "salesbot"
"""Both adapters' stamps start with it: "salesbot-hubspot/1", "salesbot salesforce/1"."""
MAX_MESSAGE: Final = 20_000
NAME_LIMIT: Final = 200


@dataclass(frozen=True)
class CrmLead:
    """A record created in the CRM, in salesbot's words. `vendor` is the CRM as reps name
    it ("HubSpot"); `key` its id of the record, scoped by account and object
    (`lead_key`)."""

    vendor: str
    key: str
    name: str
    email: str = ""
    company: str = ""
    message: str = ""
    source: str = ""
    company_size: int | None = None


def lead_key(vendor: str, account: str, kind: str, record_id: str) -> str:
    return f"{vendor.lower()}:{account}:{kind}:{record_id}"


def parse_lead_key(key: str | None) -> tuple[str, str, str, str] | None:
    """(vendor, account, kind, record id) of a key `lead_key` made; None for anything else
    (a feed lead's own external id, say)."""
    parts = (key or "").split(":")
    if len(parts) != 4 or not all(parts):
        return None
    vendor, account, kind, record_id = parts
    return vendor, account, kind, record_id


def lead_ids(key: str) -> tuple[str, str]:
    """The lead (conversation) id and the delivery id of the CRM record `key`."""
    digest = hashlib.sha256(f"{_SALT}{key}".encode()).hexdigest()
    return LEADS.conversation_id(digest[:16]), LEADS.delivery_id(digest, kind=LEAD_DELIVERY)


def is_salesbot_record(external_id: str | None, stamp: str | None) -> bool:
    """Whether a record was written by salesbot (see the module docstring)."""
    return from_salesbot(external_id) or (stamp or "").strip().startswith(OWN_STAMP_PREFIX)


def no_message(vendor: str) -> str:
    """The lead's message when the record has none: the score then rests on nothing said,
    and the card says where the lead came from."""
    return f"(No message: this contact was created in {vendor}.)"


def to_inbound(lead: CrmLead, installation: str = "") -> LeadArrived:
    """The lead as the runtime takes it from the feed, without a reply path; `installation`:
    whose CRM it came from ("" the first installation's)."""
    lead_id, delivery_id = lead_ids(lead.key)
    name = " ".join(lead.name.split())[:NAME_LIMIT] or lead.email[:NAME_LIMIT] or lead.key
    details = LeadDetails(
        name=name[:NAME_LIMIT],
        company=lead.company.strip()[:200],
        email=lead.email.strip() if len(lead.email.strip()) <= 320 else "",
        message=(lead.message.strip() or no_message(lead.vendor))[:MAX_MESSAGE],
        source=lead.source.strip()[:100],
        external_id=lead.key[:200],
        company_size=lead.company_size
        if lead.company_size is not None and lead.company_size >= 0
        else None,
        reply_in=lead.vendor,
    )
    return LeadArrived(
        delivery_id=delivery_id,
        conversation_id=lead_id,
        actor=Actor(
            id=lead_actor_id(lead_id),
            name=details.name,
            role="prospect",
            installation=installation,
        ),
        lead=details,
    )
