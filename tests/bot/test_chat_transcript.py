"""The terminal transcript is a contract: every line `salesbot chat` prints says who sees it.

- `bot> ` the bot in the prospect's conversation; `rep> ` / `manager> ` the local rep or
  manager speaking there (after `/as rep` / `/as manager`: the prospect sees it);
- `bot → team> `, `handoff channel> `, `approvers> ` what the team sees;
- `bot → you> ` private notices (the bot's, and the terminal's own);
- a card under its head line, every line indented two spaces: `  ┌ title`, `  │ …`,
  buttons `  │ [N] label` numbered from 1, `  └`;
- an input that gets no answer prints nothing.

`salesbot chat --json` prints the same outputs as JSON Lines, one object each.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapters.terminal.render import render_output
from adapters.terminal.transcript import Output, output_json
from bot.chat import ChatSession
from bot.cli import main
from domain.cards import Button, Card, CardField
from domain.policy import Policy
from domain.state import ConversationState
from storage.memory import MemoryStore

LABELS = ("bot", "rep", "manager", "bot → team", "bot → you", "handoff channel", "approvers")
HEAD = "(?:" + "|".join(re.escape(label) for label in LABELS) + ")> [^\n]*\n"
CARD = "  ┌ [^\n]+\n(?:  │(?: [^\n]*)?\n)*  └\n"
TRANSCRIPT = re.compile(f"(?:{HEAD}(?:{CARD})?)*")
"""The whole transcript: head lines, each followed by at most one card."""
BUTTON = re.compile(r"  │ \[(\d+)\] \S")

LEAD = [
    "Hi, we're a team of 25 looking for a CRM",
    "We have a budget of 20k, I'm the head of sales and we want to start next month",
    "what does it cost?",
    "/as rep",
    "/lead We have a budget of 5000 and need it next month",
]
QUOTE = [
    "Hi, we are looking at CRM tools",
    "/as rep",
    "/quote 10 pro 10%",
    "/as prospect",
    "/click 1",  # Accept quote
]
HANDOFF = [
    "Hello",
    "Can I talk to a real person please?",
    "/as rep",
    "/click 1",  # Claim ticket
    "Hi, I'm Alex from sales. How can I help?",
    "/as prospect",
    "Great, thanks Alex!",  # a person holds the ticket: the bot stays silent
    "/as manager",
    "Hello from Alex's manager, I'm here too.",
]
APPROVALS = [
    "Hi, we are looking at CRM tools",
    "/as rep",
    "/quote 10 pro 20%",
    "/click 1",  # Request approval, as the rep
    "/as manager",
    "/click 1",  # Approve, as the manager: version 2 reaches the prospect
    "/as rep",
    "/quote 10 pro 25%",
    "/click 1",  # Request approval
    "/as manager",
    "/click 2",  # Reject: the team is told
]
MISUSE = [
    "/click 1",
    "/help",
    "/as rep",
    "/help",
    "/frobnicate",
    "/as nobody",
    "",
    "   ",
    "x" * 40_001,
    "bad \udcff bytes",
    "Hi there",
    "/metrics",
    "/audit",
]
SCRIPTS = {
    "lead": LEAD,
    "quote": QUOTE,
    "handoff": HANDOFF,
    "approvals": APPROVALS,
    "misuse": MISUSE,
}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    monkeypatch.setenv("SALESBOT_DB", str(tmp_path / "chat.db"))


def chat(lines: list[str], *extra: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    stdin = [line + "\n" for line in lines]
    code = main(["chat", "--memory", *extra], out=out, err=err, stdin=stdin)
    assert code == 0, err.getvalue()
    return out.getvalue()


def violations(transcript: str) -> list[str]:
    """The lines where the transcript stops following the grammar (empty when it does)."""
    matched = TRANSCRIPT.match(transcript)
    assert matched is not None  # the pattern matches the empty prefix at least
    rest = transcript[matched.end() :]
    return rest.splitlines()[:3]


def cards(transcript: str) -> list[list[str]]:
    return [
        block.splitlines()
        for block in re.findall(r"^  ┌ .*?^  └$", transcript, flags=re.MULTILINE | re.DOTALL)
    ]


@pytest.mark.parametrize("script", SCRIPTS.values(), ids=SCRIPTS.keys())
def test_every_line_of_a_chat_says_who_sees_it(script: list[str]) -> None:
    transcript = chat(script)
    assert transcript.endswith("\n")
    assert violations(transcript) == []
    for card in cards(transcript):
        numbers = [int(match.group(1)) for line in card if (match := BUTTON.match(line))]
        assert numbers == list(range(1, len(numbers) + 1)), card
        if numbers:  # the buttons close the card
            assert all(BUTTON.match(line) for line in card[-1 - len(numbers) : -1]), card


def test_the_grammar_catches_a_line_that_names_no_audience() -> None:
    """The checker itself can fail: each way of breaking the contract is found."""
    good = "bot> Hello\n  ┌ Quote Q-1  [Ready]\n  │ Total: 1.00 USD\n  │ [1] Accept quote\n  └\n"
    assert violations(good) == []
    for bad in (
        "(you are now speaking as the rep)\n",
        "! Usage: /click N\n",
        "bot> Hello\n\n",
        "rep (you)> Hello\n",
        "  │ a card line with no head line\n",
        "bot> Hello\n  ┌ Quote Q-1\n  │ never closed\n",
        "bot> Hello\n│ [1] Accept quote\n",
    ):
        assert violations(good + bad) != [], bad


def test_text_over_several_lines_and_control_characters_keep_to_the_grammar() -> None:
    card = Card(
        kind="notice",
        title="Two\nlines",
        text="first\n\nthird",
        fields=(CardField(label="Note", value="one\ntwo \x1b[31mred"),),
        lines=("a\nb",),
        buttons=(Button(action="escalate", label="Talk\nto a person"),),
    )
    for audience in ("conversation", "team", "requester", "handoff", "approvers"):
        output = Output(audience=audience, text="Hello\nthere\u2028\r", card=card)
        lines = render_output(output)
        assert violations("".join(f"{line}\n" for line in lines)) == [], lines
        assert not any("\x1b" in line or "\r" in line for line in lines)
        assert "  │ [1] Talk" in lines


def test_a_json_line_stays_one_line_whatever_the_text_holds() -> None:
    text = "a\u2028b\u2029c\x85d\ne\x1bf\udcff"
    line = output_json(
        Output(audience="conversation", text=text),
        ConversationState(conversation_id="c", flow_state="greeting"),
    )
    assert len(line.splitlines()) == 1
    assert line.encode("utf-8")  # no lone surrogate left to fail on
    assert json.loads(line)["text"] == text


def test_every_audience_appears_across_the_scripts_with_its_label() -> None:
    seen = {
        line.split("> ", 1)[0]
        for script in (QUOTE, HANDOFF, APPROVALS, MISUSE)
        for line in chat(script).splitlines()
        if not line.startswith("  ")
    }
    assert seen == set(LABELS)


def test_the_reps_and_the_managers_plain_lines_are_said_in_the_conversation() -> None:
    transcript = chat(HANDOFF).splitlines()
    assert "rep> Hi, I'm Alex from sales. How can I help?" in transcript
    assert "manager> Hello from Alex's manager, I'm here too." in transcript
    # A person holds the ticket: the prospect's reply to the rep gets no bot line.
    after = transcript[transcript.index("rep> Hi, I'm Alex from sales. How can I help?") + 1 :]
    assert not [line for line in after if line.startswith("bot> ")]


def test_a_reps_plain_line_is_not_taken_as_a_command_or_a_request_for_help() -> None:
    transcript = chat(["/as rep", "quote 10 pro 10%", "help"]).splitlines()
    assert transcript[-2:] == ["rep> quote 10 pro 10%", "rep> help"]


async def _silence_run(policy: Policy) -> tuple[dict[str, list[str]], list[str]]:
    printed: list[str] = []
    session = ChatSession(
        MemoryStore(),
        policy,
        printed.append,
        conversation_id="chat-silence",
        session="s",
        clock=lambda: 1_796_000_000_000,
    )
    await session.start()
    shown: dict[str, list[str]] = {}
    for line in [*HANDOFF[:7], "", "   ", "Hello? Is anyone there?"]:
        before = len(printed)
        assert await session.feed(line + "\n")
        shown[line] = printed[before:]
    assert await session.feed("/quit\n") is False
    await session.close()
    return shown, printed


async def test_an_input_that_gets_no_answer_prints_nothing(default_policy: Policy) -> None:
    """Under a policy without `[handoff]`: the bot is silent while a person holds the
    conversation, and nothing else is printed either."""
    shown, printed = await _silence_run(default_policy.model_copy(update={"handoff": None}))
    assert shown["Great, thanks Alex!"] == []  # the bot is silent while a person holds it
    assert shown["Hello? Is anyone there?"] == []
    assert shown[""] == []
    assert shown["   "] == []
    assert shown["Hi, I'm Alex from sales. How can I help?"] == [
        "rep> Hi, I'm Alex from sales. How can I help?"
    ]
    assert violations("".join(f"{line}\n" for line in printed)) == []


async def test_while_a_person_holds_it_the_prospect_hears_nothing_and_the_ticket_card_shows_their_words(
    default_policy: Policy,
) -> None:
    """The handoff desk (`[handoff] ticket_card`): the prospect's message refreshes the
    ticket's card in place in the handoff channel; the bot says nothing to them."""
    shown, printed = await _silence_run(default_policy)
    for line in ("Great, thanks Alex!", "Hello? Is anyone there?"):
        heads = [out for out in shown[line] if not out.startswith("  ")]
        assert heads == ["handoff channel> (updated) Claimed by You (rep)"], shown[line]
        assert f"  │ prospect: {line}" in shown[line]
    assert shown[""] == []
    assert shown["   "] == []
    assert shown["Hi, I'm Alex from sales. How can I help?"] == [
        "rep> Hi, I'm Alex from sales. How can I help?"
    ]
    assert violations("".join(f"{line}\n" for line in printed)) == []


