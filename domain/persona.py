"""The persona: what the bot may say, in which words, and what it says when it cannot.

A persona is the notebook's π(state, confidence) → action plus a small table of templated
utterances. Keeping the bot's words in a table instead of generating them is what makes them
checkable: every template declares the claims it makes and the evidence it needs, and
`check_persona` verifies those declarations against the text before a policy ships
("no price or number claim without evidence").

A template may have `variants`: other wordings of the same reply, with the same claims and
evidence. Which one is said is chosen deterministically from a seed (the runtime hashes the
conversation id and the turn, so a replay says the same words), skipping the text the
prospect just read. A variant may *echo* what the prospect just said (`{budget}`,
`{team_size}`, `{date}`, `{competitor}`): those values are the prospect's own words from the
reading's entities, supplied only through `echoes`, never claims of the bot; a variant that
can echo is preferred when the prospect gave the value.

Rendering follows one security rule: user text is only ever a *value*. Python's `str.format`
lets a format string read attributes of the objects passed in (`{0.__class__.__init__…}`), so
this module never calls it. Templates are parsed with `string.Formatter().parse` (which only
splits text, it never looks anything up) and may contain plain `{identifier}` placeholders
only; the values are concatenated as strings.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
import unicodedata
from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import ClassVar, Literal, NamedTuple

from pydantic import Field, field_validator

from domain.errors import RenderError
from domain.model import Frozen, Sparse, trusted

Evidence = Literal["none", "quote"]

ESCALATE = "escalate"
"""The action π returns when it is unsure; a persona must be able to render it."""

ACKNOWLEDGEMENT_PREFIX = "ack."
"""`ack.<entity>` templates acknowledge what the prospect just stated before the bot's next
question ("A team of {team_size} — thanks."); they are said only when the value is there."""

DEFAULT_FALLBACK = "*"
"""The key in `Persona.fallbacks` naming the fallback of every action without its own."""

FIGURE_PLACEHOLDERS: frozenset[str] = frozenset(
    {"qty", "unit_price", "subtotal", "discount", "discount_percent", "tax", "total", "expires"}
)
"""Placeholders whose values are quote figures: only a computed quote may supply them."""

ECHO_PLACEHOLDERS: frozenset[str] = frozenset({"budget", "team_size", "date", "competitor"})
"""Placeholders that echo the prospect's own words (the reading's entities: an amount as they
wrote it, a head count, a date as they wrote it, a competitor's name). Only `echoes` may
supply them, and the claims guard treats them as what the prospect said, not as the bot's
claims: "{budget}" echoing "$40k" states no price of ours."""

PLACEHOLDERS: frozenset[str] = (
    FIGURE_PLACEHOLDERS
    | ECHO_PLACEHOLDERS
    | frozenset(
        {
            "name",
            "company",
            "persona",
            "rep",
            "objection",
            "topic",
            "question",
            "quote_id",
            "sku",
            "currency",
            "ticket",
            "reason",
            "link",
            "hours",
        }
    )
)
"""Every placeholder the bot supplies; a template naming another one is a typo."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PERCENT_SIGNS = frozenset("%％٪‰‱")
_PLAIN_ONLY = (
    "only plain {name} placeholders are allowed "
    "(no attribute access, indexing, positions, conversions or format specs)"
)


class Template(Sparse):
    """One utterance form, with the claims it makes and the evidence it needs to be said.

    `variants` are other wordings of the same utterance (same claims, same evidence); a
    template without them says `text` every time, exactly as before variants existed.
    """

    text: str
    claims: tuple[str, ...] = ()
    evidence: Evidence = "none"
    variants: tuple[str, ...] = ()

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("variants",)

    @property
    def texts(self) -> tuple[str, ...]:
        """Every wording, the main text first (variant 0)."""
        return (self.text, *self.variants)


class Persona(Frozen):
    """A named voice: π's table, the templates it may use, and where to go when one fails.

    `actions` maps a flow state to an action; `templates` maps an action to its template;
    `fallbacks` maps an action to the action tried when it has no template or cannot be
    rendered, with `"*"` as the fallback of every action not listed (normally `escalate`).
    """

    name: str = Field(min_length=1)
    tone: str = Field(min_length=1)
    allowed_claims: tuple[str, ...]
    escalate_below: Decimal
    actions: dict[str, str]
    templates: dict[str, Template]
    fallbacks: dict[str, str] = Field(default_factory=dict)

    @field_validator("escalate_below")
    @classmethod
    def _is_a_confidence(cls, value: Decimal) -> Decimal:
        if not value.is_finite() or not Decimal(0) <= value <= Decimal(1):
            raise ValueError("escalate_below must be a confidence between 0 and 1")
        return value


