"""`salesbot chat`: a whole conversation from stdin lines, on the real runtime and outbox."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.policy_loader import load_policy

SCRIPT = [
    "Hi, we are looking at CRM tools",
    "We have a $5000 budget, I am the CTO and want to start next month",
    "/as rep",
    "/quote 10 pro 10%",
    "/as prospect",
    "/click 1",
    "thanks!",
]


def greeted(out: str) -> bool:
    """The prospect was greeted, in whichever wording the conversation id's hash picked."""
    texts = load_policy("default").active_persona.templates["greet_generic"].texts
    return any(f"\nbot> {text}\n" in out for text in texts)


def chat(lines: list[str], *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["chat", "--memory", *extra], out=out, err=err, stdin=[line + "\n" for line in lines]
    )
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    monkeypatch.setenv("SALESBOT_DB", str(tmp_path / "chat.db"))


def test_a_prospect_is_qualified_quoted_and_closes_the_deal_by_clicking_accept() -> None:
    code, out, err = chat(SCRIPT)
    assert code == 0, err
    assert greeted(out)
    assert "a short call" in out  # the proposal, in the wording the hash picked
    assert "┌ Quote Q-" in out
    assert "[1] Accept quote" in out
    assert "total 1,791.00 USD" in out
    assert "Accepted by" in out
    # After the accept: what happens next, and who will be in touch.
    assert "will be in touch here to confirm the paperwork and plan your onboarding." in out
    assert "Thank you for your decision." not in out
    # After the close, the prospect's next message reaches a human instead of the bot.
    assert "handoff channel> Handoff: the prospect wrote after the conversation ended" in out


def test_commands_and_buttons_misused_get_a_private_notice_and_the_session_goes_on() -> None:
    code, out, _ = chat(["/click 3", "/as boss", "/frobnicate", "/quote lots", "hello"])
    assert code == 0
    assert "\nbot → you> There is no card with buttons to click yet.\n" in out
    assert "\nbot → you> Usage: /as prospect | /as rep | /as manager\n" in out
    assert "\nbot → you> Unknown command 'frobnicate'." in out
    assert "\nbot → you> The quantity “lots” is not a whole number. Usage: quote <qty>" in out
    assert greeted(out)


def test_the_manager_approves_the_reps_discount_request_from_the_same_terminal() -> None:
    code, out, err = chat(
        [
            "Hi, we are looking at CRM tools",
            "/as rep",
            "/quote 10 pro 20%",
            "/click 1",  # Request approval, as the rep
            "/as manager",
            "/click 1",  # Approve, as the manager
        ]
    )
    assert code == 0, err
    assert "\nbot → you> You speak as the manager now: " in out
    assert "Approval requested by You (rep)" in out
    assert "approvers> (updated) Approved by You (manager)" in out
    assert "[1] Accept quote" in out.rsplit("Approved by You (manager)", 1)[1]


def test_a_second_quote_shows_the_first_as_superseded_and_an_approval_as_version_two() -> None:
    """On SQLite (not `--memory`), so the session can be replayed afterwards."""
    out, err = io.StringIO(), io.StringIO()
    lines = [
        "Hi, we are looking at CRM tools",
        "/as rep",
        "/quote 10 pro 10%",
        "/quote 10 pro 20%",
        "/click 1",  # Request approval, as the rep
        "/as manager",
        "/click 1",  # Approve, as the manager
        "/as prospect",
        "/click 1",  # Accept version 2
    ]
    code = main(["chat"], out=out, err=err, stdin=[line + "\n" for line in lines])
    text = out.getvalue()
    assert code == 0, err.getvalue()
    first, second = dict.fromkeys(re.findall(r"┌ Quote (Q-[0-9a-f]{10})", text))
    assert f"bot> (updated) Superseded by {second}" in text
    assert f"  ┌ Quote {first}  [Superseded by {second}]" in text
    assert f"┌ Quote {second} v2  [Ready to accept]" in text
    assert f"approvers> (updated) Approved by You (manager): now {second} v2" in text
    assert f"bot> (updated) Quote {second} v2 accepted by" in text

    out = io.StringIO()
    assert main(["replay", "--json", "--fail-on-diff"], out=out) == 0
    report = json.loads(out.getvalue())
    assert (report["conversations"], report["differences"]) == (1, 0)


def test_the_manager_runs_commands_as_itself_and_the_help_names_both_approvers() -> None:
    code, out, _ = chat(["/as manager", "/help", "/quote 10 pro 10%"])
    assert code == 0
    assert "\nbot → you> You speak as the manager. Type a message, or a command:\n" in out
    assert "  ┌ salesbot chat\n" in out
    assert "  │ /as prospect | /as rep | /as manager: switch who is speaking" in out
    assert "four eyes" in out
    assert "  │ /quote <qty> <sku> [discount%]" in out
    assert "┌ Quote Q-" in out


def test_a_line_the_domain_cannot_take_is_refused_and_the_session_goes_on() -> None:
    code, out, err = chat(["x" * 40_001, "bad \udcff bytes", "/lead \ud800", "Hello"])
    assert code == 0, err
    assert "\nbot → you> Not sent: text: String should have at most 40000 characters" in out
    assert out.count("\nbot → you> Not sent: the line is not valid text") == 2
    assert greeted(out)
    assert "Traceback" not in out + err


def test_quit_stops_reading_and_exits_zero() -> None:
    code, out, _ = chat(["/quit", "hello"])
    assert code == 0
    assert "bot>" not in out


def test_user_text_with_terminal_control_characters_is_neutralised() -> None:
    code, out, _ = chat(["/as rep", "/lead we have a budget \x1b[31mred\x1b[0m"])
    assert code == 0
    assert "\x1b" not in out


def test_a_piped_chat_on_sqlite_replays_with_no_differences(tmp_path: Path) -> None:
    env = {
        "SALESBOT_DB": str(tmp_path / "piped.db"),
        "PATH": "/usr/bin:/bin",
        "SALESBOT_ENV_FILE": os.devnull,  # never a developer's .env
    }
    piped = subprocess.run(
        [sys.executable, "-m", "bot", "chat"],
        input="\n".join(SCRIPT) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert "Accepted by" in piped.stdout
    replay = subprocess.run(
        [sys.executable, "-m", "bot", "replay", "--json", "--fail-on-diff"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    report = json.loads(replay.stdout)
    assert report["conversations"] == 1
    assert report["inbounds"] == len(SCRIPT) - 2  # the two /as lines are not inbounds
    assert report["differences"] == 0
