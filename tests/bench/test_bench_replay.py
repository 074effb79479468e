"""The replay bench's store is a real store (issue 18, item 4): written through the store's
commit, it replays with 0 differences, and what the bench counts is what it holds. The
bench's timings themselves are not run here."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bench.replay import _counts, generate
from tests.support.cli import run


def test_the_replay_benchs_store_replays_with_no_differences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "replay.db"
    conversations, inbounds, events = asyncio.run(generate(path, 300))
    assert asyncio.run(_counts(path)) == (conversations, inbounds, events)
    assert events >= 300
    monkeypatch.setenv("SALESBOT_DB", str(path))
    code, out, _ = run("replay", "--json", "--fail-on-diff")
    report = json.loads(out)
    assert (code, report["differences"]) == (0, 0)
    assert (report["conversations"], report["inbounds"]) == (conversations, inbounds)
