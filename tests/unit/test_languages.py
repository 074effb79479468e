"""The prospect's language (issue 13, item 4), as a prospect and the team notice it.

A prospect writing Spanish, German or French is greeted and asked in their language; the bot
follows a switch of language once a message has enough words to tell ("ok thanks" does not
move it); what the team reads stays in the team's language; `salesbot check` reports a
template missing in a spoken language; a policy without `[languages]` (a stored one, or the
seed) speaks and hashes as before; a conversation with a switch replays exactly.
"""

from __future__ import annotations

import json

import pytest

from domain.audit import audit_conversation
from domain.events import BotReplied, ReplyLanguageChosen
from domain.languages import LanguagesConfig, next_language, word_count
from domain.policy import Policy
from domain.policy_check import check_policy
from domain.replay import replay_conversation
from tests.support.talk import (
    TEAM_AUDIENCES,
    bot_messages_to_the_prospect,
    envelopes,
    events,
    final_state,
    record,
    says,
    talk,
)


def wordings(policy: Policy, language: str, *actions: str) -> set[str]:
    """Every wording of `actions` the policy has in `language` (English: as written)."""
    languages = policy.languages
    assert languages is not None
    found: set[str] = set()
    for action in actions:
        if language == languages.written_in:
            found |= set(policy.active_persona.templates[action].texts)
        else:
            found |= set(languages.templates[language][action].texts)
    return found


def with_name(texts: set[str], name: str = "Pat") -> set[str]:
    return {text.replace("{name}", name) for text in texts}


FIRST_MESSAGES = {
    "es": [
        "Hola, me interesa su software para nuestro equipo",
        "Hola, estamos buscando una herramienta para nuestro equipo de ventas",
        "Buenas tardes, soy Marta y estoy mirando opciones para mi empresa",
    ],
    "de": [
        "Guten Tag, ich interessiere mich für Ihre Software für unser Team",
        "Hallo zusammen, wir möchten unseren Vertrieb besser organisieren",
        "Hallo, ich bin Anna von der Firma Müller und schaue mich gerade nach Lösungen um",
    ],
    "fr": [
        "Bonjour, je m'intéresse à votre logiciel pour notre équipe",
        "Bonjour, je suis Claire et je regarde les solutions du marché pour notre société",
        "Bonjour, je travaille chez Dupont et nous regardons plusieurs outils",
        "Bonsoir, notre société s'intéresse à votre plateforme",
    ],
}


@pytest.mark.parametrize(
    ("language", "line"),
    [(language, line) for language, lines in FIRST_MESSAGES.items() for line in lines],
)
def test_a_first_message_is_greeted_in_the_prospects_language(
    default_policy: Policy, language: str, line: str
) -> None:
    steps = talk(default_policy, says(line), cid=f"conv-{language}-{len(line)}")
    said = bot_messages_to_the_prospect(steps)
    assert len(said) == 1
    greetings = with_name(wordings(default_policy, language, "greet", "greet_generic"))
    assert said[0] in greetings, said
    assert events(steps, BotReplied)[0].language == language
    assert [event.language for event in events(steps, ReplyLanguageChosen)] == [language]


@pytest.mark.parametrize(
    ("language", "lines"),
    [
        (
            "es",
            (
                "Hola, estamos buscando una herramienta para nuestro equipo de ventas",
                "Somos unas veinte personas y queremos empezar pronto",
            ),
        ),
        (
            "de",
            (
                "Guten Tag, ich interessiere mich für Ihre Software für unser Team",
                "Wir sind ungefähr zwanzig Leute und wollen bald anfangen",
            ),
        ),
        (
            "fr",
            (
                "Bonjour, je m'intéresse à votre logiciel pour notre équipe",
                "Nous sommes une vingtaine de personnes et voulons commencer bientôt",
            ),
        ),
    ],
)
def test_the_next_question_follows_in_the_same_language(
    default_policy: Policy, language: str, lines: tuple[str, str]
) -> None:
    steps = talk(default_policy, says(*lines))
    replies = [e for e in events(steps, BotReplied) if e.audience == "conversation"]
    assert [reply.language for reply in replies] == [language, language]
    second = replies[1]
    english = set(default_policy.active_persona.templates[second.template].texts)
    assert not any(text in second.text for text in english), second.text
    assert any(
        text.split("{")[0] in second.text
        for text in wordings(default_policy, language, second.template)
    ), second.text


