"""Which CRM record a lead came from travels with its CRM writes (`CrmContact.origin`) only
for a lead with no reply path — one the CRM itself created — so an adapter updates that
record instead of creating a second one; a chat lead's own external id is never taken for
it, and the payload of every other lead is written exactly as before."""

from __future__ import annotations

from domain.crm import crm_contact

KEY = "salesforce:00D000000000001:Lead:00Q000000000001AAA"


def test_a_lead_the_crm_created_names_its_record() -> None:
    contact = crm_contact("c-1", {"name": "Dana Fox", "external_id": KEY, "reply_in": "Salesforce"})
    assert contact.origin == KEY


def test_a_chat_lead_names_no_record_whatever_its_external_id_says() -> None:
    contact = crm_contact("c-1", {"name": "Dana Fox", "external_id": KEY})
    assert contact.origin is None
    assert "origin" not in contact.model_dump(mode="json")  # the payload as before
