"""The load generator of the whole-product ingest benches: a process of its own, so that
its work is not charged to the server it measures (`python -m bench.loadgen JOB`, JOB a JSON
object; it prints one JSON object of results).

Two ways to load a server, both over HTTP/1.1 keep-alive connections on 127.0.0.1:

- `closed`: `concurrency` requests always in flight, each sent as soon as one is answered,
  for `seconds`: the server's maximum (acknowledgements per second at saturation);
- `open`: requests sent on a fixed schedule at `rate` per second for `seconds`, whether or
  not earlier ones were answered; a request's latency is counted from the moment it was
  due, not from when it left, so a server (or generator) that falls behind shows it in the
  percentiles instead of quietly sending less (no coordinated omission).

Each request is a new message: request `i` is message `i // conversations` of conversation
`i % conversations` (`bench.ingest_bodies`). All requests are built and signed before the
clock starts; `warmup_s` of the same load precede the measured part (JIT-free Python still
warms: imports on first use, caches, the SQLite page cache).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.ingest_bodies import Request, SlackBodies, TeamsBodies
from bench.proc import percentile


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def build(job: dict[str, Any], count: int) -> list[Request]:
    kind = job["kind"]
    conversations = int(job["conversations"])
    bodies: SlackBodies | TeamsBodies
    if kind == "slack":
        bodies = SlackBodies(job["secret"], run=job["run"], timestamp=int(time.time()))
    elif kind == "teams":
        bodies = TeamsBodies(
            job["service_url"], run=job["run"], authorization=job.get("authorization")
        )
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return [bodies.request(i % conversations, i // conversations) for i in range(count)]


async def _send(
    session: aiohttp.ClientSession, url: str, request: Request, due: float, tally: Tally
) -> None:
    body, headers = request
    try:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            tally.statuses[response.status] += 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.errors[type(exc).__name__] += 1
        return
    tally.latencies_s.append(time.perf_counter() - due)


async def closed(
    session: aiohttp.ClientSession,
    url: str,
    requests: Sequence[Request],
    concurrency: int,
    seconds: float,
) -> tuple[Tally, float, int]:
    """(tally, elapsed, requests used) with `concurrency` in flight until `seconds` pass
    or the requests run out."""
    tally = Tally()
    cursor = iter(range(len(requests)))
    start = time.perf_counter()
    deadline = start + seconds

    async def worker() -> None:
        for i in cursor:
            await _send(session, url, requests[i], time.perf_counter(), tally)
            if time.perf_counter() >= deadline:
                return

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    used = sum(tally.statuses.values()) + sum(tally.errors.values())
    return tally, elapsed, used


async def opened(
    session: aiohttp.ClientSession, url: str, requests: Sequence[Request], rate: float
) -> tuple[Tally, float, int]:
    """Every request sent at its due time (start + i / rate); (tally, elapsed, sent)."""
    tally = Tally()
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    for i, request in enumerate(requests):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_send(session, url, request, due, tally)))
    await asyncio.gather(*tasks)
    return tally, time.perf_counter() - start, len(requests)


def summary(tally: Tally, elapsed: float, cpu_s: float, sent: int) -> dict[str, Any]:
    acked = sum(n for status, n in tally.statuses.items() if 200 <= status < 300)
    ordered = sorted(tally.latencies_s)
    return {
        "sent": sent,
        "acked": acked,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "errors": dict(tally.errors),
        "elapsed_s": elapsed,
        "acks_per_s": acked / elapsed if elapsed else 0.0,
        "latency_ms": {
            name: 1000 * percentile(ordered, q)
            for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9), ("max", 100))
        },
        "generator_cpu_share": cpu_s / elapsed if elapsed else 0.0,
    }


def _say(event: str) -> None:
    sys.stdout.write(json.dumps({"event": event}) + "\n")
    sys.stdout.flush()


async def run(job: dict[str, Any]) -> dict[str, Any]:
    url = job["url"]
    seconds = float(job["seconds"])
    warmup_s = float(job.get("warmup_s", 0))
    mode = job["mode"]
    if mode == "open":
        rate = float(job["rate"])
        warm, timed = int(rate * warmup_s), int(rate * seconds)
        count = warm + timed
    else:
        count = int(job["max_requests"])
    requests = build(job, count)
    connector = aiohttp.TCPConnector(limit=int(job.get("connections", 256)))
    timeout = aiohttp.ClientTimeout(total=float(job.get("timeout_s", 30)))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if mode == "open":
            if warm:
                await opened(session, url, requests[:warm], rate)
            _say("start")
            cpu = time.process_time()
            tally, elapsed, sent = await opened(session, url, requests[warm:], rate)
            _say("end")
            exhausted = False
        else:
            concurrency = int(job["concurrency"])
            warm = 0
            if warmup_s:
                _, _, warm = await closed(session, url, requests, concurrency, warmup_s)
            _say("start")
            cpu = time.process_time()
            tally, elapsed, sent = await closed(session, url, requests[warm:], concurrency, seconds)
            _say("end")
            exhausted = warm + sent >= count
    result = summary(tally, elapsed, time.process_time() - cpu, sent)
    result["warmup_requests"] = warm
    result["exhausted"] = exhausted
    return result


def main(argv: Sequence[str]) -> int:
    job = json.loads(argv[0]) if argv else json.load(sys.stdin)
    result = asyncio.run(run(job))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # nothing left to clean up; skip the interpreter's teardown


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
