"""Runtime throughput on the two stores, in one run: inbounds/s and events/s end to end
(dedupe, lanes, decide, one commit each), with 200 conversations in flight at once."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from adapters.ports import Route
from bot.policy_loader import load_policy
from bot.runtime import Runtime
from domain.cards import Reply
from domain.inbound import Actor, Inbound, MessagePosted
from domain.state import ConversationState
from storage.memory import MemoryStore
from storage.ports import Store
from storage.sqlite import SqliteStore

PROSPECT = Actor(id="P", name="Pat", role="prospect")
TEXTS = ("Hello", "We have a $5000 budget", "I am the CTO", "too expensive", "next month works")


class OneChannelEach:
    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        return [Route(channel=f"bench:{inbound.conversation_id}")]


async def _drive(store: Store, conversations: int, messages: int) -> tuple[float, int, int]:
    ticks = itertools.count()
    runtime = Runtime(
        store,
        load_policy("default"),
        OneChannelEach(),
        clock=lambda: 1_790_000_000_000 + next(ticks),
    )
    await runtime.start()

    async def conversation(c: int) -> None:
        for m in range(messages):
            await runtime.handle(
                MessagePosted(
                    delivery_id=f"{c}-{m}",
                    conversation_id=f"c{c}",
                    actor=PROSPECT,
                    text=TEXTS[m % len(TEXTS)],
                )
            )

    start = time.perf_counter()
    await asyncio.gather(*(conversation(c) for c in range(conversations)))
    elapsed = time.perf_counter() - start
    events = sum([await store.version(f"c{c}") for c in range(conversations)])
    return elapsed, conversations * messages, events


async def measure(conversations: int = 200, messages: int = 5) -> dict[str, float]:
    results: dict[str, float] = {}
    memory = MemoryStore()
    elapsed, inbounds, events = await _drive(memory, conversations, messages)
    results["runtime_memory_inbounds_per_s"] = inbounds / elapsed
    with tempfile.TemporaryDirectory() as directory:
        sqlite = await SqliteStore.open(Path(directory) / "bench.db")
        try:
            elapsed, inbounds, events = await _drive(sqlite, conversations, messages)
            results["runtime_sqlite_inbounds_per_s"] = inbounds / elapsed
            results["runtime_sqlite_events_per_s"] = events / elapsed
            results["runtime_sqlite_write_batches"] = float(sqlite.batches)
            results["runtime_sqlite_inbounds_per_batch"] = inbounds / max(1, sqlite.batches)
        finally:
            await sqlite.close()
    results["sqlite_vs_memory_cost"] = (
        results["runtime_memory_inbounds_per_s"] / results["runtime_sqlite_inbounds_per_s"]
    )
    return results
