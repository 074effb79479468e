"""Owners (`[routing]`): a lead routed by its fields, everyone else spread by a hash of the
conversation id (the same in every process), chosen once and recorded; the owner named on the
lead card and the ticket card and mentioned in team posts; their routed ticket theirs (or a
manager's) to claim while it is fresh; and a policy without `[routing]` deciding as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from domain.audit import audit_conversation, render_audit
from domain.cards import Card, Person
from domain.events import (
    EventEnvelope,
    MeetingRequested,
    OwnerAssigned,
    TeamNotified,
    TicketClaimed,
    TicketClaimRefused,
    TicketOpened,
)
from domain.inbound import Actor, LeadArrived, LeadDetails
from domain.permissions import (
    CAPACITIES,
    Capacity,
    allowed_for,
    allowed_while_fresh,
    permission,
)
from domain.policy import Policy
from domain.routing import choose_owner, matches, spread_index
from domain.routing_config import Routes, RoutingConfig, RoutingRule
from tests.unit.test_decide import (
    APPROVER,
    AUDITOR,
    PROSPECT,
    REP,
    Conversation,
    events_of,
    replies_to,
)

MINUTE = 60_000
EMMA, ERIN, GRACE, PAUL = "U_EMEA", "U_ENT", "U_GOV", "U_PARTNER"
SPREAD = ("U_A", "U_B", "U_C")
ROUTING = RoutingConfig(
    rules=(
        RoutingRule(field="territory", equals=("EMEA", "UK"), owner=EMMA),
        RoutingRule(field="company_size", at_least=1000, owner=ERIN),
        RoutingRule(field="segment", equals=("Public sector",), owner=GRACE),
        RoutingRule(field="source", equals=("partner",), owner=PAUL),
    ),
    spread=SPREAD,
    names={EMMA: "Emma EMEA", ERIN: "Erin Enterprise", "U_A": "Ana A"},
    owner_exclusive_ms=10 * MINUTE,
)
CONTRACT = "Can we cancel the contract and get a refund?"
HOT = "We have a $5000 budget, I am the CTO, starting next month"
MANAGER = Actor(id="U_MGR", name="Mo Manager", role="rep", manager=True)


@pytest.fixture
def routed(default_policy: Policy) -> Policy:
    return default_policy.model_copy(update={"routing": ROUTING})


@pytest.fixture
def unrouted(default_policy: Policy) -> Policy:
    """The default policy as stored before `[routing]` existed."""
    return default_policy.model_copy(update={"routing": None})


def all_events(convo: Conversation) -> list[EventEnvelope]:
    return [env for decision in convo.decisions for env in decision.events]


def field(card: Card, label: str) -> str | None:
    return next((f.value for f in card.fields if f.label == label), None)


# -- who owns a conversation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("details", "owner", "rule"),
    [
        ({"territory": "emea"}, EMMA, "rule:1"),
        ({"territory": " UK ", "company_size": 5000}, EMMA, "rule:1"),  # the first rule wins
        ({"company_size": 1000}, ERIN, "rule:2"),
        ({"segment": "PUBLIC SECTOR"}, GRACE, "rule:3"),
        ({"source": "Partner"}, PAUL, "rule:4"),
        ({"territory": "APAC", "company_size": 999, "source": "web"}, None, "spread"),
    ],
)
def test_a_lead_goes_to_the_owner_of_the_first_rule_its_fields_match(
    routed: Policy, details: dict[str, object], owner: str | None, rule: str
) -> None:
    convo = Conversation(routed, "lead-routing")
    decision = convo.lead("Hi, we are looking at CRMs", **details)
    (assigned,) = events_of(decision, OwnerAssigned)
    assert assigned.rule == rule
    if owner is not None:
        assert assigned.owner == owner
    else:
        assert assigned.owner in SPREAD
        assert assigned.matched is None
    assert convo.state.owner == assigned.owner


def test_company_size_ranges_include_at_least_and_stop_before_below() -> None:
    mid = RoutingRule(field="company_size", at_least=50, below=250, owner="U_MID")
    sized = [
        matches(mid, LeadDetails(name="N", message="m", company_size=size))
        for size in (49, 50, 249, 250)
    ]
    assert sized == [False, True, True, False]
    assert not matches(mid, LeadDetails(name="N", message="m"))  # no size given: no match
    assert mid.describe() == "company size 50–249"


def test_the_spread_is_a_hash_of_the_conversation_id_the_same_in_every_process() -> None:
    ids = [f"slack:T1:C{n}:{n}.000" for n in range(60)]
    here = [spread_index(cid, 3) for cid in ids]
    assert set(here) == {0, 1, 2}, "every owner gets conversations"
    # Another interpreter, with another string-hash seed, spreads them identically.
    script = (
        "import json, sys\n"
        "from domain.routing import spread_index\n"
        "print(json.dumps([spread_index(c, 3) for c in json.loads(sys.stdin.read())]))\n"
    )
    root = Path(__file__).parents[2]
    for seed in ("1", "4242"):
        result = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(ids),
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert json.loads(result.stdout) == here
    # Pinned: a stored conversation's owner never moves between releases.
    assert spread_index("conv-1", 3) == 1
    chosen = choose_owner(ROUTING, "conv-1", None)
    assert chosen is not None
    assert chosen.owner == SPREAD[1]


def test_the_owner_is_chosen_once_and_recorded_with_the_rule_that_chose_it(
    routed: Policy,
) -> None:
    convo = Conversation(routed)
    first = convo.lead("Hi, we are looking at CRMs", territory="EMEA")
    (assigned,) = events_of(first, OwnerAssigned)
    assert (assigned.owner, assigned.name, assigned.rule) == (EMMA, "Emma EMEA", "rule:1")
    assert assigned.matched == "territory is EMEA or UK"
    for text in (HOT, "And what about onboarding?"):
        assert not events_of(convo.say(text), OwnerAssigned)
    assert convo.state.owner == EMMA
    lines = "\n".join(render_audit(audit_conversation("conv-1", all_events(convo))))
    assert "Owner: Emma EMEA" in lines
    assert "Emma EMEA owns this conversation (routing rule: territory is EMEA or UK)" in lines


def test_a_direct_conversation_is_spread_and_unowned_without_a_spread(routed: Policy) -> None:
    convo = Conversation(routed)
    (assigned,) = events_of(convo.say("Hello there"), OwnerAssigned)
    assert assigned.rule == "spread"
    rules_only = routed.model_copy(update={"routing": ROUTING.model_copy(update={"spread": ()})})
    lone = Conversation(rules_only)
    assert not events_of(lone.say("Hello there"), OwnerAssigned)
    assert lone.state.owner is None


def test_another_installation_s_conversation_is_owned_by_its_own_people_or_nobody(
    routed: Policy,
) -> None:
    """`[routing]`'s rules and spread are the first installation's people: a conversation
    started through another workspace is spread over that workspace's own owners
    (`[routing.installations."slack:T0002"]`), matched by its own rules, and one of an
    installation without a table gets no owner at all — never another organisation's rep."""
    globex = RoutingConfig(
        **ROUTING.model_dump(exclude={"installations"}),
        installations={
            "slack:T0002": Routes(
                rules=(RoutingRule(field="territory", equals=("EMEA",), owner="U_GLOBEX_EU"),),
                spread=("U_GLOBEX_1", "U_GLOBEX_2"),
                names={"U_GLOBEX_1": "Gil Globex"},
            )
        },
    )
    policy = routed.model_copy(update={"routing": globex})
    theirs = PROSPECT.model_copy(update={"installation": "slack:T0002"})
    elsewhere = PROSPECT.model_copy(update={"installation": "teams:7f3c"})
    owners = {}
    for n in range(12):
        convo = Conversation(policy, f"slack:T0002:C1:{n}")
        (assigned,) = events_of(convo.say("Hello there", theirs), OwnerAssigned)
        owners[assigned.owner] = assigned.rule
    assert set(owners) == {"U_GLOBEX_1", "U_GLOBEX_2"}
    assert set(owners.values()) == {"spread"}
    eu = Conversation(policy, "slack:T0002:C1:eu")
    eu.send(
        LeadArrived(
            delivery_id="eu-1",
            conversation_id="slack:T0002:C1:eu",
            actor=theirs,
            lead=LeadDetails(name="Eve", message="Hello", territory="EMEA"),
        )
    )
    assert eu.state.owner == "U_GLOBEX_EU"  # its own rule, not EMMA's
    lone = Conversation(policy, "teams:19:x")
    assert not events_of(lone.say("Hello there", elsewhere), OwnerAssigned)
    assert lone.state.owner is None
    first = Conversation(policy)
    (assigned,) = events_of(first.say("Hello there"), OwnerAssigned)
    assert assigned.owner in SPREAD


