"""The capacity bench's judgement and search (`bench.capacity`): what makes a rate hold, and
a bisection that finds the highest rate a server sustains. No server runs here; the figures
are `python -m bench.capacity`'s."""

from __future__ import annotations

from typing import Any

import pytest

from bench.capacity import BACKLOG_S, holds, main, search


def result(acked: int, sent: int, p99_ms: float) -> dict[str, Any]:
    return {"acked": acked, "sent": sent, "latency_ms": {"p99": p99_ms}}


def test_a_rate_holds_only_if_every_request_is_answered_in_time_and_the_replies_keep_up() -> None:
    assert holds(result(1000, 1000, 40.0), unsent=10, rate=100.0, p99_ms=100.0)
    assert not holds(result(999, 1000, 40.0), unsent=10, rate=100.0, p99_ms=100.0)
    assert not holds(result(1000, 1000, 140.0), unsent=10, rate=100.0, p99_ms=100.0)
    backlog = int(100.0 * BACKLOG_S)
    assert holds(result(1000, 1000, 40.0), unsent=backlog, rate=100.0, p99_ms=100.0)
    assert not holds(result(1000, 1000, 40.0), unsent=backlog + 1, rate=100.0, p99_ms=100.0)


async def test_the_search_finds_the_highest_rate_that_holds_within_its_resolution() -> None:
    tried: list[float] = []

    async def server_that_sustains_300(rate: float) -> bool:
        tried.append(rate)
        return rate <= 300.0

    sustained, probes = await search(server_that_sustains_300, 800.0, steps=6)
    assert 300.0 - 800.0 / 2**6 <= sustained <= 300.0
    assert [rate for rate, _ in probes] == tried
    assert tried[:3] == [400.0, 200.0, 300.0]
    assert [held for _, held in probes][:3] == [False, True, True]


async def test_a_server_that_sustains_nothing_gets_zero() -> None:
    async def never(rate: float) -> bool:
        return False

    sustained, probes = await search(never, 500.0, steps=3)
    assert sustained == 0.0
    assert [rate for rate, _ in probes] == [250.0, 125.0, 62.5]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "--steps must be at least 1"),
        (["--seconds", "0"], "--seconds and --p99-ms must be positive"),
        (["--p99-ms", "-5"], "--seconds and --p99-ms must be positive"),
    ],
)
def test_bad_options_are_one_line_and_run_nothing(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
