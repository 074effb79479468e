"""What a Salesforce org needs before salesbot can write to it, and checking that it has it.

`setup_steps(mode, quotes=...)` prints the exact Setup clicks for each custom field: creating fields
takes the Metadata API (SOAP, deploy of CustomField metadata), which `simple-salesforce`'s
REST calls do not reach simply, and an admin should see what is added to the org anyway.
`check(...)` is what `salesbot crm check` will run: the token, the API version, and every
field present (the external id ones marked External ID and Unique), one problem per line.
Both are plain functions; the CLI wiring is elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from simple_salesforce.api import SFType
from simple_salesforce.exceptions import SalesforceError

from adapters.crm.salesforce import DEFAULT_API_VERSION, SalesforceSender, first_error
from adapters.crm.salesforce_auth import SalesforceAuthError, SalesforceCredentials, fetch_token
from adapters.crm.salesforce_records import (
    ADAPTER_FIELD,
    AMOUNT_FIELD,
    BAND_FIELD,
    EXTERNAL_ID_FIELD,
    HOT_PROBABILITY_FIELD,
    LOST_REASON_FIELD,
    SOURCE_FIELD,
    Mode,
)


@dataclass(frozen=True)
class FieldSpec:
    """One custom field as Setup's "New Custom Field" wizard asks for it."""

    name: str
    label: str
    kind: str
    """The wizard's data type and its sizes, as the admin types them."""
    external_id: bool = False
    unique: bool = False
    """Must be Unique too: an upsert by a non-unique external id needs the View All Data
    permission (REST API, "sObject Rows by External ID")."""


ID = FieldSpec(
    EXTERNAL_ID_FIELD,
    "Salesbot Id",
    "Text, Length 255; check Unique (case sensitive) and External ID",
    external_id=True,
    unique=True,
)
ACTIVITY_ID = FieldSpec(
    EXTERNAL_ID_FIELD,
    "Salesbot Id",
    "Text, Length 255; check External ID, and Unique (case sensitive) where Setup offers it "
    "for activity fields; where it does not, the integration user needs View All Data",
    external_id=True,
)
ADAPTER = FieldSpec(ADAPTER_FIELD, "Salesbot Adapter", "Text, Length 64")
DEAL = (
    FieldSpec(BAND_FIELD, "Salesbot Band", "Text, Length 20"),
    FieldSpec(
        HOT_PROBABILITY_FIELD, "Salesbot Hot Probability", "Number, Length 1, Decimal Places 4"
    ),
    FieldSpec(SOURCE_FIELD, "Salesbot Source", "Text, Length 80"),
    FieldSpec(LOST_REASON_FIELD, "Salesbot Lost Reason", "Text, Length 255"),
)


def required_fields(mode: Mode, *, quotes: bool = False) -> dict[str, tuple[FieldSpec, ...]]:
    """sObject → the custom fields salesbot writes on it in this mode; with `quotes`
    (`[crm] quote_as = "quote"`, mode contact_opportunity) the Quote and QuoteLineItem too."""
    if mode == "lead":
        return {
            "Lead": (
                ID,
                ADAPTER,
                *DEAL,
                FieldSpec(AMOUNT_FIELD, "Salesbot Amount", "Currency, Length 16, Decimal Places 2"),
            ),
            "Task": (ACTIVITY_ID, ADAPTER),
        }
    fields = {
        "Contact": (ID, ADAPTER),
        "Opportunity": (ID, ADAPTER, *DEAL),
        "Task": (ACTIVITY_ID, ADAPTER),
    }
    if quotes:
        fields |= {"Quote": (ID, ADAPTER), "QuoteLineItem": (ID, ADAPTER)}
    return fields


_WHERE = {
    "Lead": "Setup → Object Manager → Lead → Fields & Relationships → New",
    "Contact": "Setup → Object Manager → Contact → Fields & Relationships → New",
    "Opportunity": "Setup → Object Manager → Opportunity → Fields & Relationships → New",
    "Task": "Setup → Object Manager → Activity → Fields & Relationships → New "
    "(activity fields are shared by Task and Event)",
    "Quote": "Setup → Object Manager → Quote → Fields & Relationships → New",
    "QuoteLineItem": "Setup → Object Manager → Quote Line Item → Fields & Relationships → New",
}

QUOTE_STEPS = (
    "Quotes: Setup → Quote Settings → Enable (Quotes are off in a new org; the Quote and "
    "Quote Line Item objects appear in Object Manager once they are on)",
    "Quotes: the integration user's permission set needs Read, Create and Edit on Quotes "
    "(Quote Line Items follow their Quote) and Read on Products and Price Books",
    "Quotes: each catalog SKU must be a Product (Product Code = the SKU, Active) with an "
    "active entry in the standard price book, or in [crm] price_book (a Pricebook2 Id), in "
    "the quote's currency",
)

