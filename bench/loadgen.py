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

Each request is a new message in one of `conversations` lanes, round-robin; with
`messages_per_conversation` each lane runs conversations of that many messages back to
back, the lanes out of phase so every message of the script is equally represented at any
moment (`place`; `bench.ingest_bodies` builds message `m` of conversation `c`). In
`closed` mode every request is built and signed before the clock starts; in `open` mode each is built when it is due (Slack refuses a
signature more than five minutes old, and a soak runs longer); `warmup_s` of the same load precede the measured part (JIT-free Python still
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
    due_s: list[float] = field(default_factory=list)
    """When each of `latencies_s` was due (`time.perf_counter()`), in the same order: where
    in the run the slow ones fell."""
    errors: Counter[str] = field(default_factory=Counter)


def place(i: int, conversations: int, per: int | None) -> tuple[int, int]:
    """(conversation, message) of request `i`: round-robin over `conversations` lanes.
    Without `per` each lane is one conversation that gets ever more messages. With `per`,
    each lane runs conversations of `per` messages back to back, lane `l`'s first one
    joined at message `l % per`, so the lanes are out of phase: at every turn each message
    of the script is equally represented (with `conversations` a multiple of `per`), and
    after the first turn a `per`-th of the requests start a conversation. A short run and
    a long one, or a saturation and a run at half its rate, then send the same mix: with
    the lanes in phase, a run's mix depended on its length (the first messages of a
    conversation cost more, and after a handoff the bot only records what is said)."""
    lane, turn = i % conversations, i // conversations
    if not per:
        return lane, turn
    k, message = divmod(turn + lane % per, per)
    return k * conversations + lane, message


class Source:
    """Request `i`, built (and signed, with the current time) when asked."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.conversations = int(job["conversations"])
        self.per = job.get("messages_per_conversation")
        self.slack: SlackBodies | None = None
        self.teams: TeamsBodies | None = None
        if job["kind"] == "slack":
            self.slack = SlackBodies(job["secret"], run=job["run"], timestamp=int(time.time()))
        elif job["kind"] == "teams":
            self.teams = TeamsBodies(
                job["service_url"], run=job["run"], authorization=job.get("authorization")
            )
        else:
            raise ValueError(f"unknown kind {job['kind']!r}")

    def __call__(self, i: int, *, fresh: bool = False) -> Request:
        conversation, message = place(i, self.conversations, self.per)
        if self.slack is not None:
            # Slack refuses a signature more than 5 minutes old: long runs sign as they go.
            stamp = int(time.time()) if fresh else None
            return self.slack.request(conversation, message, timestamp=stamp)
        assert self.teams is not None
        return self.teams.request(conversation, message)


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
    tally.due_s.append(due)


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
    session: aiohttp.ClientSession, url: str, source: Source, first: int, count: int, rate: float
) -> tuple[Tally, float, int]:
    """Requests `first` … `first + count - 1`, each sent at its due time (start + k / rate)
    and built just before; (tally, elapsed, sent)."""
    tally = Tally()
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    for k in range(count):
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(_send(session, url, source(first + k, fresh=True), due, tally))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return tally, time.perf_counter() - start, count


WORST = 20
"""How many of the slowest requests `summary` places in the run."""


def worst(tally: Tally, start: float, count: int = WORST) -> list[list[float]]:
    """The `count` slowest requests as [seconds into the run when due, latency in ms],
    in the run's order: one stall shows as a cluster of neighbours, a periodic one as a
    beat."""
    slowest = sorted(zip(tally.latencies_s, tally.due_s, strict=True), reverse=True)[:count]
    return [
        [round(due - start, 3), round(1000 * latency, 1)]
        for latency, due in sorted(slowest, key=lambda pair: pair[1])
    ]


SLOW_S = 0.1
"""A request this late (100 ms) counts toward `slow_seconds`."""


def slow_seconds(tally: Tally, start: float) -> dict[str, int]:
    """Each second of the run (from 0) in which a request due then took over `SLOW_S`, and
    how many did: a stall's length and how often stalls come."""
    counts = Counter(
        int(due - start)
        for latency, due in zip(tally.latencies_s, tally.due_s, strict=True)
        if latency > SLOW_S
    )
    return {str(second): n for second, n in sorted(counts.items())}


def summary(
    tally: Tally, elapsed: float, cpu_s: float, sent: int, start: float = 0.0
) -> dict[str, Any]:
    """The run's report; `start` is when it began (`time.perf_counter()`), for `worst`."""
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
        "worst": worst(tally, start),
        "slow_seconds": slow_seconds(tally, start),
    }


async def preopen(session: aiohttp.ClientSession, url: str, count: int) -> None:
    """Open `count` kept-alive connections before the run (`count` requests to the
    server's `/healthz` at once). With the pool's `connections` equal to `count`, the
    generator then holds the same connections all run long — aiohttp hands idle ones out
    oldest first, so none expires — and the server's descriptors measure the server, not
    how many connections the generator happened to open during a latency spike."""
    health = url.split("/", 3)
    target = "/".join([*health[:3], "healthz"])

    async def one() -> None:
        async with session.get(target) as response:
            await response.read()

    await asyncio.gather(*(one() for _ in range(count)))


def _say(event: str) -> None:
    sys.stdout.write(json.dumps({"event": event}) + "\n")
    sys.stdout.flush()


async def run(job: dict[str, Any]) -> dict[str, Any]:
    url = job["url"]
    seconds = float(job["seconds"])
    warmup_s = float(job.get("warmup_s", 0))
    mode = job["mode"]
    source = Source(job)
    if mode == "open":
        rate = float(job["rate"])
        warm, timed = int(rate * warmup_s), int(rate * seconds)
        requests: list[Request] = []
    else:
        count = int(job["max_requests"])
        requests = [source(i) for i in range(count)]
    connector = aiohttp.TCPConnector(limit=int(job.get("connections", 256)))
    timeout = aiohttp.ClientTimeout(total=float(job.get("timeout_s", 30)))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if job.get("preopen"):
            await preopen(session, url, int(job["preopen"]))
        if mode == "open":
            if warm:
                await opened(session, url, source, 0, warm, rate)
            _say("start")
            began, cpu = time.perf_counter(), time.process_time()
            tally, elapsed, sent = await opened(session, url, source, warm, timed, rate)
            _say("end")
            exhausted = False
        else:
            concurrency = int(job["concurrency"])
            warm = 0
            if warmup_s:
                _, _, warm = await closed(session, url, requests, concurrency, warmup_s)
            _say("start")
            began, cpu = time.perf_counter(), time.process_time()
            tally, elapsed, sent = await closed(session, url, requests[warm:], concurrency, seconds)
            _say("end")
            exhausted = warm + sent >= count
    result = summary(tally, elapsed, time.process_time() - cpu, sent, began)
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
