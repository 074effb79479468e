"""Cost growth (issue 18, item 5): what one more message, `/metrics` and resident memory cost
as the store grows, each at a small store and a large one in the same run.

The store is SQLite (WAL, `synchronous=FULL`, as `salesbot serve` opens it). It grows in
conversations of 14 events — a lead arriving and the prospect's first message, decided by
the real `decide` under the default policy (`bench.queries.template`) and committed once
through `SqliteStore.commit` as a template. Every further conversation is that template's
stored rows cloned at the SQL level (`clone`): each table's rows of the template, the
conversation id and quote id rewritten, a fresh conversation key, every sealed value
re-encrypted under it (so each clone opens, loads and folds like the template) and each
event's hash-chain link recomputed from its stored bytes — about a million events in tens
of seconds instead of the minutes `commit` takes one decision at a time.

Measured, at 1k events and again at `--events` (default 1,000,000):
- per-message latency through the runtime (`Runtime.handle`: the conversation loaded from
  the store, `decide`, the durable commit), one message at a time into conversations picked
  at random, so none is in the state cache: p50, p90, p99, mean;
- `/metrics`: the answer (`bot.queries.load_metrics` and its rendering; `bench.queries` has
  the earlier full-scan baseline up to 100k events) and its acknowledgement through the
  runtime;

then, with `--conversations` (default 100,000) in the store, resident memory of a fresh
process holding the runtime on that store, before and after `--active` (default 10,000) of
them each received a message (their states in the runtime's cache), beside the bare
interpreter's and the process's own after imports.

    python -m bench.growth [--events 1000000] [--conversations 100000] [--active 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.ports import Store

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "growthtemplate00"
TEMPLATE_QUOTE = "Q-ffffffffff"
GROUPS = 2  # the lead and the prospect's first message
CHUNK = 2_000  # conversations per transaction while cloning
SAMPLES = 200
WARM = 20


def _clone_id(n: int) -> str:
    return f"g{n:09d}"


def _quote_id(n: int) -> str:
    return f"Q-{n:010x}"


async def write_template(path: Path) -> int:
    """Commit the template conversation through the store; its event count."""
    from bench.queries import template
    from bot.policy_loader import load_policy
    from domain.events import QuoteIssued
    from storage.ports import Commit
    from storage.sqlite import SqliteStore

    policy = load_policy("default")
    groups = template(policy)[:GROUPS]
    async with await SqliteStore.open(path) as store:
        await store.put_policy(policy.version, policy.canonical_json())
        version = 0
        for i, group in enumerate(groups):
            events = []
            for env in group:
                event = env.event
                if isinstance(event, QuoteIssued):
                    quote = event.quote.model_copy(update={"quote_id": TEMPLATE_QUOTE})
                    event = event.model_copy(update={"quote": quote})
                events.append(env.model_copy(update={"conversation_id": TEMPLATE, "event": event}))
            await store.commit(
                Commit(
                    conversation_id=TEMPLATE,
                    expected_version=version,
                    delivery_id=f"{TEMPLATE}-{i}",
                    received_at_ms=group[0].at_ms,
                    policy_version=policy.version,
                    inbound=None,
                    events=tuple(events),
                )
            )
            version += len(events)
    return version


class Cloner:
    """The template's rows in every table that holds a conversation, ready to copy."""

    TABLES = (
        "streams",
        "events",
        "deliveries",
        "projection_streams",
        "quote_index",
        "timers",
        "conversation_keys",
    )

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        for table in self.TABLES:
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            keys = [(name, kind) for _cid, name, kind, _null, _default, pk in info if pk]
            rowid = keys[0][0] if len(keys) == 1 and keys[0][1].upper() == "INTEGER" else None
            # The rowid alias (`id`, `position`) is left for SQLite to number.
            columns = [name for _cid, name, *_rest in info if name != rowid]
            found = conn.execute(
                f"SELECT {', '.join(columns)} FROM {table} WHERE conversation_id = ?",
                (TEMPLATE,),
            ).fetchall()
            self.rows[table] = (columns, found)
        (key_id, key) = conn.execute(
            "SELECT key_id, key FROM conversation_keys WHERE conversation_id = ?", (TEMPLATE,)
        ).fetchone()
        self.key_id = int(key_id)
        columns, events = self.rows["events"]
        self.envelope_at = columns.index("envelope")
        self.chain_at = columns.index("chain_hash")
        self.seq_at = columns.index("seq")
        self.events = sorted(events, key=lambda row: int(row[self.seq_at]))
        self.rows["events"] = (columns, self.events)
        # Where each template row holds an id to rewrite (text columns naming it).
        self.ids = {
            table: [
                tuple(
                    i
                    for i, value in enumerate(row)
                    if isinstance(value, str) and (TEMPLATE in value or TEMPLATE_QUOTE in value)
                )
                for row in rows
            ]
            for table, (_columns, rows) in self.rows.items()
        }
        self.ids["events"] = [  # the envelope is rewritten on its own (sealed values)
            tuple(i for i in at if i != self.envelope_at) for at in self.ids["events"]
        ]
        self.sealed: list[tuple[str, bytes] | None] = []
        for row in self.events:
            self.sealed.append(self._opened(row, bytes(key)))

    def _opened(self, row: tuple[Any, ...], key: bytes) -> tuple[str, bytes] | None:
        """(the sealed string as stored, its plaintext) of an event with personal values."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        from storage.sealing import NONCE_BYTES, SEALED_FIELD, event_aad

        sealed = json.loads(row[self.envelope_at]).get(SEALED_FIELD)
        if sealed is None:
            return None
        raw = base64.b64decode(sealed.partition(":")[2])
        aad = event_aad(TEMPLATE, int(row[self.seq_at]))
        return sealed, AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)

    def rows_of(self, n: int) -> Iterator[tuple[str, list[str], list[tuple[Any, ...]]]]:
        """Clone `n`'s rows, table by table."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        from domain.chain import GENESIS, link
        from storage.sealing import NONCE_BYTES, event_aad, new_key

        cid, quote = _clone_id(n), _quote_id(n)
        key = new_key()
        cipher = AESGCM(key)

        def swap(value: str) -> str:
            return value.replace(TEMPLATE, cid).replace(TEMPLATE_QUOTE, quote)

        def swapped(row: tuple[Any, ...], at: tuple[int, ...]) -> list[Any]:
            copy = list(row)
            for i in at:
                copy[i] = swap(copy[i])
            return copy

        for table, (columns, rows) in self.rows.items():
            if table == "events":
                continue
            copies = [swapped(row, self.ids[table][i]) for i, row in enumerate(rows)]
            if table == "conversation_keys":
                at = columns.index("key")
                for copy in copies:
                    copy[at] = key
            yield table, columns, [tuple(copy) for copy in copies]
        previous = GENESIS
        events = []
        for i, (event, sealed) in enumerate(zip(self.events, self.sealed, strict=True)):
            text = event[self.envelope_at]
            if sealed is None:
                text = swap(text)
            else:
                stored, plain = sealed
                plain = plain.replace(TEMPLATE.encode(), cid.encode()).replace(
                    TEMPLATE_QUOTE.encode(), quote.encode()
                )
                nonce = os.urandom(NONCE_BYTES)
                body = cipher.encrypt(nonce, plain, event_aad(cid, int(event[self.seq_at])))
                fresh = f"k{self.key_id}:{base64.b64encode(nonce + body).decode('ascii')}"
                text = swap(text.replace(stored, "\x00")).replace("\x00", fresh)
            previous = link(previous, text)
            cloned = swapped(event, self.ids["events"][i])
            cloned[self.envelope_at] = text
            cloned[self.chain_at] = previous
            events.append(tuple(cloned))
        yield "events", self.rows["events"][0], events


