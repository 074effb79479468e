"""Dialog by intent: a prospect who leaves gets a polite close, a buyer gets the proposal.

Under a policy with `[dialog]` (`domain.dialog_config`), each prospect message adds three
signals to the flow's guards (`dialog_signals`), and the flow table, which `salesbot check`
verifies like any other, puts them in this order in every bot state:

1. a request for a person or another needs-a-human reason: a person (`is_sensitive`);
2. the prospect is leaving (`is_leaving`): chose another vendor, not interested, not a
   buyer (a student, a school project), or goodbye — a polite close, never the next sales
   question. A buying signal or a meeting request in the same message outranks every reason
   but a chosen competitor ("send me the quote, thanks bye" is a buyer);
3. a buying signal, or the lead qualified with this very message (`is_buying`): the
   proposal, never an objection reply (the CFO with an approved budget who asks for a
   discount is a buyer);
4. an objection (`is_objection`): the objection reply, said once in a row
   (`move_on_after_objection`);
5. the rest as before (qualified → proposal, the turn limit → a person, else the question).

A meeting request is answered with the booking link after the step (`domain.meetings`), and
a question with a knowledge answer (`domain.questions`).

A close records `prospect_left` with the reason and the competitor (named as `[competitors]`
records it) and, unless the deal is alive, `conversation_closed` with outcome `lost` — which
is what the metrics count as lost — and tells the team through `[team_posts]` ("lost"). A
goodbye is not a lost deal while a meeting was requested, a quote is open or the lead is
qualified: the bot says goodbye, the deal stays open, and a qualified lead who stays quiet
still reaches a person (the flow's idle rule). After a won deal the conversation is closed
for good: a goodbye there reaches the colleague who closed it, as every later message does.

The conversation then waits in the state the close moved it to (`farewell` in the default
flow). A message that gives the bot something to work on again — a qualification signal, an
amount, a date or a head count, a buying signal, a meeting request (`is_engaged`), an
objection, a person's matter — moves the
flow on and reopens it (`conversation_reopened`: the metrics count it open again); anything
else ("thanks!", a question) is answered where it stands, without sales questions.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Final, Literal

from domain.decision import Recorder
from domain.dialog_config import CLOSE_REASONS, CloseReason, DialogConfig, competitor_named
from domain.events import ConversationClosed, ConversationReopened, ProspectLeft
from domain.flow import Transition
from domain.inbound import Actor
from domain.meetings import post_lost
from domain.model import Frozen
from domain.state import ConversationState

LEAVING_GUARD: Final = "is_leaving"
BUYING_GUARD: Final = "is_buying"
ENGAGED_GUARD: Final = "is_engaged"
BUYING_INTENT: Final = "buying_signal"
MEETING_INTENT: Final = "meeting_request"
ENGAGING_INTENTS: Final = (BUYING_INTENT, MEETING_INTENT)
"""Intents that bring a prospect who left back into the conversation (with any signal)."""
STATED_FACTS: Final = ("budget", "date", "team_size")
"""Facts a message may state that bring a prospect who left back too (an amount, a date, a
head count: the reading's entities, as `domain.reply_plan.echoes_from` names them)."""

CLOSE_PREFIX: Final = "close."
KEPT_OPEN_TEMPLATE: Final = "close.goodbye_open"
"""The goodbye said while the deal is alive (not lost)."""
AGAIN_TEMPLATE: Final = "close.again"
"""What the bot says to a message after the close that does not reopen it (the persona's
action for the close state)."""
CLOSE_TEMPLATES: Final = (
    *(f"{CLOSE_PREFIX}{reason}" for reason in CLOSE_REASONS),
    KEPT_OPEN_TEMPLATE,
    AGAIN_TEMPLATE,
)
"""Every template this module says; `salesbot check` knows no other `close.*` name."""

KeptOpen = Literal["meeting_requested", "open_quote", "qualified"]
OPEN_QUOTE_STATUSES: Final = ("issued", "needs_approval", "approval_requested")


class Leaving(Frozen):
    """Why the prospect is leaving, and the reader's words that said so (`not_a_buyer`, or
    the words `heard` asked for)."""

    reason: CloseReason
    words: tuple[str, ...] = ()


class DialogSignals(Frozen):
    """What one message means for the `[dialog]` guards (see `GuardContext`)."""

    buying: bool = False
    leaving: Leaving | None = None
    engaged: bool = False


def leaving_reason(
    config: DialogConfig,
    intents: Collection[str],
    evidence: Mapping[str, Collection[str]],
) -> Leaving | None:
    """The strongest reason in `close_on` the message gives, if any. `not_a_buyer` counts the
    reader's evidence only where it was not negated (its `…:not` features are skipped); an
    intent listed in `heard` counts only with a word of one of its features."""
    words = not_a_buyer_words(config, evidence)
    for reason in CLOSE_REASONS:
        if reason not in config.close_on:
            continue
        if reason == "not_a_buyer":
            if words:
                return Leaving(reason=reason, words=words)
            continue
        if reason not in intents:
            continue
        features = config.heard.get(reason)
        heard = tuple(word for feature in features or () for word in evidence.get(feature, ()))
        if features is None or heard:
            return Leaving(reason=reason, words=heard)
    return None


def not_a_buyer_words(
    config: DialogConfig, evidence: Mapping[str, Collection[str]]
) -> tuple[str, ...]:
    """The reader's words (in the order heard) that the policy lists as `not_a_buyer`."""
    wanted = {word.casefold() for word in config.not_a_buyer}
    found: list[str] = []
    for feature, terms in evidence.items():
        if feature.endswith(":not"):
            continue
        for term in terms:
            if term.casefold() in wanted and term not in found:
                found.append(term)
    return tuple(found)


def dialog_signals(
    config: DialogConfig | None,
    *,
    intents: Collection[str],
    evidence: Mapping[str, Collection[str]],
    signals: Collection[str],
    stated: Collection[str] = (),
    newly_qualified: bool,
) -> DialogSignals:
    """The `[dialog]` guards' signals for one message (none without `[dialog]`). `signals`
    are the qualification signals the message states, `stated` the facts it gives that the
    bot asks about (`budget`, `date`, `team_size`: "we're 20 people")."""
    if config is None:
        return DialogSignals()
    buying = BUYING_INTENT in intents or newly_qualified
    leaving = leaving_reason(config, intents, evidence)
    if (
        leaving is not None
        and leaving.reason != "chose_competitor"
        and (buying or MEETING_INTENT in intents)
    ):
        leaving = None  # "send me the quote, thanks bye" is a buyer saying goodbye
    engaged = (
        bool(signals)
        or any(fact in STATED_FACTS for fact in stated)
        or any(intent in intents for intent in ENGAGING_INTENTS)
    )
    return DialogSignals(buying=buying, leaving=leaving, engaged=engaged)


def live_deal(state: ConversationState) -> KeptOpen | None:
    """Why a goodbye is not a lost deal: a meeting was requested, a quote is open, or the
    lead is qualified; None when nothing is alive."""
    if state.meetings_requested:
        return "meeting_requested"
    if any(record.status in OPEN_QUOTE_STATUSES for record in state.quotes.values()):
        return "open_quote"
    if state.qualified:
        return "qualified"
    return None


def record_leaving(
    rec: Recorder, actor: Actor, leaving: Leaving, text: str, entities: Mapping[str, object]
) -> ProspectLeft:
    """Record that the prospect left, and why; a lost deal is closed as lost (once)."""
    read = entities.get("competitor")
    competitor_read = read if isinstance(read, str) and read.strip() else None
    competitor = competitor_named(rec.policy.competitors, competitor_read, text)
    kept_open = live_deal(rec.state) if leaving.reason == "goodbye" else None
    left = ProspectLeft(
        reason=leaving.reason,
        lost=kept_open is None,
        state=rec.state.flow_state,
        competitor=competitor,
        competitor_read=competitor_read,
        words=leaving.words,
        kept_open=kept_open,
    )
    rec.record(left)
    if left.lost and rec.state.outcome != "lost":
        rec.record(ConversationClosed(outcome="lost", by=actor.id))
    return left


def say_goodbye(rec: Recorder, left: ProspectLeft, values: Mapping[str, str]) -> None:
    """The polite close in the prospect's language; the team hears of a lost deal."""
    template = f"{CLOSE_PREFIX}{left.reason}" if left.lost else KEPT_OPEN_TEMPLATE
    echoes = {"competitor": left.competitor} if left.competitor else None
    rec.say(template, values, echoes=echoes)
    if left.lost:
        post_lost(rec, left.reason, left.competitor)


def reopen_if_back(rec: Recorder, before: str, taken: Transition | None) -> None:
    """Record `conversation_reopened` when a message from a prospect who left (the flow was
    in `before`) has the conversation out of the state the close left it in, other than by
    leaving again."""
    state = rec.state
    if state.left_reason is None or (taken is not None and taken.guard == LEAVING_GUARD):
        return
    if state.flow_state == state.left_state:
        return
    rec.record(
        ConversationReopened(
            reason=state.left_reason,
            was_lost=state.outcome == "lost",
            from_state=before,
            to_state=state.flow_state,
        )
    )
