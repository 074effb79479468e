"""When each channel may next be sent to: the outbox worker's pacing, kept so that a round
costs what changed, not one pass over every channel ever paced.

The worker forgets the paces that have passed before every claim, and a claim comes with
nearly every message committed. A dict comprehension over all paced channels did that:
with 500 conversations in flight, about 60 µs of every message at half of the maximum
(py-spy, issue 18). A min-heap of (time, channel) beside the dict lets passed paces be
forgotten a few at a time; an entry a later `hold` made stale is skipped when it surfaces.
In memory only, as before: after a restart a channel's first send may come early once.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Container, KeysView


class Paces:
    """channel → the earliest epoch ms of its next send."""

    __slots__ = ("_heap", "_until")

    def __init__(self) -> None:
        self._until: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def get(self, channel: str) -> int:
        """The channel's pace, 0 when it has none."""
        return self._until.get(channel, 0)

    def hold(self, channel: str, until_ms: int) -> None:
        """Pace `channel` until `until_ms`, unless it is already paced later."""
        if until_ms > self._until.get(channel, until_ms - 1):
            self._until[channel] = until_ms
            heapq.heappush(self._heap, (until_ms, channel))

    def forget_passed(self, now_ms: int) -> None:
        """Drop every pace at or before `now_ms`."""
        heap, until = self._heap, self._until
        while heap and heap[0][0] <= now_ms:
            at, channel = heapq.heappop(heap)
            if until.get(channel) == at:  # else a later `hold` superseded this entry
                del until[channel]

    def among(self, channels: Collection[str], skip: Container[str]) -> list[int]:
        """The paces of `channels` (those paced, and not in `skip`), walking whichever of
        the two is smaller: the channels with items waiting are usually few, but a backlog
        can make them many."""
        until = self._until
        if len(channels) <= len(until):
            return [t for c in channels if c not in skip and (t := until.get(c)) is not None]
        return [t for c, t in until.items() if c not in skip and c in channels]

    def channels(self) -> KeysView[str]:
        """The channels paced now (a pace passed and not yet forgotten included)."""
        return self._until.keys()
