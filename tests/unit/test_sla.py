"""The SLA ladder (`[handoff] unclaimed_reping_ms`, `unclaimed_escalate_ms`, issue 14 item 3),
decided by `decide` on a fake clock: what the team and the waiting prospect see.

- after the first delay the ticket card is refreshed with its age and the on-call group is
  mentioned; a prospect who wrote is told once that a person will answer, with the business
  hours when the timer's fact says it is outside them (in the prospect's language);
- after the second delay the ticket is posted to the escalation target;
- a claimed ticket never climbs; each step is one event, in the audit in plain words, and a
  replay reproduces it from the recorded fact;
- a policy without the keys has no ladder and hashes as before.
"""

from __future__ import annotations

import json

import pytest

from domain.audit import audit_conversation
from domain.business_hours import BusinessHours, HoursFact
from domain.decision import Decision
from domain.events import BotReplied, TicketEscalated, TicketRepinged
from domain.inbound import SYSTEM, TimerElapsed
from domain.policy import Policy, build_policy
from domain.replay import replay_conversation
from domain.sla import next_timer_ms
from tests.unit.test_handoff_desk import MINUTE, PROSPECT, REP, Desk, desk, events_of, to_prospect

CLOSED = HoursFact(open_now=False, next_open_ms=0)


@pytest.fixture
def waiting(default_policy: Policy) -> Desk:
    """A prospect who asked for a person: the ticket is open, nobody has claimed it."""
    thread = Desk(default_policy, "slack:T1:C1:1700000000.000100", lead_actor=PROSPECT)
    thread.say("Hi, we are evaluating CRMs for a team of 12")
    thread.say("Can I talk to a person please?")
    ticket = thread.state.open_handoff_ticket()
    assert ticket is not None
    assert ticket.status == "open"
    return thread


def tick(thread: Desk, after_ms: int, hours: HoursFact | None = None) -> Decision:
    thread.now += after_ms
    return thread.send(TimerElapsed(actor=SYSTEM, hours=hours, **thread.ids()))


def test_the_ladder_repings_then_escalates_an_unclaimed_ticket_at_the_policy_s_delays(
    waiting: Desk,
) -> None:
    key = waiting.ticket_key()
    since = waiting.now  # the ticket opened at the prospect's message
    assert waiting.timer(14 * MINUTE).events == ()  # 15 min in the shipped default
    repinged = waiting.timer(2 * MINUTE)
    (step,) = events_of(repinged, TicketRepinged)
    assert (step.ticket_key, step.age_ms, step.told_prospect) == (key, waiting.now - since, True)
    assert 16 * MINUTE <= step.age_ms < 17 * MINUTE
    card, page = [r for r in repinged.replies if r.audience == "handoff"]
    assert card.replaces == key
    assert card.card is not None
    assert card.card.status == "Unclaimed for 16 min: on-call paged"
    assert ("Age", "16 min") in [(f.label, f.value) for f in card.card.fields]
    assert page.mention == "on_call"
    assert page.replaces is None
    assert "waited 16 min" in page.text
    (told,) = to_prospect(repinged)
    assert told.text.startswith("Thanks for waiting.")
    assert "business hours" not in told.text  # no fact about hours: none are named

    assert waiting.timer(30 * MINUTE).events == ()  # re-pinged once only
    escalated = waiting.timer(15 * MINUTE)
    (step2,) = events_of(escalated, TicketEscalated)
    assert (step2.ticket_key, step2.age_ms) == (key, waiting.now - since)
    (posted,) = [r for r in escalated.replies if r.audience == "escalation"]
    assert posted.mention == "on_call"
    assert posted.card is not None
    assert posted.card.ref == f"escalated:{key}"
    assert posted.replaces is None
    assert posted.card.buttons == ()
    assert to_prospect(escalated) == []  # told once
    assert waiting.timer(24 * 60 * MINUTE).events == ()  # the ladder has no third step
    assert next_timer_ms(waiting.state, waiting.policy) is None


def test_outside_business_hours_the_waiting_prospect_is_told_when_the_team_answers(
    waiting: Desk,
) -> None:
    repinged = tick(waiting, 16 * MINUTE, CLOSED)
    (step,) = events_of(repinged, TicketRepinged)
    assert (step.open_now, step.next_open_ms) == (False, 0)
    (told,) = to_prospect(repinged)
    assert "Monday to Friday, 09:00–18:00 (Europe/Paris)" in told.text
    (said,) = events_of(repinged, BotReplied)
    assert said.template == "handoff_waiting.after_hours"


def test_within_business_hours_the_prospect_hears_only_that_a_person_will_answer(
    waiting: Desk,
) -> None:
    repinged = tick(waiting, 16 * MINUTE, HoursFact(open_now=True, next_open_ms=1))
    (told,) = to_prospect(repinged)
    assert "business hours" not in told.text
    assert events_of(repinged, TicketRepinged)[0].open_now is True


def test_the_waiting_notice_is_in_the_prospect_s_language(default_policy: Policy) -> None:
    thread = Desk(default_policy, "slack:T1:C1:1700000000.000200", lead_actor=PROSPECT)
    thread.say("Bonjour, nous cherchons un CRM pour une équipe de 12 personnes")
    thread.say("Je voudrais parler à une personne, s'il vous plaît")
    assert thread.state.open_handoff_ticket() is not None
    (told,) = to_prospect(tick(thread, 16 * MINUTE, CLOSED))
    assert "du lundi au vendredi, 09:00–18:00 (Europe/Paris)" in told.text


