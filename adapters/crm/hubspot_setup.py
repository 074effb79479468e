"""`salesbot crm check` and `salesbot crm setup` for HubSpot, as plain functions the CLI
calls: what a HubSpot account needs before salesbot can sync to it, checked and created
through HubSpot's own APIs (docs/crm.md, "HubSpot", has the manual steps they stand for).

`check` reads only. It answers one problem per line (empty: ready): the token HubSpot
refuses, a read scope missing, a custom property missing or of the wrong kind, and — given
the policy's `[crm]` — a pipeline or stage id HubSpot does not know. Write scopes cannot be
checked without writing; a missing one shows as the first write's 403, dead-lettered with
HubSpot's message.

`setup` creates what is missing and leaves what exists alone, so it can be run again: a
"salesbot" property group on contacts, deals and line items, the unique `salesbot_id`
property on each, and the salesbot_* properties (`hubspot_mapping.CUSTOM_PROPERTIES`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any, TypeVar

import hubspot.crm.contacts as hs_contacts
import hubspot.crm.deals as hs_deals
import hubspot.crm.line_items as hs_line_items
import hubspot.crm.objects.notes as hs_notes
import hubspot.crm.properties as hs_properties

from adapters.crm.hubspot import (
    DEFAULT_API_URL,
    HubSpotApis,
    hubspot_message,
    make_client,
)
from adapters.crm.hubspot_mapping import (
    CUSTOM_PROPERTIES,
    GROUP_LABEL,
    GROUP_NAME,
    ObjectType,
)
from domain.crm import CrmConfig

OBJECT_TYPES: tuple[ObjectType, ...] = ("contacts", "deals", "line_items")
READ_SCOPES = {
    "contacts": "crm.objects.contacts.read",
    "deals": "crm.objects.deals.read",
    "line_items": "crm.objects.line_items.read",
    "notes": "crm.objects.contacts.read",
}
"""The scope HubSpot's specification names for reading each object (notes are read, and
written, under the contacts scopes)."""
SCHEMA_SCOPES = {
    "contacts": ("crm.schemas.contacts.read", "crm.schemas.contacts.write"),
    "deals": ("crm.schemas.deals.read", "crm.schemas.deals.write"),
    "line_items": ("crm.schemas.line_items.read", "e-commerce"),
}
"""(read, create) scopes of each object's properties."""

SEARCH_MODELS: dict[str, ModuleType] = {
    "contacts": hs_contacts,
    "deals": hs_deals,
    "line_items": hs_line_items,
    "notes": hs_notes,
}

T = TypeVar("T")


class HubSpotUnreachableError(Exception):
    """HubSpot could not be asked at all (no connection, no answer, the token refused):
    the rest of the check would only repeat it."""


def _ask(call: Callable[[], T], what: str, scope: str | None = None) -> T:
    """One request; its failure as a HubSpotProblemError line (or HubSpotUnreachableError)."""
    try:
        return call()
    except Exception as exc:
        status = getattr(exc, "status", None)
        if not isinstance(status, int) or not hasattr(exc, "body") or status == 0:
            raise HubSpotUnreachableError(f"cannot reach HubSpot ({type(exc).__name__})") from exc
        message = hubspot_message(exc.body, str(getattr(exc, "reason", "") or ""))
        if status == 401:
            raise HubSpotUnreachableError(
                f"HubSpot refused the access token (401: {message}); "
                "check HUBSPOT_ACCESS_TOKEN (a private app's token)"
            ) from exc
        if status == 403 and scope:
            raise HubSpotProblemError(
                f"{what}: the private app lacks the scope {scope} (403: {message})"
            ) from exc
        raise HubSpotProblemError(f"{what}: HubSpot answered {status}: {message}") from exc


class HubSpotProblemError(Exception):
    """One line of the check's answer."""


def check(
    access_token: str,
    api_url: str = DEFAULT_API_URL,
    *,
    crm: CrmConfig | None = None,
    timeout_s: float = 10.0,
) -> list[str]:
    """Everything that would stop salesbot syncing to this HubSpot account, one line each."""
    apis = HubSpotApis.of(make_client(access_token, api_url))
    problems: list[str] = []
    try:
        for object_type in OBJECT_TYPES:
            try:
                _check_properties(apis, object_type, timeout_s, problems)
            except HubSpotProblemError as problem:
                problems.append(str(problem))
        for searched, scope in READ_SCOPES.items():
            try:
                _ask(
                    partial(
                        apis.searches[searched].do_search,
                        _search_one(searched),
                        _request_timeout=timeout_s,
                    ),
                    f"reading {searched}",
                    scope,
                )
            except HubSpotProblemError as problem:
                problems.append(str(problem))
        if crm is not None:
            try:
                _check_pipeline(apis, crm, timeout_s, problems)
            except HubSpotProblemError as problem:
                problems.append(str(problem))
    except HubSpotUnreachableError as unreachable:
        problems.append(str(unreachable))
    return problems


