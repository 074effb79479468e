"""What arrives from outside, in platform-neutral form.

Adapters turn a chat platform's event or activity, a playground post or a lead-feed request
into exactly one of these. Each carries the delivery id the runtime dedupes on and the
actor with the role the domain decides by. Inbounds are stored verbatim so any
conversation can be replayed through `decide`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from domain.business_hours import HoursFact
from domain.crm import CrmArtifact
from domain.model import Frozen, Sparse

INBOUND_SCHEMA_VERSION = 1

Role = Literal["prospect", "rep", "system"]

ActionId = Literal[
    "accept_quote",
    "request_approval",
    "approve_quote",
    "reject_quote",
    "escalate",
    "claim_ticket",
    "resolve_ticket",
    "return_to_bot",
    "mark_lost",
    "open_quote_form",
    "mark_won",
    "reply_to_prospect",
]


class Actor(Sparse):
    """Who acted, and what they may do: approver, auditor and manager rights come from
    configuration."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("manager", "admin", "installation")

    id: str = Field(min_length=1)
    name: str = ""
    role: Role
    approver: bool = False
    auditor: bool = False
    sole_approver: bool = False
    """Configured as the *only* approver: with four eyes, their own discount requests
    go to the handoff channel for a manager, since no other approver can take them."""
    manager: bool = False
    """Configured as a manager (`SALESBOT_MANAGERS`): may claim a routed ticket while it is
    its owner's alone (`[routing] owner_exclusive_ms`)."""
    admin: bool = False
    """Configured as an admin (`SALESBOT_ADMINS`): may set where this installation's handoff
    and leads cards go (`setup handoff #channel`)."""
    installation: str = Field("", max_length=300)
    """The installation the actor acted through: the workspace or tenant whose bot received
    what they did, as its adapter names it (its prefix and the workspace's or tenant's
    id). "" is the
    first installation — the one configured from the environment, and the playground, the
    terminal and the lead feed — which is everything stored before installations were
    told apart. A conversation belongs to the installation it was started through
    (`ConversationStarted.installation`), and an actor sees the audits and metrics of
    their own installation's conversations only (`domain.installations`)."""

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def may_approve(self) -> bool:
        """Configured as an approver *and* one of ours: a guest or another organisation's
        user named in the configuration (a stale id, a typo) gets no rights."""
        return self.approver and self.role == "rep"

    @property
    def may_audit(self) -> bool:
        """As `may_approve`, for audits (they show credit-based penalties)."""
        return self.auditor and self.role == "rep"

    @property
    def may_manage(self) -> bool:
        """As `may_approve`, for a manager's rights."""
        return self.manager and self.role == "rep"

    @property
    def may_admin(self) -> bool:
        """As `may_approve`, for an admin's rights."""
        return self.admin and self.role == "rep"


SYSTEM = Actor(id="salesbot", name="salesbot", role="system")


class LeadDetails(Sparse):
    """A lead as a web form, CRM or mail relay submits it. `territory` and `segment` are
    the sender's own labels, read only by the policy's `[routing]` rules.

    `reply_in` names the system a lead was created in when salesbot has no way back to the
    prospect (a CRM's webhook: "HubSpot", "Salesforce"): there is no chat with them, so the
    bot scores the lead and posts it for a rep, never speaks to the prospect, and the rep
    replies there. Empty (every lead before it existed): the prospect is answered as
    before."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("territory", "segment", "reply_in")

    name: str = Field(min_length=1, max_length=200)
    company: str = Field("", max_length=200)
    email: str = Field("", max_length=320)
    message: str = Field(min_length=1, max_length=20_000)
    source: str = Field("", max_length=100)
    external_id: str | None = Field(None, max_length=200)
    company_size: int | None = Field(None, ge=0)
    credit_score: int | None = Field(None, ge=0, le=1000)
    reply_url: str | None = Field(None, max_length=2000)
    """Where the prospect hears back (a web-chat widget, an email relay, a CRM)."""
    territory: str = Field("", max_length=100)
    segment: str = Field("", max_length=100)
    reply_in: str = Field("", max_length=100)

    @property
    def reachable(self) -> bool:
        """Whether the bot may speak to the prospect at all (see `reply_in`)."""
        return not self.reply_in

    def scoring_metadata(self) -> dict[str, str | int | Decimal]:
        """Metadata the scorer may use; the credit score is deliberately absent."""
        data: dict[str, str | int | Decimal] = {}
        if self.company_size is not None:
            data["company_size"] = self.company_size
        if self.source:
            data["source"] = self.source.lower()
        return data


class _InboundBase(Frozen):
    schema_version: int = INBOUND_SCHEMA_VERSION
    delivery_id: str = Field(min_length=1)
    conversation_id: str = Field(min_length=1)
    actor: Actor


class LeadArrived(_InboundBase):
    kind: Literal["lead"] = "lead"
    lead: LeadDetails


MAX_MESSAGE_CHARS = 40_000
"""The longest message text the domain keeps."""
CUT_MARKER = f" … [cut: the message was longer than {MAX_MESSAGE_CHARS:,} characters]"


def fit_message(text: str) -> str:
    """`text` as a message may hold it: a longer one is cut with a visible marker, so it is
    still answered and the record shows what was cut, on every platform alike."""
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return text[: MAX_MESSAGE_CHARS - len(CUT_MARKER)] + CUT_MARKER


class MessagePosted(_InboundBase):
    """A chat message. `addressed` is False for a rep's message in a shared thread that does
    not speak to the bot (no mention): it is recorded in a conversation the bot already runs
    (a rep answering a prospect during a handoff) and otherwise ignored."""

    kind: Literal["message"] = "message"
    text: str = Field(max_length=MAX_MESSAGE_CHARS)
    addressed: bool = True


class ChannelRef(Frozen):
    """A channel someone named in a command (`setup handoff #deals`), as their platform
    identifies it: `id` is the platform's own id of it, `name` how people read it."""

    id: str = Field(min_length=1, max_length=200)
    name: str = Field("", max_length=200)


