"""HubSpot's webhook, as leads: `contact.creation` events, signed with signature v3, whose
contacts are read back through the CRM API to become leads (`adapters.crm.leads`).

**The signature** (HubSpot, "Validating requests from HubSpot", v3; the excerpt we check
against is tests/fixtures/crm/webhooks/hubspot_signature_v3.md, with its sources):

- `X-HubSpot-Request-Timestamp` is epoch milliseconds; a request older than 5 minutes is
  refused (and, against clock games, one more than 5 minutes ahead of ours);
- the signed text is `method + uri + body + timestamp` in UTF-8, where `uri` is the URL
  HubSpot called (the app's target URL: `$SALESBOT_PUBLIC_URL/crm/hubspot`) with the
  percent-escapes of HubSpot's table decoded;
- `X-HubSpot-Signature-v3` is base64(HMAC-SHA256(client secret, that text)).

The HMAC itself is HubSpot's own client's (`hubspot.utils.signature.Signature`); the clock
check is ours, against the injected clock (the client's reads the wall clock and lets a
timestamp from the future through). Both candidate URIs are tried — the public URL and
the URL this server saw — so a proxy that rewrites the host does not break it; either must
still be signed with the secret.

**The events.** The body is a JSON array of up to 100 events (`eventId`, `subscriptionId`,
`portalId`, `occurredAt`, `subscriptionType`, `objectId`, …; example in
tests/fixtures/crm/webhooks/hubspot_contact_creation.json). Only `contact.creation` (and the
developer platform's `object.creation` of object type `0-1`, contacts) makes leads; every
other event is acknowledged and ignored. Events carry ids only: the contacts are read in one
batch (`POST /crm/v3/objects/contacts/batch/read`) for their `email`, `firstname`,
`lastname`, `company`, `message` (the forms' message field), `hs_analytics_source` and
salesbot's own `salesbot_id` / `salesbot_adapter` (how salesbot's own contacts are
recognised and skipped). A contact HubSpot no longer has (deleted or merged before we read
it) is skipped.

Nothing here logs the body, the contact's properties or the secret.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import hubspot.crm.contacts as hs_contacts
from hubspot.utils.signature import Signature
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.crm.hubspot import DEFAULT_API_URL, Budget, HubSpotApis, make_client, outcome_of
from adapters.crm.hubspot_mapping import ID_PROPERTY
from adapters.crm.leads import CrmLead, is_salesbot_record, lead_key
from adapters.ports import RetryLater, TimedOut

VENDOR: Final = "HubSpot"
SIGNATURE_HEADER: Final = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER: Final = "X-HubSpot-Request-Timestamp"
MAX_AGE_MS: Final = 5 * 60 * 1000
"""HubSpot: "Reject the request if the timestamp is older than 5 minutes"."""
MAX_EVENTS: Final = 100
"""HubSpot sends at most 100 events in one request."""
CONTACT_TYPE_ID: Final = "0-1"
CONTACT_PROPERTIES: Final = (
    "email",
    "firstname",
    "lastname",
    "company",
    "message",
    "hs_analytics_source",
    ID_PROPERTY,
    "salesbot_adapter",
)
ADAPTER_PROPERTY: Final = "salesbot_adapter"

_DECODED: Final = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
"""The percent-escapes HubSpot's v3 instructions decode in the URI before signing."""
_ESCAPE: Final = re.compile("|".join(re.escape(k) for k in _DECODED), re.IGNORECASE)


def signed_uri(uri: str) -> str:
    """`uri` as HubSpot signs it: the escapes of its table decoded, nothing else."""
    return _ESCAPE.sub(lambda m: _DECODED[m.group(0).upper()], uri)


def signature_v3(secret: str, method: str, uri: str, body: str, timestamp: str) -> str:
    """The expected `X-HubSpot-Signature-v3` (HubSpot's client computes it)."""
    expected: str = Signature.get_signature(
        secret, body, "v3", http_uri=signed_uri(uri), http_method=method, timestamp=timestamp
    )
    return expected


Verdict = Literal["ok", "missing", "stale", "bad"]


def verify(
    secret: str,
    *,
    method: str,
    uris: Sequence[str],
    body: str,
    signature: str | None,
    timestamp: str | None,
    now_ms: int,
) -> Verdict:
    """Whether a request is HubSpot's (see the module docstring): "ok", or why not."""
    if not signature or not timestamp:
        return "missing"
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 16):
        return "bad"
    if abs(now_ms - int(timestamp)) > MAX_AGE_MS:
        return "stale"
    try:
        presented = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "bad"
    for uri in dict.fromkeys(uris):
        expected = base64.b64decode(signature_v3(secret, method, uri, body, timestamp))
        if hmac.compare_digest(expected, presented):
            return "ok"
    return "bad"


