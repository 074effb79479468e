"""Entities a buyer writes: money, dates, team size and a competitor, in four languages.

Every case is a sentence a prospect could send; the expected values are what a rep reading
it would write down. Dates are resolved against a fixed decision time, Thursday
10 December 2026, three weeks before a year (and quarter) ends.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.understanding.entities import DateMention, Entities, Money, extract_entities

TODAY = date(2026, 12, 10)  # a Thursday
COMPETITORS = (
    "HubSpot",
    "Salesforce",
    "Pipedrive",
    "Zendesk",
    "Intercom",
    "Drift",
    "Zoho",
    "Freshworks",
)


def read(text: str, language: str = "en", today: date = TODAY) -> Entities:
    return extract_entities(text, language=language, today=today, competitors=COMPETITORS)


def d(iso: str) -> date:
    return date.fromisoformat(iso)


# ---------------------------------------------------------------------------------------
# Money
# ---------------------------------------------------------------------------------------

MONEY_CASES = [
    # English
    ("en", "cfo here. $40k approved. want to buy before EOQ.", [("40000", "USD", None)]),
    ("en", "We can spend about 15,000 USD this quarter", [("15000", "USD", None)]),
    ("en", "budget is around $2.5k/month", [("2500", "USD", "month")]),
    ("en", "We have $50k set aside", [("50000", "USD", None)]),
    ("en", "our budget is 1.2M dollars", [("1200000", "USD", None)]),
    ("en", "Pricing was $19.99 per user per month", [("19.99", "USD", "month")]),
    ("en", "£2m ARR business", [("2000000", "GBP", "year")]),
    ("en", "we could do 5 grand a month", [("5000", None, "month")]),
    ("en", "an annual budget of $40k", [("40000", "USD", "year")]),
    ("en", "about $40k per year", [("40000", "USD", "year")]),
    ("en", "$40-50k budget", [("40000", "USD", None), ("50000", "USD", None)]),
    ("en", "between $40k and $60k", [("40000", "USD", None), ("60000", "USD", None)]),
    ("en", "USD 1,234.56 was the invoice", [("1234.56", "USD", None)]),
    ("en", "we spend 30 bucks a seat", [("30", "USD", None)]),
    ("en", "CHF 20'000 max", [("20000", "CHF", None)]),
    ("en", "C$500 plus A$300", [("500", "CAD", None), ("300", "AUD", None)]),
    ("en", "$2 mil for the whole rollout", [("2000000", "USD", None)]),
    ("en", "budget: 50.000 EUR", [("50000", "EUR", None)]),
    ("en", "we pay 50 000 EUR p.a.", [("50000", "EUR", "year")]),
    ("en", "€1.5bn company, budget €200k", [("1500000000", "EUR", None), ("200000", "EUR", None)]),
    # German
    ("de", "Wir haben 50.000 EUR Budget", [("50000", "EUR", None)]),
    ("de", "Budget: 1,5 Mio. €", [("1500000", "EUR", None)]),
    ("de", "Jahresbudget von 50.000 €", [("50000", "EUR", "year")]),
    ("de", "etwa 2.500 Euro pro Monat", [("2500", "EUR", "month")]),
    ("de", "maximal 40.000,- € im Jahr", [("40000", "EUR", "year")]),
    ("de", "40-50.000 € sind drin", [("40000", "EUR", None), ("50000", "EUR", None)]),
    ("de", "das kostet 1.234,56 €", [("1234.56", "EUR", None)]),
    ("de", "20 Tsd. Franken", [("20000", "CHF", None)]),
    ("de", "50 k€ jährlich", [("50000", "EUR", "year")]),
    # French
    ("fr", "Budget de 1,5 M€ par an", [("1500000", "EUR", "year")]),
    ("fr", "environ 50 000 € par mois", [("50000", "EUR", "month")]),
    ("fr", "10 k€ maximum", [("10000", "EUR", None)]),
    ("fr", "5 millions d'euros", [("5000000", "EUR", None)]),
    ("fr", "un budget annuel de 30 000 €", [("30000", "EUR", "year")]),
    ("fr", "50 mille euros", [("50000", "EUR", None)]),
    # Spanish
    ("es", "tenemos 20 mil dólares", [("20000", "USD", None)]),
    ("es", "1,5 millones de euros al año", [("1500000", "EUR", "year")]),
    ("es", "un presupuesto de 40.000 € anuales", [("40000", "EUR", "year")]),
    ("es", "500 € al mes", [("500", "EUR", "month")]),
    ("es", "unos 300.000 pesos mexicanos", [("300000", "MXN", None)]),
    ("es", "unos 300.000 pesos", [("300000", None, None)]),
    ("es", "$40k de presupuesto", [("40000", None, None)]),  # "$" is also the peso sign
    ("es", "5 mil millones de pesos", [("5000000000", None, None)]),
    # No language detected: every language's words and formats.
    ("und", "50.000 € y 20 personas", [("50000", "EUR", None)]),
    # Traps: no currency marker, or not an amount at all.
    ("en", "we have 5k users and 40 seats", []),
    ("en", "we'd like 20% off", []),
    ("en", "we're a budget airline", []),
    ("en", "call me on +1 555 123 4567", []),
    ("en", "we run v2.5 of your app", []),
    ("en", "let's talk at 9:30", []),
    ("en", "we are looking at a six figures deal", []),
    ("en", "in 2027 we will have 300 reps", []),
    ("de", "Rufen Sie mich an: 0170 1234567", []),
    ("de", "Wir wollen 15 % Rabatt", []),
    ("fr", "un grand projet pour 5 grand comptes", []),
    ("es", "el 50 por ciento del equipo", []),
    ("en", "the $ sign is for the price", []),
]


@pytest.mark.parametrize(("language", "text", "expected"), MONEY_CASES)
def test_money_is_read_with_its_amount_currency_and_period(language, text, expected):
    money = read(text, language).money
    assert [(m.amount, m.currency, m.period) for m in money] == [
        (Decimal(amount), currency, period) for amount, currency, period in expected
    ]


def test_a_fractional_amount_keeps_its_digits_exactly():
    (money,) = read("Pricing was $19.99 per user per month").money
    assert money.amount == Decimal("19.99")
    assert str(money.amount) == "19.99"


def test_whole_amounts_are_plain_integers_not_decimal_fractions():
    (money,) = read("budget is around $2.5k/month").money
    assert str(money.amount) == "2500"


def test_money_text_is_the_span_as_written():
    money = read("Budget: 1,5 Mio. € und $40k", "de").money
    assert [m.text for m in money] == ["1,5 Mio. €", "$40k"]


def test_no_break_and_narrow_spaces_group_thousands():
    assert read("50\u00a0000 EUR").money[0].amount == Decimal(50000)
    assert read("50\u202f000 €", "fr").money[0].amount == Decimal(50000)


def test_the_language_decides_only_a_separator_before_a_magnitude():
    assert read("$1.500M", "en").money[0].amount == Decimal(1_500_000)
    assert read("1.500 Mio. €", "de").money[0].amount == Decimal(1_500_000_000)
    # Without a magnitude, three digits after one separator group thousands everywhere.
    assert read("$1,500", "de").money[0].amount == Decimal(1500)
    assert read("1.500 €", "en").money[0].amount == Decimal(1500)


def test_the_second_number_of_a_range_needs_a_marker_to_be_money():
    money = read("$5 to 10 users").money
    assert [(m.text, m.amount) for m in money] == [("$5", Decimal(5))]


# ---------------------------------------------------------------------------------------
# Dates (TODAY is Thursday 2026-12-10; Q4 2026 ends in three weeks)
# ---------------------------------------------------------------------------------------

DATE_CASES = [
    # Months: the next occurrence; this month counts until it is over.
    ("en", "We want to start in January", [("2027-01-01", "2027-01-31")]),
    ("en", "go live in December", [("2026-12-01", "2026-12-31")]),
    ("en", "maybe in March 2027", [("2027-03-01", "2027-03-31")]),
    ("en", "by the 15th of March", [("2027-03-15", "2027-03-15")]),
    ("en", "Let's aim for March 15th", [("2027-03-15", "2027-03-15")]),
    ("en", "we need it by December 5", [("2027-12-05", "2027-12-05")]),
    ("en", "kick off mid-March", [("2027-03-11", "2027-03-20")]),
    ("en", "by the end of February", [("2027-02-28", "2027-02-28")]),
    ("en", "next May works", [("2027-05-01", "2027-05-31")]),
    ("de", "Wir wollen im März starten", [("2027-03-01", "2027-03-31")]),
    ("de", "bis zum 15. März", [("2027-03-15", "2027-03-15")]),
    ("de", "spätestens Ende Januar", [("2027-01-31", "2027-01-31")]),
    ("fr", "le 15 mars", [("2027-03-15", "2027-03-15")]),
    ("fr", "démarrage le 1er avril 2027", [("2027-04-01", "2027-04-01")]),
    ("es", "el 15 de marzo", [("2027-03-15", "2027-03-15")]),
    ("es", "a finales de enero", [("2027-01-21", "2027-01-31")]),
    # Quarters, halves, fiscal years and the end of things.
    ("en", "we want to buy before EOQ", [("2026-12-31", "2026-12-31")]),
    ("en", "sometime in Q3", [("2027-07-01", "2027-09-30")]),
    ("en", "Q4 please", [("2026-10-01", "2026-12-31")]),
    ("en", "in Q3 2027", [("2027-07-01", "2027-09-30")]),
    ("en", "by end of Q2", [("2027-06-30", "2027-06-30")]),
    ("en", "budget for FY27", [("2027-01-01", "2027-12-31")]),
    ("en", "done by EOY", [("2026-12-31", "2026-12-31")]),
    ("en", "before the end of the year", [("2026-12-31", "2026-12-31")]),
    ("en", "in H2 2027", [("2027-07-01", "2027-12-31")]),
    ("en", "early 2027", [("2027-01-01", "2027-04-30")]),
    ("de", "im 3. Quartal", [("2027-07-01", "2027-09-30")]),
    ("de", "bis Jahresende", [("2026-12-31", "2026-12-31")]),
    ("fr", "au T3", [("2027-07-01", "2027-09-30")]),
    ("fr", "au 3e trimestre", [("2027-07-01", "2027-09-30")]),
    ("fr", "d'ici la fin d'année", [("2026-12-31", "2026-12-31")]),
    ("es", "en el tercer trimestre", [("2027-07-01", "2027-09-30")]),
    ("es", "antes de fin de año", [("2026-12-31", "2026-12-31")]),
    # Relative to today.
    ("en", "can we talk today?", [("2026-12-10", "2026-12-10")]),
    ("en", "tomorrow afternoon", [("2026-12-11", "2026-12-11")]),
    ("en", "this week if possible", [("2026-12-07", "2026-12-13")]),
    ("en", "next week", [("2026-12-14", "2026-12-20")]),
    ("en", "next month", [("2027-01-01", "2027-01-31")]),
    ("en", "next year", [("2027-01-01", "2027-12-31")]),
    ("en", "in 3 weeks", [("2026-12-31", "2026-12-31")]),
    ("en", "within two months", [("2026-12-10", "2027-02-10")]),
    ("en", "we spoke 3 weeks ago", [("2026-11-19", "2026-11-19")]),
    ("de", "nächste Woche", [("2026-12-14", "2026-12-20")]),
    ("de", "nächsten Monat", [("2027-01-01", "2027-01-31")]),
    ("de", "in drei Wochen", [("2026-12-31", "2026-12-31")]),
    ("fr", "la semaine prochaine", [("2026-12-14", "2026-12-20")]),
    ("fr", "le mois prochain", [("2027-01-01", "2027-01-31")]),
    ("fr", "demain matin", [("2026-12-11", "2026-12-11")]),
    ("es", "la próxima semana", [("2026-12-14", "2026-12-20")]),
    ("es", "el mes que viene", [("2027-01-01", "2027-01-31")]),
    ("es", "dentro de 3 semanas", [("2026-12-31", "2026-12-31")]),
    ("es", "¿mañana por la mañana?", [("2026-12-11", "2026-12-11")]),
    # Weekdays: the next such day, today included.
    ("en", "Could we book a demo for Thursday afternoon?", [("2026-12-10", "2026-12-10")]),
    ("en", "Friday works", [("2026-12-11", "2026-12-11")]),
    ("en", "next Thursday", [("2026-12-17", "2026-12-17")]),
    ("de", "am Montag", [("2026-12-14", "2026-12-14")]),
    ("fr", "jeudi prochain", [("2026-12-17", "2026-12-17")]),
    ("es", "el próximo martes", [("2026-12-15", "2026-12-15")]),
    # Written dates.
    ("en", "contract starts 2027-01-15", [("2027-01-15", "2027-01-15")]),
    ("en", "starting 01/15/2027", [("2027-01-15", "2027-01-15")]),
    ("de", "Start am 15.01.2027", [("2027-01-15", "2027-01-15")]),
    ("fr", "début le 15/01/2027", [("2027-01-15", "2027-01-15")]),
    ("en", "by the 15th", [("2026-12-15", "2026-12-15")]),
    ("fr", "prochaine séance le 12.", [("2026-12-12", "2026-12-12")]),
    ("fr", "démo possible la semaine du 9 ?", [("2027-01-04", "2027-01-10")]),
    ("en", "free the week of the 18th", [("2026-12-14", "2026-12-20")]),
    ("en", "by the 5th", [("2027-01-05", "2027-01-05")]),
    # Several mentions, in the order written.
    (
        "en",
        "demo on Monday, decision by end of January",
        [("2026-12-14", "2026-12-14"), ("2027-01-31", "2027-01-31")],
    ),
    # Not dates.
    ("en", "I may have a question", []),
    ("en", "we removed seats in march. 2nd time asking", [("2027-03-01", "2027-03-31")]),
    ("de", "Schon wieder ein Ausfall heute Morgen", [("2026-12-10", "2026-12-10")]),
    ("de", "ab Juli 3 neue Kolleginnen", [("2027-07-01", "2027-07-31")]),
    ("fr", "le 2 000 € promis", []),
    ("en", "May we see a demo?", []),
    ("en", "we signed a 12 month contract", []),
    ("en", "it's on the 3rd floor", []),
    ("en", "the second half of the meeting", []),
    ("de", "Guten Morgen, haben Sie kurz Zeit?", []),
    ("de", "Morgen! Kurze Frage zum Preis", []),
    ("fr", "sept personnes dans l'équipe", []),
    ("es", "por la mañana estoy libre", []),
    ("en", "we have 2000 users", []),
]


@pytest.mark.parametrize(("language", "text", "expected"), DATE_CASES)
def test_dates_resolve_to_the_range_they_denote(language, text, expected):
    dates = read(text, language).dates
    assert [(m.start, m.end) for m in dates] == [(d(a), d(b)) for a, b in expected]


@pytest.mark.parametrize(
    ("today", "text", "expected"),
    [
        # On the last day of a quarter, EOQ is today and "Q1" is the quarter ending today.
        (date(2027, 3, 31), "before EOQ", ("2027-03-31", "2027-03-31")),
        (date(2027, 3, 31), "in Q1", ("2027-01-01", "2027-03-31")),
        (date(2027, 4, 1), "in Q1", ("2028-01-01", "2028-03-31")),
        (date(2027, 4, 1), "this quarter", ("2027-04-01", "2027-06-30")),
        (date(2027, 4, 1), "next quarter", ("2027-07-01", "2027-09-30")),
        # Over New Year.
        (date(2026, 12, 31), "tomorrow", ("2027-01-01", "2027-01-01")),
        (date(2026, 12, 31), "next week", ("2027-01-04", "2027-01-10")),
        (date(2027, 1, 2), "in December", ("2027-12-01", "2027-12-31")),
        (date(2027, 1, 31), "in a month", ("2027-02-28", "2027-02-28")),
    ],
)
def test_relative_dates_move_with_the_decision_time(today, text, expected):
    (mention,) = read(text, today=today).dates
    assert (mention.start, mention.end) == (d(expected[0]), d(expected[1]))


def test_a_date_mention_keeps_its_text_as_written():
    dates = read("Wir wollen bis Ende März, spätestens im 3. Quartal starten", "de").dates
    assert [m.text for m in dates] == ["Ende März", "3. Quartal"]


def test_an_impossible_date_is_no_date():
    assert read("on 2027-02-30").dates == ()


# ---------------------------------------------------------------------------------------
# Team size
# ---------------------------------------------------------------------------------------

TEAM_CASES = [
    ("en", "we're a team of 40", 40),
    ("en", "we have 40 reps", 40),
    ("en", "We are 12 people", 12),
    ("en", "we're a 3-person team", 3),
    ("en", "about 200 employees", 200),
    ("en", "we need 30 seats", 30),
    ("en", "30 Pro licenses please", 30),
    ("en", "We are 2 people, just curious", 2),
    ("en", "two sales reps and a manager", 2),
    ("en", "1,200 employees worldwide", 1200),
    ("en", "40 reps today, 55 users next year", 55),
    ("en", "We're a 70-person property management company", 70),
    ("en", "a legal services firm with 80 lawyers", 80),
    ("en", "we signed a 12 months contract", None),
    ("en", "we are 3 weeks from launch", None),
    ("en", "$30 per user", None),
    ("de", "Wir sind 50 Mitarbeiter", 50),
    ("de", "wir sind 12.", 12),
    ("de", "ein Team von 8 Vertrieblern", 8),
    ("fr", "nous sommes 20 personnes", 20),
    ("fr", "une équipe de 15", 15),
    ("fr", "200 salariés en France", 200),
    ("es", "somos 15 empleados", 15),
    ("es", "un equipo de 8", 8),
    ("es", "15 personas en ventas", 15),
    ("und", "20 personnes", 20),
]


@pytest.mark.parametrize(("language", "text", "expected"), TEAM_CASES)
def test_team_size_is_the_largest_head_count_stated(language, text, expected):
    assert read(text, language).team_size == expected


# ---------------------------------------------------------------------------------------
# Competitor
# ---------------------------------------------------------------------------------------

COMPETITOR_CASES = [
    ("We went with HubSpot, thanks anyway.", "HubSpot"),
    ("we're already on hubspot", "HubSpot"),
    ("SALESFORCE is too expensive", "Salesforce"),
    ("Drift does this for us", "Drift"),
    ("We sail on the Driftwood", None),
    ("our zohomail accounts", None),
    ("compared Pipedrive and Zendesk", "Pipedrive"),
    ("Zendesk's bot vs Intercom", "Zendesk"),
    ("we moved off salesforce.com last year", "Salesforce"),
    ("Freshworks-based stack", "Freshworks"),
    ("no vendor yet", None),
    ("wir nutzen bereits Pipedrive", "Pipedrive"),
]


@pytest.mark.parametrize(("text", "expected"), COMPETITOR_CASES)
def test_a_competitor_is_a_whole_word_from_the_policy_list_spelled_as_listed(text, expected):
    assert read(text).competitor == expected


def test_no_competitor_list_means_no_competitor():
    assert (
        extract_entities("HubSpot", language="en", today=TODAY, competitors=()).competitor is None
    )


# ---------------------------------------------------------------------------------------
# The contract's JSON and robustness
# ---------------------------------------------------------------------------------------


def test_as_json_is_the_entities_value_of_the_understand_contract():
    entities = read("cfo here. $40k approved for our 40 reps. Live by EOQ? We use Zoho.")
    assert entities.as_json() == {
        "money": [{"text": "$40k", "amount": 40000, "currency": "USD", "period": None}],
        "dates": [{"text": "EOQ", "start": "2026-12-31", "end": "2026-12-31"}],
        "team_size": 40,
        "competitor": "Zoho",
    }
    assert json.loads(json.dumps(entities.as_json())) == entities.as_json()


def test_as_json_leaves_a_fractional_amount_an_exact_decimal():
    money = read("$19.99 a month").as_json()["money"]
    assert isinstance(money, list)
    amount = money[0]["amount"]
    assert isinstance(amount, Decimal)
    assert amount == Decimal("19.99")


def test_a_message_with_nothing_gives_empty_entities():
    assert read("Hi, can you tell me more about your product?") == Entities()
    assert Entities().as_json() == {"money": [], "dates": [], "team_size": None, "competitor": None}


def test_entities_are_immutable_values():
    money = Money(text="$1", amount=Decimal(1), currency="USD", period=None)
    mention = DateMention(text="today", start=TODAY, end=TODAY)
    with pytest.raises(AttributeError):
        money.amount = Decimal(2)  # type: ignore[misc]
    assert hash(mention) == hash(DateMention(text="today", start=TODAY, end=TODAY))


LANGUAGES = st.sampled_from(["en", "de", "fr", "es", "und", "xx"])
ENTITY_ALPHABET = st.sampled_from(
    [
        *"0123456789 .,'-/:%$€£kKmMqQtThH\u00a0\u202f",
        *("EUR ", " USD", " Mio.", " k€", " grand", " mil ", " de ", " par mois", "/month"),
        *(" p.a.", " Q3", " FY27", " EOQ", " March", " 15th", " next week", " in 3 weeks"),
        *(" Ende ", " team of ", " reps", " Mitarbeiter", " somos ", " HubSpot", " hubspot's"),
        "\u0130",  # "İ" lower-cases to two characters
    ]
)


def check_invariants(entities: Entities) -> None:
    for money in entities.money:
        assert money.amount.is_finite()
        assert money.amount >= 0
        assert money.text
    for mention in entities.dates:
        assert mention.start <= mention.end
    if entities.team_size is not None:
        assert entities.team_size > 0
    json.dumps(entities.as_json(), default=str)


@settings(max_examples=40, deadline=None)
@given(text=st.text(), language=LANGUAGES)
def test_any_text_is_read_without_error(text, language):
    check_invariants(
        extract_entities(text, language=language, today=TODAY, competitors=COMPETITORS)
    )


@settings(max_examples=40, deadline=None)
@given(
    text=st.lists(ENTITY_ALPHABET, max_size=30).map("".join),
    language=LANGUAGES,
    today=st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
)
def test_entity_shaped_text_is_read_without_error_on_any_day(text, language, today):
    check_invariants(
        extract_entities(text, language=language, today=today, competitors=COMPETITORS)
    )
