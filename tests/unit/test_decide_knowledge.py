"""`decide` with the knowledge base: what a prospect who asks questions now gets.

Before, five product questions in a row got "Do you have a budget range in mind for this?"
five times. Now each gets its own answer, in the prospect's language, with the entry and the
retrieval score recorded, shown in the audit, and reproduced exactly by replay.
"""

from __future__ import annotations

from typing import Any

import pytest

from domain.audit import audit_conversation, render_audit
from domain.events import (
    BotReplied,
    ClaimRefused,
    KnowledgeAnswered,
    KnowledgeUnanswered,
    TicketOpened,
)
from domain.inbound import Actor
from domain.knowledge import KnowledgeConfig, evidence_values, render_answer
from domain.policy import Policy
from domain.replay import replay_conversation
from tests.support.conversation import Recording

PROSPECT = Actor(id="P", name="Pat Prospect", role="prospect")
BUDGET_QUESTION = "Do you have a budget range in mind for this?"


def converse(policy: Policy, *texts: str, conversation_id: str = "conv-kb") -> Recording:
    rec = Recording(policy, conversation_id)
    for text in texts:
        rec.say(text, actor=PROSPECT)
    return rec


def said(rec: Recording) -> list[str]:
    """What the prospect saw, in order."""
    return [
        env.event.text
        for env in rec.events
        if isinstance(env.event, BotReplied) and env.event.audience == "conversation"
    ]


def said_templates(rec: Recording) -> list[str]:
    """Which template said each line the prospect saw (its wording is the persona's choice)."""
    return [
        env.event.template
        for env in rec.events
        if isinstance(env.event, BotReplied) and env.event.audience == "conversation"
    ]


def of(rec: Recording, kind: type) -> list[Any]:
    return [env.event for env in rec.events if isinstance(env.event, kind)]


def _knowledge(policy: Policy) -> KnowledgeConfig:
    assert policy.knowledge is not None
    return policy.knowledge


def answer(policy: Policy, entry_id: str, language: str) -> str:
    """The entry's answer as the prospect should read it (prices and facts filled in)."""
    knowledge = _knowledge(policy)
    values = {**evidence_values(knowledge, policy.catalog), "persona": "SalesPro"}
    return render_answer(knowledge.base.entry(entry_id).answers[language], values)


FIVE_QUESTIONS = {
    "en": (
        [
            "what does your product do?",
            "does it integrate with Salesforce?",
            "how many users?",
            "is there a free trial?",
            "do you have an API?",
        ],
        ["what_it_does", "integration_salesforce", "seats_and_users", "free_trial", "api"],
    ),
    "de": (
        [
            "Was macht euer Produkt genau?",
            "Gibt es eine Integration mit HubSpot?",
            "Gibt es eine kostenlose Testphase?",
            "Habt ihr eine API?",
            "Wann ist euer Support erreichbar?",
        ],
        ["what_it_does", "integration_hubspot", "free_trial", "api", "support_hours"],
    ),
    "fr": (
        [
            "Que fait votre produit ?",
            "Avez-vous une intégration Salesforce ?",
            "Proposez-vous le SSO ?",
            "Quels sont vos horaires de support ?",
            "Le bot parle-t-il espagnol ?",
        ],
        ["what_it_does", "integration_salesforce", "sso", "support_hours", "languages"],
    ),
    "es": (
        [
            "¿Qué hace su producto?",
            "¿Se integra con Salesforce?",
            "¿Cuántos usuarios podemos tener?",
            "¿Tienen una API?",
            "¿Qué idiomas habla el bot?",
        ],
        ["what_it_does", "integration_salesforce", "seats_and_users", "api", "languages"],
    ),
}


@pytest.mark.parametrize("language", sorted(FIVE_QUESTIONS))
def test_five_different_product_questions_get_five_different_correct_answers(
    default_policy: Policy, language: str
) -> None:
    questions, expected = FIVE_QUESTIONS[language]
    rec = converse(default_policy, *questions)
    replies = said(rec)
    assert replies == [answer(default_policy, entry, language) for entry in expected]
    assert len(set(replies)) == 5
    assert BUDGET_QUESTION not in replies
    answered = of(rec, KnowledgeAnswered)
    assert [event.entry_id for event in answered] == expected
    assert {event.language for event in answered} == {language}
    assert all(event.score >= event.threshold for event in answered)
    assert of(rec, TicketOpened) == []  # no "no qualification after the turn limit"


def test_an_answer_with_a_fact_says_the_declared_fact(default_policy: Policy) -> None:
    rec = converse(default_policy, "is there a free trial?")
    trial = _knowledge(default_policy).facts["trial_days"].value
    assert said(rec) == [
        f"Yes: you can try every feature of Pro free for {trial} days, with no credit card. "
        "Your settings and data carry over if you decide to buy."
    ]


