"""Restarts of a real `salesbot serve` with replies waiting in a paced Slack channel
(RELIABILITY rule 8): after SIGTERM nothing stays leased, after kill -9 the next boot takes
the dead boot's leases over at once, and every reply is posted exactly once.

The time a restart takes to resume is measured in `bench/outbox.py`; here only the store's
state and what reached Slack are asserted.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.e2e.harness import eventually
from tests.fakes.slack_api import FakeSlackApi
from tests.integration.served import BOT, TEAM, Served, bot_keys, outbox_rows, owners


async def _eventually(check: Callable[[], bool], what: str) -> None:
    """`eventually` with room for interpreter start-ups on a loaded machine."""
    await eventually(check, what, limit_s=30)


async def test_restarts_release_or_take_over_every_lease_and_post_each_reply_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "serve.db"
    async with (
        FakeSlackApi(token="xoxb-test", team_id=TEAM, bot_user_id=BOT) as api,
        aiohttp.ClientSession() as session,
    ):
        first = await Served.start(db, api)
        for n in range(3):
            await first.prospect_writes(session, api, f"Hello, we are evaluating CRMs ({n})")
        await _eventually(lambda: len(bot_keys(api)) >= 1, "the first reply")
        await first.stop(signal.SIGTERM)

        # A graceful stop: the paced replies still waiting are pending, leased to nobody,
        # and the stopped boot is forgotten, so the next one may claim them at once.
        waiting = [(k, s, o) for k, s, o in outbox_rows(db) if s != "sent"]
        assert waiting
        assert {(s, o) for _k, s, o in waiting} == {("pending", None)}
        assert owners(db) == []

        second = await Served.start(db, api)
        for n in range(3):
            await second.prospect_writes(session, api, f"We have a $5000 budget ({n})")

        def leased() -> int:
            return sum(1 for _k, s, _o in outbox_rows(db) if s == "in_flight")

        # Two or more: one may be settled between this look and the kill, one stays leased.
        await _eventually(lambda: leased() >= 2, "replies claimed and pacing out")
        (killed, identity, _started, alive_until) = owners(db)[0]
        await second.stop(signal.SIGKILL)

        # Killed while it held leases on the replies still to pace out.
        held = [k for k, s, o in outbox_rows(db) if s == "in_flight" and o == killed]
        assert held
        third = await Served.start(db, api)
        await _eventually(lambda: not any(o == killed for _k, _s, o in outbox_rows(db)), "takeover")
        # Taken over by the next boot of the same slot, before the killed boot's heartbeat
        # would have run out (times as the two processes wrote them in the store).
        ((owner, slot, started, _alive),) = owners(db)
        assert (owner != killed, slot) == (True, identity)
        assert started < alive_until

        await _eventually(
            lambda: all(s == "sent" for _k, s, _o in outbox_rows(db)), "every reply sent"
        )
        await third.stop(signal.SIGTERM)

    keys = bot_keys(api)
    assert len(keys) == len(set(keys)), "a reply was posted twice"
    assert set(keys) == {k for k, _s, _o in outbox_rows(db)}
    assert owners(db) == []
