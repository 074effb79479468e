"""`salesbot chat` with the default policy's knowledge base: a prospect asking product
questions in the terminal gets answers, and the stored conversation replays exactly."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main

QUESTIONS = [
    "what does your product do?",
    "does it integrate with Salesforce?",
    "how many users?",
    "is there a free trial?",
    "do you have an API?",
]

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


def test_a_chat_with_knowledge_answers_on_sqlite_replays_with_no_differences(
    tmp_path: Path,
) -> None:
    env = {
        "SALESBOT_DB": str(tmp_path / "piped.db"),
        "PATH": "/usr/bin:/bin",
        "SALESBOT_ENV_FILE": os.devnull,  # never a developer's .env
    }
    script = [*QUESTIONS, "Was kostet Pro?", "What's the capital of Peru?"]
    piped = subprocess.run(
        [sys.executable, "-m", "bot", "chat"],
        input="\n".join(script) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert "bot> Wir haben drei Pläne" in piped.stdout
    audit = subprocess.run(
        [sys.executable, "-m", "bot", "replay", "--json", "--fail-on-diff"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    report = json.loads(audit.stdout)
    assert report["inbounds"] == len(script)
    assert report["differences"] == 0
