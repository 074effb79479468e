"""Meetings and team posts (issue 13, items 3 and 6), as the prospect and the team see them.

A demo request gets a booking link from the policy with the day or time the prospect named
echoed back, and the team hears of it once in the lead's thread; a hot lead, a won deal and a
lost one are each posted once, however many messages follow. All of it is policy data: a
policy without `[meetings]` and `[team_posts]` decides and hashes as before.
"""

from __future__ import annotations

import json

import pytest

from domain.analytics import compute_metrics, render_metrics
from domain.audit import audit_conversation
from domain.events import MeetingRequested, TeamNotified
from domain.meetings import stated_when
from domain.meetings_config import MeetingsConfig, TeamPostsConfig, booking_link
from domain.policy import Policy
from domain.policy_check import check_policy
from domain.replay import replay_conversation
from storage.projections import Projection, metrics_from_projection
from tests.support.conversation import shows_prospects_words
from tests.support.talk import (
    PROSPECT,
    Move,
    Steps,
    bot_messages_to_the_prospect,
    envelopes,
    events,
    record,
    says,
    talk,
)

DEMO_REQUESTS = {
    "Could we book a demo for Thursday afternoon?": "Thursday afternoon",
    "Can we schedule a call next Tuesday at 3pm?": "next Tuesday at 3pm",
    "Would it be possible to see a demo on Friday morning?": "Friday morning",
    "I'd love a quick walkthrough call tomorrow afternoon": "tomorrow afternoon",
    "Let's set up a meeting on Monday at 10am": "Monday at 10am",
    "¿Podemos agendar una demo el jueves por la tarde?": "jueves por la tarde",
    "Pourrions-nous organiser une démo jeudi après-midi ?": "jeudi après-midi",
}


def team_posts(steps: Steps) -> list[str]:
    """What the bot told the team in the lead's thread / leads channel (the prospect's own
    words, shown there too, aside)."""
    return [
        r.text
        for _, d in steps
        for r in d.replies
        if r.audience == "team" and not shows_prospects_words(r)
    ]


def lead(text: str = "Hi, we are looking at CRMs") -> list[Move]:
    """A lead from the feed: the conversation with a thread in the leads channel."""
    return [{"kind": "lead", "text": text}]


def without_meetings(policy: Policy) -> Policy:
    return policy.model_copy(update={"meetings": None, "team_posts": None})


@pytest.mark.parametrize("message", list(DEMO_REQUESTS))
def test_a_demo_request_gets_a_booking_link_with_the_stated_time_and_the_team_one_post(
    default_policy: Policy, message: str
) -> None:
    assert default_policy.meetings is not None
    steps = talk(default_policy, [*lead(), *says(message)])
    said = bot_messages_to_the_prospect(steps)[-1]
    link, _ = booking_link(default_policy.meetings, "conv-props")
    assert link in said
    assert DEMO_REQUESTS[message] in said
    meeting_posts = [post for post in team_posts(steps) if post.startswith("Meeting requested")]
    assert meeting_posts == [
        f"Meeting requested: Pat Prospect asked to meet for "
        f"{DEMO_REQUESTS[message]}. Booking link sent: {link}"
    ]
    (event,) = events(steps, MeetingRequested)
    assert (event.link, event.when, event.chosen_by) == (link, DEMO_REQUESTS[message], "hash")


def test_asking_again_gets_the_same_link_and_the_team_is_not_told_twice(
    default_policy: Policy,
) -> None:
    steps = talk(
        default_policy,
        [
            *lead("Could we book a demo for Thursday afternoon?"),
            *says("Can we do a demo call on Friday?"),
        ],
    )
    first_decision = steps[0][1]
    assert first_decision.replies[0].text == "New lead from Pat Prospect"  # the thread's start
    said = bot_messages_to_the_prospect(steps)
    link, _ = booking_link(
        default_policy.meetings or MeetingsConfig(links=("https://x",)), "conv-props"
    )
    assert link in said[0]
    assert link in said[1]
    assert "Friday" in said[1]
    assert said[0] != said[1]
    assert len(events(steps, MeetingRequested)) == 2
    assert sum(post.startswith("Meeting requested") for post in team_posts(steps)) == 1


