"""The HubSpot adapter against a fake HubSpot on 127.0.0.1 that checks every request against
HubSpot's published OpenAPI specifications (the excerpts in tests/fixtures/crm/hubspot/,
sources named there) and keeps what it is sent by unique property, as HubSpot does.

What a sales team would notice: a conversation from lead to won is one contact, one deal at
closed-won with the quote's amount, one line item and its notes, all associated; sending
everything twice changes nothing; HubSpot's 429s, 500s and silences end in delivery, never
in a duplicate; a refused write says HubSpot's reason; `check` names what is missing and
`setup` creates it once.
"""

from __future__ import annotations

import asyncio
import copy
import html
import itertools
import json
import logging
import random
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest
from aiohttp import web

from adapters.crm.common import payload_for
from adapters.crm.hubspot import ADAPTER_TAG, HubSpotSender
from adapters.crm.hubspot_mapping import CUSTOM_PROPERTIES, GROUP_NAME
from adapters.crm.hubspot_setup import check, setup
from adapters.ports import Delivery, Rejected, RetryLater, SendOutcome, Sent, TimedOut
from bot.outbox_worker import OutboxWorker
from domain.crm import CrmRecord
from domain.crm_sync import crm_record
from domain.events import CrmSyncRequested
from domain.inbound import LeadArrived, LeadDetails
from domain.policy import Policy
from storage.memory import MemoryStore
from storage.ports import OutboxItem
from tests.fakes.local import serve_locally
from tests.support.conversation import Recording
from tests.unit.test_crm import FEED, HOT, REP, crm_policy

SPECS = Path(__file__).parents[1] / "fixtures" / "crm" / "hubspot"
TOKEN = "pat-na1-test-token"
OBJECT_TYPE_IDS = {"contacts": "0-1", "deals": "0-3", "line_items": "0-8", "notes": "0-46"}
STAGES = (
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
)
"""HubSpot's default sales pipeline's stage ids (the `[crm.stages]` of tests/unit/test_crm)."""
NUMERIC = {"amount", "price", "quantity", "hs_discount_percentage", "salesbot_hot_probability"}


# ---------------------------------------------------------------------------------------
# HubSpot's published request shapes


def _closed(node: Any) -> Any:
    """The spec with every object schema closed (`additionalProperties: false` where it
    lists its properties and says nothing else): a misspelt field fails instead of being
    ignored, as HubSpot ignores it."""
    if isinstance(node, dict):
        out = {key: _closed(value) for key, value in node.items()}
        if "properties" in out and isinstance(out["properties"], dict) and "type" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_closed(value) for value in node]
    return node


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]
    components: dict[str, Any]
    source: str

    def schema_for(self, media: dict[str, Any]) -> dict[str, Any] | None:
        for content in media.values():
            schema = content.get("schema")
            if schema is not None:
                return {"components": self.components, **schema}
        return None


