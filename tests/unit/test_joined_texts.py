"""A conversation's lexicon features read message by message equal those of its joined text.

`extract_features_of_texts` finds each message's terms once and combines them; the narrative
of every prospect message is worked out that way (`assess_conversation_narrative`). Any
difference from reading the joined text would change a recorded decision, so the two are
held equal on the corpus's messages joined in many ways, on texts written to sit at the
join (negators and breaks at either end, typographic apostrophes, Greek sigmas), and on
lexicons where reading message by message cannot be exact (then the joined text is read).
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.corpus import TEST_DIR, load_examples
from bot.policy_loader import load_policy
from domain.narrative import assess_conversation_narrative, assess_narrative
from domain.text import (
    FeatureLike,
    FeatureSpec,
    NegationConfig,
    extract_features,
    extract_features_of_texts,
)

SEPARATOR = "\n.\n"
POLICIES = [load_policy("default"), load_policy("seed")]
CORPUS = [example.text for example in load_examples([Path(TEST_DIR)])]
AT_THE_JOIN = [
    "no",
    "not",
    "no longer",
    "budget",
    "Budget approved, but no",
    "we don't have a budget",
    "don’t",
    "urgent, asap",
    "ΟΔΟΣ",
    "Σ",
    "'",
    "dogs'",
    ".",
    "",
    "  ",
    "no\n",
    "next month?",
    "we cannot wait",
    "not urgent but need it now",
    "ASAP!!! deadline next week",
]
LEXICONS: list[tuple[tuple[FeatureLike, ...], NegationConfig]] = [
    *((policy.narrative.features, policy.narrative.negation) for policy in POLICIES),
    *((policy.scoring.features, policy.scoring.negation) for policy in POLICIES),
    (
        (
            FeatureSpec(name="dotted", terms=("e.g.", "budget")),
            FeatureSpec(name="plain", terms=("budget", "urgent"), negatable=False),
        ),
        NegationConfig(enabled=True),
    ),
    (
        (FeatureSpec(name="budget", terms=("budget", "money")),),
        NegationConfig(enabled=True, breaks=(",", "but")),
    ),
    (
        (FeatureSpec(name="budget", terms=("budget", "money")),),
        NegationConfig(enabled=True, negators=("no", ". no")),
    ),
]


def _same(texts: list[str]) -> None:
    for specs, negation in LEXICONS:
        for matching in ("tokens", "substring"):
            joined = extract_features(
                SEPARATOR.join(texts), specs, matching=matching, negation=negation
            )
            assert (
                extract_features_of_texts(
                    texts, SEPARATOR, tuple(specs), matching=matching, negation=negation
                )
                == joined
            )


def test_the_corpus_joined_in_runs_reads_as_its_joined_text() -> None:
    for size in (1, 2, 3, 7):
        for start in range(0, len(CORPUS), size * 5):
            _same(CORPUS[start : start + size])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(AT_THE_JOIN + CORPUS[:40]), min_size=1, max_size=6))
def test_texts_at_the_join_read_as_their_joined_text(texts: list[str]) -> None:
    _same(texts)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=" .,'’nobudgetΣσ!\n", max_size=20), min_size=1, max_size=4))
def test_arbitrary_texts_read_as_their_joined_text(texts: list[str]) -> None:
    _same(texts)


def test_a_conversations_narrative_is_that_of_its_joined_messages() -> None:
    for policy in POLICIES:
        for credit in (None, 300, 800):
            for start in range(0, 200, 4):
                messages = CORPUS[start : start + 4]
                assert assess_conversation_narrative(
                    messages, SEPARATOR, policy.narrative, policy.fairness, credit
                ) == assess_narrative(
                    SEPARATOR.join(messages), policy.narrative, policy.fairness, credit
                )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(AT_THE_JOIN + CORPUS[:20]), min_size=1, max_size=4),
    st.sampled_from(["\n.\n", ".", "x", " ", " , ", "\n", " no ", "\n. ", " .x"]),
)
def test_any_separator_reads_as_the_joined_text(texts: list[str], separator: str) -> None:
    for specs, negation in LEXICONS:
        joined = extract_features(
            separator.join(texts), specs, matching="tokens", negation=negation
        )
        assert (
            extract_features_of_texts(
                texts, separator, tuple(specs), matching="tokens", negation=negation
            )
            == joined
        )
