"""One running salesbot: the store, the runtime, the outbox worker, the idle sweeper and
the platform endpoints, started and stopped together.

`build_service` is the composition root for `salesbot serve`; tests call it with a
memory store, a fake clock or a Slack client pointed at a local fake API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.web.async_client import AsyncWebClient

from adapters.action_binding import ActionKey
from adapters.leadfeed.reply import CHANNEL_PREFIX as LEAD_REPLY_PREFIX
from adapters.leadfeed.reply import LeadReplyRouter, LeadReplySender
from adapters.leadfeed.web import LeadFeed
from adapters.loopback import is_loopback_host
from adapters.outbound import Lookup, OutboundPolicy
from adapters.playground.access import PlaygroundAccess, PlaygroundRefusedError
from adapters.playground.hub import PlaygroundHub
from adapters.playground.router import CHANNEL_PREFIX as PLAYGROUND_PREFIX
from adapters.playground.router import PlaygroundRouter
from adapters.ports import (
    Rejected,
    RetryLater,
    Router,
    Sender,
    SendOutcome,
    Sent,
    TimedOut,
)
from adapters.slack.app import SlackEndpoint
from adapters.slack.directory import SlackDirectory
from adapters.slack.installation import SlackInstallation
from adapters.slack.response_url import ResponseUrls
from adapters.slack.router import CHANNEL_PREFIX as SLACK_PREFIX
from adapters.slack.router import SlackRouter
from adapters.slack.sender import SlackSender, make_client
from adapters.teams.auth import TokenValidator
from adapters.teams.connector import (
    Connector,
    MsalTokenProvider,
    NoToken,
    TokenProvider,
)
from adapters.teams.endpoint import TeamsEndpoint
from adapters.teams.inbound import TeamsContext
from adapters.teams.router import CHANNEL_PREFIX as TEAMS_PREFIX
from adapters.teams.router import TeamsRouter
from adapters.teams.sender import TeamsSender
from bot.action_secret import load_action_secret
from bot.logs import mask_secrets
from bot.outbox_worker import OutboxWorker
from bot.pause import PausedWhile
from bot.playground_desk import restore_playground
from bot.queries import query_answerer
from bot.routing import CompositeRouter
from bot.runtime import INBOUND, HandleResult, Runtime
from bot.settings import Settings, SettingsError
from bot.state_cache import DEFAULT_MAX_BYTES, MIB
from domain.inbound import Inbound
from domain.policy import Policy
from storage.errors import StorageError
from storage.ports import OutboxStats, Store

log = logging.getLogger(__name__)

SLACK_PACING_MS = 1000
"""chat.postMessage allows about one message per second per channel."""
SWEEP_EVERY_S = 60.0
READY_PROBE_EVERY_MS = 5_000
"""`/readyz` writes to the store at most this often; between probes it repeats the last
verdict (a probe is one durable write: an fsync)."""
READY_PROBE_TIMEOUT_S = 2.0
READY_PROBE_KEY = "salesbot:ready-probe"

ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
"""Seconds; 3 s is Slack's acknowledgement deadline (Teams allows about 15 s)."""
DECIDE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
SEND_OUTCOMES: dict[type, str] = {
    Sent: "sent",
    RetryLater: "retry",
    TimedOut: "timeout",
    Rejected: "rejected",
}


def platform_of(channel: str) -> str:
    """The platform of a channel ("slack" for "slack:C123"): the label of every
    per-platform figure, as in the store's `outbox_stats`."""
    return channel.split(":", 1)[0]


ANSWERS_STOP_S = 5.0
"""How long a stop waits for audit and metrics answers still being computed."""
WORKER_STOP_S = 15.0
"""How long a stop waits for the outbox's sends under way (each bounded by the worker's
10 s send timeout) before cutting them short; either way the leases are released."""


