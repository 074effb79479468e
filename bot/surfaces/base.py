"""The seam for outside systems: what a surface registers, and what the composition root
builds from it.

A *surface* is one outside system salesbot talks to: a chat platform (Slack, Teams), the
local playground, the lead feed, the terminal — later a CRM. Each one registers once, as a
`Registration`: its name, its id scheme (`adapters.ids.IdScheme`), how to read its settings
section from `Settings` (None: not configured), and how to build it from that section and
the shared `Wiring`. What the build returns, a `Surface`, holds everything the running bot
needs from it as typed values — its router, its sender and pacing, its HTTP routes, its
start/run/stop hooks, its readiness status and its line at start-up — so `bot/service.py`,
`bot/server.py`, the outbox worker and `salesbot serve` iterate surfaces and never name one.

`docs/adapters.md` walks through adding one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from aiohttp import web

from adapters.action_binding import ActionKey
from adapters.ids import IdScheme
from adapters.outbound import OutboundPolicy
from adapters.ports import Router, Sender
from bot.runtime import HandleResult
from bot.settings import Settings
from domain.inbound import Inbound
from domain.policy import Policy
from domain.state import ConversationState
from storage.ports import Store

S = TypeVar("S")
T = TypeVar("T")


class Host(Protocol):
    """What the running service offers a surface's endpoints: decide-and-commit (the call
    every adapter makes before it acknowledges) and a conversation's folded state."""

    async def handle(self, inbound: Inbound) -> HandleResult: ...

    async def conversation(self, conversation_id: str) -> ConversationState | None: ...


class Relay:
    """A `Host` for surfaces built before the service exists (the service is built from
    their routers and senders; their endpoints call it only once requests arrive)."""

    def __init__(self) -> None:
        self._host: Host | None = None

    def bind(self, host: Host) -> None:
        self._host = host

    @property
    def _bound(self) -> Host:
        if self._host is None:
            raise RuntimeError("a surface was called before the service was built")
        return self._host

    async def handle(self, inbound: Inbound) -> HandleResult:
        return await self._bound.handle(inbound)

    async def conversation(self, conversation_id: str) -> ConversationState | None:
        return await self._bound.conversation(conversation_id)


@dataclass(frozen=True)
class Wiring:
    """What every surface is built from, shared by all of them.

    `platforms` names the team platforms configured in this process (their registrations'
    `platform` titles, e.g. ("Slack", "Teams")): the playground steps aside for them.
    `action_key` binds card buttons to their card (one key for every surface that renders
    or checks buttons); `outbound` says where outbound requests to URLs someone else chose
    may go."""

    settings: Settings
    policy: Policy
    store: Store
    clock: Callable[[], int]
    action_key: ActionKey
    outbound: OutboundPolicy
    host: Host
    platforms: tuple[str, ...] = ()

    def escalation(self, name: str) -> str | None:
        """The policy's `[handoff.escalation] <name>` destination, if any."""
        desk = self.policy.handoff
        return desk.escalation.get(name) if desk is not None else None

    def on_call(self, name: str) -> str | None:
        """The policy's `[handoff.on_call] <name>` group, if any."""
        desk = self.policy.handoff
        return desk.on_call.get(name) if desk is not None else None


Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Surface:
    """One surface, built and configured: everything the running bot asks of it.

    - `router` places replies on it; `sender` delivers the outbox's items of the channels its
      scheme owns, at most one per `pacing_ms` per channel;
    - `mount` adds its HTTP routes (and their shutdown hooks) to the one aiohttp app;
    - `start` runs at service start, after the runtime and before the outbox worker (restore
      what must be shown before pending replies go out, connect a socket); `run` is a
      background task until the stop event is set; `stop` runs first at a stop (stop taking
      input); `close` after the outbox worker has finished its sends;
    - `status` is its line in `/readyz` (`{name: status}`), when it has one;
    - `describe(host, port)` is its entry in `salesbot serve`'s "platforms:" list, and
      `notice(host, port)` an extra line printed after it;
    - `parts` are the adapter objects behind it, for tests and tools that must reach one
      (`Service.part(PlaygroundHub)`); the wiring never looks inside.
    """

    name: str
    scheme: IdScheme
    router: Router | None = None
    sender: Sender | None = None
    pacing_ms: int = 0
    mount: Callable[[web.Application], None] | None = None
    start: Hook | None = None
    run: Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None = None
    stop: Hook | None = None
    close: Hook | None = None
    status: Callable[[], str] | None = None
    describe: Callable[[str, int], str] | None = None
    notice: Callable[[str, int], str] | None = None
    parts: tuple[object, ...] = field(default=())


