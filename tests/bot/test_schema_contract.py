"""The schema contract: every artifact salesbot stores or prints validates against the JSON
Schema it publishes (`docs/schemas/`), and carries its schema and generator versions.

A day of sales runs through the real runtime on SQLite with every platform's router — leads
quoted, superseded, approved, accepted and lost, handoffs, knowledge answers, a meeting, a
change of language, audits and metrics asked in chat — and then every stored event, offer,
inbound, outbox payload and ticket, and the JSON of every command that reads or writes
artifacts, is validated. So is everything in the stores earlier releases wrote: old records
must keep validating (the schemas accept what salesbot still reads).
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from adapters.leadfeed.reply import LeadReplyRouter
from adapters.outbound import OutboundPolicy
from adapters.playground.router import PlaygroundRouter
from adapters.slack.router import SlackRouter
from adapters.teams.router import TeamsRouter
from adapters.terminal.sender import TerminalRouter
from bot.cli import main
from bot.policy_loader import load_policy
from bot.routing import CompositeRouter
from domain import GENERATOR
from domain.events import EventEnvelope
from domain.inbound import LeadArrived, LeadDetails
from storage.sqlite import SqliteStore
from tests.storage.scripted import FEED, MANAGER, PROSPECT, REP, SalesDay
from tests.support.schemas import assert_valid, schema

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "stores").glob("release-*.db"))
ADAPTERS = {"slack", "teams", "playground", "leadfeed", "terminal"}
SLACK_THREAD = "slack:T_OURS:C_SALES:1790000000.000100"
TEAMS_CHAT = "teams:a:1-personal-chat"


def every_router() -> CompositeRouter:
    return CompositeRouter(
        [
            PlaygroundRouter(),
            SlackRouter(handoff_channel="C_HANDOFF", leads_channel="C_LEADS"),
            TeamsRouter(),
            LeadReplyRouter(
                default_reply_url="https://crm.example/replies", outbound=OutboundPolicy()
            ),
            TerminalRouter(),
        ]
    )


async def a_day_of_sales(path: Path) -> None:
    """Every kind of conversation the bot has, on every platform's routes."""
    policy = load_policy("default")
    async with await SqliteStore.open(path) as store:
        day = SalesDay(store, policy, router=every_router())
        await day.start()
        await day.run(conversations=12)
        lead = LeadDetails(
            name="Dana Prospect",
            company="Acme",
            email="dana@acme.example",
            message="Does it integrate with Salesforce?",
            source="web",
            company_size=40,
            credit_score=580,
            reply_url="https://widget.example/replies",
        )
        await day.send(
            LeadArrived(delivery_id="d-kb", conversation_id="lead-kb", lead=lead, actor=FEED)
        )
        await day.say("lead-kb", "Can we book a demo on Thursday afternoon?")
        await day.say("lead-kb", "Wir haben 40.000 Euro Budget und wollen im März starten")
        await day.say("lead-kb", "I want to talk to a real person please")
        await day.command("lead-kb", "correct", "band hot", MANAGER)
        await day.say(SLACK_THREAD, "Hi, we are 25 people and need a CRM by next month")
        await day.say(SLACK_THREAD, "What does the Pro plan cost?")
        await day.command(SLACK_THREAD, "quote", "25 pro 30%", REP)
        await day.click(SLACK_THREAD, "request_approval", day.quotes[-1], REP)
        await day.click(SLACK_THREAD, "reject_quote", day.quotes[-1], MANAGER)
        await day.say(TEAMS_CHAT, "We chose another vendor, sorry", PROSPECT)
        await day.runtime.settled()


@pytest.fixture(scope="module")
def sales_day_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("contract") / "salesbot.db"
    asyncio.run(a_day_of_sales(path))
    return path


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as conn:
        return conn.execute(sql).fetchall()


async def ticket_rows(path: Path) -> list[dict[str, Any]]:
    """Every ticket, as the store reads it back (a migrated row included)."""
    keys = [key for (key,) in rows_of_tickets(path)]
    async with await SqliteStore.open(path) as store:
        found = [await store.ticket(key) for key in keys]
    return [row.model_dump(mode="json") for row in found if row is not None]


def rows_of_tickets(path: Path) -> list[tuple[Any, ...]]:
    return rows(path, "SELECT key FROM tickets ORDER BY opened_at_ms, key")


def run(*argv: str, stdin: list[str] | None = None) -> str:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err, stdin=iter(stdin) if stdin is not None else None)
    assert code == 0, err.getvalue()
    return out.getvalue()


def assert_versioned(name: str, document: dict[str, Any]) -> None:
    """An artifact written now says which shape it has and which salesbot wrote it."""
    assert document["schema_version"] == schema(name)["x-schema-version"], name
    assert document["generator_version"] == GENERATOR, name


