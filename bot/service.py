"""One running salesbot: the store, the runtime, the outbox worker, the idle sweeper and
the surfaces (Slack, Teams, the playground, the lead feed, …), started and stopped together.

`build_service` is the composition root for `salesbot serve`: it builds every registered
surface that is configured (`bot.surfaces`) and wires their routers, senders and hooks
without naming any of them. Tests call it with a memory store, a fake clock, a Slack client
pointed at a local fake API, or an extra surface of their own (`extra_surfaces`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient

from adapters.action_binding import ActionKey
from adapters.ids import platform_of
from adapters.outbound import Lookup, OutboundPolicy
from adapters.ports import Rejected, RetryLater, SendOutcome, Sent, TimedOut
from bot.action_secret import load_action_secret
from bot.channel_setup import combine_effects, setup_items
from bot.crm_outbox import CrmOutcomes, crm_items
from bot.logs import mask_secrets
from bot.outbox_worker import OWNER_TTL_MS, OutboxWorker
from bot.queries import query_answerer
from bot.routing import CompositeRouter
from bot.runtime import RECENT_CAPACITY, HandleResult, Runtime
from bot.settings import Settings, SettingsError
from bot.state_cache import DEFAULT_MAX_BYTES, MIB
from bot.surfaces import SLACK_PACING_MS, BuiltInViews, TokenProvider, default_registrations
from bot.surfaces.base import Dispatch, Registration, Relay, Surface, build_surfaces
from domain.inbound import Inbound
from domain.policy import Policy
from domain.state import ConversationState
from storage.errors import StorageError
from storage.ports import OutboxStats, Store

__all__ = ["SLACK_PACING_MS", "Metrics", "Service", "build_service", "platform_of"]

log = logging.getLogger(__name__)

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
        self.dedupe_entries = Gauge(
            "salesbot_dedupe_view_entries",
            "Delivery ids kept in memory to refuse a redelivery without reading the store "
            f"(the most recent, up to {RECENT_CAPACITY:,}: memory that grows until that bound)",
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


class Service(BuiltInViews):
    def __init__(
        self,
        *,
        store: Store,
        policy: Policy,
        clock: Callable[[], int],
        surfaces: Sequence[Surface],
        action_key: ActionKey | None = None,
        action_secret: SecretStr | None = None,
        state_cache_bytes: int = DEFAULT_MAX_BYTES,
        outbox_identity: str | None = None,
        outbox_lease_ms: int = OWNER_TTL_MS,
    ) -> None:
        """`surfaces` are the configured surfaces, in routing order (`bot.surfaces`).
        `outbox_identity`: this process's boot slot (`bot.boot_slot`), so a restart takes
        over its previous boot's outbox leases at once; None: they expire by heartbeat.
        `outbox_lease_ms` (`SALESBOT_OUTBOX_LEASE_MS`): how long this process's outbox
        claims outlive its last heartbeat, so how soon another replica takes over the
        replies of one that died (`outbox_timing`)."""
        self.store = store
        self.action_key = action_key or ActionKey()
        """Binds card buttons to their card; loaded in `start`, once the store is open."""
        self._action_secret = action_secret
        self.policy = policy
        self.metrics = Metrics()
        self.surfaces = tuple(surfaces)
        routers = [surface.router for surface in self.surfaces if surface.router is not None]
        self.runtime = Runtime(
            store,
            policy,
            CompositeRouter(routers),
            clock=clock,
            answer_query=query_answerer(policy),
            cache_bytes=state_cache_bytes,
            on_decided=self.metrics.decide_seconds.observe,
            # CRM writes, and each installation's channel choices (`bot.channel_setup`).
            effects=combine_effects(crm_items, setup_items),
            # Committed replies are delivered now, not at the outbox's next poll.
            on_enqueued=self._wake_worker,
        )
        self._dispatch = Dispatch(self.surfaces)
        # A CRM write's outcome is recorded in its conversation (and alerted when refused).
        self.crm_outcomes = CrmOutcomes(
            self.handle,
            self._dispatch.sender_for,
            self.runtime.report_dead_letter,
            clock=clock,
            registry=self.metrics.registry,
        )
        self.worker = OutboxWorker(
            store,
            self._dispatch.sender_for,
            clock=clock,
            sleep=asyncio.sleep,
            rng=random.Random(),
            pacing_ms=self._dispatch.pacing_ms,
            on_dead_letter=self.crm_outcomes.on_dead_letter,
            on_send=self.metrics.count_send,
            on_sent=self.crm_outcomes.on_sent,
            identity=outbox_identity,
            prefixes=self._dispatch.prefixes,  # never claim what another process sends
            **outbox_timing(outbox_lease_ms),
        )
        self.clock = clock
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._worker_task: asyncio.Task[None] | None = None
        self.ready = False
        self._probe_lock = asyncio.Lock()
        self._probed_at_ms: int | None = None
        self._probe_problem: str | None = None

    async def handle(self, inbound: Inbound) -> HandleResult:
        """What every adapter calls: decide and commit, then the adapter acknowledges."""
        result = await self.runtime.handle(inbound)
        self.metrics.inbounds.labels(kind=inbound.kind, status=result.status).inc()
        return result

    def _wake_worker(self, channels: Sequence[str]) -> None:
        self.worker.wake(channels)

    async def conversation(self, conversation_id: str) -> ConversationState | None:
        """A conversation's current state (for readers such as the lead feed's transcript)."""
        return await self.runtime.conversation(conversation_id)

    async def start(self) -> None:
        secret, retired = await load_action_secret(self._action_secret, self.store, self.clock())
        mask_secrets(*(value.decode("utf-8") for value in (secret, *retired)))
        self.action_key.load(secret, retired)
        await self.runtime.start()
        for surface in self.surfaces:
            if surface.start is not None:  # before the worker: see `Surface`
                await surface.start()
        self._worker_task = asyncio.create_task(self.worker.run(self._stop), name="outbox")
        self._tasks = [asyncio.create_task(self._sweep_loop(), name="sweeper")]
        for surface in self.surfaces:
            if surface.run is not None:
                self._tasks.append(
                    asyncio.create_task(surface.run(self._stop), name=f"{surface.name}-run")
                )
        self.ready = True

    async def stop(self) -> None:
        """Stop the worker first, while the senders are still open: the sends under way
        finish (up to `WORKER_STOP_S`), and every lease is released, so the next process
        delivers the pending replies at once instead of after the leases expire."""
        self.ready = False
        for surface in self.surfaces:
            if surface.stop is not None:
                await surface.stop()
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
        for surface in self.surfaces:
            if surface.close is not None:
                await surface.close()
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
        """For `/readyz`: each surface's own status (a paused Slack installation), never a
        reason to fail readiness (the endpoints must keep acknowledging)."""
        return {surface.name: surface.status() for surface in self.surfaces if surface.status}

    def startup_lines(self, host: str, port: int) -> tuple[list[str], list[str]]:
        """For `salesbot serve`: each surface's entry in its "platforms:" list, and the
        lines it prints after (the playground's address and token rule)."""
        described = [s.describe(host, port) for s in self.surfaces if s.describe is not None]
        notices = [s.notice(host, port) for s in self.surfaces if s.notice is not None]
        return described, notices

    async def refresh_gauges(self) -> None:
        """Read what the gauges show from the store, at scrape time."""
        stats = await self.store.outbox_stats()
        self.metrics.set_outbox(stats, self.clock(), self._dispatch.platforms)
        cache = self.runtime.state_cache
        self.metrics.state_cache_bytes.set(cache.nbytes)
        self.metrics.state_cache_entries.set(len(cache))
        self.metrics.dedupe_entries.set(self.runtime.remembered_deliveries)

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


def outbox_timing(lease_ms: int) -> dict[str, Any]:
    """The outbox worker's heartbeat and send timeout for an owner lease of `lease_ms`:
    a heartbeat every fifth of it, and a send given up after half of it (at most the
    worker's 10 s), so a heartbeat plus a whole send always fit in the lease — the worker
    never starts a send its lease might not cover. 20 s (the default) gives the worker's
    own defaults: 4 s and 10 s."""
    return {
        "owner_ttl_ms": lease_ms,
        "heartbeat_ms": max(1, lease_ms // 5),
        "send_timeout_s": min(10.0, lease_ms / 2000),
    }


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
    surfaces: Sequence[Registration[Any]] | None = None,
    extra_surfaces: Sequence[Registration[Any]] = (),
) -> Service:
    """`surfaces` replaces the registered surfaces (`bot.surfaces.default_registrations`,
    built with `slack_client`, `slack_pacing_ms` and `teams_tokens`: the built-ins' test
    seams); `extra_surfaces` adds to them. `outbound_lookup` replaces the DNS look-up for
    outbound URLs (tests: no DNS to ask); `outbox_identity` is this process's boot slot
    (see `Service`)."""
    mask_secrets(*settings.secret_values())
    registrations = [
        *(
            surfaces
            if surfaces is not None
            else default_registrations(
                slack_client=slack_client,
                slack_pacing_ms=slack_pacing_ms,
                teams_tokens=teams_tokens,
            )
        ),
        *extra_surfaces,
    ]
    action_key = ActionKey()  # shared by the surfaces that render and check buttons
    relay = Relay()
    built = build_surfaces(
        registrations,
        settings=settings,
        policy=policy,
        store=store,
        clock=clock,
        action_key=action_key,
        outbound=_outbound_policy(settings, outbound_lookup),
        host=relay,
    )
    service = Service(
        store=store,
        policy=policy,
        clock=clock,
        surfaces=built,
        action_key=action_key,
        action_secret=settings.salesbot_action_secret,
        state_cache_bytes=settings.salesbot_state_cache_mb * MIB,
        outbox_identity=outbox_identity,
        outbox_lease_ms=settings.salesbot_outbox_lease_ms,
    )
    relay.bind(service)
    return service


def _outbound_policy(settings: Settings, lookup: Lookup | None) -> OutboundPolicy:
    try:
        return OutboundPolicy(settings.salesbot_outbound_allow, lookup=lookup)
    except ValueError as exc:
        raise SettingsError(f"invalid configuration: {exc}") from None
