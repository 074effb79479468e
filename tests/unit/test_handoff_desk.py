"""The handoff desk (`[handoff]`, issue 14 items 1 and 2), decided by `decide`: what the
prospect sees and what the team sees.

- a rep who writes in the prospect's conversation takes it over: the bot goes silent, the
  ticket (opened if none) is claimed by that rep, the team sees who holds it; `resume` and
  *Return to bot* hand it back, and the policy may hand back from a silent rep;
- *Resolve* asks for the outcome (won, lost with a reason, handled, closed), each one event;
- a prospect message after an outcome is never dropped: the ticket reopens for the same
  holder (its card says "prospect wrote again"), or the bot answers, by policy;
- a policy without `[handoff]` decides, and hashes, exactly as before.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from domain.audit import audit_conversation
from domain.cards import Reply
from domain.commands import COMMANDS
from domain.decision import Decision
from domain.events import (
    ActionIgnored,
    BotReplied,
    CommandRefused,
    ConversationClosed,
    FlowAdvanced,
    HandedBack,
    RepMessageRecorded,
    TeamNotified,
    TicketClaimed,
    TicketOpened,
    TicketReopened,
    TicketResolved,
)
from domain.handoff_config import HandoffConfig
from domain.inbound import SYSTEM, Actor, ButtonClicked, MessagePosted, TimerElapsed
from domain.permissions import MATRIX, permission
from domain.policy import Policy, build_policy
from domain.replay import replay_conversation
from tests.support.conversation import Recording

PROSPECT = Actor(id="P", name="Pat Prospect", role="prospect")
REP = Actor(id="U_RAE", name="Rae Rep", role="rep")
OTHER = Actor(id="U_SAM", name="Sam Other", role="rep")
MINUTE = 60_000


class Desk(Recording):
    """A shared thread: the prospect, the bot and the reps who write there."""

    def rep_writes(self, text: str, actor: Actor = REP, *, addressed: bool = False) -> Decision:
        return self.send(MessagePosted(text=text, actor=actor, addressed=addressed, **self.ids()))

    def timer(self, after_ms: int) -> Decision:
        self.now += after_ms
        return self.send(TimerElapsed(actor=SYSTEM, **self.ids()))

    def ticket_key(self) -> str:
        ticket = self.state.latest_handoff_ticket()
        assert ticket is not None
        return ticket.key


def events_of(decision: Decision, kind: type) -> list[Any]:
    return [env.event for env in decision.events if isinstance(env.event, kind)]


def to_prospect(decision: Decision) -> list[Reply]:
    return [r for r in decision.replies if r.audience == "conversation"]


def cards_for_team(decision: Decision) -> list[Reply]:
    return [r for r in decision.replies if r.audience == "handoff" and r.card is not None]


def desk(policy: Policy, **changes: Any) -> Policy:
    assert policy.handoff is not None
    return policy.model_copy(update={"handoff": policy.handoff.model_copy(update=changes)})


@pytest.fixture
def thread(default_policy: Policy) -> Desk:
    """A prospect in a shared thread who has heard from the bot once."""
    thread = Desk(default_policy, "slack:T1:C1:1700000000.000100", lead_actor=PROSPECT)
    thread.say("Hi, we are evaluating CRMs for a team of 12")
    return thread


# --- takeover by presence ----------------------------------------------------------------


def test_a_rep_who_writes_takes_the_conversation_over_and_the_bot_goes_silent(
    thread: Desk,
) -> None:
    taken = thread.rep_writes("Hi Pat, Rae from sales here. Happy to help.")
    (opened,) = events_of(taken, TicketOpened)
    (claimed,) = events_of(taken, TicketClaimed)
    assert (opened.kind, opened.reason) == ("handoff", "rep_took_over")
    assert (claimed.by, claimed.via, claimed.name) == ("U_RAE", "presence", "Rae Rep")
    assert thread.state.flow_state == "handoff"
    assert [e.trigger for e in events_of(taken, FlowAdvanced)] == ["rep_took_over"]
    assert to_prospect(taken) == []  # the prospect reads the rep, not the bot
    (card,) = cards_for_team(taken)
    assert card.card is not None
    assert card.replaces is None
    assert card.card.status == "Taken over by Rae Rep"  # the team sees who holds it
    assert ("Held by", "Rae Rep") in [(f.label, f.value) for f in card.card.fields]
    assert card.card.text.endswith("rep Rae Rep: Hi Pat, Rae from sales here. Happy to help.")

    answered = thread.say("Great, thanks Rae!")
    assert to_prospect(answered) == []
    assert events_of(answered, BotReplied) == []
    (refreshed,) = cards_for_team(answered)
    assert refreshed.replaces == opened.ticket_key
    assert refreshed.card is not None
    assert refreshed.card.text.endswith("prospect: Great, thanks Rae!")


def test_a_rep_who_writes_claims_the_open_ticket_instead_of_opening_another(
    thread: Desk,
) -> None:
    thread.say("Can I talk to a real person please?")
    key = thread.ticket_key()
    taken = thread.rep_writes("Hi Pat, I'm here.")
    assert events_of(taken, TicketOpened) == []
    (claimed,) = events_of(taken, TicketClaimed)
    assert (claimed.ticket_key, claimed.via) == (key, "presence")
    (card,) = cards_for_team(taken)
    assert card.replaces == key
    assert card.card is not None
    assert card.card.status == "Taken over by Rae Rep"
    assert [b.action for b in card.card.buttons] == [
        "resolve_ticket",
        "return_to_bot",
        "mark_won",
        "mark_lost",
    ]


def test_a_colleague_writing_too_leaves_the_ticket_with_its_holder(thread: Desk) -> None:
    thread.rep_writes("Hi Pat, Rae here.")
    joined = thread.rep_writes("And I'm Sam, from solutions.", OTHER)
    assert events_of(joined, TicketClaimed) == []
    ticket = thread.state.open_handoff_ticket()
    assert ticket is not None
    assert ticket.claimed_by == "U_RAE"


def test_a_rep_writing_in_a_leads_thread_takes_nothing_over(default_policy: Policy) -> None:
    """The lead's thread is the team's room: the prospect does not read it."""
    lead = Desk(default_policy, "lead-1", lead_actor=PROSPECT)
    lead.lead("We have a $5000 budget and want to start next month")
    said = lead.rep_writes("Looks like a good one, I'll call them.")
    assert [type(env.event) for env in said.events] == [RepMessageRecorded]
    assert lead.state.open_handoff_ticket() is None


@pytest.mark.parametrize(
    "resume",
    [
        {"text": "resume"},
        {"text": "resume", "addressed": True},  # `@salesbot resume` in the thread
        {"text": "/resume"},
    ],
    ids=["typed", "mention", "slash"],
)
def test_resume_hands_the_conversation_back_and_the_bot_answers_again(
    thread: Desk, resume: dict[str, Any]
) -> None:
    thread.rep_writes("Hi Pat, Rae here. Let me check that for you.")
    key = thread.ticket_key()
    back = thread.rep_writes(**resume)
    (handed,) = events_of(back, HandedBack)
    assert (handed.ticket_key, handed.by) == (key, "U_RAE")
    assert events_of(back, RepMessageRecorded) == []  # a command, not words for the prospect
    assert thread.state.flow_state != "handoff"
    assert next(r.text for r in to_prospect(back)).startswith("Thanks for")
    (card,) = cards_for_team(back)
    assert card.card is not None
    assert card.card.status == "Returned to the bot by Rae Rep"
    assert card.card.buttons == ()
    answered = thread.say("What does the Pro plan cost?")
    assert to_prospect(answered), "the bot answers the prospect again"


def test_the_policy_hands_back_from_a_rep_who_went_silent_and_replay_agrees(
    default_policy: Policy,
) -> None:
    policy = desk(default_policy, rep_idle_handback_ms=30 * MINUTE)
    thread = Desk(policy, "chat:idle", lead_actor=PROSPECT)
    thread.say("Hi, we are evaluating CRMs")
    thread.rep_writes("Hi Pat, Rae here.")
    key = thread.ticket_key()
    early = thread.timer(29 * MINUTE)
    assert early.events == ()
    late = thread.timer(2 * MINUTE)
    (handed,) = events_of(late, HandedBack)
    assert (handed.reason, handed.by, handed.ticket_key) == ("rep_idle", "salesbot", key)
    assert handed.idle_ms is not None
    assert handed.idle_ms >= 30 * MINUTE
    assert to_prospect(late), "the prospect hears the bot is back"
    (card,) = cards_for_team(late)
    assert card.card is not None
    assert card.card.status == "Returned to the bot: Rae Rep was silent for 31 min"
    replayed = replay_conversation(
        thread.state.conversation_id, thread.inbounds, thread.events, lambda _v: policy
    )
    assert replayed.differences == ()


def test_without_the_idle_hand_back_a_silent_rep_keeps_the_conversation(thread: Desk) -> None:
    thread.rep_writes("Hi Pat, Rae here.")
    assert thread.timer(30 * 24 * 60 * MINUTE).events == ()
    assert thread.state.flow_state == "handoff"


def test_resume_is_the_sales_teams_as_return_to_bot_is(thread: Desk) -> None:
    """`resume` shares the roles matrix's row of *Return to bot*: a prospect is refused."""
    thread.rep_writes("Hi Pat, Rae here.")
    refused = thread.command("resume", "", PROSPECT)
    (event,) = events_of(refused, CommandRefused)
    assert (event.command, event.reason) == ("resume", "reps_only")
    assert [r.text for r in refused.replies] == [permission("button:return_to_bot").message]
    assert thread.state.flow_state == "handoff"
    assert {spec.permission_key for spec in COMMANDS} <= {rule.key for rule in MATRIX}


