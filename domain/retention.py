"""`[retention]`: how long a conversation's personal data is kept after its last activity.

A conversation whose last event is older than `erase_after_days` has its personal data
erased by the sweeper (`Runtime.sweep_retention`): its key is deleted and an `erased` event
with reason `retention` is recorded, as `salesbot erase` does on a prospect's request.
What stays (scores, readings, amounts in cents, the flow, hashes) keeps the metrics and
the audit's numbers whole. Without `[retention]` nothing is erased by time, as before.
"""

from __future__ import annotations

from pydantic import Field

from domain.model import Frozen

DAY_MS = 86_400_000


class RetentionConfig(Frozen):
    """`[retention]`: erase a conversation's personal data this many days after its last
    event (at least 1, at most 100 years)."""

    erase_after_days: int = Field(ge=1, le=36_500)

    def cutoff_ms(self, now_ms: int) -> int:
        """Conversations whose last event is before this instant are due for erasure."""
        return now_ms - self.erase_after_days * DAY_MS
