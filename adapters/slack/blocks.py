"""Neutral replies as Slack messages: Block Kit blocks plus a plain `text` fallback.

User text is data, never markup. Slack's mrkdwn has three control characters, `&`, `<` and `>`
(https://docs.slack.dev/messaging/formatting-message-text#escaping); once they are escaped,
`<!channel>`, `<@U…>` and `<http…|…>` typed by a lead cannot exist, so nobody is pinged and no
link is disguised. Every mrkdwn object is also `verbatim`, so Slack does not auto-parse plain
`@here` or `#channel` in it (https://docs.slack.dev/reference/block-kit/composition-objects/text-object).
Senders must never pass `link_names`.

Every button's value is signed for its installation, conversation, action, target, card and
nonce (`ids.ButtonSigner`), so a click can be bound to the card it came from.

Slack rejects a message that breaks a Block Kit limit (`invalid_blocks`), and a card that cannot be
posted helps nobody: every limit below is enforced by cutting with "…", and a message cut short
points to `/audit`, where the full record lives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

from adapters.slack import ids
from domain.cards import Button, Card, CardField, CardInput, Reply
from domain.inbound import ActionId

ELLIPSIS = "…"

# https://docs.slack.dev/reference/block-kit/blocks — "up to 50 blocks in each message".
MAX_BLOCKS = 50
# https://docs.slack.dev/reference/block-kit/blocks/section-block — text ≤ 3000 characters;
# fields ≤ 10 per section, each ≤ 2000 characters.
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
# https://docs.slack.dev/reference/block-kit/blocks/header-block — plain_text ≤ 150 characters.
MAX_HEADER_TEXT = 150
# https://docs.slack.dev/reference/block-kit/composition-objects/text-object — any text object
# ≤ 3000 characters (this bounds the status line in its context block).
MAX_TEXT_OBJECT = 3000
# https://docs.slack.dev/reference/block-kit/blocks/actions-block — ≤ 25 elements.
MAX_ACTIONS = 25
# https://docs.slack.dev/reference/block-kit/block-elements/button-element — text ≤ 75
# characters (value ≤ 2000 is enforced by `ids.button_value`).
MAX_BUTTON_TEXT = 75
# https://docs.slack.dev/reference/block-kit/blocks/input-block — label ≤ 2000 characters;
# https://docs.slack.dev/reference/block-kit/block-elements/plain-text-input-element —
# placeholder ≤ 150 characters.
MAX_INPUT_LABEL = 2000
MAX_PLACEHOLDER = 150
NOTE_ID = "note"
"""The block and action id of a card's text box (`domain.cards.CardInput`)."""
# https://docs.slack.dev/reference/block-kit/composition-objects/confirmation-dialog-object
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
# https://docs.slack.dev/reference/methods/chat.postMessage — Slack truncates `text` at 40,000
# characters and advises keeping it under 4,000; the fallback is a notification, not a record.
MAX_FALLBACK_TEXT = 4000

_CODE_FENCE = "```"
_LONGEST_ENTITY = len("&amp;")

# Irreversible clicks ask first. Plain text, written here, never user text.
_CONFIRM: dict[ActionId, tuple[str, str, str]] = {
    "reject_quote": (
        "Reject this discount?",
        "The quote cannot be accepted at this discount. Your decision is recorded for audit.",
        "Reject",
    ),
    "mark_lost": (
        "Mark this deal as lost?",
        "The conversation closes as lost. Your decision is recorded for audit.",
        "Mark as lost",
    ),
}


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters as entities (`&` first, so nothing is escaped twice)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message(
    reply: Reply, *, conversation: str, nonce_seed: str, signer: ids.ButtonSigner
) -> dict[str, Any]:
    """The `text` and `blocks` arguments of chat.postMessage, chat.update and chat.postEphemeral
    (and of a `response_url` post).

    `nonce_seed` is the outbox key: button nonces are derived from it, so a resend of the same
    outbox entry renders byte-identical blocks. `signer` signs every button's value.
    """
    fallback = reply.text
    if not fallback.strip() and reply.card is not None:
        # Notifications and screen readers show only `text`: never leave it empty beside blocks.
        fallback = reply.card.title if reply.card.title.strip() else ELLIPSIS
    blocks = (
        _card_blocks(reply.card, conversation, nonce_seed, signer)
        if reply.card is not None
        else _fit(list(_text_sections(reply.text)), fixed=0, ref="")
    )
    return {"text": _clip(escape_mrkdwn(fallback), MAX_FALLBACK_TEXT), "blocks": blocks}


def _card_blocks(
    card: Card, conversation: str, nonce_seed: str, signer: ids.ButtonSigner
) -> list[dict[str, Any]]:
    head: list[dict[str, Any]] = [{"type": "header", "text": _plain(card.title, MAX_HEADER_TEXT)}]
    if card.status.strip():
        status = _clip(f"*Status:* {escape_mrkdwn(card.status)}", MAX_TEXT_OBJECT)
        head.append({"type": "context", "elements": [_mrkdwn(status)]})
    body = [
        *_text_sections(card.text),
        *_field_sections(card.fields),
        *_code_sections(card.lines),
    ]
    tail: list[dict[str, Any]] = []
    if card.input is not None:
        tail.append(_input(card.input))
    if card.buttons:
        tail.append(_actions(card.buttons, conversation, nonce_seed, card.ref, signer))
    return [*head, *_fit(body, fixed=len(head) + len(tail), ref=card.ref), *tail]


