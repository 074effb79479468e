"""The outbox worker against a scripted fake platform, on a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pytest

from adapters.ports import (
    Delivery,
    Rejected,
    RetryLater,
    Sender,
    SendOutcome,
    Sent,
    TimedOut,
)
from adapters.terminal.sender import TerminalRouter
from bot.chat import LOCAL_PROSPECT, ChatSession
from bot.outbox_worker import OWNER_TTL_MS, OutboxWorker
from bot.runtime import Runtime
from bot.service import build_service
from bot.settings import Settings
from domain.inbound import MessagePosted
from domain.policy import Policy
from storage.memory import MemoryStore
from storage.ports import LEASE_EXPIRED, OutboxItem
from storage.sqlite import SqliteStore

START_MS = 1_790_000_000_000
PACING_MS = 1000
RETRY_AFTER_MS = 5000
PII = "pat@example.com"

Action = Literal["ok", "429", "5xx", "timeout_posted", "timeout_lost", "raise", "hang", "reject"]


class FakeTime:
    """The worker's clock and sleep: sleeping advances the clock instead of waiting."""

    def __init__(self) -> None:
        self.ms = START_MS
        self.sleeps: list[float] = []

    def now(self) -> int:
        return self.ms

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.ms += round(seconds * 1000)
        await asyncio.sleep(0)  # let other channels run, as a real sleep would


class ScriptedPlatform:
    """A platform whose answer to each send of a key is scripted; "ok" once the script ends.

    `posts` is what really landed in each channel, in order — a "timeout_posted" lands
    although the caller sees a timeout — so duplicates and order are visible there."""

    def __init__(self, time: FakeTime, script: dict[str, list[Action]] | None = None) -> None:
        self.time = time
        self.script = {key: list(steps) for key, steps in (script or {}).items()}
        self.calls: list[tuple[str, int]] = []  # (key, fake ms) of every send attempt
        self.posts: dict[str, list[str]] = {}
        self.remote_ids: dict[str, str] = {}
        self.lookups: list[str] = []
        self.lookup_failures = 0
        self.unhang = asyncio.Event()

    def _post(self, item: Delivery) -> str:
        self.posts.setdefault(item.channel, []).append(item.key)
        remote_id = f"ts-{len(self.calls)}"
        self.remote_ids[item.key] = remote_id
        return remote_id

    async def send(self, item: Delivery) -> SendOutcome:
        self.calls.append((item.key, self.time.ms))
        steps = self.script.get(item.key, [])
        action = steps.pop(0) if steps else "ok"
        if action == "ok":
            return Sent(remote_id=self._post(item))
        if action == "429":
            return RetryLater(reason="ratelimited", retry_after_ms=RETRY_AFTER_MS)
        if action == "5xx":
            return RetryLater(reason="HTTP 503")
        if action == "timeout_posted":
            self._post(item)
            return TimedOut()
        if action == "timeout_lost":
            return TimedOut()
        if action == "raise":
            raise ConnectionResetError(f"connection reset while posting {item.payload}")
        if action == "hang":
            await self.unhang.wait()  # no answer (until the test says); the send timeout ends it
        return Rejected(reason="channel_not_found")

    async def find_sent(self, item: Delivery) -> str | None:
        self.lookups.append(item.key)
        if self.lookup_failures > 0:
            self.lookup_failures -= 1
            raise TimeoutError
        return self.remote_ids.get(item.key)

    def sent_keys(self) -> list[str]:
        return [key for key, _ in self.calls]


class Alerts:
    def __init__(self) -> None:
        self.raised: list[tuple[str, str]] = []

    async def __call__(self, item: OutboxItem, reason: str) -> None:
        self.raised.append((item.key, reason))


