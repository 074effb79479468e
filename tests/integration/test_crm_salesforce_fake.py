"""A fake Salesforce org on https://127.0.0.1 (port 0), for pointing the real
`simple-salesforce` client at, and the tests showing it refuses what Salesforce refuses.

    with FakeSalesforce() as org:
        sender = SalesforceSender(org.credentials(), verify=org.ca_file, ...)
        ...
        org.records("Lead")      # {external id: record}

It serves the OAuth token endpoint and the REST resources the sender uses — upsert and get
by external id, update by Id, describe, limits, versions, and the SOQL Query resource for
the one query the sender makes (a PricebookEntry by product code) — over TLS with a certificate from a throwaway
authority (`trustme`), because simple-salesforce speaks https only. Every request is
checked against `tests/fixtures/crm/salesforce/rest_shapes.json` (Salesforce's documented
shapes, sources named beside it): the form of the token request, the bearer token, the JSON
body, each field known to its object and of its type and length, required fields on create,
create-only fields refused on update, picklist values, references to records that exist.
A request that breaks a rule gets Salesforce's own error answer, so a sender that drifts
from the documented shapes fails its contract tests.

Scripted trouble, each for the next call touching an sObject:

    org.fail_next("Lead", 503, "SERVER_UNAVAILABLE", "Server busy")
    release = org.hang_next("Lead")   # stores the write, answers only once released
    org.expire_sessions()             # every token issued so far is now invalid (401)
    org.refuse_sessions()             # and every future one too
    org.require("Lead", "Industry")   # an org-specific required field
    org.drop_field("Task", "Salesbot_Id__c")  # a set-up step skipped
    org.duplicate_rule("Lead", "Email")       # a duplicate rule blocking on create

Price books, for Quotes (`[crm] quote_as = "quote"`): `org.price_book_entry("pro", 99)`
adds a product with that Product Code and its entry in the standard price book (the book
made the first time); a QuoteLineItem is refused unless its entry is in its Quote's book.
"""

from __future__ import annotations

import itertools
import json
import re
import ssl
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
import trustme

from adapters.crm.salesforce_auth import SalesforceCredentials