class UserRef(Frozen):
    """A person (or a group of people) someone named in a command (`setup approvers @ann`),
    as their platform identifies them: `id` is the platform's own id (the one the role lists
    hold), `name` how people read it."""

    id: str = Field(min_length=1, max_length=200)
    name: str = Field("", max_length=200)


MAX_NAMED_USERS = 50
"""The most people one command may name (`setup approvers @a @b …`)."""


class CommandInvoked(_InboundBase, Sparse):
    """A slash command, or a text command typed in a thread or chat.

    `installation` names the installation the command was run in, as its adapter states it
    (its prefix and the workspace or tenant id); `channel` the channel the command's text names, which
    the adapter read from the platform's own mention syntax; `users` the people it names
    (mentions, in order, each once). All are set only for commands that need them
    (`setup`), so every other command is stored as before."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("installation", "channel", "users")
    kind: Literal["command"] = "command"
    command: str
    args: str = ""
    installation: str = Field("", max_length=300)
    channel: ChannelRef | None = None
    users: tuple[UserRef, ...] = Field((), max_length=MAX_NAMED_USERS)


ClickBinding = Literal[
    "ok", "unsigned", "bad_signature", "wrong_conversation", "wrong_workspace", "wrong_tenant"
]
"""How a click relates to the card it came from, as its adapter checked the card's
signature (`adapters/action_binding.py`):
- "ok": signed by us for this installation, conversation and card — acted on;
- "unsigned": a card posted before buttons were signed — refused, the card posted again;
- anything else: forged or replayed elsewhere — refused and recorded. Such a click is
  recorded in the conversation where it was made, never in the one it claims."""


NOTE_MAX_CHARS = 500


class ButtonClicked(_InboundBase):
    """A card button; `target` names the quote or ticket it acts on. `note` is what the
    clicker typed in the card's text box (`domain.cards.CardInput`), if it has one."""

    kind: Literal["action"] = "action"
    action: ActionId
    target: str = ""
    binding: ClickBinding = "ok"
    note: str = Field("", max_length=NOTE_MAX_CHARS)


class TimerElapsed(_InboundBase, Sparse):
    """The runtime's sweeper asking whether a conversation's timers decide something now: an
    idle conversation abandoned, a silent rep's hold ended, an unclaimed ticket's SLA ladder.

    `hours` is the runtime's fact about the policy's `[handoff.business_hours]` at the
    instant the timer is decided (`domain.business_hours`): recorded with the timer, so a
    replay decides with it and needs no zone database. None without business hours."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("hours",)
    kind: Literal["timer"] = "timer"
    timer: Literal["idle_check"] = "idle_check"
    hours: HoursFact | None = None


class DeliveryFailed(_InboundBase):
    """The outbox gave up on a message (a permanent error such as an unknown channel).

    `was_alert` marks the failure of an alert itself, which must not raise another alert.
    """

    kind: Literal["delivery_failed"] = "delivery_failed"
    outbox_key: str
    channel: str
    reason: str
    was_alert: bool = False


class CrmBackfillRequested(_InboundBase):
    """An operator asked the CRM to be brought up to what this conversation has reached
    (`salesbot crm backfill`): the domain records the writes the policy's `[crm]` calls for
    that the CRM was never asked for (`domain.crm.backfill`); none without `[crm]`."""

    kind: Literal["crm_backfill"] = "crm_backfill"


class CrmWriteSettled(_InboundBase):
    """The CRM sender finished one write of the conversation's: written, or refused for good
    (dead-lettered). The runtime's facts, recorded as they came, so replay reproduces the
    `crm_sync_settled` event and the alert. `reason`: the CRM's words, e-mail addresses
    redacted by the adapter."""

    kind: Literal["crm_write_settled"] = "crm_write_settled"
    outbox_key: str
    request_seq: int
    artifact: CrmArtifact
    external_id: str
    outcome: Literal["sent", "dead_lettered"]
    remote_id: str | None = None
    adapter: str
    adapter_version: int
    library: str | None = None
    reason: str | None = None


Inbound = Annotated[
    LeadArrived
    | MessagePosted
    | CommandInvoked
    | ButtonClicked
    | TimerElapsed
    | DeliveryFailed
    | CrmBackfillRequested
    | CrmWriteSettled,
    Field(discriminator="kind"),
]
