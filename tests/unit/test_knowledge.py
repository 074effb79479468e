"""The knowledge base: retrieval that finds the right answer, claims that are checked, and a
file that is part of the policy's meaning."""

from __future__ import annotations

import hashlib
import io
import math
import re
from importlib import resources
from pathlib import Path

import pytest

from bot import knowledge_index
from bot.cli import main
from bot.policy_loader import load_policy
from domain.errors import PolicyError
from domain.knowledge import (
    KnowledgeConfig,
    answer_language,
    document_terms,
    evidence_values,
    query_terms,
    retrieve,
)
from domain.money import format_amount
from domain.policy import Policy, policy_from_json
from domain.policy_check import check_policy

POLICIES = resources.files("domain.policies")


def _knowledge(policy: Policy) -> KnowledgeConfig:
    assert policy.knowledge is not None
    return policy.knowledge


def _examples(policy: Policy) -> list[tuple[str, str, str]]:
    return [
        (entry.id, language, example)
        for entry in _knowledge(policy).base.entries
        for language, examples in entry.examples.items()
        for example in examples
    ]


# ---------------------------------------------------------------- the shipped entries


def test_the_default_policy_ships_at_least_25_entries_in_four_languages(
    default_policy: Policy,
) -> None:
    base = _knowledge(default_policy).base
    assert len(base.entries) >= 25
    assert base.languages == ("en", "de", "fr", "es")
    for entry in base.entries:
        assert set(entry.answers) == set(base.languages), entry.id
        assert all(entry.examples.get(language) for language in base.languages), entry.id
    ids = {entry.id for entry in base.entries}
    for topic in (
        "what_it_does",
        "plans_and_prices",
        "free_trial",
        "integration_salesforce",
        "integration_hubspot",
        "integration_slack",
        "integration_teams",
        "api",
        "sso",
        "data_residency",
        "onboarding",
        "support_hours",
        "languages",
        "security_review",
        "contract_terms",
    ):
        assert topic in ids


def test_security_reviews_and_contract_terms_go_to_a_person(default_policy: Policy) -> None:
    base = _knowledge(default_policy).base
    assert base.entry("security_review").handoff == "privacy_security"
    assert base.entry("contract_terms").handoff == "legal"
    answered = [entry.id for entry in base.entries if entry.handoff is None]
    assert "security_review" not in answered
    assert "contract_terms" not in answered


def test_each_default_entry_answers_its_own_examples_in_every_language(
    default_policy: Policy,
) -> None:
    knowledge = _knowledge(default_policy)
    wrong = []
    for entry_id, language, example in _examples(default_policy):
        match = retrieve(knowledge, example, language)
        if match is None or match.entry_id != entry_id or match.score < knowledge.threshold:
            wrong.append((entry_id, language, example, match))
    assert not wrong
    assert len(_examples(default_policy)) >= 25 * 4 * 4


# Questions written for this test, in none of the entries' examples: retrieval must find the
# entry from their words, not from a copy of them.
PARAPHRASES = [
    ("en", "Can I connect it to HubSpot?", "integration_hubspot"),
    ("en", "Do you support Okta single sign on?", "sso"),
    ("en", "Is there a trial version?", "free_trial"),
    ("en", "How much is the Pro plan per year?", "plans_and_prices"),
    ("en", "Is there an API for developers?", "api"),
    ("en", "Can the bot reply in German?", "languages"),
    ("de", "Habt ihr eine Schnittstelle zu Salesforce?", "integration_salesforce"),
    ("de", "Was kostet Enterprise pro Nutzer?", "plans_and_prices"),
    ("de", "Wie lange dauert das Onboarding bei euch?", "onboarding"),
    ("de", "Kann man das in Microsoft Teams verwenden?", "integration_teams"),
    ("fr", "Avez-vous une version d'essai ?", "free_trial"),
    ("fr", "Est-il possible de connecter HubSpot ?", "integration_hubspot"),
    ("fr", "Combien coûte le plan Enterprise ?", "plans_and_prices"),
    ("fr", "Vos serveurs sont-ils en Europe ?", "data_residency"),
    ("es", "¿Tienen versión de prueba?", "free_trial"),
    ("es", "¿Se puede conectar con Slack?", "integration_slack"),
    ("es", "¿Cuánto cuesta el plan Enterprise?", "plans_and_prices"),
    ("es", "¿Dónde están alojados los datos?", "data_residency"),
]


