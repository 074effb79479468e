"""The policy's `[handoff]` table: how people take a conversation over and hand it back
(`domain.handoff` acts on it).

Kept apart from `domain.handoff` because the policy holds this table and the recorder (which
`domain.handoff` needs) holds the policy, as `domain.dialog_config` is for the dialog.

- `takeover_by_presence`: in a conversation the prospect shares (a shared channel's thread or
  a chat with a guest, the playground, `salesbot chat`), a rep who writes takes
  it over: the bot goes silent towards the prospect, and the conversation's ticket (opened if
  there is none) is claimed by that rep. A lead-feed conversation is not shared: its lead's
  thread is the team's room, so a rep writing there takes nothing over;
- `rep_idle_handback_ms`: the bot takes the conversation back from a rep who has been silent
  this long (no rep has written in the conversation since the holder took it or claimed its
  ticket); off when unset;
- `ask_outcome`: *Resolve* asks for the outcome (won, lost with a reason, handled — back to
  the bot —, or closed) instead of resolving at once;
- `lost_reasons`: the reasons *Resolve → Lost* offers (at most `MAX_LOST_REASONS`, each a
  name from `domain.handoff_config.LOST_REASON_WORDS` or the policy's own);
- `after_outcome`: what a prospect message after a ticket's outcome does: `reopen` the ticket
  (the same holder; its card reads "prospect wrote again"), or hand the conversation to the
  `bot`. Unset, the message is recorded and nobody hears of it (the behaviour of stored
  policies from before this table);
- `ticket_card`: the ticket card shows the transcript so far and the ticket's age, and is
  refreshed in place each time the prospect writes;
- `outcome_buttons`: the lead card and the ticket card carry *Won* and *Lost* (Lost asks
  for one of `lost_reasons`, as *Resolve → Lost* does), for reps to record how the deal
  ended without resolving through the outcome picker (`domain.outcomes`). The commands
  `won` and `lost` work under any policy; only the buttons are drawn by this key.
- the SLA ladder (`domain.sla`) for a handoff ticket nobody has claimed:
  `unclaimed_reping_ms` — after this long its card is refreshed with its age, the on-call
  group is mentioned in the handoff channel, and a prospect who wrote is told once that a
  person will answer (with the business hours when outside them);
  `unclaimed_escalate_ms` — after this long (later than the re-ping) the ticket is posted to
  the escalation target. Each off when unset;
- `escalation`: the escalation target per platform, by the platform's name (a channel or
  conversation id); a platform without one posts the escalation in its handoff channel;
- `on_call`: the on-call group to mention per platform, by the platform's name (what the
  platform mentions: a user group, a tag); a platform without one mentions nobody;
- `business_hours`: when the team answers (`domain.business_hours`), told to a waiting
  prospect outside them.
- `lead_room`: a lead's thread is the team's room, and the prospect of a lead (the lead
  feed) hears only what is meant for them (`domain.lead_room`): their messages after the
  first are posted there, quoted as their words; a rep's words in the thread stay there
  unless marked for the prospect (the lead card's *Reply to prospect*, `@salesbot say …`,
  a leading `>`), which sends them through the lead's reply URL and takes the
  conversation over. Off, a prospect's later messages reach the team only through a ticket
  card, and a rep's words in the thread never reach the prospect.

A policy without the table decides exactly as before (its canonical JSON omits it).
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

from pydantic import Field, field_validator, model_validator

from domain.business_hours import BusinessHours
from domain.model import Sparse

AfterOutcome = Literal["reopen", "bot"]

MAX_LOST_REASONS: Final = 5
"""The lost reasons' card has one button per reason and *Back*: six actions, the most every
chat platform shows on one card."""

LOST_REASON_WORDS: Final = {
    # The dialog's reasons for a prospect who leaves (`domain.dialog_config.CLOSE_REASONS`).
    "chose_competitor": "chose another vendor",
    "not_interested": "is not interested",
    "not_a_buyer": "is not a buyer",
    # The objection classes a deal is commonly lost on.
    "price": "found it too expensive",
    "timing": "is not ready yet",
    "needs": "needs something we do not offer",
    "authority": "could not get sign-off",
    "no_response": "stopped answering",
    "other": "for another reason",
}
"""A lost reason in the team's words, completing "Lost: Pat Prospect …"."""


class HandoffConfig(Sparse):
    """`[handoff]` (see the module doc)."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = (
        "outcome_buttons",
        "unclaimed_reping_ms",
        "unclaimed_escalate_ms",
        "escalation",
        "on_call",
        "business_hours",
        "lead_room",
    )
    takeover_by_presence: bool = False
    rep_idle_handback_ms: int | None = Field(None, ge=60_000)
    ask_outcome: bool = False
    lost_reasons: tuple[str, ...] = ()
    after_outcome: AfterOutcome | None = None
    ticket_card: bool = False
    outcome_buttons: bool = False
    unclaimed_reping_ms: int | None = Field(None, ge=60_000)
    unclaimed_escalate_ms: int | None = Field(None, ge=60_000)
    escalation: dict[str, str] = Field(default_factory=dict)
    on_call: dict[str, str] = Field(default_factory=dict)
    business_hours: BusinessHours | None = None
    lead_room: bool = False

    @field_validator("escalation", "on_call")
    @classmethod
    def _per_platform(cls, value: dict[str, str]) -> dict[str, str]:
        for platform, where in value.items():
            if not platform or not platform.replace("_", "").isalnum() or not platform.islower():
                raise ValueError(f"{platform!r} must be a platform's lower-case name")
            if not where.strip() or where != where.strip():
                raise ValueError(f"{platform}: {where!r} must be a non-empty id")
        return value

    @model_validator(mode="after")
    def _ladder_in_order(self) -> HandoffConfig:
        reping, escalate = self.unclaimed_reping_ms, self.unclaimed_escalate_ms
        if reping is not None and escalate is not None and escalate <= reping:
            raise ValueError(
                f"unclaimed_escalate_ms ({escalate}) must be later than "
                f"unclaimed_reping_ms ({reping}): the ladder re-pings before it escalates"
            )
        return self

    @property
    def ladder(self) -> bool:
        """The SLA ladder runs: a re-ping or an escalation delay is set."""
        return self.unclaimed_reping_ms is not None or self.unclaimed_escalate_ms is not None

    @field_validator("lost_reasons")
    @classmethod
    def _reasons(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > MAX_LOST_REASONS:
            raise ValueError(
                f"at most {MAX_LOST_REASONS} lost reasons fit on a card; there are {len(value)}"
            )
        if len(set(value)) != len(value):
            raise ValueError("lost_reasons lists a reason more than once")
        for reason in value:
            if not reason or not reason.replace("_", "").isalnum() or not reason.islower():
                raise ValueError(
                    f"lost reason {reason!r} must be a lower-case name (letters, digits, _)"
                )
        return value


def lost_words(reason: str) -> str:
    """A lost reason in the team's words (its name, spaced, when the policy invented it)."""
    return LOST_REASON_WORDS.get(reason, reason.replace("_", " "))