def clone(path: Path, first: int, count: int) -> float:
    """Clones `first` … `first + count - 1` of the template, `CHUNK` per transaction;
    returns the seconds it took."""
    start = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # generating, not measuring
        cloner = Cloner(conn)
        for low in range(first, first + count, CHUNK):
            batches: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
            for n in range(low, min(low + CHUNK, first + count)):
                for table, columns, rows in cloner.rows_of(n):
                    batches.setdefault(table, (columns, []))[1].extend(rows)
            conn.execute("BEGIN")
            for table in Cloner.TABLES:  # streams first: events reference them
                if table not in batches:
                    continue
                columns, rows = batches[table]
                marks = ", ".join("?" for _ in columns)
                conn.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
                )
            conn.execute("COMMIT")
        # The clones' share of the counters /metrics reads, as a commit would have added it.
        from storage.sqlite_projections import recount

        conn.execute("BEGIN")
        recount(conn)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return time.perf_counter() - start


def counts(path: Path) -> tuple[int, int]:
    """(conversations, events) in the store."""
    with sqlite3.connect(path) as conn:
        (streams,) = conn.execute("SELECT COUNT(*) FROM streams").fetchone()
        (events,) = conn.execute("SELECT MAX(position) FROM events").fetchone()
    return int(streams), int(events)


