"""Who is pursued now: the one decision the fairness penalty on urgency takes part in.

The notebook (§10) penalises urgency when a creditworthiness proxy is low because "the
penalty reduces immediate pursuit". Under a policy with `[pursuit]` a lead is *pursued now*
when it is qualified (hot) and its penalised urgency reaches `min_urgency`: the hot-lead post
in the lead's thread is then a priority (it pages the on-call group) and its handoff
ticket climbs the SLA ladder on the priority tier's delays. Without `[pursuit]` penalised urgency is only
displayed, as before — which is why replaying with the penalty switched off changed nothing.

The rule is a pure function of the conversation's state, so `salesbot fairness` can apply it
to stored leads under other knobs (`domain.fairness_report`).
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, model_validator

from domain.events import PursuitDecided
from domain.model import Frozen


class PursuitConfig(Frozen):
    """`[pursuit]`: how urgent a qualified lead must be, after the fairness penalty, to be
    pursued now."""

    min_urgency: Decimal = Field(ge=0, allow_inf_nan=False, max_digits=18, decimal_places=9)
    unclaimed_reping_ms: int | None = Field(None, ge=60_000)
    unclaimed_escalate_ms: int | None = Field(None, ge=60_000)
    """The priority SLA tier: a handoff ticket of a lead pursued now climbs the ladder
    (`domain.sla`) after these delays instead of `[handoff]`'s, each where set."""

    @model_validator(mode="after")
    def _tier_in_order(self) -> PursuitConfig:
        reping, escalate = self.unclaimed_reping_ms, self.unclaimed_escalate_ms
        if reping is not None and escalate is not None and escalate <= reping:
            raise ValueError(
                f"unclaimed_escalate_ms ({escalate}) must be later than "
                f"unclaimed_reping_ms ({reping})"
            )
        return self


def pursued_now(config: PursuitConfig, qualified: bool, urgency: Decimal) -> bool:
    """The rule itself: qualified, and urgency (after the penalty) at least `min_urgency`."""
    return qualified and urgency >= config.min_urgency


def pursuit_decision(
    config: PursuitConfig | None,
    *,
    qualified: bool,
    urgency: Decimal | None,
    raw_urgency: Decimal | None,
    current: bool | None,
) -> PursuitDecided | None:
    """The event to record when the answer differs from `current` (the state's), else None.

    Nothing is decided before the lead first qualifies (`current` is None until then), so a
    policy without `[pursuit]`, or a lead that never qualifies, records nothing; from then
    on every change is recorded, including "qualified but not pursued now", which is the
    decision the fairness penalty takes.
    """
    if config is None or urgency is None or raw_urgency is None:
        return None
    if current is None and not qualified:
        return None
    now = pursued_now(config, qualified, urgency)
    if now == current:
        return None
    return PursuitDecided(
        pursue_now=now,
        urgency=urgency,
        raw_urgency=raw_urgency,
        min_urgency=config.min_urgency,
        qualified=qualified,
    )
