"""`serve` and `chat` refuse a policy `salesbot check` rejects: what `check` forbids is never
said, and the operator reads every violation, one line each, with exit code 2."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.cli import main

BOAST = """
extends = "default"
name = "boast"
[personas.salespro.templates.greet]
text = "40% off today, just $99 per seat, guaranteed!"
"""


@pytest.fixture
def boast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SALESBOT_DB", str(tmp_path / "store.db"))
    path = tmp_path / "boast.toml"
    path.write_text(BOAST, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["chat", "--memory"]])
def test_a_policy_that_fails_check_is_refused_with_one_line_per_violation(
    boast: Path, tmp_path: Path, command: list[str]
) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main([*command, "--policy", str(boast)], out=out, err=err, stdin=["hello\n"])
    assert code == 2
    lines = err.getvalue().splitlines()
    # The two claims rules the boast breaks, and its German, French and Spanish wordings
    # (inherited from the default) that no longer say the same thing ({name}).
    assert lines[0] == "salesbot: error: policy boast fails `salesbot check` (5 violations):"
    assert len(lines) == 6
    assert all(line.startswith("salesbot: error: personas.salespro:") for line in lines[1:])
    assert "Traceback" not in err.getvalue()
    assert "40%" not in out.getvalue()
    assert not (tmp_path / "store.db").exists(), "nothing was opened, nothing was written"


def test_check_itself_still_reports_the_same_violations(boast: Path) -> None:
    out = io.StringIO()
    assert main(["check", "--policy", str(boast)], out=out) == 1
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    assert sum("differ from the original's" in line for line in lines) == 3
