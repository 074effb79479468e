"""Durable append (issue 18, item 3): the SQLite store's `commit` against a raw single-writer
group-commit loop on the same schema, in one run, 200 conversations committing at once.

Both sides write the same rows for each commit — the stream's version, its events (the
envelopes a real `decide` produced: about four per prospect message, the reading's features
included), the delivery id and the inbound — in WAL mode with `synchronous = FULL`, one
transaction (one fsync) per batch of whatever is queued. The raw loop does only that: no
expected-version check, no dedupe read, no hash chain, no projections, no validation. The
store's share of the difference is what those guarantees cost.

    python -m bench.append
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from bot.policy_loader import load_policy
from domain.decide import decide, new_conversation
from domain.events import EventEnvelope
from domain.inbound import Actor, MessagePosted
from storage.ports import Commit
from storage.sqlite import SqliteStore

PROSPECT = Actor(id="P", name="Pat", role="prospect")
TEXTS = ("Hello", "We have a $5000 budget", "I am the CTO", "too expensive", "next month works")
NOW_MS = 1_790_000_000_000


def build_commits(conversations: int, messages: int, first: int = 0) -> list[list[Commit]]:
    """Each conversation's commits (`c<first>` on), decided once before anything is timed."""
    policy = load_policy("default")
    result = []
    for c in range(first, first + conversations):
        state = new_conversation(f"c{c}", policy)
        commits = []
        for m in range(messages):
            inbound = MessagePosted(
                delivery_id=f"{c}-{m}",
                conversation_id=f"c{c}",
                actor=PROSPECT,
                text=TEXTS[m % len(TEXTS)],
            )
            now = NOW_MS + 1000 * m
            decision = decide(state, inbound, policy, now)
            commits.append(
                Commit(
                    conversation_id=f"c{c}",
                    expected_version=state.version,
                    delivery_id=inbound.delivery_id,
                    received_at_ms=now,
                    policy_version=policy.version,
                    inbound=inbound.model_dump(mode="json"),
                    events=decision.events,
                )
            )
            state = decision.state
        result.append(commits)
    return result


async def product(path: Path, commits: list[list[Commit]]) -> tuple[float, int]:
    store = await SqliteStore.open(path)
    try:

        async def one(conversation: list[Commit]) -> None:
            for commit in conversation:
                await store.commit(commit)

        start = time.perf_counter()
        await asyncio.gather(*(one(conversation) for conversation in commits))
        elapsed = time.perf_counter() - start
        return elapsed, store.batches
    finally:
        await store.close()


def _rows(
    commit: Commit,
) -> tuple[tuple[object, ...], list[tuple[object, ...]], tuple[object, ...]]:
    events: tuple[EventEnvelope, ...] = commit.events
    stream: tuple[object, ...] = (
        commit.conversation_id,
        commit.expected_version + len(events),
        events[0].at_ms if events else commit.received_at_ms,
        events[-1].at_ms if events else commit.received_at_ms,
    )
    rows: list[tuple[object, ...]] = [
        (
            e.conversation_id,
            e.seq,
            e.at_ms,
            e.policy_version,
            e.event.type,
            e.delivery_id,
            e.model_dump_json(),
            None,
        )
        for e in events
    ]
    inbound: tuple[object, ...] = (
        commit.conversation_id,
        commit.expected_version + 1,  # any increasing position: the raw loop does not look
        commit.delivery_id,
        commit.received_at_ms,
        commit.policy_version,
        json.dumps(commit.inbound),
        None,
    )
    return stream, rows, inbound


class RawGroupCommit:
    """The baseline: one thread, one connection, a queue; each batch is one transaction."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.queue: list[tuple[Commit, Future[None]]] = []
        self.ready = threading.Condition()
        self.batches = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name="raw-writer")
        self.thread.start()

    def submit(self, commit: Commit) -> Future[None]:
        future: Future[None] = Future()
        with self.ready:
            self.queue.append((commit, future))
            self.ready.notify()
        return future

    def _loop(self) -> None:
        while True:
            with self.ready:
                while not self.queue and not self.stopping:
                    self.ready.wait()
                if not self.queue:
                    return
                batch, self.queue = self.queue[:512], self.queue[512:]
            self.conn.execute("BEGIN IMMEDIATE")
            for commit, _ in batch:
                stream, rows, inbound = _rows(commit)
                self.conn.execute(
                    "INSERT INTO streams (conversation_id, version, created_at_ms, "
                    "updated_at_ms) VALUES (?, ?, ?, ?) ON CONFLICT (conversation_id) DO "
                    "UPDATE SET version = excluded.version, updated_at_ms = excluded.updated_at_ms",
                    stream,
                )
                self.conn.executemany(
                    "INSERT INTO events (conversation_id, seq, at_ms, policy_version, type, "
                    "delivery_id, envelope, chain_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self.conn.execute(
                    "INSERT INTO deliveries (delivery_id, conversation_id, received_at_ms, "
                    "committed_version) VALUES (?, ?, ?, ?)",
                    (commit.delivery_id, commit.conversation_id, commit.received_at_ms, stream[1]),
                )
                self.conn.execute(
                    "INSERT INTO inbounds (conversation_id, position, delivery_id, "
                    "received_at_ms, policy_version, inbound, generator) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    inbound,
                )
            self.conn.execute("COMMIT")
            self.batches += 1
            for _, future in batch:
                future.set_result(None)

    def close(self) -> None:
        with self.ready:
            self.stopping = True
            self.ready.notify()
        self.thread.join()
        self.conn.close()


async def raw(path: Path, commits: list[list[Commit]]) -> tuple[float, int]:
    store = await SqliteStore.open(path)  # the same schema, then the store lets go of it
    await store.close()
    writer = RawGroupCommit(path)
    try:

        async def one(conversation: list[Commit]) -> None:
            for commit in conversation:
                await asyncio.wrap_future(writer.submit(commit))

        start = time.perf_counter()
        await asyncio.gather(*(one(conversation) for conversation in commits))
        return time.perf_counter() - start, writer.batches
    finally:
        writer.close()


async def measure(conversations: int = 200, messages: int = 5, rounds: int = 3) -> dict[str, float]:
    commits = build_commits(conversations, messages)
    count = conversations * messages
    events = sum(len(c.events) for conversation in commits for c in conversation)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        for n in range(rounds):  # alternated, best of each: the machine is shared
            for name, run in (("store", product), ("raw", raw)):
                elapsed, batches = await run(Path(directory) / f"{name}-{n}.db", commits)
                rate = count / elapsed
                if rate > best.get(f"{name}_commits_per_s", 0.0):
                    best[f"{name}_commits_per_s"] = rate
                    best[f"{name}_events_per_s"] = events / elapsed
                    best[f"{name}_commits_per_batch"] = count / max(1, batches)
    best["events_per_commit"] = events / count
    best["store_vs_raw"] = best["store_commits_per_s"] / best["raw_commits_per_s"]
    return best


if __name__ == "__main__":
    for key, value in asyncio.run(measure()).items():
        print(f"{key}: {value:,.2f}")
