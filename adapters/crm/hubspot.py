"""The HubSpot CRM sender: one `CrmRecord` per outbox item, written with HubSpot's maintained
client (`hubspot-api-client`, pinned) and a private app's access token.

What one record becomes (`adapters.crm.hubspot_mapping` has the property values):

- **deal**: the contact upserted (by e-mail, else by `salesbot_id`), the deal upserted by
  `salesbot_id`, and the default deal↔contact association (v4), which is idempotent.
- **quote**: a line item upserted by `salesbot_id` and associated with the deal; or, with
  `[crm] quote_as = "note"`, a note carrying the buyer's arithmetic.
- **note**: a note (`hs_note_body`, `hs_timestamp`) created already associated with the deal.

A quote or note needs its deal's HubSpot id: it is read by `salesbot_id`, and when the deal
is not there (its own write was dead-lettered, or the CRM was connected mid-conversation)
the record's deal — as of the event that asked for this write — is written first.

Idempotency. Contacts, deals and line items are upserts keyed by a unique property, so a
retry after a timeout, a 5xx or a restart updates what the first try created. Notes have
no unique property: each ends with a marker line naming its external id, and before any
note is created (and in `find_sent`, after an uncertain send) the deal's notes are read and
the marker looked for — every time, not only on a retry, because the same record can also
come back under another outbox key (a backfill) or after a 5xx that HubSpot's edge returned
for a request its backend applied. That costs two reads per note; notes are few (two per
conversation by default). The residual window, stated plainly: a note whose create
request HubSpot is still processing when the look happens is not seen, so the resend
duplicates it. That takes a send that timed out *and* a retry that starts before HubSpot
finished the first request; the outbox's backoff makes it rare, not impossible.

The client is synchronous: calls run in a worker thread (`asyncio.to_thread`). It is built
with no retries (`retry=False`: the outbox owns retries and backoff, so they never stack),
every API group pointed at `api_url`, and `timeout_s` is the budget of one whole send
(each request gets what is left), so a thread never outlives the send by more than that.
Keep it below the outbox worker's own send timeout.

Answers (`adapters.crm.common.outcome_for_status`): an HTTP error status → RetryLater
(429 with its Retry-After, 5xx) or Rejected (400, 401, 403, 404, 409, with HubSpot's
`message`); a batch answered 207 with per-item errors is a failure too (a rate-limit
category retried, anything else rejected). No answer in time → TimedOut; a connection that
could not be opened → RetryLater (nothing was sent); a connection lost after the request
left → TimedOut (it may have been applied: the outbox looks before resending).

Never logged: the token, the properties written, HubSpot's response bodies (they echo
prospects' data). Log lines name the record's external id and the outcome only.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import hubspot
import hubspot.crm.contacts as hs_contacts
import hubspot.crm.deals as hs_deals
import hubspot.crm.line_items as hs_line_items
import hubspot.crm.objects.notes as hs_notes
import urllib3.exceptions

from adapters.crm.common import library_version, outcome_for_status, record_of, redacted
from adapters.crm.hubspot_mapping import (
    ADAPTER,
    ADAPTER_TAG,
    ADAPTER_VERSION,
    ID_PROPERTY,
    contact_upsert,
    deal_properties,
    line_item_properties,
    note_body,
    note_lines,
    note_marker,
    note_title,
)
from adapters.ports import Delivery, Rejected, RetryLater, SendOutcome, Sent, TimedOut
from domain.crm import CrmContact, CrmRecord

__all__ = ["ADAPTER", "ADAPTER_TAG", "ADAPTER_VERSION", "DEFAULT_API_URL", "HubSpotSender"]

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.hubapi.com"
NOTE_TO_DEAL = 214
"""HubSpot's HUBSPOT_DEFINED association type id of note → deal."""
MESSAGE_LIMIT = 300
"""HubSpot's error messages are kept to this many characters in an outcome."""
_RETRIED_CATEGORIES = frozenset({"RATE_LIMITS"})
"""Per-item error categories of a 207 batch answer that may pass on a later try."""