def test_a_routing_table_without_installations_keeps_its_canonical_json(routed: Policy) -> None:
    """A stored policy's `[routing]` reads and writes as before installations existed."""
    assert "installations" not in ROUTING.model_dump_json()
    assert routed.routing is not None
    assert routed.routing.for_installation("") is routed.routing
    assert routed.routing.for_installation("slack:T0002") is None
    with pytest.raises(ValidationError, match="is not an installation id"):
        RoutingConfig(spread=("U_A",), installations={"T0002": Routes(spread=("U_B",))})


# -- the owner on the cards and in the posts ---------------------------------------------


def test_the_lead_card_names_the_owner_and_its_post_mentions_them(routed: Policy) -> None:
    convo = Conversation(routed)
    decision = convo.lead("Hi, we are looking at CRMs", territory="UK")
    (card_post,) = [r for r in replies_to(decision, "team") if r.card and r.card.kind == "lead"]
    assert card_post.card is not None
    assert field(card_post.card, "Owner") == "Emma EMEA"
    assert card_post.notify == Person(id=EMMA, name="Emma EMEA")


def test_a_ticket_card_names_the_owner_and_mentions_them_when_posted(routed: Policy) -> None:
    convo = Conversation(routed)
    decision = convo.lead(CONTRACT, company_size=4000)
    (posted,) = replies_to(decision, "handoff")
    assert posted.card is not None
    assert posted.card.kind == "ticket"
    assert field(posted.card, "Owner") == "Erin Enterprise"
    assert posted.notify == Person(id=ERIN, name="Erin Enterprise")