# -- salesbot chat --json ----------------------------------------------------------------

KEYS = {
    "schema_version", "conversation", "audience", "author", "text", "replaces", "card",
    "state", "ticket",
}  # fmt: skip
CARD_KEYS = {"kind", "title", "status", "text", "ref", "fields", "lines", "buttons", "input"}
TICKET_KEYS = {"id", "kind", "status", "reason", "claimed_by"}
AUDIENCES = {"conversation", "team", "requester", "handoff", "approvers"}
AUTHORS = {"bot", "rep", "manager", "chat"}
JSON_SCRIPT = [*HANDOFF, "/as rep", "/click 2", *APPROVALS[1:], *MISUSE]


def run_json(lines: list[str], tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """A real process, so nothing but the JSON objects can reach its stdout unseen."""
    env = {
        "SALESBOT_DB": str(tmp_path / "json.db"),
        "PATH": "/usr/bin:/bin",
        "SALESBOT_ENV_FILE": os.devnull,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "chat", "--json", *extra],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="surrogateescape",
        env=env,
        timeout=120,
        check=False,
    )


def shape_errors(output: dict[str, Any], states: set[str]) -> list[str]:
    errors = []
    if set(output) != KEYS:
        errors.append(f"keys {sorted(output)}")
    if output.get("schema_version") != 1:
        errors.append("schema_version")
    if output.get("audience") not in AUDIENCES or output.get("author") not in AUTHORS:
        errors.append("audience or author")
    if not isinstance(output.get("text"), str) or output.get("state") not in states:
        errors.append("text or state")
    card, ticket = output.get("card"), output.get("ticket")
    if card is not None:
        numbers = [button["number"] for button in card["buttons"]]
        if set(card) != CARD_KEYS or numbers != list(range(1, len(numbers) + 1)):
            errors.append("card")
    if ticket is not None and set(ticket) != TICKET_KEYS:
        errors.append("ticket")
    return errors


