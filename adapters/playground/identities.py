"""The playground's local people: who the page lets you speak and click as.

Nobody logs in to the playground (it is local, or behind its token), so the page says
which of these three is acting. Two of them are reps with approver and auditor rights, so
a discount one of them asks for can be approved by the other (four eyes) without a second
person at the keyboard; neither is therefore the *sole* approver. The manager is also a
manager (`SALESBOT_MANAGERS`): they may claim a routed ticket while it is its owner's alone.
"""

from __future__ import annotations

from typing import Literal

from domain.inbound import Actor

Identity = Literal["prospect", "rep", "manager"]

PROSPECT = Actor(id="playground-prospect", name="", role="prospect")
REP = Actor(id="playground-rep", name="You (rep)", role="rep", approver=True, auditor=True)
MANAGER = Actor(
    id="playground-manager",
    name="You (manager)",
    role="rep",
    approver=True,
    auditor=True,
    manager=True,
)
IDENTITIES: dict[str, Actor] = {"prospect": PROSPECT, "rep": REP, "manager": MANAGER}
ROLE_CHOICES = '"prospect", "rep" or "manager"'


def identity_of(actor: Actor) -> Identity:
    """Which local person `actor` is, for the page's labels."""
    if actor.id == MANAGER.id:
        return "manager"
    return "rep" if actor.role == "rep" else "prospect"