def test_a_switch_follows_after_enough_words_and_ok_thanks_does_not(
    default_policy: Policy,
) -> None:
    steps = talk(
        default_policy,
        says(
            "Hi, we're looking for a new tool for our sales team",
            "ok gracias",
            "Necesitamos algo para organizar mejor a nuestro equipo de ventas",
        ),
    )
    replies = [e for e in events(steps, BotReplied) if e.audience == "conversation"]
    # "ok gracias" is two words: the bot keeps to English; the next, longer message switches.
    assert [reply.language for reply in replies] == ["en", "en", "es"]
    assert replies[1].text in wordings(default_policy, "en", replies[1].template)
    assert replies[2].text in wordings(default_policy, "es", replies[2].template)
    chosen = events(steps, ReplyLanguageChosen)
    assert [(e.previous, e.language) for e in chosen] == [("en", "es")]
    assert final_state(steps).reply_language == "es"


@pytest.mark.parametrize(
    "short", ["ok thanks", "danke schön", "merci beaucoup", "vale, gracias", "ok"]
)
def test_a_short_message_never_moves_the_language(default_policy: Policy, short: str) -> None:
    steps = talk(
        default_policy,
        says(
            "Guten Tag, ich interessiere mich für Ihre Software für unser Team",
            short,
        ),
    )
    replies = [e for e in events(steps, BotReplied) if e.audience == "conversation"]
    assert {reply.language for reply in replies} == {"de"}


def test_team_posts_stay_in_the_team_language(default_policy: Policy) -> None:
    spanish = talk(
        default_policy,
        says("Quiero hablar con una persona de verdad, por favor, no con un bot"),
        cid="conv-team",
    )
    english = talk(
        default_policy,
        says("I want to talk to a real person please, not a bot"),
        cid="conv-team",
    )

    def team_posts(steps: list) -> list[str]:  # type: ignore[type-arg]
        return [r.text for _, d in steps for r in d.replies if r.audience in TEAM_AUDIENCES]

    prospect = [e for e in events(spanish, BotReplied) if e.audience == "conversation"]
    assert prospect
    assert prospect[0].language == "es"
    assert prospect[0].text in wordings(default_policy, "es", prospect[0].template)
    # The handoff channel reads the same English post as for an English conversation.
    assert team_posts(spanish)
    assert team_posts(spanish) == team_posts(english)


def test_the_team_language_is_the_policys_not_the_prospects(default_policy: Policy) -> None:
    from domain.decision import Recorder

    languages = default_policy.languages
    assert languages is not None
    german_team = default_policy.model_copy(
        update={"languages": languages.model_copy(update={"team_language": "de"})}
    )
    steps = talk(german_team, says("Hola, me interesa su software para nuestro equipo"))
    rec = Recorder(final_state(steps), german_team, 0, "d")
    assert rec.language_for("conversation") == "es"
    assert rec.language_for("handoff") == "de"
    assert rec.language_for("team") == "de"
    assert rec.language_for("approvers") == "de"


def test_check_flags_a_missing_translation(default_policy: Policy) -> None:
    assert check_policy(default_policy) == ()
    languages = default_policy.languages
    assert languages is not None
    german = dict(languages.templates["de"])
    del german["ask.budget"]
    missing = default_policy.model_copy(
        update={
            "languages": languages.model_copy(
                update={"templates": {**languages.templates, "de": german}}
            )
        }
    )
    problems = check_policy(missing)
    assert problems == (
        "personas.salespro: template 'ask.budget' has no German wording "
        '(add [languages.templates.de."ask.budget"])',
    )
    # A policy that speaks fewer languages only needs those.
    fewer = missing.model_copy(
        update={
            "languages": missing.languages.model_copy(  # type: ignore[union-attr]
                update={"spoken": ("en", "es")}
            )
        }
    )
    assert check_policy(fewer) == ()


