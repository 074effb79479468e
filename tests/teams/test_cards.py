"""Adaptive Card rendering: the real cards as reviewed golden files, escaping, actions and size.

The golden files are rendered from cards the real presenters build while `decide` runs scripted
conversations at a fixed time. Tests only read them; to regenerate after a reviewed change:

    UPDATE_GOLDEN=1 .venv/bin/python -m tests.teams.test_cards
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.teams import binding, ids
from adapters.teams.binding import Placement
from adapters.teams.cards import MAX_CARD_BYTES, activity, adaptive_card, escape_markdown
from domain.cards import Button, Card, CardField, Reply
from domain.policy import Policy
from tests.support.card_scripts import (
    CARDS,
    approval_reply,
    quote_reply,
    ticket_reply,
)
from tests.teams.signing import KEY

GOLDEN = Path(__file__).parent / "golden"
NOW = 1_790_000_000_000
CONVERSATION = ids.conversation_id("19:c0ffee0001@thread.tacv2;messageid=1790000000000")
TENANT = "c0ffee00-0000-4000-8000-000000000001"
# The cards are posted in the conversation they act on, unless a test says otherwise.
PLACEMENT = Placement(KEY, TENANT, "19:c0ffee0001@thread.tacv2;messageid=1790000000000")
EVIL = "*bold* [x](http://evil) <at>Boss</at> &"
EVIL_ESCAPED = r"\*bold\* \[x\]\(http://evil\) \<at\>Boss\</at\> \&"
MARKUP = set("\\*_~`#>[]()<&")
ELEMENTS = {"TextBlock", "FactSet", "Container", "Input.Text"}
ACTIONS = {"Action.Execute", "Action.Submit"}


def render_golden(name: str, policy: Policy) -> dict[str, Any]:
    return activity(
        CARDS[name](policy, CONVERSATION),
        conversation=CONVERSATION,
        nonce_seed=f"outbox:{name}",
        placement=PLACEMENT,
    )


def golden_text(rendered: dict[str, Any]) -> str:
    return json.dumps(rendered, indent=2, ensure_ascii=False) + "\n"


# ---- what Teams would reject --------------------------------------------------------------


def wire_bytes(node: Any) -> int:
    return len(json.dumps(node, ensure_ascii=False).encode("utf-8"))


def elements(card: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every body element, containers' items included."""
    stack = list(reversed(card["body"]))
    while stack:
        element = stack.pop()
        yield element
        stack.extend(reversed(element.get("items", [])))


def markdown_texts(card: dict[str, Any]) -> Iterator[str]:
    """Every string Teams reads as Markdown: TextBlock text, Fact title and value."""
    for element in elements(card):
        if element["type"] == "TextBlock":
            yield element["text"]
        elif element["type"] == "FactSet":
            for fact in element["facts"]:
                yield fact["title"]
                yield fact["value"]


def check_card(card: dict[str, Any]) -> None:
    """A minimal validation: the header, known element and action types, their required parts."""
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.5"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert set(card) <= {"type", "version", "$schema", "body", "actions"}
    assert card["body"], "a card without a body renders as an empty box"
    for element in elements(card):
        assert element["type"] in ELEMENTS
        match element["type"]:
            case "TextBlock":
                assert isinstance(element["text"], str)
                assert element["text"].strip()
                assert element["wrap"] is True
            case "FactSet":
                assert element["facts"]
                for fact in element["facts"]:
                    assert set(fact) == {"title", "value"}
                    assert fact["title"].strip()
                    assert fact["value"].strip()
            case "Container":
                assert element["items"]
            case "Input.Text":
                # https://adaptivecards.io/explorer/Input.Text.html (1.5: `label`)
                assert element["id"]
                assert element["label"].strip()
                assert element["maxLength"] >= 1
                assert card.get("actions"), "an input's value travels with an action"
    for action in card.get("actions", []):
        assert action["type"] == "Action.Execute"
        assert action["verb"]
        assert action["title"].strip()
        assert "style" not in action or action["style"] in ("positive", "destructive")
        fallback = action["fallback"]
        assert fallback["type"] == "Action.Submit"
        assert set(fallback) <= {"type", "title", "data", "style"}
    assert wire_bytes(card) <= MAX_CARD_BYTES


