"""Block Kit rendering: the real cards as reviewed golden files, escaping, and Slack's limits.

The golden files are rendered from cards the real presenters build while `decide` runs scripted
conversations at a fixed time. Tests only read them; to regenerate after a reviewed change:

    UPDATE_GOLDEN=1 .venv/bin/python -m tests.slack.test_blocks
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.action_binding import ActionKey
from adapters.slack.blocks import escape_mrkdwn, message
from adapters.slack.ids import ButtonSigner, parse_button_value
from domain.cards import Button, Card, CardField, Reply
from domain.policy import Policy
from tests.support.card_scripts import (
    CARDS,
    quote_reply,
    ticket_reply,
)

GOLDEN = Path(__file__).parent / "golden"
NOW = 1_790_000_000_000
CONVERSATION = "slack:T0001:C0001:1790000000.000100"
EVIL = "<!channel> & <@U123> *bold*"
EVIL_ESCAPED = "&lt;!channel&gt; &amp; &lt;@U123&gt; *bold*"
GOLDEN_SECRET = b"golden-action-secret"
SIGNER = ButtonSigner(ActionKey(GOLDEN_SECRET), "T0001")


def render_golden(name: str, policy: Policy) -> dict[str, Any]:
    return message(
        CARDS[name](policy, CONVERSATION),
        conversation=CONVERSATION,
        nonce_seed=f"outbox:{name}",
        signer=SIGNER,
    )


def golden_text(rendered: dict[str, Any]) -> str:
    return json.dumps(rendered, indent=2, ensure_ascii=False) + "\n"


# ---- what Slack would reject --------------------------------------------------------------


def text_objects(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn"):
            yield node
        for value in node.values():
            yield from text_objects(value)
    elif isinstance(node, list):
        for item in node:
            yield from text_objects(item)


def _text(obj: dict[str, Any], limit: int, kind: str | None = None) -> None:
    assert kind is None or obj["type"] == kind
    assert obj["text"].strip(), "Slack rejects empty text objects"
    assert len(obj["text"]) <= limit
    if obj["type"] == "mrkdwn":
        assert obj["verbatim"] is True  # no automatic parsing of @here / #channel


def check_slack_limits(rendered: dict[str, Any]) -> None:
    """The Block Kit constraints `blocks.py` promises to keep, checked on its output."""
    assert set(rendered) == {"text", "blocks"}
    blocks = rendered["blocks"]
    assert len(rendered["text"]) <= 4000
    assert rendered["text"].strip() or not blocks
    assert len(blocks) <= 50
    for block in blocks:
        match block["type"]:
            case "header":
                _text(block["text"], 150, "plain_text")
            case "section":
                assert ("text" in block) != ("fields" in block)
                if "text" in block:
                    _text(block["text"], 3000)
                else:
                    assert 1 <= len(block["fields"]) <= 10
                    for field in block["fields"]:
                        _text(field, 2000)
            case "context":
                assert 1 <= len(block["elements"]) <= 10
                for element in block["elements"]:
                    _text(element, 3000)
            case "input":
                # https://docs.slack.dev/reference/block-kit/blocks/input-block
                _text(block["label"], 2000, "plain_text")
                element = block["element"]
                assert element["type"] == "plain_text_input"
                assert 1 <= len(element["action_id"]) <= 255
                assert 1 <= element["max_length"] <= 3000
                if "placeholder" in element:
                    _text(element["placeholder"], 150, "plain_text")
            case "actions":
                assert 1 <= len(block["elements"]) <= 25
                ids = [button["action_id"] for button in block["elements"]]
                assert len(set(ids)) == len(ids), "Slack refuses a repeated action_id in a block"
                for button in block["elements"]:
                    assert button["type"] == "button"
                    assert 1 <= len(button["action_id"]) <= 255
                    assert len(button["value"]) <= 2000
                    assert button.get("style", "primary") in ("primary", "danger")
                    _text(button["text"], 75, "plain_text")
                    if "confirm" in button:
                        confirm = button["confirm"]
                        _text(confirm["title"], 100, "plain_text")
                        _text(confirm["text"], 300)
                        _text(confirm["confirm"], 30, "plain_text")
                        _text(confirm["deny"], 30, "plain_text")
            case other:
                pytest.fail(f"unexpected block type {other}")


def render(card: Card | None = None, text: str = "notice", seed: str = "k1") -> dict[str, Any]:
    reply = Reply(audience="conversation", text=text, card=card)
    rendered = message(reply, conversation=CONVERSATION, nonce_seed=seed, signer=SIGNER)
    check_slack_limits(rendered)
    return rendered


# ---- golden files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CARDS))
def test_each_real_card_renders_exactly_as_its_reviewed_golden_file(
    name: str, default_policy: Policy
) -> None:
    path = GOLDEN / f"{name}.json"
    assert path.exists(), (
        f"missing {path.name}: run UPDATE_GOLDEN=1 python -m tests.slack.test_blocks"
    )
    rendered = render_golden(name, default_policy)
    check_slack_limits(rendered)
    assert rendered == json.loads(path.read_text(encoding="utf-8"))
    assert golden_text(rendered) == path.read_text(encoding="utf-8")


def test_the_quote_card_shows_the_arithmetic_line_by_line_with_its_buttons(
    default_policy: Policy,
) -> None:
    rendered = render_golden("quote_card", default_policy)
    code = [b["text"]["text"] for b in rendered["blocks"] if b["type"] == "section" and "text" in b]
    assert len(code) == 1
    assert code[0].startswith("```\n")
    assert "subtotal = 10 × 199.00 = 1,990.00 USD" in code[0]
    actions = rendered["blocks"][-1]
    assert [e["action_id"] for e in actions["elements"]] == ["accept_quote", "escalate"]
    assert actions["elements"][0]["style"] == "primary"
    assert "style" not in actions["elements"][1]


def test_a_resend_of_the_same_outbox_entry_renders_identical_blocks(
    default_policy: Policy,
) -> None:
    reply = quote_reply(default_policy, CONVERSATION)
    first = message(reply, conversation=CONVERSATION, nonce_seed="outbox-7", signer=SIGNER)
    again = message(reply, conversation=CONVERSATION, nonce_seed="outbox-7", signer=SIGNER)
    other = message(reply, conversation=CONVERSATION, nonce_seed="outbox-8", signer=SIGNER)
    assert first == again
    assert first != other


def test_a_click_on_any_button_names_its_conversation_target_and_a_distinct_nonce(
    default_policy: Policy,
) -> None:
    reply = ticket_reply(default_policy, CONVERSATION)
    assert reply.card is not None
    rendered = render(reply.card)
    buttons = rendered["blocks"][-1]["elements"]
    values = [parse_button_value(b["value"]) for b in buttons]
    assert all(v is not None for v in values)
    assert {v.conversation for v in values if v} == {CONVERSATION}
    assert {v.target for v in values if v} == {reply.card.ref}
    assert len({v.nonce for v in values if v}) == len(buttons)


def test_every_button_is_signed_for_its_workspace_conversation_action_target_and_card(
    default_policy: Policy,
) -> None:
    reply = quote_reply(default_policy, CONVERSATION)
    assert reply.card is not None
    for button in render(reply.card)["blocks"][-1]["elements"]:
        value = parse_button_value(button["value"])
        assert value is not None
        assert value.ref == reply.card.ref
        parts = (value.conversation, button["action_id"], value.target, value.ref, value.nonce)
        assert SIGNER.verdict(value.signature, *parts) == "ok"
        other_workspace = ButtonSigner(SIGNER.key, "T0OTHER")
        assert other_workspace.verdict(value.signature, *parts) == "bad"
        assert SIGNER.verdict(value.signature, "slack:T0001:C0OTHER", *parts[1:]) == "bad"
        changed_action = (value.conversation, "approve_quote", *parts[2:])
        assert SIGNER.verdict(value.signature, *changed_action) == "bad"
        assert SIGNER.verdict(value.signature, *parts[:2], "Q-other", *parts[3:]) == "bad"
        rotated = ButtonSigner(ActionKey(b"rotated"), "T0001")
        assert rotated.verdict(value.signature, *parts) == "bad"
        rotated_keeping_ours = ButtonSigner(ActionKey(b"rotated", [GOLDEN_SECRET]), "T0001")
        assert rotated_keeping_ours.verdict(value.signature, *parts) == "retired"


def test_reject_and_mark_lost_ask_for_confirmation_but_approve_does_not() -> None:
    card = Card(
        kind="ticket",
        title="Decide",
        buttons=(
            Button(action="approve_quote", label="Approve", target="Q-1", style="primary"),
            Button(action="reject_quote", label="Reject", target="Q-1", style="danger"),
            Button(action="mark_lost", label="Mark lost", target="c"),
        ),
    )
    buttons = render(card)["blocks"][-1]["elements"]
    assert [("confirm" in b) for b in buttons] == [False, True, True]
    assert buttons[1]["confirm"]["style"] == "danger"


# ---- user text is data --------------------------------------------------------------------


def test_user_text_is_escaped_in_every_text_object_and_pings_nobody() -> None:
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
    rendered = render(card, text=EVIL)
    objects = list(text_objects(rendered["blocks"]))
    assert len(objects) == 6  # header, status, text, field, proof, button label
    for obj in objects:
        assert EVIL_ESCAPED in obj["text"]
        assert "<" not in obj["text"]
        assert ">" not in obj["text"]
    assert rendered["text"] == EVIL_ESCAPED
    assert "<!channel>" not in json.dumps(rendered)


def test_a_plain_reply_is_one_escaped_section() -> None:
    rendered = render(None, text=f"Hello {EVIL}")
    assert rendered["blocks"] == [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"Hello {EVIL_ESCAPED}", "verbatim": True},
        }
    ]


def test_a_backtick_fence_in_a_proof_line_cannot_close_the_code_block() -> None:
    rendered = render(Card(kind="quote", title="Q", lines=("a ``` *b*", "c")))
    code = rendered["blocks"][-1]["text"]["text"]
    assert code.startswith("```\n")
    assert code.endswith("\n```")
    assert code.count("```") == 2


@settings(deadline=None, max_examples=150)
@given(
    title=st.text(max_size=300),
    text=st.text(max_size=4000),
    value=st.text(min_size=0, max_size=2500),
    label=st.text(min_size=1, max_size=100),
)
def test_any_user_text_renders_within_limits_and_without_control_characters(
    title: str, text: str, value: str, label: str
) -> None:
    card = Card(
        kind="notice",
        title=title,
        text=text,
        fields=(CardField(label=label, value=value),),
        lines=tuple(text.splitlines()),
        buttons=(Button(action="escalate", label=label, target="c"),),
        status=title,
    )
    for rendered in (render(card, text=text), render(None, text=text or "x")):
        for obj in text_objects(rendered["blocks"]):
            assert "<" not in obj["text"]
            assert ">" not in obj["text"]


# ---- Slack's limits -----------------------------------------------------------------------


def test_a_5000_line_proof_is_cut_to_fifty_blocks_and_points_to_audit() -> None:
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
    rendered = render(card)
    blocks = rendered["blocks"]
    assert len(blocks) == 50
    assert blocks[0]["type"] == "header"
    assert blocks[-1]["type"] == "actions"  # the buttons survive the cut
    note = blocks[-2]
    assert note["type"] == "context"
    assert note["elements"][0]["text"].startswith("…")
    assert "/audit Q-1" in note["elements"][0]["text"]
    shown = json.dumps(blocks, ensure_ascii=False)
    assert "line 0:" in shown
    assert "line 4999:" not in shown
    code = [b for b in blocks if b["type"] == "section" and "text" in b]
    assert all(
        len(b["text"]["text"]) > 2500 for b in code[:-1]
    )  # chunks are filled, not one per line


def test_long_titles_labels_and_values_are_cut_with_an_ellipsis() -> None:
    card = Card(
        kind="notice",
        title="T" * 500,
        fields=tuple(CardField(label=f"f{i}", value="v" * 3000) for i in range(23)),
        buttons=tuple(Button(action="escalate", label="B" * 200, target="c") for _ in range(30)),
    )
    blocks = render(card)["blocks"]
    assert blocks[0]["text"]["text"] == "T" * 149 + "…"
    field_sections = [b for b in blocks if "fields" in b]
    assert [len(b["fields"]) for b in field_sections] == [10, 10, 3]
    assert all(f["text"].endswith("…") for b in field_sections for f in b["fields"])
    buttons = blocks[-1]["elements"]
    assert len(buttons) == 25
    assert buttons[0]["text"]["text"] == "B" * 74 + "…"


def test_cutting_never_splits_an_escaped_character() -> None:
    blocks = render(Card(kind="notice", title="&" * 200, text="<" * 5000))["blocks"]
    header = blocks[0]["text"]["text"]
    assert header == "&amp;" * 29 + "…"
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert "".join(sections) == "&lt;" * 5000


def test_the_fallback_text_is_capped_for_notifications() -> None:
    rendered = render(None, text="word " * 2000)
    assert len(rendered["text"]) == 4000
    assert rendered["text"].endswith("…")
    assert sum(len(b["text"]["text"]) for b in rendered["blocks"]) >= 9000


def test_escape_mrkdwn_escapes_only_slacks_three_characters_once() -> None:
    assert escape_mrkdwn("a & b < c > d \"e\" 'f'") == "a &amp; b &lt; c &gt; d \"e\" 'f'"
    assert escape_mrkdwn("&amp;") == "&amp;amp;"  # user text is data, even when it looks escaped


def regenerate() -> None:
    """Rewrite the golden files from the current presenters (a reviewed change only)."""
    from bot.policy_loader import load_policy

    policy = load_policy("default")
    GOLDEN.mkdir(exist_ok=True)
    for name in sorted(CARDS):
        rendered = render_golden(name, policy)
        check_slack_limits(rendered)
        (GOLDEN / f"{name}.json").write_text(golden_text(rendered), encoding="utf-8")
        print(f"wrote {GOLDEN / name}.json")


if __name__ == "__main__":
    if os.environ.get("UPDATE_GOLDEN") != "1":
        sys.exit("Set UPDATE_GOLDEN=1 to rewrite the golden files.")
    regenerate()
