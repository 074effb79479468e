"""Values `decide` builds without validation (`domain.model.trusted`) are the validated ones.

A trusted value that held a list where its model declares a tuple, an unconverted number or
a missing default would compare unequal to the value a stored event reads back as, and a
replay would report a difference nobody made. So every event of many decisions (the
trained reader's and the lexicons', leads, messages in four languages, a quote, an
objection) must equal itself validated again, with the same JSON.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.corpus import TEST_DIR, load_examples
from bot.policy_loader import load_policy
from domain.decide import decide, new_conversation
from domain.events import EventEnvelope, HeadExplanation
from domain.inbound import Actor, CommandInvoked, Inbound, LeadArrived, LeadDetails, MessagePosted
from domain.model import trusted
from domain.scoring import LeadScore
from domain.text import FeatureSpec

PROSPECT = Actor(id="P", name="Pat", role="prospect")
REP = Actor(id="R", name="Rae", role="rep")
CORPUS = [example.text for example in load_examples([Path(TEST_DIR)])]


def _conversation(index: int, texts: list[str]) -> list[Inbound]:
    cid = f"trusted-{index}"
    lead = LeadDetails(name="Pat Lee", company="Acme", message=texts[0], credit_score=640)
    inbounds: list[Inbound] = [
        LeadArrived(delivery_id=f"{cid}-0", conversation_id=cid, actor=PROSPECT, lead=lead)
    ]
    for position, text in enumerate(texts[1:], start=1):
        inbounds.append(
            MessagePosted(
                delivery_id=f"{cid}-{position}", conversation_id=cid, actor=PROSPECT, text=text
            )
        )
    inbounds.append(
        CommandInvoked(
            delivery_id=f"{cid}-q", conversation_id=cid, actor=REP, command="quote", args="40 pro"
        )
    )
    return inbounds


@pytest.mark.parametrize("policy_name", ["default", "seed"])
def test_every_event_of_a_decision_equals_itself_validated(policy_name: str) -> None:
    policy = load_policy(policy_name)
    checked = 0
    for index, start in enumerate(range(0, 240, 6)):
        inbounds = _conversation(index, CORPUS[start : start + 6])
        state = new_conversation(inbounds[0].conversation_id, policy)
        for at, inbound in enumerate(inbounds):
            decision = decide(state, inbound, policy, 1_790_000_000_000 + at * 60_000)
            for envelope in decision.events:
                again = EventEnvelope.model_validate_json(envelope.model_dump_json())
                assert again == envelope
                assert again.model_dump_json() == envelope.model_dump_json()
                assert (
                    envelope.model_fields_set
                    == EventEnvelope.model_validate(
                        {name: getattr(envelope, name) for name in envelope.model_fields_set}
                    ).model_fields_set
                )
                checked += 1
            state = decision.state
    assert checked > 500


def test_a_trusted_value_fills_defaults_and_knows_its_fields() -> None:
    zero = Decimal(0)
    fields: dict[str, Any] = {
        "head": "band",
        "terms": (),
        "bias": zero,
        "total": zero,
        "threshold": zero,
    }
    explained = trusted(HeadExplanation, **fields)
    assert explained.probability is None
    assert explained.model_fields_set == set(fields)
    assert explained == HeadExplanation(**fields)
    assert explained.model_fields_set == HeadExplanation(**fields).model_fields_set
    score = trusted(
        LeadScore,
        score=zero,
        probability=None,
        band="cold",
        features={},
        weights={},
        contributions={},
        evidence={},
        negated={},
    )
    assert score.model_dump_json() == LeadScore.model_validate(score.model_dump()).model_dump_json()
    with pytest.raises(TypeError):
        trusted(HeadExplanation, head="band", colour="red")
    with pytest.raises(TypeError):  # a class with validators of its own is always validated
        trusted(FeatureSpec, name="budget", terms=("budget",))