def check_activity(message: dict[str, Any]) -> dict[str, Any] | None:
    assert message["type"] == "message"
    assert wire_bytes(message) <= MAX_CARD_BYTES
    if "attachments" not in message:
        assert message["text"].strip()
        return None
    # Beside a card the text is the notification summary, not shown above the card.
    assert "text" not in message
    assert message["summary"].strip()
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card: dict[str, Any] = attachment["content"]
    check_card(card)
    return card


def render(card: Card, text: str = "notice", seed: str = "k1") -> dict[str, Any]:
    rendered = check_activity(
        activity(
            Reply(audience="conversation", text=text, card=card),
            conversation=CONVERSATION,
            nonce_seed=seed,
            placement=PLACEMENT,
        )
    )
    assert rendered is not None
    return rendered


def unescape(escaped: str) -> str:
    """What a CommonMark renderer shows for text that has no live markup: escapes removed."""
    return re.sub(r"\\(.)", r"\1", escaped)


# ---- golden files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CARDS))
def test_each_real_card_renders_exactly_as_its_reviewed_golden_file(
    name: str, default_policy: Policy
) -> None:
    path = GOLDEN / f"{name}.json"
    assert path.exists(), (
        f"missing {path.name}: run UPDATE_GOLDEN=1 python -m tests.teams.test_cards"
    )
    rendered = render_golden(name, default_policy)
    check_activity(rendered)
    assert rendered == json.loads(path.read_text(encoding="utf-8"))
    assert golden_text(rendered) == path.read_text(encoding="utf-8")


def test_the_quote_card_shows_fields_as_facts_and_the_arithmetic_in_monospace_lines(
    default_policy: Policy,
) -> None:
    reply = quote_reply(default_policy, CONVERSATION)
    assert reply.card is not None
    card = adaptive_card(reply.card, conversation=CONVERSATION, nonce_seed="k", placement=PLACEMENT)
    [facts] = [e for e in card["body"] if e["type"] == "FactSet"]
    assert [(f["title"], f["value"]) for f in facts["facts"]] == [
        (escape_markdown(f.label), escape_markdown(f.value)) for f in reply.card.fields
    ]
    assert ("Total", "1,791.00 USD") in [(f["title"], f["value"]) for f in facts["facts"]]
    [proof] = [e for e in card["body"] if e["type"] == "Container"]
    assert [b["fontType"] for b in proof["items"]] == ["Monospace"] * len(reply.card.lines)
    assert [unescape(b["text"]) for b in proof["items"]] == list(reply.card.lines)
    assert "subtotal = 10 × 199.00 = 1,990.00 USD" in [b["text"] for b in proof["items"]]


def test_the_title_is_large_and_bold_and_the_status_subtle() -> None:
    card = render(Card(kind="quote", title="Quote Q-1", status="Ready to accept"))
    title, status = card["body"][:2]
    assert (title["text"], title["size"], title["weight"], title["wrap"]) == (
        "Quote Q-1",
        "Large",
        "Bolder",
        True,
    )
    assert (status["text"], status["isSubtle"], status["color"]) == (
        "Ready to accept",
        True,
        "Accent",
    )


# ---- actions ------------------------------------------------------------------------------