class Rendered(Frozen):
    """What the bot will say, and which template said it (for the audit trail).

    `skipped` lists, in order, each action tried before `template_action` and why it could not
    be rendered; the reasons never contain user text.
    """

    action: str
    template_action: str
    text: str
    claims: tuple[str, ...]
    used_fallback: bool
    skipped: tuple[str, ...] = ()
    refused: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Templates the claims guard withheld, in order: (action, the rules each broke)."""
    variant: int | None = None
    """Which wording of `template_action` was said (0 its main text, 1… its variants);
    None when the template has no variants."""
    echoed: dict[str, str] = Field(default_factory=dict)
    """The prospect's words the text echoes, by placeholder."""
    repeated: bool = False
    """Every wording that could be rendered repeats `avoid` (the text said last)."""


def choose_action(persona: Persona, state: str, confidence: Decimal) -> str:
    """π(state, confidence): the persona's action for a flow state.

    Escalation is the safe default: below `escalate_below` (exactly at it is confident
    enough), for a confidence that is not a finite number, and for a state the persona has
    no action for.
    """
    if not confidence.is_finite() or confidence < persona.escalate_below:
        return ESCALATE
    return persona.actions.get(state, ESCALATE)


class _Scan(NamedTuple):
    """A template split into (literal text, placeholder or None) pieces, plus its problems."""

    pieces: tuple[tuple[str, str | None], ...]
    problems: tuple[str, ...]