def test_team_posts_mention_the_owner(routed: Policy) -> None:
    convo = Conversation(routed)
    convo.lead("Hi, we are looking at CRMs", territory="emea")
    decision = convo.say(HOT)
    (hot,) = events_of(decision, TeamNotified)
    assert hot.mention == EMMA
    (post,) = [r for r in replies_to(decision, "team") if r.text == hot.text]
    assert post.notify == Person(id=EMMA, name="Emma EMEA")


def test_a_meeting_request_gets_the_owners_own_booking_link(routed: Policy) -> None:
    assert routed.meetings is not None
    meetings = routed.meetings.model_copy(
        update={"owners": {EMMA: "https://meet.example.com/emma"}}
    )
    policy = routed.model_copy(update={"meetings": meetings})
    convo = Conversation(policy)
    decision = convo.lead("Could we book a demo for Thursday afternoon?", territory="EMEA")
    (meeting,) = events_of(decision, MeetingRequested)
    assert (meeting.link, meeting.chosen_by) == ("https://meet.example.com/emma", "owner")
    assert any(
        "https://meet.example.com/emma" in r.text for r in replies_to(decision, "conversation")
    )


# -- the owner's window ------------------------------------------------------------------


def _fresh_ticket(policy: Policy) -> tuple[Conversation, str, Actor]:
    convo = Conversation(policy)
    opened = events_of(convo.lead(CONTRACT, territory="EMEA"), TicketOpened)
    (ticket,) = opened
    return convo, ticket.ticket_key, Actor(id=EMMA, name="Emma EMEA", role="rep")


def test_while_fresh_another_rep_is_refused_and_told_who_owns_it(routed: Policy) -> None:
    convo, key, _ = _fresh_ticket(routed)
    decision = convo.click("claim_ticket", key, REP)
    (refused,) = events_of(decision, TicketClaimRefused)
    assert (refused.owner, refused.by) == (EMMA, REP.id)
    assert refused.until_ms == convo.state.tickets[key].opened_at_ms + 10 * MINUTE  # type: ignore[operator]
    assert not events_of(decision, TicketClaimed)
    (told,) = replies_to(decision, "requester")
    assert "routed to Emma EMEA" in told.text
    assert "for another 10 min" in told.text
    assert convo.state.tickets[key].status == "open"
    lines = "\n".join(render_audit(audit_conversation("conv-1", all_events(convo))))
    assert f"{REP.id} could not claim the ticket yet: it is routed to its owner {EMMA}" in lines


def test_the_owner_claims_a_fresh_ticket(routed: Policy) -> None:
    convo, key, owner = _fresh_ticket(routed)
    assert events_of(convo.click("claim_ticket", key, owner), TicketClaimed)


def test_a_manager_claims_a_fresh_ticket(routed: Policy) -> None:
    convo, key, _ = _fresh_ticket(routed)
    (claimed,) = events_of(convo.click("claim_ticket", key, MANAGER), TicketClaimed)
    assert claimed.by == MANAGER.id


def test_after_the_window_anyone_on_the_team_claims(routed: Policy) -> None:
    convo, key, _ = _fresh_ticket(routed)
    convo.now = convo.state.tickets[key].opened_at_ms + 10 * MINUTE  # type: ignore[operator]
    assert events_of(convo.click("claim_ticket", key, REP), TicketClaimed)