async def per_message(path: Path, label: str, conversations: int) -> dict[str, float]:
    """Per-message latency and `/metrics` at the SQLite store's current size."""
    from storage.sqlite import SqliteStore

    async with await SqliteStore.open(path) as store:
        return await per_message_on(store, label, conversations)


async def per_message_on(store: Store, label: str, conversations: int) -> dict[str, float]:
    """Per-message latency and `/metrics` on an open store (any backend; `bench.growth_pg`
    runs it on PostgreSQL too) holding `conversations` clones."""
    from bench.queries import REP, ToRequester
    from bot.clock import system_now_ms
    from bot.policy_loader import load_policy
    from bot.queries import load_metrics, query_answerer
    from bot.runtime import Runtime
    from domain.analytics import render_metrics
    from domain.inbound import Actor, CommandInvoked, MessagePosted

    policy = load_policy("default")
    prospect = Actor(id="P", name="Pat", role="prospect")
    rng = random.Random(label)
    picks = rng.sample(range(1, conversations), min(conversations - 1, SAMPLES + WARM))
    results: dict[str, float] = {}
    deliveries = itertools.count()
    runtime = Runtime(
        store, policy, ToRequester(), clock=system_now_ms, answer_query=query_answerer(policy)
    )
    await runtime.start()
    latencies = []
    for i, n in enumerate(picks):
        inbound = MessagePosted(
            delivery_id=f"growth-{label}-{next(deliveries)}",
            conversation_id=_clone_id(n),
            actor=prospect,
            text="We are a team of 40 and want to start next month",
        )
        start = time.perf_counter()
        await runtime.handle(inbound)
        if i >= WARM:
            latencies.append(time.perf_counter() - start)
    latencies.sort()
    results[f"growth_message_ms_p50_{label}"] = 1000 * statistics.median(latencies)
    results[f"growth_message_ms_p90_{label}"] = 1000 * latencies[int(0.9 * len(latencies))]
    results[f"growth_message_ms_p99_{label}"] = 1000 * latencies[int(0.99 * len(latencies))]
    results[f"growth_message_ms_mean_{label}"] = 1000 * statistics.fmean(latencies)
    results[f"growth_message_samples_{label}"] = float(len(latencies))

    async def answer() -> None:
        render_metrics(await load_metrics(store, policy))

    async def ack() -> None:
        await runtime.handle(
            CommandInvoked(
                delivery_id=f"growth-{label}-{next(deliveries)}",
                conversation_id="rep-dm",
                actor=REP,
                command="metrics",
                args="",
            )
        )

    # The answer is a few ms since the counters (issue 17, item 5): best and median of 15
    # rounds, where best of 3 was enough for the hundreds of ms of the per-row read.
    for name, run, rounds in (("metrics_answer", answer, 15), ("metrics_ack", ack, 3)):
        took = []
        for _ in range(rounds):
            start = time.perf_counter()
            await run()
            took.append(time.perf_counter() - start)
            await runtime.settled()
        results[f"growth_{name}_ms_{label}"] = 1000 * min(took)
        if rounds > 3:
            results[f"growth_{name}_ms_median_{label}"] = 1000 * statistics.median(took)
    await runtime.settled()
    return results


