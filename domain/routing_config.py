"""The policy's `[routing]` table: who owns a conversation (`domain.routing` acts on it).

Kept apart from `domain.routing` because the policy holds this table and the recorder (which
`domain.routing` needs) holds the policy, as `domain.handoff_config` is for the desk.

- `rules`: ordered rules on a lead's fields (`[[routing.rules]]`); the first that matches
  names the owner. A rule reads one field — `territory`, `segment`, `source` (equal to one
  of `equals`, compared without case) or `company_size` (within `at_least` … `below`);
- `spread`: the owners a conversation no rule matched is spread over, by a SHA-256 of its
  id (the same owner in every process, and in every replay);
- `names`: an owner's name as people read it (the lead card, the ticket card, a refused
  claim); an owner without one is shown by their id;
- `owner_exclusive_ms`: while a routed ticket is younger than this, only its owner or a
  manager (`SALESBOT_MANAGERS`) may claim it; anyone after. Off when unset;
- `installations`: the owners of another installation's conversations (a workspace or
  tenant that installed the app: `[routing.installations."<installation id>"]`, with its own
  `rules`, `spread` and `names`). The table's own rules and spread are the first
  installation's people: a conversation of another installation without a table of its own
  gets no owner (`domain.installations`), never someone of another organisation.

Owner ids are the people's ids as their platform states them (as `SALESBOT_APPROVERS` lists
them), so a claim can be matched to the owner and a post can mention them. A policy without the table routes nothing and decides
exactly as before (its canonical JSON omits it).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from domain.model import Frozen, Sparse

LeadField = Literal["territory", "segment", "company_size", "source"]
TEXT_FIELDS: tuple[LeadField, ...] = ("territory", "segment", "source")


def _owner_id(value: str) -> str:
    if not value or value != value.strip() or any(c.isspace() for c in value):
        raise ValueError(f"an owner id must be a non-empty id without spaces: {value!r}")
    return value


class RoutingRule(Frozen):
    """One `[[routing.rules]]` entry: a lead whose `field` matches goes to `owner`."""

    field: LeadField
    owner: str
    equals: tuple[str, ...] = ()
    """For `territory`, `segment`, `source`: the values that match (case does not matter)."""
    at_least: int | None = Field(None, ge=0)
    """For `company_size`: the smallest size that matches."""
    below: int | None = Field(None, ge=1)
    """For `company_size`: the first size that no longer matches."""

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        return _owner_id(value)

    @model_validator(mode="after")
    def _one_kind_of_match(self) -> RoutingRule:
        if self.field == "company_size":
            if self.equals:
                raise ValueError("company_size matches a range: use at_least and/or below")
            if self.at_least is None and self.below is None:
                raise ValueError("a company_size rule needs at_least and/or below")
            low, high = self.at_least, self.below
            if low is not None and high is not None and high <= low:
                raise ValueError(f"below ({high}) must be greater than at_least ({low})")
        else:
            if self.at_least is not None or self.below is not None:
                raise ValueError(f"{self.field} matches values: use equals, not a range")
            if not self.equals or any(not value.strip() for value in self.equals):
                raise ValueError(f"a {self.field} rule needs equals = [non-empty values]")
        return self

    def describe(self) -> str:
        """The rule in words, for the audit ("territory is EMEA or UK")."""
        if self.field == "company_size":
            if self.at_least is not None and self.below is not None:
                return f"company size {self.at_least}–{self.below - 1}"
            if self.at_least is not None:
                return f"company size {self.at_least} or more"
            return f"company size below {self.below}"
        return f"{self.field} is {' or '.join(self.equals)}"


class Routes(Frozen):
    """Who owns a conversation: the rules, the spread and the owners' names (the first
    installation's in `[routing]` itself, another's in `[routing.installations."…"]`)."""

    rules: tuple[RoutingRule, ...] = ()
    spread: tuple[str, ...] = ()
    names: dict[str, str] = Field(default_factory=dict)

    @field_validator("spread")
    @classmethod
    def _spread(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("spread lists an owner more than once")
        return tuple(_owner_id(owner) for owner in value)

    @field_validator("names")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for owner, name in value.items():
            _owner_id(owner)
            if not name.strip():
                raise ValueError(f"{owner}: a name must not be empty")
        return value

    @model_validator(mode="after")
    def _routes_somewhere(self) -> Routes:
        if not self.rules and not self.spread:
            raise ValueError("[routing] needs rules, a spread, or both")
        return self

    def name_of(self, owner: str) -> str:
        return self.names.get(owner, owner)


class RoutingConfig(Routes, Sparse):
    """`[routing]` (see the module doc)."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ("installations",)

    owner_exclusive_ms: int | None = Field(None, ge=60_000)
    installations: dict[str, Routes] = Field(default_factory=dict)

    @field_validator("installations")
    @classmethod
    def _installations(cls, value: dict[str, Routes]) -> dict[str, Routes]:
        for installation in value:
            if ":" not in installation or installation != installation.strip():
                raise ValueError(
                    f"{installation!r} is not an installation id (its platform, a colon and "
                    "the workspace's or tenant's id)"
                )
        return value

    def for_installation(self, installation: str) -> Routes | None:
        """Whose people own `installation`'s conversations ("" the first: this table's);
        None for an installation without a table of its own."""
        return self if not installation else self.installations.get(installation)
