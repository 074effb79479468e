"""The whole-product benches' helpers (issue 18): that what they send is what a platform
sends and the product treats as a prospect's message, that the generated store is a real
store, and that their arithmetic (percentiles, the soak's verdict) says what it claims.
The benches themselves are not run here (`make bench`)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from adapters.slack.inbound import SlackContext, from_event
from adapters.teams.inbound import TeamsContext, from_activity
from bench import growth, loadgen, proc, profile
from bench.ingest import median_run, saturate_rounds, spread
from bench.ingest_bodies import BOT, TEAM, SlackBodies, TeamsBodies
from bench.loadgen import place
from bench.soak import read_gauges, verdict
from domain.inbound import MessagePosted
from tests.support.cli import run
from tests.teams.signing import KEY

SECRET = "bench-secret"


async def _not_guest(user: str) -> bool:
    return False


def test_slack_bodies_are_signed_prospect_messages_one_conversation_per_channel():
    bodies = SlackBodies(SECRET, run="t", timestamp=int(time.time()))
    ctx = SlackContext(team_id=TEAM, bot_user_id=BOT)
    seen = {}
    for conversation, message in ((0, 0), (0, 1), (1, 0)):
        raw, headers = bodies.request(conversation, message)
        assert SignatureVerifier(SECRET).is_valid_request(raw, headers)
        inbound = asyncio.run(from_event(json.loads(raw), ctx, _not_guest))
        assert isinstance(inbound, MessagePosted)
        assert inbound.actor.role == "prospect"
        seen[(conversation, message)] = inbound
    assert seen[(0, 0)].conversation_id == seen[(0, 1)].conversation_id
    assert seen[(0, 0)].conversation_id != seen[(1, 0)].conversation_id
    assert len({inbound.delivery_id for inbound in seen.values()}) == 3


def test_a_slack_body_signed_later_carries_the_later_timestamp():
    bodies = SlackBodies(SECRET, run="t", timestamp=1_000)
    now = int(time.time())
    raw, headers = bodies.request(3, 4, timestamp=now)
    assert headers["X-Slack-Request-Timestamp"] == str(now)
    assert SignatureVerifier(SECRET).is_valid_request(raw, headers)


def test_teams_bodies_are_prospect_messages_in_their_own_conversations():
    bodies = TeamsBodies("http://127.0.0.1:9/", run="t")
    ctx = TeamsContext(tenant_id="tenant-0001", bot_id="28:bot", action_key=KEY)
    first = from_activity(json.loads(bodies.request(0, 0)[0]), ctx)
    second = from_activity(json.loads(bodies.request(1, 0)[0]), ctx)
    assert isinstance(first, MessagePosted)
    assert isinstance(second, MessagePosted)
    assert first.actor.role == "prospect"
    assert first.conversation_id != second.conversation_id


def test_requests_rotate_to_new_conversations_after_their_share_of_messages():
    assert [place(i, 2, None) for i in range(5)] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]
    assert [place(i, 2, 2) for i in range(6)] == [(0, 0), (1, 1), (0, 1), (3, 0), (2, 0), (3, 1)]


def test_every_message_of_the_script_is_equally_sent_however_long_the_run():
    conversations, per = 14, 7
    turns = [
        [place(i, conversations, per) for i in range(t, t + conversations)]
        for t in range(0, 30 * conversations, conversations)
    ]
    for turn in turns:
        assert Counter(message for _, message in turn) == dict.fromkeys(range(per), 2)
    seen: dict[int, list[int]] = {}
    for conversation, message in (p for turn in turns for p in turn):
        seen.setdefault(conversation, []).append(message)
    for conversation, messages in seen.items():  # in order, none twice, none after the last
        first = conversation % per if conversation < conversations else 0
        assert messages == list(range(first, first + len(messages)))
        assert messages[-1] < per


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 1001)]
    assert proc.percentile(values, 50) == 500
    assert proc.percentile(values, 99) == 990
    assert proc.percentile(values, 99.9) == 999
    assert proc.percentile(values, 100) == 1000
    assert proc.percentile([7.0], 99.9) == 7.0


def test_the_median_run_is_reported_whole():
    runs = [{"acks_per_s": 510.0}, {"acks_per_s": 430.0}, {"acks_per_s": 700.0}]
    assert median_run(runs) == 0
    assert median_run([*runs, {"acks_per_s": 600.0}]) == 0  # the lower of the middle two
    assert median_run(runs[1:2]) == 0


def _run(acks: float) -> dict[str, object]:
    return {
        "acks_per_s": acks,
        "server_cpu_ms_per_request": 1000 / acks,
        "server_cpu_share": 1.0,
        "generator_cpu_share": 0.1,
        "sent": 10 * acks,
        "latency_ms": {"p50": 1.0, "p99.9": 9.0},
    }


async def test_rounds_take_turns_and_report_each_servers_median_run_with_the_spread():
    order: list[str] = []
    speeds = {"bolt": [900.0, 1000.0, 800.0], "salesbot": [300.0, 500.0, 400.0]}

    async def bolt(turn: int) -> dict[str, object]:
        order.append(f"bolt {turn}")
        return _run(speeds["bolt"][turn])

    async def salesbot(turn: int) -> tuple[dict[str, object], dict[str, int]]:
        order.append(f"salesbot {turn}")
        counts = {"pending": turn, "in_flight": 0, "sent": 100, "dead": 0}
        return _run(speeds["salesbot"][turn]), counts

    async def floor(turn: int) -> dict[str, object]:
        order.append(f"floor {turn}")
        return _run(600.0)

    runs = await saturate_rounds(3, bolt, salesbot, floor)
    assert order[:3] == ["bolt 0", "salesbot 0", "floor 0"]
    assert len(order) == 9
    figures = runs.figures("x", "bolt")
    assert figures["x_bolt_saturated_acks_per_s"] == 900.0  # the median run, whole
    assert figures["x_salesbot_saturated_acks_per_s"] == 400.0
    assert figures["x_salesbot_saturated_backlog_at_end"] == 2.0  # that run's own outbox
    assert figures["x_salesbot_saturated_latency_p99_9_ms"] == 9.0
    assert figures["x_rounds"] == 3.0
    assert figures["x_messages_per_conversation"] == 7.0
    assert spread(runs.salesbot_runs, runs.baseline) == (300 / 900, 500 / 1000)
    without = await saturate_rounds(1, None, salesbot, floor)
    assert "x_bolt_saturated_acks_per_s" not in without.figures("x", "bolt")


def test_the_soak_reads_the_servers_bounded_memory_from_its_metrics():
    text = (
        "# HELP salesbot_state_cache_bytes x\n# TYPE salesbot_state_cache_bytes gauge\n"
        "salesbot_state_cache_bytes 4.194304e+06\n"
        "salesbot_state_cache_entries 615.0\n"
        "salesbot_dedupe_view_entries 112100.0\n"
    )
    assert read_gauges(text) == {
        "state_cache_bytes": 4_194_304.0,
        "state_cache_entries": 615.0,
        "dedupe_entries": 112_100.0,
    }
    assert math.isnan(read_gauges("salesbot_state_cache_entries 1.0\n")["dedupe_entries"])


def test_the_soak_verdict_flags_growth_after_the_warm_up_only():
    warm_then_flat = [50.0, 80.0, 100.0, 104.0, 97.0, 109.0]
    flat, deviation = verdict(warm_then_flat, 2)
    assert flat
    assert deviation == pytest.approx(0.09)
    growing = [100.0, 103.0, 107.0, 112.0]
    flat, deviation = verdict(growing, 0)
    assert not flat
    assert deviation == pytest.approx(0.12)


def test_a_process_reads_its_own_cpu_memory_and_descriptors():
    pid = os.getpid()
    before = proc.sample(pid)
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    after = proc.sample(pid)
    assert after.cpu_s > before.cpu_s
    assert after.rss_bytes > 10 * 2**20
    assert after.fds >= 3


def test_a_process_is_charged_for_the_processes_it_started():
    """salesbot's SQLite writer runs in a child: its CPU, memory and descriptors are the
    server's cost too."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nt = time.process_time() + 0.3\n"
            "while time.process_time() < t: pass\nprint(flush=True)\nsys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        child.stdout.readline()  # it has used its 0.3 s of CPU
        assert child.pid in proc.descendants(os.getpid())
        alone = proc.cpu_seconds(os.getpid())
        together = proc.sample(os.getpid())
        assert together.cpu_s - alone >= 0.25  # /proc counts in ticks (10 ms)
        assert together.rss_bytes >= proc.rss_bytes(os.getpid()) + proc.rss_bytes(child.pid)
    finally:
        child.kill()
        child.wait()


