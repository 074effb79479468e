"""Neutral replies as Bot Framework message activities carrying Adaptive Cards 1.5.

User text is data, never markup. Teams reads Markdown in a TextBlock's `text` and in a Fact's
`title` and `value`, and nowhere else (action titles are plain text):
https://learn.microsoft.com/en-us/microsoftteams/platform/task-modules-and-cards/cards/cards-format#format-cards-with-markdown
Its renderers take a CommonMark subset, and CommonMark lets any ASCII punctuation be escaped
with a backslash (https://spec.commonmark.org/0.31.2/#backslash-escapes), so `escape_markdown`
puts a backslash before the backslash itself and before every character that can start
markup: emphasis (`*`, `_`), strikethrough (`~`), code (`` ` ``), headings (`#`), block quotes
(`>`), links and images (`[`, `]`, `(`, `)`), HTML and `<at>` mentions (`<`), entities (`&`),
and the list markers that start a line (`-`, `+`, `1.`, `1)`). A lead who types
`[click](http://evil)` or `<at>Boss</at>` gets exactly those characters shown: no link, and
no mention (a card mention also needs an `msteams.entities` entry, which we never write).

Teams drops a message over its size limit, and a card that cannot be posted helps nobody:
every card stays under `MAX_CARD_BYTES`, cut from the end with a note pointing to `/audit`,
where the full record lives.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from adapters.teams.binding import Placement
from domain.cards import Button, Card, CardField, CardInput, Reply

ELLIPSIS = "…"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.5"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"

# Teams rejects larger messages; 28 KB is the limit it documents for cards posted to a channel
# (https://learn.microsoft.com/en-us/microsoftteams/platform/task-modules-and-cards/cards/cards-format#mention-support-within-adaptive-cards
# gives 28 KB for webhooks and 40 KB for bots; we keep to the smaller, so a card that fits
# here fits wherever the outbox sends it).
MAX_CARD_BYTES = 28 * 1024

# Cuts for single strings, before escaping (so an escape is never cut in half). They bound one
# element; `MAX_CARD_BYTES` bounds the whole card.
MAX_TITLE = 200
MAX_STATUS = 500
MAX_LINE = 2000
MAX_FACT_TITLE = 200
MAX_FACT_VALUE = 2000
MAX_ACTION_TITLE = 100
# The activity's `text` / `summary` is a notification and a screen-reader summary, not the record.
MAX_FALLBACK_TEXT = 1000

_STYLES = {"primary": "positive", "danger": "destructive"}
_MARKUP = re.compile(r"([\\*_~`#>\[\]()<&])")
# A leading `-` or `+` is escaped whatever follows (that also covers a `---` rule); digits
# only when `.` or `)` and a space follow, so `199.00 USD` stays as it is
# (https://spec.commonmark.org/0.31.2/#list-items).
_LIST_MARKER = re.compile(r"^([ \t]*)(?:([-+])|(\d{1,9})([.)])(?=[ \t]|$))")


def escape_markdown(text: str) -> str:
    """`text` shown literally by Teams' Markdown; the rule and its sources are in the module
    docstring. Lines are kept (joined with `\\n`); a marker is escaped where each one starts."""
    return "\n".join(_escape_line(line) for line in text.splitlines())


def _escape_line(line: str) -> str:
    escaped = _MARKUP.sub(r"\\\1", line)
    # `-`, `+` and `1.` are markup only at the start of a line; elsewhere they stay as typed.
    return _LIST_MARKER.sub(
        lambda m: f"{m[1]}\\{m[2]}" if m[2] else f"{m[1]}{m[3]}\\{m[4]}", escaped, count=1
    )


def _markdown(text: str) -> str:
    """Escaped text for a TextBlock or Fact: a single `\\n` is no line break there, two are."""
    return "\n\n".join(_escape_line(line) for line in text.splitlines())


def activity(
    reply: Reply, *, conversation: str, nonce_seed: str, placement: Placement
) -> dict[str, Any]:
    """The message activity for a reply: its text, or its card with the text as `summary`.

    Teams shows a message's `text` above its card, which would say everything twice (the
    card carries the title and status); beside a card the text goes into `summary`, which
    Teams uses for notifications and the activity feed. `summary` is plain text, not
    Markdown, so it is not escaped.

    `nonce_seed` is the outbox key: action nonces are derived from it, so a resend of the same
    outbox entry renders a byte-identical card. `placement` is where the message is posted:
    every button is signed for it (`binding.py`).
    """
    fallback = reply.text
    if reply.image is not None:
        return _image_message(reply)
    if reply.card is None:
        return {"type": "message", "text": _markdown(_clip(fallback, MAX_FALLBACK_TEXT))}
    if not fallback.strip():
        # Notifications and screen readers read `summary`: never leave it empty.
        fallback = reply.card.title if reply.card.title.strip() else ELLIPSIS
    message: dict[str, Any] = {
        "type": "message",
        "summary": _clip(fallback, MAX_FALLBACK_TEXT),
    }
    # The limit is for the whole message: the card gets the room the summary leaves.
    room = MAX_CARD_BYTES - _size({**message, "attachments": [_attachment({})]})
    card = _render(reply.card, conversation, nonce_seed, placement, room)
    message["attachments"] = [_attachment(card)]
    return message


MAX_INLINE_IMAGE_BYTES = 150 * 1024
"""The largest inline image (its data URI) a message carries: Teams refuses or drops larger
ones. `domain.cards.IMAGE_MAX_BYTES` keeps every reply's image under it; this is the check."""
IMAGE_TOO_LARGE = "The picture is too large to show in Teams."


