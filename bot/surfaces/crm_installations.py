"""Each installation's own CRM (issue 17, item 7): the workspaces and tenants that installed
the app besides the first may each write to a CRM of their own.

The configured CRM (`SALESBOT_CRM`, `bot.surfaces.crm`) is the first installation's. Another
installation's CRM writes wait on its own outbox channel, `crm-of:<installation>`
(`adapters.crm.ids.channel_for`), and this surface sends them: `SALESBOT_CRM_INSTALLATIONS_FILE`
names a TOML file with one table per installation, holding the same settings the first
installation's CRM takes from the environment, by the same names in lower case:

    ["slack:T0123"]
    crm = "hubspot"
    hubspot_access_token = "pat-…"

    ["teams:7f3c…"]
    crm = "salesforce"
    salesforce_client_id = "…"
    salesforce_client_secret = "…"

Leads that start in an installation's own CRM come in on that installation's routes,
`/crm/installations/<installation id>/hubspot` and `…/salesforce/<secret>`, checked with the
table's `hubspot_client_secret` or `salesforce_org_id` and `salesforce_webhook_secret`; they
are that installation's leads (`adapters.crm.webhooks`).

Why a file: a Salesforce connection is six values per installation, which a list in one
variable would make unreadable, and a secrets manager mounts files. The file is read once,
at start; a malformed one refuses the start in one line naming the installation and the
setting, never a value. An installation without a table keeps its writes parked (retried
every `PARKED_RETRY_MS` without counting an attempt, so none is dead-lettered) until one is
added and the process restarted; one installation's writes are never sent with another's
credentials.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiohttp import web
from pydantic import ConfigDict, ValidationError

from adapters.crm.ids import INSTALLATIONS, installation_of
from adapters.ports import Delivery, RetryLater, Sender, SendOutcome
from bot.settings import CrmSettings, Settings, SettingsError
from bot.surfaces.base import Registration, Surface, Wiring
from bot.surfaces.crm import (
    HUBSPOT_PACING_MS,
    SALESFORCE_PACING_MS,
    CrmSection,
    sender_of,
    vendor_section,
)
from bot.surfaces.crm_inbound import webhooks

NAME = INSTALLATIONS.adapter
VARIABLE = "SALESBOT_CRM_INSTALLATIONS_FILE"
PARKED_RETRY_MS = 15 * 60_000
"""How often a write of an installation without a CRM is looked at again."""


class InstallationCrm(CrmSettings):
    """One installation's table: which CRM, and the CRM settings of `bot.settings.Settings`
    by their names (`bot.surfaces.crm.CrmValues`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crm: Literal["hubspot", "salesforce"]

    def section(self, installation: str, public_url: str = "") -> CrmSection:
        """As `bot.surfaces.crm.section` reads the environment's, for this installation."""
        return vendor_section(
            self.crm,
            self,
            public_url=public_url,
            where=f"{VARIABLE}: [{installation!r}]",
            chosen=f'crm = "{self.crm}"',
            name=str,
        )


@dataclass(frozen=True)
class CrmInstallations:
    """The installations with a CRM of their own, each as its `CrmSection`."""

    crms: Mapping[str, CrmSection]


def read(path: Path, public_url: str = "") -> CrmInstallations:
    """The file's installations; SettingsError (one line, no value) when it cannot be used."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{VARIABLE}: no file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{VARIABLE}: {path} cannot be read ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{VARIABLE}: {path} is not TOML ({exc})") from None
    crms: dict[str, CrmSection] = {}
    for installation, table in document.items():
        if ":" not in installation or not isinstance(table, dict):
            raise SettingsError(
                f"{VARIABLE}: [{installation!r}] is not a table named by an installation id "
                "such as slack:T0123 or teams:<tenant id>"
            )
        try:
            entry = InstallationCrm.model_validate(table)
        except ValidationError as exc:
            fields = ", ".join(
                sorted({".".join(str(part) for part in error["loc"]) for error in exc.errors()})
            )
            raise SettingsError(f"{VARIABLE}: [{installation!r}]: invalid {fields}") from None
        crms[installation] = entry.section(installation, public_url)
    return CrmInstallations(crms)


def section(settings: Settings) -> CrmInstallations | None:
    path = settings.salesbot_crm_installations_file
    if path is None:
        return None
    return read(Path(path), settings.salesbot_public_url)


class InstallationSenders:
    """The sender of `crm-of:` channels: each installation's writes through a sender built
    from its own table, or parked when it has none. Senders are built once, at start."""

    def __init__(self, config: CrmInstallations) -> None:
        self._config = config
        self._senders: dict[str, Sender] = {
            installation: sender_of(crm) for installation, crm in config.crms.items()
        }

    def vendor_sender(self, channel: str) -> Sender | None:
        """The sender that writes `channel`'s items (None: the installation has no CRM)."""
        installation = installation_of(channel)
        return None if installation is None else self._senders.get(installation)

    async def send(self, delivery: Delivery) -> SendOutcome:
        sender = self.vendor_sender(delivery.channel)
        if sender is None:
            return RetryLater(
                reason=f"no CRM for installation {installation_of(delivery.channel)!r} "
                f"({VARIABLE})",
                retry_after_ms=PARKED_RETRY_MS,
                attempted=False,
            )
        return await sender.send(delivery)

    async def find_sent(self, delivery: Delivery) -> str | None:
        sender = self.vendor_sender(delivery.channel)
        return None if sender is None else await sender.find_sent(delivery)

    def status(self) -> str:
        named = ", ".join(
            f"{installation} {crm.vendor}"
            for installation, crm in sorted(self._config.crms.items())
        )
        return named or "no installation has a CRM"


def registration() -> Registration[CrmInstallations]:
    return Registration(name=NAME, scheme=INSTALLATIONS, section=section, build=_build)


def _build(config: CrmInstallations, wiring: Wiring) -> Surface:
    senders = InstallationSenders(config)
    inbound = [
        webhooks(
            crm.vendor,
            crm.inbound,
            hubspot_token=crm.hubspot_token,
            hubspot_api_url=crm.hubspot_api_url,
            handle=wiring.host.handle,
            now_ms=wiring.clock,
            installation=installation,
        )
        for installation, crm in sorted(config.crms.items())
    ]

    def mount(app: web.Application) -> None:
        for routes in inbound:
            routes.add_routes(app)

    vendors = {crm.vendor for crm in config.crms.values()}
    pacing = max(
        (HUBSPOT_PACING_MS if vendor == "hubspot" else SALESFORCE_PACING_MS for vendor in vendors),
        default=0,
    )
    return Surface(
        name=NAME,
        scheme=INSTALLATIONS,
        sender=senders,
        pacing_ms=pacing,
        status=senders.status,
        mount=mount,
        describe=lambda _host, _port: f"crm for installations ({senders.status()})",
        parts=(senders, *inbound),
    )
