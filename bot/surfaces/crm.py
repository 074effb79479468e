"""The CRM's registration (issue 16): `SALESBOT_CRM` picks the vendor whose sender delivers
the CRM's outbox channel (`adapters.crm.ids`). The writes themselves are decided by the
domain and committed with each decision whatever is configured (`bot.crm_outbox`); without
a vendor this surface is not built, so no process claims them and they wait, parked, until
one with a vendor starts. HubSpot or Salesforce credentials that are missing or malformed
refuse the start in one line naming the variable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from adapters.crm.hubspot import HubSpotSender
from adapters.crm.ids import SCHEME
from adapters.crm.salesforce import SalesforceSender
from adapters.crm.salesforce_auth import SalesforceCredentials
from adapters.ports import Sender
from bot.settings import Settings, SettingsError
from bot.surfaces.base import Registration, Surface, Wiring
from bot.surfaces.crm_inbound import CrmInboundSection, inbound_section, webhooks

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


def section(settings: Settings) -> CrmSection | None:
    vendor = settings.salesbot_crm
    if vendor == "none":
        return None
    if vendor == "hubspot":
        if settings.hubspot_access_token is None:
            raise SettingsError(
                "invalid configuration: SALESBOT_CRM=hubspot needs HUBSPOT_ACCESS_TOKEN"
            )
        return CrmSection(
            vendor="hubspot",
            hubspot_token=settings.hubspot_access_token.get_secret_value(),
            hubspot_api_url=settings.hubspot_api_url,
            inbound=inbound_section(settings),
        )
    return CrmSection(
        vendor="salesforce",
        salesforce=salesforce_credentials(settings),
        salesforce_api_version=settings.salesforce_api_version,
        salesforce_records=settings.salesforce_records,
        inbound=inbound_section(settings),
    )


def salesforce_credentials(settings: Settings) -> SalesforceCredentials:
    def secret(value: object) -> str | None:
        get = getattr(value, "get_secret_value", None)
        return get() if callable(get) else None

    try:
        return SalesforceCredentials(
            login_url=settings.salesforce_login_url,
            client_id=settings.salesforce_client_id or "",
            client_secret=secret(settings.salesforce_client_secret) or "",
            username=settings.salesforce_username,
            password=secret(settings.salesforce_password),
            security_token=secret(settings.salesforce_security_token),
        )
    except ValueError as exc:
        raise SettingsError(f"invalid configuration: SALESBOT_CRM=salesforce: {exc}") from None


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
