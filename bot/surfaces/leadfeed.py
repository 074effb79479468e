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


def section(settings: Settings) -> LeadFeedSection:
    return LeadFeedSection(
        token=settings.salesbot_leads_token,
        reply_url=settings.salesbot_lead_reply_url,
        reply_secret=settings.salesbot_lead_reply_secret,
        public_url=settings.salesbot_public_url,
    )


def registration() -> Registration[LeadFeedSection]:
    return Registration(name=NAME, scheme=LEADS, section=section, build=_build, check=_check)


def _check(config: LeadFeedSection, wiring: Wiring) -> LeadFeedSection:
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
