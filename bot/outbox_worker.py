"""The outbox worker: delivers what the runtime committed — paced, retried, never twice.

The runtime only commits replies to the outbox (so it can acknowledge the platform within
its deadline); this worker sends them afterwards through an adapter's `Sender`.

Why the outbox owns retries and pacing. The SDK clients are configured not to retry, so
retries do not stack. The retry schedule is *persisted*: a failure is written back with
`Outbox.fail(key, next_attempt_ms, …)`, so a restart resumes with the same backoff and the
same per-channel order. An in-process retry library (tenacity, backoff) keeps its schedule
in a stack frame: a crash forgets it, and while it sleeps it holds the item's lease and the
channel. Hence the exponential backoff with full jitter is computed here, one attempt per
claim.

Fair delivery (RELIABILITY.md, rule 7). Pacing is per channel (Slack allows about one
message per second in one channel), so `run` keeps one delivery task per channel and never
waits for one channel before serving another: it claims again whenever a channel's task
ends, a new item is committed (`wake`), a channel's pace comes due, or every poll interval,
and each claim skips the channels it is already serving or whose pace is not due yet. The
store hands out claims round-robin (every channel's oldest item before any channel's
second), so a backlog of 150 leads in one channel costs an unrelated DM nothing.

Order per channel. Items are grouped by channel; channels are delivered concurrently, the
items of one channel strictly in order. When an item fails transiently, the later items of
its channel are *not* sent in that round: they are released (`Outbox.release`, which
counts no attempt), and the store will not hand them out again before the failed item is
settled (see the `Outbox` docstring: an item is not claimable while an older unsent item
of its channel is not claimable).

Look before you resend (RELIABILITY.md, rule 5). Slack's API has no idempotency key, so a
send whose outcome is unknown (a timeout, or an exception that may have been raised after
the request left) is stored with an error starting with `UNCERTAIN` ("timeout:"), and the
store marks an item whose lease expired (its sender died mid-send) the same way. Before
sending such an item again, the worker asks `Sender.find_sent`, and marks it sent if the
message is already there.

Restarts (RELIABILITY.md, rule 8). Every lease carries this worker's owner id, one per
process boot, kept alive by a heartbeat in the store (every `heartbeat_ms`, valid for
`owner_ttl_ms`). A graceful stop finishes the sends under way, releases everything else
and forgets the owner, so the next boot claims at once; a killed process's leases are
claimable as soon as its heartbeat runs out, or at once when its next boot names the same
`identity` (a slot that only one live process can hold). A worker never starts a send it
could not finish while its lease and its heartbeat both hold, so a lease taken over from
an owner presumed gone is never sent by two workers at once (on one machine's clock).

Only its own channels. `prefixes` are the channels this process has a sender for; the
worker claims nothing else, so a terminal chat on the server's database and the server
never take (and dead-letter) each other's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import traceback
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path

from adapters.ports import (
    Delivery,
    Rejected,
    RetryLater,
    Sender,
    SendOutcome,
    Sent,
    TimedOut,
)
from bot.logs import bind_ids
from bot.outbox_paces import Paces
from storage.ports import Outbox, OutboxItem

log = logging.getLogger(__name__)

UNCERTAIN = "timeout:"
"""Prefix of a stored error whose send may or may not have been posted: look before resending."""

HEARTBEAT_EVERY_MS = 4_000
"""How often a worker renews its owner's heartbeat in the store."""
OWNER_TTL_MS = 20_000
"""How long a heartbeat keeps an owner alive: a killed process's leases are taken over at
most this long after its last heartbeat (instead of when the 60 s lease runs out)."""
PER_CHANNEL = 10
"""Items of one channel claimed at once: about ten seconds of a Slack channel's pace."""


