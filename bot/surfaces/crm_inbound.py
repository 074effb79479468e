"""The CRM surface's inbound half (issue 16 items 3 and 6), registered through
`bot.surfaces.crm`: records created in the CRM arrive as leads on `POST /crm/hubspot`
(with `SALESBOT_CRM=hubspot`) or `POST /crm/salesforce/<secret>` (with
`SALESBOT_CRM=salesforce`); docs/crm.md, "Leads from the CRM".

The route of the configured vendor is always mounted with the CRM surface; until its
secrets are set it refuses every request (401), as the lead feed does without its token. A
malformed `SALESFORCE_ORG_ID` or a `SALESFORCE_WEBHOOK_SECRET` shorter than 16 characters
refuses the start in one line naming the variable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretStr

from adapters.crm.hubspot_webhook import HubSpotContactReader
from adapters.crm.salesforce_outbound import is_org_id
from adapters.crm.webhooks import CrmWebhooks, Handle, HubSpotInbound, SalesforceInbound
from bot.settings import SettingsError

MIN_URL_SECRET = 16
"""A secret in a URL is the whole credential: long enough not to be guessed."""


@dataclass(frozen=True)
class CrmInboundSection:
    """`HUBSPOT_CLIENT_SECRET`, `SALESFORCE_ORG_ID`, `SALESFORCE_WEBHOOK_SECRET` and the
    public URL HubSpot signs."""

    hubspot_client_secret: str | None = None
    salesforce_org_id: str | None = None
    salesforce_webhook_secret: str | None = None
    public_url: str = ""


class CrmInboundValues(Protocol):
    """The webhook secrets by their names (`bot.surfaces.crm.CrmValues`)."""

    @property
    def hubspot_client_secret(self) -> SecretStr | None: ...
    @property
    def salesforce_org_id(self) -> str | None: ...
    @property
    def salesforce_webhook_secret(self) -> SecretStr | None: ...


def inbound_section(
    values: CrmInboundValues,
    public_url: str,
    *,
    where: str = "invalid configuration",
    name: Callable[[str], str] = str.upper,
) -> CrmInboundSection:
    """The webhook secrets, checked; a refusal starts with `where` and names each setting
    as `name` spells it (the environment's variables by default)."""
    org_id = (values.salesforce_org_id or "").strip() or None
    if org_id is not None and not is_org_id(org_id):
        raise SettingsError(
            f"{where}: {name('salesforce_org_id')} must be an organization id "
            "(00D followed by 12 or 15 letters and digits)"
        )
    url_secret = values.salesforce_webhook_secret
    secret = url_secret.get_secret_value() if url_secret is not None else None
    if secret is not None and (
        len(secret) < MIN_URL_SECRET
        or not all((c.isascii() and c.isalnum()) or c in "-_" for c in secret)
    ):
        raise SettingsError(
            f"{where}: {name('salesforce_webhook_secret')} must be at least "
            f"{MIN_URL_SECRET} letters, digits, '-' or '_' (it ends a URL)"
        )
    client_secret = values.hubspot_client_secret
    return CrmInboundSection(
        hubspot_client_secret=client_secret.get_secret_value() if client_secret else None,
        salesforce_org_id=org_id,
        salesforce_webhook_secret=secret,
        public_url=public_url,
    )


def webhooks(
    vendor: str,
    inbound: CrmInboundSection,
    *,
    hubspot_token: str | None,
    hubspot_api_url: str,
    handle: Handle,
    now_ms: Callable[[], int],
    installation: str = "",
) -> CrmWebhooks:
    """The configured vendor's inbound route (another installation's own CRM's:
    `installation`)."""
    hubspot = None
    salesforce = None
    if vendor == "hubspot":
        reader = (
            HubSpotContactReader(hubspot_token, hubspot_api_url)
            if hubspot_token and inbound.hubspot_client_secret
            else None
        )
        hubspot = HubSpotInbound(
            client_secret=inbound.hubspot_client_secret,
            reader=reader,
            public_url=inbound.public_url,
        )
    else:
        salesforce = SalesforceInbound(
            url_secret=inbound.salesforce_webhook_secret, org_id=inbound.salesforce_org_id
        )
    return CrmWebhooks(
        handle=handle,
        now_ms=now_ms,
        hubspot=hubspot,
        salesforce=salesforce,
        installation=installation,
    )