# --- Resolve asks for the outcome ----------------------------------------------------------


def test_resolve_asks_for_the_outcome_on_the_card_and_changes_nothing_yet(thread: Desk) -> None:
    thread.rep_writes("Hi Pat, Rae here.")
    key = thread.ticket_key()
    asked = thread.click("resolve_ticket", key, REP)
    assert asked.events == ()
    (card,) = cards_for_team(asked)
    assert card.replaces == key
    assert card.card is not None
    assert [(b.label, b.target) for b in card.card.buttons] == [
        ("Won", f"{key}:won"),
        ("Lost…", f"{key}:lost"),
        ("Handled: back to the bot", f"{key}:handled"),
        ("Closed", f"{key}:closed"),
        ("Back", f"{key}:back"),
    ]
    lost = thread.click("resolve_ticket", f"{key}:lost", REP)
    assert lost.events == ()
    (reasons,) = cards_for_team(lost)
    assert reasons.card is not None
    assert [b.target for b in reasons.card.buttons] == [
        *(f"{key}:lost:{r}" for r in ("chose_competitor", "price", "timing", "not_interested")),
        f"{key}:lost:no_response",
        f"{key}:back",
    ]
    back = thread.click("resolve_ticket", f"{key}:back", REP)
    (held,) = cards_for_team(back)
    assert held.card is not None
    assert held.card.status == "Taken over by Rae Rep"


