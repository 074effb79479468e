"""Meetings and team posts: a demo request gets a booking link, and the team hears what matters.

`[meetings]` lists booking links: one per owner (used once a conversation has an owner — the
handoff desk's routing gives it one), else one of `links` chosen by a hash of the conversation
id, so every reply in a conversation (and its replay) offers the same link. The link is a
declared fact: the `meeting.booking` template states it through `{link}` and must declare the
policy's `claim` (which the persona must allow), so the claims guard lets it through.

`[team_posts]` names what the team is told in the lead's thread: a hot lead, a meeting
request, a won deal, a lost one. Each kind is posted at most once per conversation, as a
`TeamNotified` event, so a replay posts nothing twice. A policy without these tables behaves
exactly as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal

from domain.cards import Reply
from domain.decision import Recorder
from domain.events import MeetingRequested, TeamNotified, TeamPostKind
from domain.handoff_config import lost_words
from domain.meetings_config import booking_link
from domain.reply_plan import echoes_from
from domain.routing import owner_person

MEETING_INTENT: Final = "meeting_request"
LOST_INTENTS: Final = ("chose_competitor", "not_interested")
"""Reading intents that mean the prospect is gone, strongest reason first."""
BOOKING_TEMPLATE: Final = "meeting.booking"
"""The template that offers the link; `{link}` is the link, `{date}` echoes the prospect."""


def conversation_owner(rec: Recorder) -> str | None:
    """The conversation's owner (`[routing]`, `domain.routing`): the booking link and the
    team post's mention follow it. None in a conversation nobody owns."""
    return rec.state.owner


def post_to_team(
    rec: Recorder,
    kind: TeamPostKind,
    text: str,
    *,
    reason: str | None = None,
    competitor: str | None = None,
    priority: Literal["now"] | None = None,
) -> bool:
    """Tell the team in the lead's thread, once per kind and conversation, if the policy
    asks for this kind and the conversation is a lead's. True when posted."""
    config = rec.policy.team_posts
    if config is None or kind not in config.on or kind in rec.state.team_notified:
        return False
    if rec.state.lead is None:
        # Only a lead has a thread in the leads channel. A direct conversation happens where
        # the team already reads it (a shared channel, the playground); a leads channel every
        # platform can address without one is a later step.
        return False
    owner = conversation_owner(rec)
    rec.record(
        TeamNotified(
            kind=kind,
            text=text,
            reason=reason,
            competitor=competitor,
            mention=owner,
            priority=priority,
        )
    )
    # A lead to pursue now pages the on-call group (`[handoff.on_call]`) with the post.
    rec.reply(
        Reply(
            audience="team",
            text=text,
            mention="on_call" if priority == "now" else None,
            notify=owner_person(rec.state),
        )
    )
    return True


def _who(rec: Recorder) -> str:
    """Who the post is about, as the lead's thread names them."""
    lead = rec.state.lead
    if lead is not None and lead.name.strip():
        company = f" ({lead.company})" if lead.company else ""
        return f"{lead.name.strip()}{company}"
    return "The prospect"


_TIME_OF_DAY = re.compile(
    r"(?:,?\s+(?:in the |on |at |around )?(?:early |late )?"
    r"(?:morning|afternoon|evening|noon|lunchtime|after lunch|"
    r"\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.|h\d{0,2}|uhr)?|"
    r"(?:por|en|a) la (?:tarde|mañana|noche)|a las \d{1,2}(?::\d{2})?|"
    r"(?:dans l'|en |l')?(?:après-midi|matin|soir(?:ée)?)|à \d{1,2}\s*h(?:\d{2})?|"
    r"(?:am )?(?:nachmittag|vormittag|morgen|abend|mittag)|um \d{1,2}(?::\d{2})?(?: uhr)?))+",
    re.IGNORECASE,
)
"""A part of the day or a clock time right after a date ("Thursday afternoon", "jueves por
la tarde", "jeudi après-midi", "Dienstag um 15 Uhr"): the reader's dates stop at the day."""

_GERMAN_DAY = re.compile(
    r"\b(?:montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag)"
    r"(?:nachmittag|vormittag|morgen|abend|mittag)?\b",
    re.IGNORECASE,
)
"""German writes a weekday and a part of the day as one word ("Donnerstagnachmittag")."""


