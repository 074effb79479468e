"""Entities in a prospect's message: amounts of money, dates, team size and a competitor's name.

Why hand-written rules: an entity becomes a feature of the linear reading and a line of the
audit, so a rep must be able to see *why* "$40k" is forty thousand dollars and "EOQ" is the
last day of the quarter. Rules are exact, offline, fast enough to run before every reply, and
their mistakes are fixed by editing a table, not by retraining. Everything is pure: the
decision time is an argument, so a replay reads a message exactly as it was read.

What is recognised (lower-cased, in the message's language; "und" reads all four):

- **money** needs a currency marker (a symbol, an ISO code, a currency word) or "grand"; a bare
  number is a count ("5k users", "40 seats"), not money. Percentages are never money. The
  currency is None when the marker does not say which ("grand", "pesos", "¥", "$" in Spanish).
- **dates** are resolved against `today` into an inclusive range: a month is its first..last
  day, a quarter its three months, a week Monday..Sunday, "in 3 weeks" or a weekday one day,
  "within two months" today..two months on, "end of X" (EOQ, year-end, "Ende März", "fin
  d'année") the last day of X, and early / mid / late X its first / middle / last third. A
  month, quarter, day or weekday without a year is the next one not yet over (today counts);
  "next Thursday" is the first Thursday after today, "last Thursday" the one before it.
- **team_size** is the largest head count stated ("team of 40", "50 Mitarbeiter").
- **competitor** is the name from the policy's list mentioned first in the message, as a
  whole word ("Driftwood" is not Drift), spelled as the list spells it.

Words that are also something else only count in context: "may" and "march" need a day, a
year or a preposition ("in May"), "Morgen" opening a message is a greeting, "sept" in French
is also seven, a bare "2027" needs "in" or "by" before it.

Numbers: "50 000" (any space) is 50000 everywhere; a single separator followed by exactly
three digits ("50.000", "50,000") groups thousands in every language, because buyers write
their own convention whatever language they write in and money is never quoted to a tenth of
a cent. Only before a magnitude ("1.500M", "1,500 Mio") does the language decide: the
decimal mark is "." in English and "," in German, French and Spanish. One or two digits after
a single separator are decimals ("2.5k", "1,5 Mio.").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Context, Decimal
from functools import lru_cache
from typing import Any

__all__ = ["DateMention", "Entities", "Money", "extract_entities", "read_entities"]


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of money as the prospect wrote it.

    `amount` is exact (a `Decimal`, never a float): "1,5 Mio. €" is `Decimal("1500000")`.
    `currency` is an ISO 4217 code, or None when the marker does not say which ("grand",
    "pesos", "$" in a Spanish message, "¥"). `period` is "month" or "year" when stated.
    A range ("$40-50k") gives two amounts that share the range's text.
    """

    text: str
    amount: Decimal
    currency: str | None
    period: str | None


@dataclass(frozen=True, slots=True)
class DateMention:
    """A mention of a date or period and the inclusive range of days it denotes."""

    text: str
    start: date
    end: date


@dataclass(frozen=True, slots=True)
class Entities:
    """Everything extracted from one message, in the order the mentions appear."""

    money: tuple[Money, ...] = ()
    dates: tuple[DateMention, ...] = ()
    team_size: int | None = None
    competitor: str | None = None

    def as_json(self) -> dict[str, object]:
        """The `entities` value of `salesbot understand`.

        A whole amount is an `int` (so `json.dumps` writes `40000`); a fractional one stays
        a `Decimal` ("19.99"), which the caller serialises as a JSON number from its exact
        text — never through a float, so the figure printed is the figure extracted.
        """
        return {
            "money": [
                {
                    "text": m.text,
                    "amount": _json_amount(m.amount),
                    "currency": m.currency,
                    "period": m.period,
                }
                for m in self.money
            ],
            "dates": [
                {"text": d.text, "start": d.start.isoformat(), "end": d.end.isoformat()}
                for d in self.dates
            ],
            "team_size": self.team_size,
            "competitor": self.competitor,
        }


def _json_amount(amount: Decimal) -> int | Decimal:
    """An int when whole, so the common case serialises with plain `json.dumps`."""
    return int(amount) if amount == amount.to_integral_value() else amount


_EMPTY = Entities()


# ---------------------------------------------------------------------------------------
# Text preparation
# ---------------------------------------------------------------------------------------

# One character for one, so offsets in the prepared text are offsets in the original: no-break
# and narrow spaces become spaces ("50 000"), typographic quotes, apostrophes and dashes plain
# ones, and inverted marks spaces (so "¿mañana?" has the word "mañana").
_FOLD = str.maketrans(
    {
        **dict.fromkeys("\u00a0\u202f\u2007\u2009\u2008\u200a\u2002\u2003\u2004\u2005\u3000", " "),
        **dict.fromkeys("\u00bf\u00a1\u2022\u00b7", " "),
        **dict.fromkeys("\u2019\u2018\u02bc\u00b4", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u00ab\u00bb\u2039\u203a", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2212", "-"),
        "\u2026": ".",
    }
)
# `str.translate` walks a non-ASCII text character by character; a search skips it when no
# character needs folding, which is nearly always.
_FOLDABLE = re.compile("[" + "".join(re.escape(chr(c)) for c in _FOLD) + "]")
# Gates are decided on words; splitting bytes is ten times cheaper than a regex tokeniser.
_PUNCTUATION = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_SPLIT = bytes.maketrans(_PUNCTUATION, b" " * len(_PUNCTUATION))
_DIGITS = b"0123456789"
# Whitespace in patterns. No optional groups nest around these, so a long run of spaces costs
# a pattern linear time at the few positions where it is tried.
_S = r"\s+"
_SO = r"\s*"


