"""Term matching: what counts as a mention of a term, and what negates it."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.text import FeatureSpec, NegationConfig, TermHit, extract_features, find_terms

NEGATION = NegationConfig(enabled=True)


def found(text: str, *terms: str, negation: NegationConfig | None = None) -> dict[str, bool]:
    """term -> negated, for the terms found in `text` with token matching."""
    hits = find_terms(text, terms, matching="tokens", negation=negation)
    return {hit.term: hit.negated for hit in hits}


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("We signed two contracts last year", "contract"),
        ("Do you offer refunds?", "refund"),
        ("Our order was cancelled", "cancel"),
        ("Both budgets are approved", "budget"),
        ("Priorities have shifted", "priority"),
    ],
)
def test_inflected_words_match_their_term(text, term):
    assert found(text, term) == {term: False}


def test_a_word_containing_a_term_is_not_a_mention_of_it():
    assert found("We host everything on Nextcloud", "next") == {}


def test_the_substring_mode_keeps_the_notebooks_naive_behaviour():
    hits = find_terms("We host everything on Nextcloud", ["next"], matching="substring")
    assert hits == (TermHit(term="next", negated=False),)


def test_a_derived_word_with_another_stem_does_not_match_its_root():
    # Documented limit: "budgetary" stems to "budgetari"; lexicons list such words explicitly.
    assert found("a budgetary concern", "budget") == {}


def test_a_phrase_matches_only_its_words_in_order_and_adjacent():
    assert found("We want to start next month", "next month") == {"next month": False}
    assert found("Next, the month after", "next month") == {}
    assert found("the month next door", "next month") == {}


def test_symbols_are_terms_of_their_own():
    assert found("We have $5000 set aside", "$") == {"$": False}
    assert found("Around €300 a month", "€", "$") == {"€": False}
    assert found("About 5000 USD", "$") == {}


def test_matching_ignores_case_and_typographic_apostrophes():
    assert found("I’M THE CTO here", "i'm the", "cto") == {"i'm the": False, "cto": False}


def test_terms_with_the_same_stem_are_one_piece_of_evidence():
    assert found("What is your pricing?", "price", "pricing") == {"price": False}


def test_a_negator_just_before_a_term_negates_it():
    assert found("We have no budget", "budget", negation=NEGATION) == {"budget": True}
    assert found("It is not urgent", "urgent", negation=NEGATION) == {"urgent": True}
    assert found("We don’t have a budget", "budget", negation=NEGATION) == {"budget": True}


def test_negation_is_off_unless_enabled():
    assert found("We have no budget", "budget") == {"budget": False}
    assert found("We have no budget", "budget", negation=NegationConfig()) == {"budget": False}


def test_a_comma_or_but_stops_a_negation():
    assert found("No, the budget is approved", "budget", negation=NEGATION) == {"budget": False}
    assert found("Not sure but budget exists", "budget", negation=NEGATION) == {"budget": False}


def test_a_negator_outside_the_window_does_not_negate():
    narrow = NegationConfig(enabled=True, window=1)
    assert found("not a budget", "budget", negation=narrow) == {"budget": False}
    assert found("not a budget", "budget", negation=NEGATION) == {"budget": True}


def test_a_multi_word_negator_negates():
    config = NegationConfig(enabled=True, negators=("no longer",))
    assert found("We no longer need it", "need", negation=config) == {"need": True}
    assert found("We no need it", "need", negation=config) == {"need": False}


def test_a_term_is_negated_only_when_every_mention_is():
    text = "No budget last year; this year the budget is approved"
    assert found(text, "budget", negation=NEGATION) == {"budget": False}


def test_substring_mode_never_negates():
    hits = find_terms("We have no budget", ["budget"], matching="substring", negation=NEGATION)
    assert hits == (TermHit(term="budget", negated=False),)


def test_a_feature_fires_only_on_a_mention_that_is_not_negated():
    specs = [
        FeatureSpec(name="budget", terms=("budget", "$")),
        FeatureSpec(name="no_budget", terms=("no budget",), negatable=False),
    ]
    values = extract_features("No budget yet", specs, matching="tokens", negation=NEGATION)
    assert values["budget"].value == 0
    assert values["budget"].negated == ("budget",)
    assert values["budget"].hits == ()
    assert values["no_budget"].value == 1
    assert values["no_budget"].hits == ("no budget",)


def test_a_non_negatable_feature_counts_a_negated_mention():
    specs = [FeatureSpec(name="urgency", terms=("urgent",), negatable=False)]
    values = extract_features("not urgent", specs, matching="tokens", negation=NEGATION)
    assert values["urgency"].value == 1


def test_a_blank_term_is_refused():
    with pytest.raises(ValidationError):
        FeatureSpec(name="empty", terms=("budget", "  "))


ascii_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz $',.", max_size=60)
lexicon = st.lists(
    st.sampled_from(["budget", "next month", "$", "no", "i'm the", "cancel", "a", "xyz"]),
    min_size=1,
    max_size=5,
)


@settings(deadline=None)
@given(text=ascii_text, terms=lexicon)
def test_matching_does_not_depend_on_letter_case(text, terms):
    lower = find_terms(text, terms, matching="tokens", negation=NEGATION)
    upper = find_terms(text.upper(), terms, matching="tokens", negation=NEGATION)
    assert lower == upper


@settings(deadline=None)
@given(text=st.text(max_size=80), terms=lexicon)
def test_only_requested_terms_are_reported_and_each_once(text, terms):
    hits = find_terms(text, terms, matching="tokens", negation=NEGATION)
    reported = [hit.term for hit in hits]
    assert set(reported) <= set(terms)
    assert len(reported) == len(set(reported))