def _fit(body: list[dict[str, Any]], *, fixed: int, ref: str) -> list[dict[str, Any]]:
    """Keep the header, status and buttons; cut the body to what the 50 blocks leave room for."""
    room = MAX_BLOCKS - fixed
    if len(body) <= room:
        return body
    where = f" `/audit {escape_mrkdwn(ref)}` shows all of it." if ref else ""
    note = {"type": "context", "elements": [_mrkdwn(f"{ELLIPSIS} cut to fit Slack.{where}")]}
    return [*body[: room - 1], note]


def _text_sections(text: str) -> Iterator[dict[str, Any]]:
    for chunk in _chunks(escape_mrkdwn(text).splitlines(), MAX_SECTION_TEXT):
        yield {"type": "section", "text": _mrkdwn(chunk)}


def _field_sections(fields: Sequence[CardField]) -> Iterator[dict[str, Any]]:
    for start in range(0, len(fields), MAX_FIELDS):
        yield {
            "type": "section",
            "fields": [
                _mrkdwn(
                    _clip(
                        f"*{escape_mrkdwn(f.label)}*\n{escape_mrkdwn(f.value)}",
                        MAX_FIELD_TEXT,
                    )
                )
                for f in fields[start : start + MAX_FIELDS]
            ],
        }


def _code_sections(lines: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The arithmetic in code blocks, so columns line up and `*` or `_` stay literal.

    A backtick is followed by a zero-width space so that no line can close the fence early.
    """
    budget = MAX_SECTION_TEXT - len(f"{_CODE_FENCE}\n\n{_CODE_FENCE}")
    safe = [escape_mrkdwn(line).replace("`", "`\u200b") for line in lines]
    for chunk in _chunks(safe, budget):
        yield {"type": "section", "text": _mrkdwn(f"{_CODE_FENCE}\n{chunk}\n{_CODE_FENCE}")}


def _chunks(lines: Sequence[str], limit: int) -> Iterator[str]:
    """Whole lines joined up to `limit` characters; a longer line is split where no entity is."""
    current: list[str] = []
    size = 0
    for line in lines:
        for piece in _pieces(line, limit):
            extra = len(piece) + (1 if current else 0)
            if current and size + extra > limit:
                yield from _nonblank("\n".join(current))
                current, extra, size = [], len(piece), 0
            current.append(piece)
            size += extra
    yield from _nonblank("\n".join(current))


def _nonblank(text: str) -> Iterator[str]:
    # Slack rejects a text object that is empty or only whitespace.
    if text.strip():
        yield text


def _pieces(escaped: str, limit: int) -> Iterator[str]:
    while len(escaped) > limit:
        cut = _entity_safe(escaped, limit)
        yield escaped[:cut]
        escaped = escaped[cut:]
    yield escaped


def _entity_safe(escaped: str, cut: int) -> int:
    """`cut`, moved back before an `&amp;`/`&lt;`/`&gt;` that it would split in two."""
    amp = escaped.rfind("&", max(0, cut - _LONGEST_ENTITY + 1), cut)
    if amp != -1 and ";" not in escaped[amp:cut]:
        return amp
    return cut


def _clip(escaped: str, limit: int) -> str:
    if len(escaped) <= limit:
        return escaped
    return escaped[: _entity_safe(escaped, limit - len(ELLIPSIS))] + ELLIPSIS


def _plain(text: str, limit: int) -> dict[str, Any]:
    # Slack rejects an empty or blank plain_text (a header, a button label).
    shown = text if text.strip() else ELLIPSIS
    return {"type": "plain_text", "text": _clip(escape_mrkdwn(shown), limit)}


def _mrkdwn(escaped: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": escaped, "verbatim": True}


def _actions(
    buttons: Sequence[Button],
    conversation: str,
    nonce_seed: str,
    ref: str,
    signer: ids.ButtonSigner,
) -> dict[str, Any]:
    elements: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, button in enumerate(buttons[:MAX_ACTIONS]):
        nonce = hashlib.sha256(f"{nonce_seed}:{index}".encode()).hexdigest()[:16]
        # Slack refuses two elements of one block with the same action_id; a card may offer
        # one action on several targets (the outcome picker's Resolve buttons), so the later
        # ones carry a suffix the inbound side strips (`resolve_ticket:2`).
        action_id = button.action if button.action not in seen else f"{button.action}:{index}"
        seen.add(button.action)
        element: dict[str, Any] = {
            "type": "button",
            "action_id": action_id,
            "text": _plain(button.label, MAX_BUTTON_TEXT),
            "value": ids.button_value(
                conversation, button.target, nonce, action=button.action, ref=ref, signer=signer
            ),
        }
        if button.style != "default":
            element["style"] = button.style
        if button.action in _CONFIRM:
            element["confirm"] = _confirm(*_CONFIRM[button.action])
        elements.append(element)
    return {"type": "actions", "elements": elements}


def _input(box: CardInput) -> dict[str, Any]:
    """A card's text box: an input block in the message, whose value Slack sends with the
    next button pressed (`state.values`, read by `inbound.from_action`)."""
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": NOTE_ID,
        "max_length": box.max_chars,
    }
    if box.placeholder.strip():
        element["placeholder"] = _plain(box.placeholder, MAX_PLACEHOLDER)
    return {
        "type": "input",
        "block_id": NOTE_ID,
        "optional": True,
        "label": _plain(box.label, MAX_INPUT_LABEL),
        "element": element,
    }


def _confirm(title: str, text: str, confirm: str) -> dict[str, Any]:
    return {
        "title": _plain(title, MAX_CONFIRM_TITLE),
        "text": _plain(text, MAX_CONFIRM_TEXT),
        "confirm": _plain(confirm, MAX_CONFIRM_BUTTON),
        "deny": _plain("Cancel", MAX_CONFIRM_BUTTON),
        "style": "danger",
    }
