"""What every CRM adapter shares: where the record sits in an outbox item, and how a
vendor's answer becomes an outbox outcome.

A CRM write is an outbox item like a chat message (`adapters.ports.Delivery`): its payload
holds the vendor-neutral `CrmRecord` under `PAYLOAD_KEY`. The sender makes the vendor's calls
(upserts keyed by the record's external id, so a retried item updates what the first try
created) and answers with an outcome: `Sent` (the vendor's id of the record), `RetryLater`
for what may pass (429 with its `Retry-After`, 5xx, a reset), `TimedOut` when the answer
never came, `Rejected` for what never will (400 validation, 401/403, 404, a duplicate):
the outbox retries only the first two kinds and dead-letters the last with an alert.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from adapters.ports import Delivery, Rejected, RetryLater, SendOutcome, TimedOut
from adapters.retry_after import retry_after_ms
from domain.crm import CrmRecord

PAYLOAD_KEY = "crm"
"""The key of the `CrmRecord` (as JSON) in a CRM outbox item's payload."""

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Answers that may pass on a later try; every other 4xx is permanent."""


def record_of(delivery: Delivery) -> CrmRecord:
    """The record an outbox item carries (`ValueError` when it carries none)."""
    data = delivery.payload.get(PAYLOAD_KEY)
    if not isinstance(data, Mapping):
        raise ValueError(f"outbox item {delivery.key} carries no CRM record")
    return CrmRecord.model_validate(data)


def payload_for(record: CrmRecord) -> dict[str, Any]:
    """The outbox payload of one CRM write."""
    return {PAYLOAD_KEY: record.model_dump(mode="json")}


EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
"""An e-mail address as a vendor's message may quote one (a duplicate contact, an invalid
address): redacted before the message reaches the outbox row, the log, an event or an
alert, because the alert names the record by its external id instead."""
REDACTED_EMAIL = "[e-mail]"


def redact(text: str) -> str:
    """`text` with every e-mail address in it replaced by `[e-mail]`."""
    return EMAIL.sub(REDACTED_EMAIL, text)


def redacted(outcome: SendOutcome) -> SendOutcome:
    """The outcome with any e-mail address in its reason redacted (every CRM sender answers
    through this)."""
    match outcome:
        case Rejected(reason=reason) | TimedOut(reason=reason) if EMAIL.search(reason):
            return outcome.model_copy(update={"reason": redact(reason)})
        case RetryLater(reason=reason) if EMAIL.search(reason):
            return outcome.model_copy(update={"reason": redact(reason)})
    return outcome


def library_version(distribution: str) -> str:
    """`name version` of the vendor's client library as installed, for the record of which
    code wrote to the CRM (`crm_sync_settled`)."""
    try:
        return f"{distribution} {metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return distribution


def outcome_for_status(
    status: int, vendor_message: str, headers: Mapping[str, str] | None = None
) -> SendOutcome:
    """A vendor's error status as an outbox outcome: transient ones retried (a 429 after
    its `Retry-After`), the others rejected with the vendor's own words."""
    reason = redact(f"{status}: {vendor_message}".strip().rstrip(":"))
    if status in TRANSIENT_STATUSES or status >= 500:
        after = None
        if headers is not None:
            after = retry_after_ms(
                next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
            )
        return RetryLater(reason=reason, retry_after_ms=after)
    return Rejected(reason=reason)