def test_a_pricing_question_gets_the_catalog_prices_not_the_price_objection_line(
    default_policy: Policy,
) -> None:
    rec = converse(default_policy, "How much does the Pro plan cost per user?")
    (reply,) = said(rec)
    assert "Pro at 199.00 USD" in reply
    assert "Starter at 49.00 USD" in reply
    assert "Enterprise at 499.00 USD" in reply
    assert "I understand pricing is important" not in reply
    (answered,) = of(rec, KnowledgeAnswered)
    assert answered.entry_id == "plans_and_prices"


def test_a_catalog_price_change_changes_the_answer(default_policy: Policy) -> None:
    catalog = default_policy.catalog
    skus = tuple(
        sku.model_copy(update={"unit_cents": 21950}) if sku.code == "PRO" else sku
        for sku in catalog.skus
    )
    repriced = default_policy.model_copy(
        update={"catalog": catalog.model_copy(update={"skus": skus})}
    )
    (reply,) = said(converse(repriced, "What is the price of the Pro plan?"))
    assert "Pro at 219.50 USD" in reply


def test_how_much_with_no_other_word_gets_the_price_list(default_policy: Policy) -> None:
    rec = converse(default_policy, "how much?")
    (reply,) = said(rec)
    assert "Pro at 199.00 USD" in reply
    (answered,) = of(rec, KnowledgeAnswered)
    assert answered.entry_id == "plans_and_prices"


def test_a_german_pricing_question_gets_german_prices(default_policy: Policy) -> None:
    (reply,) = said(converse(default_policy, "Wie viel kostet Pro?"))
    assert reply.startswith("Wir haben drei Pläne")
    assert "Pro für 199.00 USD" in reply


def test_an_unanswerable_question_asks_to_clarify_then_brings_in_a_person(
    default_policy: Policy,
) -> None:
    rec = converse(
        default_policy,
        "Hi there",
        "What's the capital of Peru?",
        "Do you have anything for dentists?",
    )
    replies = said(rec)
    base = _knowledge(default_policy).base
    assert replies[1] == base.clarify["en"]
    assert replies[2] == base.person["en"]
    misses = of(rec, KnowledgeUnanswered)
    assert [miss.outcome for miss in misses] == ["clarify", "person"]
    assert all(miss.score < miss.threshold for miss in misses)
    (ticket,) = of(rec, TicketOpened)
    assert ticket.reason == "unanswered_question"
    assert rec.state.flow_state == "handoff"


@pytest.mark.parametrize(
    ("text", "objection"),
    [
        ("That's too expensive for us, why would we pay that much?", "price"),
        ("We already use HubSpot, why would we switch?", "competitor"),
    ],
)
def test_a_question_that_comes_with_an_objection_gets_the_objection_reply(
    default_policy: Policy, text: str, objection: str
) -> None:
    rec = converse(default_policy, text)
    assert said_templates(rec) == [f"objection.{objection}"]
    assert of(rec, KnowledgeAnswered) == []


def test_a_security_review_goes_to_a_person_in_the_prospects_words(
    default_policy: Policy,
) -> None:
    rec = converse(default_policy, "Könnt ihr unseren Sicherheitsfragebogen ausfüllen?")
    assert said(rec) == [answer(default_policy, "security_review", "de")]
    (ticket,) = of(rec, TicketOpened)
    assert "privacy_security" in ticket.reason
    (answered,) = of(rec, KnowledgeAnswered)
    assert answered.handoff == "privacy_security"
    assert rec.state.flow_state == "handoff"


def test_contract_terms_go_to_a_person(default_policy: Policy) -> None:
    rec = converse(default_policy, "Can we review your contract terms?")
    assert said(rec) == [answer(default_policy, "contract_terms", "en")]
    (ticket,) = of(rec, TicketOpened)
    assert "legal" in ticket.reason
    assert rec.state.flow_state == "handoff"


def test_a_message_that_is_not_a_question_still_gets_the_flows_reply(
    default_policy: Policy,
) -> None:
    rec = converse(default_policy, "Hi", "We are a team of twelve looking for a better CRM.")
    assert of(rec, KnowledgeAnswered) == []
    assert said_templates(rec)[1].startswith("ask.")


def test_the_seed_policy_still_answers_questions_with_its_flow(seed_policy: Policy) -> None:
    rec = converse(seed_policy, "what does your product do?", "is there a free trial?")
    assert of(rec, KnowledgeAnswered) == []
    assert of(rec, KnowledgeUnanswered) == []
    assert said_templates(rec)[0] == "greet"
    assert said(rec)[0].startswith("Hi Pat, thanks for")


