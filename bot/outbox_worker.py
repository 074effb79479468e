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
"""

from __future__ import annotations

import asyncio
import logging
import random
import traceback
from collections.abc import Awaitable, Callable
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
from storage.ports import Outbox, OutboxItem

log = logging.getLogger(__name__)

UNCERTAIN = "timeout:"
"""Prefix of a stored error whose send may or may not have been posted: look before resending."""


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
    ) -> None:
        if max_attempts < 1 or batch < 1 or lease_ms < 1:
            raise ValueError("max_attempts, batch and lease_ms must be at least 1.")
        if base_backoff_ms < 0 or max_backoff_ms < 0 or send_timeout_s < 0:
            raise ValueError("Backoff times and the send timeout cannot be negative.")
        if lease_ms <= send_timeout_s * 1000:
            raise ValueError("lease_ms must be longer than the send timeout.")
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
        self._send_timeout_s = send_timeout_s
        # A round ends when a channel's next paced send would fall past this budget; the rest
        # of that channel is released for the next round, so a long paced backlog in one
        # channel never holds up the others' new messages for more than about one round.
        self._round_ms = max(0, round_ms)
        self._round_ends_ms = 0
        # channel -> earliest epoch ms of its next send. In memory only: after a restart the
        # first send per channel may come early once, and a 429 then paces it again.
        self._next_send_ms: dict[str, int] = {}

    async def run(self, stop: asyncio.Event, idle_poll_s: float = 0.25) -> None:
        """Deliver until `stop` is set, polling every `idle_poll_s` when there is nothing to
        do. A failing round (e.g. the store is briefly unavailable) is logged and retried:
        nothing stops the loop but `stop` or cancellation."""
        while not stop.is_set():
            try:
                settled = await self.drain_once()
            except Exception as exc:
                # The type only: messages of storage or SDK errors may quote the payload.
                log.error("outbox round failed (%s); polling again", _origin(exc))
                settled = 0
            if settled == 0 and not stop.is_set():
                await self._sleep(idle_poll_s)

    async def drain_once(self) -> int:
        """Claim the due items once and deliver them, one task per channel. Returns how many
        items were settled (sent, failed with a next attempt, or dead-lettered); items left
        leased behind a failed one are not counted."""
        now = self._clock()
        self._round_ends_ms = now + self._round_ms
        self._next_send_ms = {c: t for c, t in self._next_send_ms.items() if t > now}
        items = await self._outbox.claim_due(now, self._batch, self._lease_ms)
        by_channel: dict[str, list[OutboxItem]] = {}
        for item in items:
            by_channel.setdefault(item.channel, []).append(item)
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._deliver_channel(channel, channel_items))
                for channel, channel_items in by_channel.items()
            ]
        return sum(task.result() for task in tasks)

    async def _deliver_channel(self, channel: str, items: list[OutboxItem]) -> int:
        """Deliver one channel's items in order; stop at the first that is not settled for
        good. Never raises (but for cancellation): one channel's failure is not another's."""
        settled = 0
        current = items[0]
        handled: set[str] = set()
        try:
            sender = self._sender_for(channel)
            for index, current in enumerate(items):
                bind_ids(conversation_id=current.conversation_id, outbox_key=current.key)
                if index > 0 and self._next_send_ms.get(channel, 0) > self._round_ends_ms:
                    break  # the rest waits for the next round (released below)
                if sender is None:
                    done = await self._dead(current, f"no sender for channel {channel}")
                    settled += done
                    handled.add(current.key)
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
        return settled

    async def _release(self, keys: list[str]) -> None:
        if keys:
            await self._outbox.release(keys, self._clock())

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
                return await self._outbox.mark_sent(item.key, self._clock(), remote_id), True

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
                return await self._outbox.mark_sent(item.key, self._clock(), remote_id), True
            case Rejected(reason=reason):
                return await self._dead(item, reason), True
            case RetryLater(reason=reason, retry_after_ms=retry_after_ms, attempted=attempted):
                if retry_after_ms is not None:
                    until = self._clock() + max(0, retry_after_ms)
                    channel = item.channel
                    self._next_send_ms[channel] = max(self._next_send_ms.get(channel, 0), until)
                if not attempted:
                    return await self._hold(item, reason, retry_after_ms), False
                return await self._retry(item, f"retry: {reason}", retry_after_ms), False
            case TimedOut(reason=reason):
                return await self._retry(item, f"{UNCERTAIN} {reason}", None), False

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
        """True when our lease may run out before a request could finish (a long paced
        round): the store may then hand the item to another worker, and sending it here too
        would race that worker into a duplicate. The rest of the channel is left to the
        store, which hands it out again once the leases expire."""
        if item.lease_until_ms is None:
            return False
        if self._clock() + self._send_timeout_s * 1000 < item.lease_until_ms:
            return False
        log.warning("outbox item %s on %s: lease too short to send; left", item.key, item.channel)
        return True

    async def _send(self, sender: Sender, item: OutboxItem) -> SendOutcome | None:
        """Wait for the channel's pace, then send once, bounded by the send timeout. None
        when the lease ran out while waiting: nothing was sent."""
        channel = item.channel
        wait_ms = self._next_send_ms.get(channel, 0) - self._clock()
        if wait_ms > 0:
            await self._sleep(wait_ms / 1000)
            if self._lease_lost(item):
                return None
        started = self._clock()
        # Counted from the start of every attempt, whatever its outcome: a timed-out request
        # may have reached the platform and counts against its rate limit.
        pace_until = started + max(0, self._pacing_ms(channel))
        self._next_send_ms[channel] = max(self._next_send_ms.get(channel, 0), pace_until)
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
        return await self._outbox.fail(item.key, self._clock() + delay_ms, error)

    async def _hold(self, item: OutboxItem, reason: str, retry_after_ms: int | None) -> bool:
        """The sender did not try (its destination is paused): give the item back for later
        without counting an attempt, so however long the pause, nothing is dead-lettered.
        Not settled: the worker idles instead of spinning on held items."""
        delay_ms = max(0, retry_after_ms if retry_after_ms is not None else self._base_backoff_ms)
        log.debug("outbox item %s on %s held (%s)", item.key, item.channel, reason)
        await self._outbox.release([item.key], self._clock() + delay_ms)
        return False

    def _backoff_ms(self, attempts: int) -> int:
        """Full jitter: uniform in [0, min(max, base · 2^attempts)]. Spreading retries over
        the whole window keeps many failed items from retrying in lockstep."""
        cap = min(self._max_backoff_ms, self._base_backoff_ms * 2 ** min(attempts, 64))
        return int(self._rng.uniform(0, cap))

    async def _dead(self, item: OutboxItem, reason: str) -> bool:
        """Dead-letter, then raise the alert (only if this call dead-lettered it)."""
        dead = await self._outbox.dead_letter(item.key, reason)
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


def _delivery(item: OutboxItem) -> Delivery:
    return Delivery(
        key=item.key,
        conversation_id=item.conversation_id,
        channel=item.channel,
        payload=item.payload,
        attempts=item.attempts,
    )
