"""Who may do what: the roles × actions matrix, one table for every command and button.

Every platform states who acted (`Actor.role`, approver and auditor rights) and the domain
decides here, so every chat platform, the playground, the terminal and the lead feed
refuse the same things. The table is data: handlers ask `permitted`, the README shows
`matrix_markdown()` (a test keeps the two equal), and tests walk it row by row.

Capacities, from the actor:
- *prospect*: the lead side of a conversation (a lead, a user of another workspace or
  tenant, a guest);
- *rep*: a member of the installing workspace or tenant (not a guest);
- *owner*: the rep who owns the conversation (the policy's `[routing]`, `owner_assigned`);
- *manager*: a rep configured in `SALESBOT_MANAGERS`;
- *approver*, *auditor*: a rep configured in `SALESBOT_APPROVERS` / `SALESBOT_AUDITORS`
  (the rights count only for reps: a listed guest or outsider gets none);
- *admin*: a rep configured in `SALESBOT_ADMINS`: sets where the installation's handoff and
  leads cards go (`setup`), and is no approver, auditor or manager by being one.

Owner and manager rights are a rep's, plus one: while a routed ticket is fresh (`[routing]
owner_exclusive_ms`), only its owner or a manager may claim it (`Permission.while_fresh`).
A manager is no approver or auditor by being one: approving discounts and reading audits
stay configured rights of their own (four eyes stays four eyes).

A user of another workspace or tenant is a prospect wherever they speak; on top of that a
click they make on a card of this installation from their own is refused by the card's
signature (`ButtonClicked.binding`).
"""

from __future__ import annotations

from typing import Literal

from domain.inbound import Actor
from domain.model import Frozen

Capacity = Literal["prospect", "rep", "owner", "manager", "approver", "auditor", "admin"]
RefusalReason = Literal["reps_only", "not_approver", "not_auditor", "prospects_act", "not_admin"]

CAPACITIES: tuple[Capacity, ...] = (
    "prospect",
    "rep",
    "owner",
    "manager",
    "approver",
    "auditor",
    "admin",
)
_RIGHTS_OF_A_REP = frozenset[Capacity]({"owner", "manager", "approver", "auditor", "admin"})
"""Capacities that are a rep's, with something more."""


class Permission(Frozen):
    """One row: an action, who may take it, and what everyone else is told."""

    key: str
    """`command:<name>` or `button:<action id>`."""
    label: str
    allowed: frozenset[Capacity]
    reason: RefusalReason
    message: str
    strict_only: bool = False
    """Enforced only with the policy's `safeguards.strict_roles` (open to all before)."""
    on_behalf_rule: bool = False
    """Enforced only when the policy sets `[quotes] accept_on_behalf` (a stored policy
    without the key lets a rep accept, as before)."""
    while_fresh: frozenset[Capacity] | None = None
    """Who may take the action on a routed ticket while it is fresh (`[routing]
    owner_exclusive_ms`, `domain.routing.refuse_claim`); None: no such window."""


_REPS = frozenset[Capacity]({"rep"})
_EVERYONE = frozenset[Capacity]({"prospect", "rep"})
_SALES_TEAM = "Sorry, that is for the sales team."

MATRIX: tuple[Permission, ...] = (
    Permission(
        key="command:quote",
        label="`quote`",
        allowed=_REPS,
        reason="reps_only",
        message="Quotes come from your account team. Tell me what you need and I will pass it on.",
    ),
    Permission(
        key="command:lead",
        label="`lead` (score pasted text)",
        allowed=_REPS,
        reason="reps_only",
        message=_SALES_TEAM,
        strict_only=True,
    ),
    Permission(
        key="command:audit",
        label="`audit`",
        allowed=frozenset({"auditor"}),
        reason="not_auditor",
        message="Sorry, audits are limited to auditors. "
        "Ask your sales-ops admin if you need access.",
    ),
    Permission(
        key="command:metrics",
        label="`metrics`",
        allowed=_REPS,
        reason="reps_only",
        message="Sorry, that command is for the sales team.",
    ),
    Permission(
        key="command:correct",
        label="`correct` (a reading)",
        allowed=_REPS,
        reason="reps_only",
        message=_SALES_TEAM,
    ),
    Permission(
        key="command:help",
        label="`help`",
        allowed=_EVERYONE,
        reason="reps_only",
        message=_SALES_TEAM,
    ),
    Permission(
        key="command:setup",
        label="`setup` (handoff and leads channels)",
        allowed=frozenset({"admin"}),
        reason="not_admin",
        message="Sorry, only admins can choose the handoff and leads channels. "
        "Ask whoever runs salesbot to add you to SALESBOT_ADMINS.",
    ),
    Permission(
        key="button:accept_quote",
        label="*Accept quote*",
        allowed=frozenset({"prospect"}),
        reason="prospects_act",
        message="Accepting a quote is the prospect's decision, so nothing was done: ask them "
        "to press Accept, or record the deal with `won`.",
        on_behalf_rule=True,
    ),
    Permission(
        key="button:accept_quote_on_behalf",
        label="*Accept quote* for the prospect (`[quotes] accept_on_behalf = true`)",
        allowed=_REPS,
        reason="reps_only",
        message=_SALES_TEAM,
    ),
    Permission(
        key="button:escalate",
        label="*Talk to a person* / *Escalate*",
        allowed=_EVERYONE,
        reason="reps_only",
        message=_SALES_TEAM,
    ),
    Permission(
        key="button:request_approval",
        label="*Request approval*",
        allowed=_REPS,
        reason="reps_only",
        message="Your account team will request approval for this quote.",
    ),
    Permission(
        key="button:approve_quote",
        label="*Approve* a discount",
        allowed=frozenset({"approver"}),
        reason="not_approver",
        message="Sorry, only configured approvers can approve or reject discounts.",
    ),
    Permission(
        key="button:reject_quote",
        label="*Reject* a discount",
        allowed=frozenset({"approver"}),
        reason="not_approver",
        message="Sorry, only configured approvers can approve or reject discounts.",
    ),
    Permission(
        key="button:claim_ticket",
        label="*Claim ticket*",
        allowed=_REPS,
        reason="reps_only",
        message="Only the sales team can claim tickets.",
        while_fresh=frozenset({"owner", "manager"}),
    ),
    Permission(
        key="button:resolve_ticket",
        label="*Resolve*",
        allowed=_REPS,
        reason="reps_only",
        message="Only the sales team can resolve tickets.",
    ),
    Permission(
        key="button:return_to_bot",
        label="*Return to bot*",
        allowed=_REPS,
        reason="reps_only",
        message="Only the sales team can hand a conversation back.",
    ),
    Permission(
        key="button:mark_won",
        label="*Won* / `won`",
        allowed=_REPS,
        reason="reps_only",
        message="Only the sales team can close a deal.",
    ),
    Permission(
        key="button:mark_lost",
        label="*Lost* / `lost`",
        allowed=_REPS,
        reason="reps_only",
        message="Only the sales team can close a deal.",
    ),
    Permission(
        key="button:open_quote_form",
        label="*Quote* (open the quote form)",
        allowed=_REPS,
        reason="reps_only",
        message=_SALES_TEAM,
        strict_only=True,
    ),
)

