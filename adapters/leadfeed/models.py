"""What the lead feed accepts, validated at the edge so the core only sees clean leads.

The request models mirror `domain.inbound.LeadDetails`'s limits, so a body that passes here
always maps to a `LeadDetails` (a 422 with field-level errors, never a 500).

`metadata` is validated (at most 50 keys of strings, numbers and booleans) and then dropped:
the domain has no place for it and decides nothing by it. It is therefore not part of the
idempotency comparison either: two bodies that differ only in `metadata` are the same lead.
`company_size` and `credit_score` are top-level fields; the same names inside `metadata` are
refused rather than silently ignored. `territory` and `segment` are top-level fields too, read
only by the policy's `[routing]` rules.

`reply_url` is checked against the feed's `OutboundPolicy`, passed as validation context
(`LeadBody.model_validate(data, context={"outbound": policy})`); without one, the strict
policy with an empty allow-list applies. Only what needs no DNS is checked here; the feed
then asks DNS once (`OutboundPolicy.check_resolved`).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from adapters.outbound import OutboundPolicy, OutboundRefusedError
from domain import GENERATOR
from domain.cards import Card
from domain.inbound import MAX_MESSAGE_CHARS, LeadDetails
from domain.model import Frozen

LEAD_SCHEMA_VERSION = 1
"""Version of the `POST /leads` body's schema. The body is the caller's document and carries
no version of its own: a change that refuses bodies accepted before needs a new route."""
LEAD_REPLY_SCHEMA_VERSION = 2
"""2: `actions`, the signed links of the card's buttons a prospect may press."""

STRICT = OutboundPolicy()
"""The rules with nothing allow-listed, for validation without a context."""

MAX_METADATA_KEYS = 50
_RESERVED_METADATA_KEYS = frozenset({"company_size", "credit_score"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")

MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=100)]
MetadataValue = Annotated[str, StringConstraints(max_length=1000)] | bool | int | float


def check_reply_url(url: str, outbound: OutboundPolicy) -> str:
    """A reply URL must be one `outbound` allows (see `adapters.outbound`): https, no
    credentials, not this machine or a private network unless allow-listed. Raises
    ValueError with the reason; the reason never repeats the URL."""
    try:
        outbound.check_url(url)
    except OutboundRefusedError as exc:
        raise ValueError(exc.reason) from None
    return url


class LeadBody(BaseModel):
    """The JSON body of `POST /leads`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    company: str = Field("", max_length=200)
    email: str = Field(max_length=320)
    message: str = Field(min_length=1, max_length=20_000)
    source: str = Field("", max_length=100)
    external_id: str | None = Field(None, min_length=1, max_length=200)
    reply_url: str | None = Field(None, max_length=2000)
    company_size: int | None = Field(None, ge=0, strict=True)
    credit_score: int | None = Field(None, ge=0, le=1000, strict=True)
    territory: str = Field("", max_length=100)
    segment: str = Field("", max_length=100)
    metadata: dict[MetadataKey, MetadataValue] = Field(default_factory=dict)

    @field_validator("email")
    @classmethod
    def _email_looks_like_one(cls, value: str) -> str:
        # A sanity check only: whether the mailbox exists is not ours to find out here.
        if not _EMAIL.match(value):
            raise ValueError("must be an email address such as name@example.com")
        return value

    @field_validator("reply_url")
    @classmethod
    def _reply_url_is_allowed(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        context = info.context if isinstance(info.context, dict) else {}
        outbound = context.get("outbound")
        return check_reply_url(value, outbound if isinstance(outbound, OutboundPolicy) else STRICT)

    @field_validator("metadata")
    @classmethod
    def _metadata_is_small(cls, value: dict[str, object]) -> dict[str, object]:
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"may have at most {MAX_METADATA_KEYS} keys")
        reserved = sorted(_RESERVED_METADATA_KEYS & value.keys())
        if reserved:
            raise ValueError(f"send {', '.join(reserved)} as top-level fields, not in metadata")
        return value

    def details(self) -> LeadDetails:
        """The lead as the domain sees it (metadata dropped: see the module docstring)."""
        return LeadDetails(
            name=self.name,
            company=self.company,
            email=self.email,
            message=self.message,
            source=self.source,
            external_id=self.external_id,
            company_size=self.company_size,
            credit_score=self.credit_score,
            reply_url=self.reply_url,
            territory=self.territory,
            segment=self.segment,
        )


class MessageBody(BaseModel):
    """The JSON body of `POST /leads/{id}/messages`. `message_id`, when given, makes a retry
    of the same message a no-op."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    message_id: str | None = Field(None, min_length=1, max_length=200)

    @field_validator("text")
    @classmethod
    def _text_is_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class LeadAction(Frozen):
    """A button of the reply's card the prospect may press, as a signed link
    (`adapters.leadfeed.links`): send `method` to `url` (no body, no token needed)."""

    label: str
    url: str
    method: Literal["POST"] = "POST"
    action: str
    target: str


class LeadReply(Frozen):
    """The JSON body POSTed to a lead's reply URL (`adapters.leadfeed.reply`): one reply to
    the prospect (the bot's, or a rep's words sent to them: its card then names the rep), the
    card as neutral JSON (null without one), the links that press its buttons a prospect may
    press (`actions`, schema version 2), and the outbox key the receiver dedupes by (also the
    `Idempotency-Key` header)."""

    lead_id: str
    text: str
    card: Card | None
    actions: tuple[LeadAction, ...] = ()
    reply_key: str
    schema_version: int = LEAD_REPLY_SCHEMA_VERSION
    generator_version: str = GENERATOR
