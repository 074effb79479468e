from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.policy_loader import load_document
from domain.errors import RenderError
from domain.persona import (
    ESCALATE,
    FIGURE_PLACEHOLDERS,
    PLACEHOLDERS,
    Persona,
    Template,
    check_persona,
    choose_action,
    render,
    render_template,
)

QUOTE = {
    "quote_id": "Q-0042",
    "qty": "10",
    "sku": "SEAT-PRO",
    "unit_price": "€49.00",
    "discount_percent": "10%",
    "total": "441.00 EUR",
    "currency": "EUR",
    "expires": "2025-07-01",
}


def load_salespro() -> Persona:
    document = load_document("default")
    return Persona.model_validate(document["personas"]["salespro"])


@pytest.fixture(scope="module")
def salespro() -> Persona:
    return load_salespro()


def persona_with(
    templates: dict[str, Template],
    fallbacks: dict[str, str] | None = None,
    actions: dict[str, str] | None = None,
) -> Persona:
    return Persona(
        name="Tester",
        tone="plain",
        allowed_claims=("pricing", "trial"),
        escalate_below=Decimal("0.5"),
        actions=actions or {},
        templates={"escalate": Template(text="A person will help."), **templates},
        fallbacks={"*": "escalate"} if fallbacks is None else fallbacks,
    )


# The draft policy


def test_the_draft_persona_parses_and_passes_the_check(salespro):
    assert salespro.name == "SalesPro"
    assert salespro.tone == "consultative"
    assert salespro.escalate_below == Decimal("0.5")
    assert isinstance(salespro.escalate_below, Decimal)
    assert check_persona(salespro, known_states=set(salespro.actions)) == ()


def test_the_seed_keeps_the_notebook_objection_texts():
    document = load_document("seed")
    seed = Persona.model_validate(document["personas"]["salespro"])
    assert seed.templates["objection.price"].variants == ()
    assert render(seed, "objection.price", {}).text == (
        "I understand pricing is important. Can I show value relevant to your goals?"
    )
    assert render(seed, "objection.timing", {}).text == (
        "I hear timing is tight. Would a short trial or phased roll-out help?"
    )
    assert render(seed, "objection.needs", {}).text == (
        "Thanks for sharing that. Can you tell me which features matter most?"
    )


def test_the_draft_greets_by_name_and_falls_back_to_a_generic_greeting(salespro):
    named = render(salespro, "greet", {"name": "Alex"})
    assert named.text.startswith("Hi Alex, thanks for reaching out.")
    assert not named.used_fallback

    anonymous = render(salespro, "greet", {})
    assert anonymous.template_action == "greet_generic"
    assert anonymous.used_fallback
    assert "{" not in anonymous.text


def test_the_draft_promises_no_handoff_it_does_not_make(salespro):
    """Contract terms in an objection stay with the bot (no ticket is opened), so its words
    must not say a person is being connected; every handoff line does open a ticket."""
    for text in salespro.templates["objection.contract"].texts:
        assert "contract terms" in text.lower()
        assert "connect you" not in text
    every_text = [text for template in salespro.templates.values() for text in template.texts]
    assert not any("for that request" in text for text in every_text)
    assert not any("Thank you for your decision" in text for text in every_text)


def test_a_state_the_flow_knows_but_the_persona_does_not_map_is_reported(salespro):
    problems = check_persona(salespro, known_states={"greeting", "negotiation"})
    assert len(problems) == 1
    assert "'negotiation'" in problems[0]
    assert "SalesPro" in problems[0]


# π(state, confidence)


def test_low_confidence_escalates_whatever_the_state(salespro):
    assert choose_action(salespro, "greeting", Decimal("0.49")) == ESCALATE
    assert choose_action(salespro, "qualify", Decimal("0")) == ESCALATE


def test_confidence_exactly_at_the_threshold_does_not_escalate(salespro):
    assert choose_action(salespro, "qualify", Decimal("0.5")) == "ask_qualifying"
    assert choose_action(salespro, "qualify", Decimal("0.50")) == "ask_qualifying"


def test_an_unknown_state_or_a_confidence_that_is_not_a_number_escalates(salespro):
    assert choose_action(salespro, "no-such-state", Decimal("0.99")) == ESCALATE
    assert choose_action(salespro, "qualify", Decimal("NaN")) == ESCALATE