def _lower(text: str) -> str:
    """Lower-case without changing the length (a few letters, like "İ", lower to two)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _words(phrases: Iterable[str], *, first: bool = False) -> frozenset[bytes]:
    """The gate of some phrases: each one's last (or first) word, as the gates see words.

    One distinctive word per phrase ("morning" of "this morning", "dozen" of "a dozen"), so
    that "this" or "a" alone never wakes a pattern up.
    """
    out = set()
    for phrase in phrases:
        tokens = phrase.encode().translate(_SPLIT).split()
        if tokens:
            out.add(tokens[0] if first else tokens[-1])
    return frozenset(out)


def _key(matched: str) -> str:
    """A matched phrase as a table key: whitespace runs become one space."""
    return " ".join(matched.split())


def _glued(low: str, index: int) -> bool:
    """Whether the character before `index` is part of a word (a match must not start there)."""
    if index == 0:
        return False
    before = low[index - 1]
    return before.isalnum() or before == "_"


def _word_before(low: str, start: int) -> str:
    """The word just before `start` across its separator (spaces, a hyphen, an apostrophe).

    Empty when no separator precedes `start`. It lets a pattern skip its prefix regex when
    that word cannot end a prefix, which is most of the time ("in January").
    """
    end = start
    floor = max(0, start - 4)
    while end > floor and low[end - 1] in " \t\n\r-'~":
        end -= 1
    if end == start:
        return ""
    begin = end
    floor = max(0, end - 24)
    while begin > floor and (low[begin - 1].isalnum() or low[begin - 1] == "."):
        begin -= 1
    return low[begin:end].rstrip(".")


def _ends(phrases: Iterable[str]) -> frozenset[str]:
    """The words some prefix phrases end with, as `_word_before` reads them."""
    out = set()
    for phrase in phrases:
        last = phrase.split()[-1] if phrase.split() else ""
        last = last[:-1] if last.endswith("'") else last.rsplit("'", 1)[-1]
        out.add(last.rsplit("-", 1)[-1].rstrip("."))
    return frozenset(out)


_Trie = dict[str, "_Trie"]


def _alt(phrases: Iterable[str]) -> str:
    """A regex for any of some literal phrases, as a trie: "ma(?:r(?:ch)?|y)".

    Python's `re` tries the alternatives of a flat alternation one by one at every position;
    a trie fails at the first letter that no phrase continues with, and a pattern that
    starts with it lets `re` skip positions whose character no phrase begins with.
    A space in a phrase matches any run of whitespace. Longer phrases win
    ("march" before "mar"), as the optional tails are greedy.
    """
    trie: _Trie = {}
    for phrase in set(phrases):
        node = trie
        for char in phrase:
            node = node.setdefault(char, {})
        node[""] = {}
    return _emit(trie) or "(?!)"


def _emit(node: _Trie) -> str:
    branches = [
        (_S if char == " " else re.escape(char)) + _emit(child)
        for char, child in sorted(node.items())
        if char
    ]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if "" in node:
        return "(?:" + body + ")?"
    return body


# ---------------------------------------------------------------------------------------
# Money
# ---------------------------------------------------------------------------------------

_EXACT = Context(prec=60)
# fmt: off
_CODES = [
    "usd", "eur", "gbp", "chf", "cad", "aud", "mxn", "jpy", "inr", "brl", "sek", "nok", "dkk",
    "pln", "nzd", "sgd", "hkd", "zar", "cny", "czk", "huf",
]
_PREFIX_SYMBOLS: Mapping[str, str | None] = {
    "us$": "USD",
    "u.s.$": "USD",
    "c$": "CAD",
    "ca$": "CAD",
    "can$": "CAD",
    "cad$": "CAD",
    "a$": "AUD",
    "au$": "AUD",
    "aud$": "AUD",
    "mx$": "MXN",
    "mex$": "MXN",
    "nz$": "NZD",
    "s$": "SGD",
    "sg$": "SGD",
    "hk$": "HKD",
    "r$": "BRL",
    "sfr": "CHF",
    "sfr.": "CHF",
    "$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": None,  # yen or yuan
    "₹": "INR",
    **{code: code.upper() for code in _CODES},
}
_CURRENCY_WORDS: Mapping[str, str | None] = {
    **dict.fromkeys(
        [
            "dollar", "dollars", "bucks", "dólar", "dólares", "dolar", "dolares", "us dollars",
            "us dollar", "u.s. dollars", "american dollars", "dollars us", "dollars américains",
            "dollars americains", "dólares estadounidenses", "dólares americanos",
            "dolares estadounidenses", "dolares americanos", "$ us", "$us", "us$",
        ],
        "USD",
    ),
    **dict.fromkeys(
        [
            "canadian dollars", "dollars canadiens", "dólares canadienses", "dolares canadienses",
        ],
        "CAD",
    ),
    **dict.fromkeys(
        [
            "australian dollars", "dollars australiens", "dólares australianos",
            "dolares australianos",
        ],
        "AUD",
    ),
    "new zealand dollars": "NZD",
    "singapore dollars": "SGD",
    "hong kong dollars": "HKD",
    **dict.fromkeys(("euro", "euros"), "EUR"),
    **dict.fromkeys(
        [
            "pound", "pounds", "pound sterling", "pounds sterling", "quid", "pfund",
            "livre sterling", "livres sterling", "libra", "libras", "libra esterlina",
            "libras esterlinas",
        ],
        "GBP",
    ),
    **dict.fromkeys(
        [
            "franken", "schweizer franken", "franc suisse", "francs suisses", "sfr",
        ],
        "CHF",
    ),
    "pesos mexicanos": "MXN",
    "peso": None,  # Mexican, Argentinian, Chilean, Colombian...: not ours to guess
    "pesos": None,
    "yen": "JPY",
    "rupee": "INR",
    "rupees": "INR",
    "reais": "BRL",
    **{code: code.upper() for code in _CODES},
}
_MAGNITUDES: Mapping[str, int] = {
    **dict.fromkeys(
        [
            "k", "thousand", "tausend", "tsd", "tsd.", "mille", "grand", "mil",
        ],
        1_000,
    ),
    **dict.fromkeys(
        [
            "m", "mm", "mn", "mio", "mio.", "mill.", "million", "millions", "millionen", "millón",
            "millon", "millones",
        ],
        1_000_000,
    ),
    **dict.fromkeys(
        [
            "b", "bn", "billion", "billions", "mil millones", "milliard", "milliards", "milliarde",
            "milliarden", "mrd", "mrd.",
        ],
        1_000_000_000,
    ),
    **dict.fromkeys(
        [
            "billón", "billones",
        ],
        1_000_000_000_000,
    ),
}
_PERIOD_MONTH = [
    "month", "months", "monthly", "mo", "mos", "mth", "mths", "m", "mon", "monat", "monate",
    "monatlich", "mois", "mensuel", "mensuelle", "mensuels", "mensuelles", "mes", "mensual",
    "mensuales", "mrr", "pcm", "p.m.", "pm",
]
_PERIOD_YEAR = [
    "year", "years", "yearly", "annual", "annually", "annum", "yr", "yrs", "y", "jahr", "jahre",
    "jährlich", "jaehrlich", "an", "ans", "année", "annee", "annuel", "annuelle", "annuels",
    "annuelles", "año", "ano", "anual", "anuales", "arr", "pa", "p.a.", "p. a.",
]
_PERIOD_CONNECTED = [
    "month", "monat", "mois", "mes", "year", "annum", "jahr", "an", "année", "annee", "año", "ano",
    "yr", "mo",
]
_PERIOD_BARE = [
    "monthly", "annually", "yearly", "annual", "p.a.", "p. a.", "pa", "pcm", "arr", "mrr",
    "jährlich", "jaehrlich", "monatlich", "mensuel", "mensuelle", "mensuels", "mensuelles",
    "annuel", "annuelle", "annuels", "annuelles", "mensual", "mensuales", "anual", "anuales",
]
# fmt: on
_PERIODS: Mapping[str, str] = {
    **dict.fromkeys(_PERIOD_YEAR, "year"),
    **dict.fromkeys(_PERIOD_MONTH, "month"),
}

_PRE = r"(?:" + _alt(_PREFIX_SYMBOLS) + r")(?![a-z])"
_SUF = r"(?:[$€£¥₹](?!\s{0,2}[0-9])(?!\s?us(?![a-z]))|(?:" + _alt(_CURRENCY_WORDS) + r")(?![a-z]))"
_MAG = r"(?:" + _alt(_MAGNITUDES) + r")(?![^\W\d_])"
_PER_UNITS = (
    r"(?:users?|seats?|licen[cs]es?|nutzer|utilisateurs?|usuarios?|persons?|reps?|heads?|agents?)"
)
_PERIOD = (
    r"(?:" + _SO + r"/" + _SO + r"(?:" + _PER_UNITS + _SO + r"/" + _SO + r")?"
    r"(?P<ps>" + _alt(_PERIODS) + r")"
    r"|"
    + _S
    + r"(?:per|a|each|every|pro|par|al|por|im|le)"
    + _S
    + r"(?:"
    + _PER_UNITS
    + _S
    + r"(?:per|a|pro|par|al|por)"
    + _S
    + r")?(?P<pc>"
    + _alt(_PERIOD_CONNECTED)
    + r")"
    r"|" + _S + r"(?P<pb>" + _alt(_PERIOD_BARE) + r"))"
)


def _num(name: str) -> str:
    """A number as written: grouped ("50,000", "50 000", "20'000") or plain, with decimals.

    It starts with a bare digit class so `re` can skip straight to the digits of a text.
    """
    return (
        rf"(?P<{name}>[0-9](?:[0-9]{{0,2}}(?P<{name}g>[.,' ])[0-9]{{3}}(?:(?P={name}g)[0-9]{{3}})"
        rf"{{0,4}}(?:[.,][0-9]{{1,6}})?|[0-9]{{0,11}}(?:[.,][0-9]{{1,6}})?))(?![0-9]|[.,:/][0-9])"
    )


# An amount, from its first digit: the currency prefix ("$", "EUR ") is looked for before it.
_MONEY = re.compile(
    _num("n1") + r"(?:,-{1,2})?"
    r"(?!\s{0,2}(?:%|percent|prozent|pour\s?cent|por\s?ciento))"
    r"(?:" + _SO + r"(?P<m1>" + _MAG + r"))?"
    r"(?:"
    + _SO
    + r"(?:-|to|bis|à|a)"
    + _SO
    + _num("n2")
    + r"(?:,-{1,2})?(?:"
    + _SO
    + r"(?P<m2>"
    + _MAG
    + r"))?)?"
    r"(?:" + _SO + r"(?:(?:de|of)" + _S + r"|d')?(?P<suf>" + _SUF + r"))?"
    r"(?P<per>" + _PERIOD + r")?"
    r"(?!\w)"
)
_MONEY_PREFIX = re.compile(r"(?<!\w)(?P<pre>" + _PRE + r")\s{0,2}$")
_NOT_BEFORE_AMOUNT = frozenset(".,:/+#@'_$€£¥₹")
# A period stated before the amount: "an annual budget of $40k", "Jahresbudget 50.000 €".
_PERIOD_BEFORE = re.compile(
    r"(?<!\w)(?:(?P<y>annual(?:ly)?|yearly|jährlich\w*|jahres(?:budget|vertrag|lizenz\w*|"
    r"gebühr\w*|kosten|preis|abo\w*|umsatz)|annuel\w*|anual\w*)"
    r"|(?P<m>monthly|monatlich\w*|monats(?:budget|kosten|preis|gebühr\w*|abo\w*|beitrag)"
    r"|mensuel\w*|mensual\w*))(?!\w)"
)
_DECIMAL_MARK = {"en": ".", "de": ",", "fr": ",", "es": ",", "und": "."}
_GROUPS = re.compile(r"[.,' ][0-9]{3}")


def _number(raw: str, decimal_mark: str, scaled: bool) -> Decimal | None:
    """The value of a number as written (see the module docstring for separators)."""
    s = raw.replace(" ", "").replace("'", "")
    dots, commas = s.count("."), s.count(",")
    if dots and commas:
        dec = "." if s.rfind(".") > s.rfind(",") else ","
        if s.count(dec) > 1:
            return None
        s = s.replace("," if dec == "." else ".", "").replace(dec, ".")
    elif dots or commas:
        sep = "." if dots else ","
        tail = s.rpartition(sep)[2]
        if dots + commas > 1:
            if len(tail) != 3:
                return None  # "1.234.5"
            s = s.replace(sep, "")
        elif len(tail) == 3 and not (scaled and sep == decimal_mark):
            s = s.replace(sep, "")
        else:
            s = s.replace(sep, ".")
    return Decimal(s)


def _magnitude(token: str | None, language: str) -> int | None:
    """A magnitude word's factor; 0 when the word is not a magnitude in this language."""
    if token is None:
        return None
    word = _key(token)
    if word == "grand":
        return 1_000 if language in ("en", "und") else 0  # French "grand" is "big"
    if word == "mil":
        return 1_000_000 if language == "en" else 1_000  # "$2 mil"; "20 mil dólares"
    if word in ("billion", "billions") and language in ("de", "fr"):
        return 1_000_000_000_000  # a "Billion" is a million millions there
    return _MAGNITUDES.get(word, 0)


def _currency_of(marker: str | None, language: str) -> str | None:
    if marker is None:
        return None
    token = _key(marker)
    if token == "$" and language == "es":
        return None  # "$" is the peso sign in much of Latin America
    if token in _PREFIX_SYMBOLS:
        return _PREFIX_SYMBOLS[token]
    return _CURRENCY_WORDS.get(token)


def _exact(value: Decimal) -> Decimal:
    """Whole amounts as plain integers ("2500", not "2500.0"); fractions without trailing 0s."""
    if value == value.to_integral_value():
        return Decimal(int(value))
    return value.normalize(_EXACT)


def _money(text: str, low: str, language: str) -> tuple[Money, ...]:
    """Every amount with a currency marker, in text order.

    The pattern anchors on digits (fast to find); the prefix ("$", "EUR ") is matched on the
    few characters before them, and a bare number is never money.
    """
    found: list[Money] = []
    mark = _DECIMAL_MARK.get(language, ".")
    previous_end = 0
    position = 0
    while (m := _MONEY.search(low, position)) is not None:
        start, position = m.span()
        prefix = _MONEY_PREFIX.search(low, max(0, start - 9), start)
        if prefix is not None:
            pre: str | None = prefix.group("pre")
            start = prefix.start()
        elif start and (_glued(low, start) or low[start - 1] in _NOT_BEFORE_AMOUNT):
            continue  # "v2.5", "9:30", "+1 555", "abc$5"
        else:
            pre = None
        suf = m.group("suf")
        mag1, mag2 = _magnitude(m.group("m1"), language), _magnitude(m.group("m2"), language)
        if mag1 == 0 or mag2 == 0:
            continue
        ranged = m.group("n2") is not None
        end = m.end()
        if ranged and not (mag2 or suf):
            # "$50 to 100 users": the second number is a count, not the top of a range.
            ranged, suf = False, None
            end = m.end("m1") if m.group("m1") else m.end("n1")
        grand = "grand" in (_key(m.group("m1") or ""), _key(m.group("m2") or ""))
        if not (pre or suf or grand):
            continue
        n1 = _number(m.group("n1"), mark, mag1 is not None or mag2 is not None)
        n2 = _number(m.group("n2"), mark, mag2 is not None) if ranged else None
        if n1 is None or (ranged and n2 is None):
            continue
        currency = _currency_of(suf, language)
        if currency is None:
            currency = _currency_of(pre, language)
        period = None
        if end == m.end() and m.group("per"):
            word = m.group("ps") or m.group("pc") or m.group("pb")
            period = _PERIODS.get(_key(word))
        if period is None:
            period = _period_before(low, max(previous_end, start - 32), start)
        span = text[start:end]
        if ranged and n2 is not None:
            factor = mag1 or mag2 or _shared_thousands(n1, n2, m.group("n2"))
            amounts = [
                _EXACT.multiply(n1, Decimal(factor)),
                _EXACT.multiply(n2, Decimal(mag2 or 1)),
            ]
        else:
            amounts = [_EXACT.multiply(n1, Decimal(mag1 or 1))]
        for amount in amounts:
            exact = _exact(amount)
            if exact != amount.to_integral_value():
                exponent = exact.as_tuple().exponent
                if isinstance(exponent, int) and exponent < -6:
                    continue  # no budget is stated to a millionth; keeps features at 6 places
            found.append(Money(text=span, amount=exact, currency=currency, period=period))
        previous_end = end
    return tuple(found)