# -- what the runtime stores ------------------------------------------------------------


def test_the_day_stored_every_kind_of_artifact(sales_day_store: Path) -> None:
    types = {t for (t,) in rows(sales_day_store, "SELECT DISTINCT type FROM events")}
    assert {
        "quote_issued",
        "quote_revised",
        "quote_superseded",
        "quote_accepted",
        "quote_rejected",
        "ticket_opened",
        "ticket_resolved",
        "knowledge_answered",
        "meeting_requested",
        "reply_language_chosen",
        "narrative_assessed",
        "message_read",
        "reading_corrected",
        "audit_requested",
        "team_notified",
        "conversation_abandoned",
    } <= types
    channels = {c.split(":")[0] for (c,) in rows(sales_day_store, "SELECT channel FROM outbox")}
    assert channels == {"playground", "slack", "teams", "lead-reply", "terminal"}


def test_every_stored_event_validates_and_every_quote_made_is_an_offer(
    sales_day_store: Path,
) -> None:
    events = rows(sales_day_store, "SELECT type, envelope FROM events ORDER BY position")
    for kind, text in events:
        envelope = json.loads(text)
        assert_valid("event", envelope)
        assert (envelope["schema_version"], envelope["generator"]) == (1, GENERATOR)
        if kind in ("quote_issued", "quote_revised"):
            assert_valid("offer", envelope)


def test_every_sealed_event_is_stored_as_the_envelope_model_writes_it(
    sales_day_store: Path,
) -> None:
    """The chain links the stored bytes; sealing writes them without the model round trip,
    so they must be exactly what the model would write for the same data."""
    events = rows(sales_day_store, "SELECT envelope FROM events ORDER BY position")
    sealed = [text for (text,) in events if '"sealed":' in text]
    assert len(sealed) > 20
    for text in sealed:
        assert EventEnvelope.model_validate_json(text).model_dump_json() == text


def test_every_stored_inbound_validates_and_its_row_names_the_salesbot_that_stored_it(
    sales_day_store: Path,
) -> None:
    for text, generator in rows(sales_day_store, "SELECT inbound, generator FROM inbounds"):
        inbound = json.loads(text)
        # A prospect's words are sealed in the row (`storage.sealing`): placeholders in the
        # inbound, the ciphertext beside it under "sealed".
        sealed = inbound.pop("sealed", None)
        assert sealed is None or sealed.startswith("k")
        assert_valid("inbound", inbound)
        assert (inbound["schema_version"], generator) == (1, GENERATOR)


def test_every_outbox_payload_validates_and_names_its_adapter(sales_day_store: Path) -> None:
    payloads = rows(sales_day_store, "SELECT channel, payload FROM outbox")
    assert len(payloads) > 100
    for channel, text in payloads:
        payload = json.loads(text)
        assert_valid("outbox_payload", payload)
        assert_versioned("outbox_payload", payload)
        assert payload["adapter"] in ADAPTERS, channel
        assert payload["adapter_version"] >= 1, channel


def test_every_ticket_validates_with_its_versions(sales_day_store: Path) -> None:
    tickets = asyncio.run(ticket_rows(sales_day_store))
    assert {t["status"] for t in tickets} == {"open", "resolved"}
    assert {t["kind"] for t in tickets} == {"handoff", "approval"}
    for ticket in tickets:
        assert_valid("ticket", ticket)
        assert_versioned("ticket", ticket)


# -- what the commands print ------------------------------------------------------------


