"""The policy's `[meetings]` and `[team_posts]` tables (`domain.meetings` acts on them).

Kept apart from `domain.meetings` because the policy holds them and the recorder holds the
policy.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import Field, field_validator

from domain.events import TeamPostKind
from domain.model import Frozen


def _is_link(value: str) -> str:
    if not value.startswith("https://") or any(c.isspace() for c in value):
        raise ValueError(f"a booking link must be an https:// URL without spaces: {value!r}")
    return value


class MeetingsConfig(Frozen):
    """`[meetings]`: where a prospect books a meeting."""

    links: tuple[str, ...] = Field(min_length=1)
    owners: dict[str, str] = Field(default_factory=dict)
    """Owner id → that owner's booking link (used once conversations have owners)."""
    claim: str = "scheduling"
    """The claim a booking link makes; the persona must allow it."""

    @field_validator("links")
    @classmethod
    def _links(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_is_link(link) for link in value)

    @field_validator("owners")
    @classmethod
    def _owner_links(cls, value: dict[str, str]) -> dict[str, str]:
        return {owner: _is_link(link) for owner, link in value.items()}


class TeamPostsConfig(Frozen):
    """`[team_posts]`: which moments are posted to the lead's thread."""

    on: tuple[TeamPostKind, ...] = ()


def booking_link(
    config: MeetingsConfig, conversation_id: str, owner: str | None = None
) -> tuple[str, Literal["owner", "hash"]]:
    """The link to offer and how it was chosen: the owner's own, else one of `links` by a
    SHA-256 of the conversation id (stable across processes and replays)."""
    if owner is not None and owner in config.owners:
        return config.owners[owner], "owner"
    digest = hashlib.sha256(conversation_id.encode()).digest()
    return config.links[int.from_bytes(digest[:8], "big") % len(config.links)], "hash"