def _shared_thousands(low: Decimal, high: Decimal, high_text: str) -> int:
    """The factor the bottom of "40-50.000 €" shares with its top (1000 here, else 1)."""
    factor = int(1000 ** len(_GROUPS.findall(high_text)))
    if factor > 1 and low < 1000 and low * factor <= high:
        return factor
    return 1


def _period_before(low: str, start: int, end: int) -> str | None:
    """The period an adjective before the amount states ("annual budget of"), the nearest."""
    last = None
    for hit in _PERIOD_BEFORE.finditer(low, start, end):
        last = hit
    if last is None:
        return None
    return "year" if last.group("y") else "month"


# ---------------------------------------------------------------------------------------
# Calendar arithmetic
# ---------------------------------------------------------------------------------------

Span = tuple[date, date]


_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _month_end(year: int, month: int) -> date:
    leap = month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return date(year, month, _MONTH_DAYS[month - 1] + leap)


def _plus(day: date, days: int) -> date:
    """`day` plus some days (ordinals: several times cheaper than a `timedelta`)."""
    return date.fromordinal(day.toordinal() + days)


def _month_range(year: int, month: int) -> Span:
    return date(year, month, 1), _month_end(year, month)


def _quarter_range(year: int, quarter: int) -> Span:
    return date(year, 3 * quarter - 2, 1), _month_end(year, 3 * quarter)


def _half_range(year: int, half: int) -> Span:
    return date(year, 6 * half - 5, 1), _month_end(year, 6 * half)


def _year_range(year: int) -> Span:
    return date(year, 1, 1), date(year, 12, 31)


def _add_months(day: date, months: int) -> date:
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month0 + 1, min(day.day, _month_end(year, month0 + 1).day))


def _shift(day: date, unit: str, n: int) -> date:
    if unit == "day":
        return _plus(day, n)
    if unit == "week":
        return _plus(day, 7 * n)
    return _add_months(day, n * {"month": 1, "quarter": 3, "year": 12}[unit])


