"""`salesbot replay` on its own: it starts without the chat surfaces and the runtime, and
reads each recorded policy as the conversations that name it come up."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from storage.sqlite import SqliteStore
from tests.bot.seeded_store import seeded_store_file
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


def test_a_recorded_policy_missing_from_the_store_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = seeded_store_file(tmp_path, monkeypatch)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM policies")
    code, out, err = run("replay", "--json")
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