def test_the_link_is_chosen_by_the_conversation_and_an_owner_gets_their_own() -> None:
    config = MeetingsConfig(
        links=("https://a.example/1", "https://a.example/2", "https://a.example/3"),
        owners={"U1": "https://a.example/owner"},
    )
    chosen = {booking_link(config, f"conv-{n}")[0] for n in range(30)}
    assert chosen == set(config.links)  # spread over the links…
    assert booking_link(config, "conv-7") == booking_link(config, "conv-7")  # …stably
    assert booking_link(config, "conv-7", "U1") == ("https://a.example/owner", "owner")
    assert booking_link(config, "conv-7", "U2")[1] == "hash"
    with pytest.raises(ValueError, match="https://"):
        MeetingsConfig(links=("javascript:alert(1)",))


def test_a_hot_lead_is_posted_once_not_once_per_message(default_policy: Policy) -> None:
    steps = talk(
        default_policy,
        [
            *lead("Hi there"),
            *says(
                "We have a 50k budget, I'm the VP and we need it next month",
                "Great, and we need SSO",
                "We're 40 people in sales",
                "ok thanks",
            ),
        ],
    )
    hot = [post for post in team_posts(steps) if post.startswith("Hot lead")]
    assert hot == ["Hot lead: Pat Prospect is qualified."]
    assert [e.kind for e in events(steps, TeamNotified)].count("hot_lead") == 1


def quote_then(*moves: Move) -> list[Move]:
    return [
        {"kind": "lead", "text": "We need a CRM for 10 reps, budget approved, this quarter"},
        {"kind": "quote", "args": "10 pro"},
        *moves,
    ]


def test_a_won_deal_is_posted_once_in_the_leads_thread(default_policy: Policy) -> None:
    accept: Move = {"kind": "click", "action": "accept_quote", "pick": 0, "actor": PROSPECT}
    steps = talk(default_policy, quote_then(accept, accept, *says("thanks!")))
    won = [post for post in team_posts(steps) if post.startswith("Won")]
    assert len(won) == 1
    assert won[0].startswith("Won: Pat Prospect accepted quote Q-")


def test_a_lost_deal_is_posted_once_with_the_reason(default_policy: Policy) -> None:
    lost: Move = {"kind": "command", "command": "lost", "args": "price"}
    steps = talk(default_policy, quote_then(lost, lost))
    assert [p for p in team_posts(steps) if p.startswith("Lost")] == [
        "Lost: Pat Prospect found it too expensive."
    ]


@pytest.mark.parametrize(
    "message",
    [
        "We've decided to go with HubSpot, thanks anyway.",
        "We chose HubSpot instead, sorry.",
        "Thanks, but we went with HubSpot.",
    ],
)
def test_a_prospect_who_chose_a_competitor_is_posted_lost_with_the_competitor(
    default_policy: Policy, message: str
) -> None:
    steps = talk(default_policy, [*lead(), *says(message, "bye")])
    (notice,) = [e for e in events(steps, TeamNotified) if e.kind == "lost"]
    assert notice.reason == "chose_competitor"
    assert notice.competitor == "HubSpot"
    assert [p for p in team_posts(steps) if p.startswith("Lost")] == [
        "Lost: Pat Prospect chose another vendor (HubSpot)."
    ]


def test_without_the_new_keys_nothing_changes_and_the_hash_is_as_before(
    default_policy: Policy, seed_policy: Policy
) -> None:
    old = without_meetings(default_policy)
    data = json.loads(old.canonical_json())
    assert "meetings" not in data
    assert "team_posts" not in data
    assert "meetings" not in json.loads(seed_policy.canonical_json())
    assert "team_posts" not in json.loads(seed_policy.canonical_json())
    steps = talk(old, lead("Could we book a demo for Thursday afternoon?"))
    assert events(steps, MeetingRequested) == []
    assert events(steps, TeamNotified) == []
    assert team_posts(steps) == ["New lead from Pat Prospect"]  # the lead card, as before
    assert all("meet.example.com" not in text for text in bot_messages_to_the_prospect(steps))
    shipped = json.loads(default_policy.canonical_json())
    assert shipped["team_posts"] == {"on": ["hot_lead", "meeting", "won", "lost"]}


