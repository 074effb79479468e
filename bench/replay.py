"""Replay and fold of a generated store (issue 18, item 4), each beside a baseline from the
same run: reading the same events (and, for replay, the inbounds) from the store and
decoding them, without deciding (replay) or folding (fold).

The store is written through the real `SqliteStore.commit`: conversations of five prospect
messages decided under the default policy until the store holds `events` events. Then, in
one process, each figure in CPU time (`time.process_time`, the store's reader thread
included: the machines these run on are shared, and wall time there measures the
neighbours), the best of `--repeat` runs:

* `read`: every conversation's events read and decoded (`store.load`) — the baseline;
* `read_inbounds`: the same plus each conversation's inbounds, validated (what replay read
  until it read the store in batches);
* `read_batched`: the same events and inbounds read in one pass (`Store.replay_logs`, 200
  conversations a query), every event decoded — the baseline for replay's own read;
* `read_replay_decodes`: that pass as replay makes it, decoding only the event types it
  compares or hands back to `decide` (`domain.replay.REPLAY_DECODES`);
* `fold`: each conversation's state rebuilt from its decoded events (`domain.state.fold`);
* `read_fold`: both, from the store to the states (what a cache miss costs the runtime);
* `replay`: `salesbot replay --json --fail-on-diff` in this process (every inbound
  re-decided under its recorded policy and compared), its imports done beforehand;
* `replay_decide_compare`: the same deciding and comparing (`domain.replay`) from inbounds
  and events decoded beforehand, best of `--repeat` after a warm-up: replay's own share,
  without the store;
* `command_jobs1` and `command_jobsN`: the whole command as an operator runs it, a new
  process with its start-up, with `--jobs 1` and `--jobs N` (`--jobs`, default 2): CPU
  time of the process and its workers (their resource usage once they are waited for)
  and wall time, alternated, best of `--repeat` each.

    python -m bench.replay [EVENTS] [--store PATH] [--repeat N] [--jobs N]

EVENTS defaults to 100,000 (the issue's figure is 1,000,000). `--store PATH` reuses a store
this wrote before (or writes it there first), so two versions of the code can be measured
on the same store, alternated.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import TypeAdapter

from bench.append import build_commits
from bot.cli import main as cli_main
from bot.policy_loader import load_policy
from domain.decide import new_conversation
from domain.events import EventEnvelope
from domain.inbound import Inbound
from domain.policy import Policy, policy_from_json
from domain.replay import REPLAY_DECODES, RecordedInbound, replay_conversation
from domain.state import ConversationState, fold
from storage.ports import Commit, Store
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


async def _read(path: Path, *, inbounds: bool, fold_too: bool) -> float:
    """CPU seconds to read (and decode) every conversation's events, with its inbounds or
    folding its state as asked; nothing read is kept past its conversation."""
    policy = load_policy("default")
    async with await SqliteStore.open(path) as store:
        ids = await store.conversation_ids()
        start = time.process_time()
        for conversation_id in ids:
            envelopes = await store.load(conversation_id)
            if inbounds:
                for stored in await store.inbounds(conversation_id):
                    INBOUND.validate_python(stored.inbound)
            if fold_too:
                fold(new_conversation(conversation_id, policy), envelopes)
        return time.process_time() - start


async def read_logs(store: Store, *, replay_decodes: bool) -> int:
    """Read every conversation's events and inbounds in one pass (`replay_logs`), the
    inbounds validated, every event decoded or only those replay reads; nothing kept past
    its conversation. The conversations read."""
    ids = await store.conversation_ids()
    decode = REPLAY_DECODES if replay_decodes else None
    async for log in store.replay_logs(ids, decode=decode):
        for stored in log.inbounds:
            INBOUND.validate_python(stored.inbound)
    return len(ids)


async def _read_batched(path: Path, *, replay_decodes: bool) -> float:
    """CPU seconds of `read_logs` on the SQLite store at `path`."""
    async with await SqliteStore.open(path) as store:
        start = time.process_time()
        await read_logs(store, replay_decodes=replay_decodes)
        return time.process_time() - start


def _command(path: Path, jobs: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of `salesbot replay --json --fail-on-diff --jobs N` as a
    new process: its start-up, its reads and its workers included."""
    code = "import sys; from bot.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "replay", "--json", "--fail-on-diff", "--jobs", str(jobs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        argv, env={**os.environ, "SALESBOT_DB": str(path)}, capture_output=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"replay --jobs {jobs} failed: {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def _commands(path: Path, repeat: int, jobs: int) -> dict[int, tuple[float, float]]:
    """The best CPU and the best wall time of the command with `--jobs 1` and `--jobs N`,
    alternated."""
    best: dict[int, tuple[float, float]] = {}
    for _ in range(repeat):
        for n in (1, jobs):
            cpu, wall = _command(path, n)
            old = best.get(n, (float("inf"), float("inf")))
            best[n] = (min(old[0], cpu), min(old[1], wall))
    return best


async def _decoded(path: Path) -> tuple[list[ConversationState], list[list[EventEnvelope]]]:
    policy = load_policy("default")
    async with await SqliteStore.open(path) as store:
        ids = await store.conversation_ids()
        logs = [await store.load(conversation_id) for conversation_id in ids]
    return [new_conversation(conversation_id, policy) for conversation_id in ids], logs


def _fold_seconds(path: Path, repeat: int) -> float:
    """The best of `repeat` folds of every conversation, its events decoded beforehand."""
    starts, logs = asyncio.run(_decoded(path))
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for state, envelopes in zip(starts, logs, strict=True):
            fold(state, envelopes)
        best = min(best, time.process_time() - start)
    return best


async def _recorded(
    path: Path,
) -> tuple[list[tuple[str, list[RecordedInbound], list[EventEnvelope]]], dict[str, Policy]]:
    """Every conversation's inbounds and events, decoded, with the policies they recorded."""
    async with await SqliteStore.open(path) as store:
        ids = await store.conversation_ids()
        conversations = []
        texts: dict[str, str] = {}
        for conversation_id in ids:
            stored = await store.inbounds(conversation_id)
            for item in stored:
                if item.policy_version not in texts:
                    text = await store.get_policy(item.policy_version)
                    if text is None:
                        raise RuntimeError(f"no policy text for {item.policy_version[:12]}")
                    texts[item.policy_version] = text
            recorded = [
                RecordedInbound(
                    inbound=INBOUND.validate_python(item.inbound),
                    received_at_ms=item.received_at_ms,
                    policy_version=item.policy_version,
                )
                for item in stored
            ]
            conversations.append((conversation_id, recorded, await store.load(conversation_id)))
    return conversations, {version: policy_from_json(text) for version, text in texts.items()}


def _decide_seconds(path: Path, repeat: int) -> float:
    """The best of `repeat` replays of every conversation (`domain.replay`: each inbound
    re-decided under its recorded policy and compared) from inbounds and events decoded
    beforehand: what replay costs beyond reading the store."""
    conversations, policies = asyncio.run(_recorded(path))
    best = float("inf")
    for _ in range(repeat + 1):  # the first warms the policies' tables
        start = time.process_time()
        differences = sum(
            len(replay_conversation(cid, recorded, events, policies.__getitem__).differences)
            for cid, recorded, events in conversations
        )
        best = min(best, time.process_time() - start)
        if differences:
            raise RuntimeError("the generated store does not replay with 0 differences")
    return best


def replay_in_process(database: str) -> None:
    """`salesbot replay --json --fail-on-diff` in this process on `database` (a SQLite
    path or a PostgreSQL URL, as `SALESBOT_DB` takes it); raises unless 0 differences."""
    os.environ["SALESBOT_DB"] = database
    code = cli_main(["replay", "--json", "--fail-on-diff"], out=io.StringIO(), err=io.StringIO())
    if code != 0:
        raise RuntimeError(f"the store at {database} does not replay with 0 differences")


def _replay_seconds(path: Path) -> float:
    start = time.process_time()
    replay_in_process(str(path))
    return time.process_time() - start


def _best(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


async def _counts(path: Path) -> tuple[int, int, int]:
    async with await SqliteStore.open(path) as store:
        ids = await store.conversation_ids()
        events = inbounds = 0
        for conversation_id in ids:
            events += len(await store.load(conversation_id))
            inbounds += len(await store.inbounds(conversation_id))
    return len(ids), inbounds, events


def measure_store(path: Path, repeat: int = 2, jobs: int = 2) -> dict[str, float]:
    """Every figure on the store at `path`. Synchronous: `salesbot replay` runs its own
    event loop."""
    conversations, inbounds, events = asyncio.run(_counts(path))
    import bot.cli_replay  # noqa: F401  (the command's imports, outside its timing)

    read = _best(repeat, lambda: asyncio.run(_read(path, inbounds=False, fold_too=False)))
    read_inbounds = _best(repeat, lambda: asyncio.run(_read(path, inbounds=True, fold_too=False)))
    read_batched = _best(repeat, lambda: asyncio.run(_read_batched(path, replay_decodes=False)))
    read_replay = _best(repeat, lambda: asyncio.run(_read_batched(path, replay_decodes=True)))
    folded = _fold_seconds(path, repeat * 3)
    read_fold = _best(repeat, lambda: asyncio.run(_read(path, inbounds=False, fold_too=True)))
    replayed = _best(repeat, lambda: _replay_seconds(path))
    decided = _decide_seconds(path, repeat)
    commands = _commands(path, repeat, jobs)
    (cpu_1, wall_1), (cpu_n, wall_n) = commands[1], commands[jobs]
    return {
        "replay_store_events": float(events),
        "replay_store_conversations": float(conversations),
        "replay_store_inbounds": float(inbounds),
        "replay_read_decode_events_per_s": events / read,
        "replay_read_decode_with_inbounds_events_per_s": events / read_inbounds,
        "replay_read_batched_events_per_s": events / read_batched,
        "replay_read_replay_decodes_events_per_s": events / read_replay,
        "replay_fold_events_per_s": events / folded,
        "replay_read_fold_events_per_s": events / read_fold,
        "replay_events_per_s": events / replayed,
        "replay_inbounds_per_s": inbounds / replayed,
        "replay_decide_compare_events_per_s": events / decided,
        "replay_decide_compare_us_per_inbound": decided / inbounds * 1e6,
        "replay_command_jobs1_cpu_events_per_s": events / cpu_1,
        "replay_command_jobs1_wall_events_per_s": events / wall_1,
        f"replay_command_jobs{jobs}_cpu_events_per_s": events / cpu_n,
        f"replay_command_jobs{jobs}_wall_events_per_s": events / wall_n,
        "fold_vs_read_decode": read / folded,
        "replay_vs_read_decode": read_inbounds / replayed,
        "replay_vs_read_batched": read_batched / replayed,
        f"replay_jobs{jobs}_wall_vs_jobs1": wall_1 / wall_n,
    }


def measure(
    events: int = 100_000, store: Path | None = None, repeat: int = 2, jobs: int = 2
) -> dict[str, float]:
    """Write a store of `events` events (at `store` unless it exists; else a temporary one)
    and measure it."""
    if store is not None:
        if not store.exists():
            asyncio.run(generate(store, events))
        return measure_store(store, repeat, jobs)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "replay.db"
        start = time.perf_counter()
        asyncio.run(generate(path, events))
        generated = time.perf_counter() - start
        return {"replay_generate_s": generated, **measure_store(path, repeat, jobs)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__)
    parser.add_argument("events", nargs="?", type=int, default=100_000)
    parser.add_argument("--store", type=Path, help="the store to measure (written first if absent)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure (the best counts)")
    parser.add_argument("--jobs", type=int, default=2, help="workers of the parallel replay")
    args = parser.parse_args()
    for key, value in measure(args.events, args.store, args.repeat, args.jobs).items():
        print(f"{key}: {value:,.2f}")


if __name__ == "__main__":
    main()
