"""`salesbot replay` on its own: it starts without the chat surfaces and the runtime, reads
each recorded policy as the conversations that name it come up, and replayed by worker
processes (`--jobs`) it reports exactly what one process reports."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bot import cli_replay
from storage.sqlite import SqliteStore
from tests.bot.seeded_store import add_conversations, seeded_store_file
from tests.support.cli import run

ROOT = Path(__file__).resolve().parents[2]
NOT_FOR_REPLAY = ("bot.chat", "bot.surfaces", "bot.runtime", "slack_sdk", "simple_salesforce")


def test_replay_starts_without_the_chat_surfaces_the_runtime_or_the_crm_clients() -> None:
    probe = (
        f"import sys, bot.cli_replay; print([m for m in {NOT_FOR_REPLAY!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_recorded_policy_missing_from_the_store_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    path, _ = seeded_store_file(tmp_path, monkeypatch)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM policies")
    code, out, err = run("replay", "--json", "--jobs", jobs)
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "the store has no policy text for version" in err
    assert "Traceback" not in err


def test_replay_reads_every_recorded_policy_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded_store_file(tmp_path, monkeypatch)
    calls: list[str] = []
    original = SqliteStore.get_policy

    async def counted(self: SqliteStore, version: str) -> str | None:
        calls.append(version)
        return await original(self, version)

    monkeypatch.setattr(SqliteStore, "get_policy", counted)
    code, out, _ = run("replay", "--json", "--fail-on-diff")
    assert (code, json.loads(out)["differences"]) == (0, 0)
    assert calls
    assert len(calls) == len(set(calls))


STRICTER = 'extends = "default"\nunderstanding = false\n[scoring.bands]\nhot = 0.95\nwarm = 0.5\n'


@pytest.fixture
def many(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The seeded store (a lead with a quote, a visitor) with seven more conversations of
    three prospect messages and the visitor erased: enough conversations for several
    chunks per worker, each kind of outcome (replayed, re-derived after an erasure)."""
    path, _ = seeded_store_file(tmp_path, monkeypatch)

    add_conversations(path, 7, 3)
    assert run("erase", "dm-2")[0] == 0
    return path


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_replay_in_worker_processes_reports_byte_for_byte_what_one_process_does(
    many: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: str
) -> None:
    stricter = tmp_path / "stricter.toml"
    stricter.write_text(STRICTER, encoding="utf-8")
    # One thread lets the workers be forked; more make them spawned (`workers`).
    monkeypatch.setattr(threading, "active_count", lambda: 1 if start == "fork" else 2)
    every: tuple[list[str], ...] = (
        ["--json"],
        [],
        ["--policy", str(stricter)],
        ["--policy", str(stricter), "--json"],
    )
    # Spawned workers start a fresh interpreter each (about a second): fewer runs of those.
    for options in every if start == "fork" else every[2:]:
        serial = run("replay", "--fail-on-diff", *options, "--jobs", "1")
        assert serial[2] == ""
        for jobs in ("2", "3") if start == "fork" else ("2",):
            assert run("replay", "--fail-on-diff", *options, "--jobs", jobs) == serial
    code, out, _ = run(
        "replay", "--policy", str(stricter), "--json", "--fail-on-diff", "--jobs", "2"
    )
    report = json.loads(out)
    assert code == 1
    assert report["differences"] > 0
    assert report["conversations"] == 8
    assert report["erased"] == ["dm-2"]
    assert len({d["conversation_id"] for d in report["diffs"]}) > 2


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_of_a_parallel_replay_reaches_every_conversation(many: Path) -> None:
    args = argparse.Namespace(policy=None, json=True, fail_on_diff=True, jobs=2)
    out, err = io.StringIO(), Terminal()
    assert asyncio.run(cli_replay.replay(args, out, err)) == 0
    assert err.getvalue().endswith("replaying [##############################] 9/9\n")
    assert json.loads(out.getvalue())["differences"] == 0


@pytest.mark.parametrize("jobs", ["-1", "two", "1.5"])
def test_a_bad_number_of_jobs_is_a_usage_error(many: Path, jobs: str) -> None:
    code, out, err = run("replay", "--jobs", jobs)
    assert code == 2
    assert out == ""
    assert "--jobs: expected a whole number of 0 or more" in err
    assert "Traceback" not in err


def test_jobs_0_means_one_worker_per_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_replay, "available_cpus", lambda: 6)
    assert cli_replay.jobs_wanted(0) == 6
    assert cli_replay.jobs_wanted(3) == 3
