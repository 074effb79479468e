"""Neutral replies and cards as plain terminal text, with numbered buttons for `/click N`."""

from __future__ import annotations

from domain.cards import Button, Card, Reply

AUDIENCE_LABEL = {
    "conversation": "bot",
    "team": "bot → team",
    "requester": "bot → you",
    "handoff": "handoff channel",
    "approvers": "approvers",
}


def _printable(text: str) -> str:
    """Control characters from user text must not move the cursor or recolour the terminal."""
    return "".join(ch if ch.isprintable() or ch in "\n\t" else "\ufffd" for ch in text)


def render_card(card: Card, first_button: int = 1) -> list[str]:
    lines = [f"  ┌ {card.title}" + (f"  [{card.status}]" if card.status else "")]
    lines += [f"  │ {line}" for line in card.text.splitlines() if line.strip()]
    lines += [f"  │ {field.label}: {field.value}" for field in card.fields]
    lines += [f"  │   {line}" for line in card.lines]
    for offset, button in enumerate(card.buttons):
        lines.append(f"  │ [{first_button + offset}] {button.label}")
    lines.append("  └")
    return [_printable(line) for line in lines]


def render_reply(reply: Reply, first_button: int = 1) -> list[str]:
    label = AUDIENCE_LABEL.get(reply.audience, reply.audience)
    prefix = "(updated) " if reply.replaces else ""
    lines = [_printable(f"{label}> {prefix}{reply.text}")]
    if reply.card is not None:
        lines += render_card(reply.card, first_button)
    return lines


def buttons_of(reply: Reply) -> tuple[Button, ...]:
    return reply.card.buttons if reply.card is not None else ()