def _image_message(reply: Reply) -> dict[str, Any]:
    """A reply's image as an inline attachment: Bot Framework's image attachment with the
    PNG as a `data:` URI, so no public URL or file consent is needed and only the people
    in the conversation it is posted in see it. The text is its caption; the name is the
    file's, which Teams offers when the picture is saved. Larger than
    `MAX_INLINE_IMAGE_BYTES`: the caption alone, saying so."""
    assert reply.image is not None
    image = reply.image
    text = _clip(reply.text, MAX_FALLBACK_TEXT)
    uri = f"data:{image.media_type};base64,{image.data}"
    if len(uri) > MAX_INLINE_IMAGE_BYTES:
        return {"type": "message", "text": _markdown(f"{text}: {IMAGE_TOO_LARGE}")}
    return {
        "type": "message",
        "text": _markdown(text),
        "attachments": [
            {"contentType": image.media_type, "contentUrl": uri, "name": image.filename}
        ],
    }


def adaptive_card(
    card: Card, *, conversation: str, nonce_seed: str, placement: Placement
) -> dict[str, Any]:
    """The card alone: an attachment's `content`, or the refreshed card an
    `adaptiveCard/action` invoke answers with."""
    return _render(card, conversation, nonce_seed, placement, MAX_CARD_BYTES)


def _attachment(content: dict[str, Any]) -> dict[str, Any]:
    return {"contentType": CARD_CONTENT_TYPE, "content": content}


def _size(node: Any) -> int:
    """The serialised UTF-8 JSON's bytes, with the spaces `json.dumps` puts after separators
    (a compact encoder writes fewer). Senders should write UTF-8 (`ensure_ascii=False`):
    `\\uXXXX` escapes make a non-ASCII card up to twice as large on the wire."""
    return len(json.dumps(node, ensure_ascii=False).encode("utf-8"))


def _render(
    card: Card, conversation: str, nonce_seed: str, placement: Placement, room: int
) -> dict[str, Any]:
    """The card, holding as much of its body as fits in `room` bytes.

    The title, status and actions always stay: they say what the card is and what can be done.
    The body's items (text lines, facts, arithmetic lines, in that order) are dropped from the
    end, so the arithmetic goes first; what was dropped is replaced by a note naming `/audit`. Each extra item only makes the card larger, so the
    number of items that fits is found by bisection.
    """
    text = tuple(card.text.splitlines())
    fields = card.fields
    lines = tuple(line for line in card.lines if line.strip())
    total = len(text) + len(fields) + len(lines)
    buttons = _Buttons(conversation, nonce_seed, placement)

    def build(keep: int) -> dict[str, Any]:
        kept_text = text[:keep]
        kept_fields = fields[: max(0, keep - len(text))]
        kept_lines = lines[: max(0, keep - len(text) - len(fields))]
        return _card(
            card,
            kept_text,
            kept_fields,
            kept_lines,
            keep < total,
            buttons,
        )

    full = build(total)
    if _size(full) <= room:
        return full
    low, high = 0, total - 1  # the most items that fit lies in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        if _size(build(middle)) <= room:
            low = middle
        else:
            high = middle - 1
    return build(low)


