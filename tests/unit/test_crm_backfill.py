"""Bringing the CRM up to date and recording how each write ended (issue 16, items 2–4):
`salesbot crm backfill` asks, per conversation, for the writes `[crm]` would have decided
and the CRM never got — once; the CRM sender's outcome (written with the CRM's id, or
refused for good) is an event naming the adapter that wrote it, and a refusal alerts the
handoff channel naming the record, never the prospect's e-mail. Everything replays."""

from __future__ import annotations

from pathlib import Path

from bot.policy_loader import load_policy
from domain.audit import audit_conversation, render_audit
from domain.crm_sync import CRM_ALERT_TITLE
from domain.events import CrmSyncRequested, CrmSyncSettled, Erased, EventEnvelope
from domain.inbound import SYSTEM, CrmBackfillRequested, CrmWriteSettled
from domain.policy import Policy
from domain.replay import replay_conversation
from domain.state import apply
from tests.support.conversation import Recording
from tests.unit.test_crm import crm_policy, lead_to_won, synced


def backfill(rec_policy: Policy, rec: Recording) -> list[CrmSyncRequested]:
    decision = rec.send(CrmBackfillRequested(actor=SYSTEM, **rec.ids()), rec_policy)
    return synced(list(decision.events))


def settled(
    rec: Recording,
    request: EventEnvelope,
    outcome: str,
    *,
    reason: str | None = None,
    remote_id: str | None = None,
) -> CrmWriteSettled:
    assert isinstance(request.event, CrmSyncRequested)
    return CrmWriteSettled(
        actor=SYSTEM,
        outbox_key=f"crm:writes:{rec.state.conversation_id}:{request.seq}",
        request_seq=request.seq,
        artifact=request.event.artifact,
        external_id=request.event.external_id,
        outcome=outcome,  # type: ignore[arg-type]
        remote_id=remote_id,
        adapter="hubspot",
        adapter_version=1,
        library="hubspot-api-client 12.0.0",
        reason=reason,
        **rec.ids(),
    )


def test_a_conversation_from_before_crm_gets_each_of_its_records_once(tmp_path: Path) -> None:
    before, policy = load_policy("default"), crm_policy(tmp_path)
    rec = lead_to_won(before)
    assert synced(rec.events) == []
    requested = backfill(policy, rec)
    (quote_id,) = rec.quote_ids()
    assert [(r.artifact, r.note, r.quote_id) for r in requested] == [
        ("deal", None, None),
        ("quote", None, quote_id),
        ("note", "score", None),
        ("note", "transcript", None),
    ]
    deal = requested[0]
    assert (deal.deal.stage, deal.deal.crm_stage) == ("won", "closedwon")
    assert deal.external_id == "salesbot:deal:lead-crm-1"
    assert deal.reason == "backfill: new deal at won"
    assert requested[1].external_id == f"salesbot:quote:{quote_id}:v1"
    # Run again: the CRM was asked for all of it, so nothing new is recorded.
    assert backfill(policy, rec) == []
    policies = {p.version: p for p in (before, policy)}
    result = replay_conversation("lead-crm-1", rec.inbounds, rec.events, policies.__getitem__)
    assert result.differences == ()


def test_a_conversation_synced_all_along_needs_nothing(tmp_path: Path) -> None:
    policy = crm_policy(tmp_path)
    rec = lead_to_won(policy)
    assert backfill(policy, rec) == []
    # A policy without `[crm]` backfills nothing either (and stores nothing for it).
    decision = rec.send(CrmBackfillRequested(actor=SYSTEM, **rec.ids()), load_policy("default"))
    assert (decision.events, decision.replies) == ((), ())


def test_a_write_refused_for_good_is_recorded_alerted_and_asked_for_again_by_a_backfill(
    tmp_path: Path,
) -> None:
    policy = crm_policy(tmp_path)
    rec = lead_to_won(policy)
    requests = [e for e in rec.events if isinstance(e.event, CrmSyncRequested)]
    last_deal = [e for e in requests if getattr(e.event, "artifact", None) == "deal"][-1]
    quote = next(e for e in requests if getattr(e.event, "artifact", None) == "quote")
    decision = rec.send(settled(rec, quote, "sent", remote_id="9001"))
    assert decision.replies == ()
    decision = rec.send(
        settled(rec, last_deal, "dead_lettered", reason="400: Property values were not valid")
    )
    (event,) = [e.event for e in decision.events]
    assert isinstance(event, CrmSyncSettled)
    assert (event.outcome, event.adapter, event.adapter_version, event.library) == (
        "dead_lettered",
        "hubspot",
        1,
        "hubspot-api-client 12.0.0",
    )
    (alert,) = decision.replies
    assert alert.audience == "handoff"
    assert alert.card is not None
    assert alert.card.title == CRM_ALERT_TITLE
    fields = {f.label: f.value for f in alert.card.fields}
    assert fields["Record"] == "deal salesbot:deal:lead-crm-1"
    assert fields["The CRM said"] == "400: Property values were not valid"
    assert "dana@example.com" not in str(alert.card.model_dump())
    # The refused deal is written again by a backfill; the quote the CRM has is not.
    (again,) = backfill(policy, rec)
    assert (again.artifact, again.deal.stage) == ("deal", "won")
    assert again.reason == "backfill: written again: the CRM refused the last write"
    assert backfill(policy, rec) == []
    result = replay_conversation("lead-crm-1", rec.inbounds, rec.events, lambda _v: policy)
    assert result.differences == ()


def test_the_audit_says_what_each_write_became_and_what_wrote_it(tmp_path: Path) -> None:
    policy = crm_policy(tmp_path)
    rec = lead_to_won(policy)
    requests = [e for e in rec.events if isinstance(e.event, CrmSyncRequested)]
    rec.send(settled(rec, requests[0], "sent", remote_id="5501"))
    rec.send(settled(rec, requests[1], "dead_lettered", reason="403: missing scopes"))
    lines = render_audit(audit_conversation("lead-crm-1", rec.events), detail=True)
    text = "\n".join(lines)
    assert "The CRM deal was written in hubspot" in text
    assert "hubspot refused the CRM " in text
    assert "CRM write done: the deal salesbot:deal:lead-crm-1 as record 5501 in hubspot" in text
    assert "written by salesbot's hubspot adapter v1, hubspot-api-client 12.0.0" in text
    assert "hubspot said: 403: missing scopes" in text


def test_an_erased_conversation_is_never_backfilled(tmp_path: Path) -> None:
    before, policy = load_policy("default"), crm_policy(tmp_path)
    rec = lead_to_won(before)
    erased = EventEnvelope(
        conversation_id="lead-crm-1",
        seq=rec.state.version + 1,
        at_ms=rec.now,
        policy_version=before.version,
        delivery_id="erase:lead-crm-1",
        event=Erased(by="ops", reason="request"),
    )
    rec.state = apply(rec.state, erased)
    assert backfill(policy, rec) == []