def _unit_range(unit: str, today: date, offset: int) -> Span:
    """The day, week (Monday..Sunday), month, quarter or year `offset` units from today's."""
    if unit == "day":
        day = _plus(today, offset)
        return day, day
    if unit == "week":
        monday = _plus(today, 7 * offset - today.weekday())
        return monday, _plus(monday, 6)
    if unit == "month":
        year, month0 = divmod(today.year * 12 + today.month - 1 + offset, 12)
        return _month_range(year, month0 + 1)
    if unit == "quarter":
        year, q0 = divmod(today.year * 4 + (today.month - 1) // 3 + offset, 4)
        return _quarter_range(year, q0 + 1)
    return _year_range(today.year + offset)


def _months_between(start: date, end: date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month + 1


def _apply_mod(kind: str | None, span: Span) -> Span:
    """ "end of X" is X's last day; early / mid / late X is its first / middle / last third."""
    start, end = span
    if kind is None or start == end:
        return span
    if kind == "end":
        return end, end
    third = {"early": 0, "mid": 1, "late": 2}[kind]
    months = _months_between(start, end)
    whole_months = start.day == 1 and end == _month_end(end.year, end.month)
    if whole_months and months >= 3 and months % 3 == 0:
        step = months // 3
        first = _add_months(start, third * step)
        last = _plus(_add_months(first, step), -1)
        return first, last
    size = ((end - start).days + 1) // 3
    first = _plus(start, third * size)
    last = end if third == 2 else _plus(first, size - 1)
    return first, last


# ---------------------------------------------------------------------------------------
# Language tables
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Lang:
    """The words one language uses for dates and head counts. Keys are lower case."""

    months: Mapping[str, int]
    ambiguous_months: frozenset[str]
    weekdays: Mapping[str, int]
    units: Mapping[str, str]  # singular and genitive forms: "next week", "Ende des Monats"
    plural_units: Mapping[str, str]
    pre_det: Mapping[str, int]  # "next" week: offset in units
    post_det: Mapping[str, int]  # la semaine "prochaine"
    articles: tuple[str, ...]  # each with its trailing space or apostrophe
    mod_end: tuple[str, ...]
    mod_early: tuple[str, ...]
    mod_mid: tuple[str, ...]
    mod_late: tuple[str, ...]
    in_point: tuple[str, ...]  # "in 3 weeks": that day
    in_within: tuple[str, ...]  # "within 3 weeks": today..that day
    ago_before: tuple[str, ...]  # "vor 3 Wochen"
    after_number: Mapping[str, str]  # "3 weeks ago" / "from now"
    numbers: Mapping[str, int]  # number words for counts
    articles_as_one: Mapping[str, int]  # "in a week", "binnen einer Woche"
    day_words: Mapping[str, int]
    quarter_nouns: tuple[str, ...]
    quarter_ordinals: Mapping[str, int]
    half_nouns: tuple[str, ...]
    half_ordinals: Mapping[str, int]
    letter_t_quarters: bool  # French "T3"
    day_after_month: bool  # "March 15" (English); elsewhere the day comes first
    year_context: tuple[str, ...]  # a bare year is a date only after one of these
    month_context: tuple[str, ...]  # an ambiguous month ("may") only after one of these
    weekend: tuple[str, ...]
    day_before: tuple[str, ...]  # what must precede a day number alone: "by (the) 15th"
    day_core: str  # the day number alone, digit first; groups dom and (German) dmon
    team_nouns: tuple[str, ...]
    team_adjectives: tuple[str, ...]
    team_hyphen_units: tuple[str, ...]
    team_org_nouns: tuple[str, ...]
    team_before: tuple[str, ...]
    we_are: tuple[str, ...]
    we_are_follow: tuple[str, ...]
    approx: tuple[str, ...]


def _det(words: str, offset: int) -> dict[str, int]:
    return dict.fromkeys(words.split("|"), offset)


def _numbered(words: str, start: int = 1) -> dict[str, int]:
    return {w: i for i, w in enumerate(words.split(), start=start)}


# fmt: off
_EN = _Lang(
    months={
        **_numbered(
            "january february march april may june july august september october november december"
        ),
        **_numbered("jan feb mar apr"),
        **_numbered("jun jul aug sep oct nov dec", start=6),
        "sept": 9,
    },
    ambiguous_months=frozenset({"may", "march", "mar", "jan"}),
    weekdays={
        **_numbered("monday tuesday wednesday thursday friday saturday sunday", start=0),
        "tues": 1,
        "weds": 2,
        "thurs": 3,
    },
    units={"day": "day", "week": "week", "month": "month", "quarter": "quarter", "year": "year"},
    plural_units={"days": "day", "weeks": "week", "months": "month", "quarters": "quarter", "years": "year"},
    pre_det={
        **_det("this|current|the current", 0),
        **_det("next|the next|coming|the coming|following|the following", 1),
        **_det("last|the last|past|the past|previous|the previous", -1),
    },
    post_det={"after next": 2},
    articles=("the ",),
    mod_end=("end of", "the end of", "the very end of", "very end of"),
    mod_early=("early", "beginning of", "the beginning of", "start of", "the start of"),
    mod_mid=("mid", "middle of", "the middle of"),
    mod_late=("late",),
    in_point=("in", "in about", "in around", "in approximately", "in roughly", "in just"),
    in_within=(
        "within", "within the next", "in the next", "over the next", "during the next",
        "in the coming", "over the coming", "within the coming", "next", "the next",
    ),
    ago_before=(),
    after_number={"ago": "ago", "from now": "point", "from today": "point"},
    numbers={
        **_numbered("one two three four five six seven eight nine ten eleven twelve"),
        "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "a dozen": 12,
    },
    articles_as_one={"a": 1, "an": 1, "a couple of": 2, "a couple": 2, "couple of": 2},
    day_words={
        **_det("today|tonight|this morning|this afternoon|this evening", 0),
        **_det("tomorrow|tmrw|tmr|tomorow|tommorow|tommorrow", 1),
        **_det("the day after tomorrow|day after tomorrow", 2),
        "yesterday": -1,
        "the day before yesterday": -2,
    },
    quarter_nouns=("quarter",),
    quarter_ordinals=_numbered("first second third fourth"),
    half_nouns=("half of the year", "half"),
    half_ordinals={"first": 1, "second": 2},
    letter_t_quarters=False,
    day_after_month=True,
    year_context=("in", "by", "until", "till", "before", "after", "during", "through", "since"),
    month_context=(
        "in", "by", "until", "till", "before", "after", "from", "since", "through", "during",
        "of", "next", "this", "last", "to", "early", "mid", "late",
    ),
    weekend=("weekend", "week-end", "week end"),
    day_before=(
        "by", "on", "until", "till", "before", "after", "from", "starting", "due",
        "the week of", "week of", "the week of the", "week of the",
        "no later than", "by the", "on the", "until the", "till the", "before the", "after the",
        "from the", "starting the", "due the", "no later than the",
    ),
    day_core=(
        r"(?P<dom>[0-9][0-9]?)(?:st|nd|rd|th)(?!\w)(?!\s+(?:of\s+)?(?:floor|part(?:y|ies)|time|"
        r"place|quarter|century|grade|round|attempt|year|edition|version|generation|person|"
        r"anniversary|call|meeting|week|month|day|hour|seat|user|rep|item|step|percentile|"
        r"birthday|option|choice)s?(?!\w))"
    ),
    team_nouns=(
        "reps", "rep", "sales reps", "representatives", "people", "persons", "person",
        "employees", "employee", "staff", "staffers", "agents", "agent", "users", "user",
        "seats", "seat", "licenses", "license", "licences", "licence", "members", "salespeople",
        "sellers", "sdrs", "aes", "bdrs", "ftes", "fte", "heads", "engineers", "developers",
        "devs", "colleagues", "workers", "account executives", "team members", "folks", "of us",
        "lawyers", "attorneys", "consultants", "accountants", "advisors", "advisers", "recruiters",
        "technicians", "drivers", "nurses", "doctors", "teachers", "designers", "analysts",
    ),
    team_adjectives=(
        "sales", "support", "service", "customer", "full-time", "full time", "fulltime",
        "part-time", "inside", "outside", "field", "active", "named", "concurrent", "more",
        "additional", "extra", "new", "total", "pro", "premium", "enterprise", "business",
        "internal", "paid", "licensed", "regular", "permanent", "remote", "other", "account",
        "success", "marketing", "dev", "engineering", "it", "cs", "standard", "basic", "starter",
    ),
    team_hyphen_units=("person", "people", "man", "member", "seat", "user", "strong", "rep"),
    team_org_nouns=(
        "team", "company", "startup", "start-up", "firm", "agency", "shop", "business",
        "org", "organization", "organisation", "department", "dept", "squad", "license",
        "licence", "plan", "deal", "contract", "rollout", "outfit", "operation", "crew",
    ),
    team_before=(
        "team of", "team size of", "team size is", "team size", "team size:", "headcount of",
        "headcount is", "headcount", "headcount:", "staff of", "crew of",
    ),
    we_are=("we are", "we're", "we re"),
    we_are_follow=(
        "of us", "and", "but", "in", "at", "on", "now", "today", "people", "here", "total",
        "strong",
    ),
    approx=(
        "about", "around", "roughly", "approximately", "approx.", "approx", "~", "nearly",
        "almost", "over", "more than", "under", "less than", "close to", "some", "just", "only",
        "currently",
    ),
)

_DE = _Lang(
    months={
        **_numbered(
            "januar februar märz april mai juni juli august september oktober november dezember"
        ),
        "jänner": 1, "jaenner": 1, "maerz": 3, "marz": 3,
        **_numbered("jan feb mär apr"),
        **_numbered("jun jul aug sep okt nov dez", start=6),
        "mrz": 3, "sept": 9,
    },
    ambiguous_months=frozenset({"jan"}),
    weekdays={
        **_numbered("montag dienstag mittwoch donnerstag freitag samstag sonntag", start=0),
        "sonnabend": 5,
    },
    units={
        "tag": "day", "woche": "week", "monat": "month", "monats": "month", "quartal": "quarter",
        "quartals": "quarter", "jahr": "year", "jahres": "year",
    },
    plural_units={
        "tage": "day", "tagen": "day", "wochen": "week", "monate": "month", "monaten": "month",
        "quartale": "quarter", "quartalen": "quarter", "jahre": "year", "jahren": "year",
    },
    pre_det={
        **_det("diese|dieser|dieses|diesen|diesem|laufende|laufenden|laufendes|aktuelle|aktuellen", 0),
        **_det(
            "nächste|nächster|nächstes|nächsten|nächstem|naechste|naechster|naechstes|naechsten|"
            "kommende|kommender|kommendes|kommenden",
            1,
        ),
        **_det("übernächste|übernächster|übernächstes|übernächsten", 2),
        **_det(
            "letzte|letzter|letztes|letzten|vorige|voriger|voriges|vorigen|vergangene|"
            "vergangener|vergangenes|vergangenen",
            -1,
        ),
    },
    post_det={},
    articles=("des ", "der ", "dem ", "den "),
    mod_end=("ende",),
    mod_early=("anfang", "beginn"),
    mod_mid=("mitte",),
    mod_late=(),
    in_point=("in", "in etwa", "in ca."),
    in_within=(
        "innerhalb von", "innerhalb", "innert", "binnen", "in den nächsten", "in den kommenden",
        "innerhalb der nächsten",
    ),
    ago_before=("vor",),
    after_number={},
    numbers={
        **_numbered("eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf"),
        "fuenf": 5, "zwoelf": 12, "fünfzehn": 15, "zwanzig": 20, "dreißig": 30, "dreissig": 30,
        "vierzig": 40, "fünfzig": 50, "ein dutzend": 12,
    },
    articles_as_one=dict.fromkeys(("ein", "eine", "einer", "einem", "einen", "eines"), 1),
    day_words={
        "heute": 0, "heute abend": 0, "heute morgen": 0, "heute früh": 0, "morgen": 1, "übermorgen": 2, "uebermorgen": 2,
        "gestern": -1, "vorgestern": -2,
    },
    quarter_nouns=("quartal",),
    quarter_ordinals={
        **_det("erste|ersten|erstes|erster", 1),
        **_det("zweite|zweiten|zweites|zweiter", 2),
        **_det("dritte|dritten|drittes|dritter", 3),
        **_det("vierte|vierten|viertes|vierter", 4),
    },
    half_nouns=("halbjahr", "halbjahres", "jahreshälfte", "jahreshaelfte", "hälfte des jahres"),
    half_ordinals={
        **_det("erste|ersten|erstes|erster", 1),
        **_det("zweite|zweiten|zweites|zweiter", 2),
    },
    letter_t_quarters=False,
    day_after_month=False,
    year_context=("im", "bis", "ab", "seit", "vor", "nach", "in", "im jahr", "im jahre"),
    month_context=("im", "bis", "ab", "seit", "vor", "nach", "anfang", "mitte", "ende", "zum", "von"),
    weekend=("wochenende",),
    day_before=(
        "am", "bis zum", "zum", "ab dem", "ab", "die woche vom", "woche vom", "in der woche vom", "vor dem", "spätestens am", "spätestens zum",
        "bis spätestens zum", "bis",
    ),
    day_core=(
        r"(?P<dom>[0-9][0-9]?)\.(?:(?P<dmon>[0-9]{1,2})\.)?(?![0-9])(?!\s*(?:[0-9%€$£]|(?:tag|"
        r"woche|monat|quartal|jahr|mal|platz|stock|klasse|version|runde|halbjahr)\w*))"
    ),
    team_nouns=(
        "mitarbeiter", "mitarbeiterinnen", "mitarbeitende", "mitarbeitenden", "mitarbeitern",
        "angestellte", "angestellten", "beschäftigte", "beschäftigten", "leute", "leuten",
        "personen", "vertriebler", "vertrieblern", "vertriebsmitarbeiter", "verkäufer", "nutzer",
        "nutzern", "benutzer", "user", "usern", "lizenzen", "plätze", "seats", "kollegen", "anwälte", "berater", "beraterinnen",
        "kolleginnen", "köpfe", "köpfen", "ma", "fte",
    ),
    team_adjectives=(
        "feste", "festangestellte", "aktive", "weitere", "zusätzliche", "neue", "interne",
        "externe",
    ),
    team_hyphen_units=("personen", "köpfiges", "köpfige", "köpfigen", "mann"),
    team_org_nouns=("team", "unternehmen", "firma", "startup", "vertriebsteam", "abteilung"),
    team_before=(
        "team von", "team aus", "teamgröße", "teamgröße von", "teamgröße:", "ein team von",
        "ein team aus",
    ),
    we_are=("wir sind",),
    we_are_follow=("und", "aber", "im", "in", "leute", "personen", "insgesamt", "mann", "köpfe"),
    approx=(
        "etwa", "rund", "ca.", "ca", "circa", "ungefähr", "über", "mehr als", "knapp", "fast",
        "derzeit", "aktuell",
    ),
)

_FR = _Lang(
    months={
        **_numbered(
            "janvier février mars avril mai juin juillet août septembre octobre novembre décembre"
        ),
        "fevrier": 2, "aout": 8, "decembre": 12,
        "janv": 1, "févr": 2, "fevr": 2, "fév": 2, "fev": 2, "avr": 4, "juil": 7, "sept": 9,
        "oct": 10, "nov": 11, "déc": 12, "dec": 12,
    },
    ambiguous_months=frozenset({"sept"}),  # also the number seven
    weekdays=_numbered("lundi mardi mercredi jeudi vendredi samedi dimanche", start=0),
    units={
        "jour": "day", "semaine": "week", "mois": "month", "trimestre": "quarter", "an": "year",
        "année": "year", "annee": "year",
    },
    plural_units={
        "jours": "day", "semaines": "week", "trimestres": "quarter", "ans": "year",
        "années": "year", "annees": "year",
    },
    pre_det=_det("ce|cet|cette", 0),
    post_det={
        **_det("prochain|prochaine|suivant|suivante", 1),
        **_det("dernier|dernière|derniere|passé|passée|passe|passee", -1),
        "en cours": 0,
    },
    articles=("la ", "le ", "l'", "du ", "de la ", "de l'", "des ", "d'", "de "),
    mod_end=("fin", "fin de", "fin du", "fin d'", "la fin de", "la fin du", "la fin d'"),
    mod_early=(
        "début", "debut", "début de", "debut de", "début du", "debut du", "début d'", "debut d'",
    ),
    mod_mid=("mi", "milieu de", "milieu du", "le milieu de", "le milieu du"),
    mod_late=(),
    in_point=("dans", "dans environ"),
    in_within=("d'ici", "sous", "en moins de", "dans les", "au cours des", "pendant les", "en"),
    ago_before=("il y a",),
    after_number={},
    numbers={
        **_numbered("deux trois quatre cinq six sept huit neuf dix onze douze", start=2),
        "quinze": 15, "vingt": 20, "trente": 30, "quarante": 40, "cinquante": 50,
        "une douzaine": 12,
    },
    articles_as_one={"un": 1, "une": 1},
    day_words={
        "aujourd'hui": 0, "ce soir": 0, "ce matin": 0, "demain": 1, "après-demain": 2,
        "apres-demain": 2, "après demain": 2, "hier": -1, "avant-hier": -2,
    },
    quarter_nouns=("trimestre",),
    quarter_ordinals={
        **_det("premier|première|premiere", 1),
        **_det("deuxième|deuxieme|second|seconde", 2),
        **_det("troisième|troisieme", 3),
        **_det("quatrième|quatrieme", 4),
    },
    half_nouns=("semestre",),
    half_ordinals={**_det("premier|1er", 1), **_det("second|deuxième|deuxieme", 2)},
    letter_t_quarters=True,
    day_after_month=False,
    year_context=(
        "en", "d'ici", "pour", "avant", "après", "apres", "depuis", "dès", "jusqu'en",
        "à partir de", "courant",
    ),
    month_context=(
        "en", "d'ici", "avant", "après", "apres", "depuis", "dès", "fin", "début", "mi",
        "à partir de", "jusqu'en", "courant", "pour", "mois de",
    ),
    weekend=("week-end", "weekend"),
    day_before=(
        "le", "avant le", "d'ici le", "pour le", "la semaine du", "semaine du", "jusqu'au", "au plus tard le", "à partir du",
        "a partir du", "dès le", "à compter du",
    ),
    day_core=(
        r"(?P<dom>[0-9][0-9]?)(?:er)?(?![0-9\w])(?!\s*(?:[0-9%€$£]|[.,:h][0-9]|(?:jours?|semaines?|"
        r"mois|ans|années?|personnes|utilisateurs|licences|euros?|heures?)(?!\w)))"
    ),
    team_nouns=(
        "personnes", "salariés", "salaries", "employés", "employes", "collaborateurs",
        "collaboratrices", "commerciaux", "vendeurs", "utilisateurs", "licences", "postes",
        "sièges", "sieges", "agents", "membres", "etp", "collègues", "gens", "avocats", "consultants",
        "conseillers", "ingénieurs",
    ),
    team_adjectives=("nouveaux", "autres"),
    team_hyphen_units=(),
    team_org_nouns=(),
    team_before=("équipe de", "equipe de", "une équipe de", "effectif de", "effectif"),
    we_are=("nous sommes", "on est"),
    we_are_follow=("et", "mais", "dans", "en", "personnes", "au total", "aujourd'hui"),
    approx=("environ", "près de", "pres de", "plus de", "moins de", "presque", "quelque"),
)

_ES = _Lang(
    months={
        **_numbered(
            "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre "
            "diciembre"
        ),
        "setiembre": 9,
        **_numbered("ene feb mar abr"),
        **_numbered("jun jul ago sep oct nov dic", start=6),
        "sept": 9,
    },
    ambiguous_months=frozenset({"mar", "ago"}),  # the sea; "ago" in English
    weekdays={
        **_numbered("lunes martes miércoles jueves viernes sábado domingo", start=0),
        "miercoles": 2,
        "sabado": 5,
    },
    units={
        "día": "day", "dia": "day", "semana": "week", "mes": "month", "trimestre": "quarter",
        "año": "year",
    },
    plural_units={
        "días": "day", "dias": "day", "semanas": "week", "meses": "month",
        "trimestres": "quarter", "años": "year",
    },
    pre_det={
        **_det("este|esta", 0),
        **_det(
            "el próximo|la próxima|próximo|próxima|el proximo|la proxima|proximo|proxima", 1
        ),
    },
    post_det={
        **_det("que viene|próximo|próxima|proximo|proxima|siguiente|entrante", 1),
        **_det("pasado|pasada", -1),
        **_det("en curso|actual", 0),
    },
    articles=("el ", "la ", "del ", "de la ", "de "),
    mod_end=(
        "fin de", "fin del", "a fin de", "a fin del", "cierre de", "cierre del", "final de",
        "final del",
    ),
    mod_early=(
        "principios de", "principios del", "a principios de", "a principios del", "inicios de",
        "inicios del", "comienzos de", "comienzos del", "inicio de", "inicio del",
        "principio de", "principio del",
    ),
    mod_mid=("mediados de", "mediados del", "a mediados de", "a mediados del"),
    mod_late=(
        "finales de", "finales del", "a finales de", "a finales del", "fines de", "fines del",
        "a fines de", "a fines del",
    ),
    in_point=("en", "dentro de", "en unos", "en unas"),
    in_within=(
        "en los próximos", "en las próximas", "en los proximos", "en las proximas",
        "en un plazo de", "en menos de",
    ),
    ago_before=("hace",),
    after_number={},
    numbers={
        **_numbered("dos tres cuatro cinco seis siete ocho nueve diez once doce", start=2),
        "quince": 15, "veinte": 20, "treinta": 30, "cuarenta": 40, "cincuenta": 50,
        "una docena": 12,
    },
    articles_as_one={"un": 1, "una": 1, "uno": 1},
    day_words={
        "hoy": 0, "esta noche": 0, "esta tarde": 0, "mañana": 1, "manana": 1,
        "pasado mañana": 2, "pasado manana": 2, "ayer": -1, "anteayer": -2,
    },
    quarter_nouns=("trimestre",),
    quarter_ordinals={
        **_det("primer|primero", 1), "segundo": 2, **_det("tercer|tercero", 3), "cuarto": 4,
    },
    half_nouns=("semestre",),
    half_ordinals={**_det("primer|primero", 1), "segundo": 2},
    letter_t_quarters=False,
    day_after_month=False,
    year_context=(
        "en", "para", "antes de", "después de", "despues de", "hasta", "desde", "durante",
        "a partir de",
    ),
    month_context=(
        "en", "para", "antes de", "después de", "despues de", "hasta", "desde", "a partir de",
        "de", "del",
    ),
    weekend=("fin de semana", "finde"),
    day_before=(
        "el", "antes del", "para el", "hasta el", "la semana del", "semana del", "a partir del", "desde el", "el día", "el dia",
        "del día",
    ),
    day_core=(
        r"(?P<dom>[0-9][0-9]?)(?![0-9\w])(?!\s*(?:[0-9%€$£]|[.,:][0-9]|(?:días|dias|semanas|meses|"
        r"años|personas|usuarios|licencias|euros|dólares|horas)(?!\w)))"
    ),
    team_nouns=(
        "empleados", "empleadas", "personas", "trabajadores", "vendedores", "comerciales",
        "usuarios", "licencias", "puestos", "asientos", "agentes", "colaboradores", "miembros", "abogados", "consultores",
        "asesores", "ingenieros",
        "representantes",
    ),
    team_adjectives=("nuevos", "otros"),
    team_hyphen_units=(),
    team_org_nouns=(),
    team_before=("equipo de", "un equipo de", "plantilla de"),
    we_are=("somos",),
    we_are_follow=("y", "pero", "en", "personas", "ahora", "hoy", "en total"),
    approx=(
        "unos", "unas", "alrededor de", "cerca de", "más de", "mas de", "casi",
        "aproximadamente",
    ),
)

# fmt: on

_LANGS: Mapping[str, _Lang] = {"en": _EN, "de": _DE, "fr": _FR, "es": _ES}
# Words that mean something else in another of the four languages stay out of "und":
# "hier" is German for "here", not French "yesterday".
_UND_EXCLUDED_DAY_WORDS = frozenset({"hier"})


# ---------------------------------------------------------------------------------------
# Date grammar: one set of compiled patterns per language (and "und", their union)
# ---------------------------------------------------------------------------------------
#
# Each pattern is an *anchor* that `re` can find fast (a digit, a month name, a unit word)
# plus an optional *prefix* matched on the few characters before it ("end of", "next",
# "15th of", "in 3") and an optional *suffix* after it ("2027", "prochaine", "ago"). A pattern
# that begins with an optional prefix would be tried at every position of every message.


class _Parts:
    """The prefix, anchor and suffix matches of one mention, read as one set of groups."""

    __slots__ = ("after", "before", "core", "owners")

    def __init__(
        self,
        owners: Mapping[str, int],
        before: re.Match[str] | None,
        core: re.Match[str],
        after: re.Match[str] | None,
    ) -> None:
        self.owners, self.before, self.core, self.after = owners, before, core, after

    def group(self, name: str) -> str | None:
        """A group's text; `owners` says which of the three matches defines it."""
        owner = self.owners.get(name)
        if owner is None:
            return None
        m = self.core if owner == 1 else self.before if owner == 0 else self.after
        if m is None or name not in m.re.groupindex:
            return None  # the other of two prefix patterns matched
        return m.group(name)


def _owners(
    before: re.Pattern[str] | None, core: re.Pattern[str], after: re.Pattern[str] | None
) -> dict[str, int]:
    owners: dict[str, int] = {}
    for index, pattern in ((2, after), (0, before), (1, core)):  # the anchor's name wins
        if pattern is not None:
            owners.update(dict.fromkeys(pattern.groupindex, index))
    return owners


_WEEK_OF = re.compile(r"week|woche|semaine|semana")  # "la semaine du 18": that day's week
# "dans les 3 *prochains* mois", "in den 3 *nächsten* Wochen"
_LATER = ("prochains", "prochaines", "próximos", "próximas", "proximos", "proximas", "nächsten")
_PREFIX_WINDOW = 32  # "the very end of the following " is 30 characters
Resolver = Callable[["_Grammar", _Parts, date, str], "Span | None"]


@dataclass(frozen=True, slots=True)
class _Pattern:
    """A date pattern, the gate that decides whether it runs, and how a match resolves."""

    core: re.Pattern[str]
    resolve: Resolver
    on_digit: bool = False  # runs whenever the text has a digit...
    words: frozenset[bytes] = frozenset()  # ... or one of these words
    substrings: tuple[str, ...] = ()  # ... or contains one of these
    before: re.Pattern[str] | None = None
    after: re.Pattern[str] | None = None
    needs_before: bool = False
    prefix_in_text: bool = True  # the prefix is part of the mention's text (else only "xs")
    not_after: str = ""  # characters that may not precede the anchor, besides word characters
    prefix_ends: frozenset[str] = frozenset()  # the words a prefix can end with...
    prefix_digits: bool = False  # ... or a number ("15th" March, "in 3" weeks)
    # A second prefix for when the word before the anchor is a number ("in 3" weeks): two
    # small patterns, each tried only where it can match, are cheaper than their union.
    number_before: re.Pattern[str] | None = None
    number_ends: frozenset[str] = frozenset()
    owners: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        owners = _owners(self.before, self.core, self.after)
        if self.number_before is not None:
            owners.update(dict.fromkeys(self.number_before.groupindex, 0))
        object.__setattr__(self, "owners", owners)


@dataclass(frozen=True, slots=True)
class _Grammar:
    """One language's compiled patterns and the tables their resolvers read."""

    language: str
    months: Mapping[str, int]
    ambiguous_months: frozenset[str]
    weekdays: Mapping[str, int]
    units: Mapping[str, str]
    singular_units: frozenset[str]
    count_nouns: frozenset[str]  # "users", "Mitarbeiter": what a head count is of
    pre_det: Mapping[str, int]
    post_det: Mapping[str, int]
    in_kinds: Mapping[str, str]
    after_number: Mapping[str, str]
    numbers: Mapping[str, int]
    day_words: Mapping[str, int]
    quarter_ordinals: Mapping[str, int]
    half_ordinals: Mapping[str, int]
    quarter_nouns: frozenset[str]
    mod_kinds: Mapping[str, str]  # "end of" -> "end", "mediados de" -> "mid"
    month_context: re.Pattern[str]
    patterns: tuple[_Pattern, ...]
    date_words: frozenset[bytes]  # the union of the patterns' gates: one test for most texts
    date_substrings: tuple[str, ...]
    team: re.Pattern[str]
    team_before: re.Pattern[str]
    team_prefix_ends: frozenset[str]
    team_gate: frozenset[bytes]
    team_follow: frozenset[str]  # what may follow "we are 12": "and", "in", "people"...
    team_numbers: Mapping[str, int]
    team_number_words: frozenset[bytes]


_END_UNITS = {
    "eod": "day",
    "cob": "day",
    "close of business": "day",
    "eow": "week",
    "eom": "month",
    "month-end": "month",
    "month end": "month",
    "monatsende": "month",
    "eoq": "quarter",
    "quarter-end": "quarter",
    "quarter end": "quarter",
    "quartalsende": "quarter",
    "eoy": "year",
    "year-end": "year",
    "year end": "year",
    "jahresende": "year",
}


def _merged(langs: Sequence[_Lang], attr: str) -> dict[str, Any]:
    """A table of several languages; the first language listed wins a shared word."""
    merged: dict[str, Any] = {}
    for lang in langs:
        for k, v in getattr(lang, attr).items():
            merged.setdefault(k, v)
    return merged


def _all(langs: Sequence[_Lang], attr: str) -> list[str]:
    return [w for lang in langs for w in getattr(lang, attr)]


def _build(language: str, langs: Sequence[_Lang]) -> _Grammar:
    """Compile the patterns of one or more languages (their union for "und")."""
    months: dict[str, int] = _merged(langs, "months")
    weekdays: dict[str, int] = _merged(langs, "weekdays")
    units: dict[str, str] = _merged(langs, "units")
    all_units: dict[str, str] = {**units, **_merged(langs, "plural_units")}
    pre_det: dict[str, int] = _merged(langs, "pre_det")
    post_det: dict[str, int] = _merged(langs, "post_det")
    numbers: dict[str, int] = _merged(langs, "numbers")
    rel_numbers: dict[str, int] = {**numbers, **_merged(langs, "articles_as_one")}
    day_words: dict[str, int] = _merged(langs, "day_words")
    if len(langs) > 1:
        day_words = {k: v for k, v in day_words.items() if k not in _UND_EXCLUDED_DAY_WORDS}
    after_number: dict[str, str] = _merged(langs, "after_number")
    in_kinds = {
        **{_key(w): "within" for w in _all(langs, "in_within")},
        **{_key(w): "point" for w in _all(langs, "in_point")},
        **{_key(w): "ago" for w in _all(langs, "ago_before")},
    }
    q_ord: dict[str, int] = _merged(langs, "quarter_ordinals")
    h_ord: dict[str, int] = _merged(langs, "half_ordinals")

    start = r"(?<![\w.,:/])"
    pre = r"(?P<pre>" + _alt(pre_det) + r")" + _S
    post = r"(?:" + _S + r"(?P<post>" + _alt(post_det) + r")(?!\w))?"
    art = r"(?:" + _alt(_all(langs, "articles")) + r")"
    mod_kinds: dict[str, str] = {}
    for kind, attr in (
        ("end", "mod_end"),
        ("late", "mod_late"),
        ("mid", "mod_mid"),
        ("early", "mod_early"),
    ):
        for phrase in _all(langs, attr):
            mod_kinds.setdefault(_key(phrase), kind)
    mod = r"(?P<mod>" + _alt(mod_kinds) + r")(?:(?<=')|[\s-]+)"
    number = r"(?:[0-9]{1,3}|" + _alt(rel_numbers) + r")"
    ordinal = r"(?:st|nd|rd|th|\.|er|ère|e|ème|eme|è|º|°|o|ro|do|to)?"
    t_quarters = any(lang.letter_t_quarters for lang in langs)
    quarter_nouns = _all(langs, "quarter_nouns")
    half_nouns = _all(langs, "half_nouns")
    team_nouns = _all(langs, "team_nouns")

    def compiled(pattern: str) -> re.Pattern[str]:
        return re.compile(pattern)

    year_suffix = compiled(
        r"(?:" + _SO + r"['/-]" + _SO + r"(?P<y2>[0-9]{2})(?![0-9])"
        r"|,?"
        + _SO
        + r"(?:(?:of|de|del|des|von|en)"
        + _S
        + r")?(?:fy"
        + _SO
        + r"'?)?(?P<y4>(?:19|20)[0-9]{2})(?![0-9])"
        r"|" + _SO + r"fy" + _SO + r"'?(?P<y2b>[0-9]{2})(?![0-9]))?"
    )
    only_mod = compiled(start + r"(?:" + mod + r")?$")
    later = r"(?:" + _alt(_LATER) + r")" + _S
    mod_ends = _ends(
        [
            *_all(langs, "mod_end"),
            *_all(langs, "mod_late"),
            *_all(langs, "mod_mid"),
            *_all(langs, "mod_early"),
        ]
    )
    det_ends = _ends(pre_det)
    article_ends = _ends(_all(langs, "articles"))
    patterns = [
        _Pattern(
            compiled(
                r"[0-9][0-9]{0,3}(?P<sep>[./-])[0-9]{1,2}(?P=sep)[0-9]{1,4}(?![0-9]|[./-][0-9])"
            ),
            _resolve_numeric,
            on_digit=True,
            not_after="./,:-",
        ),
        _Pattern(
            compiled(r"(?:" + _alt(_all(langs, "weekend")) + r")(?!\w)"),
            _resolve_weekend,
            words=_words(w for w in _all(langs, "weekend") if " " not in w and "-" not in w),
            substrings=tuple(w for w in _all(langs, "weekend") if " " in w or "-" in w),
            before=compiled(start + r"(?:" + pre + r")?" + art + r"?$"),
            after=compiled(post),
            prefix_ends=det_ends | article_ends,
        ),
        _Pattern(
            compiled(r"(?P<mon>" + _alt(months) + r")(?!\w)"),
            _resolve_month,
            words=_words(months),
            before=compiled(
                start + r"(?:" + mod + r")?(?:" + pre + r")?(?:(?P<d1>[0-9]{1,2})"
                r"(?:st|nd|rd|th|er|\.|º|°)?" + _SO + r"(?:(?:of|de)" + _S + r")?)?$"
            ),
            after=compiled(
                # "Jan. 15", "Sept. 2027": a dot ends an abbreviation, not a sentence.
                r"(?:(?:(?<=\b\w{3})|(?<=\b\w{4}))\.(?="
                + _SO
                + r"[0-9']))?"
                + (
                    r"(?:" + _SO + r"(?P<d2>[0-9]{1,2})(?:st|nd|rd|th)?(?!\w)(?![.,:][0-9]))?"
                    if any(lang.day_after_month for lang in langs)
                    else r"(?P<d2>(?!))?"
                )
                + post
                + r"(?:,?"
                + _SO
                + r"(?:(?:de|del|of)"
                + _S
                + r")?(?P<y>(?:19|20)[0-9]{2}|'[0-9]{2})(?![0-9]))?"
            ),
            prefix_ends=mod_ends | det_ends | {"of", "de", "st", "nd", "rd", "th", "er"},
            prefix_digits=True,
        ),
        _Pattern(
            compiled(r"(?P<code>" + ("[qth]" if t_quarters else "[qh]") + r")(?P<q>[1-4])(?!\w)"),
            _resolve_quarter,
            words=_words(
                [
                    "q1",
                    "q2",
                    "q3",
                    "q4",
                    "h1",
                    "h2",
                    *(["t1", "t2", "t3", "t4"] if t_quarters else []),
                ]
            ),
            before=compiled(start + r"(?:" + mod + r")?(?:(?P<yq>(?:19|20)[0-9]{2})[\s-]?)?$"),
            prefix_ends=mod_ends,
            prefix_digits=True,
            after=year_suffix,
        ),
        _Pattern(
            compiled(r"(?P<noun>" + _alt([*quarter_nouns, *half_nouns]) + r")(?!\w)"),
            _resolve_quarter,
            words=_words([*quarter_nouns, *half_nouns], first=True),
            before=compiled(
                start
                + r"(?:"
                + mod
                + r")?(?P<qw>"
                + _alt([*q_ord, *h_ord])
                + r"|[1-4]"
                + ordinal
                + r")"
                + _SO
                + r"$"
            ),
            needs_before=True,
            prefix_ends=_ends([*q_ord, *h_ord]),
            prefix_digits=True,
            after=year_suffix,
        ),
        _Pattern(
            compiled(r"fy" + _SO + r"'?(?P<fy>(?:19|20)?[0-9]{2})(?![0-9])"),
            _resolve_fiscal,
            on_digit=True,
            before=only_mod,
            prefix_ends=mod_ends,
        ),
        _Pattern(
            compiled(r"(?P<eo>" + _alt(_END_UNITS) + r")(?!\w)"),
            _resolve_end_of,
            words=_words(
                [
                    "eod",
                    "eow",
                    "eom",
                    "eoq",
                    "eoy",
                    "cob",
                    "business",
                    "end",
                    "jahresende",
                    "quartalsende",
                    "monatsende",
                ]
            ),
            before=compiled(start + r"(?:" + pre + r")?$"),
            prefix_ends=det_ends,
        ),
        _Pattern(
            compiled(r"(?P<u>" + _alt(all_units) + r")(?!\w)"),
            _resolve_units,
            words=_words(all_units),
            before=compiled(start + r"(?:" + mod + r")?(?:" + pre + r"|" + art + r")?$"),
            prefix_ends=mod_ends | det_ends | article_ends,
            number_before=compiled(
                start
                + r"(?:(?P<k1>"
                + _alt(in_kinds)
                + r")"
                + _S
                + r")?(?P<n>"
                + number
                + r")"
                + _S
                + r"(?:"
                + later
                + r")?$"
            ),
            number_ends=_ends(rel_numbers) | _ends(_LATER),
            after=compiled(
                r"(?:'?s?"
                + _S
                + r"time(?!\w))?(?:"
                + _S
                + r"(?P<k2>"
                + _alt(after_number)
                + r")(?!\w))?"
                + post
            ),
        ),
        _Pattern(
            compiled(
                r"(?P<y>(?:19|20)[0-9]{2})(?![0-9]|[.,][0-9]|" + _SO + r"(?:%|[€$£]|k(?!\w)))"
            ),
            _resolve_year,
            on_digit=True,
            before=compiled(
                start
                + r"(?:(?P<ctx>"
                + _alt(_all(langs, "year_context"))
                + r")"
                + _S
                + r"|(?P<xs>"
                + mod
                + r"))$"
            ),
            prefix_in_text=False,
            not_after=".,",
            prefix_ends=mod_ends | _ends(_all(langs, "year_context")),
        ),
        _Pattern(
            compiled(r"(?P<w>" + _alt(day_words) + r")(?!\w)"),
            _resolve_day_word,
            words=_words(day_words),
        ),
        _Pattern(
            compiled(r"(?P<wd>" + _alt(weekdays) + r")(?!\w)"),
            _resolve_weekday,
            words=_words(weekdays),
            before=compiled(start + r"(?:" + pre + r")?$"),
            after=compiled(post),
            prefix_ends=det_ends,
        ),
        *(
            _Pattern(
                compiled(lang.day_core),
                _resolve_day_of_month,
                on_digit=True,
                before=compiled(
                    start
                    + r"(?:(?P<xs>"
                    + _alt(p for p in lang.day_before if _WEEK_OF.search(p))
                    + r")|"
                    + _alt(p for p in lang.day_before if not _WEEK_OF.search(p))
                    + r")"
                    + _S
                    + r"$"
                ),
                needs_before=True,
                prefix_in_text=False,
                not_after=".,:/",
                prefix_ends=_ends(lang.day_before),
            )
            for lang in langs
        ),
    ]

    count_digits = (
        r"[0-9](?:[0-9]{0,2}(?:[.,' ][0-9]{3})+|[0-9]{0,6})(?![.,][0-9])(?:" + _SO + r"k(?!\w))?"
    )
    count = r"(?:" + count_digits + r"|" + _alt(numbers) + r")"
    adjectives = r"(?:(?:" + _alt(_all(langs, "team_adjectives")) + r")" + _S + r"){0,2}"
    org = (
        r"[\s-](?:"
        + _alt(_all(langs, "team_hyphen_units"))
        + r")[\s-](?:[^\W\d_]+"
        + _S
        + r"){0,2}(?:"
        + _alt(_all(langs, "team_org_nouns"))
        + r")"
    )
    # A count, perhaps a range ("40-50"), perhaps what it counts ("reps", "-person team").
    team = compiled(
        r"(?P<n1>"
        + count
        + r")(?:"
        + _SO
        + r"(?:-|to|bis|à|a)"
        + _SO
        + r"(?P<n1b>"
        + count
        + r"))?\+?(?P<noun>"
        + _SO
        + adjectives
        + r"(?:"
        + _alt(team_nouns)
        + r")|"
        + org
        + r")?(?!\w)"
    )
    # A bare count needs "team of", "wir sind"... before it.
    team_before = compiled(
        start
        + r"(?:(?P<tb>"
        + _alt(_all(langs, "team_before"))
        + r")|(?P<wa>"
        + _alt(_all(langs, "we_are"))
        + r"))"
        + _SO
        + r"(?:(?:"
        + _alt(_all(langs, "approx"))
        + r")"
        + _SO
        + r")?$"
    )
    return _Grammar(
        language=language,
        months=months,
        ambiguous_months=frozenset().union(*(lang.ambiguous_months for lang in langs)),
        weekdays=weekdays,
        units=all_units,
        singular_units=frozenset(units),
        count_nouns=frozenset(n.split()[-1] for n in team_nouns),
        pre_det=pre_det,
        post_det=post_det,
        in_kinds=in_kinds,
        after_number=after_number,
        numbers=rel_numbers,
        day_words=day_words,
        quarter_ordinals=q_ord,
        half_ordinals=h_ord,
        quarter_nouns=frozenset(quarter_nouns),
        mod_kinds=mod_kinds,
        month_context=compiled(
            r"(?<!\w)(?:" + _alt(_all(langs, "month_context")) + r")[\s-]{1,3}$"
        ),
        patterns=tuple(patterns),
        date_words=frozenset().union(*(p.words for p in patterns)),
        date_substrings=tuple(sub for p in patterns for sub in p.substrings),
        team=team,
        team_before=team_before,
        team_prefix_ends=_ends(
            [*_all(langs, "team_before"), *_all(langs, "we_are"), *_all(langs, "approx")]
        ),
        team_gate=_words([*team_nouns, *_all(langs, "team_hyphen_units"), *_all(langs, "we_are")])
        | _words(_all(langs, "team_before"), first=True),
        team_follow=frozenset(p.split()[0] for p in _all(langs, "we_are_follow")),
        team_numbers=numbers,
        team_number_words=_words(numbers),
    )


# ---------------------------------------------------------------------------------------
# Resolvers: the parts of a mention and today -> the inclusive range it denotes, or None
# ---------------------------------------------------------------------------------------


def _mod_kind(g: _Grammar, p: _Parts) -> str | None:
    """ "end", "early", "mid" or "late" when the mention starts with such a word, else None."""
    if p.before is None:
        return None
    phrase = p.group("mod")
    return g.mod_kinds[_key(phrase)] if phrase else None


def _resolve_numeric(g: _Grammar, p: _Parts, today: date, low: str) -> Span | None:
    text = p.core.group()
    sep = p.group("sep") or "-"
    first, second, third = text.split(sep)
    if len(first) == 4 and sep == "-" and len(third) <= 2:
        year, month, day = int(first), int(second), int(third)
    elif len(first) <= 2 and len(third) == 4:
        a, b, year = int(first), int(second), int(third)
        # Day first, as everywhere but the US; an English "03/04/2027" is read the US way.
        month_first = b > 12 or (g.language == "en" and sep == "/" and a <= 12)
        month, day = (a, b) if month_first else (b, a)
    else:
        return None
    if not 1900 <= year <= 2099:
        return None
    found = date(year, month, day)
    return found, found


def _offset(g: _Grammar, p: _Parts) -> int | None:
    """The determiner's offset in units ("next" = 1, "dernier" = -1), None without one."""
    if p.before is None and p.after is None:
        return None
    if p.group("post"):
        return g.post_det[_key(p.group("post") or "")]
    if p.group("pre"):
        return g.pre_det[_key(p.group("pre") or "")]
    return None


def _resolve_weekend(g: _Grammar, p: _Parts, today: date, low: str) -> Span | None:
    saturday = _plus(today, 5 - today.weekday() + 7 * (_offset(g, p) or 0))
    return saturday, _plus(saturday, 1)


def _resolve_month(g: _Grammar, p: _Parts, today: date, low: str) -> Span | None:
    name = p.group("mon") or ""
    month = g.months[name]
    day_text = p.group("d1") or p.group("d2")
    year_text = p.group("y")
    mod = _mod_kind(g, p)
    offset = _offset(g, p)
    if name in g.ambiguous_months and not (day_text or year_text or mod or offset is not None):
        first = p.before.start() if p.before is not None else p.core.start()
        if not g.month_context.search(low, max(0, first - 24), first):
            return None  # "may" the verb, "mar" the sea, "sept" the number, "Jan" the name
    if year_text:
        year = 2000 + int(year_text[1:]) if year_text.startswith("'") else int(year_text)
    else:
        year = today.year
        if offset is not None and offset > 0:
            year += 1 if month <= today.month else 0
        elif offset is not None and offset < 0:
            year -= 1 if month >= today.month else 0
        elif month < today.month or (
            day_text and month == today.month and int(day_text) < today.day
        ):
            year += 1  # the next such month; this month counts until it is over
    if day_text:
        day = date(year, month, int(day_text))
        return day, day
    return _apply_mod(mod, _month_range(year, month))


def _year_of(today: date, last_month: int, year_text: str | None) -> int:
    """A quarter's or half's year: as written, else the next one not yet over."""
    if year_text:
        return int(year_text) if len(year_text) == 4 else 2000 + int(year_text)
    return today.year if today.month <= last_month else today.year + 1


def _resolve_quarter(g: _Grammar, p: _Parts, today: date, low: str) -> Span | None:
    """ "Q3", "T3", "H2 2027", "2027-Q3", "3. Quartal", "tercer trimestre", "second half"."""
    year_text = p.group("yq") or p.group("y4") or p.group("y2") or p.group("y2b")
    mod = _mod_kind(g, p)
    noun = p.group("noun")
    if noun is None:
        number = int(p.group("q") or "0")
        if p.group("code") == "h":
            if number > 2:
                return None
            return _apply_mod(mod, _half_range(_year_of(today, 6 * number, year_text), number))
        return _apply_mod(mod, _quarter_range(_year_of(today, 3 * number, year_text), number))
    ordinal = p.group("qw") or ""
    is_quarter = _key(noun) in g.quarter_nouns
    if ordinal[:1].isdigit():
        number = int(ordinal[0])
    else:
        number = (g.quarter_ordinals if is_quarter else g.half_ordinals).get(_key(ordinal), 0)
    if is_quarter:
        if not 1 <= number <= 4:
            return None
        return _apply_mod(mod, _quarter_range(_year_of(today, 3 * number, year_text), number))
    if not 1 <= number <= 2 or (_key(noun) == "half" and not year_text):
        return None  # "the third half", "the second half of the meeting"
    return _apply_mod(mod, _half_range(_year_of(today, 6 * number, year_text), number))


def _resolve_fiscal(g: _Grammar, p: _Parts, today: date, low: str) -> Span | None:
    text = p.group("fy") or ""
    year = int(text) if len(text) == 4 else 2000 + int(text)
    return _apply_mod(_mod_kind(g, p), _year_range(year))


def _resolve_end_of(g: _Grammar, p: _Parts, today: date, low: str) -> Span | None:
    unit = _END_UNITS[_key(p.group("eo") or "")]
    end = _unit_range(unit, today, _offset(g, p) or 0)[1]
    return end, end


def _resolve_units(g: _Grammar, p: _Parts, today: date, low: str) -> Span | None:
    """ "next week", "fin du mois", "in 3 weeks", "within two months", "3 weeks ago"."""
    unit = g.units[_key(p.group("u") or "")]
    k1 = p.group("k1")
    n_text = p.group("n")
    if n_text is not None:
        k2 = p.group("k2")
        if not (k1 or k2):
            return None  # "3 weeks" alone is a duration
        kind = g.in_kinds[_key(k1)] if k1 else g.after_number[_key(k2 or "")]
        n = int(n_text) if n_text.isdigit() else g.numbers[_key(n_text)]
        if n > 1000:
            return None
        day = _shift(today, unit, -n if kind == "ago" else n)
        return (today, day) if kind == "within" else (day, day)
    if _key(p.group("u") or "") not in g.singular_units:
        return None  # "the past years" is no one period
    mod = _mod_kind(g, p)
    offset = _offset(g, p)
    if offset is None:
        if mod is None:
            return None  # a bare "week" or "mois" is not a date
        offset = 0  # "end of the month", "fin d'année"
    return _apply_mod(mod, _unit_range(unit, today, offset))


def _resolve_year(g: _Grammar, p: _Parts, today: date, low: str) -> Span | None:
    mod = _mod_kind(g, p)
    if not (p.group("ctx") or mod):
        return None  # a bare four-digit number is as often a count or a price as a year
    following = low[p.core.end() : p.core.end() + 24].split(maxsplit=1)
    if following and following[0].rstrip(".,;:!?)") in g.count_nouns:
        return None  # "by 2000 users" is a head count
    return _apply_mod(mod, _year_range(int(p.group("y") or "")))


_NOT_A_DAY_WORD_AFTER = ("guten ", "la ", "esta ", "una ", "buena ", "buenas ")


def _resolve_day_word(g: _Grammar, p: _Parts, today: date, low: str) -> Span | None:
    word = _key(p.group("w") or "")
    start = p.core.start()
    if low.endswith(_NOT_A_DAY_WORD_AFTER, 0, start):
        return None  # "Guten Morgen", "por la mañana": the morning, not tomorrow
    if word == "morgen" and not low[:start].strip():
        return None  # "Morgen!" opening a message is a greeting
    day = _plus(today, g.day_words[word])
    return day, day


def _resolve_weekday(g: _Grammar, p: _Parts, today: date, low: str) -> Span | None:
    target = g.weekdays[_key(p.group("wd") or "")]
    offset = _offset(g, p) or 0
    ahead = (target - today.weekday()) % 7  # the next such day, today included
    if offset > 0 and ahead == 0:
        ahead = 7  # "next Thursday" said on a Thursday
    if offset < 0:
        ahead = ahead - 7 if ahead else -7  # "last Thursday"
    day = _plus(today, ahead)
    return day, day


def _resolve_day_of_month(g: _Grammar, p: _Parts, today: date, low: str) -> Span | None:
    dom = int(p.group("dom") or "0")
    month_text = p.group("dmon")
    if month_text:  # German "bis 20.12."
        month = int(month_text)
        year = today.year if (month, dom) >= (today.month, today.day) else today.year + 1
        day = date(year, month, dom)
        return day, day
    if not 1 <= dom <= 31:
        return None
    for ahead in range(13):  # the next month that has this day, on or after today
        first = _add_months(today.replace(day=1), ahead)
        if dom <= _month_end(first.year, first.month).day:
            day = first.replace(day=dom)
            if day >= today:
                if p.group("xs"):
                    monday = _plus(day, -day.weekday())  # "la semaine du 18"
                    return monday, _plus(monday, 6)
                return day, day
    return None  # pragma: no cover - some month within a year has any day 1..31


_GRAMMARS: Mapping[str, _Grammar] = {
    **{code: _build(code, (lang,)) for code, lang in _LANGS.items()},
    "und": _build("und", tuple(_LANGS.values())),
}


def _dates(
    g: _Grammar, text: str, low: str, words: frozenset[bytes], has_digit: bool, today: date
) -> tuple[DateMention, ...]:
    """Every date mention, in text order.

    Patterns run in priority order and a mention may not overlap one found before it, so
    "15. März" is a date in March, not the 15th of this month followed by a month.
    """
    if (
        not has_digit
        and g.date_words.isdisjoint(words)
        and not any(sub in low for sub in g.date_substrings)
    ):
        return ()
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, DateMention]] = []
    for pattern in g.patterns:
        if (
            not (has_digit and pattern.on_digit)
            and pattern.words.isdisjoint(words)
            and not (pattern.substrings and any(sub in low for sub in pattern.substrings))
        ):
            continue
        position = 0
        while (core := pattern.core.search(low, position)) is not None:
            start, end = core.span()
            position = end
            if _glued(low, start) or (start and low[start - 1] in pattern.not_after):
                continue
            before = None
            if pattern.before is not None:
                previous = _word_before(low, start)
                window = max(0, start - _PREFIX_WINDOW)
                if pattern.number_before is not None and (
                    previous[:1].isdigit() or previous in pattern.number_ends
                ):
                    before = pattern.number_before.search(low, window, start)
                if (before is None or before.start() == start) and (
                    previous in pattern.prefix_ends
                    or (pattern.prefix_digits and previous[:1].isdigit())
                ):
                    before = pattern.before.search(low, window, start)
                if before is not None and before.start() == start:
                    before = None  # an empty prefix: nothing before the anchor
            if pattern.needs_before and before is None:
                continue
            after = pattern.after.match(low, end) if pattern.after is not None else None
            first = before.start() if before is not None else start
            last = after.end() if after is not None else end
            if any(first < e and s < last for s, e in taken):
                continue
            parts = _Parts(pattern.owners, before, core, after)
            try:
                span = pattern.resolve(g, parts, today, low)
            except (ValueError, OverflowError):
                span = None  # "February 30", a year past 9999: not a date
            if span is None:
                continue
            taken.append((first, last))
            shown = start
            if before is not None:
                if pattern.prefix_in_text:
                    shown = before.start()
                elif "xs" in before.re.groupindex and before.group("xs"):
                    shown = before.start("xs")
            mention = DateMention(text=text[shown:last].rstrip(), start=span[0], end=span[1])
            found.append((shown, mention))
    if len(found) > 1:
        found.sort(key=lambda item: item[0])
    return tuple(mention for _, mention in found)