class MaxJitter(random.Random):
    """Always the top of the jitter window, so the backoff bound itself is visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


def paced(channel: str) -> int:
    return PACING_MS if channel.startswith("slack:") else 0


def make_worker(
    store: MemoryStore,
    platform: ScriptedPlatform,
    alerts: Alerts | None = None,
    rng: random.Random | None = None,
    **options: Any,
) -> OutboxWorker:
    def sender_for(channel: str) -> Sender | None:
        return None if channel.startswith("nowhere:") else platform

    return OutboxWorker(
        store,
        sender_for,
        clock=platform.time.now,
        sleep=platform.time.sleep,
        rng=rng or random.Random(0),
        pacing_ms=paced,
        on_dead_letter=alerts,
        **options,
    )


async def enqueue(store: MemoryStore, *channels_and_keys: tuple[str, str]) -> None:
    await store.enqueue(
        [
            OutboxItem(
                key=key,
                conversation_id="c1",
                channel=channel,
                payload={"text": f"Hi, we emailed {PII} about {key}"},
                created_at_ms=START_MS,
                available_at_ms=START_MS,
            )
            for channel, key in channels_and_keys
        ]
    )


async def drain_until_empty(
    worker: OutboxWorker, store: MemoryStore, time: FakeTime, cap: int = 1000
) -> None:
    for _ in range(cap):
        await worker.drain_once()
        if await store.pending_count() == 0:
            return
        time.ms += 1000
    pytest.fail(f"the outbox still holds {await store.pending_count()} items after {cap} rounds")


async def item(store: MemoryStore, key: str) -> OutboxItem:
    found = await store.outbox_item(key)
    assert found is not None
    return found


def times_of(platform: ScriptedPlatform, keys: Sequence[str]) -> list[int]:
    return [ms for key, ms in platform.calls if key in keys]


async def test_every_transient_failure_is_eventually_delivered_exactly_once_and_in_order_per_channel() -> (
    None
):
    time = FakeTime()
    platform = ScriptedPlatform(
        time,
        {
            "a1": ["429"],
            "a2": ["5xx", "5xx"],
            "a3": ["timeout_lost"],
            "b1": ["raise"],
            "b2": ["timeout_posted"],
            "b3": ["hang"],
            "c2": ["reject"],
        },
    )
    alerts = Alerts()
    store = MemoryStore()
    await enqueue(
        store,
        ("slack:A", "a1"),
        ("slack:B", "b1"),
        ("slack:A", "a2"),
        ("test:C", "c1"),
        ("slack:B", "b2"),
        ("test:C", "c2"),
        ("slack:A", "a3"),
        ("slack:B", "b3"),
        ("slack:A", "a4"),
        ("test:C", "c3"),
    )
    worker = make_worker(store, platform, alerts, send_timeout_s=0.0)

    await drain_until_empty(worker, store, time)

    assert platform.posts == {
        "slack:A": ["a1", "a2", "a3", "a4"],
        "slack:B": ["b1", "b2", "b3"],
        "test:C": ["c1", "c3"],
    }
    assert [i.key for i in await store.dead_letters()] == ["c2"]
    assert alerts.raised == [("c2", "channel_not_found")]


async def test_a_permanent_rejection_is_dead_lettered_with_an_alert_and_not_retried() -> None:
    time = FakeTime()
    platform = ScriptedPlatform(time, {"c1": ["reject"]})
    alerts = Alerts()
    store = MemoryStore()
    await enqueue(store, ("test:C", "c1"), ("test:C", "c2"))

    settled = await make_worker(store, platform, alerts).drain_once()

    assert settled == 2
    assert (await item(store, "c1")).status == "dead"
    assert (await item(store, "c2")).status == "sent"  # a dead item does not block its channel
    assert alerts.raised == [("c1", "channel_not_found")]
    assert platform.sent_keys() == ["c1", "c2"]


async def test_an_item_for_a_channel_without_a_sender_is_dead_lettered_with_an_alert() -> None:
    platform = ScriptedPlatform(FakeTime())
    alerts = Alerts()
    store = MemoryStore()
    await enqueue(store, ("nowhere:X", "x1"))

    await make_worker(store, platform, alerts).drain_once()

    dead = await item(store, "x1")
    assert dead.status == "dead"
    assert dead.last_error == "no sender for channel nowhere:X"
    assert alerts.raised == [("x1", "no sender for channel nowhere:X")]
    assert platform.calls == []


async def test_two_items_to_one_paced_channel_go_out_at_least_the_pacing_gap_apart_and_channels_do_not_wait_for_each_other() -> (
    None
):
    time = FakeTime()
    platform = ScriptedPlatform(time)
    store = MemoryStore()
    await enqueue(store, ("slack:A", "a1"), ("slack:A", "a2"), ("slack:B", "b1"), ("slack:B", "b2"))

    settled = await make_worker(store, platform).drain_once()

    assert settled == 4
    a1, a2 = times_of(platform, ["a1", "a2"])
    b1, b2 = times_of(platform, ["b1", "b2"])
    assert a2 - a1 >= PACING_MS
    assert b2 - b1 >= PACING_MS
    # B's first message did not queue behind A's paced second one.
    assert platform.sent_keys().index("b1") < platform.sent_keys().index("a2")


async def test_a_channel_without_pacing_never_waits() -> None:
    time = FakeTime()
    platform = ScriptedPlatform(time)
    store = MemoryStore()
    await enqueue(store, ("test:C", "c1"), ("test:C", "c2"), ("test:C", "c3"))

    assert await make_worker(store, platform).drain_once() == 3
    assert time.sleeps == []


async def test_a_429_holds_back_the_whole_channel_until_retry_after_while_other_channels_go_on() -> (
    None
):
    time = FakeTime()
    platform = ScriptedPlatform(time, {"a1": ["429"]})
    store = MemoryStore()
    await enqueue(store, ("slack:A", "a1"), ("slack:A", "a2"), ("test:B", "b1"), ("test:B", "b2"))
    worker = make_worker(store, platform)

    await worker.drain_once()
    limited_at = times_of(platform, ["a1"])[0]

    assert platform.posts == {"test:B": ["b1", "b2"]}
    assert (await item(store, "a1")).available_at_ms == limited_at + RETRY_AFTER_MS
    await drain_until_empty(worker, store, time)
    assert platform.posts["slack:A"] == ["a1", "a2"]
    resent = times_of(platform, ["a1", "a2"])[1:]
    assert all(ms >= limited_at + RETRY_AFTER_MS for ms in resent)


async def test_a_429_that_dead_letters_its_item_still_holds_back_the_next_item_of_the_channel() -> (
    None
):
    time = FakeTime()
    platform = ScriptedPlatform(time, {"a1": ["429"]})
    store = MemoryStore()
    await enqueue(store, ("slack:A", "a1"), ("slack:A", "a2"))
    worker = make_worker(store, platform, Alerts(), max_attempts=1, batch=1)

    await worker.drain_once()  # a1: 429 on its only attempt -> dead; a2 not claimed yet
    await worker.drain_once()  # a2 is free to go, but the channel is still rate-limited

    limited_at, next_send = times_of(platform, ["a1", "a2"])
    assert (await item(store, "a1")).status == "dead"
    assert next_send >= limited_at + RETRY_AFTER_MS


async def test_a_timed_out_send_that_was_posted_is_found_and_not_posted_again() -> None:
    time = FakeTime()
    platform = ScriptedPlatform(time, {"a1": ["timeout_posted"]})
    store = MemoryStore()
    await enqueue(store, ("slack:A", "a1"), ("slack:A", "a2"))
    worker = make_worker(store, platform)

    await worker.drain_once()
    assert (await item(store, "a1")).last_error == "timeout: timeout"
    await drain_until_empty(worker, store, time)

    assert platform.posts == {"slack:A": ["a1", "a2"]}
    assert platform.sent_keys().count("a1") == 1
    assert platform.lookups == ["a1"]
    assert (await item(store, "a1")).remote_id == platform.remote_ids["a1"]


async def test_a_timed_out_send_that_was_not_posted_is_sent_again_after_looking() -> None:
    time = FakeTime()
    platform = ScriptedPlatform(time, {"a1": ["timeout_lost"]})
    store = MemoryStore()
    await enqueue(store, ("slack:A", "a1"))

    await drain_until_empty(make_worker(store, platform), store, time)

    assert platform.lookups == ["a1"]
    assert platform.sent_keys() == ["a1", "a1"]
    assert platform.posts == {"slack:A": ["a1"]}


async def test_a_send_that_hangs_or_raises_is_treated_as_possibly_posted() -> None:
    time = FakeTime()
    platform = ScriptedPlatform(time, {"a1": ["hang"], "b1": ["raise"]})
    store = MemoryStore()
    await enqueue(store, ("test:A", "a1"), ("test:B", "b1"))
    worker = make_worker(store, platform, send_timeout_s=0.0)

    await worker.drain_once()

    for key in ("a1", "b1"):
        failed = await item(store, key)
        assert failed.status == "pending"
        assert failed.last_error is not None
        assert failed.last_error.startswith("timeout:")
    await drain_until_empty(worker, store, time)
    assert sorted(platform.lookups) == ["a1", "b1"]
    assert platform.posts == {"test:A": ["a1"], "test:B": ["b1"]}


async def test_a_failed_lookup_never_resends_blindly() -> None:
    time = FakeTime()
    platform = ScriptedPlatform(time, {"a1": ["timeout_posted"]})
    platform.lookup_failures = 2
    store = MemoryStore()
    await enqueue(store, ("test:A", "a1"))

    await drain_until_empty(make_worker(store, platform), store, time)

    assert platform.lookups == ["a1", "a1", "a1"]
    assert platform.sent_keys() == ["a1"]
    assert platform.posts == {"test:A": ["a1"]}


async def test_an_item_that_keeps_failing_is_dead_lettered_after_max_attempts() -> None:
    time = FakeTime()
    platform = ScriptedPlatform(time, {"a1": ["5xx"] * 10})
    alerts = Alerts()
    store = MemoryStore()
    await enqueue(store, ("test:A", "a1"), ("test:A", "a2"))

    await drain_until_empty(make_worker(store, platform, alerts, max_attempts=3), store, time)

    assert platform.sent_keys().count("a1") == 3
    assert (await item(store, "a1")).status == "dead"
    assert [key for key, _ in alerts.raised] == ["a1"]
    assert "after 3 attempts" in alerts.raised[0][1]
    assert platform.posts == {"test:A": ["a2"]}


async def scheduled_delays(worker: OutboxWorker, store: MemoryStore, time: FakeTime) -> list[int]:
    """Fail one item over and over; the delay between each failure and its next attempt."""
    delays: list[int] = []
    while (current := await item(store, "a1")).status == "pending":
        time.ms = current.available_at_ms
        await worker.drain_once()
        after = await item(store, "a1")
        if after.status == "pending":
            delays.append(after.available_at_ms - time.ms)
    return delays


async def test_the_backoff_doubles_from_the_base_up_to_its_bound() -> None:
    time = FakeTime()
    platform = ScriptedPlatform(time, {"a1": ["5xx"] * 10})
    store = MemoryStore()
    await enqueue(store, ("test:A", "a1"))
    worker = make_worker(
        store, platform, rng=MaxJitter(), max_attempts=8, base_backoff_ms=500, max_backoff_ms=4000
    )

    delays = await scheduled_delays(worker, store, time)

    assert delays == [500, 1000, 2000, 4000, 4000, 4000, 4000]


async def test_jittered_backoff_stays_inside_the_doubling_window_and_is_spread() -> None:
    time = FakeTime()
    platform = ScriptedPlatform(time, {"a1": ["5xx"] * 20})
    store = MemoryStore()
    await enqueue(store, ("test:A", "a1"))
    worker = make_worker(
        store, platform, max_attempts=16, base_backoff_ms=500, max_backoff_ms=60_000
    )

    delays = await scheduled_delays(worker, store, time)

    windows = [min(60_000, 500 * 2**attempt) for attempt in range(len(delays))]
    assert len(delays) == 15
    assert all(0 <= delay <= window for delay, window in zip(delays, windows, strict=True))
    assert any(delay < window * 0.9 for delay, window in zip(delays, windows, strict=True))


async def test_items_whose_lease_would_run_out_in_a_long_paced_round_are_released_for_later() -> (
    None
):
    time = FakeTime()
    platform = ScriptedPlatform(time)
    store = MemoryStore()
    await enqueue(store, ("slack:A", "a1"), ("slack:A", "a2"), ("slack:A", "a3"))
    worker = make_worker(store, platform, lease_ms=1500, send_timeout_s=0.1)

    assert await worker.drain_once() == 2
    released = await item(store, "a3")
    assert released.status == "pending"
    assert released.attempts == 0
    await drain_until_empty(worker, store, time)
    assert platform.posts == {"slack:A": ["a1", "a2", "a3"]}


async def test_run_delivers_and_stops_when_the_event_is_set() -> None:
    time = FakeTime()
    platform = ScriptedPlatform(time)
    store = MemoryStore()
    await enqueue(store, ("test:A", "a1"), ("test:A", "a2"))
    stop = asyncio.Event()
    idle_polls = 0

    async def sleep(seconds: float) -> None:
        nonlocal idle_polls
        idle_polls += 1
        if idle_polls == 3:
            stop.set()
        await time.sleep(seconds)

    worker = OutboxWorker(
        store,
        lambda _: platform,
        clock=time.now,
        sleep=sleep,
        rng=random.Random(0),
        pacing_ms=paced,
    )
    async with asyncio.timeout(5):  # a safety net against a hang, not a timing assertion
        await worker.run(stop, idle_poll_s=0.25)

    assert platform.posts == {"test:A": ["a1", "a2"]}
    assert idle_polls == 3


class FlakyStore(MemoryStore):
    """Claiming fails once, as a briefly unavailable database would."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def claim_due(
        self, now_ms: int, limit: int, lease_ms: int, **scope: Any
    ) -> list[OutboxItem]:
        if self.failures > 0:
            self.failures -= 1
            raise OSError(f"database locked while reading {PII}")
        return await super().claim_due(now_ms, limit, lease_ms, **scope)


