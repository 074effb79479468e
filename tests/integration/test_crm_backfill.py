"""`salesbot crm backfill` (issue 16, item 4) against the fake HubSpot on 127.0.0.1: the
conversations a store holds from before `[crm]` become exactly one contact, one deal, one
line item per quote and their notes; every write goes through the normal path (events that
replay with 0 differences, the outbox); a second run writes nothing new; a write HubSpot
refuses for good is counted as failed, alerted, and written again by the next run."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.policy_loader import load_policy
from bot.service import build_service
from bot.settings import Settings
from domain.crm_sync import CRM_ALERT_TITLE
from domain.events import CrmSyncRequested, CrmSyncSettled
from domain.inbound import Actor, CommandInvoked, LeadArrived, LeadDetails
from storage.sqlite import SqliteStore
from tests.integration.test_crm_hubspot_contract import TOKEN, FakeHubSpot
from tests.support.cli import run
from tests.unit.test_crm import CRM

REP = Actor(id="R", name="Rae", role="rep")
FEED = Actor(id="feed", role="prospect")
HOT = "I'm the CTO, $40k budget approved, we want to start next month"


async def seed_without_crm(db: Path) -> None:
    """Two leads decided under the default policy (no `[crm]`): one won with a quote, one
    only scored; a day apart."""
    ticks = itertools.count()
    async with await SqliteStore.open(db) as store:
        service = build_service(
            Settings(salesbot_db=str(db)),
            load_policy("default"),
            store,
            clock=lambda: 1_790_000_000_000 + 1000 * next(ticks),
        )
        await service.runtime.start()
        lead = LeadDetails(name="Dana Fox", email="dana@example.com", company="Foxco", message=HOT)
        await service.handle(
            LeadArrived(delivery_id="l1", conversation_id="lead-a", actor=FEED, lead=lead)
        )
        for delivery, command, args in (("q1", "quote", "10 pro"), ("w1", "won", "")):
            await service.handle(
                CommandInvoked(
                    delivery_id=delivery,
                    conversation_id="lead-a",
                    actor=REP,
                    command=command,
                    args=args,
                )
            )
        other = LeadDetails(name="Sam Lee", email="sam@example.org", message=HOT)
        await service.handle(
            LeadArrived(delivery_id="l2", conversation_id="lead-b", actor=FEED, lead=other)
        )


def outbox_cards(db: Path) -> list[dict[str, Any]]:
    """Every card waiting or sent in the outbox, as an operator's sqlite3 reads them."""
    with sqlite3.connect(db) as conn:
        payloads = [json.loads(p) for (p,) in conn.execute("SELECT payload FROM outbox")]
    return [c for p in payloads if (c := (p.get("reply") or {}).get("card"))]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    policy = tmp_path / "crm.toml"
    policy.write_text(f'extends = "default"\n{CRM}', encoding="utf-8")
    db = tmp_path / "salesbot.db"
    monkeypatch.setenv("SALESBOT_DB", str(db))
    monkeypatch.setenv("SALESBOT_POLICY", str(policy))
    monkeypatch.setenv("SALESBOT_CRM", "hubspot")
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    return db


