"""A real `salesbot serve` killed with SIGKILL in the middle of a CRM write (issue 16,
contract tests): HubSpot (the fake on 127.0.0.1) has applied the deal's upsert but never
answers; the process dies holding the lease; the next boot takes the lease over, sends the
write again — an upsert by the deal's external id — and sends everything after it. HubSpot
then holds exactly one record per artifact, and each write's outcome is recorded once.

(429 with Retry-After, 5xx, timeouts and a 400 through the outbox:
`test_crm_hubspot_contract.py::test_through_the_outbox_every_fault_…`.)"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from domain.events import EventEnvelope
from tests.e2e.harness import eventually
from tests.integration.served import ROOT, outbox_rows, owners
from tests.integration.test_crm_hubspot_contract import TOKEN, FakeHubSpot
from tests.unit.test_crm import CRM

LEADS_TOKEN = "leads-token-for-the-kill-test"
HOT = "I'm the CTO, we have a $40k budget approved and want to start next month"


async def _eventually(check: Callable[[], bool], what: str) -> None:
    """Room for interpreter start-ups on a loaded machine."""
    await eventually(check, what, limit_s=45)


class Serve:
    """`salesbot serve` with HubSpot as its CRM; its log goes to a file (never a full pipe)."""

    def __init__(self, process: asyncio.subprocess.Process, base_url: str) -> None:
        self.process = process
        self.base_url = base_url

    @classmethod
    async def start(cls, tmp: Path, hubspot: FakeHubSpot, boot: int) -> Serve:
        policy = tmp / "crm.toml"
        policy.write_text(f'extends = "default"\n{CRM}', encoding="utf-8")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SALESBOT_DB": str(tmp / "serve.db"),
            "SALESBOT_POLICY": str(policy),
            "SALESBOT_LEADS_TOKEN": LEADS_TOKEN,
            "SALESBOT_CRM": "hubspot",
            "HUBSPOT_ACCESS_TOKEN": TOKEN,
            "HUBSPOT_API_URL": hubspot.base_url,
        }
        log = (tmp / f"serve-{boot}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "serve",
            "--port",
            "0",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        log.close()
        assert process.stdout is not None
        first = (await process.stdout.readline()).decode()  # printed once it listens
        match = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        if match is None:
            process.kill()
            await process.wait()
            raise RuntimeError(f"serve did not start: {first}")
        return cls(process, f"http://127.0.0.1:{match.group(1)}")

    async def post_lead(self, session: aiohttp.ClientSession, key: str, name: str) -> str:
        body = {"name": name, "email": f"{key}@example.com", "message": HOT, "source": "Webinar"}
        headers = {"Authorization": f"Bearer {LEADS_TOKEN}", "Idempotency-Key": key}
        async with session.post(f"{self.base_url}/leads", json=body, headers=headers) as r:
            assert r.status in (200, 201), await r.text()
            return str((await r.json())["lead_id"])

    async def stop(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)
        await asyncio.wait_for(self.process.wait(), timeout=60)


def crm_rows(db: Path) -> list[tuple[str, str]]:
    return [(k, s) for k, s, _owner in outbox_rows(db) if k.startswith("crm:writes:")]


def events(db: Path, type_: str) -> list[EventEnvelope]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT envelope FROM events WHERE type = ? ORDER BY position", (type_,)
        ).fetchall()
    return [EventEnvelope.model_validate_json(text) for (text,) in rows]


async def test_a_kill_9_mid_write_leaves_exactly_one_record_per_artifact(tmp_path: Path) -> None:
    db = tmp_path / "serve.db"
    async with FakeHubSpot() as hubspot, aiohttp.ClientSession() as session:
        hubspot.set_up_salesbot_properties()
        # The first deal's upsert is applied by HubSpot, and then never answered.
        hubspot.hang_next("POST", "/crm/v3/objects/deals/batch/upsert")
        first = await Serve.start(tmp_path, hubspot, 1)
        leads = [
            await first.post_lead(session, "kill-a", "Dana Fox"),
            await first.post_lead(session, "kill-b", "Sam Lee"),
        ]
        await _eventually(lambda: len(hubspot.objects["deals"]) == 1, "the hung deal write")
        # Leased to the first boot: the hung write and the writes claimed behind it.
        assert crm_rows(db)[0][1] == "in_flight"
        ((killed, _identity, _started, _alive),) = owners(db)
        await first.stop(signal.SIGKILL)

        second = await Serve.start(tmp_path, hubspot, 2)
        try:
            await _eventually(
                lambda: bool(crm_rows(db)) and all(s == "sent" for _k, s in crm_rows(db)),
                "every CRM write sent after the restart",
            )
            await _eventually(
                lambda: len(events(db, "crm_sync_settled")) == len(crm_rows(db)),
                "every write's outcome recorded",
            )
        finally:
            await second.stop(signal.SIGTERM)
        assert killed not in {owner for owner, *_ in owners(db)}
        # The hung upsert was sent again by the second boot (answered this time), then the
        # second lead's: the same deal updated, not a second one created.
        upserts = [c for c in hubspot.calls if c.path == "/crm/v3/objects/deals/batch/upsert"]
        assert [c.status for c in upserts] == [200, 200]

    # One deal per lead, one contact per lead, one score note per lead: nothing twice.
    deals = sorted(d["salesbot_id"] for d in hubspot.records("deals"))
    assert deals == sorted(f"salesbot:deal:{lead}" for lead in leads)
    assert len(hubspot.records("contacts")) == 2
    notes = [n["hs_note_body"] for n in hubspot.records("notes")]
    assert len(notes) == 2
    requested = events(db, "crm_sync_requested")
    assert len(requested) == len(crm_rows(db)) == 4  # a deal and a score note per lead
    settled = events(db, "crm_sync_settled")
    assert sorted(e.event.request_seq for e in settled) == sorted(  # type: ignore[union-attr]
        e.seq for e in requested
    )
    assert {json.dumps([e.event.outcome, e.event.adapter]) for e in settled} == {  # type: ignore[union-attr]
        json.dumps(["sent", "hubspot"])
    }
    assert hubspot.spec_errors == []