def test_each_button_is_an_execute_action_whose_submit_fallback_carries_identical_data(
    default_policy: Policy,
) -> None:
    reply = approval_reply(default_policy, CONVERSATION)
    assert reply.card is not None
    actions = render(reply.card)["actions"]
    assert [a["verb"] for a in actions] == [b.action for b in reply.card.buttons]
    for action, button in zip(actions, reply.card.buttons, strict=True):
        fallback = action["fallback"]
        assert fallback["data"] == action["data"]
        assert fallback["title"] == action["title"] == button.label
        assert fallback.get("style") == action.get("style")
        parsed = ids.parse_action_data(action["data"])
        assert parsed is not None
        assert parsed.conversation == CONVERSATION
        assert (parsed.action, parsed.target) == (button.action, button.target)
        # The card's own ref rides along: the click is answered with this card refreshed.
        assert parsed.ref == reply.card.ref
        assert action["data"] == PLACEMENT.action_data(
            CONVERSATION, button.action, button.target, parsed.nonce, reply.card.ref
        )
    assert [a.get("style") for a in actions] == ["positive", "destructive"]


def test_every_button_is_signed_for_the_place_its_card_is_posted(
    default_policy: Policy,
) -> None:
    reply = ticket_reply(default_policy, CONVERSATION)
    assert reply.card is not None
    handoff = Placement(KEY, TENANT, "19:handoff@thread.tacv2")
    card = adaptive_card(reply.card, conversation=CONVERSATION, nonce_seed="k", placement=handoff)

    def clicked(where: str, tenant: str = TENANT) -> dict[str, Any]:
        return {"conversation": {"id": where}, "channelData": {"tenant": {"id": tenant}}}

    for action in card["actions"]:
        for data in (action["data"], action["fallback"]["data"]):
            parsed = ids.parse_action_data(data)
            assert parsed is not None
            assert parsed.conversation == CONVERSATION  # what it acts on ...
            assert (parsed.tenant, parsed.where) == (TENANT, "19:handoff@thread.tacv2")  # ... from
            in_thread = clicked("19:handoff@thread.tacv2;messageid=1790000000001")
            assert binding.check(KEY, parsed, in_thread) == "ok"
            assert binding.check(KEY, parsed, clicked(PLACEMENT.where)) == "wrong_conversation"
            other_tenant = clicked("19:handoff@thread.tacv2", "someone-else")
            assert binding.check(KEY, parsed, other_tenant) == "wrong_tenant"


def test_a_default_button_has_no_style() -> None:
    [action] = render(
        Card(kind="notice", title="t", buttons=(Button(action="escalate", label="Go"),))
    )["actions"]
    assert "style" not in action
    assert "style" not in action["fallback"]


def test_a_resend_of_the_same_outbox_entry_renders_an_identical_card(
    default_policy: Policy,
) -> None:
    reply = ticket_reply(default_policy, CONVERSATION)
    first = activity(reply, conversation=CONVERSATION, nonce_seed="outbox-7", placement=PLACEMENT)
    again = activity(reply, conversation=CONVERSATION, nonce_seed="outbox-7", placement=PLACEMENT)
    other = activity(reply, conversation=CONVERSATION, nonce_seed="outbox-8", placement=PLACEMENT)
    assert json.dumps(first) == json.dumps(again)
    assert first != other


def test_every_button_on_a_card_has_its_own_nonce(default_policy: Policy) -> None:
    reply = ticket_reply(default_policy, CONVERSATION)
    assert reply.card is not None
    actions = render(reply.card)["actions"]
    nonces = {a["data"]["n"] for a in actions}
    assert len(actions) == 5  # Claim, Resolve, Return to bot, Won, Lost…
    assert len(nonces) == 5


# ---- user text is data --------------------------------------------------------------------