async def _probe(path: Path, active: int, batch: int = 50) -> dict[str, float]:
    """In a fresh process: RSS at start, after imports and the runtime's start on the
    store, and after `active` conversations each got a message."""
    from bench import proc

    pid = os.getpid()
    figures = {"rss_interpreter_mb": proc.rss_bytes(pid) / 2**20}
    from bench.queries import ToRequester
    from bot.clock import system_now_ms
    from bot.policy_loader import load_policy
    from bot.runtime import Runtime
    from domain.inbound import Actor, MessagePosted
    from storage.sqlite import SqliteStore

    policy = load_policy("default")
    prospect = Actor(id="P", name="Pat", role="prospect")
    async with await SqliteStore.open(path) as store:
        runtime = Runtime(store, policy, ToRequester(), clock=system_now_ms)
        await runtime.start()
        conversations = len(await store.conversation_ids())
        figures["rss_ready_mb"] = proc.rss_bytes(pid) / 2**20
        picks = random.Random(0).sample(range(1, conversations), min(active, conversations - 1))
        start = time.perf_counter()
        for low in range(0, len(picks), batch):
            await asyncio.gather(
                *(
                    runtime.handle(
                        MessagePosted(
                            delivery_id=f"active-{n}",
                            conversation_id=_clone_id(n),
                            actor=prospect,
                            text="Can you send pricing for the pro plan?",
                        )
                    )
                    for n in picks[low : low + batch]
                )
            )
        figures["active_seconds"] = time.perf_counter() - start
        figures["rss_active_mb"] = proc.rss_bytes(pid) / 2**20
        figures["state_cache_entries"] = float(len(runtime.state_cache))
        figures["conversations"] = float(conversations)
        figures["active"] = float(len(picks))
        await runtime.settled()
    return figures


def rss(path: Path, active: int) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.growth", "--probe", str(path), "--active", str(active)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures: dict[str, float] = json.loads(output.splitlines()[-1])
    return {f"growth_{key}": value for key, value in figures.items()}


def measure(
    events: int = 1_000_000, conversations: int = 100_000, active: int = 10_000
) -> dict[str, float]:
    from bench import proc

    results: dict[str, float] = {"growth_load_average_1m_start": proc.load_average()[0]}
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "growth.db"
        per = asyncio.run(write_template(path))
        results["growth_events_per_conversation"] = float(per)
        have = 1
        for size, label in ((1_000, "1k"), (events, f"{events // 1000}k")):
            wanted = max(-(-size // per), 2)
            took = clone(path, have, wanted - have)
            results[f"growth_generate_{label}_events_per_s"] = (wanted - have) * per / took
            have = wanted
            stored_conversations, stored_events = counts(path)
            results[f"growth_stored_events_{label}"] = float(stored_events)
            results.update(asyncio.run(per_message(path, label, stored_conversations)))
        if conversations > have:
            clone(path, have, conversations - have)
        stored_conversations, stored_events = counts(path)
        results["growth_rss_store_events"] = float(stored_events)
        results["growth_rss_store_mb"] = path.stat().st_size / 2**20
        results.update(rss(path, active))
    big = f"{events // 1000}k"
    results["growth_message_p50_big_vs_1k"] = (
        results[f"growth_message_ms_p50_{big}"] / results["growth_message_ms_p50_1k"]
    )
    results["growth_message_mean_big_vs_1k"] = (
        results[f"growth_message_ms_mean_{big}"] / results["growth_message_ms_mean_1k"]
    )
    results["growth_metrics_answer_big_vs_1k"] = (
        results[f"growth_metrics_answer_ms_{big}"] / results["growth_metrics_answer_ms_1k"]
    )
    results["growth_metrics_ack_big_vs_1k"] = (
        results[f"growth_metrics_ack_ms_{big}"] / results["growth_metrics_ack_ms_1k"]
    )
    results["growth_load_average_1m_end"] = proc.load_average()[0]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.growth")
    parser.add_argument("--events", type=int, default=1_000_000, help="the large store's size")
    parser.add_argument("--conversations", type=int, default=100_000, help="for the RSS figure")
    parser.add_argument("--active", type=int, default=10_000, help="conversations given a message")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)  # the RSS subprocess
    options = parser.parse_args(argv)
    if options.probe is not None:
        print(json.dumps(asyncio.run(_probe(options.probe, options.active))))
        return 0
    for key, value in measure(options.events, options.conversations, options.active).items():
        print(f"{key:48} {value:14,.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
