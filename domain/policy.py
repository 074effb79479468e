"""The policy: every tunable of the bot in one versioned, validated document.

A policy bundles the persona(s), the conversation flow, scoring weights and lexicons,
the objection taxonomy, the catalog and discount rules, the narrative weights and the
fairness knobs. Its version is a hash of the *canonical parsed* content, so reformatting
the TOML file or reordering keys does not change it, while any change of meaning does.
Every stored event records the version it was decided under, which is what makes replay
and audit exact.

Reading files is I/O and lives in `bot/`; this module turns text into a `Policy`.
A policy file may say `extends = "<name>"`: the loader deep-merges it over that base
(tables merge key by key, arrays and scalars replace), so the seed policy only states
where it differs from the product default.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from domain.crm import CrmConfig
from domain.dialog_config import Competitors, DialogConfig, check_competitors
from domain.errors import PolicyError
from domain.flow import FlowSpec
from domain.handoff_config import HandoffConfig
from domain.knowledge import KnowledgeConfig
from domain.languages import LanguagesConfig
from domain.meetings_config import MeetingsConfig, TeamPostsConfig
from domain.model import Frozen
from domain.narrative import FairnessConfig, NarrativeConfig
from domain.objections import ObjectionConfig
from domain.persona import Persona
from domain.pursuit import PursuitConfig
from domain.quotes import CatalogConfig, QuoteRules
from domain.retention import RetentionConfig
from domain.routing_config import RoutingConfig
from domain.scoring import Band, ScoringConfig
from domain.state import FLOOD_WINDOW_MESSAGES
from domain.understanding.model import ReaderModel

POLICY_SCHEMA_VERSION = 1

Document = dict[str, Any]


class ConversationConfig(Frozen):
    """How long the bot keeps a conversation to itself before a human must look."""

    qualified_bands: tuple[Band, ...] = ("hot",)
    max_bot_turns: int = Field(6, ge=1)
    abandon_after_ms: int = Field(7 * 24 * 3600 * 1000, ge=60_000)


class Safeguards(Frozen):
    """What protects prospects and the business from the bot and from each other.

    Every switch defaults to off, because a stored policy written before a switch existed
    must keep deciding as it did (replay reproduces it exactly); the shipped default policy
    turns them all on.

    - `prospect_view`: a card a prospect can see shows the offer and the buyer's actions
      only; caps, approval rules and rep-only buttons go to reps, and a quote awaiting
      approval is not shown to the prospect until it is approved;
    - `strict_roles`: the roles × actions matrix of `domain.permissions` (a prospect cannot
      score text with `/lead` or open the quote form);
    - `four_eyes`: whoever asked for a discount (or issued it) cannot approve it;
    - `claims_guard`: every bot-written reply is checked against the claims rules when it
      is said; a violating one is replaced by its fallback, recorded and reported;
    - `flood_limit_per_minute`: more prospect messages than this in one conversation within
      a minute are answered once and then recorded without a reply until it calms down.
    """

    prospect_view: bool = False
    strict_roles: bool = False
    four_eyes: bool = False
    claims_guard: bool = False
    flood_limit_per_minute: int | None = Field(None, ge=1, le=FLOOD_WINDOW_MESSAGES - 1)


class RepliesConfig(Frozen):
    """How the bot avoids parroting the prospect (`[replies]`; `domain.reply_plan`).

    - `no_repeat`: the bot never sends the prospect the same text twice in a row; where a
      reply would repeat the last one and no other wording exists, it moves on (another
      question, the proposal, or a person);
    - `max_asks_per_slot`: each qualification question (budget, timeline, authority, need,
      the generic one), the proposal offer and each objection class's reply is said at most
      this many times in a conversation; then the bot moves on the same way.

    Both default to off, so a stored policy without `[replies]` decides exactly as before.
    """

    no_repeat: bool = False
    max_asks_per_slot: int | None = Field(None, ge=1)

    @property
    def active(self) -> bool:
        return self.no_repeat or self.max_asks_per_slot is not None


class UnderstandingConfig(Frozen):
    """The trained reader the policy decides with (`docs/understanding.md`).

    The policy file names the model file by `model` (a path relative to the policy file) and
    its `sha256`; the loader checks the hash and hands the content in as `reader`, so the
    weights are part of the policy's meaning: its version hash covers them, and a stored
    policy replays with exactly the weights it decided with. A policy without this table
    reads messages with its lexicons (`scoring`, `objections`) as before.
    """

    model: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    reader: ReaderModel


class Policy(Frozen):
    """One validated policy; `version` identifies its meaning exactly."""

    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    description: str = ""
    persona: str
    personas: dict[str, Persona]
    flow: FlowSpec
    scoring: ScoringConfig
    narrative: NarrativeConfig
    fairness: FairnessConfig
    objections: ObjectionConfig
    catalog: CatalogConfig
    conversation: ConversationConfig = ConversationConfig()
    safeguards: Safeguards = Safeguards()
    quotes: QuoteRules = QuoteRules()
    replies: RepliesConfig = RepliesConfig()
    understanding: UnderstandingConfig | None = None
    knowledge: KnowledgeConfig | None = None
    """Answers to product questions (`domain.knowledge`); without it, questions get the
    flow's replies as before."""
    languages: LanguagesConfig | None = None
    """The languages the bot speaks (`domain.languages`); without it, every reply is said as
    its template is written, as before."""
    meetings: MeetingsConfig | None = None
    """Booking links for meeting requests (`domain.meetings`); without it, as before."""
    team_posts: TeamPostsConfig | None = None
    """What the team hears in the lead's thread (`domain.meetings`); without it, nothing."""
    dialog: DialogConfig | None = None
    """Polite closes, buying signals ahead of objections, moving on after an objection
    (`domain.dialog`); without it, the flow decides as before."""
    competitors: Competitors | None = None
    """The competitors' names to record a lost deal under, with their other spellings
    (`domain.dialog_config.competitor_named`)."""
    handoff: HandoffConfig | None = None
    """Takeover by presence, outcomes on *Resolve*, what a prospect message after an outcome
    does, the ticket card's transcript and age (`domain.handoff`); without it, as before."""
    pursuit: PursuitConfig | None = None
    """Which qualified leads are pursued now: the fairness penalty on urgency decides it
    (`domain.pursuit`); without it, penalised urgency is only displayed, as before."""
    routing: RoutingConfig | None = None
    """Who owns a conversation, and for how long their routed ticket is theirs alone
    (`domain.routing`); without it, nobody owns one, as before."""
    retention: RetentionConfig | None = None
    """How long prospects' personal data is kept after a conversation's last activity
    (`domain.retention`); without it, it is kept until erased on request, as before."""
    crm: CrmConfig | None = None
    """How conversations map onto the team's CRM pipeline (`domain.crm`); without it,
    nothing is synced, as before."""

    _version: str = PrivateAttr(default="")

    @field_validator("competitors")
    @classmethod
    def _competitors(cls, value: Competitors | None) -> Competitors | None:
        return None if value is None else check_competitors(value)

    @model_validator(mode="after")
    def _persona_exists(self) -> Policy:
        if self.persona not in self.personas:
            known = ", ".join(sorted(self.personas)) or "none"
            raise ValueError(f"persona {self.persona!r} is not defined (defined: {known})")
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._version = hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Policy:
        # A copy with changed fields is a different policy: its version must follow.
        copy = super().model_copy(update=update, deep=deep)
        copy.model_post_init(None)
        return copy

    @property
    def version(self) -> str:
        """SHA-256 of the canonical JSON form: the policy's identity in every event.

        Read from the private values directly: `self._version` goes through pydantic's
        `__getattr__` fallback (≈ 2 µs), and every event of every decision asks."""
        private = self.__pydantic_private__
        assert private is not None  # set by model_post_init
        version: str = private["_version"]
        return version

    @property
    def short_version(self) -> str:
        return self._version[:12]

    @property
    def active_persona(self) -> Persona:
        return self.personas[self.persona]

    def canonical_json(self) -> str:
        """The policy's meaning as text: sorted keys, Decimals as strings, no whitespace.

        Stored next to events by hash so a past decision can be re-run under the exact
        policy that made it, even after the file changed.
        """
        data = self.model_dump(mode="json", by_alias=True)
        if self.safeguards == Safeguards():
            # A policy from before safeguards existed keeps the version it was stored under.
            del data["safeguards"]
        if self.quotes == QuoteRules():
            # Likewise for a policy from before `[quotes]`.
            del data["quotes"]
        if self.replies == RepliesConfig():
            # Likewise for a policy from before `[replies]`.
            del data["replies"]
        if self.understanding is None:
            # Likewise for a policy from before the trained reader.
            del data["understanding"]
        if self.knowledge is None:
            # And for a policy from before the knowledge base.
            del data["knowledge"]
        if self.languages is None:
            # And for a policy from before `[languages]`.
            del data["languages"]
        for key in OPTIONAL_TABLES:
            if getattr(self, key) is None:
                # And for a policy from before meetings and team posts, `[dialog]` and
                # `[competitors]`, `[handoff]`, `[pursuit]`, `[routing]`, `[retention]` or
                # `[crm]`.
                del data[key]
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


