"""Servers as real subprocesses on 127.0.0.1 (a free port each), for the whole-product benches:
`salesbot serve` and the frameworks' bare baselines, each printing the URL it listens on as
its first line, its log going to a file (a pipe nobody reads would fill and stall it)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import proc

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 180.0


def base_env(db: Path) -> dict[str, str]:
    """Embedded defaults (no `.env`), a database of the bench's own, the caller's PATH."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SALESBOT_ENV_FILE": os.devnull,
        "SALESBOT_DB": str(db),
    }


def salesbot_serve() -> list[str]:
    """`python -m bot serve` on a free loopback port."""
    return [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"]


class Server:
    """One server process; `pid` for /proc, `base_url` once it listens."""

    def __init__(self, process: asyncio.subprocess.Process, base_url: str, log: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.log = log
        self.pid = process.pid

    @classmethod
    async def start(
        cls, argv: Sequence[str], env: Mapping[str, str], log: Path, *, cwd: Path = ROOT
    ) -> Server:
        with log.open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=dict(env),
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        assert process.stdout is not None
        try:
            first = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            first = b""
        match = re.search(r"http://127\.0\.0\.1:(\d+)", first.decode())
        if match is None:
            process.kill()
            await process.wait()
            raise RuntimeError(f"{argv} did not start: {first!r}\n{log.read_text()[-2000:]}")
        return cls(process, f"http://127.0.0.1:{match.group(1)}", log)

    def sample(self) -> proc.Sample:
        return proc.sample(self.pid)

    async def stop(self) -> int:
        """SIGTERM, then wait (the server finishes its requests and its outbox's sends)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout=60)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        code = self.process.returncode
        assert code is not None
        return code


async def loadgen(
    job: Mapping[str, Any],
    server: Server | None = None,
    on_start: Callable[[], object] | None = None,
) -> tuple[dict[str, Any], proc.Sample | None, proc.Sample | None]:
    """Run `bench.loadgen` in its own process; with `server`, sample it when the measured
    part starts and ends (the generator says when on its stdout), and call `on_start`
    then."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.loadgen",
        json.dumps(dict(job)),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    before = after = None
    result: dict[str, Any] | None = None
    async for line in process.stdout:
        message = json.loads(line)
        if message.get("event") == "start":
            before = server.sample() if server else None
            if on_start is not None:
                on_start()
        elif message.get("event") == "end":
            after = server.sample() if server else None
        else:
            result = message
    await process.wait()
    if result is None or process.returncode != 0:
        raise RuntimeError(f"the load generator failed ({process.returncode})")
    return result, before, after


def outbox_counts(db: Path) -> dict[str, int]:
    """Outbox items by status, read as an operator's sqlite3 would."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall()
    counts = {"pending": 0, "in_flight": 0, "sent": 0, "dead": 0}
    counts.update({str(status): int(n) for status, n in rows})
    return counts
