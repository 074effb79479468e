"""Domain benchmarks: how much of Slack's 3-second ack budget one decision uses.

The machines are shared and noisy, so each figure is the best of several rounds and the
report compares figures from the same run as ratios. Run with `make bench`.
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
from bench import endpoints as endpoints_bench
from bench import outbox as outbox_bench
from bench import queries as queries_bench
from bench import runtime as runtime_bench
from bench import startup as startup_bench
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


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
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

    results.update(understanding_bench.measure())
    results.update(asyncio.run(runtime_bench.measure()))
    results.update({f"append_{k}": v for k, v in asyncio.run(append_bench.measure()).items()})
    results.update(asyncio.run(endpoints_bench.measure()))
    results.update(asyncio.run(outbox_bench.measure()))
    results.update(asyncio.run(queries_bench.measure()))
    results.update(startup_bench.measure())

    ratios = {
        "token_vs_substring_scoring_cost": results["score_seed_per_s"]
        / results["score_default_per_s"],
        "decide_cost_in_scores": results["score_default_per_s"] / results["decide_per_s"],
        "share_of_3s_ack_budget_per_decision": (1 / results["decide_per_s"]) / 3.0,
        "reader_cost_per_decide": results["decide_with_lexicons_per_s"] / results["decide_per_s"],
        "reader_vs_seed_lexicons_cost": results["understand_seed_lexicons_msgs_per_s"]
        / results["understand_reader_msgs_per_s"],
        "safeguards_cost_per_decide": results["decide_without_safeguards_per_s"]
        / results["decide_per_s"],
        **startup_bench.ratios(results),
    }
    if args.json:
        print(json.dumps({"results": results, "ratios": ratios}, indent=2))
    else:
        for name, value in {**results, **ratios}.items():
            print(f"{name:42} {value:14,.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