# ---------------------------------------------------------------------------------------
# Team size and competitor
# ---------------------------------------------------------------------------------------

_MAX_TEAM = 10_000_000
_NOT_BEFORE_COUNT = frozenset(".,:/$€£#+")


def _head_count(g: _Grammar, token: str | None) -> int | None:
    """A count as written ("1,200", "5k", "zwölf"); None when it is no plausible head count."""
    if token is None:
        return None
    word = _key(token)
    if word in g.team_numbers:
        return g.team_numbers[word]
    digits = "".join(c for c in word if c.isdigit())
    if not digits:
        return None
    value = int(digits) * (1000 if word.endswith("k") else 1)
    return value if 0 < value <= _MAX_TEAM else None


def _team_size(g: _Grammar, low: str, words: frozenset[bytes], has_digit: bool) -> int | None:
    """The largest head count: a count of people or seats, or a bare count after "team of"."""
    if g.team_gate.isdisjoint(words):
        return None
    if not has_digit and g.team_number_words.isdisjoint(words):
        return None
    best: int | None = None
    position = 0
    while (m := g.team.search(low, position)) is not None:
        start, position = m.span()
        if _glued(low, start) or (start and low[start - 1] in _NOT_BEFORE_COUNT):
            continue
        if m.group("noun") is None and not _counts_a_team(g, low, start, m.end()):
            continue
        for name in ("n1", "n1b"):
            value = _head_count(g, m.group(name))
            if value is not None and (best is None or value > best):
                best = value
    return best