@pytest.mark.parametrize(("language", "question", "expected"), PARAPHRASES)
def test_a_question_in_other_words_finds_its_entry(
    default_policy: Policy, language: str, question: str, expected: str
) -> None:
    knowledge = _knowledge(default_policy)
    match = retrieve(knowledge, question, language)
    assert match is not None
    assert match.entry_id == expected
    assert match.score >= knowledge.threshold


UNRELATED = [
    ("en", "What is the weather in Paris tomorrow?"),
    ("en", "Can you recommend a good restaurant nearby?"),
    ("en", "Who won the football game last night?"),
    ("en", "Do you sell printers?"),
    ("de", "Verkaufen Sie auch Drucker?"),
    ("de", "Wie wird das Wetter am Wochenende?"),
    ("fr", "Où puis-je acheter du pain ?"),
    ("es", "¿Quién ganó el partido?"),
    ("und", "What's the capital of Peru?"),
]


@pytest.mark.parametrize(("language", "question"), UNRELATED)
def test_an_unrelated_question_falls_below_the_threshold(
    default_policy: Policy, language: str, question: str
) -> None:
    knowledge = _knowledge(default_policy)
    match = retrieve(knowledge, question, language)
    assert match is None or match.score < knowledge.threshold


def test_a_score_is_the_exact_sum_of_its_terms_weights_in_millionths(
    default_policy: Policy,
) -> None:
    knowledge = _knowledge(default_policy)
    match = retrieve(knowledge, "Does it integrate with Salesforce?", "en")
    assert match is not None
    assert type(match.score) is int
    assert match.score == sum(weight for _, weight in match.terms)
    assert {term for term, _ in match.terms} == {"integr", "salesforc"}
    assert retrieve(knowledge, "Does it integrate with Salesforce?", "en") == match


def test_a_repeated_word_counts_once(default_policy: Policy) -> None:
    knowledge = _knowledge(default_policy)
    once = retrieve(knowledge, "trial?", "en")
    thrice = retrieve(knowledge, "trial trial trial?", "en")
    assert once is not None
    assert once == thrice
    assert query_terms("Trial, trials, TRIAL!", "en") == ("trial",)


def test_a_message_in_an_unknown_language_is_searched_in_every_language(
    default_policy: Policy,
) -> None:
    knowledge = _knowledge(default_policy)
    match = retrieve(knowledge, "Gibt es eine kostenlose Testphase?", "und")
    assert match is not None
    assert match.entry_id == "free_trial"
    assert match.language == "de"
    assert answer_language(knowledge.base, "und") == "en"
    assert answer_language(knowledge.base, "de") == "de"


def test_prices_in_answers_are_rendered_from_the_catalog_in_exact_cents(
    default_policy: Policy,
) -> None:
    catalog = default_policy.catalog
    values = evidence_values(_knowledge(default_policy), catalog)
    pro = next(sku for sku in catalog.skus if sku.code == "PRO")
    assert values["price_PRO"] == format_amount(pro.unit_cents, "USD", 2) == "199.00 USD"
    assert values["price_ONBOARDING"] == "1,500.00 USD"
    assert values["fact_trial_days"] == "14"


# ---------------------------------------------------------------- check and the claims guard


def _with_answer(policy: Policy, entry_id: str, language: str, text: str) -> Policy:
    """The policy with one answer reworded (as a stored or unchecked policy could be)."""
    knowledge = _knowledge(policy)
    entries = tuple(
        entry.model_copy(update={"answers": {**entry.answers, language: text}})
        if entry.id == entry_id
        else entry
        for entry in knowledge.base.entries
    )
    base = knowledge.base.model_copy(update={"entries": entries})
    return policy.model_copy(update={"knowledge": knowledge.model_copy(update={"base": base})})


def _knowledge_lines(policy: Policy) -> list[str]:
    return [line for line in check_policy(policy) if line.startswith("knowledge")]


def test_the_default_policy_passes_check(default_policy: Policy) -> None:
    assert check_policy(default_policy) == ()