OPTIONAL_TABLES: tuple[str, ...] = (
    "meetings",
    "team_posts",
    "dialog",
    "competitors",
    "handoff",
    "pursuit",
    "routing",
    "retention",
    "crm",
)
"""Policy tables added after policies were first stored: left out of the canonical JSON
while unset (so a stored policy keeps its version), and `key = false` drops one inherited."""


def parse_document(text: str, source: str) -> Document:
    """TOML text to a plain document; floats become `Decimal` so weights stay exact."""
    try:
        return tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: malformed TOML: {exc}") from None


def merge_documents(base: Mapping[str, Any], override: Mapping[str, Any]) -> Document:
    """Deep-merge `override` over `base`: tables merge, everything else replaces."""
    merged: Document = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = merge_documents(current, value)
        else:
            merged[key] = value
    return merged


def build_policy(document: Mapping[str, Any], source: str) -> Policy:
    """Validate a (merged) document; errors name the file, the key path and the reason."""
    data = {k: v for k, v in document.items() if k != "extends"}
    if data.get("understanding") is False:
        # `understanding = false`: a policy extending one with a trained reader keeps reading
        # with its lexicons (the seed policy does).
        del data["understanding"]
    if data.get("knowledge") is False:
        # `knowledge = false`: a policy extending one with a knowledge base answers without it.
        del data["knowledge"]
    if data.get("languages") is False:
        # `languages = false`: a policy extending a multilingual one speaks as written.
        del data["languages"]
    for key in OPTIONAL_TABLES:
        if data.get(key) is False:
            # `meetings = false`, `team_posts = false`, `dialog = false`,
            # `competitors = false`, `handoff = false`, `pursuit = false`, `routing = false`,
            # `retention = false`, `crm = false`: a policy extending the default without
            # booking links, team posts, the dialog's closes, the handoff desk, pursuit by
            # urgency, owners, erasure by time or the CRM sync.
            del data[key]
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            key = ".".join(str(part) for part in error["loc"]) or "(top level)"
            lines.append(f"{source}: {key}: {error['msg']}")
        raise PolicyError("\n".join(lines)) from None


def policy_from_json(text: str) -> Policy:
    """Rebuild a policy from its stored canonical JSON (the replay path)."""
    try:
        return Policy.model_validate_json(text)
    except ValidationError as exc:
        raise PolicyError(f"stored policy does not validate: {exc.error_count()} errors") from None