async def test_backfill_writes_each_record_once_and_a_second_run_writes_nothing(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_without_crm(env)
    async with FakeHubSpot() as hubspot:
        hubspot.set_up_salesbot_properties()
        monkeypatch.setenv("HUBSPOT_API_URL", hubspot.base_url)
        code, out, err = await asyncio.to_thread(run, "crm", "backfill")
        assert (code, err) == (0, "")
        # lead-a: deal, quote, score note, transcript note; lead-b: deal, score note.
        assert out == (
            "hubspot: backfill of 2 conversation(s): created 6, updated 0, unchanged 0, failed 0\n"
        )
        counts = {kind: len(objects) for kind, objects in hubspot.objects.items()}
        assert counts == {"contacts": 2, "deals": 2, "line_items": 1, "notes": 3}
        stages = sorted(d["dealstage"] for d in hubspot.records("deals"))
        assert stages == ["closedwon", "qualifiedtobuy"]
        calls = len(hubspot.calls)

        code, out, _ = await asyncio.to_thread(run, "crm", "backfill", "--json")
        assert code == 0
        assert json.loads(out) == {
            "schema_version": 1,
            "crm": "hubspot",
            "conversations": 2,
            "created": 0,
            "updated": 0,
            "unchanged": 6,
            "failed": 0,
            "waiting": 0,
        }
        assert len(hubspot.calls) == calls  # not one request
        assert {kind: len(o) for kind, o in hubspot.objects.items()} == counts
        assert hubspot.spec_errors == []

    # Through the normal path: on the record, replayed with 0 differences.
    async with await SqliteStore.open(env) as store:
        events = [e.event for e in await store.load("lead-a")]
    requested = [e for e in events if isinstance(e, CrmSyncRequested)]
    settled = [e for e in events if isinstance(e, CrmSyncSettled)]
    assert [r.reason for r in requested] == [
        "backfill: new deal at won",
        f"backfill: quote {requested[1].quote_id} v1",
        "backfill: scored hot",
        "backfill: deal won",
    ]
    assert [(s.outcome, s.adapter) for s in settled] == [("sent", "hubspot")] * 4
    code, out, _ = await asyncio.to_thread(run, "replay", "--fail-on-diff")
    assert code == 0, out
    code, out, _ = await asyncio.to_thread(run, "audit", "lead-a")
    assert "The CRM deal was written in hubspot" in out


async def test_since_a_date_and_a_refusal_counted_failed_then_written_by_the_next_run(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_without_crm(env)
    async with FakeHubSpot() as hubspot:
        hubspot.set_up_salesbot_properties()
        monkeypatch.setenv("HUBSPOT_API_URL", hubspot.base_url)
        # Every conversation of the seed was active on 2026-09-21 (epoch 1 790 000 000 s).
        code, out, _ = await asyncio.to_thread(run, "crm", "backfill", "--since", "2030-01-01")
        assert (code, out) == (
            0,
            "hubspot: backfill of 0 conversation(s): created 0, updated 0, unchanged 0, failed 0\n",
        )
        hubspot.fail_next(
            "POST",
            "/crm/v3/objects/deals/batch/upsert",
            400,
            message="Property values were not valid: dealstage (sam@example.org)",
            category="VALIDATION_ERROR",
            when="lead-b",
        )
        code, out, _ = await asyncio.to_thread(run, "crm", "backfill", "--since", "2026-09-01")
        assert code == 1
        assert out == (
            "hubspot: backfill of 2 conversation(s): created 5, updated 0, unchanged 0, failed 1\n"
        )
        # The refusal was alerted (an outbox item for the team) and kept without the e-mail.
        async with await SqliteStore.open(env) as store:
            (dead,) = await store.dead_letters()
            events = [e.event for e in await store.load("lead-b")]
        assert dead.key.startswith("crm:writes:lead-b:")
        assert dead.last_error == "400: Property values were not valid: dealstage ([e-mail])"
        (refused,) = [e for e in events if isinstance(e, CrmSyncSettled)][:1]
        assert (refused.outcome, refused.external_id) == ("dead_lettered", "salesbot:deal:lead-b")
        (alert,) = [card for card in outbox_cards(env) if card["title"] == CRM_ALERT_TITLE]
        assert {f["label"]: f["value"] for f in alert["fields"]}["Record"] == (
            "deal salesbot:deal:lead-b"
        )
        assert "sam@example.org" not in json.dumps(alert)

        code, out, _ = await asyncio.to_thread(run, "crm", "backfill")
        assert (code, out) == (
            0,
            "hubspot: backfill of 2 conversation(s): created 0, updated 1, unchanged 5, failed 0\n",
        )
        (deal,) = hubspot.by("deals", "salesbot_id", "salesbot:deal:lead-b")
        assert deal["properties"]["dealstage"] == "qualifiedtobuy"
        assert len(hubspot.records("deals")) == 2


def test_backfill_without_crm_in_the_policy_says_so_in_one_line(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESBOT_POLICY", "default")
    code, out, err = run("crm", "backfill")
    assert (code, out) == (2, "")
    assert err == (
        "salesbot: error: the policy has no [crm] table: it syncs nothing "
        "(README, 'Policies': [crm])\n"
    )