def test_a_claimed_ticket_is_never_repinged_nor_escalated(waiting: Desk) -> None:
    waiting.rep_writes("Hi Pat, Rae here. How can I help?")
    ticket = waiting.state.open_handoff_ticket()
    assert ticket is not None
    assert ticket.status == "claimed"
    for _ in range(5):
        assert events_of(waiting.timer(60 * MINUTE), TicketRepinged) == []
    assert events_of(waiting.timer(24 * 60 * MINUTE), TicketEscalated) == []


def test_a_ticket_claimed_after_the_reping_is_not_escalated(waiting: Desk) -> None:
    assert events_of(waiting.timer(16 * MINUTE), TicketRepinged)
    waiting.rep_writes("Sorry for the wait, Rae here.", REP)
    assert waiting.timer(2 * 60 * MINUTE).events == ()


def test_each_step_is_in_the_audit_in_plain_words_and_replays_identically(
    waiting: Desk,
) -> None:
    tick(waiting, 16 * MINUTE, HoursFact(open_now=False, next_open_ms=1_790_035_200_000))
    tick(waiting, 60 * MINUTE)
    audit = audit_conversation(waiting.state.conversation_id, waiting.events)
    rendered = json.dumps(audit.model_dump(mode="json"), ensure_ascii=False)
    assert "re-pinged: nobody claimed it for 0 d 0 h 16 min" in rendered
    assert "outside business hours; they next open at 2026-09-22T" in rendered
    assert "escalated: nobody claimed it for 0 d 1 h 16 min" in rendered
    replayed = replay_conversation(
        waiting.state.conversation_id, waiting.inbounds, waiting.events, lambda _v: waiting.policy
    )
    assert replayed.differences == ()
    assert any(isinstance(r.inbound, TimerElapsed) and r.inbound.hours for r in waiting.inbounds)


def test_only_the_steps_the_policy_sets_are_taken(default_policy: Policy) -> None:
    policy = desk(default_policy, unclaimed_reping_ms=None)
    thread = Desk(policy, "slack:T1:C1:1700000000.000300", lead_actor=PROSPECT)
    thread.say("Hi, we are evaluating CRMs for a team of 12")
    thread.say("Can I talk to a person please?")
    assert events_of(thread.timer(59 * MINUTE), TicketEscalated) == []
    escalated = thread.timer(2 * MINUTE)
    assert events_of(escalated, TicketRepinged) == []
    assert len(events_of(escalated, TicketEscalated)) == 1
    assert to_prospect(escalated) == []  # the prospect is told at the re-ping only


def test_without_the_keys_nothing_climbs_and_the_policy_hashes_as_before(
    default_policy: Policy,
) -> None:
    off = desk(
        default_policy,
        unclaimed_reping_ms=None,
        unclaimed_escalate_ms=None,
        escalation={},
        on_call={},
        business_hours=None,
        outcome_buttons=False,
        lead_room=False,
    )
    assert off.handoff is not None
    assert not off.handoff.ladder
    data = json.loads(off.canonical_json())
    assert set(data["handoff"]) == {
        "takeover_by_presence",
        "rep_idle_handback_ms",
        "ask_outcome",
        "lost_reasons",
        "after_outcome",
        "ticket_card",
    }
    thread = Desk(off, "slack:T1:C1:1700000000.000400", lead_actor=PROSPECT)
    thread.say("Hi, we are evaluating CRMs for a team of 12")
    thread.say("Can I talk to a person please?")
    assert next_timer_ms(thread.state, off) is None  # nothing due: the sweeper never visits
    assert thread.timer(7 * 24 * 60 * MINUTE).events == ()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("unclaimed_reping_ms = 3600000\nunclaimed_escalate_ms = 600000", "later than"),
        ('[handoff.business_hours]\ntime_zone = "Europe/Paris"\nclose = "08:00"', "after open"),
        ('[handoff.business_hours]\ntime_zone = "Europe/Paris"\nopen = "9am"', "24-hour"),
        ('[handoff.escalation]\nslack = ""', "non-empty"),
    ],
)
def test_a_ladder_out_of_order_or_hours_that_close_before_they_open_are_refused(
    default_policy: Policy, table: str, message: str
) -> None:
    from domain.errors import PolicyError
    from domain.policy import parse_document

    base = json.loads(default_policy.canonical_json())
    del base["understanding"]
    override = parse_document(f"[handoff]\n{table}", "test")
    document = {**base, "handoff": {**base["handoff"], **override["handoff"]}}
    with pytest.raises(PolicyError, match=message):
        build_policy(document, "test")


def test_business_hours_in_words_for_every_shape_of_week() -> None:
    week = BusinessHours(time_zone="America/New_York")
    assert week.words("en") == "Monday to Friday, 09:00–17:00 (America/New_York)"
    assert week.words("de").startswith("Montag bis Freitag")
    weekend = BusinessHours(time_zone="UTC", days=("sun", "sat"), open="10:00", close="14:00")
    assert weekend.words("en") == "Saturday and Sunday, 10:00–14:00 (UTC)"
    assert weekend.words("es").startswith("sábado y domingo")
