"""The JSON documents the command line prints, one model each, with their versions.

A tool that reads `salesbot score --json` (or `quote`, `narrative`, `check`, `replay`,
`understand`) needs to know which shape it got and which salesbot wrote it, as the
notebook's artifacts recorded both: every document here carries `schema_version` (bump it
when the document changes shape) and `generator_version` (`domain.GENERATOR`).
`salesbot schema export` publishes their JSON Schemas, generated from these models, and a
contract test validates what the commands print against them.

The commands dump these models into the same JSON they printed before the models existed
(key order kept; the two version keys come last): only the version keys were added.
Decimals are printed as JSON numbers by the command line (scores and weights, never money,
which is integer minor units), so their schemas accept a number or a decimal string, as
pydantic reads them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import Field, WithJsonSchema

from domain import GENERATOR
from domain.events import EVENT_SCHEMA_VERSION, EventEnvelope, QuoteIssued, QuoteRevised
from domain.model import Frozen
from domain.narrative import NarrativeAudit
from domain.policy import Policy
from domain.quotes import Quote
from domain.replay import Difference
from domain.scoring import Band, LeadScore
from domain.understand import UNDERSTAND_SCHEMA_VERSION
from domain.understanding.model import INTENTS, OBJECTIONS, REASONS, SIGNALS

LEAD_SCORE_SCHEMA_VERSION = 1
NARRATIVE_SCHEMA_VERSION = 1
CHECK_SCHEMA_VERSION = 1
REPLAY_SCHEMA_VERSION = 1
OFFER_SCHEMA_VERSION = EVENT_SCHEMA_VERSION
"""An offer is an event envelope: its version is the events'."""


class PolicyRef(Frozen):
    """The policy a document was computed under: its name and its content hash."""

    name: str
    version: str

    @classmethod
    def of(cls, policy: Policy) -> Self:
        return cls(name=policy.name, version=policy.version)


class LeadScoreReport(Frozen):
    """`salesbot score --json`: a lead's score with its exact per-feature arithmetic
    (`contributions` add up to `score`)."""

    score: Decimal
    band: Band
    probability: Decimal | None
    """The calibrated probability, under a policy whose scorer has one; else null."""
    hot_probability: Decimal | None = None
    """The trained reader's calibrated chance that the lead is hot (for display; the band
    decides); null under lexicons or a reader without calibration."""
    features: dict[str, int]
    weights: dict[str, Decimal]
    contributions: dict[str, Decimal]
    evidence: dict[str, tuple[str, ...]]
    policy: PolicyRef
    schema_version: int = LEAD_SCORE_SCHEMA_VERSION
    generator_version: str = GENERATOR

    @classmethod
    def of(cls, score: LeadScore, policy: Policy) -> Self:
        return cls(
            score=score.score,
            band=score.band,
            probability=score.probability,
            hot_probability=score.hot_probability,
            features=score.features,
            weights=score.weights,
            contributions=score.contributions,
            evidence=score.evidence,
            policy=PolicyRef.of(policy),
        )


class QuoteReport(Quote):
    """`salesbot quote --json`: the quote with every input, figure and proof line (amounts
    in integer minor units), and the policy whose catalog priced it. Its `schema_version`
    is the quote's own, the one quotes stored in events carry."""

    policy: PolicyRef
    generator_version: str = GENERATOR

    @classmethod
    def of(cls, quote: Quote, policy: Policy) -> Self:
        return cls(**dict(quote), policy=PolicyRef.of(policy))


class NarrativeReport(NarrativeAudit):
    """`salesbot narrative --json`: resonance and urgency with their attributions, the
    fairness knobs, the credit score they were applied to and the reason, as the
    `narrative_assessed` event records them."""

    policy: PolicyRef
    schema_version: int = NARRATIVE_SCHEMA_VERSION
    generator_version: str = GENERATOR

    @classmethod
    def of(cls, audit: NarrativeAudit, policy: Policy) -> Self:
        return cls(**dict(audit), policy=PolicyRef.of(policy))


class CheckReport(Frozen):
    """`salesbot check --json`: one line per violation, none when the policy is sound."""

    policy: PolicyRef
    violations: tuple[str, ...]
    schema_version: int = CHECK_SCHEMA_VERSION
    generator_version: str = GENERATOR


class ReplayReport(Frozen):
    """`salesbot replay --json`: how many conversations and inbounds were re-decided and
    every aspect that was decided differently (0 under the recorded policies)."""

    conversations: int
    inbounds: int
    differences: int
    diffs: tuple[Difference, ...]
    erased: tuple[str, ...] = ()
    """Conversations not re-decided because their personal data was erased (an `erased`
    event): what the inbounds said is gone, so each recorded decision is re-derived from
    the numbers it recorded instead (`domain.recorded_decisions`); their differences are in
    `diffs`, with the event's sequence number as `position`. Not counted in
    `conversations`."""
    rederived: int = 0
    """How many recorded decisions of the `erased` conversations were re-derived."""
    schema_version: int = REPLAY_SCHEMA_VERSION
    generator_version: str = GENERATOR


def _one_of(names: tuple[str, ...]) -> WithJsonSchema:
    """A string from a fixed list: the reader's own tuple, so the schema follows the model."""
    return WithJsonSchema({"type": "string", "enum": list(names)})


Intent = Annotated[str, _one_of(INTENTS)]
HumanReason = Annotated[str, _one_of(REASONS)]
Objection = Annotated[str, _one_of(OBJECTIONS)]


class MoneyMention(Frozen):
    """An amount as the prospect wrote it; `amount` is exact (an integer when whole)."""

    text: str
    amount: int | Decimal
    currency: str | None
    """An ISO 4217 code, or null when the prospect's marker does not say which."""
    period: Literal["month", "year"] | None


class DateMention(Frozen):
    """A date or period the prospect named, as the inclusive range of days it denotes."""

    text: str
    start: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    end: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")


class Entities(Frozen):
    money: tuple[MoneyMention, ...] = ()
    dates: tuple[DateMention, ...] = ()
    team_size: int | None = None
    competitor: str | None = None


class UnderstandReading(Frozen):
    """One line of `salesbot understand` (README, "Understanding"): the reading of one
    input line, under `policy_version`."""

    id: str | int
    """The input line's id, unchanged."""
    language: str = Field(pattern=r"^[a-z]{2,3}$")
    """An ISO 639 code; "und" when the reader cannot tell."""
    band: Band
    score: Decimal
    """The number the band's two thresholds are compared with."""
    hot_probability: Decimal | None = Field(None, ge=0, le=1)
    """The band's calibrated probability of hot, for display; only under a reader whose band
    is calibrated (absent otherwise)."""
    signals: dict[Annotated[str, _one_of(SIGNALS)], bool]
    objection: Objection | None
    needs_human: bool
    reasons: tuple[HumanReason, ...]
    """Why a person is needed: non-empty exactly when `needs_human`."""
    intents: tuple[Intent, ...]
    entities: Entities
    policy_version: str
    schema_version: int = UNDERSTAND_SCHEMA_VERSION
    generator_version: str = GENERATOR


class Offer(EventEnvelope):
    """A quote made in a conversation — to a lead when the conversation is one: the
    `quote_issued` (or, for an approved discount under the same id, `quote_revised`) event
    in its envelope, as the event log stores it."""

    event: Annotated[QuoteIssued | QuoteRevised, Field(discriminator="type")]