@functools.lru_cache(maxsize=4096)
def _scan(text: str) -> _Scan:
    """Memoized: templates come from policies (a bounded set) and are scanned at every
    rendering; a scan is immutable."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        problem = "it has an unmatched or malformed brace; write a literal brace as {{ or }}"
        return _Scan(pieces=((text, None),), problems=(problem,))
    pieces: list[tuple[str, str | None]] = []
    problems: list[str] = []
    for literal, field_name, spec, conversion in parsed:
        if field_name is None:
            pieces.append((literal, None))
            continue
        if _IDENTIFIER.fullmatch(field_name) and not spec and conversion is None:
            pieces.append((literal, field_name))
            continue
        shown = field_name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
        problems.append(f"the placeholder {{{shown}}} is not allowed; {_PLAIN_ONLY}")
        pieces.append((literal, None))
    return _Scan(pieces=tuple(pieces), problems=tuple(problems))


def _placeholders(scan: _Scan) -> tuple[str, ...]:
    return tuple(name for _, name in scan.pieces if name is not None)


@functools.lru_cache(maxsize=4096)
def _echo_names(text: str) -> frozenset[str]:
    """The echo placeholders of a template's wording, memoized like `_scan`: every reply
    asks it of each wording of its template."""
    return ECHO_PLACEHOLDERS.intersection(_placeholders(_scan(text)))


def _is_figure_character(char: str) -> bool:
    return char.isnumeric() or char in _PERCENT_SIGNS or unicodedata.category(char) == "Sc"


def _states_figures(scan: _Scan) -> bool:
    """Whether a template states a price, percentage or number.

    Deliberately blunt (any digit, percent sign or currency symbol in the template's own
    text, or a figure placeholder): a false alarm costs sales-ops one `evidence = "quote"`,
    a miss lets the bot invent a number.
    """
    if not FIGURE_PLACEHOLDERS.isdisjoint(_placeholders(scan)):
        return True
    return any(_is_figure_character(char) for literal, _ in scan.pieces for char in literal)


def render_template(text: str, values: Mapping[str, str]) -> str:
    """Substitute `values` into the template `text`, treating every value as plain text.

    Only `text` is parsed; a value is never parsed or formatted, so `{0.__class__}` typed by a
    user comes out literally. A value that is missing, empty or blank is refused, because a
    sentence with a hole in it ("Hi , thanks…") is worse than the fallback.

    Raises RenderError for forbidden placeholder syntax and for a missing value.
    """
    scan = _scan(text)
    if scan.problems:
        raise RenderError(f"The template cannot be rendered: {scan.problems[0]}.")
    out: list[str] = []
    for literal, name in scan.pieces:
        out.append(literal)
        if name is None:
            continue
        value = values.get(name)
        if not isinstance(value, str) or not value.strip():
            raise RenderError(f"The template needs a value for {{{name}}}, and none was given.")
        out.append(value)
    return "".join(out)


_SUPPLIED_APART = FIGURE_PLACEHOLDERS | ECHO_PLACEHOLDERS


def _render_one(
    template: Template,
    text: str,
    values: Mapping[str, str],
    evidence: Mapping[str, str] | None,
    echoes: Mapping[str, str] | None,
) -> str:
    # Figures come from the computed quote or not at all, and echoes from the reading of the
    # prospect's message or not at all: either kind in `values` (which may carry user text)
    # is dropped, so a template can only state the quote's numbers and the prospect's words.
    merged = {key: value for key, value in values.items() if key not in _SUPPLIED_APART}
    if echoes:
        merged.update((key, value) for key, value in echoes.items() if key in ECHO_PLACEHOLDERS)
    if template.evidence == "quote":
        if evidence is None:
            raise RenderError(
                "The template states quote figures, and no computed quote is at hand."
            )
        merged.update(evidence)
    return render_template(text, merged)


class _Wording(NamedTuple):
    number: int
    text: str
    echoed: dict[str, str]


def _choose_wording(
    template: Template,
    values: Mapping[str, str],
    evidence: Mapping[str, str] | None,
    echoes: Mapping[str, str] | None,
    seed: int,
    avoid: str | None,
) -> _Wording:
    """The wording to say: deterministic in `seed`, never `avoid` while another renders.

    Wordings are tried from `seed % n` onwards; among those that render and differ from
    `avoid`, one that echoes the prospect's words comes first. Raises the first wording's
    RenderError when none renders.
    """
    texts = template.texts
    start = seed % len(texts)
    order = [(start + offset) % len(texts) for offset in range(len(texts))]
    names_of = [_echo_names(texts[i]) for i in order]
    # Stop at the first wording that is the answer whatever the later ones render to: a
    # fresh one that echoes, or a fresh one when no later wording could echo. (Whether a
    # wording echoes depends on its placeholders only; rendering is the costly part.)
    echo_after = [False] * len(order)
    for k in range(len(order) - 2, -1, -1):
        echo_after[k] = echo_after[k + 1] or bool(names_of[k + 1])
    rendered: list[_Wording] = []
    first_error: RenderError | None = None
    first_fresh: _Wording | None = None
    for k, index in enumerate(order):
        try:
            out = _render_one(template, texts[index], values, evidence, echoes)
        except RenderError as error:
            first_error = first_error or error
            continue
        echoed = {name: (echoes or {})[name] for name in sorted(names_of[k])}
        wording = _Wording(number=index, text=out, echoed=echoed)
        rendered.append(wording)
        if not repeats(out, avoid):
            if echoed or (first_fresh is None and not echo_after[k]):
                return wording
            first_fresh = first_fresh or wording
    if first_fresh is not None:
        return first_fresh
    if not rendered:
        assert first_error is not None
        raise first_error
    echoing = [wording for wording in rendered if wording.echoed]
    return (echoing or rendered)[0]


def repeats(text: str, last: str | None) -> bool:
    """Whether saying `text` repeats `last` for the reader: the same text, or the same
    sentence after the acknowledgement that opened the last message."""
    return last is not None and (text == last or last.endswith(f" {text}"))


def _next_action(persona: Persona, action: str) -> str | None:
    """The action tried after `action`; None where the chain ends.

    The default fallback's own default is itself, which ends the chain instead of looping.
    """
    explicit = persona.fallbacks.get(action)
    if explicit is not None and action != DEFAULT_FALLBACK:
        return explicit
    default = persona.fallbacks.get(DEFAULT_FALLBACK)
    if default is None or default == action:
        return None
    return default


def render(
    persona: Persona,
    action: str,
    values: Mapping[str, str],
    *,
    evidence: Mapping[str, str] | None = None,
    guard: bool = False,
    echoes: Mapping[str, str] | None = None,
    seed: int = 0,
    avoid: str | None = None,
    fallbacks: bool = True,
) -> Rendered:
    """Render `action`, following the fallback chain until a template renders.

    Of a template with variants, the wording is chosen by `seed` (`_choose_wording`),
    avoiding `avoid` (the text the prospect read last) whenever another wording renders;
    `echoes` are the prospect's words for the echo placeholders. Without `fallbacks`, only
    `action` itself is tried (an acknowledgement is said as written or not at all).

    With `guard` (the claims guard), a template that breaks the claims rules — the ones
    `check_persona` enforces before a policy ships — is not said: it is listed in
    `refused` and the chain moves on to its fallback, exactly as for a template that
    cannot be rendered. Defence in depth against a policy that was never checked.

    `evidence` holds the pre-formatted figures of a computed quote (quote_id, total, …) and
    is passed only when one is in context; only `evidence = "quote"` templates see it, and
    such a template without evidence is skipped. Each action is tried at most once, so a
    fallback cycle in an unchecked policy ends in RenderError instead of a hang.
    """
    tried: list[str] = []
    skipped: list[str] = []
    refused: list[tuple[str, tuple[str, ...]]] = []
    current: str | None = action
    while current is not None and current not in tried:
        tried.append(current)
        template = persona.templates.get(current)
        problems = (
            _guard_problems(template, persona.allowed_claims)
            if guard and template is not None
            else ()
        )
        if template is None:
            skipped.append(f"{current}: no template")
        elif problems:
            skipped.append(f"{current}: withheld by the claims guard")
            refused.append((current, problems))
        else:
            try:
                wording = _choose_wording(template, values, evidence, echoes, seed, avoid)
            except RenderError as error:
                skipped.append(f"{current}: {error}")
            else:
                return trusted(  # of the persona's and this rendering's values
                    Rendered,
                    action=action,
                    template_action=current,
                    text=wording.text,
                    claims=template.claims,
                    used_fallback=current != action,
                    skipped=tuple(skipped),
                    refused=tuple(refused),
                    variant=wording.number if template.variants else None,
                    echoed=wording.echoed,
                    repeated=repeats(wording.text, avoid),
                )
        current = _next_action(persona, current) if fallbacks else None
    chain = " -> ".join(tried)
    raise RenderError(
        f"Persona {persona.name!r} has nothing it can say for {action!r} (tried {chain})."
    )


def guard_problems(persona: Persona, action: str) -> tuple[str, ...]:
    """The claims guard's verdict on the persona's template for `action` (empty: it may be
    said, or there is no such template)."""
    template = persona.templates.get(action)
    return () if template is None else _guard_problems(template, persona.allowed_claims)


def variant_seed(conversation_id: str, turn: int, action: str) -> int:
    """The seed that picks a template's wording: a hash of the conversation id, the turn and
    the action, so two conversations vary independently and a replay says the same words."""
    digest = hashlib.sha256(f"{conversation_id}\n{turn}\n{action}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@functools.lru_cache(maxsize=1024)
def _guard_problems(template: Template, allowed_claims: tuple[str, ...]) -> tuple[str, ...]:
    """The claims guard's verdict on one template: a pure function of the template and the
    persona's allowed claims, so it is worked out once per template, not at every reply."""
    return tuple(_template_problems(template, allowed_claims))