def test_resolve_as_won_closes_the_conversation_as_won(thread: Desk) -> None:
    thread.rep_writes("Hi Pat, Rae here.")
    won = thread.click("resolve_ticket", f"{thread.ticket_key()}:won", REP)
    (resolved,) = events_of(won, TicketResolved)
    assert resolved.outcome == "won"
    assert [c.outcome for c in events_of(won, ConversationClosed)] == ["won"]
    assert [e.trigger for e in events_of(won, FlowAdvanced)] == ["deal_won"]
    assert thread.state.outcome == "won"
    (card,) = cards_for_team(won)
    assert card.card is not None
    assert card.card.status == "Resolved by Rae Rep: won"
    assert to_prospect(won) == []


def test_resolve_as_lost_for_a_competitor_names_it_as_the_policy_records_it(
    default_policy: Policy,
) -> None:
    lead = Desk(default_policy, "lead-2", lead_actor=PROSPECT)
    lead.lead("Can I talk to a real person please?")
    lead.say("We are also looking at MS Dynamics")
    key = lead.ticket_key()
    lead.click("claim_ticket", key, REP)
    lost = lead.click("resolve_ticket", f"{key}:lost:chose_competitor", REP)
    (resolved,) = events_of(lost, TicketResolved)
    assert (resolved.outcome, resolved.reason, resolved.competitor) == (
        "lost",
        "chose_competitor",
        "Microsoft Dynamics",
    )
    assert [c.outcome for c in events_of(lost, ConversationClosed)] == ["lost"]
    assert lead.state.outcome == "lost"
    (post,) = events_of(lost, TeamNotified)  # the lead's thread hears why
    assert (post.kind, post.reason, post.competitor) == (
        "lost",
        "chose_competitor",
        "Microsoft Dynamics",
    )
    (card,) = cards_for_team(lost)
    assert card.card is not None
    assert card.card.status == (
        "Resolved by Rae Rep: lost (chose another vendor), to Microsoft Dynamics"
    )