def test_an_answer_that_breaks_the_claims_rules_is_never_said(default_policy: Policy) -> None:
    knowledge = _knowledge(default_policy)
    entries = tuple(
        entry.model_copy(update={"answers": {**entry.answers, "en": "Free for 30 days!"}})
        if entry.id == "free_trial"
        else entry
        for entry in knowledge.base.entries
    )
    unchecked = default_policy.model_copy(
        update={
            "knowledge": knowledge.model_copy(
                update={"base": knowledge.base.model_copy(update={"entries": entries})}
            )
        }
    )
    rec = converse(unchecked, "Hello", "is there a free trial?")
    assert all("30 days" not in text for text in said(rec))
    (refused,) = of(rec, ClaimRefused)
    assert refused.template == "knowledge.free_trial"
    assert any("states a price, percentage, number or date" in p for p in refused.problems)
    assert of(rec, KnowledgeAnswered) == []


def test_the_audit_says_which_entry_answered_and_why(default_policy: Policy) -> None:
    rec = converse(
        default_policy, "Gibt es eine kostenlose Testphase?", "What's the capital of Peru?"
    )
    lines = render_audit(audit_conversation("conv-kb", rec.events), detail=True)
    text = "\n".join(lines)
    assert (
        "knowledge_answered: Question answered from the knowledge base: entry 'free_trial'" in text
    )
    assert "entry: free_trial, answered in de (the reader read de)" in text
    assert "retrieval score = Σ BM25 weights of the matching terms = " in text
    assert "knowledge_unanswered: Question not answered from the knowledge base" in text
    assert "asked the prospect what they would like to know" in text


def test_a_conversation_with_knowledge_answers_replays_with_no_differences(
    default_policy: Policy,
) -> None:
    questions, _ = FIVE_QUESTIONS["en"]
    rec = converse(
        default_policy,
        *questions,
        conversation_id="conv-kb-replay",
    )
    assert len(of(rec, KnowledgeAnswered)) == 5
    result = replay_conversation(
        "conv-kb-replay", rec.inbounds, rec.events, lambda version: default_policy
    )
    assert result.inbounds == 5
    assert result.differences == ()


def test_replay_without_the_knowledge_base_shows_what_it_changed(
    default_policy: Policy,
) -> None:
    rec = converse(default_policy, "is there a free trial?", conversation_id="conv-kb-whatif")
    without = default_policy.model_copy(update={"knowledge": None})
    result = replay_conversation("conv-kb-whatif", rec.inbounds, rec.events, lambda v: without)
    aspects = {difference.aspect for difference in result.differences}
    assert {"reply", "events"} <= aspects


def test_a_question_in_a_language_the_reader_cannot_tell_is_answered_in_english(
    default_policy: Policy,
) -> None:
    rec = converse(default_policy, "Y a-t-il un essai gratuit ?")
    (answered,) = of(rec, KnowledgeAnswered)
    assert (answered.read_language, answered.matched_language) == ("und", "fr")
    assert answered.language == "en"
    assert said(rec) == [answer(default_policy, "free_trial", "en")]


def test_a_policy_can_bring_in_a_person_at_the_first_unanswered_question(
    default_policy: Policy,
) -> None:
    knowledge = _knowledge(default_policy)
    at_once = default_policy.model_copy(
        update={"knowledge": knowledge.model_copy(update={"below_threshold": "person"})}
    )
    rec = converse(at_once, "Hi there", "What's the capital of Peru?")
    assert said(rec)[1] == knowledge.base.person["en"]
    (ticket,) = of(rec, TicketOpened)
    assert ticket.reason == "unanswered_question"


def test_the_same_question_asked_again_is_not_answered_in_the_same_words(
    default_policy: Policy,
) -> None:
    """Asking again means the answer did not help: the bot asks what they would like to
    know, then brings in a person, instead of parroting its last answer."""
    question = "is there a free trial?"
    rec = converse(default_policy, question, question, question)
    lines = said(rec)
    assert lines[0] == answer(default_policy, "free_trial", "en")
    assert lines[1] != lines[0]
    assert said_templates(rec)[1:] == ["knowledge.clarify", "knowledge.person"]
    first, second = of(rec, KnowledgeUnanswered)
    assert first.repeated
    assert first.best_entry_id == "free_trial"
    assert (first.outcome, second.outcome) == ("clarify", "person")
    (ticket,) = of(rec, TicketOpened)
    assert ticket.reason == "unanswered_question"
    text = "\n".join(render_audit(audit_conversation("conv-kb", rec.events), detail=True))
    assert "Question asked again: entry 'free_trial' was the last answer" in text


def test_without_no_repeat_the_same_answer_may_be_said_again(default_policy: Policy) -> None:
    """A stored policy without `[replies]` answers as the knowledge base alone decides."""
    old = default_policy.model_copy(
        update={"replies": default_policy.replies.model_copy(update={"no_repeat": False})}
    )
    rec = converse(old, "is there a free trial?", "is there a free trial?")
    assert said_templates(rec) == ["knowledge.free_trial", "knowledge.free_trial"]