def _template_problems(template: Template, allowed_claims: Collection[str]) -> list[str]:
    problems: list[str] = []
    for index, text in enumerate(template.texts):
        # Variant 0 is the main text; its problems read exactly as before variants existed.
        where = "" if index == 0 else f"variant {index}: "
        problems += [f"{where}{problem}" for problem in _text_problems(template, text)]
    for claim in template.claims:
        if claim not in allowed_claims:
            problems.append(f"the claim {claim!r} is not in the persona's allowed_claims")
    return problems


def _text_problems(template: Template, text: str) -> list[str]:
    """The claims rules for one wording of `template` (its claims and evidence are shared).

    Echo placeholders are the prospect's words, not figures: "{budget}" states no price.
    """
    scan = _scan(text)
    problems = list(scan.problems)
    if not text.strip():
        problems.append("the text is empty")
    for name in dict.fromkeys(_placeholders(scan)):
        if name not in PLACEHOLDERS:
            problems.append(f"the placeholder {{{name}}} is not one the bot supplies")
    if _states_figures(scan):
        if template.evidence != "quote":
            problems.append(
                "it states a price, percentage or number without evidence; "
                'figures may only come from a computed quote (evidence = "quote")'
            )
        if "pricing" not in template.claims:
            problems.append("it states figures but does not declare the 'pricing' claim")
    return problems


ANSWER_PLACEHOLDERS: frozenset[str] = frozenset({"persona"})
"""Plain-word placeholders a knowledge answer may use besides its cited evidence (the
persona's name is always known; a prospect's name or company is not)."""


