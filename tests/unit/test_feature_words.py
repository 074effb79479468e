"""Cards name the reader's features in words (issue 15, item 8); the audit keeps the names."""

from __future__ import annotations

import pytest

from bot.policy_loader import load_policy
from domain.feature_words import feature_words


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("lex:budget", "budget"),
        ("lex:budget:not", "budget, negated"),
        ("lex:need:self", "need, about their own business"),
        ("lex:no_budget", "no budget"),
        ("typo:budget", "budget (misspelt)"),
        ("w:urgent", "the word “urgent”"),
        ("n:price", "the word “price”, negated"),
        ("w:#", "a number"),
        ("p:next_month", "the words “next month”"),
        ("p:of_#", "the words “of N”"),
        ("ent:money_10k", "an amount of 10,000 or more"),
        ("ent:date_30d", "a date within 30 days"),
        ("shape:question", "asks a question"),
        ("lang:de", "written in German"),
        ("meta:size_50", "company of 50 people or more"),
        ("meta:source_web", "came from web"),
        ("intercept", "baseline"),
        ("budget", "budget"),  # a lexicon scorer's own feature
    ],
)
def test_each_kind_of_feature_reads_in_words(name: str, words: str) -> None:
    assert feature_words(name) == words


def test_every_weighted_feature_of_the_shipped_model_reads_without_its_prefix() -> None:
    policy = load_policy("default")
    assert policy.understanding is not None
    names = set(policy.understanding.reader.band.weights)
    assert len(names) > 1000
    for name in names:
        words = feature_words(name)
        assert ":" not in words, name
        assert "_" not in words, name
