"""Microsoft Teams' registration: Bot Framework activities at `POST /api/messages`,
replies through the Bot Connector."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from pydantic import SecretStr

from adapters.loopback import is_loopback_host
from adapters.roles import InstallationRoles
from adapters.teams.auth import TokenValidator
from adapters.teams.connector import Connector, MsalTokenProvider, NoToken, TokenProvider
from adapters.teams.endpoint import TeamsEndpoint
from adapters.teams.ids import SCHEME
from adapters.teams.inbound import TeamsContext
from adapters.teams.references import ReferenceCache
from adapters.teams.router import TeamsRouter
from adapters.teams.sender import TeamsSender
from adapters.teams.tenants import ANY_TENANT, Tenants
from bot.channel_setup import SETUP_ADDRESS, KeepingSetup, handle_and_keep, keeper
from bot.settings import Settings, SettingsError
from bot.surfaces.base import Registration, Surface, Wiring

log = logging.getLogger(__name__)

NAME = SCHEME.adapter
TeamsMode = Literal["authenticated", "local"]


@dataclass(frozen=True)
class TeamsSection:
    """`TEAMS_*`. `mode` is "authenticated" with the bot's credentials, "local" for the
    unauthenticated local mode (only on a loopback bind)."""

    mode: TeamsMode
    app_id: str | None
    app_password: SecretStr | None
    tenant_id: str | None
    handoff_conversation: str | None
    leads_conversation: str | None
    openid_metadata_url: str
    tenants: tuple[str, ...] = ()
    """`TEAMS_TENANTS`: the tenants besides the home one that may install the app."""


def section(settings: Settings) -> TeamsSection | None:
    mode = _mode(settings)
    if mode is None:
        return None
    return TeamsSection(
        mode=mode,
        app_id=settings.teams_app_id,
        app_password=settings.teams_app_password,
        tenant_id=settings.teams_app_tenant_id,
        handoff_conversation=settings.teams_handoff_conversation,
        leads_conversation=settings.teams_leads_conversation,
        openid_metadata_url=settings.teams_openid_metadata_url,
        tenants=settings.teams_tenants,
    )


def _mode(settings: Settings) -> TeamsMode | None:
    """None when Teams is not configured. A token-less endpoint must not be reachable from
    elsewhere, so the local mode needs a loopback bind."""
    if settings.teams_app_id and settings.teams_app_password is not None:
        if settings.teams_allow_unauthenticated:
            log.warning("TEAMS_ALLOW_UNAUTHENTICATED is ignored: Teams credentials are set")
        return "authenticated"
    if settings.teams_app_id or settings.teams_app_password is not None:
        raise SettingsError("invalid configuration: set both TEAMS_APP_ID and TEAMS_APP_PASSWORD")
    if not settings.teams_allow_unauthenticated:
        return None
    if not is_loopback_host(settings.salesbot_host):
        raise SettingsError(
            "invalid configuration: TEAMS_ALLOW_UNAUTHENTICATED=1 needs SALESBOT_HOST to be a "
            f"loopback address (got {settings.salesbot_host!r})"
        )
    return "local"


def registration(*, tokens: TokenProvider | None = None) -> Registration[TeamsSection]:
    """`tokens` replaces the bot's MSAL token source (tests: no Entra to ask)."""

    def build(config: TeamsSection, wiring: Wiring) -> Surface:
        return _build(config, wiring, tokens or _tokens(config))

    return Registration(name=NAME, scheme=SCHEME, section=section, build=build, platform="Teams")


def _build(config: TeamsSection, wiring: Wiring, tokens: TokenProvider) -> Surface:
    settings = wiring.settings
    connector = Connector(tokens)
    tenants = Tenants(
        wiring.store,
        home_tenant=config.tenant_id,
        home_handoff=config.handoff_conversation,
        home_leads=config.leads_conversation,
        allowed=config.tenants,
        clock=wiring.clock,
    )
    if ANY_TENANT in config.tenants:
        log.warning(
            "TEAMS_TENANTS=*: any tenant that installs the app gets reps of its own; "
            "metrics and audits are not yet separated by tenant (docs/teams-install.md)"
        )
    # Each installation's own role lists (`setup approvers @…`), over the environment's.
    roles = InstallationRoles(wiring.store, wiring.clock)
    keep = keeper(tenants.chose, roles.chose)
    router = TeamsRouter(
        escalation_conversation=wiring.escalation(NAME), on_call=wiring.on_call(NAME)
    )
    # The endpoint writes references through it and the sender reads them from it.
    references = ReferenceCache(wiring.store, wiring.clock)
    sender = TeamsSender(
        connector,
        references,
        handoff_conversation=config.handoff_conversation,
        leads_conversation=config.leads_conversation,
        clock=wiring.clock,
        action_key=wiring.action_key,
        tenant_id=config.tenant_id,
        tenants=tenants,
    )
    validator = None
    if config.mode == "authenticated":
        validator = TokenValidator(
            app_id=config.app_id or "",
            tenant_id=config.tenant_id,
            metadata_url=config.openid_metadata_url,
            installed=tenants.installed,
        )
    endpoint = TeamsEndpoint(
        context=TeamsContext(
            tenant_id=config.tenant_id,
            bot_id=f"28:{config.app_id}" if config.app_id else "",
            action_key=wiring.action_key,
            auditors=frozenset(settings.salesbot_auditors),
            approvers=frozenset(settings.salesbot_approvers),
            managers=frozenset(settings.salesbot_managers),
            admins=frozenset(settings.salesbot_admins),
        ),
        validator=validator,
        connector=sender.connector,
        states=references,
        # `setup handoff|leads` is the domain's (admins of the tenant, as on Slack); the
        # committed choice is kept in the tenant's record.
        handle=lambda inbound: handle_and_keep(wiring.host.handle, keep, inbound),
        clock=wiring.clock,
        tenants=tenants,
        offers_setup=True,
        roles=roles,
    )

    def mount(app: web.Application) -> None:
        app.router.add_post("/api/messages", endpoint.handle_request)

    return Surface(
        name=NAME,
        scheme=SCHEME,
        router=router,
        # A tenant's channel choice committed with its `channel_set` is applied from the
        # outbox too (`bot.channel_setup`): never lost to a crash after the commit.
        sender=KeepingSetup(sender, keep, channel=SCHEME.channel(SETUP_ADDRESS)),
        mount=mount,
        close=sender.close,
        describe=lambda _host, _port: "teams",
        parts=(endpoint, sender),
    )


def _tokens(config: TeamsSection) -> TokenProvider:
    if config.app_id and config.app_password is not None:
        return MsalTokenProvider(
            app_id=config.app_id,
            password=config.app_password.get_secret_value(),
            tenant_id=config.tenant_id,
        )
    return NoToken()
