""" "Can I talk to a person?" in any language: the prospect is handed to a person at once,
hears why in their own language, and the team gets a ticket that says so (issue 13's first
family). Paraphrases, not the issue's sentences alone."""

from __future__ import annotations

import pytest

from domain.events import BotReplied, TicketOpened
from domain.policy import Policy
from tests.support.talk import events, final_state, says, talk

REQUESTS = [
    ("en", "is there an actual human I could chat with?"),
    ("en", "agent please"),
    ("en", "I'd rather speak to your manager about this"),
    ("en", "Could one of your sales people give me a call instead?"),
    ("de", "Kann ich bitte mit einem echten Menschen sprechen?"),
    ("de", "Bitte rufen Sie mich zurück, ich möchte mit jemandem aus dem Vertrieb reden."),
    ("fr", "Je préfère parler à une vraie personne, c'est possible ?"),
    ("fr", "Pouvez-vous me mettre en relation avec un conseiller ?"),
    ("es", "¿Puedo hablar con una persona de verdad, por favor?"),
    ("es", "Prefiero que me llame alguien de su equipo comercial."),
]


@pytest.mark.parametrize(("language", "text"), REQUESTS, ids=[t for _, t in REQUESTS])
def test_a_request_for_a_person_hands_off_at_once_in_the_prospects_language(
    default_policy: Policy, language: str, text: str
) -> None:
    steps = talk(default_policy, says(text))
    (ticket,) = events(steps, TicketOpened)
    assert "human_request" in ticket.reason.split(", ")
    assert final_state(steps).flow_state == default_policy.flow.handoff
    replies = [e for e in events(steps, BotReplied) if e.audience == "conversation"]
    # Exactly one line to the prospect: why a person is coming, never a qualifying question.
    (reply,) = replies
    assert reply.template.startswith("escalate")
    assert reply.language == language


def test_a_request_after_a_few_messages_is_not_talked_over(default_policy: Policy) -> None:
    steps = talk(
        default_policy,
        says("hi", "we're 20 people in sales", "honestly just get me a real person"),
    )
    (ticket,) = events(steps, TicketOpened)
    assert "human_request" in ticket.reason.split(", ")
    last = [e for e in events(steps, BotReplied) if e.audience == "conversation"][-1]
    assert last.template.startswith("escalate")
