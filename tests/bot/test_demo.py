"""`salesbot demo` seeds realistic leads that metrics, audit and replay can show."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bot.cli import main


def run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue() + err.getvalue()


def test_the_demo_seeds_once_and_gives_metrics_audit_and_replay_something_to_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESBOT_DB", str(tmp_path / "demo.db"))
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    code, first = run("demo")
    assert code == 0
    assert "demo: 8 inbounds committed" in first
    assert "demo: 0 inbounds committed" in run("demo")[1]

    code, out = run("metrics", "--json")
    metrics = json.loads(out)
    assert (metrics["conversations"], metrics["won"]) == (5, 1)
    assert metrics["funnel"]["handoff"] == 1

    code, out = run("audit", "lead-demo-5")
    assert "by the fairness penalty (credit score 540 below 600)" in out
    code, out = run("replay", "--json", "--fail-on-diff")
    assert code == 0
    assert json.loads(out)["differences"] == 0
