"""How a CRM vendor's answer becomes an outbox outcome: transient answers are retried (a 429
after its Retry-After), permanent ones rejected with the vendor's words; and how a record
rides in an outbox item and comes back unchanged."""

from __future__ import annotations

import pytest

from adapters.crm.common import outcome_for_status, payload_for, record_of
from adapters.ports import Delivery, Rejected, RetryLater
from domain.crm import CrmDeal, CrmRecord, deal_external_id


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_what_may_pass_is_retried(status: int) -> None:
    outcome = outcome_for_status(status, "busy", {"Retry-After": "7"})
    assert isinstance(outcome, RetryLater)
    assert outcome.retry_after_ms == 7000
    assert outcome.reason == f"{status}: busy"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_what_never_will_is_rejected_with_the_vendors_words(status: int) -> None:
    outcome = outcome_for_status(status, "Property values were not valid")
    assert outcome == Rejected(reason=f"{status}: Property values were not valid")


def test_a_record_rides_in_an_outbox_item_unchanged() -> None:
    deal = CrmDeal(
        external_id=deal_external_id("c-1"),
        stage="qualified",
        crm_stage="qualifiedtobuy",
        pipeline="default",
        amount_cents=189050,
        currency="USD",
        minor_units=2,
    )
    record = CrmRecord(
        artifact="deal", external_id=deal.external_id, conversation_id="c-1", event_seq=9, deal=deal
    )
    delivery = Delivery(key="k", conversation_id="c-1", channel="crm", payload=payload_for(record))
    assert record_of(delivery) == record
    with pytest.raises(ValueError, match="carries no CRM record"):
        record_of(Delivery(key="k2", conversation_id="c-1", channel="crm", payload={}))


def test_a_vendors_words_never_carry_an_e_mail_address_into_salesbots_records() -> None:
    from adapters.crm.common import redacted
    from adapters.ports import Sent, TimedOut

    outcome = outcome_for_status(409, "Contact already exists: dana.fox+crm@example.co.uk")
    assert outcome == Rejected(reason="409: Contact already exists: [e-mail]")
    assert outcome_for_status(503, "busy for j@x.io", {"Retry-After": "2"}) == RetryLater(
        reason="503: busy for [e-mail]", retry_after_ms=2000
    )
    assert redacted(TimedOut(reason="lost a@b.org")) == TimedOut(reason="lost [e-mail]")
    assert redacted(Rejected(reason="400: no address")) == Rejected(reason="400: no address")
    assert redacted(Sent(remote_id="a@b.org")) == Sent(remote_id="a@b.org")  # an id, not words