def setup(
    access_token: str, api_url: str = DEFAULT_API_URL, *, timeout_s: float = 10.0
) -> list[str]:
    """Creates the property groups and custom properties salesbot needs; answers one line
    per thing created ("created deals.salesbot_id"), none when everything was there.
    Raises `HubSpotProblemError`/`HubSpotUnreachableError` with HubSpot's message when HubSpot refuses."""
    apis = HubSpotApis.of(make_client(access_token, api_url))
    done: list[str] = []
    for object_type in OBJECT_TYPES:
        read_scope, write_scope = SCHEMA_SCOPES[object_type]
        groups = _ask(
            partial(apis.groups.get_all, object_type, _request_timeout=timeout_s),
            f"reading {object_type} property groups",
            read_scope,
        )
        if GROUP_NAME not in {g.name for g in groups.results or []}:
            _ask(
                partial(
                    apis.groups.create,
                    object_type,
                    hs_properties.PropertyGroupCreate(name=GROUP_NAME, label=GROUP_LABEL),
                    _request_timeout=timeout_s,
                ),
                f"creating the {object_type} property group {GROUP_NAME}",
                write_scope,
            )
            done.append(f"created {object_type} property group {GROUP_NAME}")
        existing = _properties(apis, object_type, timeout_s)
        for wanted in CUSTOM_PROPERTIES:
            if wanted.object_type != object_type or wanted.name in existing:
                continue
            create = hs_properties.PropertyCreate(
                name=wanted.name,
                label=wanted.label,
                type=wanted.type,
                field_type=wanted.field_type,
                group_name=GROUP_NAME,
                description=wanted.description,
                has_unique_value=wanted.unique,
                form_field=False,
            )
            _ask(
                partial(apis.properties.create, object_type, create, _request_timeout=timeout_s),
                f"creating {object_type}.{wanted.name}",
                write_scope,
            )
            done.append(f"created {object_type}.{wanted.name}")
    return done


def _properties(apis: HubSpotApis, object_type: ObjectType, timeout_s: float) -> dict[str, Any]:
    answer = _ask(
        lambda: apis.properties.get_all(object_type, archived=False, _request_timeout=timeout_s),
        f"reading {object_type} properties",
        SCHEMA_SCOPES[object_type][0],
    )
    return {p.name: p for p in answer.results or []}


def _check_properties(
    apis: HubSpotApis, object_type: ObjectType, timeout_s: float, problems: list[str]
) -> None:
    existing = _properties(apis, object_type, timeout_s)
    for wanted in CUSTOM_PROPERTIES:
        if wanted.object_type != object_type:
            continue
        found = existing.get(wanted.name)
        where = f"{object_type}.{wanted.name}"
        if found is None:
            problems.append(f"{where} is missing (run `salesbot crm setup`)")
        elif wanted.unique and not found.has_unique_value:
            problems.append(
                f"{where} exists but does not require unique values; salesbot's upserts need "
                "a unique property (delete it and run `salesbot crm setup`)"
            )
        elif found.type != wanted.type:
            problems.append(f"{where} is of type {found.type}, salesbot writes {wanted.type}")


def _check_pipeline(
    apis: HubSpotApis, crm: CrmConfig, timeout_s: float, problems: list[str]
) -> None:
    try:
        pipeline = _ask(
            lambda: apis.pipelines.get_by_id("deals", crm.pipeline, _request_timeout=timeout_s),
            f"reading the deal pipeline {crm.pipeline}",
            "crm.objects.deals.read",
        )
    except HubSpotProblemError as problem:
        if "answered 404" in str(problem):
            problems.append(
                f"[crm] pipeline = {crm.pipeline!r}: HubSpot has no deal pipeline with that id"
            )
            return
        raise
    known = {stage.id for stage in pipeline.stages or []}
    for stage, crm_stage in crm.stages.items():
        if crm_stage not in known:
            problems.append(
                f"[crm.stages] {stage} = {crm_stage!r}: not a stage id of pipeline "
                f"{crm.pipeline!r} (its stages: {', '.join(sorted(known))})"
            )


def _search_one(object_type: str) -> Any:
    """The smallest search HubSpot's specification allows: one record, one property."""
    package = SEARCH_MODELS[object_type]
    return package.PublicObjectSearchRequest(
        filter_groups=[], properties=["hs_object_id"], sorts=[], limit=1, after="0"
    )