def test_an_escalation_threshold_outside_zero_to_one_is_refused(salespro):
    data = salespro.model_dump()
    data["escalate_below"] = Decimal("1.5")
    with pytest.raises(ValueError, match="escalate_below"):
        Persona.model_validate(data)


# Safe rendering: user text is a value


@pytest.mark.parametrize(
    "user_text",
    [
        "{0.__class__}",
        "{name.__init__.__globals__}",
        "%(x)s",
        "{{",
        "}}",
        "{",
        "{name}",
        "%s%d",
    ],
)
def test_user_text_that_looks_like_a_format_string_renders_literally(salespro, user_text):
    assert render_template("Hi {name}!", {"name": user_text}) == f"Hi {user_text}!"
    assert user_text in render(salespro, "greet", {"name": user_text}).text


@settings(deadline=None)
@given(st.text().filter(str.strip))
def test_any_user_text_renders_verbatim(user_text):
    assert render_template("Hi {name}, about {topic}:", {"name": user_text, "topic": "x"}) == (
        f"Hi {user_text}, about x:"
    )


@settings(deadline=None)
@given(st.text().filter(lambda text: "{" not in text and "}" not in text))
def test_template_text_without_placeholders_renders_unchanged(text):
    assert render_template(text, {}) == text


@settings(deadline=None)
@given(st.text())
def test_any_template_text_either_renders_or_is_refused_with_a_render_error(text):
    values = dict.fromkeys(PLACEHOLDERS, "v")
    try:
        rendered = render_template(text, values)
    except RenderError:
        return
    assert isinstance(rendered, str)


def test_literal_braces_in_a_template_are_written_doubled():
    assert render_template("Use {{braces}} for {name}", {"name": "Ada"}) == ("Use {braces} for Ada")


FORBIDDEN = ["{0.x}", "{a[0]}", "{a!r}", "{a:>10}", "{}", "{0}", "{name.__class__}"]


@pytest.mark.parametrize("field", FORBIDDEN)
def test_a_template_with_attribute_index_conversion_or_format_syntax_is_refused(field):
    values = {"a": "secret", "name": "Ada", "0": "zero"}
    with pytest.raises(RenderError, match="only plain"):
        render_template(f"Hello {field}", values)


@pytest.mark.parametrize("field", FORBIDDEN)
def test_a_template_with_attribute_index_conversion_or_format_syntax_is_reported(field):
    persona = persona_with({"greet": Template(text=f"Hello {field}")})
    problems = check_persona(persona)
    assert len(problems) == 1
    assert "'greet'" in problems[0]
    assert "not allowed" in problems[0]


def test_a_template_with_an_unmatched_brace_is_reported_and_refused():
    persona = persona_with({"greet": Template(text="Hello {name")})
    assert any("brace" in problem for problem in check_persona(persona))
    with pytest.raises(RenderError, match="brace"):
        render_template("Hello {name", {"name": "Ada"})


def test_a_placeholder_the_bot_does_not_supply_is_reported():
    persona = persona_with({"greet": Template(text="Hi {nmae}")})
    (problem,) = check_persona(persona)
    assert "{nmae}" in problem


def test_a_missing_or_blank_value_is_refused():
    with pytest.raises(RenderError, match=r"\{name\}"):
        render_template("Hi {name}", {})
    with pytest.raises(RenderError, match=r"\{name\}"):
        render_template("Hi {name}", {"name": "  "})


# Claims and evidence


@pytest.mark.parametrize(
    "text",
    ["We offer 20% off.", "Seats are $5 each.", "It costs €5.", "Total: {total}", "Save ٢٠ today."],
)
def test_a_template_stating_a_figure_without_quote_evidence_is_reported(text):
    persona = persona_with({"deal": Template(text=text, claims=("pricing",))})
    problems = check_persona(persona)
    assert len(problems) == 1
    assert "'deal'" in problems[0]
    assert "without evidence" in problems[0]


def test_a_figure_template_must_declare_the_pricing_claim():
    persona = persona_with({"deal": Template(text="Total {total}", evidence="quote")})
    (problem,) = check_persona(persona)
    assert "'pricing'" in problem


