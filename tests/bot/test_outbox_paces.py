"""The outbox worker's paces (`bot.outbox_paces.Paces`): a channel's pace only moves later,
and forgetting the passed ones forgets exactly those, whatever order they were held in —
checked against the plain dict the worker used to rebuild every round."""

from __future__ import annotations

import random

from bot.outbox_paces import Paces


def test_a_pace_only_moves_later() -> None:
    paces = Paces()
    assert paces.get("C1") == 0
    assert "C1" not in paces.channels()
    paces.hold("C1", 2_000)
    paces.hold("C1", 1_500)  # an earlier pace does not shorten it
    assert paces.get("C1") == 2_000
    paces.hold("C1", 3_000)
    assert paces.get("C1") == 3_000


def test_a_pace_superseded_by_a_later_one_is_not_forgotten_at_the_earlier_time() -> None:
    paces = Paces()
    paces.hold("C1", 1_000)
    paces.hold("C1", 5_000)
    paces.hold("C2", 1_000)
    paces.forget_passed(1_000)
    assert set(paces.channels()) == {"C1"}
    assert paces.get("C1") == 5_000
    paces.forget_passed(4_999)
    assert set(paces.channels()) == {"C1"}
    paces.forget_passed(5_000)
    assert not paces.channels()
    paces.hold("C1", 4_000)  # after it was forgotten, any pace holds again
    assert paces.get("C1") == 4_000


def test_forgetting_keeps_exactly_what_the_rebuilt_dict_kept() -> None:
    rng = random.Random(18)
    paces = Paces()
    reference: dict[str, int] = {}
    now = 1_790_000_000_000  # epoch ms, as the worker's clock gives
    for _ in range(5_000):
        now += rng.randrange(0, 40)
        if rng.random() < 0.7:
            channel = f"C{rng.randrange(60)}"
            until = now + rng.randrange(-50, 1_200)
            paces.hold(channel, until)
            reference[channel] = max(reference.get(channel, 0), until)
        else:
            paces.forget_passed(now)
            reference = {c: t for c, t in reference.items() if t > now}
        assert dict(zip(paces.channels(), map(paces.get, paces.channels()), strict=True)) == (
            reference
        )


def test_the_paces_among_channels_are_those_paced_and_not_skipped() -> None:
    paces = Paces()
    for n in range(6):
        paces.hold(f"C{n}", 1_000 + n)
    few = {"C1", "C4", "C9"}  # fewer than the paced channels: walked themselves
    many = {f"C{n}" for n in range(0, 40, 2)}  # more: the paced channels are walked
    assert sorted(paces.among(few, skip={"C4"})) == [1_001]
    assert sorted(paces.among(many, skip={"C2"})) == [1_000, 1_004]
    assert paces.among(set(), skip=set()) == []
