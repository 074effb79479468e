"""The CRM's registration (issue 16): `SALESBOT_CRM` picks the vendor whose sender delivers
the CRM's outbox channel (`adapters.crm.ids`). The writes themselves are decided by the
domain and committed with each decision whatever is configured (`bot.crm_outbox`); without
a vendor this surface is not built, so no process claims them and they wait, parked, until
one with a vendor starts. HubSpot or Salesforce credentials that are missing or malformed
refuse the start in one line naming the variable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import SecretStr

from adapters.crm.hubspot import HubSpotSender
from adapters.crm.ids import SCHEME
from adapters.crm.salesforce import SalesforceSender
from adapters.crm.salesforce_auth import SalesforceCredentials
from adapters.ports import Sender
from bot.settings import Settings, SettingsError
from bot.surfaces.base import Registration, Surface, Wiring
from bot.surfaces.crm_inbound import (
    CrmInboundSection,
    CrmInboundValues,
    inbound_section,
    webhooks,
)

NAME = SCHEME.adapter

HUBSPOT_PACING_MS = 400
"""HubSpot's private apps may make 100 requests per 10 s (the burst limit of the lowest
tier); a write is up to four requests (contact, deal, association, line item or note)."""
SALESFORCE_PACING_MS = 200
"""Salesforce counts a daily allocation rather than a burst; a write is two or three
requests. The allocation left is shown in `/readyz`."""


@dataclass(frozen=True)
class CrmSection:
    """`SALESBOT_CRM` and the chosen vendor's variables."""

    vendor: Literal["hubspot", "salesforce"]
    hubspot_token: str | None = None
    hubspot_api_url: str = ""
    salesforce: SalesforceCredentials | None = None
    salesforce_api_version: str = ""
    salesforce_records: Literal["lead", "contact_opportunity"] = "lead"
    inbound: CrmInboundSection = field(default_factory=CrmInboundSection)
    """Leads that start in the CRM: its webhook's secrets (`bot.surfaces.crm_inbound`)."""


class CrmValues(CrmInboundValues, Protocol):
    """A CRM's settings by their names: the environment's (`Settings`) or an installation's
    table (`bot.surfaces.crm_installations`)."""

    @property
    def hubspot_access_token(self) -> SecretStr | None: ...
    @property
    def hubspot_api_url(self) -> str: ...
    @property
    def salesforce_login_url(self) -> str: ...
    @property
    def salesforce_client_id(self) -> str | None: ...
    @property
    def salesforce_client_secret(self) -> SecretStr | None: ...
    @property
    def salesforce_username(self) -> str | None: ...
    @property
    def salesforce_password(self) -> SecretStr | None: ...
    @property
    def salesforce_security_token(self) -> SecretStr | None: ...
    @property
    def salesforce_api_version(self) -> str: ...
    @property
    def salesforce_records(self) -> Literal["lead", "contact_opportunity"]: ...


def section(settings: Settings) -> CrmSection | None:
    vendor = settings.salesbot_crm
    if vendor == "none":
        return None
    return vendor_section(
        vendor,
        settings,
        public_url=settings.salesbot_public_url,
        where="invalid configuration",
        chosen=f"SALESBOT_CRM={vendor}",
        name=str.upper,
    )


def vendor_section(
    vendor: Literal["hubspot", "salesforce"],
    values: CrmValues,
    *,
    public_url: str,
    where: str,
    chosen: str,
    name: Callable[[str], str],
) -> CrmSection:
    """`values` as the chosen vendor's section; a refusal (SettingsError) starts with
    `where`, names the choice as `chosen` and each setting as `name` spells it."""
    inbound = inbound_section(values, public_url, where=where, name=name)
    if vendor == "hubspot":
        if values.hubspot_access_token is None:
            raise SettingsError(f"{where}: {chosen} needs {name('hubspot_access_token')}")
        return CrmSection(
            vendor="hubspot",
            hubspot_token=values.hubspot_access_token.get_secret_value(),
            hubspot_api_url=values.hubspot_api_url,
            inbound=inbound,
        )
    try:
        credentials = SalesforceCredentials(
            login_url=values.salesforce_login_url,
            client_id=values.salesforce_client_id or "",
            client_secret=_secret(values.salesforce_client_secret) or "",
            username=values.salesforce_username,
            password=_secret(values.salesforce_password),
            security_token=_secret(values.salesforce_security_token),
        )
    except ValueError as exc:
        raise SettingsError(f"{where}: {chosen}: {exc}") from None
    return CrmSection(
        vendor="salesforce",
        salesforce=credentials,
        salesforce_api_version=values.salesforce_api_version,
        salesforce_records=values.salesforce_records,
        inbound=inbound,
    )


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def sender_of(config: CrmSection) -> Sender:
    """The vendor's sender for the CRM channel."""
    if config.vendor == "hubspot":
        assert config.hubspot_token is not None
        return HubSpotSender(config.hubspot_token, config.hubspot_api_url)
    assert config.salesforce is not None
    return SalesforceSender(
        config.salesforce,
        mode=config.salesforce_records,
        api_version=config.salesforce_api_version,
    )


def pacing_ms(config: CrmSection) -> int:
    """The least gap between two writes to the configured vendor."""
    return HUBSPOT_PACING_MS if config.vendor == "hubspot" else SALESFORCE_PACING_MS


def registration() -> Registration[CrmSection]:
    return Registration(name=NAME, scheme=SCHEME, section=section, build=_build)


def _build(config: CrmSection, wiring: Wiring) -> Surface:
    sender = sender_of(config)
    pacing = pacing_ms(config)

    def status() -> str:
        usage = getattr(sender, "api_usage", None)
        if usage is None:
            return config.vendor
        return f"{config.vendor} (API calls today {usage.used:,} of {usage.total:,})"

    inbound = webhooks(
        config.vendor,
        config.inbound,
        hubspot_token=config.hubspot_token,
        hubspot_api_url=config.hubspot_api_url,
        handle=wiring.host.handle,
        now_ms=wiring.clock,
    )
    return Surface(
        name=NAME,
        scheme=SCHEME,
        sender=sender,
        pacing_ms=pacing,
        mount=inbound.add_routes,
        status=status,
        describe=lambda _host, _port: f"crm ({config.vendor})",
        parts=(sender, inbound),
    )