class HubSpotEvent(BaseModel):
    """One webhook event, as far as salesbot reads it (HubSpot adds fields: ignored)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    subscription_type: str = Field(alias="subscriptionType", max_length=100)
    object_id: int = Field(alias="objectId", ge=0)
    portal_id: int = Field(alias="portalId", ge=0)
    event_id: int | None = Field(None, alias="eventId")
    object_type_id: str | None = Field(None, alias="objectTypeId", max_length=20)

    @property
    def creates_contact(self) -> bool:
        return self.subscription_type == "contact.creation" or (
            self.subscription_type == "object.creation" and self.object_type_id == CONTACT_TYPE_ID
        )


class EventsError(ValueError):
    """A signed body that is not HubSpot's list of events (the message says how)."""


def parse_events(body: str) -> list[HubSpotEvent]:
    try:
        data = json.loads(body)
    except ValueError:
        raise EventsError("the body must be a JSON array of HubSpot events") from None
    if not isinstance(data, list):
        raise EventsError("the body must be a JSON array of HubSpot events")
    if len(data) > MAX_EVENTS:
        raise EventsError(f"at most {MAX_EVENTS} events per request")
    try:
        return [HubSpotEvent.model_validate(item) for item in data]
    except ValidationError as exc:
        fields = sorted({".".join(map(str, e["loc"][:1])) for e in exc.errors()})
        raise EventsError(f"an event lacks or mistypes: {', '.join(fields)}") from None


class ReadFailedError(Exception):
    """HubSpot could not be read now; the webhook should be delivered again later."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Skipped:
    """An event that makes no lead, and why (for the answer and the log)."""

    object_id: str
    reason: Literal["not a contact creation", "written by salesbot", "no longer in HubSpot"]


def contact_lead(portal_id: int, contact_id: str, properties: dict[str, Any]) -> CrmLead | None:
    """A contact's properties as a lead; None for one salesbot wrote."""

    def text(name: str) -> str:
        value = properties.get(name)
        return value.strip() if isinstance(value, str) else ""

    if is_salesbot_record(text(ID_PROPERTY), text(ADAPTER_PROPERTY)):
        return None
    return CrmLead(
        vendor=VENDOR,
        key=lead_key(VENDOR, str(portal_id), "contact", contact_id),
        name=" ".join(part for part in (text("firstname"), text("lastname")) if part),
        email=text("email"),
        company=text("company"),
        message=text("message"),
        source=text("hs_analytics_source").lower(),
    )


class HubSpotContactReader:
    """Reads the contacts of a webhook's events with HubSpot's client (the private app's
    token, every API group on `api_url`, no retries of its own: HubSpot redelivers a
    webhook that was not acknowledged)."""

    def __init__(
        self,
        access_token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout_s: float = 4.0,
        apis: Callable[[], HubSpotApis] | None = None,
    ) -> None:
        self._make = apis or (lambda: HubSpotApis.of(make_client(access_token, api_url)))
        self._apis: HubSpotApis | None = None
        self._timeout_s = timeout_s

    async def read(self, contact_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The properties of each contact HubSpot still has, by id; `ReadFailedError` when
        HubSpot cannot be read now."""
        if not contact_ids:
            return {}
        return await asyncio.to_thread(self._read, list(dict.fromkeys(contact_ids)))

    def _read(self, contact_ids: list[str]) -> dict[str, dict[str, Any]]:
        if self._apis is None:
            self._apis = self._make()
        budget = Budget(self._timeout_s)
        batch = hs_contacts.BatchReadInputSimplePublicObjectId(
            inputs=[hs_contacts.SimplePublicObjectId(id=i) for i in contact_ids],
            properties=list(CONTACT_PROPERTIES),
            properties_with_history=[],
        )
        try:
            answer = self._apis.contacts.read(batch, archived=False, _request_timeout=budget.left())
        except Exception as exc:
            outcome = outcome_of(exc)
            if outcome is None:
                raise
            if isinstance(outcome, RetryLater | TimedOut):
                raise ReadFailedError(outcome.reason) from None
            reason = getattr(outcome, "reason", "")
            raise ReadFailedError(f"HubSpot refused to read contacts: {reason}") from None
        return {str(contact.id): dict(contact.properties or {}) for contact in answer.results or []}
