"""`salesbot chat` in the prospect's language: a Spanish prospect is answered in Spanish, a
switch to German is followed once a message has enough words, "ok danke" alone does not
switch, the audit names the language of each reply, and the stored conversation replays
with 0 differences."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.policy_loader import load_policy


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    monkeypatch.setenv("SALESBOT_DB", str(tmp_path / "chat.db"))


def chat(lines: list[str], *extra: str) -> list[str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["chat", *extra], out=out, err=err, stdin=[line + "\n" for line in lines])
    assert code == 0, err.getvalue()
    return [
        line.removeprefix("bot> ")
        for line in out.getvalue().splitlines()
        if line.startswith("bot> ")
    ]


def spoken(language: str) -> set[str]:
    """The longest placeholder-free piece of every wording the default policy has in
    `language` (a reply may open with an acknowledgement and echo the prospect's words)."""
    languages = load_policy("default").languages
    assert languages is not None
    pieces = set()
    for translation in languages.templates[language].values():
        for text in translation.texts:
            parts = [part.split("}")[-1] for part in text.split("{")]
            pieces.add(max(parts, key=len).strip())
    return {piece for piece in pieces if len(piece) >= 12}


def in_language(line: str, language: str) -> bool:
    return any(piece and piece in line for piece in spoken(language))


def test_a_spanish_prospect_then_a_switch_to_german_replays_exactly() -> None:
    said = chat(
        [
            "Hola, me interesa su software para nuestro equipo",
            "ok danke",
            "Wir sind ungefähr zwanzig Leute und wollen bald anfangen",
        ],
        "--conversation",
        "chat-languages",
    )
    assert len(said) == 3
    assert in_language(said[0], "es"), said[0]
    assert in_language(said[1], "es"), said[1]  # two words: still Spanish
    assert in_language(said[2], "de"), said[2]
    assert not in_language(said[2], "es"), said[2]

    audit = io.StringIO()
    assert main(["audit", "chat-languages"], out=audit) == 0
    text = audit.getvalue()
    assert "Replies now in Spanish (was English)" in text
    assert "Replies now in German (was Spanish)" in text

    replayed = io.StringIO()
    code = main(["replay", "--json", "--fail-on-diff"], out=replayed)
    report = json.loads(replayed.getvalue())
    # Three messages, and the audit request (recorded as the rep's inbound).
    assert (code, report["inbounds"], report["differences"]) == (0, 4, 0)
