"""Replay and fold of a generated store (issue 18, item 4), each beside a baseline from the
same run: reading the same events and inbounds from the store and decoding them, without
deciding (replay) or folding (fold).

The store is written through the real `SqliteStore.commit`: conversations of five prospect
messages decided under the default policy until the store holds `events` events. `salesbot replay` then re-decides every inbound
under its recorded policy; fold rebuilds each conversation's state from its events.

    python -m bench.replay [EVENTS]     (default 100,000; the issue's figure is 1,000,000)
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import tempfile
import time
from pathlib import Path

from pydantic import TypeAdapter

from bench.append import build_commits
from bot.cli import main as cli_main
from bot.policy_loader import load_policy
from domain.decide import new_conversation
from domain.inbound import Inbound
from domain.state import fold
from storage.ports import Commit
from storage.sqlite import SqliteStore

INBOUND: TypeAdapter[Inbound] = TypeAdapter(Inbound)
CHUNK = 200
MESSAGES = 5


async def generate(path: Path, events: int) -> tuple[int, int, int]:
    """(conversations, inbounds, events) written: conversations of five prospect messages,
    each decided for its own id (a reply's wording depends on it), committed 200 at once."""
    policy = load_policy("default")
    conversations = inbounds = written = 0
    async with await SqliteStore.open(path) as store:
        await store.put_policy(policy.version, policy.canonical_json())
        while written < events:
            chunk = build_commits(CHUNK, MESSAGES, first=conversations)

            async def one(conversation: list[Commit]) -> None:
                for commit in conversation:
                    await store.commit(commit)

            await asyncio.gather(*(one(conversation) for conversation in chunk))
            conversations += CHUNK
            inbounds += CHUNK * MESSAGES
            written += sum(len(c.events) for conversation in chunk for c in conversation)
    return conversations, inbounds, written


async def read_all(path: Path) -> tuple[float, float]:
    """(seconds to read and decode every conversation's events, the same plus inbounds)."""
    async with await SqliteStore.open(path) as store:
        ids = await store.conversation_ids()
        start = time.perf_counter()
        for conversation_id in ids:
            await store.load(conversation_id)
        events_only = time.perf_counter() - start
        start = time.perf_counter()
        for conversation_id in ids:
            for stored in await store.inbounds(conversation_id):
                INBOUND.validate_python(stored.inbound)
            await store.load(conversation_id)
        return events_only, time.perf_counter() - start


async def fold_all(path: Path) -> float:
    policy = load_policy("default")
    async with await SqliteStore.open(path) as store:
        ids = await store.conversation_ids()
        loaded = [await store.load(conversation_id) for conversation_id in ids]
    start = time.perf_counter()
    for conversation_id, envelopes in zip(ids, loaded, strict=True):
        fold(new_conversation(conversation_id, policy), envelopes)
    return time.perf_counter() - start


def replay_seconds(path: Path) -> float:
    os.environ["SALESBOT_DB"] = str(path)
    start = time.perf_counter()
    code = cli_main(["replay", "--json", "--fail-on-diff"], out=io.StringIO(), err=io.StringIO())
    elapsed = time.perf_counter() - start
    if code != 0:
        raise RuntimeError("the generated store does not replay with 0 differences")
    return elapsed


def measure(events: int = 100_000) -> dict[str, float]:
    """Synchronous: `salesbot replay` runs its own event loop."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "replay.db"
        start = time.perf_counter()
        conversations, inbounds, written = asyncio.run(generate(path, events))
        generated = time.perf_counter() - start
        read_events, read_both = asyncio.run(read_all(path))
        folded = asyncio.run(fold_all(path))
        replayed = replay_seconds(path)
    return {
        "replay_store_events": float(written),
        "replay_store_conversations": float(conversations),
        "replay_generate_s": generated,
        "replay_read_decode_events_per_s": written / read_events,
        "replay_read_decode_with_inbounds_events_per_s": written / read_both,
        "replay_fold_events_per_s": written / folded,
        "replay_events_per_s": written / replayed,
        "replay_inbounds_per_s": inbounds / replayed,
        "replay_vs_read_decode": read_both / replayed,
        "fold_vs_read_decode": read_events / folded,
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    for key, value in measure(count).items():
        print(f"{key}: {value:,.2f}")