LEAD_QUOTES = (
    '[crm] quote_as = "quote" needs SALESFORCE_RECORDS=contact_opportunity (a Quote belongs '
    "to an Opportunity): in mode lead quotes are written as Tasks"
)


def setup_steps(mode: Mode, *, quotes: bool = False) -> list[str]:
    """The exact Setup steps to create every field this mode needs, one line each; with
    `quotes` (`[crm] quote_as = "quote"`) turning Quotes on and pricing the SKUs first."""
    lines: list[str] = []
    if quotes and mode == "contact_opportunity":
        lines.extend(QUOTE_STEPS)
    elif quotes:
        lines.append(f"Note: {LEAD_QUOTES}")
    for sobject, specs in required_fields(mode, quotes=quotes).items():
        lines.append(f"{sobject}: {_WHERE[sobject]}")
        for spec in specs:
            lines.append(
                f"  - {spec.label} (API name {spec.name}): {spec.kind}; "
                "visible to the integration user's profile or permission set"
            )
    lines.append(
        "Then give the integration user's permission set Edit access to each field "
        "(Field-Level Security), or writes fail with INVALID_FIELD."
    )
    return lines


def check(
    credentials: SalesforceCredentials,
    *,
    mode: Mode,
    api_version: str = DEFAULT_API_VERSION,
    timeout_s: float = 10.0,
    verify: bool | str = True,
    quotes: bool = False,
) -> list[str]:
    """One line per problem (empty: ready): the token, the API version, and each field
    `required_fields(mode, quotes=...)` lists — present, writable, and the external ids
    marked External ID (and Unique, except on activities). With `quotes` in mode lead, the
    mismatch itself is a problem (quotes would stay Tasks); a Quote object the org cannot
    describe means Quotes are not enabled."""
    sender = SalesforceSender(
        credentials, mode=mode, api_version=api_version, timeout_s=timeout_s, verify=verify
    )
    session = sender.session  # the same timeouts and CA as sending
    try:
        token = fetch_token(session, credentials)
    except SalesforceAuthError as exc:
        return [f"token: {exc}"]
    problems: list[str] = []
    if quotes and mode == "lead":
        problems.append(LEAD_QUOTES)
    version = api_version.removeprefix("v")
    try:
        versions = session.get(f"{token.instance_url}/services/data/").json()
        known = {str(v.get("version")) for v in versions if isinstance(v, dict)}
        if version not in known:
            newest = max(known, key=lambda v: float(v), default="none")
            problems.append(
                f"API version {version} is not served by this org (newest: {newest}); "
                "set SALESFORCE_API_VERSION"
            )
            return problems
    except (requests.RequestException, ValueError, TypeError) as exc:
        return [f"API versions: {type(exc).__name__}"]
    client = sender.client_for(token)
    for sobject, specs in required_fields(mode, quotes=quotes).items():
        try:
            sf_type = getattr(client, sobject)
            if not isinstance(sf_type, SFType):
                raise TypeError(f"{sobject} is not an sObject type")
            described: Any = sf_type.describe()
        except SalesforceError as exc:
            code, message = first_error(exc.content)
            if sobject.startswith("Quote") and exc.status == 404:
                problems.append(
                    f"{sobject}: not in this org: enable Quotes (Setup → Quote Settings)"
                )
                continue
            problems.append(f"{sobject}: cannot describe ({exc.status} {code}: {message})")
            continue
        except requests.RequestException as exc:
            problems.append(f"{sobject}: cannot describe ({type(exc).__name__})")
            continue
        fields = {str(f.get("name")): f for f in described.get("fields", []) if isinstance(f, dict)}
        for spec in specs:
            found = fields.get(spec.name)
            if found is None:
                problems.append(
                    f"{sobject}: field {spec.name} missing ({spec.label}: {spec.kind}; "
                    "see `setup_steps`, docs/crm.md)"
                )
            elif spec.external_id and not found.get("externalId"):
                problems.append(f"{sobject}: field {spec.name} must be marked External ID")
            elif spec.unique and not found.get("unique"):
                problems.append(f"{sobject}: field {spec.name} must be marked Unique")
            elif not found.get("updateable") or not found.get("createable"):
                problems.append(
                    f"{sobject}: field {spec.name} is read-only for this user "
                    "(Field-Level Security: give Edit access)"
                )
    return problems
