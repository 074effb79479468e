"""The notebook's worked examples and deterministic tests, under the `seed` policy.

The notebook is the requirement: these numbers are copied from it. Where its floats show
0.8999…, the exact values (0.9, 0.16) are the right ones.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.narrative import assess_narrative
from domain.policy import Policy
from domain.quotes import QuoteRequest, compute_quote
from domain.scoring import score_lead

NOW_MS = 1_790_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We have a $5000 budget and want to start next month", Decimal("0.8")),
        ("Curious about pricing", Decimal("0")),
        ("I am the manager and want a demo soon", Decimal("0.5")),
    ],
)
def test_the_notebooks_three_leads_score_exactly_as_in_the_notebook(
    seed_policy: Policy, text: str, expected: Decimal
) -> None:
    assert score_lead(text, seed_policy.scoring).score == expected


def test_the_notebooks_deterministic_tests_hold(seed_policy: Policy) -> None:
    assert score_lead(
        "We have a $1000 budget and can start next month", seed_policy.scoring
    ).score > Decimal("0.5")
    assert score_lead("Just browsing", seed_policy.scoring).score < Decimal("0.5")


def test_the_seed_agrees_with_the_notebooks_substring_matching(seed_policy: Policy) -> None:
    # The notebook finds "next" inside "nextcloud"; the seed reproduces it on purpose.
    assert score_lead("we use nextcloud", seed_policy.scoring).features["timeline"] == 1


def test_the_notebooks_quote_is_exact_in_cents(seed_policy: Policy) -> None:
    quote = compute_quote(
        QuoteRequest(qty=10, unit_cents=19900, discount=Decimal("0.1")),
        seed_policy.catalog,
        now_ms=NOW_MS,
    )
    assert (quote.subtotal_cents, quote.discount_cents, quote.total_cents) == (
        199000,
        19900,
        179100,
    )


@pytest.mark.parametrize(
    ("text", "credit", "resonance", "raw", "penalized", "reason"),
    [
        (
            "I plan to start next month and am excited about the future",
            700,
            "0.9",
            "0.2",
            "0.2",
            "no penalty",
        ),
        (
            "This is urgent, we need priority support",
            580,
            "0.1",
            "0.8",
            "0.16",
            "penalized (credit 580 < 600)",
        ),
        ("Curious about pricing, not urgent", 620, "0.1", "0.8", "0.8", "no penalty"),
    ],
)
def test_the_notebooks_narrative_audit_cases_give_its_values_exactly(
    seed_policy: Policy,
    text: str,
    credit: int,
    resonance: str,
    raw: str,
    penalized: str,
    reason: str,
) -> None:
    audit = assess_narrative(text, seed_policy.narrative, seed_policy.fairness, credit)
    assert audit.resonance == Decimal(resonance)
    assert audit.raw_urgency == Decimal(raw)
    assert audit.penalized_urgency == Decimal(penalized)
    assert audit.reason == reason


def test_the_notebook_rounds_to_three_places_and_agrees_with_the_exact_values(
    seed_policy: Policy,
) -> None:
    audit = assess_narrative(
        "This is urgent, we need priority support", seed_policy.narrative, seed_policy.fairness, 580
    )
    notebook_float = round(0.8 - 0.8 * 0.8, 3)
    assert float(audit.penalized_urgency) == notebook_float