async def test_descriptors_are_told_apart_by_who_opened_the_connection():
    """The soak tells a leak from a pool: connections accepted on the server's port, its
    own outbound ones, and the rest."""
    accepted: list[asyncio.StreamWriter] = []

    async def keep(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(keep, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    before = proc.fd_kinds(os.getpid(), port)
    clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]

    async def all_accepted() -> None:
        while len(accepted) < 3:
            await asyncio.sleep(0)

    await asyncio.wait_for(all_accepted(), timeout=10)
    during = proc.fd_kinds(os.getpid(), port)
    for _, writer in clients:
        writer.close()
    for writer in accepted:
        writer.close()
    server.close()
    await server.wait_closed()
    assert during["accepted"] == before["accepted"] + 3
    assert during["outbound"] == before["outbound"] + 3  # this process is the client too
    assert during["other"] == before["other"]


async def test_the_generator_opens_its_connections_before_the_run():
    peers: set[object] = set()

    async def health(request: web.Request) -> web.Response:
        transport = request.transport
        peers.add(transport.get_extra_info("peername") if transport else None)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        connector = aiohttp.TCPConnector(limit=5)
        async with aiohttp.ClientSession(connector=connector) as session:
            await loadgen.preopen(session, f"http://127.0.0.1:{port}/slack/events", 5)
    finally:
        await runner.cleanup()
    assert len(peers) == 5


def test_the_grown_store_holds_real_conversations(tmp_path: Path, monkeypatch):
    """Cloned conversations open with their own keys, their chains hold, and every
    decision in them replays: `salesbot verify` checks all of it."""
    path = tmp_path / "growth.db"
    per = asyncio.run(growth.write_template(path))
    growth.clone(path, 1, 3)
    assert growth.counts(path) == (4, 4 * per)
    monkeypatch.setenv("SALESBOT_ENV_FILE", os.devnull)
    code, out, err = run("verify", "--db", str(path))
    assert code == 0, out + err
    assert "4 conversations" in out


def test_a_profile_counts_a_function_once_per_sample_and_keeps_the_product_apart():
    raw = (
        "run (asyncio/events.py:78);handle (bot/runtime.py:163);decide (domain/decide.py:47) 6\n"
        "run (asyncio/events.py:78);handle (bot/runtime.py:163);"
        "handle (bot/runtime.py:163);commit (storage/sqlite.py:409) 2\n"
        "poll (selectors.py:451) 2\n"
    )
    total, inclusive, own = profile.summarise(raw)
    assert total == 10
    assert inclusive["handle (bot/runtime.py:163)"] == 8
    assert own["decide (domain/decide.py:47)"] == 6
    report = profile.report(raw)
    product = report.split("cumulative, everything")[0]
    assert "80.0 %  handle (bot/runtime.py:163)" in product
    assert "asyncio" not in product


def test_make_bench_leaves_the_long_benches_out_unless_asked():
    from bench.__main__ import BENCHES, LONG, chosen, parser

    default = chosen(parser().parse_args([]))
    assert "slack_ingest" in default
    assert "teams_ingest" in default
    # The specification of what `make bench` leaves out: minutes each, or a cluster of its own.
    assert set(LONG) == {
        "growth",
        "growth_pg",
        "soak",
        "capacity",
        "replay",
        "replicas",
        "takeover",
        "append_pg",
        "replay_pg",
    }
    short = [n for n in BENCHES if n not in LONG]
    assert default == short
    assert chosen(parser().parse_args(["--soak"])) == [*short, "soak"]
    assert chosen(parser().parse_args(["--growth"])) == [*short, "growth", "growth_pg"]
    assert chosen(parser().parse_args(["--only", "takeover"])) == ["takeover"]
    assert chosen(parser().parse_args(["--only", "capacity"])) == ["capacity"]
    assert chosen(parser().parse_args(["--only", "append_pg"])) == ["append_pg"]
    assert chosen(parser().parse_args(["--only", "growth, slack_ingest"])) == [
        "growth",
        "slack_ingest",
    ]
    with pytest.raises(SystemExit, match="unknown bench nope"):
        chosen(parser().parse_args(["--only", "nope"]))
