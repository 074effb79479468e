"""What `salesbot chat` prints, as values: one `Output` per message, and its JSON line.

The text transcript (`render.py`) and `salesbot chat --json` show the same outputs: one
head line (plus its card) in text is one JSON object in JSON Lines. The JSON shape, schema
version 1 (a field is only ever added under a new version):

    {"schema_version": 1,
     "conversation": "chat-…",            the conversation the output belongs to
     "audience": "conversation" | "team" | "requester" | "handoff" | "approvers" | "escalation",
     "author": "bot" | "rep" | "manager" | "chat",
     "text": "…",                         as the audience reads it (plain text, never markup)
     "replaces": "Q-…" | null,            the card this output updates in place
     "card": null | {"kind", "title", "status", "text", "ref",
                     "fields": [{"label", "value"}], "lines": ["…"],
                     "buttons": [{"number", "label", "action", "target"}]},
     "state": "greeting",                 the conversation's flow state after the input
     "ticket": null | {"id", "kind", "status", "reason", "claimed_by"}}

`author` "chat" marks the terminal's own notices (the banner, `/as`, `/help`, a line it
could not send): like the bot's private notices, their audience is "requester".
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from domain.cards import Audience, Card, Reply
from domain.model import Frozen
from domain.state import ConversationState, TicketRecord

TRANSCRIPT_SCHEMA_VERSION = 1

Author = Literal["bot", "rep", "manager", "chat"]
"""Who wrote an output: the bot, the local rep or manager speaking in the conversation, or
the terminal session itself."""

AUDIENCE_LABEL: dict[Audience, str] = {
    "conversation": "bot",
    "team": "bot → team",
    "requester": "bot → you",
    "handoff": "handoff channel",
    "approvers": "approvers",
    "escalation": "escalation",
}
"""The head-line label of what the bot (or the terminal) says, by who sees it."""


class Output(Frozen):
    """One thing shown at the terminal: a reply the outbox delivered, a person's line in
    the conversation, or a notice of the terminal's own."""

    audience: Audience
    author: Author = "bot"
    text: str
    card: Card | None = None
    replaces: str | None = None


def from_reply(reply: Reply) -> Output:
    return Output(
        audience=reply.audience, text=reply.text, card=reply.card, replaces=reply.replaces
    )


def notice(text: str, card: Card | None = None) -> Output:
    """A private notice from the terminal session to the person typing."""
    return Output(audience="requester", author="chat", text=text, card=card)


def label_of(output: Output) -> str:
    """A person's words in the conversation are labelled with who said them (`rep`,
    `manager`); everything else with the bot's label for its audience."""
    if output.audience == "conversation" and output.author in ("rep", "manager"):
        return output.author
    return AUDIENCE_LABEL[output.audience]


def card_json(card: Card | None) -> dict[str, Any] | None:
    if card is None:
        return None
    return {
        "kind": card.kind,
        "title": card.title,
        "status": card.status,
        "text": card.text,
        "ref": card.ref,
        "fields": [{"label": field.label, "value": field.value} for field in card.fields],
        "lines": list(card.lines),
        "buttons": [
            {
                "number": number,
                "label": button.label,
                "action": button.action,
                "target": button.target,
            }
            for number, button in enumerate(card.buttons, start=1)
        ],
        # The card's text box, if it has one: `/click N <note>` sends the note with button N.
        "input": None
        if card.input is None
        else {"label": card.input.label, "placeholder": card.input.placeholder},
    }


def current_ticket(state: ConversationState) -> TicketRecord | None:
    """The ticket the conversation waits on: its handoff ticket while a person holds it or
    should pick it up, else the latest approval still undecided."""
    handoff = state.open_handoff_ticket()
    if handoff is not None:
        return handoff
    pending = [ticket for ticket in state.tickets.values() if ticket.status != "resolved"]
    return pending[-1] if pending else None


def ticket_json(state: ConversationState) -> dict[str, Any] | None:
    ticket = current_ticket(state)
    if ticket is None:
        return None
    return {
        "id": ticket.key,
        "kind": ticket.kind,
        "status": ticket.status,
        "reason": ticket.reason,
        "claimed_by": ticket.claimed_by,
    }


# Characters a line-by-line reader may take for a line break (Python's `splitlines`, the
# JavaScript line terminators) and lone surrogates (not encodable): escaped, so one object is
# always exactly one line of valid UTF-8. JSON already escapes everything below U+0020.
_UNSAFE_IN_A_LINE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def output_json(output: Output, state: ConversationState) -> str:
    """The output as one line of JSON (no newline), with the conversation's state."""
    data = {
        "schema_version": TRANSCRIPT_SCHEMA_VERSION,
        "conversation": state.conversation_id,
        "audience": output.audience,
        "author": output.author,
        "text": output.text,
        "replaces": output.replaces,
        "card": card_json(output.card),
        "state": state.flow_state,
        "ticket": ticket_json(state),
    }
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return _UNSAFE_IN_A_LINE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
