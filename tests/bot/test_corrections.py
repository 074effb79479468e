"""Reps teach the reader: `correct …` in a conversation, then `salesbot train --corrections`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bot.cli import main


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    monkeypatch.setenv("SALESBOT_DB", str(tmp_path / "store.db"))


def run(argv: list[str], lines: list[str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    stdin = [line + "\n" for line in lines] if lines is not None else None
    code = main(argv, out=out, err=err, stdin=stdin)
    return code, out.getvalue(), err.getvalue()


def test_a_reps_correction_becomes_a_labelled_example_for_the_next_training_run(
    tmp_path: Path,
) -> None:
    code, out, err = run(
        ["chat"],
        [
            "Hi, we're a 12-person agency, our boss wants a tool for inbound chats by March.",
            "/as rep",
            "/correct band hot",
            "/correct signal timeline yes",
            "/correct intent meeting_request yes",
            "/correct objection maybe",
        ],
    )
    assert code == 0, err
    assert "Noted: band → hot." in out
    assert "Noted: signal timeline → yes." in out
    assert "Usage: correct" in out  # "maybe" is not an objection: nothing recorded
    target = tmp_path / "corrections.jsonl"
    code, out, err = run(["train", "--corrections", "--out", str(target)])
    assert code == 0, err
    assert "1 corrected readings" in out
    (line,) = target.read_text(encoding="utf-8").splitlines()
    example = json.loads(line)
    assert example["text"].startswith("Hi, we're a 12-person agency")
    assert example["band"] == "hot"
    assert example["signals"]["timeline"] is True
    assert "meeting_request" in example["intents"]
    assert example["corrected_by"]
    # The export is a valid corpus line: `salesbot eval` reads it as labelled data.
    code, out, err = run(["eval", "--data", str(target), "--policy", "default"])
    assert code == 0, err
    assert "band macro-F1" in out


def test_a_prospect_cannot_correct_the_reading() -> None:
    code, out, _ = run(["chat"], ["We need a quote for 40 seats", "correct band cold"])
    assert code == 0
    code, out, _ = run(["train", "--corrections"])
    assert code == 0
    assert out == ""
