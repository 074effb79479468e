"""Leads that start in a CRM (issue 16 items 3 and 6): there is no chat with the prospect, so
the bot scores the lead and posts it for a rep, says nothing to the prospect, and the lead
card says so in plain words. A lead without `reply_in` (every lead before it existed) is
answered exactly as before, and serialises as before."""

from __future__ import annotations

from pathlib import Path

from adapters.leadfeed.reply import LeadReplyRouter
from adapters.outbound import OutboundPolicy
from bot.policy_loader import load_policy
from domain.audit import audit_conversation, render_audit
from domain.cards import Reply
from domain.events import BotReplied, CrmSyncRequested, LeadLeftForRep, LeadScored
from domain.inbound import LeadArrived, LeadDetails
from domain.policy import Policy
from domain.replay import replay_conversation
from tests.support.conversation import Recording
from tests.unit.test_crm import CRM, FEED, HOT, REP, crm_policy

FROM_HUBSPOT = LeadDetails(
    name="Dana Fox",
    email="dana@example.com",
    company="Foxco",
    message=HOT,
    external_id="hubspot:contact:12345",
    reply_in="HubSpot",
)


def _arrive(policy: Policy, lead: LeadDetails) -> Recording:
    rec = Recording(policy, "lead-from-crm", lead_actor=FEED)
    rec.send(LeadArrived(lead=lead, actor=FEED, **rec.ids()))
    return rec


def test_a_crm_lead_is_scored_and_posted_for_a_rep_and_the_prospect_hears_nothing(
    tmp_path: Path,
) -> None:
    rec = Recording(crm_policy(tmp_path), "lead-from-crm", lead_actor=FEED)
    decision = rec.send(LeadArrived(lead=FROM_HUBSPOT, actor=FEED, **rec.ids()))
    assert not [r for r in decision.replies if r.audience == "conversation"]
    assert not [e for e in rec.events if isinstance(e.event, BotReplied)]
    assert [e.event.score.band for e in rec.events if isinstance(e.event, LeadScored)] == ["hot"]
    left = [e.event for e in rec.events if isinstance(e.event, LeadLeftForRep)]
    assert left == [LeadLeftForRep(reply_in="HubSpot")]
    (card,) = [r.card for r in decision.replies if r.card is not None and r.card.kind == "lead"]
    shown = {field.label: field.value for field in card.fields}
    assert shown["Reply"] == ("Came from HubSpot — no chat with this prospect; reply in HubSpot")
    # Nothing typed on the card could reach the prospect: no text box, no *Reply* button.
    assert card.input is None
    assert "reply_to_prospect" not in {button.action for button in card.buttons}
    assert rec.state.flow_state == rec.policy.flow.start


def test_a_crm_lead_still_goes_to_the_crm_as_a_deal(tmp_path: Path) -> None:
    rec = _arrive(crm_policy(tmp_path), FROM_HUBSPOT)
    synced = [e.event for e in rec.events if isinstance(e.event, CrmSyncRequested)]
    assert [(e.artifact, e.note) for e in synced] == [("deal", None), ("note", "score")]


def test_a_rep_marking_words_for_a_crm_prospect_is_told_to_reply_in_the_crm(
    tmp_path: Path,
) -> None:
    policy = crm_policy(tmp_path, CRM + "\n[handoff]\nlead_room = true\n")
    rec = _arrive(policy, FROM_HUBSPOT)
    decision = rec.click("reply_to_prospect", "lead-from-crm", REP)
    assert not [r for r in decision.replies if r.audience == "conversation"]
    (told,) = [r.text for r in decision.replies if r.audience == "requester"]
    assert told == (
        "Nothing was sent: Came from HubSpot — no chat with this prospect; reply in HubSpot."
    )


def test_the_audit_says_in_plain_words_why_the_bot_did_not_answer(tmp_path: Path) -> None:
    rec = _arrive(crm_policy(tmp_path), FROM_HUBSPOT)
    text = "\n".join(render_audit(audit_conversation("lead-from-crm", rec.events), detail=True))
    assert "came from: HubSpot (no chat with the prospect; reps reply there)" in text
    assert "the bot did not write to them; a rep replies in HubSpot" in text


def test_a_crm_lead_replays_with_no_difference(tmp_path: Path) -> None:
    rec = _arrive(crm_policy(tmp_path), FROM_HUBSPOT)
    result = replay_conversation(
        "lead-from-crm", rec.inbounds, rec.events, lambda _version: rec.policy
    )
    assert not result.differences


def test_a_lead_without_reply_in_is_answered_and_stored_as_before(tmp_path: Path) -> None:
    policy = load_policy("default")
    lead = FROM_HUBSPOT.model_copy(update={"reply_in": ""})
    assert "reply_in" not in lead.model_dump(mode="json")
    rec = _arrive(policy, lead)
    assert [e for e in rec.events if isinstance(e.event, BotReplied)]
    assert not [e for e in rec.events if isinstance(e.event, LeadLeftForRep)]


def test_the_lead_feed_never_routes_a_reply_to_a_crm_prospect(tmp_path: Path) -> None:
    """Whatever the bot says in a CRM lead's conversation (a rep's quote card, say) stays
    with the team: not even `SALESBOT_LEAD_REPLY_URL` is a way to the prospect."""
    router = LeadReplyRouter(
        default_reply_url="https://replies.example.org/in", outbound=OutboundPolicy()
    )
    reply = Reply(audience="conversation", text="Quote Q-1")
    crm = _arrive(crm_policy(tmp_path), FROM_HUBSPOT)
    quoted = crm.command("quote", "10 pro", REP)
    assert [r for r in quoted.replies if r.audience == "conversation"]
    inbound = LeadArrived(lead=FROM_HUBSPOT, actor=FEED, **crm.ids())
    assert router.route(inbound, reply, crm.state) == []
    feed = _arrive(crm_policy(tmp_path), FROM_HUBSPOT.model_copy(update={"reply_in": ""}))
    (route,) = router.route(inbound, reply, feed.state)
    assert route.target["url"] == "https://replies.example.org/in"
