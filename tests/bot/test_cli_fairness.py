"""`salesbot fairness` on a store written through the real runtime (issue 15, item 4): the
leads the penalty keeps from being pursued now, by band, source and size, the four-fifths
ratio between credit groups, a sweep, and `replay` with the penalty off listing the change."""

from __future__ import annotations

import asyncio
import itertools
import json
from decimal import Decimal
from pathlib import Path

import pytest

from bot.policy_loader import load_policy
from bot.runtime import Runtime
from domain.inbound import LeadArrived, LeadDetails
from storage.sqlite import SqliteStore
from tests.bot.seeded_store import PROSPECT, OneChannel
from tests.support.cli import run

BUYER = "We have a 50k budget, I'm the VP and we need it urgently, next month"
CURIOUS = "We need this urgently, can you tell me more?"

# (conversation, message, credit, source, company size): hot and urgent under the default
# reader except the warm "curious" lead; raw urgency 0.8 for all four.
LEADS = [
    ("lead-low", BUYER, 500, "web", 20),  # 0.8 → 0.16: moved out of "pursued now"
    ("lead-high", BUYER, 700, "web", 300),  # pursued either way
    ("lead-warm", CURIOUS, 550, "partner", 60),  # penalised, never pursued: warm
    ("lead-unknown", BUYER, None, "", None),  # credit unknown: never penalised
]


async def _seed(path: Path) -> None:
    ticks = itertools.count()
    async with await SqliteStore.open(path) as store:
        runtime = Runtime(
            store,
            load_policy("default"),
            OneChannel(),
            clock=lambda: 1_790_000_000_000 + 1000 * next(ticks),
        )
        await runtime.start()
        for conversation_id, message, credit, source, size in LEADS:
            lead = LeadDetails(
                name="Pat Lee",
                message=message,
                credit_score=credit,
                source=source,
                company_size=size,
            )
            await runtime.handle(
                LeadArrived(
                    delivery_id=f"d-{conversation_id}",
                    conversation_id=conversation_id,
                    actor=PROSPECT,
                    lead=lead,
                )
            )


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "salesbot.db"
    monkeypatch.setenv("SALESBOT_DB", str(path))
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    asyncio.run(_seed(path))
    return path


def test_the_report_counts_what_the_penalty_changed(store: Path) -> None:
    code, out, err = run("fairness", "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["leads"] == 4
    assert report["knobs"] == {"c0": 600, "lambda": "0.8", "min_urgency": "0.5"}
    overall = report["overall"]
    assert (overall["pursued_without_penalty"], overall["pursued_with_penalty"]) == (3, 2)
    assert overall["moved_out"] == 1
    # (−0.64 + 0 − 0.64 + 0) / 4
    assert Decimal(overall["mean_urgency_change"]) == Decimal("-0.32")
    bands = {g["group"]: (g["leads"], g["moved_out"]) for g in report["by_band"]}
    assert bands == {"hot": (3, 1), "warm": (1, 0)}
    sources = {g["group"]: g["moved_out"] for g in report["by_source"]}
    assert sources == {"web": 1, "partner": 0, "unknown": 0}
    sizes = {g["group"]: g["leads"] for g in report["by_company_size"]}
    assert sizes == {"1-49": 1, "50-199": 1, "200-999": 1, "unknown": 1}
    credit = report["credit_groups"]
    # Below 600: the low and the warm lead, 0 of 2 pursued; at or above: 1 of 1.
    assert (credit["below"], credit["at_or_above"], credit["unknown"]) == (2, 1, 1)
    assert Decimal(credit["ratio"]) == 0
    assert credit["flagged"] is True
    assert Decimal(credit["ratio_without_penalty"]) == Decimal("0.5")
    assert report["schema_version"] == 1
    assert report["generator_version"].startswith("salesbot/")


def test_the_text_report_and_a_sweep(store: Path) -> None:
    code, out, _ = run("fairness", "--sweep")
    assert code == 0
    assert "the penalty moved 1 out" in out
    assert "FLAGGED: below 0.8 (the four-fifths rule)" in out
    assert "Sweep" in out
    # With λ = 0 nothing is moved, and the ratio is the one without the penalty.
    code, out, _ = run("fairness", "--json", "--lambda", "0")
    report = json.loads(out)
    assert report["overall"]["moved_out"] == 0
    assert Decimal(report["credit_groups"]["ratio"]) == Decimal("0.5")
    # A lower threshold: c0 = 520 leaves only the 500 lead below it.
    code, out, _ = run("fairness", "--json", "--c0", "520")
    assert json.loads(out)["credit_groups"]["below"] == 1


def test_replay_with_the_penalty_off_lists_the_lead_it_would_pursue(
    store: Path, tmp_path: Path
) -> None:
    off = tmp_path / "off.toml"
    off.write_text('extends = "default"\n[fairness]\nlambda = 0\n', encoding="utf-8")
    code, out, _ = run("replay", "--policy", str(off), "--json", "--fail-on-diff")
    assert code == 1
    diffs = json.loads(out)["diffs"]
    assert {d["conversation_id"] for d in diffs} == {"lead-low"}
    team = next(d for d in diffs if d["aspect"] == "team")
    assert "not pursued now (urgency 0.16)" in team["recorded"]
    assert "Hot lead, pursue now" in team["replayed"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--lambda", "1.5"), "--lambda must be between 0 and 1"),
        (("--lambda", "x"), "--lambda must be a number"),
        (("--min-urgency", "-1"), "--min-urgency must be a finite number ≥ 0"),
        (("--policy", "seed"), "policy seed has no [pursuit]"),
    ],
)
def test_bad_knobs_get_one_line(store: Path, argv: tuple[str, ...], message: str) -> None:
    code, out, err = run("fairness", *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert message in err
