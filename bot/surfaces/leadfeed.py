"""The lead feed's registration: leads in over HTTP (`POST /leads`, …, always mounted: a
feed without `SALESBOT_LEADS_TOKEN` refuses every request), the bot's replies out to the
lead's reply URL, signed (only with `SALESBOT_LEAD_REPLY_SECRET`: replies to prospects
are never sent unsigned)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from adapters.ids import LEADS
from adapters.leadfeed.reply import LeadReplyRouter, LeadReplySender
from adapters.leadfeed.web import LeadFeed
from bot.runtime import INBOUND
from bot.settings import Settings, SettingsError
from bot.surfaces.base import Registration, Surface, Wiring
from domain.inbound import Inbound

NAME = LEADS.adapter


@dataclass(frozen=True)
class LeadFeedSection:
    """`SALESBOT_LEADS_TOKEN`, `SALESBOT_LEAD_REPLY_URL`, `SALESBOT_LEAD_REPLY_SECRET` and
    `SALESBOT_PUBLIC_URL` (the base of the signed links in replies)."""

    token: SecretStr | None
    reply_url: str | None
    reply_secret: SecretStr | None
    public_url: str
    installation_tokens: SecretStr | None = None
    """`SALESBOT_INSTALLATION_LEADS_TOKENS` (`installation_tokens`)."""


def section(settings: Settings) -> LeadFeedSection:
    return LeadFeedSection(
        token=settings.salesbot_leads_token,
        reply_url=settings.salesbot_lead_reply_url,
        reply_secret=settings.salesbot_lead_reply_secret,
        public_url=settings.salesbot_public_url,
        installation_tokens=settings.salesbot_installation_leads_tokens,
    )


def installation_tokens(config: LeadFeedSection) -> dict[str, str]:
    """`SALESBOT_INSTALLATION_LEADS_TOKENS` as installation → token. A malformed entry, a
    repeated installation or token, or one equal to `SALESBOT_LEADS_TOKEN` stops the start
    (SettingsError naming the variable, never the token)."""
    name = "SALESBOT_INSTALLATION_LEADS_TOKENS"
    if config.installation_tokens is None:
        return {}
    tokens: dict[str, str] = {}
    first = config.token.get_secret_value() if config.token is not None else None
    for number, part in enumerate(config.installation_tokens.get_secret_value().split(","), 1):
        if not part.strip():
            continue
        installation, equals, token = (piece.strip() for piece in part.partition("="))
        if not equals or not installation or ":" not in installation or not token:
            raise SettingsError(
                f"{name}: entry {number} is not `installation=token` (an installation id such "
                "as slack:T0123 or teams:<tenant id>)"
            )
        if installation in tokens:
            raise SettingsError(f"{name}: {installation} is listed twice")
        if token == first or token in tokens.values():
            raise SettingsError(f"{name}: the token of {installation} is used more than once")
        if not (token.isascii() and token.isprintable()) or " " in token:
            raise SettingsError(f"{name}: the token of {installation} must be printable ASCII")
        tokens[installation] = token
    if tokens and first is None:
        raise SettingsError(f"{name} needs SALESBOT_LEADS_TOKEN (the first installation's)")
    return tokens


def registration() -> Registration[LeadFeedSection]:
    return Registration(name=NAME, scheme=LEADS, section=section, build=_build, check=_check)


def _check(config: LeadFeedSection, wiring: Wiring) -> LeadFeedSection:
    installation_tokens(config)  # a malformed list stops the start, naming the entry
    if config.reply_secret is not None:
        _reply_router(config, wiring)  # a default reply URL it may not reach: refused now
    return config


def _reply_router(config: LeadFeedSection, wiring: Wiring) -> LeadReplyRouter:
    try:
        return LeadReplyRouter(default_reply_url=config.reply_url, outbound=wiring.outbound)
    except ValueError as exc:
        raise SettingsError(f"invalid configuration: {exc}") from None


def _build(config: LeadFeedSection, wiring: Wiring) -> Surface:
    router: LeadReplyRouter | None = None
    sender: LeadReplySender | None = None
    if config.reply_secret is not None:
        router = _reply_router(config, wiring)
        sender = LeadReplySender(
            secret=config.reply_secret.get_secret_value(),
            outbound=wiring.outbound,
            action_key=wiring.action_key,
            public_url=config.public_url,
        )
    store = wiring.store

    async def first_inbound(delivery_id: str) -> Inbound | None:
        stored = await store.inbound(delivery_id)
        return INBOUND.validate_python(stored.inbound) if stored is not None else None

    feed = LeadFeed(
        token=config.token.get_secret_value() if config.token is not None else None,
        installation_tokens=installation_tokens(config),
        handle=wiring.host.handle,
        conversation=wiring.host.conversation,
        first_inbound=first_inbound,
        outbound=wiring.outbound,
        action_key=wiring.action_key,
    )
    return Surface(
        name=NAME,
        scheme=LEADS,
        router=router,
        sender=sender,
        mount=feed.add_routes,
        close=sender.close if sender is not None else None,
        parts=(feed,) if sender is None else (feed, sender),
    )
