"""Replay: the recorded policy reproduces every decision; another policy shows what changes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.policy_loader import load_policy
from domain.decide import decide
from domain.errors import DomainError
from domain.events import MessageRead
from domain.inbound import (
    ActionId,
    Actor,
    ButtonClicked,
    CommandInvoked,
    TimerElapsed,
)
from domain.policy import Policy
from domain.replay import replay_conversation
from tests.support.conversation import Recording

# These replays change the lexicon scorer's weights and bands, so they run on the default
# policy as it read before the trained reader; `test_a_retrained_reader_*` replays the reader.
READER = load_policy("default")
POLICY = READER.model_copy(update={"understanding": None})
CID = "conv-replay"
NOW = 1_790_000_000_000
DAY = 24 * 3600 * 1000
PROSPECT = Actor(id="P", name="Pat", role="prospect")
REP = Actor(id="R", name="Rae", role="rep")
BOSS = Actor(id="B", name="Bo", role="rep", approver=True, auditor=True)
FEED = Actor(id="feed", role="prospect")

VAGUE_LEAD = "Hello, tell me more about your product"
HOT_MESSAGE = "We have a $5000 budget, I am the CTO, starting next month"


def recording(policy: Policy, conversation_id: str = CID) -> Recording:
    return Recording(policy, conversation_id, now=NOW, lead_actor=FEED)


def recorded_policy(policies: list[Policy]) -> Any:
    by_version = {p.version: p for p in policies}
    return lambda version: by_version[version]


def always(policy: Policy) -> Any:
    return lambda version: policy


def policy_file(tmp_path: Path, body: str) -> Policy:
    path = tmp_path / "candidate.toml"
    path.write_text(f'extends = "default"\nunderstanding = false\n{body}', encoding="utf-8")
    return load_policy(str(path))


def qualified_after_two_messages() -> Recording:
    rec = recording(POLICY)
    rec.lead(VAGUE_LEAD)
    rec.say(HOT_MESSAGE)
    return rec


def test_a_conversation_that_became_a_proposal_replays_with_no_differences() -> None:
    rec = qualified_after_two_messages()
    rec.say("quote 10 pro 10%", actor=REP)
    assert rec.state.flow_state == "proposal"
    result = replay_conversation(CID, rec.inbounds, rec.events, recorded_policy([POLICY]))
    assert result.inbounds == 3
    assert result.differences == ()


def test_a_higher_hot_band_sends_the_lead_back_to_qualify_and_reports_state_and_score(
    tmp_path: Path,
) -> None:
    rec = qualified_after_two_messages()
    assert rec.state.flow_state == "proposal"
    stricter = policy_file(tmp_path, "[scoring.bands]\nhot = 0.95\nwarm = 0.4\n")
    result = replay_conversation(CID, rec.inbounds, rec.events, always(stricter))
    found = {(d.position, d.aspect): d for d in result.differences}
    assert found[(2, "state")].recorded == "proposal"
    assert found[(2, "state")].replayed == "qualify"
    assert found[(2, "score")].recorded == "0.9 hot, qualified"
    assert found[(2, "score")].replayed == "0.9 warm, not qualified"
    assert found[(2, "reply")].delivery_id == "d2"
    assert not [d for d in result.differences if d.position == 1]


def test_a_smaller_budget_weight_is_reported_as_a_changed_score_and_state() -> None:
    rec = qualified_after_two_messages()
    features = tuple(
        f.model_copy(update={"weight": Decimal("0.1")}) if f.name == "budget" else f
        for f in POLICY.scoring.features
    )
    lighter = POLICY.model_copy(
        update={"scoring": POLICY.scoring.model_copy(update={"features": features})}
    )
    result = replay_conversation(CID, rec.inbounds, rec.events, always(lighter))
    found = {(d.position, d.aspect): d for d in result.differences}
    assert (found[(2, "score")].recorded, found[(2, "score")].replayed) == (
        "0.9 hot, qualified",
        "0.6 warm, not qualified",
    )
    assert (found[(2, "state")].recorded, found[(2, "state")].replayed) == ("proposal", "qualify")


def test_qualifying_warm_leads_turns_a_qualifying_question_into_a_proposal(tmp_path: Path) -> None:
    rec = recording(POLICY)
    rec.lead(VAGUE_LEAD)
    rec.say("We have a budget for this")
    rec.say("I am the CTO")
    assert rec.state.flow_state == "qualify"
    generous = policy_file(tmp_path, '[conversation]\nqualified_bands = ["hot", "warm"]\n')
    result = replay_conversation(CID, rec.inbounds, rec.events, always(generous))
    aspects = {(d.position, d.aspect) for d in result.differences}
    assert {(3, "state"), (3, "score"), (3, "reply")} <= aspects
    state = next(d for d in result.differences if (d.position, d.aspect) == (3, "state"))
    assert (state.recorded, state.replayed) == ("qualify", "proposal")


def test_a_policy_that_only_changes_its_description_changes_no_decision(tmp_path: Path) -> None:
    rec = qualified_after_two_messages()
    reworded = policy_file(tmp_path, 'description = "Same rules, new words."\n')
    assert reworded.version != POLICY.version
    result = replay_conversation(CID, rec.inbounds, rec.events, always(reworded))
    assert result.differences == ()


def test_a_conversation_decided_under_two_policies_replays_each_inbound_under_its_own(
    tmp_path: Path,
) -> None:
    stricter = policy_file(tmp_path, "[scoring.bands]\nhot = 0.95\nwarm = 0.4\n")
    rec = recording(POLICY)
    rec.lead(VAGUE_LEAD)
    rec.say(HOT_MESSAGE, policy=stricter)
    both = recorded_policy([POLICY, stricter])
    assert replay_conversation(CID, rec.inbounds, rec.events, both).differences == ()
    only_default = replay_conversation(CID, rec.inbounds, rec.events, always(POLICY))
    assert {d.aspect for d in only_default.differences} >= {"state", "score"}


def test_a_changed_discount_cap_is_reported_as_a_changed_quote(tmp_path: Path) -> None:
    rec = qualified_after_two_messages()
    rec.say("quote 10 pro 20%", actor=REP)
    generous = policy_file(tmp_path, "[catalog]\nrep_discount_cap = 0.25\n")
    result = replay_conversation(CID, rec.inbounds, rec.events, always(generous))
    quote = next(d for d in result.differences if d.aspect == "quote")
    assert quote.position == 3
    assert quote.recorded.endswith("needs approval")
    assert quote.replayed.endswith("no approval needed")
    assert "1,592.00 USD" in quote.replayed


def test_a_sensitive_question_under_a_policy_without_that_term_loses_its_ticket(
    tmp_path: Path,
) -> None:
    rec = recording(POLICY)
    rec.lead(VAGUE_LEAD)
    rec.say("Can we talk about the SLA?")
    assert rec.state.flow_state == "handoff"
    relaxed = policy_file(tmp_path, '[objections]\nsensitive_terms = ["lawsuit"]\n')
    result = replay_conversation(CID, rec.inbounds, rec.events, always(relaxed))
    ticket = next(d for d in result.differences if d.aspect == "ticket")
    assert (ticket.recorded, ticket.replayed) == ("handoff: sensitive_terms", "none")
    events = next(d for d in result.differences if d.aspect == "events")
    assert "ticket_opened" in events.recorded
    assert "ticket_opened" not in events.replayed


def test_events_of_other_conversations_are_not_mistaken_for_this_ones() -> None:
    rec = qualified_after_two_messages()
    other = recording(POLICY, "conv-other")
    other.lead("Just browsing, no budget")
    mixed = [*other.events, *rec.events]
    result = replay_conversation(CID, rec.inbounds, mixed, recorded_policy([POLICY]))
    assert result.differences == ()


def test_an_inbound_of_another_conversation_is_refused_with_a_clear_message() -> None:
    other = recording(POLICY, "conv-other")
    other.lead(VAGUE_LEAD)
    with pytest.raises(DomainError, match="belongs to conversation conv-other"):
        replay_conversation(CID, other.inbounds, other.events, recorded_policy([POLICY]))


def test_a_conversation_without_inbounds_has_nothing_to_compare() -> None:
    result = replay_conversation(CID, [], [], recorded_policy([POLICY]))
    assert (result.inbounds, result.differences) == (0, ())


# ---------------------------------------------------------------- the determinism property

ACTORS = [PROSPECT, REP, BOSS]
PHRASES = [
    "We have a $5000 budget and want to start next month",
    "I am the CTO",
    "too expensive for us",
    "maybe next quarter, we are busy",
    "we already use a competitor",
    "can we cancel the contract and get a refund?",
    "just browsing",
    "quote 10 pro 10%",
    "quote 3 enterprise 25%",
    "audit",
]
text = st.one_of(st.sampled_from(PHRASES), st.text(max_size=40))


@st.composite
def scripts(draw: st.DrawFn) -> list[dict[str, Any]]:
    moves: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=10))):
        kind = draw(st.sampled_from(["lead", "say", "say", "command", "click", "click", "timer"]))
        actor = draw(st.sampled_from(ACTORS))
        if kind == "lead":
            moves.append(
                {
                    "kind": kind,
                    "text": draw(st.sampled_from(PHRASES)),
                    "credit": draw(st.none() | st.integers(300, 850)),
                }
            )
        elif kind == "say":
            moves.append({"kind": kind, "actor": actor, "text": draw(text)})
        elif kind == "command":
            name = draw(st.sampled_from(["quote", "lead", "audit", "help"]))
            moves.append({"kind": kind, "actor": actor, "name": name, "args": draw(text)})
        elif kind == "click":
            action = draw(st.sampled_from(get_args(ActionId)))
            moves.append(
                {"kind": kind, "actor": actor, "action": action, "pick": draw(st.integers(0, 5))}
            )
        else:
            moves.append({"kind": kind, "days": draw(st.integers(0, 10))})
    return moves


def record(script: list[dict[str, Any]]) -> Recording:
    rec = recording(POLICY)
    for move in script:
        ids = rec.ids()
        if move["kind"] == "lead":
            rec.lead(move["text"], move["credit"])
        elif move["kind"] == "say":
            rec.say(move["text"], move["actor"])
        elif move["kind"] == "command":
            rec.send(
                CommandInvoked(command=move["name"], args=move["args"], actor=move["actor"], **ids)
            )
        elif move["kind"] == "click":
            targets = sorted(rec.state.quotes) + sorted(rec.state.tickets) + ["unknown"]
            target = targets[move["pick"] % len(targets)]
            rec.send(
                ButtonClicked(action=move["action"], target=target, actor=move["actor"], **ids)
            )
        else:
            rec.now += move["days"] * DAY
            rec.send(TimerElapsed(actor=Actor(id="sweeper", role="system"), **ids))
    return rec


@settings(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(scripts())
def test_replaying_any_conversation_under_its_recorded_policy_changes_nothing(
    script: list[dict[str, Any]],
) -> None:
    rec = record(script)
    result = replay_conversation(CID, rec.inbounds, rec.events, recorded_policy([POLICY]))
    assert result.inbounds == len(script)
    assert result.differences == ()


def _read_by_the_reader() -> Recording:
    rec = Recording(READER, CID, now=NOW, lead_actor=FEED)
    rec.lead(VAGUE_LEAD)
    rec.say(HOT_MESSAGE)
    return rec


def _with_reader(**changes: Any) -> Policy:
    """The default policy with its trained reader changed (a retrain, in effect)."""
    assert READER.understanding is not None
    reader = READER.understanding.reader.model_copy(update=changes)
    return READER.model_copy(
        update={"understanding": READER.understanding.model_copy(update={"reader": reader})}
    )


def _everyone_hot() -> Policy:
    assert READER.understanding is not None
    band = READER.understanding.reader.band
    return _with_reader(band=band.model_copy(update={"hot": -(10**12), "warm": -(10**12) - 1}))


def test_a_retrained_reader_lists_what_its_new_weights_change() -> None:
    """`replay --policy` after a retrain: the same conversation under a reader whose band
    thresholds moved (every lead now hot) reports the changed score and state."""
    rec = _read_by_the_reader()
    candidate = _everyone_hot()
    same = replay_conversation(CID, rec.inbounds, rec.events, always(READER))
    assert same.differences == ()
    changed = replay_conversation(CID, rec.inbounds, rec.events, always(candidate))
    aspects = {d.aspect for d in changed.differences}
    assert {"score", "state"} <= aspects


def test_a_replay_under_retrained_weights_reuses_the_recorded_features(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same spec and vocabulary (the fingerprint), new weights: the recorded `message_read`
    features are re-weighed, nothing is extracted again; a different spec extracts."""
    rec = _read_by_the_reader()
    candidate = _everyone_hot()

    def no_extraction(*args: object, **kwargs: object) -> None:
        raise AssertionError("features were extracted again")

    monkeypatch.setattr("domain.conversation.read", no_extraction)
    changed = replay_conversation(CID, rec.inbounds, rec.events, always(candidate))
    assert "score" in {d.aspect for d in changed.differences}

    assert READER.understanding is not None
    other = _with_reader(vocabulary=(*READER.understanding.reader.vocabulary, "zzzz"))
    with pytest.raises(AssertionError, match="extracted again"):
        replay_conversation(CID, rec.inbounds, rec.events, always(other))