def test_a_claim_the_persona_does_not_allow_is_reported():
    persona = persona_with({"boast": Template(text="We are the best.", claims=("superiority",))})
    (problem,) = check_persona(persona)
    assert "'superiority'" in problem
    assert "allowed_claims" in problem


def test_a_quote_without_a_computed_quote_falls_back_to_escalation(salespro):
    rendered = render(salespro, "quote_ready", {"name": "Alex", "total": "1.00"})
    assert rendered.template_action == ESCALATE
    assert rendered.used_fallback
    assert "1.00" not in rendered.text


def test_a_quote_with_a_computed_quote_states_its_figures(salespro):
    rendered = render(salespro, "quote_ready", {}, evidence=QUOTE)
    assert rendered.text == (
        "Here is quote Q-0042: 10 × SEAT-PRO at €49.00, 10% off, "
        "total 441.00 EUR, valid until 2025-07-01."
    )
    assert rendered.claims == ("pricing",)
    assert not rendered.used_fallback


def test_figures_typed_by_a_user_never_replace_the_quote_figures(salespro):
    rendered = render(salespro, "quote_ready", {"total": "0.01"}, evidence=QUOTE)
    assert "total 441.00 EUR" in rendered.text


def test_a_quote_missing_a_figure_falls_back_and_says_why(salespro):
    partial = {key: value for key, value in QUOTE.items() if key != "total"}
    rendered = render(salespro, "quote_ready", {}, evidence=partial)
    assert rendered.template_action == ESCALATE
    assert any("{total}" in reason for reason in rendered.skipped)


def test_quote_figures_are_a_subset_of_the_placeholders():
    assert FIGURE_PLACEHOLDERS < PLACEHOLDERS
    assert {"total", "subtotal", "discount", "discount_percent", "unit_price", "tax"} <= (
        FIGURE_PLACEHOLDERS
    )


# Fallbacks


def test_an_action_without_a_template_uses_its_fallback(salespro):
    rendered = render(salespro, "handle_objection", {})
    assert rendered.action == "handle_objection"
    assert rendered.template_action == ESCALATE
    assert rendered.used_fallback


def test_a_missing_value_falls_back_along_the_chain():
    persona = persona_with(
        {"a": Template(text="A {name}"), "b": Template(text="B {company}")},
        fallbacks={"a": "b", "*": "escalate"},
    )
    assert render(persona, "a", {"company": "Acme"}).text == "B Acme"
    assert render(persona, "a", {}).text == "A person will help."


def test_a_fallback_cycle_is_reported_and_rendering_stops():
    persona = persona_with(
        {"a": Template(text="A {name}"), "b": Template(text="B {name}")},
        fallbacks={"a": "b", "b": "a"},
    )
    problems = check_persona(persona)
    assert any("cycle" in problem and "a -> b -> a" in problem for problem in problems)
    with pytest.raises(RenderError, match="nothing it can say"):
        render(persona, "a", {})


def test_the_default_fallback_to_escalate_is_not_a_cycle():
    persona = persona_with({"a": Template(text="A")})
    assert check_persona(persona) == ()


def test_a_fallback_to_an_action_without_a_template_is_reported():
    persona = persona_with({}, fallbacks={"greet": "greet_generc", "*": "escalate"})
    (problem,) = check_persona(persona)
    assert "'greet_generc'" in problem


def test_an_action_mapped_from_a_state_needs_a_template_or_an_explicit_fallback():
    persona = persona_with({}, actions={"greeting": "gret"})
    (problem,) = check_persona(persona)
    assert "'gret'" in problem
    assert "'greeting'" in problem


def test_a_persona_that_cannot_escalate_is_reported():
    persona = Persona(
        name="Mute",
        tone="plain",
        allowed_claims=(),
        escalate_below=Decimal("0.5"),
        actions={},
        templates={"greet": Template(text="Hi.")},
    )
    (problem,) = check_persona(persona)
    assert "'escalate'" in problem


def test_an_unchecked_template_cannot_state_a_figure_from_ordinary_values():
    persona = persona_with({"deal": Template(text="Only {total} today!", claims=("pricing",))})
    rendered = render(persona, "deal", {"total": "0.01"})
    assert rendered.template_action == ESCALATE
    assert "0.01" not in rendered.text
