"""Lead scoring: the notebook's numbers, the product default's judgement, exact attribution."""

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.policy_loader import load_document
from domain.scoring import (
    Bands,
    MetadataFeature,
    ScoringConfig,
    TextFeature,
    logistic,
    score_lead,
)

DEFAULT_DOC = load_document("default")
SEED_DOC = load_document("seed")
DEFAULT = ScoringConfig.model_validate(DEFAULT_DOC["scoring"])
SEED = ScoringConfig.model_validate(SEED_DOC["scoring"])

NOTEBOOK_EXAMPLES = [
    ("We have a $5000 budget and want to start next month", Decimal("0.8")),
    ("Curious about pricing", Decimal("0")),
    ("I am the manager and want a demo soon", Decimal("0.5")),
]


def notebook_score(text: str) -> Decimal:
    """The notebook's scorer, transcribed with exact weights."""
    t = text.lower()
    budget = 1 if "budget" in t or "$" in t else 0
    timeline = 1 if "soon" in t or "next" in t or "month" in t else 0
    authority = 1 if "i am" in t or "we are" in t else 0
    return Decimal("0.5") * budget + Decimal("0.3") * timeline + Decimal("0.2") * authority


@pytest.mark.parametrize(("text", "expected"), NOTEBOOK_EXAMPLES)
def test_the_seed_reproduces_the_notebooks_scores_exactly(text, expected):
    assert score_lead(text, SEED).score == expected


def test_the_seed_passes_the_notebooks_deterministic_tests():
    assert score_lead("We have a $1000 budget and can start next month", SEED).score > Decimal(
        "0.5"
    )
    assert score_lead("Just browsing", SEED).score < Decimal("0.5")


notebookish = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.sampled_from(
            ["budget", "$", "soon", "Next", "months", "I am", "we are", "Nextcloud", "IAM", "x"]
        ),
        max_size=6,
    ).map(" ".join),
)


@settings(deadline=None)
@given(text=notebookish)
def test_the_seed_agrees_with_the_notebook_on_any_text(text):
    assert score_lead(text, SEED).score == notebook_score(text)


def test_the_default_ranks_a_budgeted_timeline_lead_hot_and_browsing_cold():
    assert score_lead(NOTEBOOK_EXAMPLES[0][0], DEFAULT).band == "hot"
    assert score_lead("Just browsing", DEFAULT).band == "cold"
    assert score_lead("Curious about pricing", DEFAULT).band == "cold"


def test_the_default_does_not_read_nextcloud_as_next():
    result = score_lead("We run Nextcloud for our files", DEFAULT)
    assert result.features["timeline"] == 0
    assert result.score == 0


def test_the_default_reads_no_budget_as_a_negative_signal():
    result = score_lead("We have no budget for this", DEFAULT)
    assert result.features["budget"] == 0
    assert result.negated["budget"] == ("budget",)
    assert result.features["no_budget"] == 1
    assert result.score < 0
    assert result.band == "cold"


def test_the_default_does_not_count_not_urgent_as_a_timeline():
    result = score_lead("We have a budget but it is not urgent", DEFAULT)
    assert result.features["timeline"] == 0
    assert result.features["budget"] == 1


def test_the_default_names_the_words_behind_each_point():
    result = score_lead("I'm the CTO and we need this by the end of March", DEFAULT)
    assert result.evidence["authority"] == ("i'm the", "cto")
    assert result.evidence["timeline"] == ("by the end of",)
    assert result.contributions["authority"] == Decimal("0.2")


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"company_size": 250}, 1),
        ({"company_size": "200"}, 1),
        ({"company_size": Decimal("199.5")}, 0),
        ({"company_size": "abc"}, 0),
        ({"company_size": "NaN"}, 0),
        ({}, 0),
    ],
)
def test_company_size_counts_only_when_it_is_a_number_at_the_threshold(metadata, expected):
    assert score_lead("hello", DEFAULT, metadata).features["large_company"] == expected


def test_a_referral_source_counts_whatever_its_case_and_says_so():
    result = score_lead("hello", DEFAULT, {"source": " Referral"})
    assert result.features["warm_source"] == 1
    assert result.evidence["warm_source"] == ("source= Referral",)
    assert score_lead("hello", DEFAULT, {"source": "web"}).features["warm_source"] == 0


def test_metadata_adds_its_weight_to_the_score():
    plain = score_lead("hello", DEFAULT)
    enriched = score_lead("hello", DEFAULT, {"company_size": 5000, "source": "partner"})
    assert enriched.score - plain.score == Decimal("0.2")