@dataclass
class Metrics:
    """What `/metrics` shows. Request figures are labelled by route *pattern* (never a raw
    path: ids would make a series per conversation); outbox figures by platform."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.inbounds = Counter(
            "salesbot_inbounds_total",
            "Inbounds handled",
            ["kind", "status"],
            registry=self.registry,
        )
        self.requests = Counter(
            "salesbot_http_requests_total",
            "HTTP requests answered, by method, route pattern and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "salesbot_http_request_duration_seconds",
            "From a request's arrival to its answer (for platforms: the acknowledgement), "
            "by route pattern; WebSocket sessions are not timed",
            ["route"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.decide_seconds = Histogram(
            "salesbot_decide_duration_seconds",
            "Time one decide call takes (the pure decision, without the store)",
            buckets=DECIDE_BUCKETS,
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "salesbot_outbox_pending",
            "Outbox items not yet sent (pending or in flight), by platform",
            ["platform"],
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "salesbot_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox item not yet sent, by platform (0 when none)",
            ["platform"],
            registry=self.registry,
        )
        self.outbox_dead = Gauge(
            "salesbot_outbox_dead_letters",
            "Outbox items given up on, by platform",
            ["platform"],
            registry=self.registry,
        )
        self.sends = Counter(
            "salesbot_outbox_sends_total",
            "Send attempts by platform and outcome: sent; retry (rate limited, a 5xx or "
            "no connection: tried again later); timeout (no complete answer: looked up "
            "before resending); rejected (refused for good: dead-lettered)",
            ["platform", "outcome"],
            registry=self.registry,
        )
        self.state_cache_bytes = Gauge(
            "salesbot_state_cache_bytes",
            "Estimated serialised size of the conversation states kept in memory "
            "(bounded by SALESBOT_STATE_CACHE_MB)",
            registry=self.registry,
        )
        self.state_cache_entries = Gauge(
            "salesbot_state_cache_entries",
            "Conversation states kept in memory",
            registry=self.registry,
        )

    def observe_request(
        self, method: str, route: str, status: int, seconds: float, *, timed: bool = True
    ) -> None:
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        if timed:
            self.ack_seconds.labels(route=route).observe(seconds)

    def count_send(self, channel: str, outcome: SendOutcome) -> None:
        name = SEND_OUTCOMES.get(type(outcome), type(outcome).__name__.lower())
        self.sends.labels(platform=platform_of(channel), outcome=name).inc()

    def set_outbox(self, stats: list[OutboxStats], now_ms: int, platforms: list[str]) -> None:
        """Replace the outbox gauges: a platform whose items are all sent shows 0 (and the
        configured platforms always show), instead of keeping its last figures."""
        for gauge in (self.outbox_pending, self.outbox_oldest_age, self.outbox_dead):
            gauge.clear()
        for platform in platforms:
            self.outbox_pending.labels(platform=platform).set(0)
            self.outbox_oldest_age.labels(platform=platform).set(0)
            self.outbox_dead.labels(platform=platform).set(0)
        for row in stats:
            oldest = row.oldest_pending_created_at_ms
            age_s = max(0, now_ms - oldest) / 1000 if oldest is not None else 0
            self.outbox_pending.labels(platform=row.platform).set(row.pending)
            self.outbox_oldest_age.labels(platform=row.platform).set(age_s)
            self.outbox_dead.labels(platform=row.platform).set(row.dead)


class Service:
    def __init__(
        self,
        *,
        store: Store,
        policy: Policy,
        clock: Callable[[], int],
        routers: list[Router],
        senders: dict[str, Sender],
        slack_pacing_ms: int = SLACK_PACING_MS,
        action_key: ActionKey | None = None,
        action_secret: SecretStr | None = None,
        state_cache_bytes: int = DEFAULT_MAX_BYTES,
        outbox_identity: str | None = None,
    ) -> None:
        """`outbox_identity`: this process's boot slot (`bot.boot_slot`), so a restart takes
        over its previous boot's outbox leases at once; None: they expire by heartbeat."""
        self.store = store
        self.action_key = action_key or ActionKey()
        """Binds card buttons to their card; loaded in `start`, once the store is open."""
        self._action_secret = action_secret
        self.policy = policy
        self.metrics = Metrics()
        self.runtime = Runtime(
            store,
            policy,
            CompositeRouter(routers),
            clock=clock,
            answer_query=query_answerer(policy),
            cache_bytes=state_cache_bytes,
            on_decided=self.metrics.decide_seconds.observe,
        )
        self._senders = senders
        self.worker = OutboxWorker(
            store,
            self._sender_for,
            clock=clock,
            sleep=asyncio.sleep,
            rng=random.Random(),
            pacing_ms=lambda channel: slack_pacing_ms if channel.startswith(SLACK_PREFIX) else 0,
            on_dead_letter=self.runtime.report_dead_letter,
            on_send=self.metrics.count_send,
            identity=outbox_identity,
            prefixes=tuple(senders),  # never claim what another process has the sender for
        )
        self.slack: SlackEndpoint | None = None
        self.teams: TeamsEndpoint | None = None
        self.lead_feed: LeadFeed | None = None
        self.playground: PlaygroundHub | None = None
        self.playground_access = PlaygroundAccess()
        self.clock = clock
        self.closers: list[Callable[[], Awaitable[None]]] = []
        self.slack_client: AsyncWebClient | None = None
        self.slack_app_token: str | None = None
        self.slack_installation: SlackInstallation | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._worker_task: asyncio.Task[None] | None = None
        self.ready = False
        self._probe_lock = asyncio.Lock()
        self._probed_at_ms: int | None = None
        self._probe_problem: str | None = None

    def _sender_for(self, channel: str) -> Sender | None:
        for prefix, sender in self._senders.items():
            if channel.startswith(prefix):
                return sender
        return None

    async def handle(self, inbound: Inbound) -> HandleResult:
        """What every adapter calls: decide and commit, then the adapter acknowledges."""
        result = await self.runtime.handle(inbound)
        self.metrics.inbounds.labels(kind=inbound.kind, status=result.status).inc()
        self.worker.wake()  # its replies are committed: deliver now, not at the next poll
        return result

    async def start(self) -> None:
        secret, retired = await load_action_secret(self._action_secret, self.store, self.clock())
        mask_secrets(*(value.decode("utf-8") for value in (secret, *retired)))
        self.action_key.load(secret, retired)
        await self.runtime.start()
        if self.playground is not None:
            # Before the worker starts: what was shown comes back first, then what is still
            # pending is delivered after it. The buttons are signed with the key just loaded.
            restored = await restore_playground(self.playground, self.store)
            log.info("playground history: %d messages rebuilt from the store", restored)
        if self.slack_installation is not None:
            await self.slack_installation.start()  # a persisted pause holds from the start
        if self.slack is not None and self.slack_app_token and self.slack_client is not None:
            self._socket = await self.slack.connect_socket_mode(
                self.slack_app_token, self.slack_client
            )
        self._worker_task = asyncio.create_task(self.worker.run(self._stop), name="outbox")
        self._tasks = [asyncio.create_task(self._sweep_loop(), name="sweeper")]
        if self.slack_installation is not None:
            self._tasks.append(
                asyncio.create_task(self.slack_installation.run(self._stop), name="slack-check")
            )
        self.ready = True

    async def stop(self) -> None:
        """Stop the worker first, while the senders are still open: the sends under way
        finish (up to `WORKER_STOP_S`), and every lease is released, so the next process
        delivers the pending replies at once instead of after the leases expire."""
        self.ready = False
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]  # untyped in slack-bolt
        # Audits and metrics asked for just before the stop are written to the outbox first
        # (bounded: one left over is answered at the next start), so this process sends them.
        try:
            await asyncio.wait_for(self.runtime.settled(), timeout=ANSWERS_STOP_S)
        except TimeoutError:
            log.warning(
                "answers still being computed after %.0f s; left for the next start", ANSWERS_STOP_S
            )
        self._stop.set()
        if self._worker_task is not None:
            try:
                await asyncio.wait_for(self._worker_task, timeout=WORKER_STOP_S)
            except TimeoutError:
                log.warning("outbox sends still under way after %.0f s; cut short", WORKER_STOP_S)
            except Exception:
                log.exception("outbox worker failed")
        for close in self.closers:
            await close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.runtime.sweep_idle()
            except Exception:  # one bad sweep must not stop the next
                log.exception("idle sweep failed")
            try:
                await self.runtime.sweep_retention()
            except Exception:
                log.exception("retention sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=SWEEP_EVERY_S)

    def platform_status(self) -> dict[str, str]:
        """For `/readyz`: a paused platform is reported, never a reason to fail readiness
        (the endpoints must keep acknowledging)."""
        if self.slack_installation is None:
            return {}
        return {"slack": self.slack_installation.status}

    async def refresh_gauges(self) -> None:
        """Read what the gauges show from the store, at scrape time."""
        stats = await self.store.outbox_stats()
        platforms = sorted({platform_of(prefix) for prefix in self._senders})
        self.metrics.set_outbox(stats, self.clock(), platforms)
        cache = self.runtime.state_cache
        self.metrics.state_cache_bytes.set(cache.nbytes)
        self.metrics.state_cache_entries.set(len(cache))

    async def store_problem(self) -> str | None:
        """Why the store cannot take a write now, or None. Asks with a write (an upsert of
        one adapter-state row), at most every `READY_PROBE_EVERY_MS`: a read-only file, a
        full disk or a stuck writer fail it, while reads — all the old check did — work."""
        async with self._probe_lock:
            now = self.clock()
            if self._probed_at_ms is not None and now - self._probed_at_ms < READY_PROBE_EVERY_MS:
                return self._probe_problem
            problem: str | None = None
            try:
                async with asyncio.timeout(READY_PROBE_TIMEOUT_S):
                    await self.store.put_state(READY_PROBE_KEY, {"at_ms": now}, now)
            except TimeoutError:
                problem = f"the store did not complete a write within {READY_PROBE_TIMEOUT_S:g} s"
            except StorageError as exc:  # our own messages: the file and SQLite's reason
                problem = f"the store cannot write: {exc}"
            except Exception as exc:
                problem = f"the store cannot write ({type(exc).__name__})"
            if problem != self._probe_problem:
                if problem is not None:
                    log.error("not ready: %s", problem)
                else:
                    log.warning("ready again: the store takes writes")
            self._probed_at_ms, self._probe_problem = now, problem
            return problem


def build_service(
    settings: Settings,
    policy: Policy,
    store: Store,
    *,
    clock: Callable[[], int],
    slack_client: AsyncWebClient | None = None,
    slack_pacing_ms: int = SLACK_PACING_MS,
    teams_tokens: TokenProvider | None = None,
    outbound_lookup: Lookup | None = None,
    outbox_identity: str | None = None,
) -> Service:
    """`teams_tokens` replaces the bot's MSAL token source (tests: no Entra to ask);
    `outbound_lookup` the DNS look-up for outbound URLs (tests: no DNS to ask);
    `outbox_identity` is this process's boot slot (see `Service`)."""
    mask_secrets(*settings.secret_values())
    desk = policy.handoff
    escalation = desk.escalation if desk is not None else {}
    on_call = desk.on_call if desk is not None else {}
    routers: list[Router] = []
    outbound = _outbound_policy(settings, outbound_lookup)
    senders: dict[str, Sender] = {}
    action_key = ActionKey()  # shared by the adapters that render and check buttons
    token, secret = settings.slack_bot_token, settings.slack_signing_secret
    app_token = settings.slack_app_token
    client: AsyncWebClient | None = None
    installation: SlackInstallation | None = None  # paused when the bot token stops working
    slack_configured = token is not None and (secret is not None or app_token is not None)
    directory: SlackDirectory | None = None
    responses: ResponseUrls | None = None
    if token is not None and slack_configured:
        client = slack_client or make_client(token.get_secret_value(), settings.slack_api_url)
        directory = SlackDirectory(
            client,
            auditors=frozenset(settings.salesbot_auditors),
            approvers=frozenset(settings.salesbot_approvers),
            managers=frozenset(settings.salesbot_managers),
            handoff_channel=settings.slack_handoff_channel,
            leads_channel=settings.slack_leads_channel,
        )
        responses = ResponseUrls(store, clock, api_url=settings.slack_api_url)
        routers.append(
            SlackRouter(
                handoff_channel=settings.slack_handoff_channel,
                leads_channel=settings.slack_leads_channel,
                escalation_channel=escalation.get("slack"),
                on_call=on_call.get("slack"),
            )
        )
        slack_sender = SlackSender(
            client, action_key=action_key, team_id=directory.team_id, responses=responses
        )
        installation = SlackInstallation(client, store, clock)
        senders[SLACK_PREFIX] = PausedWhile(installation, slack_sender)
    teams = _teams_mode(settings)
    teams_sender: TeamsSender | None = None
    if teams is not None:
        connector = Connector(teams_tokens or _teams_tokens(settings))
        routers.append(
            TeamsRouter(
                escalation_conversation=escalation.get("teams"), on_call=on_call.get("teams")
            )
        )
        teams_sender = TeamsSender(
            connector,
            store,
            handoff_conversation=settings.teams_handoff_conversation,
            leads_conversation=settings.teams_leads_conversation,
            clock=clock,
            action_key=action_key,
            tenant_id=settings.teams_app_tenant_id,
        )
        senders[TEAMS_PREFIX] = teams_sender
    playground: PlaygroundHub | None = None
    playground_access = PlaygroundAccess()
    if settings.salesbot_playground or not (slack_configured or teams is not None):
        # The embedded default: with no platform configured, the local playground is the bot.
        # Its people are trusted, so off loopback or beside a platform it needs its token.
        playground_token = settings.salesbot_playground_token
        try:
            playground_access = PlaygroundAccess.decide(
                host=settings.salesbot_host,
                token=playground_token.get_secret_value() if playground_token else None,
                platforms=[
                    name
                    for name, on in (("Slack", slack_configured), ("Teams", teams is not None))
                    if on
                ],
            )
        except PlaygroundRefusedError as exc:
            raise SettingsError(f"invalid configuration: {exc}") from None
        playground = PlaygroundHub(clock=clock, action_key=action_key)
        routers.append(PlaygroundRouter())
        senders[PLAYGROUND_PREFIX] = playground
    reply_secret = settings.salesbot_lead_reply_secret
    reply_sender: LeadReplySender | None = None
    if reply_secret is not None:
        # Replies to prospects are never sent unsigned: no secret, no reply path.
        try:
            routers.append(
                LeadReplyRouter(
                    default_reply_url=settings.salesbot_lead_reply_url, outbound=outbound
                )
            )
        except ValueError as exc:
            raise SettingsError(f"invalid configuration: {exc}") from None
        reply_sender = LeadReplySender(
            secret=reply_secret.get_secret_value(),
            outbound=outbound,
            action_key=action_key,
            public_url=settings.salesbot_public_url,
        )
        senders[LEAD_REPLY_PREFIX] = reply_sender
    service = Service(
        store=store,
        policy=policy,
        clock=clock,
        routers=routers,
        senders=senders,
        slack_pacing_ms=slack_pacing_ms,
        action_key=action_key,
        action_secret=settings.salesbot_action_secret,
        state_cache_bytes=settings.salesbot_state_cache_mb * MIB,
        outbox_identity=outbox_identity,
    )
    service.playground = playground
    service.playground_access = playground_access
    if reply_sender is not None:
        service.closers.append(reply_sender.close)
    if teams is not None and teams_sender is not None:
        service.closers.append(teams_sender.close)
        service.teams = _teams_endpoint(settings, teams, teams_sender, service)
    leads_token = settings.salesbot_leads_token

    async def first_inbound(delivery_id: str) -> Inbound | None:
        stored = await store.inbound(delivery_id)
        return INBOUND.validate_python(stored.inbound) if stored is not None else None

    service.lead_feed = LeadFeed(
        token=leads_token.get_secret_value() if leads_token is not None else None,
        handle=service.handle,
        conversation=service.runtime.conversation,
        first_inbound=first_inbound,
        outbound=outbound,
        action_key=action_key,
    )
    if client is not None and directory is not None and installation is not None:
        if responses is not None:
            service.closers.append(responses.close)
        service.slack_installation = installation
        service.closers.append(installation.close)
        service.slack = SlackEndpoint(
            signing_secret=secret.get_secret_value() if secret is not None else None,
            client=client,
            directory=directory,
            handle=service.handle,
            installation=installation,
            action_key=action_key,
            responses=responses,
        )
        service.slack_client = client
        service.slack_app_token = app_token.get_secret_value() if app_token is not None else None
    return service


def _outbound_policy(settings: Settings, lookup: Lookup | None) -> OutboundPolicy:
    try:
        return OutboundPolicy(settings.salesbot_outbound_allow, lookup=lookup)
    except ValueError as exc:
        raise SettingsError(f"invalid configuration: {exc}") from None


TeamsMode = Literal["authenticated", "local"]


def _teams_mode(settings: Settings) -> TeamsMode | None:
    """ "authenticated" with the bot's credentials, "local" for unauthenticated local mode
    (only on a loopback bind: a token-less endpoint must not be reachable from elsewhere),
    None when Teams is not configured."""
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


def _teams_endpoint(
    settings: Settings, mode: TeamsMode, sender: TeamsSender, service: Service
) -> TeamsEndpoint:
    validator = None
    if mode == "authenticated":
        validator = TokenValidator(
            app_id=settings.teams_app_id or "",
            tenant_id=settings.teams_app_tenant_id,
            metadata_url=settings.teams_openid_metadata_url,
        )
    return TeamsEndpoint(
        context=TeamsContext(
            tenant_id=settings.teams_app_tenant_id,
            bot_id=f"28:{settings.teams_app_id}" if settings.teams_app_id else "",
            action_key=service.action_key,
            auditors=frozenset(settings.salesbot_auditors),
            approvers=frozenset(settings.salesbot_approvers),
            managers=frozenset(settings.salesbot_managers),
        ),
        validator=validator,
        connector=sender.connector,
        states=service.store,
        handle=service.handle,
        clock=service.clock,
    )


def _teams_tokens(settings: Settings) -> TokenProvider:
    if settings.teams_app_id and settings.teams_app_password is not None:
        return MsalTokenProvider(
            app_id=settings.teams_app_id,
            password=settings.teams_app_password.get_secret_value(),
            tenant_id=settings.teams_app_tenant_id,
        )
    return NoToken()
