"""Objection classification, its confidence, and when a human must take over."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.policy_loader import load_document
from domain.objections import ObjectionConfig, classify_objection

DOC = load_document("default")
CONFIG = ObjectionConfig.model_validate(DOC["objections"])


@pytest.mark.parametrize(
    ("text", "objection"),
    [
        ("Honestly it's too expensive for what we get.", "price"),
        ("We're swamped with a migration, maybe later this year.", "timing"),
        ("We don't need half of these features.", "needs"),
        ("We already use another vendor for this.", "competitor"),
        ("I need to check with my boss before we go ahead.", "authority"),
        ("I'm not the decision maker here.", "authority"),
        ("Our legal team has to review the NDA first.", "contract"),
    ],
)
def test_each_objection_class_is_recognised_in_a_realistic_sentence(text, objection):
    result = classify_objection(text, CONFIG)
    assert result.objection == objection
    assert result.confidence == Decimal(1)


def test_a_clear_objection_is_answered_by_the_bot():
    result = classify_objection("Honestly it's too expensive for what we get.", CONFIG)
    assert not result.escalate
    assert result.escalation_reason is None
    assert result.hits["price"] == ("expensive",)


def test_a_mixed_objection_escalates_for_low_confidence():
    result = classify_objection("It's too expensive and the timing is bad.", CONFIG)
    assert result.objection == "price"  # a tie goes to the class listed first
    assert result.confidence == Decimal("0.500")
    assert result.escalate
    assert result.escalation_reason == "low_confidence"


def test_a_clear_majority_is_confident_enough_to_answer():
    result = classify_objection("The price is too expensive, maybe later", CONFIG)
    assert result.objection == "price"
    assert result.confidence == Decimal("0.667")
    assert not result.escalate


def test_the_confidence_floor_comes_from_the_policy():
    lenient = CONFIG.model_copy(update={"escalate_below": Decimal("0.5")})
    assert not classify_objection("It's too expensive and the timing is bad.", lenient).escalate


@pytest.mark.parametrize(
    ("text", "sensitive"),
    [
        ("Can we get refunds for unused seats?", "refund"),
        ("We cancelled the order last week", "cancel"),
        ("Both contracts need another look", "contract"),
        ("We may terminate early", "terminate"),
        ("Who owns liability under GDPR?", "liability"),
        ("There is an invoice dispute on our account", "invoice dispute"),
        ("What does your SLA promise?", "sla"),
        ("We filed a chargeback", "chargeback"),
    ],
)
def test_sensitive_terms_always_escalate_including_inflections(text, sensitive):
    result = classify_objection(text, CONFIG)
    assert sensitive in result.sensitive
    assert result.escalate
    assert result.escalation_reason == "sensitive_terms"


def test_sensitive_terms_take_precedence_over_low_confidence():
    text = "It's too expensive and the timing is bad, so I'll ask our lawyer."
    result = classify_objection(text, CONFIG)
    assert result.escalation_reason == "sensitive_terms"


def test_a_negated_sensitive_term_still_escalates():
    result = classify_objection("We don't want to cancel, just to talk", CONFIG)
    assert result.escalation_reason == "sensitive_terms"


def test_a_negated_objection_is_not_an_objection():
    result = classify_objection("It's not too expensive", CONFIG)
    assert result.objection is None
    assert not result.escalate


def test_no_objection_means_full_confidence_and_no_escalation():
    result = classify_objection("Sounds good, send the proposal over", CONFIG)
    assert result.objection is None
    assert result.confidence == Decimal(1)
    assert not result.escalate
    assert result.escalation_reason is None


def test_the_confidence_floor_must_be_between_0_and_1():
    data = dict(DOC["objections"])
    data["escalate_below"] = Decimal("1.5")
    with pytest.raises(ValidationError):
        ObjectionConfig.model_validate(data)


def test_class_names_must_be_unique():
    data = dict(DOC["objections"])
    data["classes"] = [*data["classes"], {"name": "price", "terms": ["cheap"]}]
    with pytest.raises(ValidationError, match="unique"):
        ObjectionConfig.model_validate(data)


words = st.sampled_from(
    ["price", "later", "contract", "my boss", "not", "feature", "competitor", "ok", ",", "we"]
)


@settings(deadline=None)
@given(text=st.one_of(st.text(max_size=60), st.lists(words, max_size=8).map(" ".join)))
def test_the_outcome_is_consistent_for_any_text(text):
    result = classify_objection(text, CONFIG)
    assert Decimal(0) < result.confidence <= Decimal(1)
    assert (result.objection is None) == (not any(result.hits.values()))
    assert result.escalate == (result.escalation_reason is not None)
    if result.sensitive:
        assert result.escalation_reason == "sensitive_terms"
    if result.objection is not None:
        total = sum(len(terms) for terms in result.hits.values())
        assert len(result.hits[result.objection]) == max(len(t) for t in result.hits.values())
        expected = (Decimal(len(result.hits[result.objection])) / total).quantize(Decimal("0.001"))
        assert result.confidence == expected