def test_a_lost_deal_keeps_the_reps_note_and_the_competitor_it_names(thread: Desk) -> None:
    thread.rep_writes("Hi Pat, Rae here.")
    key = thread.ticket_key()
    reasons = thread.click("resolve_ticket", f"{key}:lost", REP)
    (card,) = cards_for_team(reasons)
    assert card.card is not None
    assert card.card.input is not None
    lost = thread.send(
        ButtonClicked(
            action="resolve_ticket",
            target=f"{key}:lost:price",
            actor=REP,
            note="  They went with  Hubspot CRM, half our price ",
            **thread.ids(),
        )
    )
    (resolved,) = events_of(lost, TicketResolved)
    assert (resolved.reason, resolved.note, resolved.competitor) == (
        "price",
        "They went with Hubspot CRM, half our price",
        "HubSpot",  # as `[competitors]` records it
    )
    (shown,) = cards_for_team(lost)
    assert shown.card is not None
    assert shown.card.status == (
        "Resolved by Rae Rep: lost (found it too expensive), to HubSpot: "
        "“They went with Hubspot CRM, half our price”"
    )
    audit = audit_conversation(thread.state.conversation_id, thread.events)
    entry = next(e for e in audit.entries if e.type == "ticket_resolved")
    assert entry.summary == f"Ticket {key} resolved by U_RAE: lost (price: found it too expensive)"
    assert entry.details == (
        "competitor: HubSpot",
        "note: They went with Hubspot CRM, half our price",
    )


def test_a_lost_reason_the_policy_does_not_list_is_refused(thread: Desk) -> None:
    thread.rep_writes("Hi Pat, Rae here.")
    refused = thread.click("resolve_ticket", f"{thread.ticket_key()}:lost:astrology", REP)
    assert [e.reason for e in events_of(refused, ActionIgnored)] == ["unknown_outcome"]
    assert events_of(refused, TicketResolved) == []


def test_resolve_as_handled_gives_the_conversation_back_to_the_bot(thread: Desk) -> None:
    thread.rep_writes("Hi Pat, Rae here.")
    key = thread.ticket_key()
    handled = thread.click("resolve_ticket", f"{key}:handled", REP)
    assert [e.outcome for e in events_of(handled, TicketResolved)] == ["handled"]
    assert [e.ticket_key for e in events_of(handled, HandedBack)] == [key]
    assert thread.state.flow_state != "handoff"
    assert to_prospect(handled), "the bot tells the prospect it is back"
    assert thread.state.tickets[key].phase == "returned"


