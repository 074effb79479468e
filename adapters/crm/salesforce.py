"""The Salesforce CRM sender: one outbox item, one `CrmRecord`, upserted by external id.

Each write is `PATCH /services/data/vXX.X/sobjects/<Object>/Salesbot_Id__c/<external id>`
through `simple-salesforce` (`sf.<Object>.upsert`), so a retried item — after a timeout, a
503 or a restart — updates the record its first try created, never a second one
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm).
What each record holds is `adapters.crm.salesforce_records`; the token is ours
(`adapters.crm.salesforce_auth`), because `simple-salesforce` logs in only against its
own login host.

Answers become outbox outcomes (`adapters.crm.common.outcome_for_status`):

- `Sent(remote_id)` — Salesforce's record id (the Lead, the Opportunity or the Task);
- `RetryLater` — 5xx (503 "server busy"), 403 `REQUEST_LIMIT_EXCEEDED` (the org's rolling
  24-hour API allocation is spent: retried after `limit_retry_ms`), a connection that never
  opened, a token endpoint that is down;
- `TimedOut` — no answer within `timeout_s`, or the connection lost mid-request: the write
  may have happened; resending is safe because it is an upsert;
- `Rejected` — 400 (`REQUIRED_FIELD_MISSING`, `INVALID_FIELD`, `MALFORMED_ID`,
  `DUPLICATES_DETECTED` from a duplicate rule, …), 401 after one token refresh, 403, 404,
  300 (the external id is not unique), with Salesforce's errorCode and message.

No retries inside: the outbox owns them. The client is synchronous, so each item's calls run
in a worker thread; `timeout_s` bounds all the HTTP requests of one item together and should
stay below the outbox's send timeout. Nothing here logs: not the secrets, not the token, not
the prospect's words (Salesforce's messages are stripped of the record's personal values
before they become an outcome's reason, which the outbox stores and alerts with).

For the wiring: items of one conversation must reach the sender in event order, on one
outbox channel (a quote's or note's Task looks its deal's record up, and a deal's later
stage must not be overtaken by an earlier one), and the item key must be per event
(`crm_sync_requested`'s seq): a deal's external id is the same for every update of it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

import requests
from simple_salesforce.api import Salesforce, SFType
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceResourceNotFound,
)
from simple_salesforce.util import Usage
from urllib3.exceptions import NewConnectionError

from adapters.crm.common import library_version, outcome_for_status, record_of, redacted
from adapters.crm.leads import parse_lead_key
from adapters.crm.salesforce_auth import (
    SalesforceAuthError,
    SalesforceCredentials,
    SalesforceToken,
    fetch_token,
)
from adapters.crm.salesforce_records import (
    ADAPTER_NAME,
    ADAPTER_VERSION,
    EXTERNAL_ID_FIELD,
    MODES,
    Mode,
    QuoteLine,
    QuoteRefusedError,
    contact_fields,
    discount_percent,
    lead_fields,
    opportunity_fields,
    price_book_name,
    pricebook_entry_query,
    quote_fields,
    quote_line_external_id,
    quote_line_fields,
    quote_lines,
    task_fields,
)
from adapters.ports import Delivery, Rejected, RetryLater, SendOutcome, Sent, TimedOut
from domain.crm import CrmRecord

__all__ = [
    "ADAPTER_NAME",
    "ADAPTER_VERSION",
    "DEFAULT_API_VERSION",
    "ApiUsage",
    "SalesforceCredentials",
    "SalesforceSender",
]

DEFAULT_API_VERSION = "62.0"
"""Winter '25; any version from 46.0 answers an upsert that updates with 200 and the id."""

LIMIT_RETRY_MS = 15 * 60 * 1000
"""After REQUEST_LIMIT_EXCEEDED: the allocation is a rolling 24 hours, so capacity comes
back gradually; a quarter of an hour between tries spends few of the outbox's attempts."""


