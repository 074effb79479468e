"""The labelled corpus (`data/understanding/`, `docs/labelling.md`): valid, big enough, and a
test split that training never sees, not even as a near-duplicate."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from bot.corpus import CONVERSATIONS_FILE, TEST_DIR, TRAINING_DIR, Example, load_examples

TRAINING = load_examples([TRAINING_DIR])
TEST = load_examples([TEST_DIR])
CONVERSATIONS = load_examples([CONVERSATIONS_FILE])
TRAPS = [
    (f"{name}:{number}", json.loads(line)["text"])
    for name in ("traps.jsonl", "traps-fresh.jsonl")
    for number, line in enumerate(
        Path(__file__).with_name(name).read_text(encoding="utf-8").splitlines(), 1
    )
    if line.strip()
]
"""The trap families' paraphrases (`test_traps.py`) are held out like the test split."""
LANGUAGES = ("en", "de", "fr", "es")


def _shingles(text: str) -> frozenset[str]:
    squeezed = " ".join(re.findall(r"\w+", text.casefold()))
    return frozenset(squeezed[i : i + 4] for i in range(max(1, len(squeezed) - 3)))


def _similarity(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def test_the_corpus_has_at_least_2500_messages_in_four_languages() -> None:
    assert len(TRAINING) + len(TEST) >= 2500
    assert {e.lang for e in TRAINING} == set(LANGUAGES)


def test_the_frozen_test_split_has_150_messages_and_30_needing_a_human_per_language() -> None:
    per_language = Counter(e.lang for e in TEST)
    needing = Counter(e.lang for e in TEST if e.needs_human)
    for language in LANGUAGES:
        assert per_language[language] >= 150, language
        assert needing[language] >= 30, language


def test_no_test_message_or_near_duplicate_of_one_is_in_training() -> None:
    """Four-character shingles of the words; a Jaccard similarity of 0.8 or more is a
    near-duplicate (a changed name or number, different punctuation or case). The trap
    families' paraphrases count as test messages."""
    training = [(_shingles(e.text), e) for e in TRAINING]
    index: dict[str, list[int]] = {}
    for position, (shingles, _) in enumerate(training):
        for shingle in shingles:
            index.setdefault(shingle, []).append(position)
    leaks: list[tuple[str, str]] = []
    for example_id, text in [*((e.id, e.text) for e in TEST), *TRAPS]:
        shingles = _shingles(text)
        candidates = Counter(p for s in shingles for p in index.get(s, ()))
        for position, shared in candidates.items():
            other_shingles, other = training[position]
            if (shared / len(shingles | other_shingles) >= 0.8 and len(shingles) >= 3) or (
                len(shingles) < 3 and shingles == other_shingles
            ):
                leaks.append((example_id, other.id))
    assert leaks == []


def test_ids_are_unique_across_training_test_and_conversations() -> None:
    ids = [e.id for e in (*TRAINING, *TEST, *CONVERSATIONS)]
    assert len(ids) == len(set(ids))


def test_labels_follow_the_guides_consistency_rules() -> None:
    def broken(example: Example) -> list[str]:
        problems = []
        if example.objection == "contract" and not set(example.reasons) & {
            "legal",
            "privacy_security",
            "billing_refund",
        }:
            problems.append("contract objection without its reason")
        if ("human_request" in example.reasons) != ("human_request" in example.intents):
            problems.append("human_request is both a reason and an intent")
        return problems

    assert [(e.id, p) for e in (*TRAINING, *TEST) for p in broken(e)] == []


def test_conversations_have_several_messages() -> None:
    assert len(CONVERSATIONS) >= 40
    assert all(len(e.messages) >= 2 for e in CONVERSATIONS)


def test_the_files_are_where_the_readme_says() -> None:
    readme = Path("README.md").read_text(encoding="utf-8")
    assert "data/understanding/" in readme
    assert "docs/labelling.md" in readme
