"""Outbox delivery under a backlog and across restarts (issue 11, items 1 and 2), in one run.

Fairness: the wall-clock latency of a DM's reply (from handing the inbound to the runtime
to the fake Slack receiving it) through the real runtime, SQLite store and outbox worker
with Slack's real pacing (one message per second per channel), first with nothing else to
send, then while the leads channel holds a backlog of 150 replies. Reported as medians and
their ratio.

Restarts: a real `salesbot serve` subprocess on 127.0.0.1 with a fake Slack Web API, ten
prospects' replies pacing out in one channel; after the first is posted the process is
stopped (SIGTERM, or SIGKILL) and started again. Measured: from starting the new process
(and from its listening) to the first reply that was still pending being posted. A third
case kills the process while the benchmark itself holds the killed process's boot slot, so
the new process cannot know the old one is gone and waits for its heartbeat to run out:
what a second process sharing the database sees when the first one dies.
"""

from __future__ import annotations

import asyncio
import random
import signal
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from adapters.ports import Delivery, Route, Sent
from bot.boot_slot import BootSlot
from bot.clock import system_now_ms
from bot.outbox_worker import OutboxWorker
from bot.policy_loader import load_policy
from bot.runtime import Runtime
from bot.service import SLACK_PACING_MS
from domain.cards import Reply
from domain.inbound import Actor, Inbound, LeadArrived, LeadDetails, MessagePosted
from domain.state import ConversationState
from storage.sqlite import SqliteStore
from tests.fakes.slack_api import FakeSlackApi
from tests.integration.served import BOT, ROOT, TEAM, Served, bot_keys, leased

PROSPECT = Actor(id="P", name="Pat", role="prospect")
FEED = Actor(id="lead-feed", name="lead feed", role="prospect")
BACKLOG = 150
SAMPLES = 7


class _ToSlackChannels:
    """Leads go to the leads channel; every other conversation is a DM of its own."""

    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        if inbound.conversation_id.startswith("lead-"):
            return [Route(channel="slack:CLEADS")]
        return [Route(channel=f"slack:D{inbound.conversation_id}")]


class _FakeSlack:
    """Answers at once and notes when each item arrived (wall clock, monotonic)."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.conversations: list[str] = []
        self.by_conversation: dict[str, asyncio.Event] = {}

    async def send(self, delivery: Delivery) -> Sent:
        self.arrived[delivery.key] = time.perf_counter()
        self.conversations.append(delivery.conversation_id)
        self.by_conversation.setdefault(delivery.conversation_id, asyncio.Event()).set()
        return Sent(remote_id=delivery.key)

    async def find_sent(self, delivery: Delivery) -> str | None:
        return delivery.key if delivery.key in self.arrived else None


async def _dm_latencies(backlog: int) -> tuple[list[float], int, int]:
    """Latency of SAMPLES DM replies (seconds), how many outbox items the `backlog` leads
    made, and how many of them went out meanwhile."""
    with tempfile.TemporaryDirectory() as directory:
        store = await SqliteStore.open(Path(directory) / "bench.db")
        try:
            slack = _FakeSlack()
            runtime = Runtime(
                store, load_policy("default"), _ToSlackChannels(), clock=system_now_ms
            )
            await runtime.start()
            worker = OutboxWorker(
                store,
                lambda _channel: slack,
                clock=system_now_ms,
                sleep=asyncio.sleep,
                rng=random.Random(0),
                pacing_ms=lambda channel: SLACK_PACING_MS if channel.startswith("slack:") else 0,
                prefixes=("slack:",),
            )
            for n in range(backlog):
                await runtime.handle(
                    LeadArrived(
                        delivery_id=f"lead-{n}",
                        conversation_id=f"lead-{n}",
                        actor=FEED,
                        lead=LeadDetails(name="Dana", company="Acme", message="Evaluating"),
                    )
                )
            items = await store.pending_count()
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(stop))
            await asyncio.sleep(1.5)  # the backlog is being paced out by now
            latencies = []
            for n in range(SAMPLES):
                conversation = f"dm-{n}"
                delivered = slack.by_conversation.setdefault(conversation, asyncio.Event())
                started = time.perf_counter()
                await runtime.handle(
                    MessagePosted(
                        delivery_id=f"dm-{n}",
                        conversation_id=conversation,
                        actor=PROSPECT,
                        text="Hi, quick question about pricing",
                    )
                )
                worker.wake()  # as the service does once an inbound is committed
                await asyncio.wait_for(delivered.wait(), timeout=600)
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.2)
            leads_sent = sum(1 for c in slack.conversations if c.startswith("lead-"))
            stop.set()
            await running
            return latencies, items, leads_sent
        finally:
            await store.close()


async def _restart(
    sig: signal.Signals, *, hold_slot: bool = False, root: Path = ROOT
) -> tuple[float, float, int]:
    """(seconds from starting the new process, from its listening) to the first pending
    reply posted after `sig` stopped the previous one, and how many items the stopped
    process left leased. It is stopped just after its second reply: the first goes out at
    once, the rest are claimed (leased) a second later, when the channel's pace is due."""
    with tempfile.TemporaryDirectory() as directory:
        db = Path(directory) / "serve.db"
        async with (
            FakeSlackApi(token="xoxb-bench", team_id=TEAM, bot_user_id=BOT) as api,
            aiohttp.ClientSession() as session,
        ):
            first = await Served.start(db, api, root=root)
            for n in range(10):
                await first.prospect_writes(session, api, f"Hello, we are evaluating CRMs ({n})")
            while len(bot_keys(api)) < 2:
                await asyncio.sleep(0.005)
            await first.stop(sig)
            held = leased(db)
            slot = BootSlot.acquire(db) if hold_slot else None
            try:
                posted = len(bot_keys(api))
                started = time.perf_counter()
                second = await Served.start(db, api, root=root)
                listening = time.perf_counter()
                while len(bot_keys(api)) == posted:
                    await asyncio.sleep(0.005)
                arrived = time.perf_counter()
                await second.stop(signal.SIGTERM)
            finally:
                if slot is not None:
                    slot.release()
    return arrived - started, arrived - listening, held


async def measure() -> dict[str, float]:
    results: dict[str, float] = {}
    quiet, _, _ = await _dm_latencies(0)
    busy, items, leads_sent = await _dm_latencies(BACKLOG)
    results["outbox_backlog_items_of_150_leads"] = float(items)
    results["outbox_dm_latency_ms_no_backlog"] = 1000 * statistics.median(quiet)
    results["outbox_dm_latency_ms_backlog_150"] = 1000 * statistics.median(busy)
    results["outbox_dm_latency_ms_backlog_150_max"] = 1000 * max(busy)
    results["outbox_backlog_sent_while_measuring"] = float(leads_sent)
    results["outbox_dm_latency_backlog_vs_none"] = statistics.median(busy) / statistics.median(
        quiet
    )
    for name, sig, hold in (
        ("sigterm", signal.SIGTERM, False),
        ("kill9", signal.SIGKILL, False),
        ("kill9_other_process", signal.SIGKILL, True),
    ):
        from_start, from_listening, leased = await _restart(sig, hold_slot=hold)
        results[f"restart_{name}_first_pending_reply_s"] = from_start
        results[f"restart_{name}_first_pending_reply_after_listening_s"] = from_listening
        results[f"restart_{name}_items_left_leased"] = float(leased)
    return results


if __name__ == "__main__":
    for key, value in asyncio.run(measure()).items():
        print(f"{key:58} {value:12,.4g}")