def _counts_a_team(g: _Grammar, low: str, start: int, end: int) -> bool:
    """Whether a bare count is a head count: "team of 40", "wir sind 12.", "somos 15 y..."."""
    if _word_before(low, start) not in g.team_prefix_ends:
        return False
    before = g.team_before.search(low, max(0, start - 40), start)
    if before is None or before.start() == start:
        return False
    rest = low[end : end + 30].lstrip()
    following = rest.split(maxsplit=1)[0].rstrip(".,;:!?)") if rest else ""
    if before.group("tb"):
        # "team of 3 weeks", "equipo de 40 %", "Team von 2027-Planern" are not head counts.
        return not (
            rest[:1] in ("%", "€", "$", "£")
            or rest[:1].isdigit()
            or following in g.units
            or following in g.months
        )
    return not rest or rest[0] in ".,;:!?)" or following in g.team_follow


@lru_cache(maxsize=64)
def _competitor_patterns(
    names: tuple[str, ...],
) -> tuple[frozenset[bytes], tuple[tuple[str, bytes, re.Pattern[str]], ...]]:
    """Every name's first word (the gates, together), and per name: itself, its gate and a
    whole-word pattern."""
    out = []
    for name in names:
        folded = _lower(name.translate(_FOLD)).strip()
        gate = folded.encode().translate(_SPLIT).split()
        if not gate:
            continue
        body = r"\s+".join(re.escape(part) for part in folded.split())
        out.append((name, gate[0], re.compile(r"(?<!\w)" + body + r"(?!\w)")))
    return frozenset(gate for _, gate, _ in out), tuple(out)