def test_user_text_is_escaped_in_every_text_block_and_fact_and_links_nobody() -> None:
    card = Card(
        kind="lead",
        title=EVIL,
        text=EVIL,
        fields=(CardField(label=EVIL, value=EVIL),),
        lines=(EVIL,),
        buttons=(Button(action="escalate", label=EVIL, target="c"),),
        status=EVIL,
        ref="lead:1",
    )
    message = activity(
        Reply(audience="conversation", text=EVIL, card=card),
        conversation=CONVERSATION,
        nonce_seed="k",
        placement=PLACEMENT,
    )
    rendered = check_activity(message)
    assert rendered is not None
    texts = list(markdown_texts(rendered))
    assert len(texts) == 6  # title, status, text, fact title, fact value, proof line
    assert texts == [EVIL_ESCAPED] * 6
    assert message["summary"] == EVIL  # plain text: shown as typed, nothing to escape
    # Action titles are plain text in Teams: shown as typed, so they are not escaped.
    assert rendered["actions"][0]["title"] == EVIL
    assert "msteams" not in rendered  # no mention entities, so `<at>` can never ping


@pytest.mark.parametrize(
    ("typed", "escaped"),
    [
        ("- not a list", r"\- not a list"),
        ("  + nor this", r"  \+ nor this"),
        ("1. first", r"1\. first"),
        ("10) tenth", r"10\) tenth"),
        ("# not a heading", r"\# not a heading"),
        ("> not a quote", r"\> not a quote"),
        ("~~gone~~ `code` __u__", r"\~\~gone\~\~ \`code\` \_\_u\_\_"),
        ("a - b and 2. c", "a - b and 2. c"),
        ("199.00 USD", "199.00 USD"),
        ("---", r"\---"),
        ("3.", r"3\."),
        (r"\*still literal\*", r"\\\*still literal\\\*"),
        ("&amp; stays as typed", r"\&amp; stays as typed"),
    ],
)
def test_markdown_that_users_type_is_shown_as_typed(typed: str, escaped: str) -> None:
    assert escape_markdown(typed) == escaped
    assert unescape(escape_markdown(typed)) == typed


def test_list_markers_are_escaped_on_every_line_of_a_multiline_value() -> None:
    card = render(Card(kind="notice", title="t", text="intro\n- one\n2. two"))
    assert card["body"][1]["text"] == "intro\n\n\\- one\n\n2\\. two"


@settings(deadline=None, max_examples=200)
@given(st.text())
def test_escaped_text_has_no_live_markup_and_reads_back_as_typed(text: str) -> None:
    escaped = escape_markdown(text)
    assert unescape(escaped) == "\n".join(text.splitlines())
    for line in escaped.split("\n"):
        assert not re.match(r"[ \t]*([-+]|\d{1,9}[.)]([ \t]|$))", line)
        live = re.sub(r"\\.", "", line)  # what is left once every escaped pair is removed
        assert not MARKUP & set(live)


# ---- text-only replies and fallbacks ------------------------------------------------------


def test_a_text_only_reply_is_an_escaped_message_without_attachments() -> None:
    message = activity(
        Reply(audience="conversation", text=f"Hello {EVIL}"),
        conversation=CONVERSATION,
        nonce_seed="k",
        placement=PLACEMENT,
    )
    assert message == {"type": "message", "text": f"Hello {EVIL_ESCAPED}"}


def test_a_card_reply_without_text_falls_back_to_the_card_title() -> None:
    message = activity(
        Reply(audience="conversation", text="", card=Card(kind="notice", title="Quote *Q-1*")),
        conversation=CONVERSATION,
        nonce_seed="k",
        placement=PLACEMENT,
    )
    assert message["summary"] == "Quote *Q-1*"


def test_a_blank_title_or_fact_still_renders_a_visible_placeholder() -> None:
    card = render(Card(kind="notice", title=" ", fields=(CardField(label="", value=" "),)))
    assert card["body"][0]["text"] == "…"
    assert card["body"][1]["facts"] == [{"title": "…", "value": "…"}]


# ---- size ---------------------------------------------------------------------------------