def test_a_second_resolve_changes_nothing_and_says_so(thread: Desk) -> None:
    thread.rep_writes("Hi Pat, Rae here.")
    key = thread.ticket_key()
    thread.click("resolve_ticket", f"{key}:closed", REP)
    again = thread.click("resolve_ticket", f"{key}:won", OTHER)
    assert [e.reason for e in events_of(again, ActionIgnored)] == ["already_resolved"]
    assert thread.state.outcome is None


# --- a prospect message after an outcome is never dropped ---------------------------------


def test_after_resolve_the_prospects_next_message_reopens_the_ticket_for_the_same_holder(
    thread: Desk,
) -> None:
    thread.rep_writes("Hi Pat, Rae here.")
    key = thread.ticket_key()
    thread.click("resolve_ticket", f"{key}:closed", REP)
    assert thread.state.open_handoff_ticket() is None
    wrote = thread.say("Sorry, one more question about invoices")
    (reopened,) = events_of(wrote, TicketReopened)
    assert (reopened.ticket_key, reopened.holder, reopened.cause) == (
        key,
        "U_RAE",
        "prospect_wrote",
    )
    assert to_prospect(wrote) == []  # the holder answers, not the bot
    (card,) = cards_for_team(wrote)
    assert card.replaces == key
    assert card.card is not None
    assert card.card.status == "Claimed by Rae Rep: prospect wrote again"
    assert card.card.text.endswith("prospect: Sorry, one more question about invoices")
    assert [b.action for b in card.card.buttons] == [
        "resolve_ticket",
        "return_to_bot",
        "mark_won",
        "mark_lost",
    ]
    assert thread.state.tickets[key].phase == "reopened"
    replayed = replay_conversation(
        thread.state.conversation_id, thread.inbounds, thread.events, lambda _v: thread.policy
    )
    assert replayed.differences == ()
    history = audit_conversation(thread.state.conversation_id, thread.events).tickets
    assert [line.split(" ", 1)[1] for line in history[1:]] == [
        f"ticket {key} taken over by Rae Rep (U_RAE), who wrote in the conversation: the bot "
        "stays silent towards the prospect",
        f"ticket {key} resolved by U_RAE: closed",
        f"ticket {key} reopened: the prospect wrote after its outcome; held by Rae Rep (U_RAE) "
        "again",
    ]


def test_after_a_lost_outcome_the_prospects_message_reopens_the_ticket_too(thread: Desk) -> None:
    thread.rep_writes("Hi Pat, Rae here.")
    key = thread.ticket_key()
    thread.click("resolve_ticket", f"{key}:lost:timing", REP)
    assert thread.state.flow_state == "closed"
    wrote = thread.say("Actually, could we talk again next week?")
    assert [e.holder for e in events_of(wrote, TicketReopened)] == ["U_RAE"]
    assert events_of(wrote, TicketOpened) == []  # not a second ticket


def test_by_policy_the_bot_answers_the_message_after_an_outcome(default_policy: Policy) -> None:
    thread = Desk(desk(default_policy, after_outcome="bot"), "chat:bot", lead_actor=PROSPECT)
    thread.say("Hi, we are evaluating CRMs")
    thread.rep_writes("Hi Pat, Rae here.")
    thread.click("resolve_ticket", f"{thread.ticket_key()}:closed", REP)
    wrote = thread.say("What does the Pro plan cost?")
    (handed,) = events_of(wrote, HandedBack)
    assert (handed.reason, handed.ticket_key) == ("prospect_wrote", None)
    assert to_prospect(wrote), "the bot answers the prospect"
    assert thread.state.flow_state != "handoff"


