"""`salesbot projections rebuild`, and `salesbot metrics` / `audit` on an upgraded store."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from bot.policy_loader import load_policy
from domain.analytics import compute_metrics
from storage.sqlite import SqliteStore
from tests.storage.scripted import SalesDay
from tests.support.cli import run

FIXTURE = Path(__file__).parents[1] / "fixtures" / "stores" / "release-4e9bee1.db"
SUMMARY = re.compile(
    r"projections rebuilt from (\d+) events: (\d+) conversations, (\d+) qualified, "
    r"(\d+) quotes indexed; (\d+) stored rows differed \(schema 5, salesbot/[\w.]+\)\n"
)


@pytest.fixture
def previous_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "store.db"
    shutil.copy(FIXTURE, path)
    monkeypatch.setenv("SALESBOT_DB", str(path))
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    return path


def full_recomputation(path: Path) -> dict[str, object]:
    async def read() -> dict[str, object]:
        async with await SqliteStore.open(path) as store:
            events = [env async for env in store.iterate_all()]
        flow = load_policy("default").flow
        return compute_metrics(events, states=flow.states, start=flow.start).model_dump(mode="json")

    return asyncio.run(read())


def test_rebuild_prints_one_line_exits_0_and_changes_nothing_the_second_time(
    previous_release: Path,
) -> None:
    code, out, err = run("projections", "rebuild")
    assert (code, err) == (0, "")
    match = SUMMARY.fullmatch(out)
    assert match is not None, out
    assert match.groups() == ("141", "9", "3", "8", "0")
    code, again, _ = run("projections", "rebuild", "--json")
    assert code == 0
    assert json.loads(again) == {
        "events": 141,
        "conversations": 9,
        "qualified": 3,
        "quotes": 8,
        "changed": 0,
        "schema_version": 5,
        "generator": "salesbot/0.1.0",
    }


def test_the_previous_releases_store_answers_metrics_correctly_without_a_rebuild(
    previous_release: Path,
) -> None:
    code, out, _ = run("metrics", "--json")
    assert code == 0
    assert json.loads(out) == full_recomputation(previous_release)
    assert run("projections", "rebuild")[0] == 0
    assert json.loads(run("metrics", "--json")[1]) == full_recomputation(previous_release)


def test_the_previous_releases_quotes_are_audited_through_the_index(
    previous_release: Path,
) -> None:
    code, out, _ = run("audit", "Q-dbb7430514", "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["kind"], report["conversation_id"]) == ("quote", "prev-rep")


def test_a_rebuild_repairs_projections_that_disagree_with_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "salesbot.db"
    monkeypatch.setenv("SALESBOT_DB", str(path))
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)

    async def seed() -> None:
        async with await SqliteStore.open(path) as store:
            day = SalesDay(store, load_policy("default"))
            await day.start()
            await day.run(conversations=12)

    asyncio.run(seed())
    expected = full_recomputation(path)
    with sqlite3.connect(path) as conn:  # damage: a conversation's row, a counter, a quote
        conn.execute(
            "UPDATE projection_counters SET value = value - 1 WHERE kind = 'ending' AND "
            "name = 'won' AND shard = (SELECT MIN(shard) FROM projection_counters "
            "WHERE kind = 'ending' AND name = 'won' AND value > 0)"
        )
        conn.execute(
            "UPDATE projection_streams SET ending = 'lost' WHERE ending = 'won' AND rowid = (SELECT MIN(rowid) FROM projection_streams WHERE ending = 'won')"
        )
        conn.execute(
            "DELETE FROM quote_index WHERE rowid IN (SELECT rowid FROM quote_index LIMIT 1)"
        )
    assert json.loads(run("metrics", "--json")[1]) != expected
    code, out, _ = run("projections", "rebuild", "--json")
    assert code == 0
    assert json.loads(out)["changed"] == 3
    assert json.loads(run("metrics", "--json")[1]) == expected
    assert json.loads(run("projections", "rebuild", "--json")[1])["changed"] == 0


def test_projections_without_an_action_is_a_usage_error(previous_release: Path) -> None:
    code, out, err = run("projections")
    assert code == 2
    assert out == ""
    assert "ACTION" in err