def _competitor(low: str, words: frozenset[bytes], competitors: Sequence[str]) -> str | None:
    """The competitor mentioned first (the longer name when two start at the same place)."""
    gates, patterns = _competitor_patterns(tuple(competitors))
    if gates.isdisjoint(words):
        return None  # most messages name none: one set test instead of one per name
    best: tuple[int, int, str] | None = None
    for name, gate, pattern in patterns:
        if gate not in words:
            continue
        hit = pattern.search(low)
        if hit is not None and (best is None or (hit.start(), -len(hit.group())) < best[:2]):
            best = (hit.start(), -len(hit.group()), name)
    return best[2] if best is not None else None


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------


def extract_entities(
    text: str, *, language: str, today: date, competitors: Sequence[str]
) -> Entities:
    """Money, dates, team size and competitor in `text`, dates resolved against `today`.

    Pure and cheap: each pattern runs only when the text has a digit or one of its words, so
    a message with no entities costs a lower-casing, a byte split and a few set tests.
    `language` is "en", "de", "fr", "es" or "und" (any other value reads as "und").
    """
    return read_entities(text, language=language, today=today, competitors=competitors)[0]


def read_entities(
    text: str, *, language: str, today: date, competitors: Sequence[str]
) -> tuple[Entities, bool]:
    """`extract_entities`, and whether the text has an ASCII digit (0-9), worked out on the
    way: the reader's bare-amount test needs a digit and may skip its search without one."""
    folded = text
    if not text.isascii() and _FOLDABLE.search(text) is not None:
        folded = text.translate(_FOLD)
    low = _lower(folded)
    encoded = low.encode()
    words = frozenset(encoded.translate(_SPLIT).split())
    has_digit = len(encoded.translate(None, _DIGITS)) != len(encoded)
    g = _GRAMMARS.get(language) or _GRAMMARS["und"]
    money = _money(text, low, g.language) if has_digit else ()
    dates = _dates(g, text, low, words, has_digit, today)
    team = _team_size(g, low, words, has_digit)
    competitor = _competitor(low, words, competitors) if competitors else None
    if not (money or dates or team is not None or competitor is not None):
        return _EMPTY, has_digit
    return Entities(money=money, dates=dates, team_size=team, competitor=competitor), has_digit
