"""The CRM sync decided in the domain (issue 16): one deal per conversation with a prospect,
moved along the pipeline as the conversation moves, each quote and note once, every record
named by an id derived from what it mirrors — and nothing of the prospect's words in the
log's CRM events. A policy without `[crm]` decides exactly as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.policy_loader import load_policy
from domain.crm import (
    CrmFacts,
    deal_external_id,
    from_salesbot,
    stage_of,
)
from domain.crm_sync import crm_record
from domain.errors import PolicyError
from domain.events import CrmSyncRequested, EventEnvelope
from domain.inbound import Actor, LeadArrived, LeadDetails
from domain.policy import Policy
from domain.replay import replay_conversation
from tests.support.conversation import Recording

CRM = """
[crm]
pipeline = "sales"
[crm.stages]
new = "appointmentscheduled"
qualified = "qualifiedtobuy"
meeting = "presentationscheduled"
quote_sent = "decisionmakerboughtin"
won = "closedwon"
lost = "closedlost"
[crm.owners]
owner-alex = "75001"
owner-sam = "75002"
owner-jordan = "75003"
"""
REP = Actor(id="R", name="Rae", role="rep")
FEED = Actor(id="feed", role="prospect")
HOT = "I'm the CTO, we have a $40k budget approved and want to start next month"


def crm_policy(tmp_path: Path, body: str = CRM) -> Policy:
    path = tmp_path / "crm.toml"
    path.write_text(f'extends = "default"\n{body}', encoding="utf-8")
    return load_policy(str(path))


def synced(events: list[EventEnvelope]) -> list[CrmSyncRequested]:
    return [env.event for env in events if isinstance(env.event, CrmSyncRequested)]


def lead_to_won(policy: Policy) -> Recording:
    rec = Recording(policy, "lead-crm-1", lead_actor=FEED)
    lead = LeadDetails(
        name="Dana Fox", email="dana@example.com", company="Foxco", message=HOT, source="Webinar"
    )
    rec.send(LeadArrived(lead=lead, actor=FEED, **rec.ids()))
    rec.command("quote", "10 pro 5%", REP)
    rec.command("won", "", REP)
    return rec


def test_a_lead_becomes_one_deal_moved_along_the_pipeline(tmp_path: Path) -> None:
    rec = lead_to_won(crm_policy(tmp_path))
    deals = [e for e in synced(rec.events) if e.artifact == "deal"]
    assert [d.deal.stage for d in deals] == ["qualified", "quote_sent", "won"]
    assert [d.deal.crm_stage for d in deals] == [
        "qualifiedtobuy",
        "decisionmakerboughtin",
        "closedwon",
    ]
    assert {d.external_id for d in deals} == {deal_external_id("lead-crm-1")}
    assert deals[0].reason == "new deal at qualified"
    assert deals[1].reason == "stage qualified → quote_sent"
    # The amount is the live quote's, in cents; the owner is the CRM's id for the router's.
    (quote,) = rec.quote_ids()
    total = rec.state.quotes[quote].quote.total_cents
    assert deals[1].deal.amount_cents == total
    assert deals[1].deal.currency == "USD"
    assert deals[0].deal.owner in {"75001", "75002", "75003"}
    assert deals[0].deal.source == "webinar"
    assert deals[0].deal.band == "hot"


def test_each_quote_and_note_is_requested_once_with_an_id_from_what_it_mirrors(
    tmp_path: Path,
) -> None:
    rec = lead_to_won(crm_policy(tmp_path))
    events = synced(rec.events)
    (quote_id,) = rec.quote_ids()
    quotes = [e for e in events if e.artifact == "quote"]
    assert [(q.quote_id, q.quote_version, q.external_id) for q in quotes] == [
        (quote_id, 1, f"salesbot:quote:{quote_id}:v1")
    ]
    notes = [(e.note, e.external_id) for e in events if e.artifact == "note"]
    assert [kind for kind, _ in notes] == ["score", "transcript"]
    # A note is named after the event that asked for it.
    seqs = {
        env.event.external_id: env.seq
        for env in rec.events
        if isinstance(env.event, CrmSyncRequested) and env.event.artifact == "note"
    }
    for kind, external_id in notes:
        assert external_id == f"salesbot:note:lead-crm-1:{kind}:{seqs[external_id]}"
    assert all(from_salesbot(e.external_id) for e in events)
    assert not from_salesbot("0031t00000abc")
    assert not from_salesbot(None)


def test_the_log_holds_no_personal_data_the_prepared_write_does(tmp_path: Path) -> None:
    policy = crm_policy(tmp_path)
    rec = lead_to_won(policy)
    logged = json.dumps([e.model_dump(mode="json") for e in synced(rec.events)])
    for words in ("Dana", "dana@example.com", "Foxco", "$40k"):
        assert words not in logged
    assert policy.crm is not None
    envelopes = [env for env in rec.events if isinstance(env.event, CrmSyncRequested)]
    transcript = next(env for env in envelopes if getattr(env.event, "note", None) == "transcript")
    record = crm_record(transcript, rec.state, policy.crm)
    assert record.contact is not None
    assert (record.contact.email, record.contact.name, record.contact.company) == (
        "dana@example.com",
        "Dana Fox",
        "Foxco",
    )
    assert record.event_seq == transcript.seq
    assert any(HOT in line for line in record.note_lines)
    quote_env = next(env for env in envelopes if getattr(env.event, "artifact", None) == "quote")
    quote = crm_record(quote_env, rec.state, policy.crm).quote
    assert quote is not None
    assert quote.total_cents == rec.state.quotes[quote.quote_id].quote.total_cents
    # The buyer's arithmetic, never the internal approval lines.
    assert not any("cap" in line for line in quote.proof)


def test_replay_reproduces_every_sync_request(tmp_path: Path) -> None:
    policy = crm_policy(tmp_path)
    rec = lead_to_won(policy)
    result = replay_conversation("lead-crm-1", rec.inbounds, rec.events, lambda _v: policy)
    assert result.differences == ()


def test_without_crm_nothing_is_synced_and_decisions_are_unchanged(tmp_path: Path) -> None:
    without = lead_to_won(load_policy("default"))
    assert synced(without.events) == []
    with_crm = lead_to_won(crm_policy(tmp_path))
    others = [env.event for env in with_crm.events if not isinstance(env.event, CrmSyncRequested)]
    # The same decisions (a quote's id differs: it is derived from the stream's version).
    assert [e.type for e in others] == [env.event.type for env in without.events]
    assert [
        rec.state.quotes[q].quote.total_cents
        for rec in (with_crm, without)
        for q in rec.quote_ids()
    ] == [189050, 189050]
    assert [getattr(e, "template", None) for e in others] == [
        getattr(env.event, "template", None) for env in without.events
    ]


def test_a_conversation_without_a_prospect_is_nobodys_deal(tmp_path: Path) -> None:
    rec = Recording(crm_policy(tmp_path), "dm-rep-only")
    rec.command("quote", "3 pro", REP)
    assert synced(rec.events) == []


@pytest.mark.parametrize(
    ("facts", "stage"),
    [
        ({}, "new"),
        ({"qualified_once": True}, "qualified"),
        ({"qualified_once": True, "meetings_requested": 1}, "meeting"),
        ({"meetings_requested": 1, "quotes": (("Q-1", 1, 100, "USD", 2),)}, "quote_sent"),
        ({"quotes": (("Q-1", 1, 100, "USD", 2),), "outcome": "lost"}, "lost"),
        ({"outcome": "won"}, "won"),
    ],
)
def test_the_stage_is_the_furthest_the_conversation_reached(
    facts: dict[str, object], stage: str
) -> None:
    base = {"conversation_id": "c", "has_prospect": True, "qualified_once": False}
    base["meetings_requested"] = 0
    assert stage_of(CrmFacts.model_validate({**base, **facts})) == stage


def test_every_stage_must_be_named(tmp_path: Path) -> None:
    body = CRM.replace('lost = "closedlost"\n', "")
    with pytest.raises(PolicyError, match="missing: lost"):
        crm_policy(tmp_path, body)
