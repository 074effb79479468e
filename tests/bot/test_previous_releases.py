"""Old decisions stay reproducible: a store written by an earlier release replays with 0
differences under the policies it recorded, whatever this release changed."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from bot.cli import main

STORES = sorted((Path(__file__).parents[1] / "fixtures" / "stores").glob("release-*.db"))


@pytest.mark.parametrize("fixture", STORES, ids=[path.stem for path in STORES])
def test_a_store_from_an_earlier_release_replays_with_no_differences(
    fixture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "store.db"
    shutil.copy(fixture, db)  # replay opens the store; the fixture itself stays untouched
    monkeypatch.setenv("SALESBOT_DB", str(db))
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    code = main(["replay", "--json", "--fail-on-diff"])
    report = json.loads(out.getvalue())
    assert report["inbounds"] >= 40
    assert report["differences"] == 0, report["diffs"]
    assert code == 0


def test_there_is_a_store_from_an_earlier_release() -> None:
    assert STORES, "tests/fixtures/stores must hold at least one earlier release's store"


@pytest.mark.parametrize("fixture", STORES, ids=[path.stem for path in STORES])
def test_a_store_from_an_earlier_release_verifies_clean_once_migrated(
    fixture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Opening it links its events (migration 7); then every chain holds and every
    # decision replays under its recorded policy.
    db = tmp_path / "store.db"
    shutil.copy(fixture, db)
    monkeypatch.setenv("SALESBOT_DB", str(db))
    out = io.StringIO()
    code = main(["verify", "--json"], out=out, err=io.StringIO())
    report = json.loads(out.getvalue())
    assert report["findings"] == []
    assert (code, report["problems"], report["replay_skipped"]) == (0, 0, [])
    assert report["events"] >= 100
    assert report["inbounds"] >= 40
    assert len(report["heads"]) == report["conversations"]