def test_a_metadata_feature_needs_exactly_one_test():
    with pytest.raises(ValidationError, match="exactly one"):
        MetadataFeature(name="m", weight=Decimal(1), key="k")
    with pytest.raises(ValidationError, match="exactly one"):
        MetadataFeature(name="m", weight=Decimal(1), key="k", at_least=Decimal(1), one_of=("a",))


def one_feature(**overrides: Any) -> ScoringConfig:
    data: dict[str, Any] = {
        "features": [{"name": "budget", "weight": Decimal("1"), "terms": ["budget"]}],
        "bands": {"hot": Decimal("0.7"), "warm": Decimal("0.4")},
    }
    data.update(overrides)
    return ScoringConfig.model_validate(data)


def test_feature_names_must_be_unique():
    with pytest.raises(ValidationError, match="unique"):
        one_feature(metadata=[{"name": "budget", "weight": 1, "key": "k", "at_least": 1}])


def test_the_hot_band_must_be_above_the_warm_band():
    with pytest.raises(ValidationError, match="above"):
        Bands(hot=Decimal("0.4"), warm=Decimal("0.4"))


def test_logistic_bands_must_be_probabilities():
    with pytest.raises(ValidationError, match="probabilities"):
        one_feature(link="logistic", bands={"hot": Decimal(2), "warm": Decimal(1)})


def test_a_weight_with_too_many_decimals_is_refused():
    with pytest.raises(ValidationError):
        TextFeature(name="x", weight=Decimal("0.1234567891"), terms=("x",))


def test_the_intercept_is_listed_as_a_contribution():
    result = score_lead("nothing relevant", one_feature(intercept=Decimal("-0.25")))
    assert result.contributions == {"budget": Decimal(0), "intercept": Decimal("-0.25")}
    assert result.score == Decimal("-0.25")


def test_the_logistic_link_gives_a_probability_and_bands_read_it():
    config = one_feature(link="logistic", bands={"hot": Decimal("0.7"), "warm": Decimal("0.5")})
    with_budget = score_lead("our budget is set", config)
    without = score_lead("hello", config)
    assert with_budget.probability == Decimal("0.731059")  # σ(1)
    assert with_budget.band == "hot"
    assert without.probability == Decimal("0.5")
    assert without.band == "warm"
    assert score_lead("hello", one_feature()).probability is None


def test_the_logistic_link_is_monotone_and_strictly_between_0_and_1():
    scores = [Decimal(n) / 4 for n in range(-80, 81)] + [Decimal("-1E9"), Decimal("1E9")]
    probabilities = [logistic(s) for s in sorted(scores)]
    assert all(Decimal(0) < p < Decimal(1) for p in probabilities)
    assert probabilities == sorted(probabilities)
    assert logistic(Decimal(-1)) < logistic(Decimal(0)) < logistic(Decimal(1))


weights = st.decimals(
    min_value=-1000, max_value=1000, places=6, allow_nan=False, allow_infinity=False
)
words = st.sampled_from(["budget", "$", "soon", "next", "month", "no", "not", "i am", "€", "."])


@settings(deadline=None)
@given(
    text=st.one_of(st.text(max_size=60), st.lists(words, max_size=8).map(" ".join)),
    ws=st.lists(weights, min_size=4, max_size=4),
    matching=st.sampled_from(["tokens", "substring"]),
    size=st.one_of(st.integers(-10, 1000), st.text(max_size=5)),
)
def test_contributions_always_sum_exactly_to_the_score(text, ws, matching, size):
    config = ScoringConfig.model_validate(
        {
            "matching": matching,
            "negation": {"enabled": True},
            "intercept": ws[3],
            "features": [
                {"name": "budget", "weight": ws[0], "terms": ["budget", "$", "€"]},
                {"name": "timeline", "weight": ws[1], "terms": ["soon", "next month"]},
            ],
            "metadata": [{"name": "size", "weight": ws[2], "key": "size", "at_least": 200}],
            "bands": {"hot": Decimal("0.7"), "warm": Decimal("0.4")},
        }
    )
    result = score_lead(text, config, {"size": size})
    assert sum(result.contributions.values(), Decimal(0)) == result.score
    for name, x in result.features.items():
        assert x in (0, 1)
        assert result.contributions[name] == result.weights[name] * x


def test_the_default_draft_has_all_signal_sections():
    assert {"scoring", "narrative", "fairness", "objections"} <= set(DEFAULT_DOC)
    assert DEFAULT.matching == "tokens"
    assert DEFAULT.negation.enabled
    assert SEED.matching == "substring"
    assert SEED.metadata == ()
    assert [f.name for f in SEED.features] == ["budget", "timeline", "authority"]
