"""`salesbot chat` with the default policy's knowledge base: a prospect asking product
questions in the terminal gets answers, and the stored conversation replays exactly."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bot.cli import main
from tests.support.talk import FIVE_PRODUCT_QUESTIONS

QUESTIONS = FIVE_PRODUCT_QUESTIONS

ANSWERS = [
    "bot> We make a sales assistant for your team:",
    "bot> Yes. New Salesforce leads start a conversation here,",
    "bot> There is no minimum and no upper limit:",
    "bot> Yes: you can try every feature of Pro free for 14 days, with no credit card.",
    "bot> Yes: a documented REST API lets you send leads",
]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    monkeypatch.setenv("SALESBOT_DB", str(tmp_path / "chat.db"))


def test_five_product_questions_in_the_terminal_get_five_answers_in_order() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["chat", "--memory"], out=out, err=err, stdin=[line + "\n" for line in QUESTIONS])
    assert code == 0, err.getvalue()
    bot_lines = [line for line in out.getvalue().splitlines() if line.startswith("bot> ")]
    assert len(bot_lines) == 5
    for line, expected in zip(bot_lines, ANSWERS, strict=True):
        assert line.startswith(expected)
    assert "budget range" not in out.getvalue()
    assert "handoff channel>" not in out.getvalue()


def test_a_pricing_question_in_the_terminal_shows_the_catalog_prices() -> None:
    out = io.StringIO()
    code = main(["chat", "--memory"], out=out, err=io.StringIO(), stdin=["How much is Pro?\n"])
    assert code == 0
    assert "Starter at 49.00 USD, Pro at 199.00 USD and Enterprise at 499.00 USD" in out.getvalue()


def test_a_chat_with_knowledge_answers_on_sqlite_replays_with_no_differences() -> None:
    script = [*QUESTIONS, "Was kostet Pro?", "What's the capital of Peru?"]
    out, err = io.StringIO(), io.StringIO()
    code = main(["chat"], out=out, err=err, stdin=[line + "\n" for line in script])
    assert code == 0, err.getvalue()
    assert "bot> Wir haben drei Pläne" in out.getvalue()
    replayed = io.StringIO()
    code = main(["replay", "--json", "--fail-on-diff"], out=replayed)
    report = json.loads(replayed.getvalue())
    assert (code, report["inbounds"], report["differences"]) == (0, len(script), 0)