_BY_KEY = {permission.key: permission for permission in MATRIX}


def permission(key: str) -> Permission:
    return _BY_KEY[key]


def capacities(actor: Actor, owner: str | None = None) -> frozenset[Capacity]:
    """What an actor counts as; `owner` is the conversation's owner, if it has one. A rep's
    owner, manager, approver and auditor rights add to being a rep."""
    if actor.role == "prospect":
        return frozenset({"prospect"})
    if actor.role != "rep":
        return frozenset()
    held: set[Capacity] = {"rep"}
    if owner is not None and actor.id == owner:
        held.add("owner")
    if actor.may_manage:
        held.add("manager")
    if actor.may_approve:
        held.add("approver")
    if actor.may_audit:
        held.add("auditor")
    if actor.may_admin:
        held.add("admin")
    return frozenset(held)


def permitted(
    actor: Actor,
    key: str,
    *,
    strict: bool,
    on_behalf_set: bool = True,
    owner: str | None = None,
    fresh: bool = False,
) -> bool:
    """Whether `actor` may take the action `key` (`command:quote`, `button:approve_quote`).
    `on_behalf_set`: the policy sets `[quotes] accept_on_behalf` (either way); `owner`: the
    conversation's owner; `fresh`: the routed ticket acted on is still its owner's alone
    (`[routing] owner_exclusive_ms`)."""
    rule = _BY_KEY[key]
    held = capacities(actor, owner)
    if rule.strict_only and not strict:
        return True
    if rule.on_behalf_rule and not on_behalf_set and held:
        return True  # a policy from before the key: anyone of ours or theirs may accept
    if fresh and rule.while_fresh is not None and rule.while_fresh.isdisjoint(held):
        return False
    return not rule.allowed.isdisjoint(held)


def _implied(capacity: Capacity) -> frozenset[Capacity]:
    if capacity in _RIGHTS_OF_A_REP:
        return frozenset({capacity, "rep"})  # owner, manager, approver, auditor: a rep's
    return frozenset({capacity})


def allowed_for(rule: Permission, capacity: Capacity) -> bool:
    """Whether someone holding exactly `capacity` (and what it implies) may take `rule`."""
    return not rule.allowed.isdisjoint(_implied(capacity))


def allowed_while_fresh(rule: Permission, capacity: Capacity) -> bool:
    """Whether someone holding exactly `capacity` may take `rule` on a routed ticket while
    it is fresh (its owner's alone)."""
    if not allowed_for(rule, capacity):
        return False
    return rule.while_fresh is None or not rule.while_fresh.isdisjoint(_implied(capacity))


FRESH_NOTE = (
    "¹ while a routed ticket is fresh (`[routing] owner_exclusive_ms`), only its owner or a "
    "manager may claim it; anyone on the team after that."
)


def matrix_markdown() -> str:
    """The matrix as the README shows it (generated, so the two never disagree)."""
    header = (
        "| action | prospect | rep | owner | manager | approver | auditor | admin "
        "| user of another workspace or tenant |"
    )
    lines = [header, "|---|:-:|:-:|:-:|:-:|:-:|:-:|:-:|:-:|"]
    for rule in MATRIX:
        cells = [_cell(rule, capacity) for capacity in CAPACITIES]
        outsider = "as a prospect" if allowed_for(rule, "prospect") else "—"
        lines.append(f"| {rule.label} | {' | '.join(cells)} | {outsider} |")
    return "\n".join([*lines, "", FRESH_NOTE])


def _cell(rule: Permission, capacity: Capacity) -> str:
    if not allowed_for(rule, capacity):
        return "—"
    return "✓" if allowed_while_fresh(rule, capacity) else "✓ after ¹"