def answer_problems(
    text: str,
    claims: Collection[str],
    allowed_claims: Collection[str],
    evidence: Mapping[str, str],
) -> list[str]:
    """The claims rules for a knowledge answer, one complete clause per broken rule.

    Stricter than a template's rules, because an answer has no computed quote behind it:
    every figure it states — a price, a percentage, a date, a duration, an SLA — must come
    from a cited placeholder in `evidence` (placeholder → the claim citing it makes: a
    catalog price makes "pricing", a declared fact its own claim). Such a claim must be
    declared, and every declared claim allowed. Figures written out in the text itself
    (any digit, percent sign or currency sign) are refused, since nothing backs them.
    """
    scan = _scan(text)
    problems = list(scan.problems)
    if not text.strip():
        problems.append("the text is empty")
    cited: list[str] = []
    for name in dict.fromkeys(_placeholders(scan)):
        if name in evidence:
            cited.append(name)
        elif name not in ANSWER_PLACEHOLDERS:
            problems.append(
                f"the placeholder {{{name}}} is not one the bot supplies; cite a price as "
                "{price_<SKU>} (a SKU of the catalog) and another figure as {fact_<name>} "
                "(a fact the policy declares)"
            )
    if any(_is_figure_character(char) for literal, _ in scan.pieces for char in literal):
        problems.append(
            "it states a price, percentage, number or date in its own words; cite its "
            "evidence instead: {price_<SKU>} from the catalog or {fact_<name>} from the "
            "policy's declared facts"
        )
    for name in cited:
        needed = evidence[name]
        if needed not in claims:
            problems.append(f"it cites {{{name}}} but does not declare the {needed!r} claim")
    for claim in claims:
        if claim not in allowed_claims:
            problems.append(f"the claim {claim!r} is not allowed")
    return problems


def _fallback_problems(persona: Persona) -> list[str]:
    where = f"Persona {persona.name!r}"
    explicit = {key for key in persona.fallbacks if key != DEFAULT_FALLBACK}
    problems: list[str] = []
    for source, target in persona.fallbacks.items():
        if target not in persona.templates and target not in explicit:
            origin = "the default fallback ('*')" if source == DEFAULT_FALLBACK else repr(source)
            problems.append(
                f"{where}: the fallback of {origin} is {target!r}, "
                "which has no template and no fallback of its own."
            )
    nodes = (
        set(persona.templates)
        | explicit
        | set(persona.fallbacks.values())
        | set(persona.actions.values())
        | {ESCALATE}
    )
    seen: set[str] = set()
    for start in sorted(nodes):
        path: list[str] = []
        current: str | None = start
        while current is not None and current not in seen:
            seen.add(current)
            path.append(current)
            current = _next_action(persona, current)
        if current is not None and current in path:
            cycle = [*path[path.index(current) :], current]
            problems.append(f"{where}: the fallbacks form a cycle: {' -> '.join(cycle)}.")
    return problems


def _action_problems(persona: Persona, known_states: Collection[str]) -> list[str]:
    where = f"Persona {persona.name!r}"
    problems: list[str] = []
    states_of: dict[str, list[str]] = {}
    for state, action in persona.actions.items():
        states_of.setdefault(action, []).append(state)
    # An explicit fallback is required here even when "*" exists: "*" would otherwise turn a
    # typo in `actions` into a bot that silently escalates every conversation in that state.
    for action in sorted(states_of):
        if action not in persona.templates and action not in persona.fallbacks:
            states = ", ".join(repr(state) for state in states_of[action])
            problems.append(
                f"{where}: the action {action!r} (for state {states}) "
                "has no template and no fallback."
            )
    if ESCALATE not in persona.templates and ESCALATE not in persona.fallbacks:
        problems.append(
            f"{where}: there is no template for {ESCALATE!r}, "
            "which π chooses whenever confidence is low."
        )
    for state in sorted(set(known_states)):
        if state not in persona.actions:
            problems.append(f"{where}: the flow state {state!r} has no action.")
    return problems


def check_persona(persona: Persona, *, known_states: Collection[str] = ()) -> tuple[str, ...]:
    """Every reason the persona is unsafe or incomplete, one complete sentence per line.

    Checks templates (placeholder syntax and names, figures without quote evidence, claims
    outside `allowed_claims`), fallbacks (unknown targets, cycles), π's table (actions with
    neither template nor fallback, `escalate` unrenderable) and, given the flow's states,
    states without an action. An empty tuple means the persona passes.
    """
    problems: list[str] = []
    for action, template in persona.templates.items():
        problems.extend(
            f"Persona {persona.name!r}, template {action!r}: {problem}."
            for problem in _template_problems(template, persona.allowed_claims)
        )
        if not action.startswith(ACKNOWLEDGEMENT_PREFIX) and all(
            ECHO_PLACEHOLDERS.intersection(_placeholders(_scan(text))) for text in template.texts
        ):
            problems.append(
                f"Persona {persona.name!r}, template {action!r}: every wording echoes the "
                "prospect's words, so it cannot be said when they gave none; add a wording "
                f"without {{{', '.join(sorted(ECHO_PLACEHOLDERS))}}} placeholders."
            )
    problems.extend(_fallback_problems(persona))
    problems.extend(_action_problems(persona, known_states))
    return tuple(problems)