@dataclass(frozen=True)
class ApiUsage:
    """The org's daily API allocation, from the last `Sforce-Limit-Info: api-usage=N/M`
    (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm)."""

    used: int
    total: int

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.used)


class _Session(requests.Session):
    """A requests session whose requests share one time budget per item (simple-salesforce's
    upsert passes no timeout of its own; one item may take several requests, and together
    they must end before the outbox gives up on the send), and use the session's `verify`:
    requests otherwise lets `REQUESTS_CA_BUNDLE` from the environment replace it."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout_s = timeout_s
        self._local = threading.local()

    @contextmanager
    def budget(self) -> Iterator[None]:
        """Every request in this block (on this thread) shares `timeout_s`."""
        self._local.deadline = time.monotonic() + self._timeout_s
        try:
            yield
        finally:
            self._local.deadline = None

    def request(
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        timeout = self._timeout_s
        deadline = getattr(self._local, "deadline", None)
        if deadline is not None:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise requests.ReadTimeout("the item's time budget is spent")
        kwargs.setdefault("timeout", timeout)
        kwargs.setdefault("verify", self.verify)
        return super().request(method, url, *args, **kwargs)


class _MissingParentError(Exception):
    """A quote or note whose deal is not in Salesforce (its own write failed)."""


class SalesforceSender:
    """The `Sender` (adapters.ports) for CRM items when the CRM is Salesforce.

    `mode` is "lead" (the deal is a Lead) or "contact_opportunity" (a Contact and an
    Opportunity); `verify` is requests' (a CA bundle path in tests); `today` dates the
    opportunities (CloseDate)."""

    adapter = ADAPTER_NAME
    adapter_version = ADAPTER_VERSION
    library = library_version("simple-salesforce")

    def __init__(
        self,
        credentials: SalesforceCredentials,
        *,
        mode: Mode = "lead",
        api_version: str = DEFAULT_API_VERSION,
        timeout_s: float = 8.0,
        verify: bool | str = True,
        multicurrency: bool = False,
        limit_retry_ms: int = LIMIT_RETRY_MS,
        today: Callable[[], date] = date.today,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"Salesforce mode must be one of {', '.join(MODES)}, not {mode!r}")
        self._credentials = credentials
        self._mode: Mode = mode
        self._api_version = api_version.removeprefix("v")
        self._timeout_s = timeout_s
        self._multicurrency = multicurrency
        self._limit_retry_ms = limit_retry_ms
        self._today = today
        self._session = _Session(timeout_s)
        self._session.verify = verify
        self._session.hooks["response"].append(self._observe)
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._client: Salesforce | None = None
        self._usage: ApiUsage | None = None

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def session(self) -> requests.Session:
        """The HTTP session every call goes through (timeouts, CA, limit observation)."""
        return self._session

    @property
    def api_usage(self) -> ApiUsage | None:
        """The daily API allocation as of the last answer (None before the first), for
        `/readyz` to show."""
        return self._usage

    async def send(self, delivery: Delivery) -> SendOutcome:
        try:
            record = record_of(delivery)
        except ValueError as exc:
            return Rejected(reason=f"not a CRM record: {type(exc).__name__}")
        return redacted(await asyncio.to_thread(self.write, record))

    async def find_sent(self, delivery: Delivery) -> str | None:
        """Always None: every write is an upsert by external id, so sending it again *is*
        the safe way to find out — it updates the record an uncertain first try created.
        (Finding the record would not do: a deal's record exists from earlier items, and
        its presence says nothing about whether this update landed.)"""
        return None

    def write(self, record: CrmRecord) -> SendOutcome:
        """Carry out one record synchronously (what `send` runs in a worker thread).

        One write at a time: a thread cannot be cancelled, so when the outbox gives up on a
        send (its own timeout) the thread may still finish its upserts later; holding the
        lock until then keeps a late, older write of a deal from landing after a newer one.
        """
        with self._writing, self._session.budget():
            return self._write_now(record)

    def _write_now(self, record: CrmRecord) -> SendOutcome:
        try:
            client = self._current_client()
            try:
                return Sent(remote_id=self._write(client, record))
            except SalesforceExpiredSession:
                # The session expired or was revoked: one new token, one more try.
                return Sent(remote_id=self._write(self._login(stale=client), record))
        except SalesforceAuthError as exc:
            reason = str(exc)
            return RetryLater(reason=reason) if exc.transient else Rejected(reason=reason)
        except _MissingParentError as exc:
            return Rejected(reason=f"404: NOT_FOUND: {exc}")
        except QuoteRefusedError as exc:
            return Rejected(reason=f"not written as a Salesforce Quote: {exc}")
        except SalesforceError as exc:
            return self._outcome(exc, record)
        except requests.ConnectTimeout:
            return RetryLater(reason="connection to Salesforce timed out")
        except requests.exceptions.SSLError:
            return RetryLater(reason="TLS handshake with Salesforce failed")
        except requests.ConnectionError as exc:
            if not _never_connected(exc):
                return TimedOut(reason=f"connection to Salesforce lost: {type(exc).__name__}")
            return RetryLater(reason="could not connect to Salesforce")
        except requests.Timeout:
            return TimedOut(reason=f"no answer from Salesforce within {self._timeout_s} s")

    # -- the writes -------------------------------------------------------------------

    def _write(self, client: Salesforce, record: CrmRecord) -> str:
        deal = record.deal
        if record.artifact == "deal":
            if self._mode == "lead":
                fields = lead_fields(record, multicurrency=self._multicurrency)
                origin = _origin_lead(record)
                if origin is not None:
                    return self._claim(client, "Lead", origin, deal.external_id, fields)
                return self._upsert(client, "Lead", deal.external_id, fields)
            existing = self._find(client, "Opportunity", deal.external_id)
            contact_id = None
            if existing is None and record.contact is not None:
                contact_id = self._upsert(
                    client, "Contact", record.contact.external_id, contact_fields(record)
                )
            fields = opportunity_fields(
                record,
                today=self._today(),
                creating=existing is None,
                contact_id=contact_id,
                multicurrency=self._multicurrency,
            )
            return self._upsert(client, "Opportunity", deal.external_id, fields)
        parent_type = "Lead" if self._mode == "lead" else "Opportunity"
        parent = self._find(client, parent_type, deal.external_id)
        if parent is None:
            raise _MissingParentError(f"{parent_type} {deal.external_id} is not in Salesforce")
        parent_id = str(parent["Id"])
        if (
            record.artifact == "quote"
            and record.quote_as == "quote"
            and self._mode == "contact_opportunity"
        ):
            contact = parent.get("ContactId")
            return self._write_quote(client, record, parent_id, str(contact) if contact else None)
        who_id: str | None = parent_id
        what_id: str | None = None
        if self._mode == "contact_opportunity":
            contact = parent.get("ContactId")
            who_id, what_id = (str(contact) if contact else None), parent_id
        fields = task_fields(record, who_id=who_id, what_id=what_id)
        return self._upsert(client, "Task", record.external_id, fields)

    def _write_quote(
        self, client: Salesforce, record: CrmRecord, opportunity_id: str, contact_id: str | None
    ) -> str:
        """A quote as a Quote on the opportunity and one QuoteLineItem per line.

        Every line's price book entry is found first, so a SKU Salesforce cannot price
        refuses the write before the Quote exists (no half-written quote); then the Quote
        and each line are upserted by their own external ids, so a resent item updates them
        and never adds a second Quote or line. Each record is looked up first because its
        parent ids (`OpportunityId`, `QuoteId`, `PricebookEntryId`) can be set only on
        create. Its Salesforce id is the Quote's."""
        quote = record.quote
        if quote is None:
            raise QuoteRefusedError(f"quote {record.external_id} is no longer in the conversation")
        lines = quote_lines(quote)
        entries = [self._price_entry(client, record, line) for line in lines]
        pricebook_id = str(entries[0]["Pricebook2Id"])
        existing = self._find(client, "Quote", record.external_id)
        fields = quote_fields(
            record,
            creating=existing is None,
            opportunity_id=opportunity_id,
            pricebook_id=pricebook_id,
            contact_id=contact_id,
        )
        quote_id = self._upsert(client, "Quote", record.external_id, fields)
        if not quote_id and existing is not None:
            quote_id = str(existing["Id"])
        for line, entry in zip(lines, entries, strict=True):
            line_id = quote_line_external_id(record.external_id, line)
            found = self._find(client, "QuoteLineItem", line_id)
            line_fields = quote_line_fields(
                record,
                line,
                creating=found is None,
                quote_id=quote_id,
                pricebook_entry_id=str(entry["Id"]),
            )
            self._upsert(client, "QuoteLineItem", line_id, line_fields)
        return quote_id

    def _price_entry(
        self, client: Salesforce, record: CrmRecord, line: QuoteLine
    ) -> Mapping[str, Any]:
        """The active PricebookEntry pricing this line (REST "Query" resource, SOQL), or a
        refusal naming the SKU: without one Salesforce cannot hold the line."""
        assert record.quote is not None
        currency = record.quote.currency
        where = price_book_name(record.price_book)
        if line.discount:
            discount_percent(line.discount)  # refused now, before anything is written
        if line.sku is None:
            raise QuoteRefusedError(
                f"line {line.number} has a custom unit price and no SKU, and a QuoteLineItem "
                f"needs a product's price book entry; quote catalog SKUs, or set "
                '[crm] quote_as = "line_items"'
            )
        soql = pricebook_entry_query(
            line.sku,
            currency=currency,
            price_book=record.price_book,
            multicurrency=self._multicurrency,
        )
        found = client.query(soql)
        rows = found.get("records", []) if isinstance(found, Mapping) else []
        if not rows:
            in_currency = f" in {currency}" if self._multicurrency else ""
            raise QuoteRefusedError(
                f"SKU {line.sku!r} has no active price book entry in {where}{in_currency}: "
                f"add the product with Product Code {line.sku!r} to it in Salesforce"
            )
        if len(rows) > 1:
            raise QuoteRefusedError(
                f"SKU {line.sku!r} matches more than one active price book entry in {where}: "
                "give the product codes one product each"
            )
        return dict(rows[0])

    def _upsert(
        self, client: Salesforce, sobject: str, external_id: str, fields: Mapping[str, Any]
    ) -> str:
        sf_type = getattr(client, sobject)
        if not isinstance(sf_type, SFType):
            raise TypeError(f"{sobject} is not an sObject type")
        response = sf_type.upsert(
            f"{EXTERNAL_ID_FIELD}/{quote(external_id, safe='')}", dict(fields), raw_response=True
        )
        if response.status_code == 204:
            # API versions before 46.0 answer an update with no body: look the id up.
            found = self._find(client, sobject, external_id)
            return str(found["Id"]) if found is not None else ""
        return str(response.json()["id"])

    def _claim(
        self,
        client: Salesforce,
        sobject: str,
        record_id: str,
        external_id: str,
        fields: Mapping[str, Any],
    ) -> str:
        """Update the record the lead came from by its Id, giving it our external id, so
        this and every later write lands on it rather than on a second record for the same
        person (an update by Id is as safe to resend as an upsert)."""
        sf_type = getattr(client, sobject)
        if not isinstance(sf_type, SFType):
            raise TypeError(f"{sobject} is not an sObject type")
        sf_type.update(record_id, {**fields, EXTERNAL_ID_FIELD: external_id})
        return record_id

    def _find(self, client: Salesforce, sobject: str, external_id: str) -> dict[str, Any] | None:
        """The record with this external id (GET sObject Rows by External ID), or None."""
        path = f"sobjects/{sobject}/{EXTERNAL_ID_FIELD}/{quote(external_id, safe='')}"
        try:
            found = client.restful(path)
        except SalesforceResourceNotFound:
            return None
        return dict(found) if isinstance(found, Mapping) else None

    # -- the session ------------------------------------------------------------------

    def _current_client(self) -> Salesforce:
        with self._lock:
            client = self._client
        return client if client is not None else self._login(stale=None)

    def _login(self, *, stale: Salesforce | None) -> Salesforce:
        """A client on a fresh token, unless another thread already replaced `stale`."""
        with self._lock:
            if self._client is not None and self._client is not stale:
                return self._client
            token = fetch_token(self._session, self._credentials)
            self._client = self.client_for(token)
            return self._client

    def client_for(self, token: SalesforceToken) -> Salesforce:
        return Salesforce(
            instance_url=token.instance_url,
            session_id=token.access_token,
            version=self._api_version,
            session=self._session,
        )

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Every answer's `Sforce-Limit-Info` (errors included) updates `api_usage`."""
        header = response.headers.get("Sforce-Limit-Info")
        if not header:
            return
        usage = Salesforce.parse_api_usage(header).get("api-usage")
        if isinstance(usage, Usage):
            self._usage = ApiUsage(used=usage.used, total=usage.total)

    # -- answers ----------------------------------------------------------------------

    def _outcome(self, exc: SalesforceError, record: CrmRecord) -> SendOutcome:
        code, message = first_error(exc.content)
        message = scrub(message, record)
        where = exc.resource_name.split("/")[1] if "/" in exc.resource_name else exc.resource_name
        words = " ".join(part for part in (code, f"on {where}" if where else "") if part)
        reason = f"{words}: {message}" if message else words
        if code == "REQUEST_LIMIT_EXCEEDED":
            return RetryLater(reason=f"{exc.status}: {reason}", retry_after_ms=self._limit_retry_ms)
        if exc.status == 300:
            return Rejected(
                reason=f"300: more than one {where} has this {EXTERNAL_ID_FIELD}; "
                "the field must be Unique (docs/crm.md, Salesforce)"
            )
        return outcome_for_status(exc.status, reason)