SHAPES = json.loads(
    (Path(__file__).parents[1] / "fixtures/crm/salesforce/rest_shapes.json").read_text("utf-8")
)
OBJECTS: dict[str, Any] = SHAPES["objects"]
VERSIONS = ("60.0", "61.0", "62.0")
DAILY_LIMIT = 15000
USER_ID = re.compile(r"^005[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

CUSTOM_FIELDS: dict[str, dict[str, dict[str, Any]]] = {
    # As docs/crm.md's Setup steps create them (Text → string, Number → double).
    **{
        sobject: {
            "Salesbot_Id__c": {"type": "string", "length": 255, "externalId": True, "unique": True},
            "Salesbot_Adapter__c": {"type": "string", "length": 64},
        }
        for sobject in ("Lead", "Contact", "Opportunity", "Task", "Quote", "QuoteLineItem")
    }
}
for _deal_object in ("Lead", "Opportunity"):
    CUSTOM_FIELDS[_deal_object].update(
        {
            "Salesbot_Band__c": {"type": "string", "length": 20},
            "Salesbot_Hot_Probability__c": {"type": "double", "scale": 4},
            "Salesbot_Source__c": {"type": "string", "length": 80},
            "Salesbot_Lost_Reason__c": {"type": "string", "length": 255},
        }
    )
CUSTOM_FIELDS["Lead"]["Salesbot_Amount__c"] = {"type": "currency", "scale": 2}


class _RefusalError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields


@dataclass
class _Fault:
    status: int
    code: str
    message: str


class FakeSalesforce:
    def __init__(
        self,
        *,
        client_id: str = "3MVG9fake.client",
        client_secret: str = "fake-secret-9c1e",
        username: str = "integration@example.com",
        password: str = "pa55word",
        security_token: str = "TOKEN123",
        api_version: str = "62.0",
        multicurrency: bool = False,
        quotes_enabled: bool = True,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password
        self.security_token = security_token
        self.api_version = api_version
        self.multicurrency = multicurrency
        self.quotes_enabled = quotes_enabled
        """False: an org where Setup → Quote Settings was never switched on, which has no
        Quote or QuoteLineItem object (describe and writes answer 404 NOT_FOUND)."""
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._valid_tokens: set[str] = set()
        self._refusing = False
        self._records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in OBJECTS}
        self._faults: dict[str, list[_Fault]] = {}
        self._hangs: dict[str, list[threading.Event]] = {}
        self._released: list[threading.Event] = []
        self._required: dict[str, set[str]] = {}
        self._dropped: set[tuple[str, str]] = set()
        self._duplicate_rules: dict[str, str] = {}
        self._picklists: dict[tuple[str, str], tuple[str, ...]] = {}
        self._altered: dict[tuple[str, str], dict[str, Any]] = {}
        self.api_calls = 0
        self.violations: list[str] = []
        """Requests the fake could not judge (a bug in the fake or a value no field keeps)."""
        self.token_requests: list[dict[str, str]] = []
        self.queries: list[str] = []
        """Every SOQL query asked, as the `q` parameter read it."""
        self._standard_book: str | None = None
        self.writes: list[tuple[str, str, dict[str, Any]]] = []
        """(sObject, external id, body) of every upsert that reached the org's data."""
        self._ca = trustme.CA()
        self._dir = tempfile.TemporaryDirectory()
        self.ca_file = str(Path(self._dir.name) / "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1").configure_cert(context)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> FakeSalesforce:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            for events in self._hangs.values():
                for event in events:
                    event.set()
            for event in self._released:
                event.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._dir.cleanup()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def credentials(
        self, *, password_flow: bool = False, secret: str | None = None
    ) -> SalesforceCredentials:
        if password_flow:
            return SalesforceCredentials(
                login_url=self.url,
                client_id=self.client_id,
                client_secret=secret or self.client_secret,
                username=self.username,
                password=self.password,
                security_token=self.security_token,
            )
        return SalesforceCredentials(
            login_url=self.url, client_id=self.client_id, client_secret=secret or self.client_secret
        )

    # -- what the org holds -------------------------------------------------------------

    def records(self, sobject: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {key: dict(value) for key, value in self._records[sobject].items()}

    def by_id(self, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            for records in self._records.values():
                for record in records.values():
                    if record["Id"] == record_id:
                        return dict(record)
        return None

    def create(self, sobject: str, **fields: Any) -> str:
        """A record a person made in Salesforce (no external id): its new Id."""
        with self._lock:
            prefix = OBJECTS[sobject]["id_prefix"]
            record_id = f"{prefix}{next(self._ids):012d}AAA"
            self._records[sobject][f"#{record_id}"] = {"Id": record_id, **fields}
        return record_id

    # -- scripted trouble ---------------------------------------------------------------

    def fail_next(self, sobject: str, status: int, code: str, message: str) -> None:
        with self._lock:
            self._faults.setdefault(sobject, []).append(_Fault(status, code, message))

    def hang_next(self, sobject: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._hangs.setdefault(sobject, []).append(event)
            self._released.append(event)
        return event

    def expire_sessions(self) -> None:
        with self._lock:
            self._valid_tokens.clear()

    def refuse_sessions(self) -> None:
        with self._lock:
            self._valid_tokens.clear()
            self._refusing = True

    def require(self, sobject: str, field: str) -> None:
        with self._lock:
            self._required.setdefault(sobject, set()).add(field)

    def alter_field(self, sobject: str, field: str, **properties: Any) -> None:
        """A field created with other settings than docs/crm.md asks (e.g. not Unique)."""
        with self._lock:
            self._altered[(sobject, field)] = properties

    def drop_field(self, sobject: str, field: str) -> None:
        with self._lock:
            self._dropped.add((sobject, field))

    def add_picklist_values(self, sobject: str, field: str, *values: str) -> None:
        """Values an admin added in Setup (e.g. the Lead Status values docs/crm.md asks for)."""
        with self._lock:
            known = self._picklists.get(
                (sobject, field), tuple(OBJECTS[sobject]["fields"][field]["values"])
            )
            self._picklists[(sobject, field)] = (*known, *values)

    def duplicate_rule(self, sobject: str, field: str) -> None:
        with self._lock:
            self._duplicate_rules[sobject] = field

    def price_book(self, name: str = "Standard Price Book", *, standard: bool = False) -> str:
        """A Pricebook2 (the org's standard one once, made on first need): its Id."""
        with self._lock:
            if standard and self._standard_book is not None:
                return self._standard_book
            book = self.create("Pricebook2", Name=name, IsActive=True, IsStandard=standard)
            if standard:
                self._standard_book = book
            return book

    def price_book_entry(
        self,
        sku: str,
        unit_price: int | str,
        *,
        book: str | None = None,
        currency: str = "USD",
        active: bool = True,
    ) -> str:
        """A product with Product Code `sku` and its entry in `book` (the standard price book
        by default): the entry's Id, what a QuoteLineItem's PricebookEntryId names."""
        book = book or self.price_book(standard=True)
        product = self.create("Product2", Name=f"Product {sku}", ProductCode=sku, IsActive=True)
        fields: dict[str, Any] = {
            "Pricebook2Id": book,
            "Product2Id": product,
            "ProductCode": sku,
            "Name": f"Product {sku}",
            "UnitPrice": Decimal(unit_price),
            "IsActive": active,
        }
        if self.multicurrency:
            fields["CurrencyIsoCode"] = currency
        return self.create("PricebookEntry", **fields)

    # -- the org's schema ---------------------------------------------------------------

    def fields(self, sobject: str) -> dict[str, dict[str, Any]]:
        fields = {**OBJECTS[sobject]["fields"], **CUSTOM_FIELDS.get(sobject, {})}
        if not self.multicurrency:
            fields = {k: v for k, v in fields.items() if not v.get("multicurrency_only")}
        for (picklist_object, name), values in self._picklists.items():
            if picklist_object == sobject:
                fields[name] = {**fields[name], "values": list(values)}
        for (altered_object, name), properties in self._altered.items():
            if altered_object == sobject:
                fields[name] = {**fields[name], **properties}
        if _version(self.api_version) < Decimal("46.0"):
            fields = {k: v for k, v in fields.items() if "since_version" not in v}
        return {k: v for k, v in fields.items() if (sobject, k) not in self._dropped}

    def describe(self, sobject: str) -> dict[str, Any]:
        return {
            "name": sobject,
            "fields": [
                {
                    "name": "Id",
                    "type": "id",
                    "length": 18,
                    "externalId": False,
                    "unique": False,
                    "createable": False,
                    "updateable": False,
                    "nillable": False,
                },
                *(
                    {
                        "name": name,
                        "type": spec["type"],
                        "length": spec.get("length", 0),
                        "externalId": spec.get("externalId", False),
                        "unique": spec.get("unique", False),
                        "createable": spec.get("createable", True),
                        "updateable": spec.get("updateable", True),
                        "nillable": name not in OBJECTS[sobject]["required_on_create"],
                    }
                    for name, spec in self.fields(sobject).items()
                ),
            ],
        }

    # -- handling (called from the server's threads) ------------------------------------

    def _token(self, form: dict[str, str]) -> tuple[int, Any]:
        self.token_requests.append(
            {k: ("…" if "secret" in k or k == "password" else v) for k, v in form.items()}
        )
        grant = form.get("grant_type")
        errors = SHAPES["token"]["errors"]
        if grant not in SHAPES["token"]["grants"]:
            return 400, _oauth_error(errors["bad_grant"])
        missing = [k for k in SHAPES["token"]["grants"][grant] if not form.get(k)]
        if missing:
            return 400, {"error": "invalid_request", "error_description": f"missing {missing[0]}"}
        if form["client_id"] != self.client_id or form["client_secret"] != self.client_secret:
            return 400, _oauth_error(errors["bad_client"])
        if grant == "password" and (
            form["username"] != self.username
            or form["password"] != self.password + self.security_token
        ):
            return 400, _oauth_error(errors["bad_user"])
        with self._lock:
            token = f"00D000000000001!AQ{next(self._tokens):06d}"
            if not self._refusing:
                self._valid_tokens.add(token)
        return 200, {
            "access_token": token,
            "instance_url": self.url,
            "id": f"{self.url}/id/00D000000000001AAA/005000000000001AAA",
            "token_type": "Bearer",
            "issued_at": "1790000000000",
            "signature": "c2lnbmF0dXJl",
        }

    def _authorize(self, header: str | None) -> None:
        token = (header or "").removeprefix("Bearer ")
        with self._lock:
            valid = bool(header and header.startswith("Bearer ")) and token in self._valid_tokens
        if not valid:
            raise _RefusalError(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def _trouble(self, sobject: str, *, writing: bool = True) -> threading.Event | None:
        """The next scripted fault for any call touching `sobject`; the next hang only for
        a write (a look-up before the write leaves it for the write)."""
        with self._lock:
            faults = self._faults.get(sobject)
            if faults:
                fault = faults.pop(0)
                raise _RefusalError(fault.status, fault.code, fault.message)
            hangs = self._hangs.get(sobject)
            return hangs.pop(0) if hangs and writing else None

    def _get(self, sobject: str, field: str, value: str) -> dict[str, Any]:
        self._external_id_field(sobject, field)
        with self._lock:
            record = self._records[sobject].get(value)
        if record is None:
            missing = SHAPES["get_by_external_id"]["missing"]
            raise _RefusalError(404, missing["errorCode"], missing["message"])
        return {
            "attributes": {
                "type": sobject,
                "url": f"/services/data/v{self.api_version}/sobjects/{sobject}/{record['Id']}",
            },
            **record,
        }

    def _update_by_id(self, sobject: str, record_id: str, body: Any) -> tuple[int, Any]:
        """PATCH sObject Rows by Id (`update_by_id`): the fields given change, an external id
        among them included (the record is then found by it), and nothing is answered."""
        if not isinstance(body, dict):
            raise _RefusalError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        with self._lock:
            found = [
                (key, record)
                for key, record in self._records[sobject].items()
                if record["Id"][:15] == record_id[:15]
            ]
            if not found:
                missing = SHAPES["update_by_id"]["missing"]
                raise _RefusalError(404, missing["errorCode"], missing["message"])
            key, record = found[0]
            known = self.fields(sobject)
            for name, given in body.items():
                spec = known.get(name)
                if spec is None or name == "Id":
                    raise _RefusalError(
                        400,
                        "INVALID_FIELD",
                        f"No such column '{name}' on sobject of type {sobject}",
                    )
                if spec.get("updateable", True) is False:
                    raise _RefusalError(
                        400,
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {name}.",
                        (name,),
                    )
                self._check_value(sobject, name, spec, given)
            external = body.get("Salesbot_Id__c")
            if isinstance(external, str) and external != key:
                if external in self._records[sobject]:
                    raise _RefusalError(
                        400,
                        "DUPLICATE_VALUE",
                        "duplicate value found: Salesbot_Id__c duplicates value on record",
                        ("Salesbot_Id__c",),
                    )
                del self._records[sobject][key]
                self._records[sobject][external] = record
            record.update(body)
            self.writes.append((sobject, record["Id"], dict(body)))
        return SHAPES["update_by_id"]["updated"]["status"], None

    def _external_id_field(self, sobject: str, field: str) -> None:
        spec = self.fields(sobject).get(field)
        if spec is None or not spec.get("externalId"):
            raise _RefusalError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field}",
            )

    def _upsert(self, sobject: str, field: str, value: str, body: Any) -> tuple[int, Any]:
        self._external_id_field(sobject, field)
        if not isinstance(body, dict):
            raise _RefusalError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        if field in body or "Id" in body:
            raise _RefusalError(
                400,
                "INVALID_FIELD",
                f"The external ID field {field} should not be specified in the sobject data",
                (field,),
            )
        with self._lock:
            existing = self._records[sobject].get(value)
            creating = existing is None
            known = self.fields(sobject)
            for name, given in body.items():
                spec = known.get(name)
                if spec is None:
                    raise _RefusalError(
                        400,
                        "INVALID_FIELD",
                        f"No such column '{name}' on sobject of type {sobject}",
                    )
                if spec.get("createable", True) is False or (
                    not creating and spec.get("updateable", True) is False
                ):
                    raise _RefusalError(
                        400,
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {name}. Please check the security "
                        "settings of this field and verify that it is read/write for your "
                        "profile or permission set.",
                        (name,),
                    )
                self._check_value(sobject, name, spec, given)
            if creating:
                required = [
                    *OBJECTS[sobject]["required_on_create"],
                    *self._required.get(sobject, ()),
                ]
                missing = [name for name in required if body.get(name) in (None, "")]
                if missing:
                    raise _RefusalError(
                        400,
                        "REQUIRED_FIELD_MISSING",
                        f"Required fields are missing: [{', '.join(missing)}]",
                        tuple(missing),
                    )
                if sobject == "QuoteLineItem":
                    self._same_price_book(body)
                rule = self._duplicate_rules.get(sobject)
                if (
                    rule
                    and body.get(rule)
                    and any(
                        other.get(rule) == body[rule] for other in self._records[sobject].values()
                    )
                ):
                    raise _RefusalError(400, "DUPLICATES_DETECTED", "Use one of these records?")
                prefix = OBJECTS[sobject]["id_prefix"]
                record = {"Id": f"{prefix}{next(self._ids):012d}AAA", field: value}
                self._records[sobject][value] = record
            else:
                assert existing is not None
                record = existing
            record.update(body)
            self.writes.append((sobject, value, dict(body)))
        result = {"id": record["Id"], "success": True, "errors": [], "created": creating}
        if creating:
            return 201, result
        if _version(self.api_version) < Decimal("46.0"):
            return 204, None
        return 200, result

    def _same_price_book(self, body: dict[str, Any]) -> None:
        """A quote line's entry must be in its Quote's price book (and the Quote have one)."""
        quote = self.by_id(str(body.get("QuoteId")))
        entry = self.by_id(str(body.get("PricebookEntryId")))
        book = quote.get("Pricebook2Id") if quote is not None else None
        if entry is None or book is None or entry.get("Pricebook2Id") != book:
            rule = OBJECTS["QuoteLineItem"]["pricebook_rule"]
            raise _RefusalError(
                400,
                rule["errorCode"],
                "field integrity exception: PricebookEntryId (pricebook entry is in a different "
                "pricebook than the one assigned to the Quote, or the Quote has none)",
                ("PricebookEntryId",),
            )

    def _query(self, soql: str) -> dict[str, Any]:
        """The Query resource, for the shape of query the sender makes: `SELECT fields FROM
        PricebookEntry WHERE a = 'x' AND b = true … LIMIT n`, every field known to the object
        (a relationship's field through its reference, e.g. `Pricebook2.IsStandard`)."""
        self.queries.append(soql)
        match = SOQL.match(soql)
        if match is None:
            raise _RefusalError(400, "MALFORMED_QUERY", f"unexpected token in: {soql[:40]}")
        sobject = match["sobject"]
        if sobject not in OBJECTS:
            raise _RefusalError(400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        known = {"Id": {"type": "id"}, **self.fields(sobject)}
        selected = [name.strip() for name in match["fields"].split(",")]
        conditions: list[tuple[str, Any]] = []
        for clause in match["where"].split(" AND "):
            condition = CONDITION.match(clause.strip())
            if condition is None:
                raise _RefusalError(400, "MALFORMED_QUERY", f"unexpected token: {clause[:40]}")
            raw = condition["value"]
            value: Any = (
                raw == "true" if raw in ("true", "false") else re.sub(r"\\(.)", r"\1", raw[1:-1])
            )
            conditions.append((condition["field"], value))
        for name in [*selected, *(field for field, _ in conditions)]:
            if not self._queryable(sobject, name, known):
                raise _RefusalError(
                    400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'."
                )
        with self._lock:
            rows = [
                record
                for record in self._records[sobject].values()
                if all(self._value(record, field) == value for field, value in conditions)
            ]
        limit = int(match["limit"]) if match["limit"] else len(rows)
        rows = rows[:limit]
        return {
            "totalSize": len(rows),
            "done": True,
            "records": [
                {
                    "attributes": {
                        "type": sobject,
                        "url": f"/services/data/v{self.api_version}/sobjects/{sobject}/{row['Id']}",
                    },
                    **{name: row.get(name) for name in selected},
                }
                for row in rows
            ],
        }

    def _queryable(self, sobject: str, name: str, known: dict[str, Any]) -> bool:
        if "." not in name:
            return name in known
        relation, field = name.split(".", 1)
        spec = known.get(f"{relation}Id")
        return (
            spec is not None
            and spec["type"] == "reference"
            and relation in spec["refers_to"]
            and (field == "Id" or field in self.fields(relation))
        )

    def _value(self, record: dict[str, Any], name: str) -> Any:
        if "." not in name:
            return record.get(name)
        relation, field = name.split(".", 1)
        parent = self.by_id(str(record.get(f"{relation}Id")))
        return parent.get(field) if parent is not None else None

    def _check_value(self, sobject: str, name: str, spec: dict[str, Any], given: Any) -> None:
        kind = spec["type"]
        if given is None:
            return
        if kind in ("string", "textarea", "email", "combobox", "picklist"):
            if not isinstance(given, str):
                raise _RefusalError(400, "JSON_PARSER_ERROR", f"Cannot deserialize {name} as text")
            if "length" in spec and len(given) > spec["length"]:
                raise _RefusalError(
                    400,
                    "STRING_TOO_LONG",
                    f"{name}: data value too large: {given[:20]}… (max length={spec['length']})",
                    (name,),
                )
            if kind == "email" and "@" not in given:
                raise _RefusalError(
                    400, "INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {given}", (name,)
                )
            if kind == "picklist" and given not in spec["values"]:
                raise _RefusalError(
                    400,
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{name}: bad value for restricted picklist field: {given}",
                    (name,),
                )
        elif kind == "boolean":
            if not isinstance(given, bool):
                raise _RefusalError(
                    400, "JSON_PARSER_ERROR", f"Cannot deserialize {name} as a boolean"
                )
        elif kind in ("currency", "double", "percent"):
            if isinstance(given, bool) or not isinstance(given, Decimal | int):
                raise _RefusalError(
                    400, "JSON_PARSER_ERROR", f"Cannot deserialize {name} as a number"
                )
            exponent = Decimal(given).as_tuple().exponent
            if isinstance(exponent, int) and -exponent > spec.get("scale", 18):
                raise ValueError(f"{name}={given}: more decimals than the field keeps")
        elif kind == "date":
            if not isinstance(given, str) or not DATE.match(given):
                raise _RefusalError(
                    400, "JSON_PARSER_ERROR", f"Cannot deserialize {name} as a date"
                )
        elif kind == "reference":
            if not isinstance(given, str):
                raise _RefusalError(
                    400, "MALFORMED_ID", f"{name}: id value of incorrect type: {given}"
                )
            targets = spec["refers_to"]
            if "User" in targets and USER_ID.match(given):
                return
            target = self.by_id(given)
            prefixes = {OBJECTS[t]["id_prefix"] for t in targets if t in OBJECTS}
            if target is None or given[:3] not in prefixes:
                code = (
                    "MALFORMED_ID"
                    if not re.match(r"^[A-Za-z0-9]{15,18}$", given)
                    else "INVALID_CROSS_REFERENCE_KEY"
                )
                raise _RefusalError(
                    400, code, f"{name}: id value of incorrect type: {given}", (name,)
                )


def _version(text: str) -> Decimal:
    return Decimal(text)


def _oauth_error(spec: dict[str, Any]) -> dict[str, str]:
    return {"error": spec["error"], "error_description": spec["error_description"]}


API = re.compile(r"^/services/data/v(?P<version>\d+\.\d)/(?P<rest>.*)$")
ROW = re.compile(r"^sobjects/(?P<sobject>\w+)/(?P<field>\w+)/(?P<value>[^/]+)$")
BY_ID = re.compile(r"^sobjects/(?P<sobject>\w+)/(?P<id>[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?)$")
DESCRIBE = re.compile(r"^sobjects/(?P<sobject>\w+)/describe/?$")
SOQL = re.compile(
    r"^SELECT (?P<fields>[\w.]+(?:, ?[\w.]+)*) FROM (?P<sobject>\w+) "
    r"WHERE (?P<where>.+?)(?: LIMIT (?P<limit>\d+))?$"
)
CONDITION = re.compile(r"^(?P<field>[\w.]+) = (?P<value>'(?:[^'\\]|\\.)*'|true|false)$")


def _handler_for(org: FakeSalesforce) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _answer(self, status: int, body: Any, *, limit: bool = False) -> None:
            payload = b"" if body is None else json.dumps(body, default=float).encode()
            try:
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                if limit:
                    self.send_header(
                        "Sforce-Limit-Info", f"api-usage={org.api_calls}/{DAILY_LIMIT}"
                    )
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass  # the client gave up (a timeout test)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            if path != SHAPES["token"]["path"]:
                self._answer(404, [{"errorCode": "NOT_FOUND", "message": "no such resource"}])
                return
            content_type = self.headers.get("Content-Type", "")
            if not content_type.startswith(SHAPES["token"]["content_type"]):
                self._answer(
                    400, {"error": "invalid_request", "error_description": "form body expected"}
                )
                return
            form = {k: v[0] for k, v in parse_qs(self._body().decode()).items()}
            status, body = org._token(form)
            self._answer(status, body)

        def do_GET(self) -> None:
            self._guarded("GET")

        def do_PATCH(self) -> None:
            self._guarded("PATCH")

        def _guarded(self, method: str) -> None:
            """A request the fake cannot even judge is a test failure, not a hang."""
            try:
                self._api(method)
            except Exception as exc:
                org.violations.append(f"{method} {self.path}: {exc!r}")
                self._answer(
                    500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": "fake: see violations"}]
                )

        def _api(self, method: str) -> None:
            path = urlsplit(self.path).path
            if method == "GET" and path == SHAPES["versions"]["path"]:
                self._answer(
                    200,
                    [
                        {"label": f"v{v}", "url": f"/services/data/v{v}", "version": v}
                        for v in VERSIONS
                    ],
                )
                return
            match = API.match(path)
            if match is None:
                self._answer(404, [{"errorCode": "NOT_FOUND", "message": "no such resource"}])
                return
            body = self._body()
            with org._lock:
                org.api_calls += 1
            try:
                org._authorize(self.headers.get("Authorization"))
                if match["version"] != org.api_version or match["version"] not in VERSIONS:
                    raise _RefusalError(404, "NOT_FOUND", "The requested resource does not exist")
                rest = match["rest"]
                if method == "GET" and rest.rstrip("/") == "limits":
                    self._answer(
                        200,
                        {
                            "DailyApiRequests": {
                                "Max": DAILY_LIMIT,
                                "Remaining": DAILY_LIMIT - org.api_calls,
                            }
                        },
                        limit=True,
                    )
                    return
                if method == "GET" and rest.rstrip("/") == "query":
                    soql = parse_qs(urlsplit(self.path).query).get("q", [""])[0]
                    queried = SOQL.match(soql)
                    if queried is not None and queried["sobject"] in OBJECTS:
                        org._trouble(queried["sobject"], writing=False)
                    self._answer(200, org._query(soql), limit=True)
                    return
                named = re.match(r"^sobjects/(\w+)", rest)
                if (
                    named is not None
                    and named[1] in ("Quote", "QuoteLineItem")
                    and not org.quotes_enabled
                ):
                    raise _RefusalError(404, "NOT_FOUND", "The requested resource does not exist")
                described = DESCRIBE.match(rest)
                if method == "GET" and described and described["sobject"] in OBJECTS:
                    self._answer(200, org.describe(described["sobject"]), limit=True)
                    return
                by_id = BY_ID.match(rest)
                if method == "PATCH" and by_id is not None and by_id["sobject"] in OBJECTS:
                    if not self.headers.get("Content-Type", "").startswith("application/json"):
                        raise _RefusalError(
                            415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json"
                        )
                    try:
                        data = json.loads(body, parse_float=Decimal)
                    except ValueError:
                        raise _RefusalError(
                            400, "JSON_PARSER_ERROR", "Unexpected character"
                        ) from None
                    status, answer = org._update_by_id(by_id["sobject"], by_id["id"], data)
                    self._answer(status, answer, limit=True)
                    return
                row = ROW.match(rest)
                if row is None or row["sobject"] not in OBJECTS:
                    raise _RefusalError(404, "NOT_FOUND", "The requested resource does not exist")
                sobject, field, value = row["sobject"], row["field"], unquote(row["value"])
                hang = org._trouble(sobject, writing=method == "PATCH")
                if method == "GET":
                    self._answer(200, org._get(sobject, field, value), limit=True)
                    return
                if not self.headers.get("Content-Type", "").startswith("application/json"):
                    raise _RefusalError(
                        415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json"
                    )
                try:
                    data = json.loads(body, parse_float=Decimal)
                except ValueError:
                    raise _RefusalError(400, "JSON_PARSER_ERROR", "Unexpected character") from None
                status, answer = org._upsert(sobject, field, value, data)
                if hang is not None:
                    hang.wait(timeout=10)  # written; the answer comes only once released
                self._answer(status, answer, limit=True)
            except _RefusalError as refusal:
                error: dict[str, Any] = {"message": refusal.message, "errorCode": refusal.code}
                if refusal.fields:
                    error["fields"] = list(refusal.fields)
                self._answer(refusal.status, [error], limit=refusal.status != 401)

    return Handler


# -- the fake itself refuses what Salesforce refuses (so the contract tests can fail) ----------


@pytest.fixture
def org() -> Iterator[FakeSalesforce]:
    with FakeSalesforce() as fake:
        yield fake


def _session(org: FakeSalesforce) -> tuple[requests.Session, str]:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace `verify`
    session.verify = org.ca_file
    token = session.post(
        f"{org.url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": org.client_id,
            "client_secret": org.client_secret,
        },
        timeout=5,
    ).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    return session, f"{org.url}/services/data/v{org.api_version}/sobjects"


def test_the_fake_speaks_tls_from_its_own_authority_only(org: FakeSalesforce) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{org.url}/services/data/", timeout=5)
    assert requests.get(f"{org.url}/services/data/", timeout=5, verify=org.ca_file).ok


def test_the_fake_creates_then_updates_by_external_id_as_salesforce_answers(
    org: FakeSalesforce,
) -> None:
    session, base = _session(org)
    url = f"{base}/Lead/Salesbot_Id__c/salesbot%3Adeal%3Ac-1"
    first = session.patch(url, json={"LastName": "Fox", "Company": "Foxco"}, timeout=5)
    assert first.status_code == 201
    assert set(first.json()) == set(SHAPES["upsert"]["created"]["body"])
    second = session.patch(url, json={"Status": "Working - Contacted"}, timeout=5)
    assert (second.status_code, second.json()["id"], second.json()["created"]) == (
        200,
        first.json()["id"],
        False,
    )
    assert second.headers["Sforce-Limit-Info"] == f"api-usage=2/{DAILY_LIMIT}"
    assert list(org.records("Lead")) == ["salesbot:deal:c-1"]


@pytest.mark.parametrize(
    ("sobject", "body", "code"),
    [
        ("Lead", {"LastName": "Fox"}, "REQUIRED_FIELD_MISSING"),
        ("Lead", {"LastName": "Fox", "Company": "F", "Rating__c": "x"}, "INVALID_FIELD"),
        ("Lead", {"LastName": "Fox", "Company": "F", "Salesbot_Id__c": "x"}, "INVALID_FIELD"),
        (
            "Lead",
            {"LastName": "Fox", "Company": "F", "Status": "Won"},
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        ),
        ("Lead", {"LastName": "Fox", "Company": "F", "OwnerId": "75001"}, "MALFORMED_ID"),
        ("Lead", {"LastName": "F" * 81, "Company": "F"}, "STRING_TOO_LONG"),
        (
            "Opportunity",
            {"Name": "F", "StageName": "Prospecting", "CloseDate": "30 days"},
            "JSON_PARSER_ERROR",
        ),
        (
            "Opportunity",
            {"Name": "F", "StageName": "Prospecting", "CloseDate": "2026-12-06", "Amount": "10"},
            "JSON_PARSER_ERROR",
        ),
        ("Task", {"Subject": "x", "WhoId": "00Q000000000999AAA"}, "INVALID_CROSS_REFERENCE_KEY"),
    ],
)
def test_the_fake_refuses_what_salesforce_refuses(
    org: FakeSalesforce, sobject: str, body: dict[str, Any], code: str
) -> None:
    session, base = _session(org)
    answer = session.patch(f"{base}/{sobject}/Salesbot_Id__c/x-1", json=body, timeout=5)
    assert answer.status_code == 400
    (error,) = answer.json()
    assert error["errorCode"] == code
    assert org.records(sobject) == {}


def test_the_fake_refuses_a_create_only_field_on_update_and_a_stale_token(
    org: FakeSalesforce,
) -> None:
    session, base = _session(org)
    contact = session.patch(
        f"{base}/Contact/Salesbot_Id__c/k", json={"LastName": "Fox"}, timeout=5
    ).json()["id"]
    opportunity = {"Name": "F", "StageName": "Prospecting", "CloseDate": "2026-12-06"}
    url = f"{base}/Opportunity/Salesbot_Id__c/o"
    assert (
        session.patch(url, json={**opportunity, "ContactId": contact}, timeout=5).status_code == 201
    )
    again = session.patch(url, json={"ContactId": contact}, timeout=5)
    assert (again.status_code, again.json()[0]["errorCode"]) == (
        400,
        "INVALID_FIELD_FOR_INSERT_UPDATE",
    )
    org.expire_sessions()
    stale = session.get(f"{url}", timeout=5)
    assert (stale.status_code, stale.json()[0]["errorCode"]) == (401, "INVALID_SESSION_ID")