def test_a_5000_line_proof_is_cut_to_fit_and_points_to_audit() -> None:
    lines = tuple(f"line {i}: 10 × 199.00 = 1,990.00 USD" for i in range(5000))
    card = Card(
        kind="quote",
        title="Quote Q-1",
        fields=(CardField(label="Total", value="1,990.00 USD"),),
        lines=lines,
        buttons=(Button(action="accept_quote", label="Accept quote", target="Q-1"),),
        status="Ready to accept",
        ref="Q-1",
    )
    message = activity(
        Reply(audience="conversation", text="Quote", card=card),
        conversation=CONVERSATION,
        nonce_seed="k",
        placement=PLACEMENT,
    )
    rendered = check_activity(message)
    assert rendered is not None
    assert wire_bytes(message) <= MAX_CARD_BYTES
    assert wire_bytes(message) > MAX_CARD_BYTES - 1024  # filled, not cut to a stub
    [proof] = [e for e in rendered["body"] if e["type"] == "Container"]
    shown = [b["text"] for b in proof["items"]]
    assert shown == list(lines[: len(shown)])  # the first lines, in order
    assert 100 < len(shown) < 5000
    note = rendered["body"][-1]
    assert note["text"] == "… see /audit Q-1"
    assert [a["verb"] for a in rendered["actions"]] == ["accept_quote"]  # the button survives
    assert rendered["body"][2]["type"] == "FactSet"  # facts come before the cut arithmetic
    alone = adaptive_card(card, conversation=CONVERSATION, nonce_seed="k", placement=PLACEMENT)
    check_card(alone)
    assert wire_bytes(alone) > wire_bytes(rendered)  # a bare card has the envelope's room too


def test_too_many_fields_are_cut_from_the_end_after_the_arithmetic() -> None:
    card = Card(
        kind="notice",
        title="Big",
        fields=tuple(CardField(label=f"f{i}", value="v" * 500) for i in range(200)),
        lines=("a = 1",),
    )
    rendered = render(card)
    [facts] = [e for e in rendered["body"] if e["type"] == "FactSet"]
    assert [f["title"] for f in facts["facts"]] == [f"f{i}" for i in range(len(facts["facts"]))]
    assert 10 < len(facts["facts"]) < 200
    assert not [e for e in rendered["body"] if e["type"] == "Container"]
    assert rendered["body"][-1]["text"] == "… cut to fit Teams."


def test_a_card_that_fits_has_no_cut_note(default_policy: Policy) -> None:
    reply = quote_reply(default_policy, CONVERSATION)
    assert reply.card is not None
    card = adaptive_card(reply.card, conversation=CONVERSATION, nonce_seed="k", placement=PLACEMENT)
    assert not any("/audit" in t for t in markdown_texts(card))


@settings(deadline=None, max_examples=100)
@given(
    title=st.text(max_size=400),
    text=st.text(max_size=6000),
    value=st.text(max_size=3000),
    label=st.text(max_size=150),
    count=st.integers(min_value=0, max_value=60),
)
def test_any_user_text_renders_a_valid_card_under_the_size_cap(
    title: str, text: str, value: str, label: str, count: int
) -> None:
    card = Card(
        kind="notice",
        title=title,
        text=text,
        fields=tuple(CardField(label=label, value=value) for _ in range(count)),
        lines=tuple(text.splitlines()),
        buttons=(Button(action="escalate", label=label, target="c"),),
        status=title,
        ref=label,
    )
    render(card, text=text)
    check_card(adaptive_card(card, conversation=CONVERSATION, nonce_seed="k", placement=PLACEMENT))


def regenerate() -> None:
    """Rewrite the golden files from the current presenters (a reviewed change only)."""
    from bot.policy_loader import load_policy

    policy = load_policy("default")
    GOLDEN.mkdir(exist_ok=True)
    for name in sorted(CARDS):
        rendered = render_golden(name, policy)
        check_activity(rendered)
        (GOLDEN / f"{name}.json").write_text(golden_text(rendered), encoding="utf-8")
        print(f"wrote {GOLDEN / name}.json")


if __name__ == "__main__":
    if os.environ.get("UPDATE_GOLDEN") != "1":
        sys.exit("Set UPDATE_GOLDEN=1 to rewrite the golden files.")
    regenerate()