class Spec:
    """Every operation of the excerpts, matched by method and path."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []
        for path in sorted(SPECS.glob("*.json")):
            doc = json.loads(path.read_text(encoding="utf-8"))
            source = f"{doc['source']['repository']}@{doc['source']['commit'][:12]}:{doc['source']['path']}"
            components = _closed(doc["components"])
            for template, methods in doc["paths"].items():
                pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
                for method, spec in methods.items():
                    self.operations.append(
                        Operation(method.upper(), template, pattern, spec, components, source)
                    )
        # Literal paths before templated ones (".../search" is not a deal id).
        self.operations.sort(key=lambda op: op.template.count("{"))

    def find(self, method: str, raw_path: str) -> Operation | None:
        # HubSpot's deals spec names the object by its type id; the client by its name.
        for name, type_id in OBJECT_TYPE_IDS.items():
            if name == "deals":
                raw_path = raw_path.replace("/crm/v3/objects/deals", f"/crm/v3/objects/{type_id}")
        for op in self.operations:
            if op.method == method and op.pattern.match(raw_path):
                return op
        return None

    @staticmethod
    def request_errors(op: Operation, query: dict[str, str], body: Any) -> list[str]:
        errors = []
        declared = {p["name"]: p for p in op.spec.get("parameters", []) if p["in"] == "query"}
        errors += [
            f"query parameter {name!r} is not in the spec" for name in query if name not in declared
        ]
        errors += [
            f"required query parameter {name!r} missing"
            for name, p in declared.items()
            if p.get("required") and name not in query
        ]
        request_body = op.spec.get("requestBody")
        if request_body is None:
            if body is not None:
                errors.append("a body where the spec has none")
            return errors
        if body is None:
            if request_body.get("required"):
                errors.append("the spec requires a body")
            return errors
        schema = op.schema_for(request_body["content"])
        if schema is not None:
            validator = jsonschema.Draft7Validator(schema)
            errors += [
                f"{'/'.join(map(str, e.absolute_path)) or 'body'}: {e.message}"
                for e in validator.iter_errors(body)
            ]
        return errors

    @staticmethod
    def response_errors(op: Operation, status: int, body: Any) -> list[str]:
        responses = op.spec["responses"]
        response = responses.get(str(status)) or responses.get("default")
        if response is None:
            return [f"status {status} is not an answer the spec lists"]
        content = response.get("content")
        if content is None and "$ref" in response:
            content = op.components["responses"][response["$ref"].rsplit("/", 1)[1]]["content"]
        schema = op.schema_for(content or {})
        if schema is None:
            return []
        return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(body)]


# ---------------------------------------------------------------------------------------
# The fake


@dataclass
class Fault:
    method: str
    path: str
    status: int = 500
    message: str = "Internal error"
    category: str = "INTERNAL_ERROR"
    retry_after: int | None = None
    hang: bool = False
    """Apply the request, then give no answer until the test releases it."""
    item_error: bool = False
    """Answer 207 with the batch item failed."""
    when: str = ""
    """Only a request whose body contains this."""

    def matches(self, method: str, path: str, body: bytes) -> bool:
        same = path.startswith(self.path[:-1]) if self.path.endswith("*") else path == self.path
        return method == self.method and same and self.when.encode() in body


@dataclass
class Call:
    method: str
    path: str
    status: int


@dataclass
class FakeHubSpot:
    """HubSpot's CRM as far as salesbot uses it, keeping records by unique property."""

    spec: Spec = field(default_factory=Spec)
    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {t: {} for t in OBJECT_TYPE_IDS}
    )
    associations: set[tuple[str, str, str, str]] = field(default_factory=set)
    properties: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    groups: dict[str, set[str]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    spec_errors: list[str] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    base_url: str = ""
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1001))
    _runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        builtin = {
            "contacts": ("email", "firstname", "lastname", "company"),
            "deals": (
                "dealname",
                "dealstage",
                "pipeline",
                "amount",
                "deal_currency_code",
                "hubspot_owner_id",
                "closed_lost_reason",
            ),
            "line_items": (
                "name",
                "description",
                "quantity",
                "price",
                "hs_sku",
                "hs_discount_percentage",
                "discount",
                "amount",
            ),
            "notes": ("hs_note_body", "hs_timestamp"),
        }
        for object_type, names in builtin.items():
            group = {"contacts": "contactinformation", "notes": "engagement"}.get(
                object_type, f"{object_type.rstrip('s')}information"
            )
            self.groups[object_type] = {group}
            # HubSpot lets contacts be upserted by `email` although its property metadata
            # does not flag it unique; the fake models that as a unique property.
            self.properties[object_type] = {
                name: self._property(name, group, unique=name == "email", hubspot=True)
                for name in ("hs_object_id", *names)
            }

    @staticmethod
    def _property(
        name: str, group: str, *, unique: bool, hubspot: bool, kind: str = "string"
    ) -> dict[str, Any]:
        return {
            "name": name,
            "label": name,
            "description": "",
            "groupName": group,
            "type": "number" if name in NUMERIC else kind,
            "fieldType": "number" if name in NUMERIC else "text",
            "options": [],
            "hasUniqueValue": unique,
            "hubspotDefined": hubspot,
        }

    def set_up_salesbot_properties(self) -> None:
        """As `salesbot crm setup` leaves an account (without calling it)."""
        for wanted in CUSTOM_PROPERTIES:
            self.groups[wanted.object_type].add(GROUP_NAME)
            self.properties[wanted.object_type][wanted.name] = self._property(
                wanted.name, GROUP_NAME, unique=wanted.unique, hubspot=False, kind=wanted.type
            )

    # Scripting

    def fail_next(self, method: str, path: str, status: int = 500, **options: Any) -> None:
        self.faults.append(Fault(method, path, status, **options))

    def hang_next(self, method: str, path: str) -> None:
        self.faults.append(Fault(method, path, hang=True))

    # Reading

    def records(self, object_type: str) -> list[dict[str, str]]:
        return [o["properties"] for o in self.objects[object_type].values()]

    def by(self, object_type: str, name: str, value: str) -> list[dict[str, Any]]:
        return [o for o in self.objects[object_type].values() if o["properties"].get(name) == value]

    def associated(self, from_type: str, from_id: str, to_type: str) -> set[str]:
        return {
            t
            for f, fid, tt, t in self.associations
            if (f, fid, tt) == (from_type, from_id, to_type)
        }

    # Serving

    async def __aenter__(self) -> FakeHubSpot:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, port = await serve_locally(app)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        raw = await request.read()
        body = json.loads(raw) if raw else None
        query = dict(request.query)
        op = self.spec.find(method, request.raw_path.split("?", 1)[0])
        if op is None:
            self.spec_errors.append(f"{method} {path}: not an operation of HubSpot's spec")
            return self._error(404, "no such endpoint", "OBJECT_NOT_FOUND", method, path)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._error(
                401, "Authentication credentials not found.", "INVALID_AUTHENTICATION", method, path
            )
        errors = self.spec.request_errors(op, query, body)
        if errors:
            self.spec_errors += [f"{method} {op.template}: {e}" for e in errors]
            return self._error(400, "; ".join(errors), "VALIDATION_ERROR", method, path)
        fault = next((f for f in self.faults if f.matches(method, path, raw)), None)
        if fault is not None:
            self.faults.remove(fault)
            if not fault.hang and not fault.item_error:
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
                return self._error(
                    fault.status, fault.message, fault.category, method, path, headers
                )
        try:
            status, answer = self._dispatch(method, path, query, body)
        except _RefusalError as refusal:
            return self._error(refusal.status, refusal.message, refusal.category, method, path)
        if fault is not None and fault.item_error:
            status, answer = (
                207,
                {
                    **answer,
                    "results": [],
                    "numErrors": 1,
                    "errors": [
                        {
                            "status": "error",
                            "category": fault.category,
                            "message": fault.message,
                            "context": {},
                            "errors": [],
                            "links": {},
                        }
                    ],
                },
            )
        self.spec_errors += [
            f"{method} {op.template} answer {status}: {e}"
            for e in self.spec.response_errors(op, status, answer)
        ]
        if fault is not None and fault.hang:
            await self.released.wait()
        self.calls.append(Call(method, path, status))
        return web.json_response(answer, status=status)

    def _error(
        self,
        status: int,
        message: str,
        category: str,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        self.calls.append(Call(method, path, status))
        body = {
            "status": "error",
            "message": message,
            "category": category,
            "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
        }
        return web.json_response(body, status=status, headers=headers)

    def _dispatch(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        match method, parts:
            case "POST", ["crm", "v3", "objects", object_type, "batch", "upsert"]:
                return 200, self._batch(
                    [self._upsert(object_type, item) for item in body["inputs"]]
                )
            case "GET", ["crm", "v3", "objects", object_type, object_id]:
                found = self._lookup(object_type, object_id, query.get("idProperty"))
                if found is None:
                    raise _RefusalError(404, "Object not found", "OBJECT_NOT_FOUND")
                return 200, self._public(found)
            case "POST", ["crm", "v3", "objects", "notes"]:
                return 201, self._public(self._create_note(body))
            case "POST", ["crm", "v3", "objects", object_type, "batch", "read"]:
                read = [self.objects[object_type].get(i["id"]) for i in body["inputs"]]
                return 200, self._batch([self._public(o, body["properties"]) for o in read if o])
            case "POST", ["crm", "v3", "objects", object_type, "search"]:
                results = list(self.objects[object_type].values())[: body.get("limit", 10)]
                return 200, {
                    "total": len(self.objects[object_type]),
                    "results": [self._public(o) for o in results],
                }
            case "PUT", [
                "crm",
                "v4",
                "objects",
                from_type,
                from_id,
                "associations",
                "default",
                to_type,
                to_id,
            ]:
                for object_type, object_id in ((from_type, from_id), (to_type, to_id)):
                    if object_id not in self.objects[object_type]:
                        raise _RefusalError(
                            404, f"{object_type} {object_id} not found", "OBJECT_NOT_FOUND"
                        )
                self.associations |= {
                    (from_type, from_id, to_type, to_id),
                    (to_type, to_id, from_type, from_id),
                }
                spec = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}
                return 200, self._batch(
                    [{"from": {"id": from_id}, "to": {"id": to_id}, "associationSpec": spec}]
                )
            case "GET", ["crm", "v4", "objects", from_type, from_id, "associations", to_type]:
                ids = sorted(self.associated(from_type, from_id, to_type))
                kinds = [{"category": "HUBSPOT_DEFINED", "typeId": 214}]
                return 200, {"results": [{"toObjectId": i, "associationTypes": kinds} for i in ids]}
            case "GET", ["crm", "v3", "properties", object_type]:
                return 200, {"results": list(self.properties[object_type].values())}
            case "POST", ["crm", "v3", "properties", object_type]:
                if body["name"] in self.properties[object_type]:
                    raise _RefusalError(
                        409,
                        f"A property named '{body['name']}' already exists.",
                        "OBJECT_ALREADY_EXISTS",
                    )
                if body["groupName"] not in self.groups[object_type]:
                    raise _RefusalError(
                        400, f"group {body['groupName']} does not exist", "VALIDATION_ERROR"
                    )
                created = {
                    **self._property(
                        body["name"],
                        body["groupName"],
                        unique=bool(body.get("hasUniqueValue")),
                        hubspot=False,
                        kind=body["type"],
                    ),
                    "label": body["label"],
                    "fieldType": body["fieldType"],
                }
                self.properties[object_type][body["name"]] = created
                return 201, created
            case "GET", ["crm", "v3", "properties", object_type, "groups"]:
                return 200, {
                    "results": [
                        {"name": g, "label": g, "displayOrder": -1, "archived": False}
                        for g in sorted(self.groups[object_type])
                    ]
                }
            case "POST", ["crm", "v3", "properties", object_type, "groups"]:
                self.groups[object_type].add(body["name"])
                return 201, {
                    "name": body["name"],
                    "label": body["label"],
                    "displayOrder": -1,
                    "archived": False,
                }
            case "GET", ["crm", "v3", "pipelines", "deals", pipeline_id]:
                if pipeline_id != "sales":
                    raise _RefusalError(
                        404, f"pipeline {pipeline_id} not found", "OBJECT_NOT_FOUND"
                    )
                now = "2026-12-01T00:00:00Z"
                stages = [
                    {
                        "id": s,
                        "label": s,
                        "displayOrder": n,
                        "metadata": {},
                        "archived": False,
                        "createdAt": now,
                        "updatedAt": now,
                    }
                    for n, s in enumerate(STAGES)
                ]
                return 200, {
                    "id": "sales",
                    "label": "Sales",
                    "displayOrder": 0,
                    "stages": stages,
                    "archived": False,
                    "createdAt": now,
                    "updatedAt": now,
                }
        raise AssertionError(f"the fake does not serve {method} {path}")

    # HubSpot's rules

    def _validate(self, object_type: str, properties: dict[str, str], own_id: str | None) -> None:
        known = self.properties[object_type]
        for name, value in properties.items():
            if name not in known:
                raise _RefusalError(
                    400,
                    f'Property values were not valid: [{{"isValid":false,"message":"Property \\"{name}\\" does not exist","error":"PROPERTY_DOESNT_EXIST","name":"{name}"}}]',
                    "VALIDATION_ERROR",
                )
            if known[name]["type"] == "number" and value != "":
                try:
                    Decimal(value)
                except InvalidOperation:
                    raise _RefusalError(
                        400,
                        f"Property values were not valid: {name} is not a number",
                        "VALIDATION_ERROR",
                    ) from None
            if known[name]["hasUniqueValue"] and value:
                for other_id, other in self.objects[object_type].items():
                    if other_id != own_id and other["properties"].get(name) == value:
                        raise _RefusalError(
                            409, f"{name} {value} already belongs to {other_id}", "CONFLICT"
                        )
        if object_type == "deals" and properties.get("dealstage", STAGES[0]) not in STAGES:
            raise _RefusalError(
                400,
                f"Property values were not valid: {properties['dealstage']} is not a valid dealstage",
                "VALIDATION_ERROR",
            )

    def _lookup(self, object_type: str, key: str, id_property: str | None) -> dict[str, Any] | None:
        if id_property in (None, "hs_object_id"):
            return self.objects[object_type].get(key)
        found = self.by(object_type, id_property, key)
        return found[0] if found else None

    def _upsert(self, object_type: str, item: dict[str, Any]) -> dict[str, Any]:
        id_property = item.get("idProperty") or "hs_object_id"
        prop = self.properties[object_type].get(id_property)
        if prop is None or not prop["hasUniqueValue"]:
            raise _RefusalError(
                400, f"{id_property} is not a unique property of {object_type}", "VALIDATION_ERROR"
            )
        properties = dict(item["properties"])
        existing = self._lookup(object_type, item["id"], id_property)
        self._validate(object_type, properties, existing["id"] if existing else None)
        now = "2026-12-06T00:00:00Z"
        if existing is None:
            new_id = str(next(self._ids))
            existing = {"id": new_id, "properties": {id_property: item["id"]}, "createdAt": now}
            self.objects[object_type][new_id] = existing
            fresh = True
        else:
            fresh = False
        existing["properties"].update(properties)
        existing["properties"]["hs_object_id"] = existing["id"]
        existing["updatedAt"] = now
        return {**self._public(existing), "new": fresh}

    def _create_note(self, body: dict[str, Any]) -> dict[str, Any]:
        self._validate("notes", body["properties"], None)
        for association in body["associations"]:
            (kind,) = association["types"]
            if (kind["associationCategory"], kind["associationTypeId"]) != ("HUBSPOT_DEFINED", 214):
                raise _RefusalError(
                    400, f"association type {kind} is not note to deal", "VALIDATION_ERROR"
                )
            if association["to"]["id"] not in self.objects["deals"]:
                raise _RefusalError(
                    400, f"deal {association['to']['id']} does not exist", "VALIDATION_ERROR"
                )
        note_id = str(next(self._ids))
        now = "2026-12-06T00:00:00Z"
        note = {
            "id": note_id,
            "properties": {**body["properties"], "hs_object_id": note_id},
            "createdAt": now,
            "updatedAt": now,
        }
        self.objects["notes"][note_id] = note
        for association in body["associations"]:
            deal_id = association["to"]["id"]
            self.associations |= {
                ("notes", note_id, "deals", deal_id),
                ("deals", deal_id, "notes", note_id),
            }
        return note

    @staticmethod
    def _public(record: dict[str, Any], names: list[str] | None = None) -> dict[str, Any]:
        properties = record["properties"]
        if names is not None:
            properties = {k: v for k, v in properties.items() if k in names}
        return {
            "id": record["id"],
            "properties": copy.deepcopy(properties),
            "createdAt": record["createdAt"],
            "updatedAt": record["updatedAt"],
            "archived": False,
        }

    @staticmethod
    def _batch(results: list[Any]) -> dict[str, Any]:
        now = "2026-12-06T00:00:00Z"
        return {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}


class _RefusalError(Exception):
    def __init__(self, status: int, message: str, category: str) -> None:
        super().__init__(message)
        self.status, self.message, self.category = status, message, category


# ---------------------------------------------------------------------------------------
# A conversation's records, as the runtime would put them in the outbox


@pytest.fixture
async def hubspot() -> AsyncIterator[FakeHubSpot]:
    async with FakeHubSpot() as fake:
        fake.set_up_salesbot_properties()
        yield fake
    assert fake.spec_errors == [], "requests or answers outside HubSpot's published spec"


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return crm_policy(tmp_path)


def lead_to_won(policy: Policy, conversation_id: str = "lead-crm-1") -> list[CrmRecord]:
    """The CRM writes of a lead quoted and won, each prepared when its decision was made."""
    assert policy.crm is not None
    rec = Recording(policy, conversation_id, lead_actor=FEED)
    records: list[CrmRecord] = []

    def prepare(events: tuple[Any, ...]) -> None:
        for envelope in events:
            if isinstance(envelope.event, CrmSyncRequested):
                assert policy.crm is not None
                records.append(crm_record(envelope, rec.state, policy.crm))

    lead = LeadDetails(
        name="Dana <b>Fox</b>",
        email="dana@example.com",
        company="Foxco",
        message=HOT,
        source="Webinar",
    )
    prepare(rec.send(LeadArrived(lead=lead, actor=FEED, **rec.ids())).events)
    prepare(rec.command("quote", "10 pro 5%", REP).events)
    prepare(rec.say("<script>alert('x')</script> & see you at 5 > 4").events)
    prepare(rec.command("won", "", REP).events)
    return records


def delivery(record: CrmRecord, attempts: int = 0) -> Delivery:
    return Delivery(
        key=f"crm:{record.external_id}@{record.event_seq}",
        conversation_id=record.conversation_id,
        channel="crm:hubspot",
        payload=payload_for(record),
        attempts=attempts,
    )


def sender(fake: FakeHubSpot, timeout_s: float = 5.0, token: str = TOKEN) -> HubSpotSender:
    return HubSpotSender(
        token, fake.base_url, timeout_s=timeout_s, now_ms=lambda: 1_790_000_000_000
    )


async def send_all(target: HubSpotSender, records: list[CrmRecord]) -> list[SendOutcome]:
    return [await target.send(delivery(r)) for r in records]


# ---------------------------------------------------------------------------------------
# The contract


async def test_a_conversation_from_lead_to_won_is_one_contact_one_deal_one_line_item_and_its_notes(
    hubspot: FakeHubSpot, policy: Policy
) -> None:
    records = lead_to_won(policy)
    assert [r.artifact for r in records] == [
        "deal",
        "note",
        "deal",
        "quote",
        "deal",
        "deal",
        "note",
    ]
    outcomes = await send_all(sender(hubspot), records)
    assert all(isinstance(o, Sent) for o in outcomes), outcomes

    (contact,) = hubspot.objects["contacts"].values()
    assert (
        contact["properties"].items()
        >= {
            "email": "dana@example.com",
            "firstname": "Dana",
            "lastname": "<b>Fox</b>",  # a plain-text field: the name as typed, not markup
            "company": "Foxco",
            "salesbot_adapter": ADAPTER_TAG,
        }.items()
    )
    (deal,) = hubspot.objects["deals"].values()
    quote = next(r.quote for r in records if r.quote is not None)
    assert quote.total_cents == 189050
    assert {
        k: deal["properties"].get(k)
        for k in (
            "salesbot_id",
            "dealname",
            "dealstage",
            "pipeline",
            "amount",
            "deal_currency_code",
            "salesbot_band",
            "salesbot_source",
            "salesbot_conversation_id",
            "salesbot_adapter",
        )
    } == {
        "salesbot_id": "salesbot:deal:lead-crm-1",
        "dealname": "Foxco",
        "dealstage": "closedwon",
        "pipeline": "sales",
        "amount": "1890.50",
        "deal_currency_code": "USD",
        "salesbot_band": "hot",
        "salesbot_source": "webinar",
        "salesbot_conversation_id": "lead-crm-1",
        "salesbot_adapter": ADAPTER_TAG,
    }
    assert deal["properties"]["hubspot_owner_id"] in {"75001", "75002", "75003"}
    assert "closed_lost_reason" not in deal["properties"]
    (line_item,) = hubspot.objects["line_items"].values()
    assert {
        k: line_item["properties"].get(k)
        for k in ("salesbot_id", "quantity", "price", "hs_sku", "hs_discount_percentage", "amount")
    } == {
        "salesbot_id": f"salesbot:quote:{quote.quote_id}:v1",
        "quantity": "10",
        "price": "199.00",
        "hs_sku": "PRO",
        "hs_discount_percentage": "5",
        "amount": "1890.50",
    }
    notes = hubspot.objects["notes"]
    assert len(notes) == 2
    # Everything hangs off the deal.
    assert hubspot.associated("deals", deal["id"], "contacts") == {contact["id"]}
    assert hubspot.associated("deals", deal["id"], "line_items") == {line_item["id"]}
    assert hubspot.associated("deals", deal["id"], "notes") == set(notes)
    # The transcript's user text is data: escaped, one line per <br>.
    transcript = next(n for n in notes.values() if "transcript" in n["properties"]["hs_note_body"])
    body = transcript["properties"]["hs_note_body"]
    assert "<script>" not in body
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; see you at 5 &gt; 4" in body
    assert body.split("<br>")[0] == "salesbot transcript"
    assert body.endswith(f"[{ADAPTER_TAG} {records[-1].external_id}]")
    assert transcript["properties"]["hs_timestamp"] == "1790000000000"
    # Each Sent names HubSpot's own id of the record written.
    score = next(i for i, n in notes.items() if n is not transcript)
    assert [o.remote_id for o in outcomes if isinstance(o, Sent)] == [
        deal["id"],
        score,
        deal["id"],
        line_item["id"],
        deal["id"],
        deal["id"],
        transcript["id"],
    ]


async def test_sending_every_item_twice_yields_no_duplicate(
    hubspot: FakeHubSpot, policy: Policy
) -> None:
    records = lead_to_won(policy)
    target = sender(hubspot)
    first = await send_all(target, records)
    snapshot = copy.deepcopy(hubspot.objects)
    again = [await target.send(delivery(r, attempts=1)) for r in records]
    assert again == first
    assert hubspot.objects == snapshot
    assert {t: len(o) for t, o in hubspot.objects.items()} == {
        "contacts": 1,
        "deals": 1,
        "line_items": 1,
        "notes": 2,
    }


async def test_rate_limits_and_server_errors_are_retried_later_and_a_later_send_delivers(
    hubspot: FakeHubSpot, policy: Policy
) -> None:
    deal, *_ = lead_to_won(policy)
    target = sender(hubspot)
    hubspot.fail_next(
        "POST",
        "/crm/v3/objects/contacts/batch/upsert",
        429,
        message="You have reached your ten_secondly_rolling limit.",
        category="RATE_LIMITS",
        retry_after=7,
    )
    limited = await target.send(delivery(deal))
    assert limited == RetryLater(
        reason="429: You have reached your ten_secondly_rolling limit.", retry_after_ms=7000
    )
    hubspot.fail_next("POST", "/crm/v3/objects/deals/batch/upsert", 500, message="internal error")
    assert await target.send(delivery(deal, 1)) == RetryLater(reason="500: internal error")
    hubspot.fail_next(
        "POST",
        "/crm/v3/objects/deals/batch/upsert",
        207,
        item_error=True,
        category="RATE_LIMITS",
        message="Try again shortly",
    )
    assert await target.send(delivery(deal, 2)) == RetryLater(reason="429: Try again shortly")
    delivered = await target.send(delivery(deal, 3))
    assert isinstance(delivered, Sent)
    assert len(hubspot.objects["contacts"]) == len(hubspot.objects["deals"]) == 1
    assert delivered.remote_id in hubspot.objects["deals"]


async def test_a_timeout_is_uncertain_and_neither_the_lookup_nor_the_resend_duplicates(
    hubspot: FakeHubSpot, policy: Policy
) -> None:
    records = lead_to_won(policy)
    target = sender(hubspot, timeout_s=1.0)
    await send_all(target, records[:1])
    note = records[1]
    # HubSpot creates the note, then the answer never comes.
    hubspot.hang_next("POST", "/crm/v3/objects/notes")
    assert isinstance(await target.send(delivery(note)), TimedOut)
    (note_id,) = hubspot.objects["notes"]
    assert await target.find_sent(delivery(note, 1)) == note_id
    assert await target.send(delivery(note, 1)) == Sent(remote_id=note_id)
    assert len(hubspot.objects["notes"]) == 1
    # An upsert that timed out is simply sent again: it updates what the first try made.
    hubspot.hang_next("POST", "/crm/v3/objects/deals/batch/upsert")
    assert isinstance(await target.send(delivery(records[2])), TimedOut)
    assert await target.find_sent(delivery(records[2], 1)) is None
    assert isinstance(await target.send(delivery(records[2], 1)), Sent)
    assert len(hubspot.objects["deals"]) == 1


async def test_hubspot_out_of_reach_is_retried_later(policy: Policy) -> None:
    async with FakeHubSpot() as gone:
        url = gone.base_url
    deal, *_ = lead_to_won(policy)
    outcome = await HubSpotSender(TOKEN, url, timeout_s=2.0).send(delivery(deal))
    assert outcome == RetryLater(reason="could not connect to HubSpot")


async def test_a_refused_write_is_rejected_with_hubspots_message(policy: Policy) -> None:
    async with FakeHubSpot() as hubspot:  # `salesbot crm setup` never ran
        deal, *_ = lead_to_won(policy)
        outcome = await sender(hubspot).send(delivery(deal))
        assert isinstance(outcome, Rejected)
        assert outcome.reason.startswith("400: Property values were not valid")
        assert "salesbot_adapter" in outcome.reason
        hubspot.set_up_salesbot_properties()
        hubspot.fail_next(
            "POST",
            "/crm/v3/objects/deals/batch/upsert",
            207,
            item_error=True,
            category="VALIDATION_ERROR",
            message="Property values were not valid: dealstage",
        )
        assert await sender(hubspot).send(delivery(deal)) == Rejected(
            reason="400: Property values were not valid: dealstage"
        )
        assert await sender(hubspot, token="pat-revoked").send(delivery(deal)) == Rejected(
            reason="401: Authentication credentials not found."
        )
        assert hubspot.spec_errors == []


async def test_check_names_each_missing_property_and_setup_creates_them_once(
    policy: Policy,
) -> None:
    async with FakeHubSpot() as hubspot:
        problems = await asyncio.to_thread(check, TOKEN, hubspot.base_url, crm=policy.crm)
        assert problems == [
            f"{p.object_type}.{p.name} is missing (run `salesbot crm setup`)"
            for p in CUSTOM_PROPERTIES
        ]
        created = await asyncio.to_thread(setup, TOKEN, hubspot.base_url)
        assert created == [
            line
            for object_type in ("contacts", "deals", "line_items")
            for line in (
                f"created {object_type} property group salesbot",
                *(
                    f"created {object_type}.{p.name}"
                    for p in CUSTOM_PROPERTIES
                    if p.object_type == object_type
                ),
            )
        ]
        assert await asyncio.to_thread(setup, TOKEN, hubspot.base_url) == []
        assert await asyncio.to_thread(check, TOKEN, hubspot.base_url, crm=policy.crm) == []
        creates = [
            c
            for c in hubspot.calls
            if c.method == "POST"
            and c.path.startswith("/crm/v3/properties/")
            and not c.path.endswith("/groups")
        ]
        assert len(creates) == len(CUSTOM_PROPERTIES)
        assert all(
            hubspot.properties[p.object_type][p.name]["hasUniqueValue"] == p.unique
            for p in CUSTOM_PROPERTIES
        )
        assert hubspot.spec_errors == []


async def test_check_names_a_stage_hubspot_does_not_know_and_a_refused_token(
    tmp_path: Path,
) -> None:
    from tests.unit.test_crm import CRM

    wrong = crm_policy(tmp_path, CRM.replace('won = "closedwon"', 'won = "closed-won"'))
    async with FakeHubSpot() as hubspot:
        hubspot.set_up_salesbot_properties()
        (problem,) = await asyncio.to_thread(check, TOKEN, hubspot.base_url, crm=wrong.crm)
        assert problem.startswith(
            "[crm.stages] won = 'closed-won': not a stage id of pipeline 'sales'"
        )
        (refused,) = await asyncio.to_thread(check, "pat-wrong", hubspot.base_url)
        assert refused.startswith("HubSpot refused the access token (401")
        hubspot.fail_next(
            "GET",
            "/crm/v3/properties/line_items",
            403,
            message="This app hasn't been granted all required scopes to make this call.",
            category="MISSING_SCOPES",
        )
        (scope,) = await asyncio.to_thread(check, TOKEN, hubspot.base_url)
        assert scope.startswith(
            "reading line_items properties: the private app lacks the scope crm.schemas.line_items.read (403"
        )


# ---------------------------------------------------------------------------------------
# Through the outbox worker, as the bot will run it


class FakeTime:
    def __init__(self) -> None:
        self.ms = 1_790_000_000_000

    def now(self) -> int:
        return self.ms

    async def sleep(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)
        await asyncio.sleep(0)


async def test_through_the_outbox_every_fault_ends_in_exactly_one_of_each_record_and_a_400_is_dead_lettered(
    hubspot: FakeHubSpot, policy: Policy
) -> None:
    records = lead_to_won(policy) + lead_to_won(policy, "lead-crm-2")[:1]
    store = MemoryStore()
    time = FakeTime()
    await store.enqueue(
        [
            OutboxItem(
                key=delivery(r).key,
                conversation_id=r.conversation_id,
                channel="crm:hubspot",
                payload=payload_for(r),
                created_at_ms=time.ms + n,
                available_at_ms=time.ms,
            )
            for n, r in enumerate(records)
        ]
    )
    hubspot.fail_next(
        "POST",
        "/crm/v3/objects/contacts/batch/upsert",
        429,
        category="RATE_LIMITS",
        message="slow down",
        retry_after=3,
    )
    hubspot.fail_next("POST", "/crm/v3/objects/line_items/batch/upsert", 502, message="bad gateway")
    hubspot.hang_next("POST", "/crm/v3/objects/notes")
    hubspot.fail_next("PUT", "/crm/v4/objects/deals/*", 500)
    alerts: list[tuple[str, str]] = []

    async def alert(item: OutboxItem, reason: str) -> None:
        alerts.append((item.key, reason))

    target = sender(hubspot, timeout_s=1.0)
    worker = OutboxWorker(
        store,
        lambda channel: target if channel.startswith("crm:") else None,
        clock=time.now,
        sleep=time.sleep,
        rng=random.Random(0),
        pacing_ms=lambda _channel: 0,
        on_dead_letter=alert,
        send_timeout_s=5.0,
    )
    # The second conversation's deal is refused for good: its stage is not HubSpot's.
    hubspot.fail_next(
        "POST",
        "/crm/v3/objects/deals/batch/upsert",
        400,
        message="Property values were not valid: dealstage",
        category="VALIDATION_ERROR",
        when="lead-crm-2",
    )
    for _ in range(200):
        await worker.drain_once()
        if await store.pending_count() == 0:
            break
        time.ms += 1000
    assert await store.pending_count() == 0
    assert {t: len(o) for t, o in hubspot.objects.items()} == {
        "contacts": 1,
        "deals": 1,
        "line_items": 1,
        "notes": 2,
    }
    (deal,) = hubspot.objects["deals"].values()
    assert deal["properties"]["dealstage"] == "closedwon"
    assert len(hubspot.associated("deals", deal["id"], "notes")) == 2
    assert alerts == [(delivery(records[-1]).key, "400: Property values were not valid: dealstage")]
    assert hubspot.faults == []  # every fault was met


async def test_no_secret_and_nothing_of_the_prospects_is_logged(
    hubspot: FakeHubSpot, policy: Policy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    records = lead_to_won(policy)
    hubspot.fail_next(
        "POST",
        "/crm/v3/objects/contacts/batch/upsert",
        400,
        message="dana@example.com is not valid",
    )
    await send_all(sender(hubspot), records)
    await send_all(sender(hubspot), records)
    assert "hubspot" in caplog.text  # the adapter does log its outcomes
    for secret in (TOKEN, "dana@example.com", "Dana", "Foxco", "$40k", "alert("):
        assert secret not in caplog.text


async def test_a_quote_can_be_a_note_with_the_buyers_arithmetic_instead(
    hubspot: FakeHubSpot, tmp_path: Path
) -> None:
    from tests.unit.test_crm import CRM

    policy = crm_policy(
        tmp_path, CRM.replace('pipeline = "sales"', 'pipeline = "sales"\nquote_as = "note"')
    )
    records = lead_to_won(policy)
    quote = next(r for r in records if r.artifact == "quote")
    assert quote.quote is not None
    outcomes = await send_all(sender(hubspot), records)
    assert all(isinstance(o, Sent) for o in outcomes), outcomes
    assert hubspot.objects["line_items"] == {}
    (note,) = [
        n
        for n in hubspot.objects["notes"].values()
        if quote.external_id in n["properties"]["hs_note_body"]
    ]
    lines = note["properties"]["hs_note_body"].split("<br>")
    assert lines[0] == f"salesbot quote {quote.quote.quote_id}"
    assert lines[1:-1] == [html.escape(line) for line in quote.quote.proof]
    assert len(lines) > 3
    (deal,) = hubspot.objects["deals"].values()
    assert note["id"] in hubspot.associated("deals", deal["id"], "notes")
    assert len(hubspot.objects["notes"]) == 3  # the quote, the score, the transcript
