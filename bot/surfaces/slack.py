"""Slack's registration: the Events API at `POST /slack/events` (or Socket Mode), replies
through the Web API, paced per channel, held while the installation is paused."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.app import SlackEndpoint
from adapters.slack.directory import SlackDirectory
from adapters.slack.ids import SCHEME
from adapters.slack.installation import SlackInstallation
from adapters.slack.response_url import ResponseUrls
from adapters.slack.router import SlackRouter
from adapters.slack.sender import SharedSession, SlackSender, make_client
from bot.pause import PausedWhile
from bot.settings import Settings
from bot.surfaces.base import Registration, Surface, Wiring

NAME = SCHEME.adapter
SLACK_PACING_MS = 1000
"""chat.postMessage allows about one message per second per channel."""


@dataclass(frozen=True)
class SlackSection:
    """`SLACK_*`: configured with a bot token and a way in (a signing secret for HTTP, an
    app-level token for Socket Mode)."""

    bot_token: SecretStr
    signing_secret: SecretStr | None
    app_token: SecretStr | None
    api_url: str
    handoff_channel: str | None
    leads_channel: str | None


def section(settings: Settings) -> SlackSection | None:
    token, secret, app_token = (
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
    )
    if token is None or (secret is None and app_token is None):
        return None
    return SlackSection(
        bot_token=token,
        signing_secret=secret,
        app_token=app_token,
        api_url=settings.slack_api_url,
        handoff_channel=settings.slack_handoff_channel,
        leads_channel=settings.slack_leads_channel,
    )


def registration(
    *, client: AsyncWebClient | None = None, pacing_ms: int = SLACK_PACING_MS
) -> Registration[SlackSection]:
    """`client` replaces the Web API client built from the section (tests: one pointed at a
    local fake); `pacing_ms` the per-channel pace."""

    def build(config: SlackSection, wiring: Wiring) -> Surface:
        return _build(config, wiring, client=client, pacing_ms=pacing_ms)

    return Registration(name=NAME, scheme=SCHEME, section=section, build=build, platform="Slack")


class _SocketMode:
    """Slack delivering over a WebSocket the app opens (no public URL needed)."""

    def __init__(self, endpoint: SlackEndpoint, app_token: str, client: AsyncWebClient) -> None:
        self._endpoint, self._app_token, self._client = endpoint, app_token, client
        self._handler: AsyncSocketModeHandler | None = None

    async def connect(self) -> None:
        self._handler = await self._endpoint.connect_socket_mode(self._app_token, self._client)

    async def close(self) -> None:
        if self._handler is not None:
            await self._handler.close_async()  # type: ignore[no-untyped-call]  # untyped in slack-bolt


def _build(
    config: SlackSection, wiring: Wiring, *, client: AsyncWebClient | None, pacing_ms: int
) -> Surface:
    settings, store, clock = wiring.settings, wiring.store, wiring.clock
    client = client or make_client(config.bot_token.get_secret_value(), config.api_url)
    connections = SharedSession(client)
    directory = SlackDirectory(
        client,
        auditors=frozenset(settings.salesbot_auditors),
        approvers=frozenset(settings.salesbot_approvers),
        managers=frozenset(settings.salesbot_managers),
        handoff_channel=config.handoff_channel,
        leads_channel=config.leads_channel,
    )
    responses = ResponseUrls(store, clock, api_url=config.api_url)
    router = SlackRouter(
        handoff_channel=config.handoff_channel,
        leads_channel=config.leads_channel,
        escalation_channel=wiring.escalation(NAME),
        on_call=wiring.on_call(NAME),
    )
    sender = SlackSender(
        client, action_key=wiring.action_key, team_id=directory.team_id, responses=responses
    )
    installation = SlackInstallation(client, store, clock)  # paused when the token stops working
    secret = config.signing_secret
    endpoint = SlackEndpoint(
        signing_secret=secret.get_secret_value() if secret is not None else None,
        client=client,
        directory=directory,
        handle=wiring.host.handle,
        installation=installation,
        action_key=wiring.action_key,
        responses=responses,
    )
    socket = (
        _SocketMode(endpoint, config.app_token.get_secret_value(), client)
        if config.app_token is not None
        else None
    )

    async def start() -> None:
        connections.open()  # before the first call: every call reuses its connections
        await installation.start()  # a persisted pause holds from the start
        if socket is not None:
            await socket.connect()

    async def run(stop: asyncio.Event) -> None:
        await installation.run(stop)

    def mount(app: web.Application) -> None:
        app.router.add_post("/slack/events", endpoint.handle_request)

    async def close() -> None:
        await responses.close()
        await installation.close()
        await connections.close()

    return Surface(
        name=NAME,
        scheme=SCHEME,
        router=router,
        sender=PausedWhile(installation, sender),
        pacing_ms=pacing_ms,
        # Without a signing secret only Socket Mode delivers: no HTTP route is mounted.
        mount=mount if endpoint.accepts_http else None,
        start=start,
        run=run,
        stop=socket.close if socket is not None else None,
        close=close,
        # For `/readyz`: a paused installation is reported, never a reason to fail readiness.
        status=lambda: installation.status,
        describe=lambda _host, _port: "slack (socket mode)" if socket is not None else "slack",
        parts=(endpoint, installation, client, directory),
    )