def test_chat_json_prints_one_object_per_output_and_nothing_else(
    tmp_path: Path, default_policy: Policy
) -> None:
    ran = run_json(JSON_SCRIPT, tmp_path, "--conversation", "chat-json")
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    states = set(default_policy.flow.states)
    outputs = []
    for line in ran.stdout.splitlines():
        output = json.loads(line)  # every stdout line is one JSON object
        assert shape_errors(output, states) == [], line
        assert output["conversation"] == "chat-json"
        outputs.append(output)

    said = [(o["author"], o["text"]) for o in outputs if o["audience"] == "conversation"]
    assert ("rep", "Hi, I'm Alex from sales. How can I help?") in said
    assert ("manager", "Hello from Alex's manager, I'm here too.") in said
    handoff = next(o for o in outputs if o["audience"] == "handoff")
    assert handoff["state"] == "handoff"
    assert handoff["ticket"]["kind"] == "handoff"
    assert handoff["ticket"]["status"] == "open"
    assert [b["label"] for b in handoff["card"]["buttons"]] == [
        "Claim ticket", "Resolve", "Return to bot", "Won", "Lost…",
    ]  # fmt: skip
    claimed = next(o for o in outputs if o["text"].startswith("Claimed by"))
    assert claimed["replaces"] == handoff["card"]["ref"]
    assert claimed["ticket"]["status"] == "claimed"
    assert claimed["ticket"]["claimed_by"] == "local-rep"
    waiting = next(o for o in outputs if o["audience"] == "approvers")
    assert waiting["ticket"]["kind"] == "approval"
    refused = [o["text"] for o in outputs if o["author"] == "chat"]
    assert "Not sent: text: String should have at most 40000 characters" in refused
    assert "Not sent: the line is not valid text (bytes that are not UTF-8)." in refused