def _origin_lead(record: CrmRecord) -> str | None:
    """The Id of the Salesforce Lead a lead came from (`CrmContact.origin`), if it did."""
    origin = parse_lead_key(record.contact.origin if record.contact is not None else None)
    if origin is None:
        return None
    vendor, _org, kind, record_id = origin
    return record_id if vendor == "salesforce" and kind == "Lead" else None


def _never_connected(exc: requests.ConnectionError) -> bool:
    """The connection was refused or never opened: nothing reached Salesforce."""
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)


def first_error(content: Any) -> tuple[str, str]:
    """(errorCode, message) of Salesforce's error body: a JSON array of
    `{"message", "errorCode", "fields"}` (REST API, "Status Codes and Error Responses")."""
    if isinstance(content, bytes | str):
        try:
            content = json.loads(content)
        except ValueError:
            return "", ""
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        error = content[0]
        message = str(error.get("message", ""))
        fields = error.get("fields")
        named = isinstance(fields, list) and all(isinstance(f, str) for f in fields)
        if named and fields and not all(f in message for f in fields):
            message = f"{message} [{', '.join(fields)}]"
        return str(error.get("errorCode", "")), message
    return "", ""


def scrub(message: str, record: CrmRecord) -> str:
    """Salesforce's message without the record's personal values (some messages quote
    the value they refused, e.g. an invalid e-mail address)."""
    contact = record.contact
    values = [v for v in (contact.email, contact.name, contact.company) if v] if contact else []
    values += list(record.note_lines)
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= 3:
            message = message.replace(value, "[redacted]")
    return message