def _card(
    card: Card,
    text: Sequence[str],
    fields: Sequence[CardField],
    lines: Sequence[str],
    cut: bool,
    buttons: _Buttons,
) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": _markdown(_clip(card.title, MAX_TITLE)) if card.title.strip() else ELLIPSIS,
            "size": "Large",
            "weight": "Bolder",
            "wrap": True,
            "style": "heading",
        }
    ]
    if card.status.strip():
        body.append(
            {
                "type": "TextBlock",
                "text": _markdown(_clip(card.status, MAX_STATUS)),
                "color": "Accent",
                "isSubtle": True,
                "spacing": "None",
                "wrap": True,
            }
        )
    shown = "\n\n".join(_escape_line(_clip(line, MAX_LINE)) for line in text)
    if shown.strip():
        body.append({"type": "TextBlock", "text": shown, "wrap": True})
    if fields:
        body.append({"type": "FactSet", "facts": [_fact(f) for f in fields]})
    if lines:
        body.append(
            {
                "type": "Container",
                "style": "emphasis",
                "items": [
                    {
                        "type": "TextBlock",
                        "text": _markdown(_clip(line, MAX_LINE)),
                        "fontType": "Monospace",
                        "size": "Small",
                        "spacing": "None",
                        "wrap": True,
                    }
                    for line in lines
                ],
            }
        )
    if cut:
        where = f" see /audit {card.ref}" if card.ref.strip() else " cut to fit Teams."
        body.append(
            {
                "type": "TextBlock",
                "text": _markdown(_clip(f"{ELLIPSIS}{where}", MAX_LINE)),
                "isSubtle": True,
                "wrap": True,
            }
        )
    if card.input is not None:
        body.append(_input(card.input))
    content: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "body": body,
    }
    if card.buttons:
        content["actions"] = [
            _action(button, buttons.data(button, index, card.ref))
            for index, button in enumerate(card.buttons)
        ]
    return content


NOTE_ID = "note"
"""The id of a card's text box: Teams merges its value into the pressed action's data under
this key (Universal Actions and `Action.Submit` alike), where `inbound` reads it."""


def _input(box: CardInput) -> dict[str, Any]:
    """A card's text box (`Input.Text`). Label and placeholder are plain text."""
    element: dict[str, Any] = {
        "type": "Input.Text",
        "id": NOTE_ID,
        "label": _clip(box.label, MAX_LINE),
        "maxLength": box.max_chars,
        "isRequired": False,
    }
    if box.placeholder.strip():
        element["placeholder"] = _clip(box.placeholder, MAX_LINE)
    return element


def _fact(field: CardField) -> dict[str, str]:
    return {
        "title": _fact_text(field.label, MAX_FACT_TITLE),
        "value": _fact_text(field.value, MAX_FACT_VALUE),
    }


def _fact_text(text: str, limit: int) -> str:
    # An empty fact title or value leaves a gap that reads as a rendering fault.
    return _markdown(_clip(text, limit)) if text.strip() else ELLIPSIS


class _Buttons(NamedTuple):
    """What a card's buttons' data is made from: the conversation they act on, the seed of
    their nonces and where the card is posted (what they are signed for)."""

    conversation: str
    nonce_seed: str
    placement: Placement

    def data(self, button: Button, index: int, ref: str | None) -> dict[str, Any]:
        nonce = hashlib.sha256(f"{self.nonce_seed}:{index}".encode()).hexdigest()[:16]
        return self.placement.action_data(
            self.conversation, button.action, button.target, nonce, ref
        )


def _action(button: Button, data: dict[str, Any]) -> dict[str, Any]:
    """`Action.Execute` (Universal Actions: the bot answers the invoke with the refreshed card),
    falling back to an `Action.Submit` with the same data on clients without Universal Actions
    (https://learn.microsoft.com/en-us/microsoftteams/platform/task-modules-and-cards/cards/universal-actions-for-adaptive-cards/work-with-universal-actions-for-adaptive-cards#backward-compatibility).

    Action titles are plain text, not Markdown, so they are clipped but not escaped. Adaptive
    Cards have no confirmation dialog: an irreversible click is confirmed by its refreshed card.
    """
    title = _clip(button.label, MAX_ACTION_TITLE) if button.label.strip() else ELLIPSIS
    style = _STYLES.get(button.style)
    # Two copies of one value: a consumer editing one action's data cannot change the other's.
    submit: dict[str, Any] = {"type": "Action.Submit", "title": title, "data": dict(data)}
    execute: dict[str, Any] = {
        "type": "Action.Execute",
        "verb": button.action,
        "title": title,
        "data": dict(data),
    }
    if style is not None:
        submit["style"] = style
        execute["style"] = style
    execute["fallback"] = submit
    return execute


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)] + ELLIPSIS
