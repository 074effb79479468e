"""The playground's registration: the bot in a browser page (`GET /`, `/playground/…`),
every reply of every conversation shown there.

It is the embedded default: with no team platform configured it is the bot; beside one,
or off loopback, it needs `SALESBOT_PLAYGROUND_TOKEN` (its people are trusted)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from aiohttp import web
from pydantic import SecretStr

from adapters.playground.access import PlaygroundAccess, PlaygroundRefusedError
from adapters.playground.hub import PlaygroundHub
from adapters.playground.ids import SCHEME
from adapters.playground.router import PlaygroundRouter
from adapters.playground.web import add_routes
from bot.playground_desk import open_desk_tickets, restore_playground
from bot.settings import Settings, SettingsError
from bot.surfaces.base import Registration, Surface, Wiring

log = logging.getLogger(__name__)

NAME = SCHEME.adapter


@dataclass(frozen=True)
class PlaygroundSection:
    """`SALESBOT_PLAYGROUND` (force it on), `SALESBOT_PLAYGROUND_TOKEN`, and the bind
    address it is served on."""

    forced: bool
    token: SecretStr | None
    host: str
    access: PlaygroundAccess | None = None
    """Decided by the check, beside whatever platforms are configured."""


def section(settings: Settings) -> PlaygroundSection:
    return PlaygroundSection(
        forced=settings.salesbot_playground,
        token=settings.salesbot_playground_token,
        host=settings.salesbot_host,
    )


def registration() -> Registration[PlaygroundSection]:
    return Registration(name=NAME, scheme=SCHEME, section=section, build=_build, check=_check)


def _check(config: PlaygroundSection, wiring: Wiring) -> PlaygroundSection | None:
    if not config.forced and wiring.platforms:
        return None  # a team platform is the bot; the playground only when asked for
    try:
        access = PlaygroundAccess.decide(
            host=config.host,
            token=config.token.get_secret_value() if config.token else None,
            platforms=list(wiring.platforms),
        )
    except PlaygroundRefusedError as exc:
        raise SettingsError(f"invalid configuration: {exc}") from None
    return replace(config, access=access)


def _build(config: PlaygroundSection, wiring: Wiring) -> Surface:
    access = config.access or PlaygroundAccess()
    hub = PlaygroundHub(clock=wiring.clock, action_key=wiring.action_key)
    store = wiring.store

    async def start() -> None:
        # Before the worker starts: what was shown comes back first, then what is still
        # pending is delivered after it. The buttons are signed with the key just loaded.
        restored = await restore_playground(hub, store)
        log.info("playground history: %d messages rebuilt from the store", restored)

    def mount(app: web.Application) -> None:
        add_routes(
            app,
            hub,
            wiring.host.handle,
            clock=wiring.clock,
            action_key=wiring.action_key,
            access=access,
            tickets=lambda: open_desk_tickets(store),
        )

    def notice(host: str, port: int) -> str:
        shown = f"[{host}]" if ":" in host else host
        return access.startup_line(f"http://{shown}:{port}/")

    return Surface(
        name=NAME,
        scheme=SCHEME,
        router=PlaygroundRouter(),
        sender=hub,
        mount=mount,
        start=start,
        describe=lambda host, port: f"playground at http://{host}:{port}/",
        notice=notice,
        parts=(hub, access),
    )