@pytest.mark.parametrize(
    "text",
    [
        "Pro costs $199 per user.",
        "Pro is 199 USD per user a year.",
        "We guarantee 99.9% uptime.",
        "Every plan comes with a 30-day trial.",
        "Prices start at {price_STARTER}, about 4 € a month.",
    ],
)
def test_an_answer_stating_a_figure_in_its_own_words_fails_check(
    default_policy: Policy, text: str
) -> None:
    policy = _with_answer(default_policy, "plans_and_prices", "en", text)
    lines = _knowledge_lines(policy)
    assert any(
        "entry 'plans_and_prices', answer (en): it states a price, percentage, number or date"
        in line
        for line in lines
    ), lines


def test_an_answer_citing_a_price_the_catalog_does_not_have_fails_check(
    default_policy: Policy,
) -> None:
    policy = _with_answer(default_policy, "plans_and_prices", "de", "Platinum: {price_PLATINUM}.")
    assert any(
        "{price_PLATINUM} is not one the bot supplies" in line for line in check_policy(policy)
    )


def test_an_answer_citing_evidence_without_declaring_its_claim_fails_check(
    default_policy: Policy,
) -> None:
    policy = _with_answer(default_policy, "what_it_does", "fr", "Disponibilité : {fact_uptime}.")
    assert any(
        "entry 'what_it_does', answer (fr): it cites {fact_uptime} but does not declare the 'sla' claim"
        in line
        for line in check_policy(policy)
    )


def test_a_claim_the_policy_does_not_allow_fails_check(default_policy: Policy) -> None:
    knowledge = _knowledge(default_policy)
    narrowed = knowledge.model_copy(update={"allowed_claims": ("product_fit", "pricing")})
    policy = default_policy.model_copy(update={"knowledge": narrowed})
    lines = check_policy(policy)
    assert any(
        "entry 'free_trial', answer (en): the claim 'trial' is not allowed" in line
        for line in lines
    )
    assert any("knowledge.facts.trial_days: the claim 'trial'" in line for line in lines)


def test_an_example_that_finds_another_entry_fails_check(default_policy: Policy) -> None:
    knowledge = _knowledge(default_policy)
    entries = tuple(
        entry.model_copy(
            update={"examples": {**entry.examples, "en": ("Does it integrate with Salesforce?",)}}
        )
        if entry.id == "api"
        else entry
        for entry in knowledge.base.entries
    )
    base = knowledge.base.model_copy(update={"entries": entries})
    policy = default_policy.model_copy(
        update={"knowledge": knowledge.model_copy(update={"base": base})}
    )
    assert any(
        "entry 'api', example (en) “Does it integrate with Salesforce?” retrieves entry "
        "'integration_salesforce', not its own entry" in line
        for line in check_policy(policy)
    )


# ---------------------------------------------------------------- the file and the policy


def _copy_default(tmp_path: Path) -> Path:
    """The default policy, its reader and its knowledge file, copied to `tmp_path`."""
    for folder in ("models", "knowledge"):
        (tmp_path / folder).mkdir()
        for item in POLICIES.joinpath(folder).iterdir():
            (tmp_path / folder / item.name).write_bytes(item.read_bytes())
    path = tmp_path / "policy.toml"
    path.write_text(POLICIES.joinpath("default.toml").read_text(encoding="utf-8"), encoding="utf-8")
    return path


def _set_sha(policy_file: Path, knowledge_file: Path) -> None:
    digest = hashlib.sha256(knowledge_file.read_bytes()).hexdigest()
    text = policy_file.read_text(encoding="utf-8")
    text = re.sub(
        r'(file = "knowledge/default.toml"\nsha256 = ")[0-9a-f]{64}"', rf'\g<1>{digest}"', text
    )
    policy_file.write_text(text, encoding="utf-8")