def new_owner_id() -> str:
    """One per process boot: readable for an operator (host and pid), unique by its suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class OutboxWorker:
    """Claims due outbox items and settles each one: sent, failed (to retry) or dead.

    `pacing_ms(channel)` is the least gap between two sends to one channel (Slack allows
    about one message per second per channel; 0 for channels without a limit). A 429's
    `Retry-After` postpones both the item and every later send to its channel.
    """

    def __init__(
        self,
        outbox: Outbox,
        sender_for: Callable[[str], Sender | None],
        *,
        clock: Callable[[], int],
        sleep: Callable[[float], Awaitable[None]],
        rng: random.Random,
        pacing_ms: Callable[[str], int],
        max_attempts: int = 8,
        base_backoff_ms: int = 500,
        max_backoff_ms: int = 300_000,
        lease_ms: int = 60_000,
        batch: int = 50,
        on_dead_letter: Callable[[OutboxItem, str], Awaitable[None]] | None = None,
        send_timeout_s: float = 10.0,
        round_ms: int = 3_000,
        on_send: Callable[[str, SendOutcome], None] | None = None,
        on_sent: Callable[[OutboxItem, str | None], Awaitable[None]] | None = None,
        owner: str | None = None,
        identity: str | None = None,
        prefixes: Sequence[str] | None = None,
        per_channel: int = PER_CHANNEL,
        heartbeat_ms: int = HEARTBEAT_EVERY_MS,
        owner_ttl_ms: int = OWNER_TTL_MS,
    ) -> None:
        """`owner` defaults to a new id (one per boot); `identity` names what survives a
        restart (see `bot.boot_slot`): the first heartbeat takes over the leases of every
        earlier owner of that identity. `prefixes`: the channels to claim (None: all)."""
        if max_attempts < 1 or batch < 1 or lease_ms < 1 or per_channel < 1:
            raise ValueError("max_attempts, batch, per_channel and lease_ms must be at least 1.")
        if base_backoff_ms < 0 or max_backoff_ms < 0 or send_timeout_s < 0:
            raise ValueError("Backoff times and the send timeout cannot be negative.")
        if lease_ms <= send_timeout_s * 1000:
            raise ValueError("lease_ms must be longer than the send timeout.")
        if heartbeat_ms < 1 or owner_ttl_ms <= heartbeat_ms + send_timeout_s * 1000:
            raise ValueError("owner_ttl_ms must exceed heartbeat_ms plus the send timeout.")
        self._outbox = outbox
        self._sender_for = sender_for
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._pacing_ms = pacing_ms
        self._max_attempts = max_attempts
        self._base_backoff_ms = base_backoff_ms
        self._max_backoff_ms = max_backoff_ms
        self._lease_ms = lease_ms
        self._batch = batch
        self._on_dead_letter = on_dead_letter
        self._on_send = on_send  # hears every attempt's outcome, by channel (metrics)
        # Hears each item this worker marked sent, with the remote id (the CRM records the
        # write's outcome in its conversation: `bot.crm_outbox`).
        self._on_sent = on_sent
        self._send_timeout_s = send_timeout_s
        # `drain_once` only (it waits for every channel): a round ends when a channel's next
        # paced send would fall past this budget, and the rest of that channel is released
        # for the next round, so a paced backlog cannot hold a round up for long. `run`
        # needs no budget: it never waits for one channel to serve another.
        self._round_ms = max(0, round_ms)
        # channel -> earliest epoch ms of its next send. In memory only: after a restart the
        # first send per channel may come early once, and a 429 then paces it again.
        self._paces = Paces()
        self.owner = owner or new_owner_id()
        self.identity = identity
        self._prefixes = None if prefixes is None else tuple(prefixes)
        self._per_channel = per_channel
        self._heartbeat_ms = heartbeat_ms
        self._owner_ttl_ms = owner_ttl_ms
        self._beaten_at_ms: int | None = None  # when the last heartbeat was written
        self._alive_until_ms: int | None = None  # what it promised the other owners
        self._held: set[str] = set()  # claimed by us and not yet settled or released
        self._sending: set[str] = set()  # of those, the ones whose send may have begun
        self._stopping = asyncio.Event()  # set while `run` winds down: start no new send
        self._wake = asyncio.Event()
        # `run`'s reasons to claim (see `_worth_claiming`): channels known to hold items
        # that no claim has taken yet, whether items may wait anywhere, and when it last
        # claimed (its poll counts from then).
        self._waiting: set[str] = set()
        self._anywhere = True
        self._claimed_at_ms: int | None = None

    def wake(self, channels: Iterable[str] | None = None) -> None:
        """Something was committed to the outbox: claim now instead of at the next poll.
        `channels` are where the new items wait (None: anywhere), so that a channel whose
        task ends or whose pace comes due is claimed again only when something waits for
        it."""
        if channels is None:
            self._anywhere = True
        else:
            before = len(self._waiting)
            self._waiting.update(channels)
            if len(self._waiting) == before:
                return
        self._wake.set()

    async def run(self, stop: asyncio.Event, idle_poll_s: float = 0.25) -> None:
        """Deliver until `stop` is set: one task per channel with claimed items, claiming
        again whenever a channel's task ends, `wake` is called, a paced channel comes due
        or `idle_poll_s` passes. A failing claim (e.g. the store is briefly unavailable) is
        logged and retried: nothing stops the loop but `stop` or cancellation.

        On the way out (stop or cancellation) the sends under way finish, nothing new is
        sent, and every lease is given back (`release`): the next process resumes at once."""
        self._stopping.clear()
        self._anywhere = True
        active: dict[str, asyncio.Task[int]] = {}
        cancelled = False
        try:
            poll_ms = round(idle_poll_s * 1000)
            while not stop.is_set():
                full = False
                try:
                    now = await self._prepare_round()
                    if self._worth_claiming(now, active, poll_ms):
                        # Paced channels are skipped: `_prepare_round` just forgot every
                        # pace up to `now`, so the ones left are later.
                        excluded = self._paces.channels() | active.keys()
                        self._anywhere = False
                        self._claimed_at_ms = now
                        # What this claim can take is taken; what it skips still waits.
                        self._waiting &= excluded
                        items = await self._claim(now, exclude=excluded)
                        full = len(items) >= self._batch
                        for channel, channel_items in _by_channel(items).items():
                            if len(channel_items) >= self._per_channel:
                                self._waiting.add(channel)  # it may hold more
                            active[channel] = asyncio.create_task(
                                self._deliver_channel(channel, channel_items, None),
                                name=f"outbox:{channel}",
                            )
                except Exception as exc:
                    # The type only: messages of storage or SDK errors may quote the payload.
                    log.error("outbox round failed (%s); polling again", _origin(exc))
                    self._anywhere = True  # what that claim skipped is claimed next time
                if not full:
                    await self._idle(stop, active, idle_poll_s)
                for channel in [c for c, task in active.items() if task.done()]:
                    del active[channel]
        except asyncio.CancelledError:
            cancelled = True  # a deadline passed: cut the sends under way short
            raise
        finally:
            await self._wind_down(active, wait=not cancelled)

    async def drain_once(self) -> int:
        """Claim the due items once and deliver them, one task per channel, and wait for
        all of them (`salesbot chat` and tests; the server uses `run`). Returns how many
        items were settled (sent, failed with a next attempt, or dead-lettered); items left
        leased behind a failed one are not counted."""
        now = await self._prepare_round()
        items = await self._claim(now, exclude=())
        round_ends_ms = now + self._round_ms
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._deliver_channel(channel, channel_items, round_ends_ms))
                for channel, channel_items in _by_channel(items).items()
            ]
        return sum(task.result() for task in tasks)

    async def release(self) -> int:
        """Give back everything this worker holds and forget its owner: items it had not
        started to send are pending again as they were; an item whose send was cut short
        is pending as uncertain (looked up before it is resent). Returns how many."""
        now = self._clock()
        clean = sorted(self._held - self._sending)
        released = await self._outbox.release(clean, now, owner=self.owner) if clean else 0
        released += await self._outbox.release_owner(self.owner, now)
        self._held.clear()
        self._sending.clear()
        self._beaten_at_ms = self._alive_until_ms = None
        return released

    async def _prepare_round(self) -> int:
        """Renew the heartbeat when due (before any claim: a lease of an owner without a
        live heartbeat is anybody's) and forget paces that have passed; returns now."""
        now = self._clock()
        if self._beaten_at_ms is None or now - self._beaten_at_ms >= self._heartbeat_ms:
            first = self._beaten_at_ms is None
            alive_until = now + self._owner_ttl_ms
            previous = await self._outbox.heartbeat(
                self.owner, now, alive_until, identity=self.identity if first else None
            )
            self._beaten_at_ms, self._alive_until_ms = now, alive_until
            if previous:
                log.info(
                    "outbox owner %s took over the leases of %d previous boot(s) of %s",
                    self.owner,
                    len(previous),
                    self.identity,
                )
        self._paces.forget_passed(now)
        return now

    async def _claim(self, now: int, *, exclude: Collection[str]) -> list[OutboxItem]:
        items = await self._outbox.claim_due(
            now,
            self._batch,
            self._lease_ms,
            owner=self.owner,
            prefixes=self._prefixes,
            exclude=exclude,
            per_channel=self._per_channel,
        )
        self._held.update(item.key for item in items)
        return items

    def _worth_claiming(
        self, now: int, active: Mapping[str, asyncio.Task[int]], poll_ms: int
    ) -> bool:
        """Whether a claim may find something: items may wait anywhere (the first round,
        a `wake` without channels), the poll is due (another process's items, retries and
        leases coming due), or a channel known to hold items is claimable (not being
        delivered, its pace passed). A channel's task ending or its pace coming due with
        nothing waiting for it costs no claim — a write transaction each, two per reply
        when replies come one at a time."""
        if self._anywhere or self._claimed_at_ms is None:
            return True
        if now - self._claimed_at_ms >= poll_ms:
            return True
        return any(c not in active and self._paces.get(c) <= now for c in self._waiting)

    async def _idle(
        self, stop: asyncio.Event, active: dict[str, asyncio.Task[int]], idle_poll_s: float
    ) -> None:
        """Wait for the first of: a channel task ending, `wake`, `stop`, the pace of a
        channel with items waiting coming due, or the next poll (`idle_poll_s` after the
        last claim)."""
        now = self._clock()
        due = self._paces.among(self._waiting, skip=active)
        wait_s = idle_poll_s
        if self._claimed_at_ms is not None:
            wait_s = max(0.0, min(wait_s, (self._claimed_at_ms - now) / 1000 + idle_poll_s))
        if due:
            wait_s = max(0.0, min(wait_s, (min(due) - now) / 1000))
        waiters = {
            asyncio.ensure_future(self._sleep(wait_s)),
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._wake.wait()),
        }
        try:
            await asyncio.wait({*waiters, *active.values()}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            self._wake.clear()

    async def _wind_down(self, active: dict[str, asyncio.Task[int]], *, wait: bool) -> None:
        """Let the sends under way finish (`wait`; pacing waits end at once) or cut them
        short, then release everything: what was being sent is released as uncertain."""
        self._stopping.set()
        try:
            if active and wait:
                await asyncio.wait(active.values())
        finally:
            for task in active.values():
                task.cancel()
            if active:
                await asyncio.gather(*active.values(), return_exceptions=True)
            try:
                released = await self.release()
            except Exception as exc:
                log.error(
                    "outbox owner %s could not release its leases (%s)", self.owner, _origin(exc)
                )
            else:
                log.info("outbox owner %s stopped; %d item(s) released", self.owner, released)

    async def _deliver_channel(
        self, channel: str, items: list[OutboxItem], round_ends_ms: int | None
    ) -> int:
        """Deliver one channel's items in order; stop at the first that is not settled for
        good, when the worker stops, or (with `round_ends_ms`) when the next paced send
        would fall past the round. Never raises (but for cancellation): one channel's
        failure is not another's."""
        settled = 0
        current = items[0]
        handled: set[str] = set()
        try:
            sender = self._sender_for(channel)
            for index, current in enumerate(items):
                bind_ids(conversation_id=current.conversation_id, outbox_key=current.key)
                if self._stopping.is_set():
                    break
                if (
                    index > 0
                    and round_ends_ms is not None
                    and self._paces.get(channel) > round_ends_ms
                ):
                    break  # the rest waits for the next round (released below)
                if sender is None:
                    done = await self._dead(current, f"no sender for channel {channel}")
                    settled += done
                    handled.add(current.key)
                    self._settled(current)
                    continue
                done, go_on = await self._deliver(sender, current)
                settled += done
                if done:
                    handled.add(current.key)
                if not go_on:
                    break
            await self._release([i.key for i in items if i.key not in handled])
        except Exception as exc:
            log.error(
                "outbox channel %s stopped at item %s (attempt %d): %s",
                channel,
                current.key,
                current.attempts + 1,
                _origin(exc),
            )
            # Best effort: what was not begun goes back now rather than when its lease
            # runs out; an item whose send began stays leased (it may have been posted).
            with contextlib.suppress(Exception):
                await self._release([i.key for i in items if i.key not in handled])
        return settled

    def _settled(self, item: OutboxItem) -> None:
        """The store has the item's outcome (or another owner has it): no longer ours."""
        self._held.discard(item.key)
        self._sending.discard(item.key)

    async def _release(self, keys: list[str]) -> None:
        if keys:
            # Only what we still hold: an item whose send began and then failed to settle
            # stays ours, to be released as uncertain when the worker stops.
            clean = [key for key in keys if key not in self._sending]
            if clean:
                await self._outbox.release(clean, self._clock(), owner=self.owner)
            self._held.difference_update(clean)

    async def _deliver(self, sender: Sender, item: OutboxItem) -> tuple[bool, bool]:
        """Settle one item. Returns (settled, go on with the channel's next item)."""
        if self._lease_lost(item):
            return False, False
        if item.last_error is not None and item.last_error.startswith(UNCERTAIN):
            found, remote_id = await self._look_up(sender, item)
            if not found:
                return await self._retry(item, f"{UNCERTAIN} lookup failed", None), False
            if remote_id is not None:
                log.info(
                    "outbox item %s on %s was posted after all; not resending",
                    item.key,
                    item.channel,
                )
                return await self._mark_sent(item, remote_id), True

        outcome = await self._send(sender, item)
        if outcome is not None and self._on_send is not None:
            self._on_send(item.channel, outcome)
        match outcome:
            case None:
                return False, False
            case Sent(remote_id=remote_id):
                log.debug(
                    "outbox item %s on %s sent (attempt %d)",
                    item.key,
                    item.channel,
                    item.attempts + 1,
                )
                return await self._mark_sent(item, remote_id), True
            case Rejected(reason=reason):
                return await self._dead(item, reason), True
            case RetryLater(reason=reason, retry_after_ms=retry_after_ms, attempted=attempted):
                if retry_after_ms is not None:
                    until = self._clock() + max(0, retry_after_ms)
                    channel = item.channel
                    self._paces.hold(channel, until)
                if not attempted:
                    return await self._hold(item, reason, retry_after_ms), False
                return await self._retry(item, f"retry: {reason}", retry_after_ms), False
            case TimedOut(reason=reason):
                return await self._retry(item, f"{UNCERTAIN} {reason}", None), False

    async def _mark_sent(self, item: OutboxItem, remote_id: str | None) -> bool:
        marked = await self._outbox.mark_sent(item.key, self._clock(), remote_id)
        self._settled(item)
        if marked and self._on_sent is not None:
            try:
                await self._on_sent(item, remote_id)
            except Exception as exc:
                log.error(
                    "outbox item %s on %s: recording the send failed (%s)",
                    item.key,
                    item.channel,
                    _origin(exc),
                )
        return marked

    async def _look_up(self, sender: Sender, item: OutboxItem) -> tuple[bool, str | None]:
        """(whether the lookup answered, the remote id if the item was posted)."""
        try:
            async with asyncio.timeout(self._send_timeout_s):
                return True, await sender.find_sent(_delivery(item))
        except Exception as exc:
            log.warning(
                "outbox item %s on %s: lookup before resending failed (%s)",
                item.key,
                item.channel,
                type(exc).__name__,
            )
            return False, None

    def _lease_lost(self, item: OutboxItem) -> bool:
        """True when our lease, or our heartbeat, may run out before a request could
        finish (a long paced round, a stalled process): the store may then hand the item to
        another worker, and sending it here too would race that worker into a duplicate.
        The item and the rest of its channel are released for the next claim."""
        deadlines = [t for t in (item.lease_until_ms, self._alive_until_ms) if t is not None]
        if not deadlines or self._clock() + self._send_timeout_s * 1000 < min(deadlines):
            return False
        log.warning("outbox item %s on %s: lease too short to send; left", item.key, item.channel)
        return True

    async def _pause(self, seconds: float) -> None:
        """Sleep, but no longer than until the worker starts stopping."""
        if self._stopping.is_set():
            return
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()

    async def _send(self, sender: Sender, item: OutboxItem) -> SendOutcome | None:
        """Wait for the channel's pace, then send once, bounded by the send timeout. None
        when the lease ran out while waiting or the worker is stopping: nothing was sent."""
        channel = item.channel
        wait_ms = self._paces.get(channel) - self._clock()
        if wait_ms > 0:
            await self._pause(wait_ms / 1000)
            if self._lease_lost(item):
                return None
        if self._stopping.is_set():
            return None
        self._sending.add(item.key)  # from here on the message may reach the platform
        started = self._clock()
        # Counted from the start of every attempt, whatever its outcome: a timed-out request
        # may have reached the platform and counts against its rate limit.
        pace_until = started + max(0, self._pacing_ms(channel))
        self._paces.hold(channel, pace_until)
        try:
            async with asyncio.timeout(self._send_timeout_s):
                return await sender.send(_delivery(item))
        except TimeoutError:
            return TimedOut(reason=f"no answer within {self._send_timeout_s} s")
        except Exception as exc:
            # The request may have left before the failure: uncertain, like a timeout. Only
            # the exception's type is kept; its message may quote the payload.
            log.warning("outbox item %s on %s: send raised %s", item.key, channel, _origin(exc))
            return TimedOut(reason=f"send raised {type(exc).__name__}")

    async def _retry(self, item: OutboxItem, error: str, retry_after_ms: int | None) -> bool:
        """Schedule the next attempt (persisted), or dead-letter when attempts are used up."""
        attempt = item.attempts + 1
        if attempt >= self._max_attempts:
            return await self._dead(item, f"gave up after {attempt} attempts; last: {error}")
        if retry_after_ms is not None:
            delay_ms = max(0, retry_after_ms)
        else:
            delay_ms = self._backoff_ms(item.attempts)
        log.warning(
            "outbox item %s on %s failed (attempt %d: %s); next try in %d ms",
            item.key,
            item.channel,
            attempt,
            error,
            delay_ms,
        )
        failed = await self._outbox.fail(item.key, self._clock() + delay_ms, error)
        self._settled(item)
        return failed

    async def _hold(self, item: OutboxItem, reason: str, retry_after_ms: int | None) -> bool:
        """The sender did not try (its destination is paused): give the item back for later
        without counting an attempt, so however long the pause, nothing is dead-lettered.
        No longer ours once given back; not counted as settled, so the worker idles instead
        of spinning on held items."""
        delay_ms = max(0, retry_after_ms if retry_after_ms is not None else self._base_backoff_ms)
        log.debug("outbox item %s on %s held (%s)", item.key, item.channel, reason)
        await self._outbox.release([item.key], self._clock() + delay_ms, owner=self.owner)
        self._settled(item)
        return False

    def _backoff_ms(self, attempts: int) -> int:
        """Full jitter: uniform in [0, min(max, base · 2^attempts)]. Spreading retries over
        the whole window keeps many failed items from retrying in lockstep."""
        cap = min(self._max_backoff_ms, self._base_backoff_ms * 2 ** min(attempts, 64))
        return int(self._rng.uniform(0, cap))

    async def _dead(self, item: OutboxItem, reason: str) -> bool:
        """Dead-letter, then raise the alert (only if this call dead-lettered it)."""
        dead = await self._outbox.dead_letter(item.key, reason)
        self._settled(item)
        if not dead:
            return False
        log.error(
            "outbox item %s on %s dead-lettered (attempt %d)",
            item.key,
            item.channel,
            item.attempts + 1,
        )
        if self._on_dead_letter is not None:
            try:
                await self._on_dead_letter(item, reason)
            except Exception as exc:
                log.error(
                    "outbox item %s on %s: dead-letter alert failed (%s)",
                    item.key,
                    item.channel,
                    type(exc).__name__,
                )
        return True


def _origin(exc: BaseException) -> str:
    """An exception's type and where it was raised, without its message: messages of SDK and
    storage errors may quote the payload, which can hold PII (e-mail addresses, credit data)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {Path(last.filename).name}:{last.lineno} in {last.name}"


def _by_channel(items: list[OutboxItem]) -> dict[str, list[OutboxItem]]:
    by_channel: dict[str, list[OutboxItem]] = {}
    for item in items:
        by_channel.setdefault(item.channel, []).append(item)
    return by_channel


def _delivery(item: OutboxItem) -> Delivery:
    return Delivery(
        key=item.key,
        conversation_id=item.conversation_id,
        channel=item.channel,
        payload=item.payload,
        attempts=item.attempts,
    )
