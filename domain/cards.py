"""Platform-neutral replies and cards.

The domain says *what* to show — a title, fields, the quote's arithmetic lines, buttons
with action ids — and each adapter renders it in its platform's card format, HTML or plain
text. All text here is plain text: adapters escape it for their markup.
"""

from __future__ import annotations

import base64
import hashlib
from typing import ClassVar, Literal

from pydantic import Field

from domain.inbound import NOTE_MAX_CHARS as INBOUND_NOTE_MAX_CHARS
from domain.inbound import ActionId
from domain.model import Frozen, Sparse

Audience = Literal["conversation", "team", "requester", "handoff", "approvers", "escalation"]
"""Where a reply goes: the conversation (seen by the prospect), the team's view of it
(lead thread, never shown to the prospect), only the person who acted
(ephemeral), the human handoff channel, the discount approvers, or the escalation target
of an unclaimed ticket (`[handoff] escalation`; the handoff channel where a platform has
none)."""

Mention = Literal["on_call"]
"""A group a reply mentions, by role; each platform resolves it from the policy's
`[handoff] on_call` (and mentions nobody where it has none)."""

ButtonStyle = Literal["default", "primary", "danger"]
CardKind = Literal["lead", "quote", "ticket", "score", "help", "notice"]


class Button(Frozen):
    action: ActionId
    label: str
    target: str = ""
    style: ButtonStyle = "default"


class CardField(Frozen):
    label: str
    value: str


NOTE_MAX_CHARS = INBOUND_NOTE_MAX_CHARS
"""The longest note a card's text box takes (`CardInput`, `ButtonClicked.note`)."""


class CardInput(Frozen):
    """A one-line text box on a card: what is typed there comes back with the button pressed
    next (`ButtonClicked.note`), as the rep's own words (a lost deal's note)."""

    label: str
    placeholder: str = ""
    max_chars: int = Field(NOTE_MAX_CHARS, ge=1, le=NOTE_MAX_CHARS)


class Card(Frozen):
    """A structured message. `ref` identifies it (quote id, ticket key) so a later
    reply can update it in place. `input`, when set, is a text box whose content the card's
    buttons send along."""

    kind: CardKind
    title: str
    text: str = ""
    fields: tuple[CardField, ...] = ()
    lines: tuple[str, ...] = ()
    buttons: tuple[Button, ...] = ()
    status: str = ""
    ref: str = ""
    input: CardInput | None = None


IMAGE_MAX_BYTES = 112_000
"""The largest image a reply carries: its base64 (4/3 of the bytes, ~150 KB) still fits the
tightest platform limit on an inline image (a data URI of at most 150 KB)."""


class ReplyImage(Frozen):
    """A picture sent with a reply (the `/metrics` chart): PNG bytes, base64 in `data` so
    the reply stays JSON in the outbox. `alt` says in words what it shows (screen readers,
    platforms that cannot show it); `filename` is what it is saved or uploaded as."""

    media_type: Literal["image/png"] = "image/png"
    filename: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.png$")
    alt: str
    data: str = Field(max_length=(IMAGE_MAX_BYTES + 2) // 3 * 4)
    width: int = Field(ge=1)
    height: int = Field(ge=1)

    @classmethod
    def of_png(cls, png: bytes, *, filename: str, alt: str, width: int, height: int) -> ReplyImage:
        return cls(
            filename=filename,
            alt=alt,
            data=base64.b64encode(png).decode("ascii"),
            width=width,
            height=height,
        )

    @property
    def png(self) -> bytes:
        return base64.b64decode(self.data, validate=True)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.png).hexdigest()


class Person(Frozen):
    """Someone a reply mentions by name: their id as their platform states it (the user id
    the platform's inbounds carry) and their name as people read it."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)


class Reply(Sparse):
    """One message to send. `replaces` names the `ref` of a card to update in place;
    `mention` a group to notify with it; `notify` a person (the conversation's owner, under
    the policy's `[routing]`; a platform that cannot mention them by their id sends the reply
    without the mention); `image`, a picture sent with it. Each is left out of the stored
    reply while unset, so replies without them serialise exactly as before."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("mention", "image", "notify")
    audience: Audience
    text: str
    card: Card | None = None
    replaces: str | None = None
    mention: Mention | None = None
    image: ReplyImage | None = None
    notify: Person | None = None

    @property
    def ephemeral(self) -> bool:
        return self.audience == "requester"