class HubSpotError(Exception):
    """A HubSpot answer the sender turns into an outcome: an error status, or a batch item
    that failed inside a 207. `message` is HubSpot's own (never the request's data)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class OutOfTimeError(Exception):
    """The send's budget ran out between two requests."""


def make_client(access_token: str, api_url: str = DEFAULT_API_URL) -> hubspot.Client:
    """HubSpot's client with every API group on `api_url` and no retries of its own.

    The client builds one `Configuration` per API group from the keys given here
    (`hubspot.discovery.discovery_base.DiscoveryBase`): `host` sets each group's base URL
    (HubSpot's default is per group, https://api.hubapi.com) and `retry=False` reaches
    urllib3 as `retries=False` (urllib3's default would retry connects and reads 3 times).
    Its REST layer logs whole response bodies at DEBUG: those echo prospects' data, so
    its loggers are held at INFO whatever the process's level."""
    logging.getLogger("hubspot").setLevel(max(logging.INFO, logging.getLogger().level))
    return hubspot.Client.create(access_token=access_token, host=api_url.rstrip("/"), retry=False)


@dataclass(frozen=True)
class HubSpotApis:
    """The API objects the adapter calls, built once (each access to the client's
    discovery properties builds a new connection pool)."""

    contacts: Any
    deals: Any
    deals_basic: Any
    line_items: Any
    notes_basic: Any
    notes_batch: Any
    associations: Any
    searches: Mapping[str, Any]
    properties: Any
    groups: Any
    pipelines: Any

    @classmethod
    def of(cls, client: hubspot.Client) -> HubSpotApis:
        crm = client.crm
        return cls(
            contacts=crm.contacts.batch_api,
            deals=crm.deals.batch_api,
            deals_basic=crm.deals.basic_api,
            line_items=crm.line_items.batch_api,
            notes_basic=crm.objects.notes.basic_api,
            notes_batch=crm.objects.notes.batch_api,
            associations=crm.associations.v4.basic_api,
            searches={
                "contacts": crm.contacts.search_api,
                "deals": crm.deals.search_api,
                "line_items": crm.line_items.search_api,
                "notes": crm.objects.notes.search_api,
            },
            properties=crm.properties.core_api,
            groups=crm.properties.groups_api,
            pipelines=crm.pipelines.pipelines_api,
        )


class Budget:
    """What is left of one send's time, handed to each request as its timeout."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = clock() + seconds

    def left(self) -> float:
        remaining = self._until - self._clock()
        if remaining <= 0:
            raise OutOfTimeError
        return remaining


def hubspot_message(body: object, fallback: str) -> str:
    """HubSpot's `message` from an error body (JSON: `{"message", "category", …}`),
    shortened; the HTTP reason when the body is not HubSpot's JSON."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    message = None
    if isinstance(text, str):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            message = data["message"]
    message = (message or fallback or "").strip()
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…"


def outcome_of(exc: BaseException) -> SendOutcome | None:
    """The outcome an exception from the client means; None for an unexpected one (the
    outbox then treats the send as uncertain)."""
    if isinstance(exc, HubSpotError):
        return outcome_for_status(exc.status, exc.message, exc.headers)
    if isinstance(exc, OutOfTimeError):
        return TimedOut(reason="HubSpot did not answer within the send's time")
    status = getattr(exc, "status", None)
    if isinstance(status, int) and hasattr(exc, "body"):  # any API group's ApiException
        if status == 0:  # the client's own wrapper of a TLS failure: nothing was sent
            return RetryLater(reason="could not open a connection to HubSpot")
        raw_headers = getattr(exc, "headers", None) or {}
        headers = {str(k): str(v) for k, v in dict(raw_headers).items()}
        message = hubspot_message(exc.body, str(getattr(exc, "reason", "") or ""))
        return outcome_for_status(status, message, headers)
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return outcome_of(exc.reason)
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):  # incl. refused, no DNS
        return RetryLater(reason="could not connect to HubSpot")
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return TimedOut(reason="HubSpot did not answer in time")
    if isinstance(exc, urllib3.exceptions.ProtocolError | ConnectionError):
        return TimedOut(reason="connection to HubSpot lost after the request was sent")
    return None


