"""`salesbot chat`, as the prospect reads it: five different questions get five different
lines, no question is asked more than twice, and the conversation replays from the store
with 0 differences (the wording is picked by a hash of the conversation and turn)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.policy_loader import load_policy
from tests.support.talk import FIVE_PRODUCT_QUESTIONS, repeated_in_a_row

FIVE_QUESTIONS = FIVE_PRODUCT_QUESTIONS


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    monkeypatch.setenv("SALESBOT_DB", str(tmp_path / "chat.db"))


def chat(lines: list[str], *extra: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    code = main(["chat", *extra], out=out, err=err, stdin=[line + "\n" for line in lines])
    assert code == 0, err.getvalue()
    return out.getvalue()


@pytest.mark.parametrize("conversation", ["chat-tone-1", "chat-tone-2", "chat-tone-3"])
def test_five_questions_in_a_row_get_five_different_lines_and_replay_exactly(
    conversation: str,
) -> None:
    out = chat(FIVE_QUESTIONS, "--conversation", conversation)
    said = [line.removeprefix("bot> ") for line in out.splitlines() if line.startswith("bot> ")]
    assert len(said) == 5
    assert repeated_in_a_row(said) == []
    assert len(set(said)) == 5
    templates = load_policy("default").active_persona.templates
    budget = templates["ask.budget"].texts
    assert sum(line in budget for line in said) <= 1  # asked once, then the other slots

    replayed = io.StringIO()
    code = main(["replay", "--json", "--fail-on-diff"], out=replayed)
    report = json.loads(replayed.getvalue())
    assert (code, report["inbounds"], report["differences"]) == (0, 5, 0)
