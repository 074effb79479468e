"""What a message costs the SQLite writer process at a moderate rate, when the outbox's
claims and marks wait for company (`storage.sqlite_process.LINGER_S`) and when they do not,
in one run.

At a moderate rate each message wrote three transactions, each with its fsync: its commit,
the claim of its reply and the mark that the reply was sent. Here every message does what
`serve` does to the store for it: its commit (`bench.append`'s decided commits, one reply
each), then, as the outbox worker, the claim of what is due (the channels being sent
excluded), a millisecond for the send, and the mark (a conversation's messages one at a
time, as the runtime's lanes take them). `MESSAGES` messages, 400 conversations
round-robin, on a schedule at `RATE` a second, through one store on the writer process; the two sides alternate
`ROUNDS` times, each with a fresh store: `linger` (the shipped `LINGER_S`) and `at once`
(`linger_s` 0: a lingering write is sealed at the next turn of the event loop, as every
write was). Reported, each side's median round: transactions per message, CPU per message
of the server's process and of the writer process, the commit's p50/p99 (what an
acknowledgement waits for) and the reply's (commit to mark: what the wait for company
adds), and the replies left unsent (0: every message was claimed and marked).

    python -m bench.outbox_linger
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.append import build_commits
from bench.proc import cpu_seconds, percentile
from storage.ports import Commit, OutboxItem
from storage.sqlite import SqliteStore
from storage.sqlite_process import LINGER_S, ProcessWriter

RATE = 200.0
MESSAGES = 2_000
ROUNDS = 3
SEND_S = 0.001
"""What the send itself takes here (the fake platform's answer)."""
OWNER = "bench"


def with_replies(commits: list[Commit]) -> list[Commit]:
    """Each commit with its reply in the outbox, in a channel of its conversation's."""
    return [
        commit.model_copy(
            update={
                "outbox": (
                    OutboxItem(
                        key=f"reply:{commit.delivery_id}",
                        conversation_id=commit.conversation_id,
                        channel=f"slack:{commit.conversation_id}",
                        payload={"text": "Thanks — a colleague will follow up."},
                        created_at_ms=commit.received_at_ms,
                        available_at_ms=0,
                    ),
                )
            }
        )
        for commit in commits
    ]


async def run(commits: list[Commit], linger_s: float, rate: float) -> dict[str, float]:
    """One side's round on a fresh store: the figures of the module's docstring."""
    with tempfile.TemporaryDirectory() as directory:
        store = await SqliteStore.open(Path(directory) / "bench.db", writer="process")
        try:
            child = store._engine
            assert isinstance(child, ProcessWriter)
            child.linger_s = linger_s
            sending: set[str] = set()
            commit_s: list[float] = []
            reply_s: list[float] = []
            lanes = {commit.conversation_id: asyncio.Lock() for commit in commits}

            async def message(commit: Commit) -> None:
                async with lanes[commit.conversation_id]:  # the runtime's lane
                    await handled(commit)

            async def handled(commit: Commit) -> None:
                start = time.perf_counter()
                if (await store.commit(commit)).status != "committed":
                    raise RuntimeError(f"{commit.delivery_id} was not committed")
                commit_s.append(time.perf_counter() - start)
                now_ms = time.time_ns() // 1_000_000
                items = await store.claim_due(now_ms, 10, 60_000, owner=OWNER, exclude=sending)
                for item in items:
                    sending.add(item.channel)
                    await asyncio.sleep(SEND_S)
                    await store.mark_sent(item.key, time.time_ns() // 1_000_000)
                    sending.discard(item.channel)
                reply_s.append(time.perf_counter() - start)

            transactions, parent, writer = (
                child.transactions,
                time.process_time(),
                cpu_seconds(child.pid),
            )
            begun = time.perf_counter()
            tasks = []
            for index, commit in enumerate(commits):
                delay = begun + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(message(commit)))
            await asyncio.gather(*tasks)
            count = len(commits)
            unsent = await store.pending_count()
            commit_s.sort()
            reply_s.sort()
            return {
                "transactions_per_message": (child.transactions - transactions) / count,
                "server_cpu_ms_per_message": 1e3 * (time.process_time() - parent) / count,
                "writer_cpu_ms_per_message": 1e3 * (cpu_seconds(child.pid) - writer) / count,
                "commit_p50_ms": 1e3 * percentile(commit_s, 50),
                "commit_p99_ms": 1e3 * percentile(commit_s, 99),
                "reply_p50_ms": 1e3 * percentile(reply_s, 50),
                "reply_p99_ms": 1e3 * percentile(reply_s, 99),
                "unsent": float(unsent),
            }
        finally:
            await store.close()


async def measure(
    messages: int = MESSAGES, rate: float = RATE, rounds: int = ROUNDS
) -> dict[str, float]:
    per_conversation = 5
    conversations = build_commits(-(-messages // per_conversation), per_conversation)
    # Round-robin, as the ingest benches send: a conversation's next message comes
    # `len(conversations) / rate` seconds after its last.
    commits = with_replies(
        [
            conversation[position]
            for position in range(per_conversation)
            for conversation in conversations
        ][:messages]
    )
    sides = {"linger": LINGER_S, "at_once": 0.0}
    rounds_of: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, linger_s in sides.items():
            rounds_of[name].append(await run(commits, linger_s, rate))
    results: dict[str, float] = {
        "outbox_linger_rate_per_s": rate,
        "outbox_linger_messages": float(messages),
        "outbox_linger_ms": 1e3 * LINGER_S,
        "outbox_linger_cpus": float(os.cpu_count() or 1),
    }
    for name, runs in rounds_of.items():
        for key in runs[0]:
            results[f"outbox_linger_{name}_{key}"] = statistics.median(r[key] for r in runs)
    for key in ("transactions_per_message", "server_cpu_ms_per_message"):
        results[f"outbox_linger_{key}_ratio"] = (
            results[f"outbox_linger_linger_{key}"] / results[f"outbox_linger_at_once_{key}"]
        )
    results["outbox_linger_writer_cpu_ratio"] = (
        results["outbox_linger_linger_writer_cpu_ms_per_message"]
        / results["outbox_linger_at_once_writer_cpu_ms_per_message"]
    )
    return results


def main() -> None:
    for key, value in asyncio.run(measure()).items():
        print(f"{key}: {value:,.2f}")


if __name__ == "__main__":
    main()