def test_chat_json_and_the_text_transcript_show_the_same_outputs() -> None:
    """One JSON object for each head line (and its card) of the text transcript."""
    script = [*QUOTE, *HANDOFF[1:]]
    text = chat(script, "--conversation", "chat-same")
    json_out = chat(script, "--conversation", "chat-same", "--json")
    heads = [line.split("> ", 1)[0] for line in text.splitlines() if not line.startswith("  ")]
    outputs = [json.loads(line) for line in json_out.splitlines()]
    labels = {
        "conversation": "bot", "team": "bot → team", "requester": "bot → you",
        "handoff": "handoff channel", "approvers": "approvers",
    }  # fmt: skip
    assert heads == [
        o["author"] if o["author"] in ("rep", "manager") else labels[o["audience"]] for o in outputs
    ]
    assert len(cards(text)) == sum(o["card"] is not None for o in outputs)


def test_chat_json_with_a_bad_policy_is_one_error_line_and_an_empty_stdout() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["chat", "--memory", "--json", "--policy", "no-such-policy"],
        out=out,
        err=err,
        stdin=["Hello\n"],
    )
    assert code == 2
    assert out.getvalue() == ""
    assert len(err.getvalue().splitlines()) == 1
    assert err.getvalue().startswith("salesbot: error: ")


def test_a_reader_that_goes_away_ends_the_chat_quietly(tmp_path: Path) -> None:
    """`salesbot chat --json | head -1`: the next write finds the pipe closed; the session
    stops without a traceback or a retried send on stderr."""
    env = {
        "SALESBOT_DB": str(tmp_path / "gone.db"),
        "PATH": "/usr/bin:/bin",
        "SALESBOT_ENV_FILE": os.devnull,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "chat", "--json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    banner = json.loads(process.stdout.readline())
    assert banner["author"] == "chat"
    process.stdout.close()  # the reader is gone before the bot's first answer
    _, err = process.communicate(b"Hello\n/as rep\n/quote 10 pro 10%\n", timeout=120)
    assert process.returncode == 0
    assert err.decode() == ""
