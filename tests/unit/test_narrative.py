"""Narrative resonance, urgency and the fairness penalty, as an auditor would recompute them."""

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.policy_loader import load_document
from domain.narrative import FairnessConfig, NarrativeAudit, NarrativeConfig, assess_narrative

DEFAULT_DOC = load_document("default")
SEED_DOC = load_document("seed")
SEED = NarrativeConfig.model_validate(SEED_DOC["narrative"])
DEFAULT = NarrativeConfig.model_validate(DEFAULT_DOC["narrative"])
FAIRNESS = FairnessConfig.model_validate(SEED_DOC["fairness"])

FUTURE = "I plan to start next month and am excited about the future"
URGENT = "This is urgent, we need priority support"
CURIOUS = "Curious about pricing, not urgent"


@pytest.mark.parametrize(
    ("text", "credit", "resonance", "urgency", "penalized", "reason", "code"),
    [
        (FUTURE, 700, "0.9", "0.2", "0.2", "no penalty", "no_penalty"),
        (
            URGENT,
            580,
            "0.1",
            "0.8",
            "0.16",
            "penalized (credit 580 < 600)",
            "credit_below_threshold",
        ),
        (CURIOUS, 620, "0.1", "0.8", "0.8", "no penalty", "no_penalty"),
    ],
)
def test_the_seed_reproduces_the_notebooks_audit_exactly(
    text, credit, resonance, urgency, penalized, reason, code
):
    audit = assess_narrative(text, SEED, FAIRNESS, credit)
    assert audit.resonance == Decimal(resonance)
    assert audit.raw_urgency == Decimal(urgency)
    assert audit.penalized_urgency == Decimal(penalized)
    assert audit.reason == reason
    assert audit.reason_code == code


def test_the_default_hears_not_urgent_as_not_urgent():
    audit = assess_narrative(CURIOUS, DEFAULT, FAIRNESS, 620)
    assert audit.features["urgency"] == 0
    assert audit.raw_urgency == 0


def test_the_default_agrees_with_the_seed_on_plain_statements():
    for text in (FUTURE, URGENT):
        seed, default = (assess_narrative(text, c, FAIRNESS, 580) for c in (SEED, DEFAULT))
        assert (default.resonance, default.penalized_urgency) == (
            seed.resonance,
            seed.penalized_urgency,
        )


def test_the_audit_shows_each_features_share_of_the_penalty():
    audit = assess_narrative(URGENT, SEED, FAIRNESS, 580)
    assert audit.contrib_urg == {
        "story_future": Decimal(0),
        "urgency": Decimal("0.8"),
        "emotional_valence": Decimal(0),
    }
    assert audit.contrib_res["urgency"] == Decimal("0.1")
    assert (audit.credit, audit.c0, audit.lambda_) == (580, 600, Decimal("0.8"))


def test_an_unknown_credit_score_is_not_penalized_and_says_why():
    audit = assess_narrative(URGENT, SEED, FAIRNESS, None)
    assert audit.penalized_urgency == audit.raw_urgency == Decimal("0.8")
    assert audit.reason == "no penalty (credit unknown)"
    assert audit.reason_code == "credit_unknown"


def test_a_credit_score_at_the_threshold_is_not_penalized():
    assert assess_narrative(URGENT, SEED, FAIRNESS, 600).reason_code == "no_penalty"
    assert assess_narrative(URGENT, SEED, FAIRNESS, 599).reason_code == "credit_below_threshold"


@pytest.mark.parametrize(("lam", "expected"), [("0", "0.8"), ("0.5", "0.4"), ("1", "0")])
def test_lambda_sets_the_fraction_of_urgency_removed(lam, expected):
    fairness = FairnessConfig.model_validate({"c0": 600, "lambda": Decimal(lam)})
    assert assess_narrative(URGENT, SEED, fairness, 500).penalized_urgency == Decimal(expected)


def test_penalized_urgency_never_goes_below_zero():
    config = SEED.model_copy(update={"urgency_weights": {"urgency": Decimal("-0.5")}})
    audit = assess_narrative(URGENT, config, FAIRNESS, 500)
    assert audit.raw_urgency == Decimal("-0.5")
    assert audit.penalized_urgency == 0


def test_lambda_outside_zero_to_one_is_refused():
    with pytest.raises(ValidationError):
        FairnessConfig.model_validate({"lambda": Decimal("1.2")})


def test_lambda_is_read_and_written_under_its_policy_name():
    fairness = FairnessConfig.model_validate({"c0": 650, "lambda": Decimal("0.5")})
    assert fairness.lambda_ == Decimal("0.5")
    assert FairnessConfig(lambda_=Decimal("0.5"), c0=650) == fairness
    assert fairness.model_dump(mode="json") == {"c0": 650, "lambda": "0.5"}
    audit = assess_narrative(URGENT, SEED, fairness, 600)
    assert json.loads(audit.model_dump_json())["lambda"] == "0.5"


def test_an_audit_survives_a_json_round_trip():
    audit = assess_narrative(URGENT, SEED, FAIRNESS, 580)
    assert NarrativeAudit.model_validate_json(audit.model_dump_json()) == audit


def test_weights_may_only_name_known_features():
    data = dict(SEED_DOC["narrative"])
    data["urgency_weights"] = {"urgncy": Decimal("0.8")}
    with pytest.raises(ValidationError, match="urgncy"):
        NarrativeConfig.model_validate(data)


weights = st.decimals(min_value=-10, max_value=10, places=4, allow_nan=False, allow_infinity=False)
phrases = st.lists(
    st.sampled_from(["plan", "urgent", "not", "soon", "excited", "great", ",", "priority", "x"]),
    max_size=8,
).map(" ".join)


@settings(deadline=None)
@given(
    text=st.one_of(st.text(max_size=60), phrases),
    w=st.lists(weights, min_size=6, max_size=6),
    credit=st.one_of(st.none(), st.integers(300, 850)),
    lam=st.decimals(min_value=0, max_value=1, places=3),
)
def test_attributions_add_up_and_the_penalty_follows_the_published_formula(text, w, credit, lam):
    names = ["story_future", "urgency", "emotional_valence"]
    config = DEFAULT.model_copy(
        update={
            "resonance_weights": dict(zip(names, w[:3], strict=True)),
            "urgency_weights": dict(zip(names, w[3:], strict=True)),
        }
    )
    fairness = FairnessConfig(c0=600, lambda_=lam)
    audit = assess_narrative(text, config, fairness, credit)
    assert sum(audit.contrib_res.values(), Decimal(0)) == audit.resonance
    assert sum(audit.contrib_urg.values(), Decimal(0)) == audit.raw_urgency
    if audit.reason_code == "credit_below_threshold":
        assert audit.penalized_urgency == max(Decimal(0), (1 - lam) * audit.raw_urgency)
    else:
        assert audit.penalized_urgency == audit.raw_urgency