def test_check_flags_a_translation_with_other_placeholders_or_wordings(
    default_policy: Policy,
) -> None:
    languages = default_policy.languages
    assert languages is not None
    french = dict(languages.templates["fr"])
    french["ack.budget"] = french["ack.budget"].model_copy(
        update={"text": "Merci, un budget de {montant}, noté.", "variants": ()}
    )
    broken = default_policy.model_copy(
        update={
            "languages": languages.model_copy(
                update={"templates": {**languages.templates, "fr": french}}
            )
        }
    )
    problems = "\n".join(check_policy(broken))
    assert "'ack.budget' has 2 wording(s) but its French translation has 1" in problems
    assert "placeholders ['montant'] differ from the original's ['budget']" in problems


def test_a_policy_without_languages_speaks_and_hashes_as_before(
    default_policy: Policy, lexicon_policy: Policy
) -> None:
    old = default_policy.model_copy(update={"languages": None})
    assert "languages" not in json.loads(old.canonical_json())
    assert "languages" in json.loads(default_policy.canonical_json())
    steps = talk(old, says("Hola, me interesa su software para nuestro equipo"))
    replies = events(steps, BotReplied)
    assert replies[0].language is None
    assert replies[0].text in with_name(wordings(default_policy, "en", "greet", "greet_generic"))
    assert events(steps, ReplyLanguageChosen) == []
    assert "reply_language" not in {
        key for env in envelopes(steps) for key in env.event.model_dump(exclude_none=True)
    }


def test_the_seed_policy_has_no_languages() -> None:
    from bot.policy_loader import load_policy

    seed = load_policy("seed")
    assert seed.languages is None
    assert "languages" not in json.loads(seed.canonical_json())


def test_a_conversation_with_a_switch_replays_exactly_and_the_audit_says_so(
    default_policy: Policy,
) -> None:
    cid = "conv-switch"
    steps, inbounds = record(
        default_policy,
        says(
            "Hi, we're looking for a new tool for our sales team",
            "ok danke",
            "Wir sind ungefähr zwanzig Leute und wollen bald anfangen",
            "Bonjour, en fait je préfère continuer en français si possible",
        ),
        cid,
    )
    languages = [e.language for e in events(steps, BotReplied) if e.audience == "conversation"]
    assert languages[0] == "en"
    assert languages[1] == "en"  # "ok danke": two words
    assert languages[2] == "de"
    assert languages[-1] == "fr"
    replay = replay_conversation(cid, inbounds, envelopes(steps), lambda _: default_policy)
    assert replay.differences == ()
    again = talk(default_policy, says(*(m["text"] for m, _ in steps)), cid)
    assert bot_messages_to_the_prospect(again) == bot_messages_to_the_prospect(steps)
    audit = json.dumps(
        audit_conversation(cid, envelopes(steps)).model_dump(mode="json"), ensure_ascii=False
    )
    assert "Replies now in German (was English)" in audit
    assert "Replies now in French (was German)" in audit
    assert "Bot replied to the conversation in German" in audit


def test_word_count_and_the_switch_rule() -> None:
    config = LanguagesConfig(spoken=("en", "de"), switch_min_words=3)
    assert word_count("ok thanks") == 2
    assert word_count("10 seats please, 2026!") == 2
    assert next_language(config, None, "de", "Wir brauchen das bald") == "de"
    assert next_language(config, None, "de", "danke schön") is None
    assert next_language(config, None, "fr", "nous en avons besoin bientôt") is None
    assert next_language(config, None, "und", "hmm what about that") is None
    assert next_language(config, "de", "de", "Wir brauchen das bald") is None