def _batch_result(response: Any) -> str:
    """The id of the single object a batch upsert wrote, or the HubSpotError of its item."""
    errors = getattr(response, "errors", None) or []
    results = getattr(response, "results", None) or []
    if errors:
        first = errors[0]
        category = str(getattr(first, "category", "") or "")
        message = str(getattr(first, "message", "") or category or "batch item failed")
        status = 429 if category in _RETRIED_CATEGORIES else 400
        raise HubSpotError(status, hubspot_message(json.dumps({"message": message}), message))
    if len(results) != 1:
        raise HubSpotError(502, f"batch upsert answered {len(results)} results for 1 input")
    return str(results[0].id)


class HubSpotSender:
    """`adapters.ports.Sender` for CRM records on HubSpot (see the module docstring)."""

    adapter = ADAPTER
    adapter_version = ADAPTER_VERSION
    library = library_version("hubspot-api-client")

    def __init__(
        self,
        access_token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout_s: float = 8.0,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        if not access_token:
            raise ValueError("HubSpot needs a private app's access token")
        self._apis = HubSpotApis.of(make_client(access_token, api_url))
        self._timeout_s = timeout_s
        self._now_ms = now_ms or (lambda: time.time_ns() // 1_000_000)

    def __repr__(self) -> str:  # never the token
        return f"HubSpotSender({ADAPTER_TAG})"

    async def send(self, delivery: Delivery) -> SendOutcome:
        try:
            record = record_of(delivery)
        except ValueError as exc:
            return Rejected(reason=f"not a CRM record this adapter can send: {exc}")
        outcome = redacted(await asyncio.to_thread(self._send, record))
        log.info("hubspot %s %s: %s", record.artifact, record.external_id, type(outcome).__name__)
        return outcome

    async def find_sent(self, delivery: Delivery) -> str | None:
        """After an uncertain send: a note (or a quote written as one) already in HubSpot,
        found by its marker among the deal's notes. Upserted records answer None: sending
        them again updates the same record, and reading one back could not tell whether
        this write or an earlier one is what it shows."""
        record = record_of(delivery)
        if not _is_note(record):
            return None
        return await asyncio.to_thread(self._find_note_of, record)

    # What runs in the worker thread.

    def _send(self, record: CrmRecord) -> SendOutcome:
        budget = Budget(self._timeout_s)
        try:
            if record.artifact == "deal":
                return Sent(remote_id=self._write_deal(budget, record))
            if record.artifact == "quote" and record.quote is None:
                return Rejected(reason=f"{record.external_id}: the quote is not in the record")
            deal_id = self._deal_id(budget, record)
            if _is_note(record):
                found = self._find_note(budget, deal_id, record.external_id)
                return Sent(remote_id=found or self._create_note(budget, record, deal_id))
            assert record.quote is not None
            line_item_id = self._upsert(
                budget,
                self._apis.line_items,
                hs_line_items,
                ID_PROPERTY,
                record.external_id,
                line_item_properties(record.quote, record.external_id),
            )
            self._associate(budget, "line_items", line_item_id, "deals", deal_id)
            return Sent(remote_id=line_item_id)
        except ValueError as exc:
            return Rejected(reason=f"{record.external_id}: {exc}")
        except Exception as exc:
            outcome = outcome_of(exc)
            if outcome is None:
                raise
            return outcome

    def _write_deal(self, budget: Budget, record: CrmRecord) -> str:
        contact_id = None
        if record.contact is not None and _identifies(record.contact):
            id_property, key, properties = contact_upsert(record.contact)
            contact_id = self._upsert(
                budget, self._apis.contacts, hs_contacts, id_property, key, properties
            )
        deal_id = self._upsert(
            budget,
            self._apis.deals,
            hs_deals,
            ID_PROPERTY,
            record.deal.external_id,
            deal_properties(record),
        )
        if contact_id is not None:
            self._associate(budget, "deals", deal_id, "contacts", contact_id)
        return deal_id

    def _deal_id(self, budget: Budget, record: CrmRecord) -> str:
        """The deal's HubSpot id, writing the deal first when HubSpot does not have it."""
        found = self._find_deal(budget, record.deal.external_id)
        return found if found is not None else self._write_deal(budget, record)

    def _find_deal(self, budget: Budget, external_id: str) -> str | None:
        try:
            deal = self._apis.deals_basic.get_by_id(
                external_id,
                id_property=ID_PROPERTY,
                properties=[ID_PROPERTY],
                archived=False,
                _request_timeout=budget.left(),
            )
        except Exception as exc:
            if getattr(exc, "status", None) == 404 and hasattr(exc, "body"):
                return None
            raise
        return str(deal.id)

    def _upsert(
        self,
        budget: Budget,
        api: Any,
        package: ModuleType,
        id_property: str,
        key: str,
        properties: dict[str, str],
    ) -> str:
        batch = package.BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                package.SimplePublicObjectBatchInputUpsert(
                    id_property=id_property, id=key, properties=properties
                )
            ]
        )
        return _batch_result(api.upsert(batch, _request_timeout=budget.left()))

    def _associate(
        self, budget: Budget, from_type: str, from_id: str, to_type: str, to_id: str
    ) -> None:
        self._apis.associations.create_default(
            from_type, from_id, to_type, to_id, _request_timeout=budget.left()
        )

    def _create_note(self, budget: Budget, record: CrmRecord, deal_id: str) -> str:
        note = hs_notes.SimplePublicObjectInputForCreate(
            properties={
                "hs_note_body": note_body(
                    note_lines(record), record.external_id, note_title(record)
                ),
                "hs_timestamp": str(self._now_ms()),
            },
            associations=[
                hs_notes.PublicAssociationsForObject(
                    to=hs_notes.PublicObjectId(id=deal_id),
                    types=[
                        hs_notes.AssociationSpec(
                            association_category="HUBSPOT_DEFINED",
                            association_type_id=NOTE_TO_DEAL,
                        )
                    ],
                )
            ],
        )
        created = self._apis.notes_basic.create(note, _request_timeout=budget.left())
        return str(created.id)

    def _find_note_of(self, record: CrmRecord) -> str | None:
        budget = Budget(self._timeout_s)
        deal_id = self._find_deal(budget, record.deal.external_id)
        return None if deal_id is None else self._find_note(budget, deal_id, record.external_id)

    def _find_note(self, budget: Budget, deal_id: str, external_id: str) -> str | None:
        """The id of the deal's note carrying `external_id`'s marker, if there is one: the
        deal's associated notes (read directly, not through search, whose index lags),
        then their bodies, a hundred at a time."""
        note_ids: list[str] = []
        after: str | None = None
        while True:
            page = self._apis.associations.get_page(
                "deals", deal_id, "notes", after=after, limit=500, _request_timeout=budget.left()
            )
            note_ids.extend(str(result.to_object_id) for result in page.results or [])
            following = getattr(getattr(page, "paging", None), "next", None)
            after = getattr(following, "after", None)
            if not after:
                break
        marker = html.escape(note_marker(external_id))  # as the body holds it
        for start in range(0, len(note_ids), 100):
            batch = hs_notes.BatchReadInputSimplePublicObjectId(
                inputs=[hs_notes.SimplePublicObjectId(id=i) for i in note_ids[start : start + 100]],
                properties=["hs_note_body"],
                properties_with_history=[],
            )
            answer = self._apis.notes_batch.read(
                batch, archived=False, _request_timeout=budget.left()
            )
            for note in answer.results or []:
                body = (note.properties or {}).get("hs_note_body") or ""
                if marker in body:  # HubSpot may wrap the HTML it stores
                    return str(note.id)
        return None


def _is_note(record: CrmRecord) -> bool:
    return record.artifact == "note" or (record.artifact == "quote" and record.quote_as == "note")


def _identifies(contact: CrmContact) -> bool:
    """A contact worth writing: one HubSpot users could recognise (an e-mail, a name or a
    company); an anonymous chat's contact would be an empty record."""
    return bool(contact.email or contact.name or contact.company)
