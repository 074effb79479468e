"""A lead's thread is the team's room (`[handoff] lead_room`); the prospect hears only what
is meant for them.

A lead from the feed (a web form, a CRM) has no conversation the prospect reads with the
team: the prospect writes through the feed and reads at the lead's reply URL, while the team
works the lead in its thread (the leads channel, the playground's lead thread). So:

- **The prospect's words reach the room.** Each message after the first (which the lead card
  shows) is posted to the lead's thread, quoted as theirs — the words are data, each
  platform escapes them for its markup (`prospect_message_shown`).
- **The room's words stay there** unless a rep marks them for the prospect: the lead card's
  *Reply to prospect* (its text box), `@salesbot say …` or a line starting with `>`. Marked
  words are sent to the prospect through the lead's reply URL, signed and idempotent like the
  bot's replies, as a card naming the rep (`rep_replied_to_prospect`), and the rep takes the
  conversation over as writing in a shared thread does (`domain.handoff.take_over_by_reply`).

Without the key nothing here happens: the prospect's later messages reach the team only
through a ticket card, and a rep's words in the thread are recorded and go no further.
"""

from __future__ import annotations

from typing import Final

from domain.cards import Card, Reply
from domain.decision import Recorder
from domain.events import ProspectMessageShown, ReplyMark, RepRepliedToProspect
from domain.inbound import Actor
from domain.presenters import no_chat_words

QUOTE_MARK: Final = ">"
SAY_WORD: Final = "say"
NOTHING_TO_SEND: Final = (
    "Nothing was sent: write what the prospect should read after it "
    "(`> your words`, `@salesbot say your words`, or in the lead card's text box)."
)


def in_lead_room(rec: Recorder) -> bool:
    """A lead's conversation under `[handoff] lead_room`."""
    config = rec.policy.handoff
    return config is not None and config.lead_room and rec.state.origin == "lead"


def show_prospect_words(rec: Recorder, actor: Actor, text: str) -> None:
    """The prospect's message (recorded already) posted to the lead's thread as theirs."""
    if not in_lead_room(rec):
        return
    rec.record(ProspectMessageShown())
    rec.reply(Reply(audience="team", text=f"{actor.label} wrote: “{text}”"))


def marked_for_prospect(text: str, *, addressed: bool) -> tuple[str, ReplyMark] | None:
    """The words a rep marked for the prospect, and how: a line starting with `>` (a chat's
    quote), or `say …` addressed to the bot (`@salesbot say …`); None for the room's words.
    The words may be empty (the rep marked nothing)."""
    stripped = text.strip()
    if stripped.startswith(QUOTE_MARK):
        return stripped[len(QUOTE_MARK) :].strip(), "quote_mark"
    head, _, rest = stripped.partition(" ")
    if addressed and head.casefold() == SAY_WORD:
        return rest.strip(), "say"
    return None


def send_to_prospect(rec: Recorder, actor: Actor, words: str, via: ReplyMark) -> bool:
    """Send `words` to the lead's prospect as `actor`'s; False (the rep told why) when there
    is nothing to send."""
    lead = rec.state.lead
    if lead is not None and not lead.reachable:
        rec.tell(actor, f"Nothing was sent: {no_chat_words(lead.reply_in)}.")
        return False
    words = words.strip()
    if not words:
        rec.tell(actor, NOTHING_TO_SEND)
        return False
    name = actor.label
    rec.record(RepRepliedToProspect(actor_id=actor.id, name=name, text=words, via=via))
    card = Card(kind="notice", title=f"{name}, from the sales team", text=words)
    rec.reply(Reply(audience="conversation", text=words, card=card))
    return True