def stated_when(text: str, entities: Mapping[str, object]) -> str | None:
    """The day or time the prospect named, in their own words: the reading's first date as
    written, with the part of the day or clock time that follows it in the message."""
    when = echoes_from(entities).get("date")
    if when is None:
        found = _GERMAN_DAY.search(text)
        return found.group(0) if found else None
    start = text.lower().find(when.lower())
    if start < 0:
        return when
    end = start + len(when)
    following = _TIME_OF_DAY.match(text, end)
    if following is not None and following.group(0).strip(" ,"):
        end = following.end()
    return " ".join(text[start:end].split())


def on_meeting_request(
    rec: Recorder,
    text: str,
    intents: tuple[str, ...],
    entities: Mapping[str, object],
    values: Mapping[str, str],
) -> bool:
    """A meeting or demo request under a policy with `[meetings]`: offer the booking link
    (echoing the day or time they named), record it, tell the team. False when this message
    is not one, or the policy has no meetings or no `meeting.booking` template."""
    config = rec.policy.meetings
    if (
        config is None
        or MEETING_INTENT not in intents
        or BOOKING_TEMPLATE not in rec.policy.active_persona.templates
    ):
        return False
    link, chosen_by = booking_link(config, rec.state.conversation_id, conversation_owner(rec))
    when = stated_when(text, entities)
    rec.record(MeetingRequested(link=link, chosen_by=chosen_by, when=when))
    rec.say(
        BOOKING_TEMPLATE,
        {**values, "link": link},
        echoes={"date": when} if when else None,
    )
    asked = f" for {when}" if when else ""
    post_to_team(
        rec,
        "meeting",
        f"Meeting requested: {_who(rec)} asked to meet{asked}. Booking link sent: {link}",
    )
    return True


def on_hot_lead(rec: Recorder) -> None:
    """The lead just became qualified (hot): the team hears it once, not on every message.
    A lead pursued now (`[pursuit]`) is announced as a priority; the words never say why a
    lead is not (the credit score behind a fairness penalty is for auditors)."""
    if not rec.state.qualified:
        return
    if rec.state.pursue_now:
        post_to_team(
            rec, "hot_lead", f"Hot lead, pursue now: {_who(rec)} is qualified.", priority="now"
        )
    else:
        post_to_team(rec, "hot_lead", f"Hot lead: {_who(rec)} is qualified.")


def on_lost_intent(rec: Recorder, intents: tuple[str, ...], entities: Mapping[str, object]) -> None:
    """The prospect said they are not interested or chose another vendor: the team hears it
    once, with the reason and the competitor they named."""
    reason = next((intent for intent in LOST_INTENTS if intent in intents), None)
    if reason is None:
        return
    competitor = echoes_from(entities).get("competitor")
    post_lost(rec, reason, competitor)


LOST_WORDS: Final = {
    "chose_competitor": "chose another vendor",
    "not_interested": "is not interested",
    "not_a_buyer": "is not a buyer (a student or a school project)",
    "goodbye": "said goodbye before any next step",
    "marked_lost": "was marked lost",
}


def post_lost(rec: Recorder, reason: str, competitor: str | None = None) -> None:
    words = LOST_WORDS.get(reason) or lost_words(reason)
    named = f" ({competitor})" if competitor else ""
    post_to_team(
        rec, "lost", f"Lost: {_who(rec)} {words}{named}.", reason=reason, competitor=competitor
    )


def post_won(rec: Recorder, quote_label: str, on_behalf_by: str | None = None) -> None:
    """The prospect accepted a quote (or `on_behalf_by` a rep did it for them, where the
    policy allows it: `[quotes] accept_on_behalf`)."""
    if on_behalf_by is not None:
        post_to_team(
            rec,
            "won",
            f"Won: {on_behalf_by} accepted quote {quote_label} on behalf of {_who(rec)}.",
        )
        return
    post_to_team(rec, "won", f"Won: {_who(rec)} accepted quote {quote_label}.")


def post_marked_won(rec: Recorder, by: str) -> None:
    """A deal a rep resolved as won (the handoff desk's *Resolve → Won*)."""
    post_to_team(rec, "won", f"Won: {_who(rec)}, marked won by {by}.")