@pytest.fixture
def on_the_day(sales_day_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "salesbot.db"
    shutil.copy(sales_day_store, copy)
    monkeypatch.setenv("SALESBOT_DB", str(copy))
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    return copy


def test_the_audits_metrics_and_replay_of_the_day_validate(on_the_day: Path) -> None:
    quote = json.loads(
        rows(on_the_day, "SELECT envelope FROM events WHERE type = 'quote_revised'")[0][0]
    )
    for target in ("conv-0", "lead-kb", SLACK_THREAD, quote["event"]["quote"]["quote_id"]):
        audit = json.loads(run("audit", target, "--json"))
        assert_valid("audit", audit)
        assert audit["schema_version"] == schema("audit")["x-schema-version"]
    metrics = json.loads(run("metrics", "--json"))
    assert_valid("metrics", metrics)
    assert_versioned("metrics", metrics)
    replay = json.loads(run("replay", "--json"))
    assert_valid("replay", replay)
    assert_versioned("replay", replay)
    assert replay["differences"] == 0


def test_the_verification_of_the_day_and_its_audit_bundles_validate(
    on_the_day: Path, tmp_path: Path
) -> None:
    # Every kind of event on every platform's routes: the store verifies clean.
    report = json.loads(run("verify", "--json"))
    assert_valid("verify", report)
    assert_versioned("verify", report)
    assert (report["problems"], report["conversations"]) == (0, len(report["heads"]))
    for target in ("conv-0", "lead-kb", SLACK_THREAD):
        bundle = tmp_path / f"{len(list(tmp_path.iterdir()))}.zip"
        manifest = json.loads(run("audit", target, "--bundle", str(bundle), "--json"))
        assert_valid("audit_bundle", manifest)
        assert_versioned("audit_bundle", manifest)
        checked = json.loads(run("verify", str(bundle), "--json"))
        assert_valid("verify", checked)
        assert checked["problems"] == 0


def test_a_replay_with_differences_validates(on_the_day: Path) -> None:
    replay = json.loads(run("replay", "--policy", "seed", "--json"))

    assert replay["differences"] > 0
    assert_valid("replay", replay)


@pytest.mark.parametrize("policy", ["default", "seed"])
def test_the_decision_commands_print_valid_versioned_documents(policy: str) -> None:
    hot = "We have a $40k budget approved, I am the CFO and we need it by March"
    documents = {
        "lead_score": run("score", hot, "--policy", policy, "--json"),
        "quote": run(
            "quote",
            "--qty",
            "10",
            "--sku",
            "PRO",
            "--discount",
            "30%",
            "--policy",
            policy,
            "--json",
        ),
        "narrative": run(
            "narrative",
            "urgent, we need priority support",
            "--credit",
            "580",
            "--policy",
            policy,
            "--json",
        ),
        "check": run("check", "--policy", policy, "--json"),
    }
    unknown_credit = run("narrative", "just browsing", "--policy", policy, "--json")
    for name, text in [*documents.items(), ("narrative", unknown_credit)]:
        document = json.loads(text)
        assert_valid(name, document)
        assert_versioned(name, document)


@pytest.mark.parametrize("policy", ["default", "seed"])
def test_every_understand_line_validates(policy: str) -> None:
    lines = [
        {"id": 1, "text": "We have $40k approved, 25 people, start by March 3, using HubSpot"},
        {"id": "de", "text": "Wir haben 1,5 Mio. € pro Jahr und wollen Ende Q2 starten"},
        {"id": "fr", "text": "Le prix est trop élevé, je veux parler à quelqu'un"},
        {
            "id": "es",
            "text": "¿Tienen una API? Somos 12 personas",
            "metadata": {"company_size": 12},
        },
        {"id": 5, "text": "We need a lawyer to review the DPA and a refund of $19.99 per month"},
        {"id": 6, "text": "ok", "now": "2026-12-05T10:00:00Z"},
    ]
    out = run("understand", "--policy", policy, stdin=[json.dumps(line) for line in lines])
    readings = [json.loads(line) for line in out.splitlines()]
    assert len(readings) == len(lines)
    for reading in readings:
        assert_valid("understand", reading)
        assert_versioned("understand", reading)


# -- what earlier releases stored -------------------------------------------------------


@pytest.mark.parametrize("fixture", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_everything_an_earlier_release_stored_still_validates(
    fixture: Path, tmp_path: Path
) -> None:
    events = rows(fixture, "SELECT type, envelope FROM events")
    assert len(events) >= 100
    for kind, text in events:
        assert_valid("event", json.loads(text))
        if kind in ("quote_issued", "quote_revised"):
            assert_valid("offer", json.loads(text))
    for (text,) in rows(fixture, "SELECT inbound FROM inbounds"):
        assert_valid("inbound", json.loads(text))
    (schema,) = rows(fixture, "PRAGMA user_version")[0]
    for (text,) in rows(fixture, "SELECT payload FROM outbox"):
        payload = json.loads(text)
        assert_valid("outbox_payload", payload)
        # Payloads carry their versions from the release that added migration 6 on.
        assert ("schema_version" in payload) == (schema >= 6)

    copy = tmp_path / "store.db"
    shutil.copy(fixture, copy)  # opening migrates: the ticket rows gain their versions
    tickets = asyncio.run(ticket_rows(copy))
    assert len(tickets) == len(rows_of_tickets(fixture)) > 0
    for ticket in tickets:
        assert_valid("ticket", ticket)
        assert ticket["schema_version"] == 1
        # Unknown for rows written before tickets said which salesbot wrote them.
        assert (ticket["generator_version"] is None) == (schema < 6)
    generators = rows(copy, "SELECT DISTINCT generator FROM inbounds")
    assert generators == ([("salesbot/0.1.0",)] if schema >= 6 else [(None,)])
