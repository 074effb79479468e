"""`PausedWhile` and the outbox worker together: a paused destination's messages are held
without spending attempts, in order, and a look-up skipped during the pause is made before
the message is sent after it."""

from __future__ import annotations

import asyncio
import random

from adapters.ports import Delivery, Rejected, RetryLater, SendOutcome, Sent
from bot.outbox_worker import OutboxWorker
from bot.pause import HOLD_MS, PausedWhile
from storage.memory import MemoryStore
from storage.ports import OutboxItem

START_MS = 1_790_000_000_000


class Switch:
    def __init__(self) -> None:
        self.reason: str | None = None
        self.refusals: list[str] = []

    def held_because(self) -> str | None:
        return self.reason

    async def refused(self, error: str) -> bool:
        self.refusals.append(error)
        if error == "token_revoked":
            self.reason = "Slack answered token_revoked"
            return True
        return False


class Platform:
    def __init__(self) -> None:
        self.posted: list[str] = []
        self.lookups: list[str] = []
        self.answer: SendOutcome | None = None

    async def send(self, delivery: Delivery) -> SendOutcome:
        if self.answer is not None:
            answer, self.answer = self.answer, None
            return answer
        self.posted.append(delivery.key)
        return Sent(remote_id=f"ts-{delivery.key}")

    async def find_sent(self, delivery: Delivery) -> str | None:
        self.lookups.append(delivery.key)
        return f"ts-{delivery.key}" if delivery.key in self.posted else None


def delivery(key: str) -> Delivery:
    return Delivery(key=key, conversation_id="c", channel="slack:C1", payload={})


async def test_a_paused_send_is_held_without_counting_an_attempt() -> None:
    switch, platform = Switch(), Platform()
    sender = PausedWhile(switch, platform)
    switch.reason = "app_uninstalled"
    outcome = await sender.send(delivery("k1"))
    assert outcome == RetryLater(
        reason="paused: app_uninstalled", retry_after_ms=HOLD_MS, attempted=False
    )
    assert platform.posted == []


async def test_a_refusal_that_means_the_token_is_gone_holds_instead_of_rejecting() -> None:
    switch, platform = Switch(), Platform()
    sender = PausedWhile(switch, platform)
    platform.answer = Rejected(reason="token_revoked")
    outcome = await sender.send(delivery("k1"))
    assert isinstance(outcome, RetryLater)
    assert not outcome.attempted
    assert switch.reason == "Slack answered token_revoked"
    platform.answer = Rejected(reason="not_in_channel")
    switch.reason = None
    assert await sender.send(delivery("k2")) == Rejected(reason="not_in_channel")


async def test_a_look_up_skipped_during_the_pause_is_made_before_sending_after_it() -> None:
    switch, platform = Switch(), Platform()
    sender = PausedWhile(switch, platform)
    platform.posted.append("k1")  # the uncertain send had landed after all
    switch.reason = "bot token revoked"
    assert await sender.find_sent(delivery("k1")) is None  # cannot look while paused
    switch.reason = None  # lifted between the look-up and the send
    assert await sender.send(delivery("k1")) == Sent(remote_id="ts-k1")
    assert platform.posted == ["k1"]  # not posted twice
    assert platform.lookups == ["k1"]


async def test_the_worker_keeps_held_items_in_order_through_a_long_pause() -> None:
    now = [START_MS]
    store = MemoryStore()
    items = [
        OutboxItem(
            key=f"k{i}",
            conversation_id="c",
            channel="slack:C1",
            payload={},
            created_at_ms=START_MS + i,
            available_at_ms=START_MS,
        )
        for i in range(3)
    ]
    await store.enqueue(items)
    switch, platform = Switch(), Platform()
    switch.reason = "app_uninstalled"
    worker = OutboxWorker(
        store,
        lambda channel: PausedWhile(switch, platform),
        clock=lambda: now[0],
        sleep=asyncio.sleep,
        rng=random.Random(0),
        pacing_ms=lambda channel: 0,
        max_attempts=3,
    )
    for _ in range(20):  # far more rounds than attempts allowed
        await worker.drain_once()
        now[0] += HOLD_MS
    assert await store.dead_letters() == []
    held = [await store.outbox_item(f"k{i}") for i in range(3)]
    assert [(i.status, i.attempts) for i in held if i is not None] == [("pending", 0)] * 3
    assert held[0] is not None
    assert held[0].last_error is None  # never tried: no error recorded

    switch.reason = None
    while await store.pending_count():
        await worker.drain_once()
        now[0] += HOLD_MS
    assert platform.posted == ["k0", "k1", "k2"]
