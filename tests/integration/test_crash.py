"""Kill -9 under load, restart, verify (RELIABILITY rule 6).

A subprocess drives inbounds through the runtime into SQLite and is killed with SIGKILL at
random points, five times, with SQLite's writer on its thread and in a process of its own
(which outlives the kill by the batches it still holds: the next run waits for its lock). Afterwards: every acknowledged delivery is stored exactly once,
no conversation has a sequence gap, the database passes its integrity check, and the outbox
resumes and drains.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.ports import Delivery, Sent
from bot.outbox_worker import OutboxWorker
from storage.sqlite import SqliteStore
from storage.sqlite_writer import WriterKind

ROOT = Path(__file__).resolve().parents[2]
KILLS = 5
PER_RUN = 400


def _acked(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line]


def _run_and_kill(db: Path, acks: Path, start: int, kill_after: int, writer: WriterKind) -> bool:
    """Start the driver; SIGKILL it once `kill_after` more acks are logged (or it finishes)."""
    before = len(_acked(acks))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.crash_driver",
            str(db),
            str(acks),
            str(start),
            str(PER_RUN),
            writer,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60  # a safety net against a hang, not a timing assertion
    while process.poll() is None and time.monotonic() < deadline:
        if len(_acked(acks)) - before >= kill_after:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait(timeout=30)
    assert process.returncode in (0, -signal.SIGKILL), (
        process.stderr.read().decode() if process.stderr else ""
    )
    return process.returncode == -signal.SIGKILL


class AcceptAll:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, delivery: Delivery) -> Sent:
        self.sent.append(delivery.key)
        return Sent(remote_id=delivery.key)

    async def find_sent(self, delivery: Delivery) -> str | None:
        return delivery.key if delivery.key in self.sent else None


async def _verify(db: Path, acked: set[str]) -> None:
    store = await SqliteStore.open(db)
    try:
        for delivery_id in acked:
            assert await store.seen(delivery_id), delivery_id
        stored = [s.delivery_id async for s in store.all_inbounds()]
        assert len(stored) == len(set(stored)), "a delivery was stored twice"
        assert acked <= set(stored)
        for conversation_id in await store.conversation_ids():
            seqs = [env.seq for env in await store.load(conversation_id)]
            assert seqs == list(range(1, len(seqs) + 1)), conversation_id
        sender = AcceptAll()
        # An hour after the crash: every lease the killed process held has expired.
        clock = iter(range(int(time.time() * 1000) + 3_600_000, 10**14))
        worker = OutboxWorker(
            store,
            lambda _c: sender,
            clock=lambda: next(clock),
            sleep=_no_wait,
            rng=random.Random(0),
            pacing_ms=lambda _c: 0,
            batch=500,
        )
        for _ in range(200):
            if await store.pending_count() == 0:
                break
            await worker.drain_once()
        assert await store.pending_count() == 0
        assert len(sender.sent) == len(set(sender.sent))
    finally:
        await store.close()


async def _no_wait(_seconds: float) -> None:
    return None


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_every_acknowledged_delivery_survives_kill_9_exactly_once(
    tmp_path: Path, writer: WriterKind
) -> None:
    db, acks = tmp_path / "crash.db", tmp_path / "acks.log"
    rng = random.Random(20261124)
    start, killed = 0, 0
    for _ in range(KILLS):
        killed += _run_and_kill(
            db, acks, start, kill_after=rng.randint(20, PER_RUN - 50), writer=writer
        )
        start += PER_RUN
    assert killed == KILLS, "the driver finished before it could be killed"
    acked = set(_acked(acks))
    assert len(acked) >= KILLS * 20
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    asyncio.run(_verify(db, acked))
