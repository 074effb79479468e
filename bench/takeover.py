"""Takeover of a dead replica's outbox (issue 17, "Measured"): how soon after a replica is
killed (kill -9) its claimed replies are sent by the survivor, against its lease.

Two `salesbot serve` replicas on one throwaway PostgreSQL cluster (`tests.support`), behind
the tests' round-robin proxy, talking to the tests' fake Slack Web API on 127.0.0.1 —
whose answers to `chat.postMessage` are held, so each replica is mid-send and holds claims.
One replica is frozen and killed while it holds some; Slack then answers again. Reported
per lease (`SALESBOT_OUTBOX_LEASE_MS`): when the victim's heartbeat had promised to be
alive until (its lease's end), and when the survivor sent the last of the victim's held
items, both from the kill, and how long after the lease ended the takeover completed.

    python -m bench.takeover [--leases 3000,10000]

Not part of `make bench` (it starts a PostgreSQL cluster); loopback only, nothing stays
running.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from tests.fakes.slack_api import FakeSlackApi
from tests.support.postgres import Cluster
from tests.support.postgres import start as start_cluster
from tests.support.replicas import BOT, TEAM, Fleet, prospect_message

PROSPECTS = 12
WAIT_S = 120.0
"""A safety net on a loaded machine, not a timing assertion."""
HOLDING = (
    "SELECT o.key, w.alive_until_ms FROM outbox AS o JOIN outbox_owners AS w "
    "ON w.owner = o.lease_owner WHERE o.status = 'in_flight' AND w.owner LIKE $1"
)


async def _schema(cluster: Cluster) -> str:
    name = f"b_{uuid.uuid4().hex}"
    conn = await asyncpg.connect(cluster.dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await conn.close()
    return f"{cluster.dsn}?search_path={name}"


async def _until(check: object, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + WAIT_S
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def one(cluster: Cluster, lease_ms: int, logs: Path) -> dict[str, float]:
    """Kill one of two replicas holding claims under `lease_ms`; the takeover's timing."""
    dsn = await _schema(cluster)
    env = {"SALESBOT_OUTBOX_LEASE_MS": str(lease_ms)}
    async with (
        FakeSlackApi(token="xoxb-test", team_id=TEAM, bot_user_id=BOT) as api,
        Fleet.start(2, dsn, api, logs, env) as fleet,
    ):
        victim = fleet.replicas[0]
        answers = api.hang_next("chat.postMessage", times=10_000)
        requests = [
            prospect_message(api, f"C0TAKE{n}", f"U0T{n}", "Hi, we are evaluating CRMs")
            for n in range(PROSPECTS)
        ]
        load = asyncio.gather(*(fleet.deliver(r) for r in requests))
        watcher = await asyncpg.connect(dsn)
        try:
            pattern = f"%:{victim.pid}:%"

            async def holding() -> bool:
                return bool(await watcher.fetch(HOLDING, pattern))

            await _until(holding, "the victim to hold a claim")
            victim.freeze()
            held = await watcher.fetch(HOLDING, pattern)
            killed_ms = time.time() * 1000
            await victim.kill()
            answers.set()
            await load
            keys = [row["key"] for row in held]
            alive_until = max(int(row["alive_until_ms"]) for row in held)

            async def taken_over() -> bool:
                sent = await watcher.fetch(
                    "SELECT COUNT(*) FROM outbox WHERE key = ANY($1::text[]) AND status = 'sent'",
                    keys,
                )
                return int(sent[0][0]) == len(keys)

            await _until(taken_over, "the survivor to send the victim's replies")
            last_sent = await watcher.fetchval(
                "SELECT MAX(sent_at_ms) FROM outbox WHERE key = ANY($1::text[])", keys
            )
        finally:
            await watcher.close()
    return {
        f"takeover_lease_{lease_ms}_ms_held_items": float(len(keys)),
        f"takeover_lease_{lease_ms}_ms_lease_end_after_kill_ms": alive_until - killed_ms,
        f"takeover_lease_{lease_ms}_ms_done_after_kill_ms": int(last_sent) - killed_ms,
        f"takeover_lease_{lease_ms}_ms_done_after_lease_end_ms": int(last_sent) - alive_until,
    }


async def measure_async(leases: list[int]) -> dict[str, float]:
    cluster = start_cluster()
    try:
        results: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="salesbot-takeover-") as logs:
            for lease_ms in leases:
                results.update(await one(cluster, lease_ms, Path(logs)))
        return results
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.takeover", description=__doc__)
    parser.add_argument("--leases", default="3000,10000", help="leases in ms, comma-separated")
    options = parser.parse_args(argv)
    leases = [int(part) for part in options.leases.split(",") if part.strip()]
    for name, value in asyncio.run(measure_async(leases)).items():
        print(f"{name:<58} {value:>10,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