def test_replay_does_not_explain_the_readers_heads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-head explanations are the audit's and replay never compares them: working
    them out was a fifth of replay's deciding. Replay still reports what changed."""
    rec = _read_by_the_reader()

    def no_explanations(*args: object, **kwargs: object) -> None:
        raise AssertionError("the heads were explained")

    monkeypatch.setattr("domain.conversation.explanations", no_explanations)
    assert replay_conversation(CID, rec.inbounds, rec.events, always(READER)).differences == ()
    changed = replay_conversation(CID, rec.inbounds, rec.events, always(_everyone_hot()))
    assert {"score", "state"} <= {d.aspect for d in changed.differences}


def test_a_decision_without_explanations_is_the_same_decision() -> None:
    """`decide(..., explain=False)` (replay's) differs from the live decision only in the
    readings' explanations: every other event, the replies, the queries and the state are
    equal, message after message."""
    script = [
        (FEED, "lead", VAGUE_LEAD),
        (PROSPECT, "say", HOT_MESSAGE),
        (PROSPECT, "say", "Our contract terms need legal review, and it is too pricey"),
        (REP, "command", "quote 10 pro 10%"),
        (PROSPECT, "say", "Can I talk to a person about the price?"),
    ]
    rec = recording(READER)
    explained_any = False
    for actor, kind, text in script:
        state = rec.state
        if kind == "lead":
            live = rec.lead(text)
        elif kind == "say":
            live = rec.say(text, actor)
        else:
            command, _, args = text.partition(" ")
            live = rec.command(command, args, actor)
        inbound = rec.inbounds[-1]
        quiet = decide(state, inbound.inbound, READER, inbound.received_at_ms, explain=False)
        assert quiet.state == live.state
        assert quiet.replies == live.replies
        assert quiet.queries == live.queries
        assert len(quiet.events) == len(live.events)
        for mine, theirs in zip(quiet.events, live.events, strict=True):
            if isinstance(theirs.event, MessageRead):
                assert isinstance(mine.event, MessageRead)
                assert mine.event.explanations == ()
                explained_any = explained_any or bool(theirs.event.explanations)
                assert (
                    mine.event.model_copy(update={"explanations": theirs.event.explanations})
                    == theirs.event
                )
                assert mine.model_copy(update={"event": theirs.event}) == theirs
            else:
                assert mine == theirs
    assert explained_any  # the live decisions did explain their readings