def test_a_manager_flag_on_a_prospect_gives_no_claim(routed: Policy) -> None:
    convo, key, _ = _fresh_ticket(routed)
    listed = Actor(id="P_MGR", name="Listed Guest", role="prospect", manager=True)
    decision = convo.click("claim_ticket", key, listed)
    assert not events_of(decision, TicketClaimed)
    assert convo.state.tickets[key].status == "open"


def test_without_a_window_anyone_on_the_team_claims_at_once(routed: Policy) -> None:
    open_policy = routed.model_copy(
        update={"routing": ROUTING.model_copy(update={"owner_exclusive_ms": None})}
    )
    convo, key, _ = _fresh_ticket(open_policy)
    assert events_of(convo.click("claim_ticket", key, REP), TicketClaimed)


def _actor(capacity: Capacity) -> Actor:
    return {
        "prospect": PROSPECT,
        "rep": REP,
        "owner": Actor(id=EMMA, name="Emma EMEA", role="rep"),
        "manager": MANAGER,
        "approver": APPROVER,
        "auditor": AUDITOR,
        "admin": Actor(id="U_ADM", name="Ada Admin", role="rep", admin=True),
    }[capacity]


@pytest.mark.parametrize("capacity", CAPACITIES)
@pytest.mark.parametrize("fresh", [True, False], ids=["fresh", "after the window"])
def test_claiming_a_routed_ticket_is_as_the_matrix_says(
    routed: Policy, capacity: Capacity, fresh: bool
) -> None:
    rule = permission("button:claim_ticket")
    convo, key, _ = _fresh_ticket(routed)
    if not fresh:
        convo.now = convo.state.tickets[key].opened_at_ms + 10 * MINUTE  # type: ignore[operator]
    decision = convo.click("claim_ticket", key, _actor(capacity))
    allowed = allowed_while_fresh(rule, capacity) if fresh else allowed_for(rule, capacity)
    assert bool(events_of(decision, TicketClaimed)) is allowed, capacity


# -- compatibility -----------------------------------------------------------------------


def test_a_policy_without_routing_hashes_and_decides_as_before(
    default_policy: Policy, unrouted: Policy
) -> None:
    assert "routing" not in json.loads(unrouted.canonical_json())
    assert "routing" in json.loads(default_policy.canonical_json())
    convo = Conversation(unrouted)
    decisions = [convo.lead(CONTRACT, territory="EMEA"), convo.say(HOT)]
    assert not any(events_of(d, OwnerAssigned) for d in decisions)
    for decision in decisions:
        for reply in decision.replies:
            assert reply.notify is None
            assert "notify" not in reply.model_dump(mode="json")
            if reply.card is not None:
                assert field(reply.card, "Owner") is None
    (ticket,) = [t.key for t in convo.state.tickets.values()]
    assert events_of(convo.click("claim_ticket", ticket, REP), TicketClaimed)


def test_values_stored_before_routing_serialise_as_they_did() -> None:
    assert "manager" not in REP.model_dump(mode="json")
    assert MANAGER.model_dump(mode="json")["manager"] is True
    lead = LeadDetails(name="N", message="m")
    assert set(lead.model_dump(mode="json")) == {
        "name",
        "company",
        "email",
        "message",
        "source",
        "external_id",
        "company_size",
        "credit_score",
        "reply_url",
    }


def test_the_shipped_default_routes_and_seed_does_not(default_policy: Policy) -> None:
    from bot.policy_loader import load_policy

    assert default_policy.routing is not None
    assert default_policy.routing.spread
    assert load_policy("seed").routing is None


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ({}, "needs rules, a spread, or both"),
        ({"spread": ["U1", "U1"]}, "more than once"),
        ({"spread": ["has space"]}, "without spaces"),
        ({"rules": [{"field": "territory", "owner": "U1"}]}, "needs equals"),
        ({"rules": [{"field": "company_size", "owner": "U1"}]}, "at_least and/or below"),
        (
            {"rules": [{"field": "company_size", "at_least": 10, "below": 10, "owner": "U1"}]},
            "greater than at_least",
        ),
        ({"rules": [{"field": "source", "at_least": 3, "owner": "U1"}]}, "use equals"),
        ({"rules": [{"field": "region", "equals": ["x"], "owner": "U1"}]}, "field"),
        ({"spread": ["U1"], "owner_exclusive_ms": 1000}, "greater than or equal to 60000"),
    ],
)
def test_a_routing_table_that_cannot_route_is_refused_with_the_reason(
    table: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        RoutingConfig.model_validate(table)
