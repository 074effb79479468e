"""A policy stored by an earlier release reads back as exactly the policy it was: the same
canonical JSON, so the same version hash, whatever keys this release added (`[replies]`,
template `variants`) — which is what lets its decisions replay with 0 differences."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from domain.policy import policy_from_json

STORES = sorted((Path(__file__).parents[1] / "fixtures" / "stores").glob("release-*.db"))


def stored_policies(path: Path) -> list[tuple[str, str]]:
    # immutable: a committed fixture, read without the -shm and -wal files a WAL reader
    # would leave beside it in the checkout
    connection = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return list(connection.execute("SELECT version, canonical_json FROM policies"))
    finally:
        connection.close()


@pytest.mark.parametrize("fixture", STORES, ids=[path.stem for path in STORES])
def test_every_stored_policy_keeps_its_canonical_json_and_version(fixture: Path) -> None:
    policies = stored_policies(fixture)
    assert {policy_from_json(text).name for _, text in policies} == {"default", "seed"}
    for version, text in policies:
        policy = policy_from_json(text)
        assert policy.canonical_json() == text
        assert policy.version == version
        tables = json.loads(text)
        if "replies" not in tables:  # written before [replies]: the old rules apply
            assert not policy.replies.active
        for key in ("pursuit", "routing", "retention"):  # newer than every stored release
            assert key not in tables
            assert getattr(policy, key, None) is None
        handoff = tables.get("handoff") or {}
        for key in ("outcome_buttons", "unclaimed_reping_ms", "lead_room"):  # likewise
            assert key not in handoff
