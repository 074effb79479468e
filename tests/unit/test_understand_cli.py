"""`salesbot understand`: the public contract anyone evaluates the reader with (README)."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from typing import Any

import pytest

from bot.cli import main
from bot.policy_loader import bundled_policy_names
from tests.support.schemas import assert_valid

KEYS = {
    "id",
    "language",
    "band",
    "score",
    "signals",
    "objection",
    "needs_human",
    "reasons",
    "intents",
    "entities",
    "policy_version",
    "schema_version",
    "generator_version",
}
REASONS = {
    "legal",
    "privacy_security",
    "billing_refund",
    "pricing_exception",
    "complaint",
    "human_request",
}
INTENTS = {
    "greeting",
    "question",
    "pricing_question",
    "meeting_request",
    "buying_signal",
    "human_request",
    "not_interested",
    "chose_competitor",
    "goodbye",
    "smalltalk",
}
NOW = "2026-12-05T10:00:00Z"


@pytest.fixture(autouse=True)
def _no_policy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)


def understand(lines: list[str], *args: str) -> tuple[int, list[dict[str, Any]], str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["understand", *args], out=out, err=err, stdin=iter(lines))
    text = out.getvalue()
    return code, [json.loads(line) for line in text.splitlines()], err.getvalue(), text


def record(ident: object, text: str, **extra: object) -> str:
    return json.dumps({"id": ident, "text": text, **extra})


def assert_contract(reading: dict[str, Any]) -> None:
    assert_valid("understand", reading)  # the published schema, docs/schemas/understand.schema.json
    assert set(reading) - {"hot_probability"} == KEYS
    if "hot_probability" in reading:  # a reader with a calibrated band
        assert 0 <= reading["hot_probability"] <= 1
    assert reading["language"] in {"en", "de", "fr", "es", "und"}
    assert reading["band"] in {"hot", "warm", "cold"}
    assert isinstance(reading["score"], int | float)
    assert not isinstance(reading["score"], bool)
    assert math.isfinite(reading["score"])
    assert set(reading["signals"]) == {"budget", "timeline", "authority", "need"}
    assert all(isinstance(v, bool) for v in reading["signals"].values())
    assert reading["objection"] in {
        None,
        "price",
        "timing",
        "needs",
        "competitor",
        "authority",
        "contract",
    }
    assert reading["reasons"] == sorted(set(reading["reasons"]))
    assert set(reading["reasons"]) <= REASONS
    assert reading["needs_human"] == bool(reading["reasons"])
    assert reading["intents"] == sorted(set(reading["intents"]))
    assert set(reading["intents"]) <= INTENTS
    assert set(reading["entities"]) == {"money", "dates", "team_size", "competitor"}
    assert reading["schema_version"] == 1
    assert len(reading["policy_version"]) == 64


def test_one_line_per_accepted_line_in_input_order_with_ids_unchanged() -> None:
    code, readings, err, _ = understand(
        [record(7, "Hi there"), "\n", record("b-2", "What would that cost?"), record(10**20, "ok")],
        "--now",
        NOW,
    )
    assert (code, err) == (0, "")
    assert [r["id"] for r in readings] == [7, "b-2", 10**20]
    for reading in readings:
        assert_contract(reading)


def test_refused_lines_are_reported_on_stderr_with_their_number_and_the_rest_is_read() -> None:
    lines = [
        "[1, 2]",
        "not json",
        json.dumps({"text": "no id"}),
        json.dumps({"id": 1}),
        json.dumps({"id": 2, "text": 5}),
        json.dumps({"id": True, "text": "x"}),
        record(3, "We need a quote for 40 seats", extra="ignored", metadata={"source": "referral"}),
    ]
    code, readings, err, _ = understand(lines, "--now", NOW)
    assert code == 2
    assert [r["id"] for r in readings] == [3]
    refused = err.splitlines()
    assert [line.split(":")[1].strip() for line in refused] == [
        "line 1",
        "line 2",
        "line 3",
        "line 4",
        "line 5",
        "line 6",
    ]
    assert all(line.startswith("understand: line ") for line in refused)


@pytest.mark.parametrize(
    "text",
    ["", " ", "😀🚀", "\x00\x07\x1b[31m", "a" * 20_000, "ПРИВЕТ 你好 مرحبا", "{name} %s {{"],
)
def test_any_text_gets_a_reading(text: str) -> None:
    code, readings, err, _ = understand([record("x", text)], "--now", NOW)
    assert (code, err) == (0, "")
    assert_contract(readings[0])


def test_the_same_input_policy_and_now_give_byte_identical_output() -> None:
    lines = [
        record(1, "cfo here. $40k approved. want to buy before EOQ."),
        record(2, "Wir wollen im Januar starten, Budget 50.000 €"),
        record(3, "Can I talk to a real person please?"),
    ]
    first = understand(lines, "--now", NOW)[3]
    second = understand(lines, "--now", NOW)[3]
    assert first == second


@pytest.mark.parametrize("policy", bundled_policy_names())
def test_every_bundled_policy_answers_the_contract(policy: str) -> None:
    code, readings, err, _ = understand(
        [record(1, "We have budget and need a contract review by our lawyer")],
        "--policy",
        policy,
        "--now",
        NOW,
    )
    assert (code, err) == (0, "")
    assert_contract(readings[0])


def test_the_seed_policy_gives_neutral_values_for_what_lexicons_cannot_tell() -> None:
    reading = understand([record(1, "Hola, quiero una demo")], "--policy", "seed", "--now", NOW)[1][
        0
    ]
    assert reading["language"] == "und"
    assert reading["intents"] == []
    assert reading["entities"] == {"money": [], "dates": [], "team_size": None, "competitor": None}


def test_a_calibrated_reader_says_how_likely_the_lead_is_hot_and_lexicons_do_not() -> None:
    lines = [
        record(1, "I'm the CFO, $40k is approved and we sign before the end of the quarter."),
        record(2, "just browsing, thanks"),
    ]
    readings = understand(lines, "--now", NOW)[1]
    assert readings[0]["band"] == "hot"
    assert readings[0]["hot_probability"] > 0.5 > readings[1]["hot_probability"]
    seed = understand(lines, "--policy", "seed", "--now", NOW)[1]
    assert all("hot_probability" not in reading for reading in seed)


def test_an_unknown_policy_is_one_stderr_line_exit_2_and_nothing_on_stdout() -> None:
    code, _, err, text = understand([record(1, "hi")], "--policy", "nope")
    assert code == 2
    assert text == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("understand: ")


def test_a_per_line_now_resolves_dates_against_that_time() -> None:
    code, readings, _, _ = understand(
        [record(1, "we want to go live next month", now="2027-03-10T09:00:00Z")], "--now", NOW
    )
    assert code == 0
    dates = readings[0]["entities"]["dates"]
    assert dates
    assert dates[0]["start"].startswith("2027-04")


def test_the_installed_command_streams_utf8_and_flushes_per_line() -> None:
    """Through a real pipe: a reading is on stdout before the next line is written."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "understand", "--now", NOW],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write((record(1, "Bonjour, nous cherchons un CRM") + "\n").encode())
    process.stdin.flush()
    first = json.loads(process.stdout.readline())
    assert first["id"] == 1
    assert first["language"] == "fr"
    process.stdin.write(b'{"id": 2, "text": "\xff\xfe"}\n')
    process.stdin.close()
    rest = process.stdout.read()
    assert process.wait(timeout=60) == 2
    assert rest == b""
    assert process.stderr is not None
    assert process.stderr.read().decode().strip() == "understand: line 2: not UTF-8"