def test_a_rep_writing_after_an_outcome_reopens_the_ticket_as_theirs(thread: Desk) -> None:
    thread.rep_writes("Hi Pat, Rae here.")
    key = thread.ticket_key()
    thread.click("resolve_ticket", f"{key}:closed", REP)
    again = thread.rep_writes("Pat, one more thing from me.", OTHER)
    (reopened,) = events_of(again, TicketReopened)
    assert (reopened.holder, reopened.cause) == ("U_SAM", "rep_wrote")
    (card,) = cards_for_team(again)
    assert card.card is not None
    assert card.card.status == "Taken over by Sam Other"


# --- the ticket card: transcript and age -------------------------------------------------


def test_the_ticket_card_shows_the_transcript_and_its_age_refreshed_when_the_prospect_writes(
    thread: Desk,
) -> None:
    thread.say("Can I talk to a real person please?")
    key = thread.ticket_key()
    thread.now += 12 * MINUTE
    wrote = thread.say("Hello? Is anyone there?")
    (card,) = cards_for_team(wrote)
    assert card.replaces == key
    assert card.card is not None
    fields = {f.label: f.value for f in card.card.fields}
    assert fields["Age"] == "12 min"
    assert fields["Held by"] == "nobody yet"
    lines = card.card.text.splitlines()
    assert lines[0] == "prospect: Hi, we are evaluating CRMs for a team of 12"
    assert lines[-1] == "prospect: Hello? Is anyone there?"
    assert card.card.status == "Open"
    assert [b.action for b in card.card.buttons] == [
        "claim_ticket",
        "resolve_ticket",
        "return_to_bot",
        "mark_won",
        "mark_lost",
    ]


# --- compatibility: a policy without [handoff] ---------------------------------------------


def test_a_policy_without_the_handoff_table_hashes_as_before(default_policy: Policy) -> None:
    without = default_policy.model_copy(update={"handoff": None})
    document = json.loads(without.canonical_json())
    assert "handoff" not in document
    assert build_policy(document, "stored").version == without.version
    switched_off = build_policy({**document, "handoff": False}, "stored")
    assert switched_off.version == without.version
    assert default_policy.version != without.version


def test_a_policy_without_the_handoff_table_decides_as_before(default_policy: Policy) -> None:
    """A rep's words are only recorded; Resolve resolves at once; after it, the prospect's
    message is recorded and nobody hears of it (the old behaviour a stored policy keeps)."""
    policy = default_policy.model_copy(update={"handoff": None})
    thread = Desk(policy, "chat:old", lead_actor=PROSPECT)
    thread.say("Hi, we are evaluating CRMs")
    said = thread.rep_writes("Hi Pat, Rae here.")
    assert [type(env.event) for env in said.events] == [RepMessageRecorded]
    assert events_of(said, RepMessageRecorded)[0].name is None
    thread.say("Can I talk to a real person please?")
    key = thread.ticket_key()
    thread.click("claim_ticket", key, REP)
    resolved = thread.click("resolve_ticket", key, REP)
    (event,) = events_of(resolved, TicketResolved)
    assert event.outcome is None
    assert "outcome" not in event.model_dump(mode="json")
    dropped = thread.say("Hello?")
    assert [env.event.type for env in dropped.events] == ["prospect_message_received"]
    assert dropped.replies == ()
    words = thread.rep_writes("resume")
    assert [type(env.event) for env in words.events] == [RepMessageRecorded]


def test_the_handoff_table_is_validated() -> None:
    with pytest.raises(ValueError, match="at most 5 lost reasons"):
        HandoffConfig(lost_reasons=("a", "b", "c", "d", "e", "f"))
    with pytest.raises(ValueError, match="more than once"):
        HandoffConfig(lost_reasons=("price", "price"))
    with pytest.raises(ValueError, match="lower-case name"):
        HandoffConfig(lost_reasons=("Too Expensive",))
    with pytest.raises(ValueError, match="greater than or equal to 60000"):
        HandoffConfig(rep_idle_handback_ms=1000)