@dataclass(frozen=True)
class Registration(Generic[S]):
    """One outside system, registered once (see the module docstring).

    `section` reads its settings section (a typed value of its own) from `Settings`, or
    None when it is not configured; a value with the wrong shape raises
    `bot.settings.SettingsError` naming the variable. `check`, once every section is read
    and before anything is built, refuses a configuration that is unsafe beside the others
    (`SettingsError`) or turns the surface off (None), and does nothing else: a refusal is
    one line, with no client created first. `build` then makes the running `Surface`.
    `platform` is its title when it is a team platform (where reps work)."""

    name: str
    scheme: IdScheme
    section: Callable[[Settings], S | None]
    build: Callable[[S, Wiring], Surface]
    platform: str | None = None
    check: Callable[[S, Wiring], S | None] | None = None


def build_surfaces(
    registrations: Sequence[Registration[Any]],
    *,
    settings: Settings,
    policy: Policy,
    store: Store,
    clock: Callable[[], int],
    action_key: ActionKey,
    outbound: OutboundPolicy,
    host: Host,
) -> list[Surface]:
    """Read every registration's section, check the configured ones, then build them, in
    registration order (the order replies are routed in)."""
    _check_distinct(registrations)
    sections = [(registration, registration.section(settings)) for registration in registrations]
    wiring = Wiring(
        settings=settings,
        policy=policy,
        store=store,
        clock=clock,
        action_key=action_key,
        outbound=outbound,
        host=host,
        platforms=tuple(
            registration.platform
            for registration, section in sections
            if registration.platform is not None and section is not None
        ),
    )
    checked = [
        (registration, _checked(registration, section, wiring))
        for registration, section in sections
        if section is not None
    ]
    return [
        registration.build(section, wiring)
        for registration, section in checked
        if section is not None
    ]


def _checked(registration: Registration[S], section: S, wiring: Wiring) -> S | None:
    return section if registration.check is None else registration.check(section, wiring)


def _check_distinct(registrations: Sequence[Registration[Any]]) -> None:
    """Two surfaces may not share a name or claim each other's channels: the outbox would
    hand one's items to the other's sender."""
    names = [registration.name for registration in registrations]
    if len(set(names)) != len(names):
        raise ValueError(f"surfaces registered twice: {sorted(names)}")
    prefixes = [registration.scheme.channel_prefix for registration in registrations]
    for index, prefix in enumerate(prefixes):
        for other_index, other in enumerate(prefixes):
            if index != other_index and other.startswith(prefix):
                raise ValueError(f"channel prefix {prefix!r} also claims {other!r}'s channels")


class Dispatch:
    """The outbox's view of the surfaces: which sender delivers a channel, its pacing, the
    channels this process may claim and the platform labels of its figures."""

    def __init__(self, surfaces: Sequence[Surface]) -> None:
        self._sending = tuple(surface for surface in surfaces if surface.sender is not None)

    def _owner(self, channel: str) -> Surface | None:
        return next((s for s in self._sending if s.scheme.owns_channel(channel)), None)

    def sender_for(self, channel: str) -> Sender | None:
        owner = self._owner(channel)
        return owner.sender if owner is not None else None

    def pacing_ms(self, channel: str) -> int:
        owner = self._owner(channel)
        return owner.pacing_ms if owner is not None else 0

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Never claim what another process has the sender for."""
        return tuple(surface.scheme.channel_prefix for surface in self._sending)

    @property
    def platforms(self) -> list[str]:
        return sorted({surface.scheme.platform for surface in self._sending})


def part_of(surfaces: Sequence[Surface], kind: type[T]) -> T | None:
    """The first adapter object of type `kind` behind any surface."""
    for surface in surfaces:
        for part in surface.parts:
            if isinstance(part, kind):
                return part
    return None
