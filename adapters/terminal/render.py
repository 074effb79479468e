"""Terminal outputs as plain text: the transcript grammar of `salesbot chat`.

Every line printed is one of two kinds, so a reader (or a test, or `grep`) can tell who
sees it from its first characters:

- a head line `<label>> <text>`. The label names who says it and where:
  `bot> ` the bot in the prospect's conversation, `rep> ` / `manager> ` the local rep or
  manager speaking there (the prospect sees both); `bot → team> ` the team's view of the
  conversation (a lead's thread), `handoff channel> `, `approvers> `; `bot → you> ` a
  private notice only the person at the terminal sees. A text that runs over several lines
  repeats its label on each, so no line's audience is ever in doubt.
- a card line, indented two spaces, under the head line it belongs to: `  ┌ title`,
  `  │ …` for the card's text, fields and arithmetic, `  │ ✎ label …` for its text box (a
  note: `/click N your words` sends it with button N), `  │ [N] label` for its buttons
  (`/click N` presses one), and `  └` to close it.

Nothing else is printed: no blank lines, no bare acknowledgements.
"""

from __future__ import annotations

from adapters.terminal.transcript import Output, label_of
from domain.cards import Card


def _printable(text: str) -> str:
    """Control characters from user text must not move the cursor or recolour the terminal."""
    return "".join(ch if ch.isprintable() or ch in "\n\t" else "\ufffd" for ch in text)


def _split(text: str) -> list[str]:
    """The lines of `text` after neutralising it (only `\\n` survives as a line break)."""
    return _printable(text).split("\n")


def render_card(card: Card) -> list[str]:
    """The card as two-space-indented lines; buttons numbered from 1, as `/click` counts."""
    status = f"  [{card.status}]" if card.status else ""
    title, *rest = _split(card.title + status)
    lines = [f"  ┌ {title}", *(f"  │ {line}" for line in rest)]
    lines += [f"  │ {line}" for line in _split(card.text) if line.strip()]
    for field in card.fields:
        lines += [f"  │ {line}" for line in _split(f"{field.label}: {field.value}")]
    for entry in card.lines:
        lines += [f"  │   {line}" for line in _split(entry)]
    if card.input is not None:
        box = f"✎ {card.input.label} — type it after the number: /click N your words"
        lines += [f"  │ {line}" for line in _split(box)]
    for number, button in enumerate(card.buttons, start=1):
        lines += [f"  │ {line}" for line in _split(f"[{number}] {button.label}")]
    lines.append("  └")
    return [line.rstrip() for line in lines]


def render_output(output: Output) -> list[str]:
    """One output as transcript lines: its head line(s), then its card."""
    label = label_of(output)
    updated = "(updated) " if output.replaces else ""
    lines = [f"{label}> {line}" for line in _split(updated + output.text)]
    if output.card is not None:
        lines += render_card(output.card)
    return lines
