"""The reader's features and arithmetic: what a rep sees in the audit must be recomputable."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.corpus import load_spec
from bot.policy_loader import load_policy
from bot.training import blank_model
from domain.understanding.features import extract
from domain.understanding.model import (
    BINARY_HEADS,
    HEADS,
    BandHead,
    Calibration,
    Head,
    ReaderModel,
    to_micro,
)
from domain.understanding.reading import explain, head_sums, read
from domain.understanding.text import _ELISION, _TOKEN, key, normalize, tokens

SPEC, _CONFIG, _SHA = load_spec(Path("data/understanding/features.toml"))
MODEL = blank_model(SPEC, ("budget", "expensive", "approved", "the", "price"))
TODAY = date(2026, 12, 5)


def features(text: str) -> dict[str, int]:
    return extract(text, MODEL, today=TODAY).features


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Hello, we are looking for a CRM for our team", "en"),
        ("Hallo, wir suchen eine Lösung für unser Team", "de"),
        ("Bonjour, nous cherchons un outil pour notre équipe", "fr"),
        ("Hola, buscamos una herramienta para nuestro equipo", "es"),
        ("ok", "und"),
    ],
)
def test_the_language_is_identified_from_marker_words_and_letters(text: str, language: str) -> None:
    assert extract(text, MODEL, today=TODAY).language == language


def test_negation_reaches_forwards_from_a_negator() -> None:
    assert "lex:budget:not" in features("We have no budget for this")
    assert "lex:budget" not in features("We have no budget for this")


def test_negation_reaches_backwards_from_a_phrase_like_is_not_an_issue() -> None:
    found = features("Price is not an issue for us")
    assert "lex:pricing:not" in found
    assert "lex:pricing" not in found


def test_a_break_stops_negation() -> None:
    found = features("No, the budget is approved")
    assert "lex:budget" in found
    assert "lex:budget:not" not in found


def test_sensitive_lexicons_count_even_when_negated() -> None:
    assert "lex:billing" in features("we do not want to cancel")


def test_a_one_letter_typo_of_a_lexicon_word_is_repaired_and_marked() -> None:
    found = extract("the budjet is aproved", MODEL, today=TODAY)
    assert found.features.get("typo:budget") == 1
    assert "lex:budget" in found.features
    assert "budjet→budget" in found.evidence["typo:budget"]


def test_known_words_are_never_repaired() -> None:
    assert "typo:budget" not in features("the budget is fine")


def test_a_substring_is_not_a_word() -> None:
    assert "ent:competitor" not in features("we run Nextcloud and Driftwood")


def test_french_elisions_are_split() -> None:
    assert tokens("l'équipe n'a pas") == ["l'", "équipe", "n'", "a", "pas"]


def test_keys_ignore_accents_after_stemming() -> None:
    assert key("résiliation", "fr") == key("resiliation", "fr")


def test_every_feature_value_is_an_integer() -> None:
    found = features("We can spend $15k by March, team of 40, we use HubSpot. Not urgent?")
    assert found
    assert all(type(value) is int for value in found.values())


def _tiny_model() -> ReaderModel:
    heads = {name: Head() for name in BINARY_HEADS}
    heads["signal:budget"] = Head.model_validate(
        {"bias": "-0.5", "threshold": 0, "weights": {"lex:budget": "0.75"}}
    )
    return ReaderModel(
        generator_version="test",
        spec=SPEC,
        vocabulary=MODEL.vocabulary,
        band=BandHead.model_validate(
            {"hot": "1.2", "warm": "0.3", "weights": {"lex:budget": "0.5", "lex:timeline": "0.4"}}
        ),
        heads=heads,
    )


def test_sums_are_exact_integer_millionths_and_explanations_add_up() -> None:
    model = _tiny_model()
    reading, extraction = read("Budget is approved and we need it asap", model, today=TODAY)
    assert reading.sums["band"] == 900_000
    assert reading.score == Decimal("0.9")
    assert reading.band == "warm"
    terms, total, threshold = explain(model, "band", extraction.features)
    assert sum(t.contribution for t in terms) == total == Decimal("0.9")
    assert threshold == Decimal("0.3")
    assert reading.signals["budget"] is True  # -0.5 + 0.75 >= 0


def test_weights_with_more_than_six_places_are_refused() -> None:
    with pytest.raises(ValidationError):
        Head.model_validate({"weights": {"w:x": "0.1234567"}})
    assert to_micro(0.1) == 100_000
    assert to_micro("-1.5") == -1_500_000


@given(st.text(max_size=300))
def test_any_text_is_read_without_error(text: str) -> None:
    reading, _ = read(text, _tiny_model(), today=TODAY)
    assert reading.band in {"hot", "warm", "cold"}
    assert set(head_sums(_tiny_model(), reading.features)) >= {"band", *BINARY_HEADS}


def _model_with(weights: dict[str, dict[str, int]], rules: tuple[str, ...]) -> ReaderModel:
    """Every head off (bias -1) except through the given lexicon weights, with `rules`."""
    heads = {name: Head(bias=-1_000_000, weights=weights.get(name, {})) for name in BINARY_HEADS}
    return ReaderModel.model_validate(
        {
            "generator_version": "test",
            "spec": SPEC,
            "band": BandHead(hot=2_000_000, warm=1_000_000),
            "heads": heads,
            "rules": rules,
        }
    )


def _legal_reason_model(rules: tuple[str, ...]) -> ReaderModel:
    """`lex:legal` fires the legal reason but no objection head: only a rule can object."""
    return _model_with({"reason:legal": {"lex:legal": 2_000_000}}, rules)


def test_the_contract_reasons_rule_makes_a_legal_reason_a_contract_objection() -> None:
    text = "Our lawyer wants to change the governing law clause"
    with_rule, _ = read(text, _legal_reason_model(("contract_reasons_object",)), today=TODAY)
    without, _ = read(text, _legal_reason_model(()), today=TODAY)
    assert with_rule.reasons == ("legal",)
    assert with_rule.objection == "contract"
    # A model written before the rule existed reads as it did: its stored readings replay.
    assert without.reasons == ("legal",)
    assert without.objection is None


def test_a_model_without_rules_serialises_as_before_rules_existed() -> None:
    assert "rules" not in _legal_reason_model(()).model_dump(mode="json")
    dumped = _legal_reason_model(("contract_reasons_object",)).model_dump(mode="json")
    assert dumped["rules"] == ["contract_reasons_object"]
    with pytest.raises(ValidationError):
        _legal_reason_model(("an_unknown_rule",))


def test_the_authority_rule_keeps_a_decision_maker_from_raising_the_authority_objection() -> None:
    """The writer signs ("I'm the CFO") while an approver word is present ("procurement"):
    both heads fire; under the rule the next firing objection (here price) is taken."""
    weights = {
        "signal:authority": {"lex:authority": 2_000_000},
        "objection:authority": {"lex:approver": 3_000_000},
        "objection:price": {"lex:expensive": 2_000_000},
    }

    def reader(rules: tuple[str, ...]) -> ReaderModel:
        return _model_with(weights, rules)

    text = "I'm the CFO and I sign; procurement says it's too expensive"
    ruled, _ = read(text, reader(("authority_signal_not_objection",)), today=TODAY)
    plain, _ = read(text, reader(()), today=TODAY)
    assert ruled.signals["authority"]
    assert ruled.objection == "price"
    assert plain.signals["authority"]
    assert plain.objection == "authority"


@given(st.text(max_size=200))
def test_splitting_on_white_space_first_tokenises_exactly_as_the_expression_over_the_text(
    text: str,
) -> None:
    # `tokens` splits on white space and runs the expression only on pieces that are not a
    # plain word: the result must be the expression's over the whole (normalized) text.
    normalized = normalize(text)
    expected: list[str] = []
    for raw in _TOKEN.findall(normalized):
        elided = _ELISION.match(raw) if "'" in raw else None
        expected.extend((elided.group(1) + "'", elided.group(2)) if elided else (raw,))
    assert tokens(text) == expected
    assert normalize(text) == text.translate(_QUOTES).casefold()


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def _sums_head_by_head(model: ReaderModel, features: dict[str, int]) -> dict[str, int]:
    return {
        name: model.head(name).bias
        + sum(model.head(name).weights.get(f, 0) * v for f, v in features.items())
        for name in HEADS
    }


@settings(max_examples=60, derandomize=True)
@given(st.data())
def test_packed_head_sums_equal_the_sums_head_by_head_on_the_shipped_model(
    data: st.DataObject,
) -> None:
    # All heads are added at once as 64-bit lanes of one integer; a borrow or a carry
    # between lanes would silently shift another head's sum.
    understanding = load_policy("default").understanding
    assert understanding is not None
    model = understanding.reader
    names = sorted({f for name in HEADS for f in model.head(name).weights})
    chosen = data.draw(st.lists(st.sampled_from(names), max_size=80, unique=True))
    indicators = dict.fromkeys(chosen, 1)
    assert head_sums(model, indicators) == _sums_head_by_head(model, indicators)
    counts = {f: data.draw(st.integers(min_value=0, max_value=5)) for f in chosen}
    assert head_sums(model, counts) == _sums_head_by_head(model, counts)


def test_a_model_whose_weights_could_overflow_a_lane_is_summed_head_by_head() -> None:
    model = _tiny_model()
    huge = model.model_copy(
        update={
            "band": model.band.model_copy(
                update={"weights": {"w:budget": 2**62, "w:approv": -(2**62)}}
            )
        }
    )
    assert head_sums(huge, {"w:budget": 1, "w:approv": 1})["band"] == model.band.bias
    assert head_sums(huge, {"w:budget": 1})["band"] == model.band.bias + 2**62


@settings(max_examples=400, derandomize=True)
@given(
    st.integers(min_value=-5_000_000, max_value=5_000_000),
    st.integers(min_value=-20_000_000, max_value=20_000_000),
    st.integers(min_value=-(10**9), max_value=10**9),
)
def test_the_fast_calibrated_probability_is_the_exact_one_to_the_last_place(
    a: int, b: int, total: int
) -> None:
    # Recorded with every reading, so it must not depend on the platform's floating point.
    calibration = Calibration(a=a, b=b)
    assert str(calibration.probability(total)) == str(calibration.exact_probability(total))
