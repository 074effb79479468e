"""Re-deriving recorded decisions from their recorded numbers (issue 15, item 6): what lets an
erased conversation's decisions still verify. Every decision a store holds, from this
release or an earlier one, follows again from what it recorded; a recorded decision that
does not follow from its own numbers is named, with the aspect and both readings."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.bootstrap import open_store
from bot.cli_replay import _recorded_policies
from bot.settings import load_settings
from domain.events import (
    EventEnvelope,
    LeadScored,
    MessageRead,
    NarrativeAssessed,
    PursuitDecided,
    QuoteIssued,
)
from domain.policy import Policy
from domain.presenters import number
from domain.recorded_decisions import RecordedCheck, check_recorded_decisions
from tests.bot.seeded_store import LEAD, seeded_store_file

STORES = sorted((Path(__file__).parents[1] / "fixtures" / "stores").glob("release-*.db"))


def load_all(db: Path) -> tuple[dict[str, list[EventEnvelope]], Callable[[str], Policy]]:
    async def read() -> tuple[dict[str, list[EventEnvelope]], Callable[[str], Policy]]:
        os.environ["SALESBOT_DB"] = str(db)
        async with open_store(load_settings()) as store:
            policy_for = await _recorded_policies(store)
            events = {cid: list(await store.load(cid)) for cid in await store.conversation_ids()}
        return events, policy_for

    return asyncio.run(read())


@pytest.mark.parametrize("fixture", STORES, ids=[path.stem for path in STORES])
def test_every_decision_of_an_earlier_release_follows_from_its_recorded_numbers(
    fixture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "store.db"
    shutil.copy(fixture, db)
    monkeypatch.setenv("SALESBOT_DB", str(db))
    conversations, policy_for = load_all(db)
    checks = [
        check_recorded_decisions(cid, events, policy_for) for cid, events in conversations.items()
    ]
    assert [d for check in checks for d in check.differences] == []
    assert sum(check.checked for check in checks) >= 25


Lead = tuple[list[EventEnvelope], Callable[[str], Policy]]


@pytest.fixture
def lead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lead:
    db, _quote = seeded_store_file(tmp_path, monkeypatch)
    conversations, policy_for = load_all(db)
    return conversations[LEAD], policy_for


def checked(events: Sequence[EventEnvelope], policy_for: Callable[[str], Policy]) -> RecordedCheck:
    return check_recorded_decisions(LEAD, events, policy_for)


def edited(
    events: Sequence[EventEnvelope], kind: type, change: Callable[[Any], Any]
) -> tuple[list[EventEnvelope], int]:
    """The events with the first event of `kind` changed by `change`, and its seq."""
    index = next(i for i, env in enumerate(events) if isinstance(env.event, kind))
    envelope = events[index]
    changed = envelope.model_copy(update={"event": change(envelope.event)})
    return [*events[:index], changed, *events[index + 1 :]], envelope.seq


def test_the_seeded_leads_decisions_all_follow_from_their_numbers(lead: Lead) -> None:
    events, policy_for = lead
    result = checked(events, policy_for)
    assert result.differences == ()
    kinds = {type(env.event) for env in events}
    assert {MessageRead, LeadScored, NarrativeAssessed, PursuitDecided, QuoteIssued} <= kinds
    assert result.checked == sum(
        isinstance(env.event, (MessageRead, LeadScored, NarrativeAssessed, PursuitDecided))
        or (isinstance(env.event, QuoteIssued) and env.event.replaces_quote_id is None)
        for env in events
    )


def test_a_band_that_its_contributions_do_not_give_is_named(lead: Lead) -> None:
    events, policy_for = lead

    def colder(event: LeadScored) -> LeadScored:
        score = event.score.model_copy(update={"band": "cold"})
        return event.model_copy(update={"score": score, "qualified": False})

    changed, seq = edited(events, LeadScored, colder)
    (difference, *_) = checked(changed, policy_for).differences
    assert (difference.aspect, difference.position) == ("score", seq)
    assert " cold, not qualified (" in difference.recorded
    assert " cold, " not in difference.replayed


def test_a_reading_its_features_do_not_give_is_named(lead: Lead) -> None:
    events, policy_for = lead

    def without_features(event: MessageRead) -> MessageRead:
        return event.model_copy(update={"features": {}})

    changed, seq = edited(events, MessageRead, without_features)
    differences = checked(changed, policy_for).differences
    assert differences[0].aspect == "score"
    assert differences[0].position == seq
    assert differences[0].recorded.startswith("read ")
    assert differences[0].recorded != differences[0].replayed


def test_a_penalty_the_credit_check_did_not_call_for_is_named(lead: Lead) -> None:
    # The lead's credit (580) was below c0 (600): recorded as such, its urgency halved.
    # Claiming the check found no reason to penalise contradicts the recorded urgency.
    events, policy_for = lead
    first = next(env.event for env in events if isinstance(env.event, NarrativeAssessed))
    assert first.audit.reason_code == "credit_below_threshold"

    def unpenalised(event: NarrativeAssessed) -> NarrativeAssessed:
        return event.model_copy(
            update={"audit": event.audit.model_copy(update={"reason_code": "no_penalty"})}
        )

    changed, seq = edited(events, NarrativeAssessed, unpenalised)
    (difference,) = [d for d in checked(changed, policy_for).differences if d.position == seq]
    raw = first.audit.raw_urgency
    assert raw > 0
    assert difference.recorded.endswith(
        f"urgency {number(raw)} → {number(first.audit.penalized_urgency)} after the fairness "
        "penalty"
    )
    assert difference.replayed.endswith(
        f"urgency {number(raw)} → {number(raw)} after the fairness penalty"
    )


def test_a_pursuit_the_rule_does_not_give_is_named(lead: Lead) -> None:
    events, policy_for = lead

    def flipped(event: PursuitDecided) -> PursuitDecided:
        return event.model_copy(update={"pursue_now": not event.pursue_now})

    changed, seq = edited(events, PursuitDecided, flipped)
    (difference,) = [d for d in checked(changed, policy_for).differences if d.position == seq]
    assert difference.aspect == "team"
    assert difference.recorded != difference.replayed


def test_a_quote_whose_inputs_give_another_is_named(lead: Lead) -> None:
    events, policy_for = lead

    def unapproved(event: QuoteIssued) -> QuoteIssued:
        quote = event.quote.model_copy(update={"needs_approval": not event.quote.needs_approval})
        return event.model_copy(update={"quote": quote})

    changed, seq = edited(events, QuoteIssued, unapproved)
    (difference,) = [d for d in checked(changed, policy_for).differences if d.position == seq]
    assert difference.aspect == "quote"
    assert difference.recorded.rsplit(", ", 1)[1] != difference.replayed.rsplit(", ", 1)[1]


def test_a_candidate_policy_rereads_the_same_features(lead: Lead) -> None:
    # The what-if: the same recorded features under a reader whose bands are out of reach.
    events, policy_for = lead

    def unreachable(version: str) -> Policy:
        policy = policy_for(version)
        assert policy.understanding is not None
        reader = policy.understanding.reader
        band = reader.band.model_copy(update={"hot": 10**12, "warm": 10**11})
        understanding = policy.understanding.model_copy(
            update={"reader": reader.model_copy(update={"band": band})}
        )
        return policy.model_copy(update={"understanding": understanding})

    recorded = {env.event.score.band for env in events if isinstance(env.event, LeadScored)}
    assert recorded != {"cold"}
    scores = [d for d in checked(events, unreachable).differences if "qualified" in d.recorded]
    assert scores
    assert all(" cold, not qualified" in d.replayed for d in scores)
