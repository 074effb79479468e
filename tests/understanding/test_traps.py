"""The trap families of the understanding issue, as paraphrases: the target is ≥ 90% each.

Each line of `traps.jsonl` states only what its family is about (a budget amount must read as
budget; "price isn't the issue" must not read as a price objection …). The messages are kept
out of training, so a family passing is the reader generalising, not remembering.

Families not yet at the target have a measured floor in `trap_floors.json` (a ratchet: a
retrained model may not read a family worse than the shipped one did; raise the floor when it
reads better, and drop the entry once the family reaches the target).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.policy_loader import load_policy
from domain.understand import understand
from domain.understanding.reading import Reading

TRAP_FILES = ("traps.jsonl", "traps-fresh.jsonl")
"""`traps-fresh.jsonl` was written later, by a writer who saw neither the reader's lexicons, its
training data nor the first file: a family that passes both is generalising."""
TRAPS = [
    json.loads(line)
    for name in TRAP_FILES
    for line in Path(__file__).with_name(name).read_text(encoding="utf-8").splitlines()
    if line.strip()
]
FAMILIES: dict[str, list[dict[str, Any]]] = defaultdict(list)
for trap in TRAPS:
    FAMILIES[trap["family"]].append(trap)
POLICY = load_policy("default")
TARGET = 0.9
FLOORS: dict[str, float] = json.loads(
    Path(__file__).with_name("trap_floors.json").read_text(encoding="utf-8")
)
TODAY = date(2026, 12, 5)


def failures(reading: Reading, expect: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("band", "objection", "needs_human"):
        if key in expect and getattr(reading, key) != expect[key]:
            problems.append(f"{key} {getattr(reading, key)!r} != {expect[key]!r}")
    if "objection_not" in expect and reading.objection == expect["objection_not"]:
        problems.append(f"objection is {reading.objection!r}")
    for name, value in expect.get("signals", {}).items():
        if reading.signals[name] != value:
            problems.append(f"signal {name} is {reading.signals[name]}")
    for key, present in (("include", True), ("exclude", False)):
        for field in ("reasons", "intents"):
            for name in expect.get(f"{field}_{key}", ()):
                if (name in getattr(reading, field)) != present:
                    problems.append(f"{field[:-1]} {name} {'missing' if present else 'present'}")
    return problems


def test_every_family_has_at_least_15_paraphrases() -> None:
    assert len(FAMILIES) >= 14
    assert {name: len(items) for name, items in FAMILIES.items() if len(items) < 15} == {}


def test_floors_only_name_families_below_the_target() -> None:
    assert set(FLOORS) <= set(FAMILIES)
    assert all(floor < TARGET for floor in FLOORS.values())


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_family_passes_at_90_percent_or_its_measured_floor(family: str) -> None:
    missed = []
    for trap in FAMILIES[family]:
        reading = understand(POLICY, [trap["text"]], today=TODAY)
        problems = failures(reading, trap["expect"])
        if problems:
            missed.append((trap["text"], problems))
    passed = 1 - len(missed) / len(FAMILIES[family])
    required = FLOORS.get(family, TARGET)
    assert passed >= required, f"{family}: {passed:.0%} < {required:.0%}; missed: {missed}"
