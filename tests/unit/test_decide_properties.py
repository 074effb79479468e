"""Properties of `decide` over random conversations (Hypothesis).

Whatever arrives, in whatever order: decide never crashes, the flow never leaves its
declared states, sequence numbers have no gaps, folding the events rebuilds the state,
and running the same inbounds again gives the same decisions (replay is exact).
"""

from __future__ import annotations

from typing import Any, get_args

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.policy_loader import load_policy
from domain.decide import decide, new_conversation
from domain.decision import Decision
from domain.inbound import (
    ActionId,
    Actor,
    ButtonClicked,
    CommandInvoked,
    Inbound,
    LeadArrived,
    LeadDetails,
    MessagePosted,
    TimerElapsed,
)
from domain.state import fold, initial_state

POLICY = load_policy("default")
CID = "conv-prop"
DAY = 24 * 3600 * 1000
ACTORS = [
    Actor(id="P", name="Pat", role="prospect"),
    Actor(id="R", name="Rae", role="rep"),
    Actor(id="B", name="Bo", role="rep", approver=True, auditor=True),
]
PHRASES = [
    "We have a $5000 budget and want to start next month",
    "I am the CTO",
    "too expensive for us",
    "maybe next quarter, we are busy",
    "we already use a competitor",
    "I need to check with my boss",
    "can we cancel the contract and get a refund?",
    "just browsing",
    "not urgent, no budget",
    "quote 10 pro 10%",
    "quote 3 enterprise 25%",
    "audit",
    "/bogus",
    "{0.__class__}",
]
text = st.one_of(st.sampled_from(PHRASES), st.text(max_size=60))


@st.composite
def moves(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=1, max_value=12))
    result: list[dict[str, Any]] = []
    for _ in range(count):
        kind = draw(st.sampled_from(["lead", "say", "say", "command", "click", "click", "timer"]))
        actor = draw(st.sampled_from(ACTORS))
        if kind == "lead":
            result.append(
                {
                    "kind": "lead",
                    "text": draw(st.sampled_from(PHRASES)),
                    "credit": draw(st.none() | st.integers(300, 850)),
                }
            )
        elif kind == "say":
            result.append({"kind": "say", "actor": actor, "text": draw(text)})
        elif kind == "command":
            name = draw(st.sampled_from(["quote", "lead", "audit", "metrics", "help", "nope"]))
            result.append({"kind": "command", "actor": actor, "name": name, "args": draw(text)})
        elif kind == "click":
            action = draw(st.sampled_from(get_args(ActionId)))
            result.append(
                {"kind": "click", "actor": actor, "action": action, "pick": draw(st.integers(0, 5))}
            )
        else:
            result.append({"kind": "timer", "days": draw(st.integers(0, 10))})
    return result


def run(script: list[dict[str, Any]]) -> list[Decision]:
    state = new_conversation(CID, POLICY)
    now = 1_790_000_000_000
    decisions = []
    for i, move in enumerate(script):
        ids: dict[str, Any] = {"delivery_id": f"d{i}", "conversation_id": CID}
        inbound: Inbound
        if move["kind"] == "lead":
            lead = LeadDetails(name="Lee", message=move["text"], credit_score=move["credit"])
            inbound = LeadArrived(lead=lead, actor=ACTORS[0], **ids)
        elif move["kind"] == "say":
            inbound = MessagePosted(text=move["text"], actor=move["actor"], **ids)
        elif move["kind"] == "command":
            inbound = CommandInvoked(
                command=move["name"], args=move["args"], actor=move["actor"], **ids
            )
        elif move["kind"] == "click":
            targets = sorted(state.quotes) + sorted(state.tickets) + ["unknown"]
            target = targets[move["pick"] % len(targets)]
            inbound = ButtonClicked(
                action=move["action"], target=target, actor=move["actor"], **ids
            )
        else:
            now += move["days"] * DAY
            inbound = TimerElapsed(actor=Actor(id="sweeper", role="system"), **ids)
        decision = decide(state, inbound, POLICY, now)
        decisions.append(decision)
        state = decision.state
        now += 1000
    return decisions


@settings(deadline=None, max_examples=35, suppress_health_check=[HealthCheck.too_slow])
@given(moves())
def test_random_conversations_keep_every_invariant_and_replay_exactly(
    script: list[dict[str, Any]],
) -> None:
    decisions = run(script)
    envelopes = [env for d in decisions for env in d.events]
    assert [env.seq for env in envelopes] == list(range(1, len(envelopes) + 1))
    for decision in decisions:
        assert decision.state.flow_state in POLICY.flow.states
    final = decisions[-1].state
    assert fold(initial_state(CID, POLICY.flow.start), envelopes) == final
    assert [d.model_dump() for d in run(script)] == [d.model_dump() for d in decisions]


@settings(deadline=None, max_examples=40)
@given(st.text(min_size=1, max_size=80).filter(lambda t: t.split() != []))
def test_a_leads_name_is_shown_verbatim_and_never_evaluated(name: str) -> None:
    lead = LeadDetails.model_validate({"name": name, "message": "Hello"})
    inbound = LeadArrived(lead=lead, actor=ACTORS[0], delivery_id="d", conversation_id=CID)
    decision = decide(new_conversation(CID, POLICY), inbound, POLICY, 1_790_000_000_000)
    greeting = next(r.text for r in decision.replies if r.audience == "conversation")
    assert greeting.startswith(f"Hi {name.split()[0]}, ")
