"""`salesbot serve` as an operator runs it: a subprocess on a free port, answering the
operator routes, and stopping cleanly on SIGTERM — or on Ctrl-C, which a terminal sends to
the whole process group, SQLite's writer process included."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_starts_answers_health_checks_and_stops_cleanly(
    tmp_path: Path, stop: signal.Signals
) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SALESBOT_DB": str(tmp_path / "serve.db"),
        "SALESBOT_ENV_FILE": os.devnull,  # never a developer's .env
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,  # its own group, as a terminal's foreground job
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # printed once the socket is listening
        match = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        assert match, first + (process.stderr.read() if process.stderr else "")
        base = f"http://127.0.0.1:{match.group(1)}"
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:
            assert json.load(response)["status"] == "ok"
        with urllib.request.urlopen(f"{base}/readyz", timeout=10) as response:
            assert json.load(response)["status"] == "ready"
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            assert b"salesbot_outbox_pending" in response.read()
        writers = children(process.pid)
        assert [argv[1:4] for argv in writers.values()] == [["-P", "-m", "storage.sqlite_child"]]
        os.killpg(process.pid, stop)
        assert process.wait(timeout=30) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in writers)
        assert process.stderr is not None
        assert "Traceback" not in process.stderr.read()
        # Closed cleanly: the last connection checkpointed and removed the write-ahead log.
        assert (tmp_path / "serve.db").exists()
        assert not (tmp_path / "serve.db-wal").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def children(parent: int) -> dict[int, list[str]]:
    """The processes whose parent is `parent`, with their command lines (from /proc)."""
    found: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == parent:
                argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
                found[int(stat.parent.name)] = [part.decode() for part in argv if part]
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    return found