def test_a_knowledge_file_that_does_not_match_its_hash_is_refused(tmp_path: Path) -> None:
    path = _copy_default(tmp_path)
    knowledge = tmp_path / "knowledge" / "default.toml"
    knowledge.write_text(knowledge.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    with pytest.raises(
        PolicyError, match=r"knowledge\.sha256: knowledge/default\.toml has SHA-256"
    ):
        load_policy(str(path))


def test_rewording_an_answer_changes_the_policy_version(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = _copy_default(tmp_path)
    assert load_policy(str(path)).version == default_policy.version
    knowledge = tmp_path / "knowledge" / "default.toml"
    text = knowledge.read_text(encoding="utf-8").replace("with no credit card", "no card needed")
    knowledge.write_text(text, encoding="utf-8")
    _set_sha(path, knowledge)
    reworded = load_policy(str(path))
    assert reworded.version != default_policy.version
    assert "no card needed" in _knowledge(reworded).base.entry("free_trial").answers["en"]


def test_a_knowledge_file_with_a_duplicate_id_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = _copy_default(tmp_path)
    knowledge = tmp_path / "knowledge" / "default.toml"
    text = knowledge.read_text(encoding="utf-8").replace('id = "api"', 'id = "sso"')
    knowledge.write_text(text, encoding="utf-8")
    _set_sha(path, knowledge)
    with pytest.raises(PolicyError, match="the entry id 'sso' is used twice"):
        load_policy(str(path))


def test_a_policy_without_the_knowledge_key_keeps_its_canonical_form(
    default_policy: Policy, seed_policy: Policy
) -> None:
    assert seed_policy.knowledge is None
    assert '"knowledge"' not in seed_policy.canonical_json()
    assert '"knowledge"' in default_policy.canonical_json()
    bare = default_policy.model_copy(update={"knowledge": None})
    assert '"knowledge"' not in bare.canonical_json()
    assert bare.version != default_policy.version


def test_the_stored_policy_replays_with_the_same_index(default_policy: Policy) -> None:
    restored = policy_from_json(default_policy.canonical_json())
    assert restored.version == default_policy.version
    assert restored.knowledge == default_policy.knowledge


def test_a_policy_extending_the_default_can_change_the_threshold_and_keep_the_entries(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "stricter.toml"
    path.write_text('extends = "default"\nname = "stricter"\n[knowledge]\nmin_score = 3\n')
    stricter = load_policy(str(path))
    assert _knowledge(stricter).threshold == 3_000_000
    assert _knowledge(stricter).base == _knowledge(default_policy).base


def test_salesbot_check_rejects_a_knowledge_file_with_an_invented_price_and_chat_refuses_it(
    tmp_path: Path,
) -> None:
    source = POLICIES.joinpath("knowledge/default.toml").read_text(encoding="utf-8")
    invented = source.replace(
        "We have three plans, each priced per user for a year: Starter at {price_STARTER},",
        "We have three plans, each priced per user for a year: Starter at $39,",
    )
    assert invented != source
    knowledge = tmp_path / "kb.toml"
    knowledge.write_text(invented, encoding="utf-8")
    digest = hashlib.sha256(knowledge.read_bytes()).hexdigest()
    policy = tmp_path / "cheaper.toml"
    policy.write_text(
        f'extends = "default"\nname = "cheaper"\n[knowledge]\nfile = "kb.toml"\nsha256 = "{digest}"\n',
        encoding="utf-8",
    )
    out, err = io.StringIO(), io.StringIO()
    assert main(["check", "--policy", str(policy)], out=out, err=err) == 1
    assert (
        "knowledge: entry 'plans_and_prices', answer (en): it states a price, percentage, "
        "number or date in its own words" in out.getvalue()
    )
    out, err = io.StringIO(), io.StringIO()
    code = main(["chat", "--memory", "--policy", str(policy)], out=out, err=err, stdin=[])
    assert code == 2
    assert "fails `salesbot check`" in err.getvalue()


def test_a_weight_is_bm25_as_a_reader_can_recompute_it(default_policy: Policy) -> None:
    """Lucene's BM25, by hand: idf = ln(1 + (N − df + ½) / (df + ½)), weight = idf × tf /
    (tf + k1 × (1 − b + b × |d| / avgdl)), rounded to millionths."""
    knowledge = _knowledge(default_policy)
    keep = knowledge_index.content_words("en")
    documents = {
        entry.id: [
            term for example in entry.examples["en"] for term in document_terms(example, "en", keep)
        ]
        for entry in knowledge.base.entries
    }
    average = sum(len(terms) for terms in documents.values()) / len(documents)
    term = "salesforc"
    df = sum(1 for terms in documents.values() if term in terms)
    idf = math.log(1 + (len(documents) - df + 0.5) / (df + 0.5))
    for entry_id, weight in knowledge.index.postings["en"][term].items():
        tf = documents[entry_id].count(term)
        length = len(documents[entry_id])
        k1, b = knowledge_index.K1, knowledge_index.B
        expected = idf * tf / (tf + k1 * (1 - b + b * length / average))
        assert abs(weight - expected * 1_000_000) <= 1
