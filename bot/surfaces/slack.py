"""Slack's registration: the Events API at `POST /slack/events` (or Socket Mode), replies
through the Web API, paced per channel, held while the installation is paused.

Each workspace's handoff and leads channels (`adapters/slack/channels.py`) are written when
a `channel_set` an admin's `/salesbot setup …` recorded has been committed — the endpoint's
call to the runtime returns only then, and the outbox applies it again should that write
fail or the process stop first (`bot.channel_setup`) — read at start, and read again every
`channels.REFRESH_MS` (another replica's change)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from aiohttp import web
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.web.async_client import AsyncWebClient

from adapters.ports import Delivery, SendOutcome
from adapters.roles import InstallationRoles
from adapters.slack.app import SlackEndpoint
from adapters.slack.channels import REFRESH_MS, WorkspaceChannels, installation_id
from adapters.slack.directory import SlackDirectory
from adapters.slack.ids import SCHEME
from adapters.slack.installation import SlackInstallation
from adapters.slack.manifest import BOT_SCOPES, DEFAULT_PUBLIC_URL
from adapters.slack.oauth import REDIRECT_PATH, SlackOAuth
from adapters.slack.oauth_store import StoreInstallations, StoreOAuthStates, TokenSeal
from adapters.slack.response_url import ResponseUrls
from adapters.slack.router import SlackRouter
from adapters.slack.sender import SharedSession, SlackSender, make_client
from adapters.slack.workspaces import Workspaces
from bot.channel_setup import SETUP_ADDRESS, KeepingSetup, handle_and_keep, keeper
from bot.logs import mask_secrets
from bot.pause import PausedWhile
from bot.settings import Settings, SettingsError
from bot.surfaces.base import Registration, Surface, Wiring

log = logging.getLogger(__name__)

NAME = SCHEME.adapter
SLACK_PACING_MS = 1000
"""chat.postMessage allows about one message per second per channel."""


@dataclass(frozen=True)
class SlackSection:
    """`SLACK_*`: configured with a bot token (the first workspace's) or the app's client id
    and secret ("Add to Slack", more workspaces), or both, and a way in (a signing secret
    for HTTP, an app-level token for Socket Mode)."""

    bot_token: SecretStr | None
    signing_secret: SecretStr | None
    app_token: SecretStr | None
    api_url: str
    handoff_channel: str | None
    leads_channel: str | None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    public_url: str = DEFAULT_PUBLIC_URL

    @property
    def oauth(self) -> bool:
        """Whether Add to Slack is served (`SLACK_CLIENT_ID` and `SLACK_CLIENT_SECRET`)."""
        return self.client_id is not None and self.client_secret is not None


def section(settings: Settings) -> SlackSection | None:
    token, secret, app_token = (
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
    )
    client_id, client_secret = settings.slack_client_id, settings.slack_client_secret
    if (client_id is None) != (client_secret is None):
        missing = "SLACK_CLIENT_SECRET" if client_secret is None else "SLACK_CLIENT_ID"
        raise SettingsError(
            f"invalid configuration: {missing} is unset; SLACK_CLIENT_ID and "
            "SLACK_CLIENT_SECRET go together (both for the Add to Slack flow, or neither)"
        )
    if (token is None and client_id is None) or (secret is None and app_token is None):
        return None
    return SlackSection(
        bot_token=token,
        signing_secret=secret,
        app_token=app_token,
        api_url=settings.slack_api_url,
        handoff_channel=settings.slack_handoff_channel,
        leads_channel=settings.slack_leads_channel,
        client_id=client_id,
        client_secret=client_secret,
        public_url=settings.salesbot_public_url,
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


class _ScopedPause:
    """A `Sender`: deliveries that go out with a workspace's own installation are sent
    directly; the others are held while the configured token's installation is paused."""

    def __init__(self, paused: PausedWhile, sender: SlackSender, workspaces: Workspaces) -> None:
        self._paused, self._sender, self._workspaces = paused, sender, workspaces

    async def _direct(self, delivery: Delivery) -> bool:
        speaker = await self._workspaces.for_delivery(delivery)
        return speaker is None or speaker[0] is not self._workspaces.default_client

    async def send(self, delivery: Delivery) -> SendOutcome:
        if await self._direct(delivery):
            return await self._sender.send(delivery)
        return await self._paused.send(delivery)

    async def find_sent(self, delivery: Delivery) -> str | None:
        if await self._direct(delivery):
            return await self._sender.find_sent(delivery)
        return await self._paused.find_sent(delivery)


def _build(
    config: SlackSection, wiring: Wiring, *, client: AsyncWebClient | None, pacing_ms: int
) -> Surface:
    settings, store, clock = wiring.settings, wiring.store, wiring.clock
    token = config.bot_token.get_secret_value() if config.bot_token is not None else ""
    client = client or make_client(token, config.api_url)
    connections = SharedSession(client)

    channels = WorkspaceChannels(
        store,
        clock,
        handoff_channel=config.handoff_channel,
        leads_channel=config.leads_channel,
    )

    roles = InstallationRoles(store, clock)
    keep = keeper(channels.chose, roles.chose)

    async def first_team() -> str | None:
        """The configured token's workspace: the first installation (None without one)."""
        return await directory.team_id() if client.token else None

    def new_directory(
        api: AsyncWebClient,
        handoff: str | None = None,
        leads: str | None = None,
        *,
        installed: bool = True,
    ) -> SlackDirectory:
        # Roles come from SALESBOT_AUDITORS, … (user ids are unique across workspaces),
        # except the lists a workspace's admin set for it (`adapters/roles.py`).
        return SlackDirectory(
            api,
            auditors=frozenset(settings.salesbot_auditors),
            approvers=frozenset(settings.salesbot_approvers),
            managers=frozenset(settings.salesbot_managers),
            admins=frozenset(settings.salesbot_admins),
            handoff_channel=handoff,
            leads_channel=leads,
            channels=channels,
            roles=roles,
            first_team=first_team if installed else None,
        )

    directory = new_directory(client, config.handoff_channel, config.leads_channel, installed=False)
    installations: StoreInstallations | None = None
    if config.client_secret is not None:
        seal = TokenSeal.from_setting(config.client_secret.get_secret_value())
        installations = StoreInstallations(
            store, clock, seal, on_change=lambda team: workspaces.forget(team)
        )
    workspaces = Workspaces(
        default_client=client,
        default_directory=directory,
        installations=installations,
        new_directory=lambda api, _team: new_directory(api),
        api_url=config.api_url,
        clock=clock,
        has_default=bool(client.token),
        channels=channels,
    )
    multi = installations is not None
    responses = ResponseUrls(store, clock, api_url=config.api_url)
    router = SlackRouter(
        handoff_channel=config.handoff_channel,
        leads_channel=config.leads_channel,
        escalation_channel=wiring.escalation(NAME),
        on_call=wiring.on_call(NAME),
        channels=channels,
    )
    sender = SlackSender(
        client,
        action_key=wiring.action_key,
        team_id=directory.team_id,
        responses=responses,
        workspace=workspaces.for_delivery if multi else None,
    )
    # Paused when the configured token stops working (without one there is nothing to pause).
    installation = SlackInstallation(client, store, clock, configured=bool(client.token))
    secret = config.signing_secret
    endpoint = SlackEndpoint(
        signing_secret=secret.get_secret_value() if secret is not None else None,
        client=client,
        directory=directory,
        handle=lambda inbound: handle_and_keep(wiring.host.handle, keep, inbound),
        installation=installation,
        action_key=wiring.action_key,
        responses=responses,
        workspaces=workspaces if multi else None,
        installation_store=installations,
    )
    socket = (
        _SocketMode(endpoint, config.app_token.get_secret_value(), client)
        if config.app_token is not None
        else None
    )

    async def installed(new: Installation) -> None:
        # Masked in every log line from now on, as the configured secrets are.
        mask_secrets(new.bot_token, new.user_token, new.bot_refresh_token)
        await installation.installed(new)
        if new.team_id and new.user_id and not await first_workspace(new.team_id):
            # Whoever added the app is an admin of the workspace until its admins are set
            # (the first workspace, SLACK_BOT_TOKEN's, keeps the environment's lists).
            await roles.installed_by(installation_id(new.team_id), new.user_id, clock())
            # ... and its cards go to their direct messages until channels are chosen.
            try:
                await channels.installed_by(new.team_id, new.user_id, clock())
            except Exception:
                # The installation itself is saved: the install succeeds. Until an admin
                # chooses channels, this workspace's cards have no place of its own.
                log.exception(
                    "slack workspace %s: its installer could not be noted; run /salesbot "
                    "setup handoff #channel there",
                    new.team_id,
                )

    async def first_workspace(team: str) -> bool:
        """`team` is the configured token's workspace; True when that cannot be told now
        (nobody is made an admin on a guess)."""
        if not client.token:
            return False
        try:
            return team == await directory.team_id()
        except Exception:
            log.warning("could not tell the configured workspace; installer not made admin")
            return True

    oauth: SlackOAuth | None = None
    states: StoreOAuthStates | None = None
    if installations is not None and config.client_id is not None and config.client_secret:
        states = StoreOAuthStates(store, clock)
        oauth = SlackOAuth(
            client_id=config.client_id,
            # The first listed secret is the current one (older ones only open tokens).
            client_secret=config.client_secret.get_secret_value().split(",")[0].strip(),
            redirect_uri=config.public_url.rstrip("/") + REDIRECT_PATH,
            scopes=BOT_SCOPES,
            installations=installations,
            states=states,
            client=make_client("", config.api_url),
            clock=clock,
            on_installed=installed,
        )
    paused = PausedWhile(installation, sender)

    async def start() -> None:
        connections.open()  # before the first call: every call reuses its connections
        await installation.start()  # a persisted pause holds from the start
        await channels.load()  # each workspace's channels, before the first reply is routed
        if states is not None:
            await _forget_expired(states)  # install links abandoned while it was down
        if socket is not None:
            await socket.connect()

    async def run(stop: asyncio.Event) -> None:
        await asyncio.gather(
            installation.run(stop),
            _refresh(channels, stop),
            *((_sweep_states(states, stop),) if states is not None else ()),
        )

    def mount(app: web.Application) -> None:
        if endpoint.accepts_http:
            app.router.add_post("/slack/events", endpoint.handle_request)
        if oauth is not None:
            oauth.mount(app)

    async def close() -> None:
        await responses.close()
        await installation.close()
        await connections.close()

    return Surface(
        name=NAME,
        scheme=SCHEME,
        router=router,
        # The configured token's pause holds its own workspace's replies, never those of a
        # workspace with an installation of its own.
        # A workspace's channel choice committed with its `channel_set` is applied from the
        # outbox too (`bot.channel_setup`): never lost to a crash after the commit.
        sender=KeepingSetup(
            _ScopedPause(paused, sender, workspaces) if multi else paused,
            keep,
            channel=SCHEME.channel(SETUP_ADDRESS),
        ),
        pacing_ms=pacing_ms,
        # Without a signing secret only Socket Mode delivers: no events route is mounted
        # (the install routes are, when configured: a browser reaches them).
        mount=mount if endpoint.accepts_http or oauth is not None else None,
        start=start,
        run=run,
        stop=socket.close if socket is not None else None,
        close=close,
        # For `/readyz`: a paused installation is reported, never a reason to fail readiness.
        status=lambda: installation.status,
        describe=lambda _host, _port: "slack (socket mode)" if socket is not None else "slack",
        parts=(endpoint, installation, client, directory, channels)
        + ((oauth,) if oauth is not None else ()),
    )


async def _refresh(channels: WorkspaceChannels, stop: asyncio.Event) -> None:
    """Read the workspaces' channels again every `REFRESH_MS` until `stop` (another
    replica's admin may have changed one); a failed read keeps the last one."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REFRESH_MS / 1000)
        if stop.is_set():
            return
        try:
            await channels.load()
        except Exception:  # the store briefly unavailable: try again next time
            log.warning("could not read the slack workspaces' channels", exc_info=True)


STATE_SWEEP_MS = 60_000
"""How often the install links nobody came back with are looked for (they expire after
`oauth_store.STATE_TTL_MS`)."""


async def _sweep_states(states: StoreOAuthStates, stop: asyncio.Event) -> None:
    """Delete expired install states every `STATE_SWEEP_MS` until `stop` (at start too:
    `start`). Each replica does; a state deleted twice is deleted once."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STATE_SWEEP_MS / 1000)
        if stop.is_set():
            return
        await _forget_expired(states)


async def _forget_expired(states: StoreOAuthStates) -> None:
    """One bounded sweep (`StoreOAuthStates.forget_expired`); a failure is retried at the
    next one."""
    try:
        await states.forget_expired()
    except Exception:  # the store briefly unavailable: next time
        log.warning("could not forget the expired slack install states", exc_info=True)
