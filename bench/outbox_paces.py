"""The outbox worker's pacing per round (issue 18): `bot.outbox_paces.Paces` against the
dict the worker rebuilt before every claim, in one run.

A round is what the worker does for each message committed at a steady rate: forget the
paces that have passed, take the paced channels out of the claim, pace the channel it
sends to, and look for the next pace due among the channels with items waiting. Messages
come every `STEP_MS` to `channels` channels round-robin, each paced for `PACE_MS` after a
send (Slack's one message a second), so about `PACE_MS / STEP_MS` channels are paced at any
moment. No I/O: the figure is the worker's own bookkeeping, which py-spy put at about 80 µs
a message in `serve` at half of the maximum with 500 conversations in flight.

    python -m bench.outbox_paces
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.outbox_paces import Paces

PACE_MS = 1_000
STEP_MS = 4  # 250 messages a second
MESSAGES = 20_000
ROUNDS = 3


def rebuilt(channels: int) -> float:
    """Seconds a round with the worker's former bookkeeping: a dict of every paced
    channel, rebuilt to forget the passed ones and scanned for the idle wait."""
    paces: dict[str, int] = {}
    waiting = {f"C{n}" for n in range(0, channels, 10)}
    now = 1_790_000_000_000
    start = time.perf_counter()
    for i in range(MESSAGES):
        now += STEP_MS
        paces = {c: t for c, t in paces.items() if t > now}
        paced = {c for c, t in paces.items() if t > now}
        channel = f"C{i % channels}"
        paces[channel] = max(paces.get(channel, 0), now + PACE_MS)
        due = [t for c, t in paces.items() if c not in paced and c in waiting]
        del due
    return (time.perf_counter() - start) / MESSAGES


def heap(channels: int) -> float:
    """The same rounds with `Paces`."""
    paces = Paces()
    waiting = {f"C{n}" for n in range(0, channels, 10)}
    now = 1_790_000_000_000
    start = time.perf_counter()
    for i in range(MESSAGES):
        now += STEP_MS
        paces.forget_passed(now)
        paced = set(paces.channels())  # out of the claim
        paces.hold(f"C{i % channels}", now + PACE_MS)
        due = paces.among(waiting, skip=paced)
        del due
    return (time.perf_counter() - start) / MESSAGES


def best(side: Callable[[int], float], channels: int) -> float:
    return min(side(channels) for _ in range(ROUNDS))


def measure() -> dict[str, float]:
    results: dict[str, float] = {}
    for channels in (500, 5_000):
        before = best(rebuilt, channels)
        after = best(heap, channels)
        results[f"outbox_paces_{channels}_channels_rebuilt_us_per_round"] = 1e6 * before
        results[f"outbox_paces_{channels}_channels_heap_us_per_round"] = 1e6 * after
        results[f"outbox_paces_{channels}_channels_speedup"] = before / after
    return results


if __name__ == "__main__":
    for key, value in measure().items():
        print(f"{key}: {value:,.2f}")