async def test_run_keeps_going_after_a_failing_round_and_logs_no_payload(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.outbox_worker")
    time = FakeTime()
    platform = ScriptedPlatform(time, {"a1": ["raise"], "b1": ["reject"]})
    store = FlakyStore()
    await enqueue(store, ("test:A", "a1"), ("test:B", "b1"))
    worker = make_worker(store, platform, Alerts())
    stop = asyncio.Event()

    async def stop_when_drained() -> None:
        while await store.pending_count() > 0:
            await asyncio.sleep(0)
        stop.set()

    async with asyncio.timeout(5):  # a safety net against a hang, not a timing assertion
        await asyncio.gather(worker.run(stop), stop_when_drained())

    assert platform.posts == {"test:A": ["a1"]}
    assert "OSError" in caplog.text
    assert "a1" in caplog.text
    assert "test:B" in caplog.text
    assert PII not in caplog.text


async def test_a_long_paced_backlog_in_one_channel_does_not_hold_up_another_channels_new_message() -> (
    None
):
    time = FakeTime()
    platform = ScriptedPlatform(time)
    store = MemoryStore()
    await enqueue(store, *(("slack:busy", f"b{i}") for i in range(10)))
    worker = make_worker(store, platform, round_ms=2_000)
    await worker.drain_once()  # one round: a few paced sends, the rest released
    sent_first_round = len(platform.posts.get("slack:busy", []))
    assert 1 <= sent_first_round <= 3
    assert (await item(store, f"b{sent_first_round}")).attempts == 0  # released, not failed
    await enqueue(store, ("slack:quiet", "q1"))
    await drain_until_empty(worker, store, time)
    assert platform.posts["slack:busy"] == [f"b{i}" for i in range(10)]  # order kept
    quiet_at = times_of(platform, ["q1"])[0]
    assert quiet_at < times_of(platform, ["b9"])[0]  # not behind the whole backlog


# -- fair delivery, restarts, own channels (issue 11) ----------------------------------------


class SteppedTime(FakeTime):
    """A clock that moves only when the test advances it; a sleeper wakes once the clock
    reaches its time. So `run`'s concurrency plays out with nothing but the test moving time."""

    def __init__(self) -> None:
        super().__init__()
        self._sleepers: list[tuple[int, asyncio.Future[None]]] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        due = self.ms + round(seconds * 1000)
        if due <= self.ms:
            await asyncio.sleep(0)
            return
        woken = asyncio.get_running_loop().create_future()
        self._sleepers.append((due, woken))
        await woken

    async def advance(self, ms: int) -> None:
        self.ms += ms
        for due, woken in self._sleepers:
            if due <= self.ms and not woken.done():
                woken.set_result(None)
        self._sleepers = [(due, woken) for due, woken in self._sleepers if not woken.done()]
        await settle()


async def settle() -> None:
    """Let every task run until it waits for the clock (the memory store never blocks)."""
    for _ in range(200):
        await asyncio.sleep(0)


async def test_while_one_channel_paces_a_backlog_of_150_a_reply_in_another_channel_goes_out_at_once() -> (
    None
):
    time = SteppedTime()
    platform = ScriptedPlatform(time)
    store = MemoryStore()
    await enqueue(store, *(("slack:CLEADS", f"lead-{n}") for n in range(150)))
    worker = make_worker(store, platform)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await settle()
    assert platform.sent_keys() == ["lead-0"]  # the next lead waits a second for its pace

    await enqueue(store, ("slack:D1", "dm-1"))
    worker.wake()  # what the service does once a reply is committed
    await settle()
    assert platform.sent_keys() == ["lead-0", "dm-1"]
    assert times_of(platform, ["dm-1"]) == [START_MS]  # not a moment of the backlog's pace

    await enqueue(store, ("slack:D2", "dm-2"))  # no wake: the next poll finds it
    await time.advance(250)
    assert platform.sent_keys() == ["lead-0", "dm-1", "dm-2"]

    for _ in range(200):
        if len(platform.posts["slack:CLEADS"]) == 150:
            break
        await time.advance(1000)
    assert platform.posts["slack:CLEADS"] == [f"lead-{n}" for n in range(150)]  # order kept
    leads = times_of(platform, [f"lead-{n}" for n in range(150)])
    assert all(b - a >= PACING_MS for a, b in itertools.pairwise(leads))  # paced throughout
    stop.set()
    await running


async def test_a_channel_whose_pace_is_not_due_is_skipped_by_the_claim_not_leased() -> None:
    time = SteppedTime()
    platform = ScriptedPlatform(time)
    store = MemoryStore()
    await enqueue(store, ("slack:A", "a1"))
    worker = make_worker(store, platform, per_channel=1)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await settle()
    await enqueue(store, ("slack:A", "a2"))
    await time.advance(500)  # polls twice while slack:A's next send is half a second away
    waiting = await item(store, "a2")
    assert (waiting.status, waiting.lease_until_ms) == ("pending", None)
    await time.advance(500)
    assert platform.sent_keys() == ["a1", "a2"]
    stop.set()
    await running


async def test_a_graceful_stop_releases_every_lease_so_the_next_boot_claims_at_once() -> None:
    time = SteppedTime()
    platform = ScriptedPlatform(time)
    store = MemoryStore()
    await enqueue(store, *(("slack:A", f"a{n}") for n in range(5)), ("slack:B", "b0"))
    first = make_worker(store, platform, owner="boot-1")
    stop = asyncio.Event()
    running = asyncio.create_task(first.run(stop))
    await settle()
    assert sorted(platform.sent_keys()) == ["a0", "b0"]  # a1..a4 claimed, waiting for pace
    assert (await item(store, "a1")).lease_owner == "boot-1"

    stop.set()
    await running  # no time passes: the pacing wait ends at the stop

    for key in ("a1", "a2", "a3", "a4"):
        released = await item(store, key)
        assert (released.status, released.attempts, released.last_error) == ("pending", 0, None)
    assert await store.lease_owners() == []
    resumed = await store.claim_due(time.ms, 10, 60_000, owner="boot-2")
    assert [i.key for i in resumed] == ["a1", "a2", "a3", "a4"]


async def test_a_stop_that_cuts_a_send_short_leaves_it_to_be_looked_up_before_resending() -> None:
    time = SteppedTime()
    platform = ScriptedPlatform(time, {"a0": ["hang"]})
    store = MemoryStore()
    await enqueue(store, ("test:A", "a0"), ("test:A", "a1"))
    first = make_worker(store, platform, owner="boot-1")
    running = asyncio.create_task(first.run(asyncio.Event()))
    await settle()
    running.cancel()  # the service's stop deadline passed while a0 was being sent
    with pytest.raises(asyncio.CancelledError):
        await running

    cut = await item(store, "a0")
    assert (cut.status, cut.last_error) == ("pending", LEASE_EXPIRED)
    assert (await item(store, "a1")).last_error is None
    second = make_worker(store, ScriptedPlatform(time), owner="boot-2")
    assert await second.drain_once() == 2
    assert await store.pending_count() == 0


async def test_a_killed_workers_leases_are_taken_over_once_its_heartbeat_runs_out_and_looked_up() -> (
    None
):
    frozen = SteppedTime()  # the killed process: its clock never moves again
    time = FakeTime()
    platform = ScriptedPlatform(time, {"a0": ["hang"]})
    store = MemoryStore()
    await enqueue(store, ("test:A", "a0"), ("test:A", "a1"), ("test:B", "b0"))
    killed = OutboxWorker(
        store,
        lambda _channel: platform,
        clock=frozen.now,
        sleep=frozen.sleep,
        rng=random.Random(0),
        pacing_ms=paced,
        owner="boot-1",
    )
    dead = asyncio.create_task(killed.run(asyncio.Event()))
    await settle()  # boot-1 hangs sending a0, holding a1; b0 went out

    survivor = make_worker(store, platform, owner="boot-2")
    time.ms = START_MS + 1000
    assert await survivor.drain_once() == 0  # boot-1's heartbeat still holds
    assert (await item(store, "a1")).lease_owner == "boot-1"
    time.ms = START_MS + OWNER_TTL_MS  # well before the 60 s lease runs out
    assert await survivor.drain_once() == 2
    assert platform.lookups == ["a0", "a1"]  # both may have been posted: looked up first
    assert platform.posts == {"test:B": ["b0"], "test:A": ["a0", "a1"]}

    # Had boot-1 only stalled (paused, not killed), it comes back with its heartbeat run
    # out: it sends nothing more of what it held.
    frozen.ms = time.ms
    platform.unhang.set()
    await settle()
    dead.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await dead
    assert platform.posts == {"test:B": ["b0"], "test:A": ["a0", "a1"]}  # nothing twice
    assert await store.dead_letters() == []


async def test_a_new_boot_of_the_same_identity_resumes_at_once_after_a_kill() -> None:
    frozen = SteppedTime()
    time = FakeTime()
    platform = ScriptedPlatform(time, {"a0": ["hang"]})
    store = MemoryStore()
    await enqueue(store, ("test:A", "a0"), ("test:A", "a1"))
    killed = OutboxWorker(
        store,
        lambda _channel: platform,
        clock=frozen.now,
        sleep=frozen.sleep,
        rng=random.Random(0),
        pacing_ms=paced,
        owner="boot-1",
        identity="slot-0",
    )
    dead = asyncio.create_task(killed.run(asyncio.Event()))
    await settle()

    time.ms = START_MS + 1  # the restart, a moment later
    restarted = make_worker(store, platform, owner="boot-2", identity="slot-0")
    assert await restarted.drain_once() == 2
    assert platform.posts == {"test:A": ["a0", "a1"]}
    assert [o.owner for o in await store.lease_owners()] == ["boot-2"]

    dead.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await dead


async def test_a_worker_claims_only_the_channels_it_has_a_sender_for_and_alerts_about_none() -> (
    None
):
    time = FakeTime()
    server_platform, chat_platform = ScriptedPlatform(time), ScriptedPlatform(time)
    server_alerts, chat_alerts = Alerts(), Alerts()
    store = MemoryStore()
    await enqueue(
        store, ("terminal", "t1"), ("slack:C1", "s1"), ("playground:c1", "p1"), ("terminal", "t2")
    )
    server = make_worker(
        store, server_platform, server_alerts, owner="server", prefixes=("slack:", "playground:")
    )
    chat = make_worker(store, chat_platform, chat_alerts, owner="chat", prefixes=("terminal",))

    for _ in range(3):
        await server.drain_once()
        time.ms += 3_600_000  # hours pass: nothing of the terminal's is ever the server's
    assert server_platform.posts == {"slack:C1": ["s1"], "playground:c1": ["p1"]}
    assert [(await item(store, k)).status for k in ("t1", "t2")] == ["pending", "pending"]
    await chat.drain_once()
    assert chat_platform.posts == {"terminal": ["t1", "t2"]}
    assert await store.dead_letters() == []
    assert server_alerts.raised == chat_alerts.raised == []


def unsent(path: Path) -> list[tuple[str, str]]:
    """(key, channel) of every unsent item, read as another process would read the file."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT key, channel FROM outbox WHERE status IN ('pending', 'in_flight') ORDER BY id"
        ).fetchall()
    return [(str(key), str(channel)) for key, channel in rows]


async def test_a_terminal_chat_and_the_server_on_one_database_each_deliver_only_their_own(
    tmp_path: Path, default_policy: Policy
) -> None:
    """Two processes on one SQLite file: `salesbot serve` (the playground) and
    `salesbot chat`. Neither claims, dead-letters or alerts about the other's replies."""
    now = [START_MS]

    def clock() -> int:
        return now[0]

    path = tmp_path / "shared.db"
    server_store = await SqliteStore.open(path)
    chat_store = await SqliteStore.open(path)
    try:
        service = build_service(Settings(), default_policy, server_store, clock=clock)
        hub = service.playground
        assert hub is not None
        printed: list[str] = []
        chat = ChatSession(
            chat_store, default_policy, printed.append, conversation_id="chat-1", session="s",
            clock=clock,
        )  # fmt: skip
        await chat.start()
        # The chat has committed a reply it has not printed yet (as between its commit and
        # its flush), and the server one for the playground.
        chat_runtime = Runtime(chat_store, default_policy, TerminalRouter(), clock=clock)
        await chat_runtime.start()
        await chat_runtime.handle(
            MessagePosted(delivery_id="chat:s:0", conversation_id="chat-1", text="Hello",
                          actor=LOCAL_PROSPECT)
        )  # fmt: skip
        await service.handle(
            MessagePosted(delivery_id="pg-1", conversation_id="pg-conv", text="Hello",
                          actor=LOCAL_PROSPECT)
        )  # fmt: skip
        chat_items = [entry for entry in unsent(path) if entry[1] == "terminal"]
        assert chat_items

        for _ in range(3):
            await service.worker.drain_once()
            now[0] += 3_600_000  # hours pass: any lease would have run out long ago
        assert {message["conversation"] for message in hub.history()} == {"pg-conv"}
        assert unsent(path) == chat_items  # not claimed, not dead-lettered
        assert await server_store.dead_letters() == []

        await service.handle(
            MessagePosted(delivery_id="pg-2", conversation_id="pg-conv", text="Thanks",
                          actor=LOCAL_PROSPECT)
        )  # fmt: skip
        server_items = unsent(path)[len(chat_items) :]
        assert server_items
        assert all(channel.startswith("playground:") for _key, channel in server_items)
        await chat.feed("We have a $5000 budget")
        assert any(line.startswith("bot> Hi") for line in printed)  # the earlier reply too
        assert unsent(path) == server_items  # the chat left the server's alone
        leased = await chat_store.outbox_item(server_items[0][0])
        assert leased is not None
        assert (leased.status, leased.attempts, leased.lease_owner) == ("pending", 0, None)
        await chat.close()

        await service.worker.drain_once()
        assert unsent(path) == []
        assert await chat_store.dead_letters() == []
        # No false "could not be delivered" in either conversation.
        for conversation in ("chat-1", "pg-conv"):
            types = {env.event.type for env in await chat_store.load(conversation)}
            assert "delivery_dead_lettered" not in types
    finally:
        await chat_store.close()
        await server_store.close()


class CountedClaims(MemoryStore):
    """A memory store that counts the worker's claims (each a write transaction on SQL)."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0

    async def claim_due(self, *args: Any, **kwargs: Any) -> list[OutboxItem]:
        self.claims += 1
        return await super().claim_due(*args, **kwargs)


async def test_a_reply_waits_out_its_channels_pace_and_a_pace_with_nothing_waiting_claims_nothing() -> (
    None
):
    time = SteppedTime()
    platform = ScriptedPlatform(time)
    store = CountedClaims()
    worker = make_worker(store, platform)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop, idle_poll_s=60))  # no poll in this test
    await settle()
    assert store.claims == 1  # the first round looks everywhere

    await enqueue(store, ("slack:D1", "r1"))
    worker.wake(["slack:D1"])
    await settle()
    assert platform.sent_keys() == ["r1"]
    claims = store.claims

    await enqueue(store, ("slack:D1", "r2"))  # committed while D1 keeps its pace
    worker.wake(["slack:D1"])
    await settle()
    assert platform.sent_keys() == ["r1"]
    assert store.claims == claims  # nothing claimable yet: no claim

    await time.advance(PACING_MS)  # the pace ends with r2 waiting: claimed and sent
    assert platform.sent_keys() == ["r1", "r2"]
    assert times_of(platform, ["r2"]) == [START_MS + PACING_MS]
    claims = store.claims

    await time.advance(PACING_MS)  # D1's pace ends again, nothing waits for it
    await time.advance(PACING_MS)
    assert store.claims == claims

    await enqueue(store, ("slack:D2", "other"))  # another process's: no wake here
    await time.advance(60_000)  # the poll finds it
    assert platform.sent_keys() == ["r1", "r2", "other"]
    stop.set()
    await running