def test_meetings_and_team_posts_replay_with_no_differences(default_policy: Policy) -> None:
    accept: Move = {"kind": "click", "action": "accept_quote", "pick": 0, "actor": PROSPECT}
    moves = quote_then(*says("Could we book a demo for Thursday afternoon?"), accept)
    steps, inbounds = record(default_policy, moves, "conv-replay")
    assert events(steps, MeetingRequested)
    assert events(steps, TeamNotified)
    replay = replay_conversation(
        "conv-replay", inbounds, envelopes(steps), lambda _: default_policy
    )
    assert replay.differences == ()


def test_metrics_count_meetings_requested_from_the_log_and_the_projections(
    default_policy: Policy,
) -> None:
    log = envelopes(talk(default_policy, says("Could we book a demo for Thursday?"), "c1"))
    log += envelopes(talk(default_policy, says("Hi", "Can we set up a call on Monday?"), "c2"))
    log += envelopes(talk(default_policy, says("Hi", "What does it cost?"), "c3"))
    flow = default_policy.flow
    metrics = compute_metrics(log, states=flow.states, start=flow.start)
    assert metrics.meetings_requested == 2
    assert "Meetings requested: 2 of 3 conversations." in render_metrics(metrics)
    projection = Projection()
    for cid in ("c1", "c2", "c3"):
        projection.apply(cid, [env for env in log if env.conversation_id == cid])
    from_projection = metrics_from_projection(
        projection.count_table(),
        projection.time_to_qualify(),
        states=flow.states,
        start=flow.start,
    )
    assert from_projection == metrics
    assert not any("Meetings" in line for line in render_metrics(compute_metrics([])))


def test_the_audit_says_what_was_offered_and_what_the_team_was_told(
    default_policy: Policy,
) -> None:
    steps = talk(default_policy, lead("Could we book a demo for Thursday afternoon?"))
    report = audit_conversation("conv-props", envelopes(steps))
    text = "\n".join(line for entry in report.entries for line in (entry.summary, *entry.details))
    assert "Meeting requested, for Thursday afternoon (their words): the booking link" in text
    assert "chosen from the policy's links by a hash of the conversation id" in text
    assert "The team was told in the lead's thread: Meeting requested:" in text


def test_check_refuses_a_booking_link_the_persona_may_not_claim(default_policy: Policy) -> None:
    assert check_policy(default_policy) == ()
    unclaimed = default_policy.model_copy(
        update={"meetings": MeetingsConfig(links=("https://x.example/a",), claim="calendar")}
    )
    assert any("'calendar' (meetings.claim) is not allowed" in p for p in check_policy(unclaimed))
    persona = default_policy.active_persona
    template = persona.templates["meeting.booking"].model_copy(update={"variants": ("Sure!",)})
    broken = default_policy.model_copy(
        update={
            "personas": {
                "salespro": persona.model_copy(
                    update={"templates": {**persona.templates, "meeting.booking": template}}
                )
            }
        }
    )
    assert any("every wording must give the booking link" in p for p in check_policy(broken))


def test_a_policy_may_post_only_some_kinds(default_policy: Policy) -> None:
    quiet = default_policy.model_copy(update={"team_posts": TeamPostsConfig(on=("meeting",))})
    steps = talk(quiet, [*lead(), *says("We have a 50k budget, I'm the VP, next month")])
    assert [p for p in team_posts(steps) if not p.startswith("New lead")] == []


def test_a_direct_conversation_gets_the_link_but_has_no_leads_thread_to_post_in(
    default_policy: Policy,
) -> None:
    steps = talk(default_policy, says("Could we book a demo for Thursday afternoon?"))
    assert "Thursday afternoon" in bot_messages_to_the_prospect(steps)[-1]
    assert len(events(steps, MeetingRequested)) == 1
    assert team_posts(steps) == []
    assert events(steps, TeamNotified) == []


def test_the_stated_time_is_the_prospects_own_words() -> None:
    dates = {"dates": [{"text": "jeudi"}]}
    assert stated_when("Une démo jeudi après-midi ?", dates) == "jeudi après-midi"
    assert stated_when("Demo am Donnerstagnachmittag?", {}) == "Donnerstagnachmittag"
    assert stated_when("Friday works", {"dates": [{"text": "Friday"}]}) == "Friday"
    assert stated_when("Any time is fine", {}) is None
