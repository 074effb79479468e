"""Benchmarks: how much of Slack's 3-second ack budget one decision uses, and the whole
product against the frameworks it sits on.

The machines are shared and noisy, so each figure is the best of several rounds and the
report compares figures from the same run as ratios. Run with `make bench`
(`python -m bench`): every bench but the long ones. `--only NAME,…` runs the named ones
(`--list` names them); `--growth` and `--soak` add the long ones (cost growth to a
1M-event store, a few minutes; the soak, `--soak-minutes`, 10 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import tracemalloc
from collections.abc import Callable
from decimal import Decimal

from bench import append as append_bench
from bench import append_pg as append_pg_bench
from bench import capacity as capacity_bench
from bench import commit_latency as commit_latency_bench
from bench import endpoints as endpoints_bench
from bench import growth as growth_bench
from bench import growth_pg as growth_pg_bench
from bench import outbox as outbox_bench
from bench import outbox_paces as outbox_paces_bench
from bench import queries as queries_bench
from bench import replay as replay_bench
from bench import replay_pg as replay_pg_bench
from bench import replicas as replicas_bench
from bench import runtime as runtime_bench
from bench import slack_ingest as slack_ingest_bench
from bench import soak as soak_bench
from bench import startup as startup_bench
from bench import takeover as takeover_bench
from bench import teams_ingest as teams_ingest_bench
from bench import understanding as understanding_bench
from bot.policy_loader import load_policy
from domain.decide import decide, new_conversation
from domain.inbound import (
    Actor,
    CommandInvoked,
    Inbound,
    LeadArrived,
    LeadDetails,
    MessagePosted,
)
from domain.narrative import assess_narrative
from domain.policy import Policy, Safeguards
from domain.quotes import QuoteRequest, compute_quote
from domain.scoring import score_lead
from domain.state import ConversationState

TEXT = "We have a $5000 budget, I am the head of sales and we want to start next month"
PROSPECT = Actor(id="P", name="Pat", role="prospect")
REP = Actor(id="R", name="Rae", role="rep")
NOW = 1_790_000_000_000


def best_rate(fn: Callable[[], object], *, seconds: float = 0.3, rounds: int = 5) -> float:
    """Calls per second: the best of `rounds` runs of about `seconds` each."""
    best = 0.0
    for _ in range(rounds):
        calls = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            fn()
            calls += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, calls / (now - start))
    return best


def conversation(policy: Policy, index: int) -> ConversationState:
    """A realistic five-inbound conversation: lead, two messages, a quote, an objection."""
    cid = f"bench-{index}"
    state = new_conversation(cid, policy)
    script: list[Inbound] = [
        LeadArrived(
            delivery_id=f"{cid}-0",
            conversation_id=cid,
            actor=PROSPECT,
            lead=LeadDetails(
                name="Pat Lee", company="Acme", message="Hello, tell me more", credit_score=640
            ),
        ),
        MessagePosted(
            delivery_id=f"{cid}-1",
            conversation_id=cid,
            actor=PROSPECT,
            text="We are a team of 40 and need a CRM",
        ),
        MessagePosted(delivery_id=f"{cid}-2", conversation_id=cid, actor=PROSPECT, text=TEXT),
        CommandInvoked(
            delivery_id=f"{cid}-3",
            conversation_id=cid,
            actor=REP,
            command="quote",
            args="40 pro 10%",
        ),
        MessagePosted(
            delivery_id=f"{cid}-4",
            conversation_id=cid,
            actor=PROSPECT,
            text="Hmm, that is too expensive for us",
        ),
    ]
    for i, inbound in enumerate(script):
        state = decide(state, inbound, policy, NOW + i * 1000).state
    return state


def domain_figures() -> dict[str, float]:
    """The decision primitives and `decide`, in this process."""
    default, seed = load_policy("default"), load_policy("seed")
    results: dict[str, float] = {}
    results["score_default_per_s"] = best_rate(lambda: score_lead(TEXT, default.scoring))
    results["score_seed_per_s"] = best_rate(lambda: score_lead(TEXT, seed.scoring))
    results["narrative_default_per_s"] = best_rate(
        lambda: assess_narrative(TEXT, default.narrative, default.fairness, 580)
    )
    request = QuoteRequest(qty=40, sku="PRO", discount=Decimal("0.1"))
    results["quote_per_s"] = best_rate(lambda: compute_quote(request, default.catalog, now_ms=NOW))
    counter = iter(range(10**9))
    results["conversation_5_inbounds_per_s"] = best_rate(
        lambda: conversation(default, next(counter))
    )
    results["decide_per_s"] = results["conversation_5_inbounds_per_s"] * 5
    # The same conversations under the default policy with its safeguards switched off
    # (prospect view, roles matrix, four eyes, claims guard, flood limit): what they cost.
    unguarded = default.model_copy(update={"safeguards": Safeguards()})
    results["decide_without_safeguards_per_s"] = 5 * best_rate(
        lambda: conversation(unguarded, next(counter))
    )
    # The same conversations read with the policy's lexicons instead of the trained reader.
    lexicons = default.model_copy(update={"understanding": None})
    results["decide_with_lexicons_per_s"] = 5 * best_rate(
        lambda: conversation(lexicons, next(counter))
    )
    results["policy_load_per_s"] = best_rate(lambda: load_policy("default"), rounds=3)

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    states = [conversation(default, 10**6 + i) for i in range(100)]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    results["state_bytes_per_conversation"] = grown / len(states)
    return results


def domain_ratios(results: dict[str, float]) -> dict[str, float]:
    ratios = {
        "token_vs_substring_scoring_cost": results["score_seed_per_s"]
        / results["score_default_per_s"],
        "decide_cost_in_scores": results["score_default_per_s"] / results["decide_per_s"],
        "share_of_3s_ack_budget_per_decision": (1 / results["decide_per_s"]) / 3.0,
        "safeguards_cost_per_decide": results["decide_without_safeguards_per_s"]
        / results["decide_per_s"],
        "reader_cost_per_decide": results["decide_with_lexicons_per_s"] / results["decide_per_s"],
    }
    if "understand_seed_lexicons_msgs_per_s" in results:
        ratios["reader_vs_seed_lexicons_cost"] = (
            results["understand_seed_lexicons_msgs_per_s"] / results["understand_reader_msgs_per_s"]
        )
    return ratios


Bench = Callable[[argparse.Namespace], dict[str, float]]

BENCHES: dict[str, Bench] = {
    "domain": lambda _: domain_figures(),
    "understanding": lambda _: understanding_bench.measure(),
    "runtime": lambda _: asyncio.run(runtime_bench.measure()),
    "append": lambda _: {f"append_{k}": v for k, v in asyncio.run(append_bench.measure()).items()},
    "commit_latency": lambda _: asyncio.run(commit_latency_bench.measure()),
    "endpoints": lambda _: asyncio.run(endpoints_bench.measure()),
    "outbox": lambda _: asyncio.run(outbox_bench.measure()),
    "outbox_paces": lambda _: outbox_paces_bench.measure(),
    "queries": lambda _: asyncio.run(queries_bench.measure()),
    "startup": lambda _: startup_bench.measure(),
    "slack_ingest": lambda _: asyncio.run(slack_ingest_bench.measure()),
    "teams_ingest": lambda _: asyncio.run(teams_ingest_bench.measure()),
    "growth": lambda options: growth_bench.measure(options.events),
    "growth_pg": lambda options: growth_pg_bench.measure(options.events),
    "soak": lambda options: asyncio.run(soak_bench.measure(options.soak_minutes)),
    "capacity": lambda _: asyncio.run(capacity_bench.measure()),
    "replay": lambda options: replay_bench.measure(options.replay_events),
    "replicas": lambda options: asyncio.run(replicas_bench.measure(options.replicas_seconds)),
    "takeover": lambda _: asyncio.run(takeover_bench.measure_async([3000, 10000])),
    "append_pg": lambda _: asyncio.run(append_pg_bench.measure()),
    "replay_pg": lambda options: replay_pg_bench.measure(options.replay_events),
}
"""Every bench by name, in the order `make bench` runs them."""

LONG = (
    "growth",
    "growth_pg",
    "soak",
    "capacity",
    "replay",
    "replicas",
    "takeover",
    "append_pg",
    "replay_pg",
)
"""Not run by default: minutes each (`--growth` runs both growth benches, `--soak`, or
`--only`, e.g. `--only capacity`); `replicas`, `takeover`, `append_pg` and `replay_pg`
start throwaway PostgreSQL clusters of their own."""


def chosen(options: argparse.Namespace) -> list[str]:
    """The benches to run: `--only`'s, else every one but the long ones (plus those asked
    for with `--growth` / `--soak`)."""
    if options.only:
        names = [name.strip() for name in options.only.split(",") if name.strip()]
        unknown = [name for name in names if name not in BENCHES]
        if unknown:
            raise SystemExit(f"unknown bench {', '.join(unknown)}; --list names them")
        return names
    wanted = {"growth": options.growth, "growth_pg": options.growth, "soak": options.soak}
    return [name for name in BENCHES if name not in LONG or wanted.get(name, False)]


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--list", action="store_true", help="name every bench and exit")
    parser.add_argument("--only", metavar="NAME,…", help="run only these benches")
    parser.add_argument("--growth", action="store_true", help="add cost growth (minutes)")
    parser.add_argument("--events", type=int, default=1_000_000, help="growth's large store")
    parser.add_argument("--soak", action="store_true", help="add the soak (minutes)")
    parser.add_argument("--soak-minutes", type=float, default=10.0)
    parser.add_argument("--replay-events", type=int, default=100_000, help="replay's store")
    parser.add_argument("--replicas-seconds", type=float, default=8.0, help="each replicas run")
    return parser


def main(argv: list[str] | None = None) -> int:
    options = parser().parse_args(argv)
    if options.list:
        for name in BENCHES:
            print(f"{name}{'  (long: not run by default)' if name in LONG else ''}")
        return 0
    results: dict[str, float] = {}
    for name in chosen(options):
        results.update(BENCHES[name](options))
    ratios: dict[str, float] = {}
    if "decide_per_s" in results:
        ratios.update(domain_ratios(results))
    if "startup_python_c_pass_ms" in results:
        ratios.update(startup_bench.ratios(results))
    if options.json:
        print(json.dumps({"results": results, "ratios": ratios}, indent=2))
    else:
        for name, value in {**results, **ratios}.items():
            print(f"{name:42} {value:14,.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
