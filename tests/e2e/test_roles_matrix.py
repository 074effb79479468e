"""The roles × actions matrix on every platform, table-driven.

The domain decides every command and button by the actor's capacities
(`domain.permissions`), and `tests/unit/test_safeguards.py` walks that table through
`decide`. What differs per platform is only *who counts as what*: each adapter states the
actor. So for every platform and every kind of person it can carry — a prospect, a rep, an
approver, an auditor, a manager, a user of another workspace or tenant — this test builds the actor
the adapter really produces and checks every row of the matrix against the table below,
which is written down independently of the code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from adapters.action_binding import ActionKey
from adapters.leadfeed.web import prospect as lead_prospect
from adapters.playground.web import to_inbound as playground_inbound
from adapters.slack.inbound import SlackContext, from_command
from adapters.teams.inbound import TeamsContext
from adapters.teams.inbound import from_activity as teams_from_activity
from bot.chat import SPEAKERS
from domain.inbound import Actor, CommandInvoked, LeadDetails, MessagePosted
from domain.permissions import MATRIX, capacities, permitted
from tests.unit.test_safeguards import EXPECTED, EXPECTED_WHILE_FRESH

Person = str
"""prospect | rep | approver | auditor | manager | outsider (another workspace or tenant) | guest
listed as approver and auditor (rights count only for reps)."""

# What each kind of person counts as, on any platform that can carry them.
COUNTS_AS: dict[Person, set[str]] = {
    "prospect": {"prospect"},
    "rep": {"rep"},
    "approver": {"rep", "approver"},
    "auditor": {"rep", "auditor"},
    "outsider": {"prospect"},
    "listed_guest": {"prospect"},
    "manager": {"rep", "manager"},
    # The local tools' people: trusted reps with both rights; the manager is also a manager.
    "local_rep": {"rep", "approver", "auditor"},
    "local_manager": {"rep", "approver", "auditor", "manager"},
}

# -- Slack -------------------------------------------------------------------------------

TEAM = "T_OURS"
SLACK = SlackContext(
    team_id=TEAM,
    bot_user_id="U_BOT",
    approvers=frozenset({"U_APPR", "U_GUEST", "U_EXT"}),
    auditors=frozenset({"U_AUD", "U_GUEST", "U_EXT"}),
    managers=frozenset({"U_MGR", "U_GUEST", "U_EXT"}),
)
SLACK_PEOPLE: dict[Person, tuple[str, str]] = {
    "prospect": ("U_PROSPECT", "T_THEIRS"),  # Slack Connect: another organisation
    "rep": ("U_REP", TEAM),
    "approver": ("U_APPR", TEAM),
    "auditor": ("U_AUD", TEAM),
    "manager": ("U_MGR", TEAM),
    "outsider": ("U_EXT", "T_ELSEWHERE"),
    "listed_guest": ("U_GUEST", TEAM),
}


async def slack_actor(person: Person) -> Actor:
    user, team = SLACK_PEOPLE[person]

    async def is_guest(user_id: str) -> bool:
        return user_id == "U_GUEST"

    form = {
        "command": "/metrics",
        "text": "",
        "team_id": team,
        "channel_id": "C_SHARED",
        "user_id": user,
        "user_name": user.lower(),
        "trigger_id": f"trig-{user}",
    }
    inbound = await from_command(form, SLACK, is_guest)
    actor: Actor = inbound.actor  # type: ignore[union-attr]
    return actor


# -- Microsoft Teams -----------------------------------------------------------------------

TENANT = "tenant-ours"
TEAMS = TeamsContext(
    tenant_id=TENANT,
    bot_id="28:bot",
    action_key=ActionKey(b"k"),
    approvers=frozenset({"aad-appr", "aad-guest", "aad-ext"}),
    auditors=frozenset({"aad-aud", "aad-guest", "aad-ext"}),
    managers=frozenset({"aad-mgr", "aad-guest", "aad-ext"}),
)
TEAMS_PEOPLE: dict[Person, tuple[str, str, str]] = {  # aad id, tenant, roster role
    "prospect": ("aad-prospect", TENANT, "guest"),
    "rep": ("aad-rep", TENANT, "user"),
    "approver": ("aad-appr", TENANT, "user"),
    "auditor": ("aad-aud", TENANT, "user"),
    "manager": ("aad-mgr", TENANT, "user"),
    "outsider": ("aad-ext", "tenant-elsewhere", "user"),
    "listed_guest": ("aad-guest", TENANT, "guest"),
}


async def teams_actor(person: Person) -> Actor:
    aad, tenant, role = TEAMS_PEOPLE[person]
    activity = {
        "type": "message",
        "id": f"act-{aad}",
        "text": "metrics",
        "serviceUrl": "https://smba.example/",
        "channelId": "msteams",
        "from": {"id": f"29:{aad}", "aadObjectId": aad, "name": aad, "userRole": role},
        "recipient": {"id": "28:bot"},
        "conversation": {"id": "a:personal", "conversationType": "personal", "tenantId": tenant},
        "channelData": {"tenant": {"id": tenant}},
    }
    inbound = teams_from_activity(activity, TEAMS)
    assert isinstance(inbound, MessagePosted), inbound
    return inbound.actor


# -- the playground, the terminal chat, the lead feed ------------------------------------


async def playground_actor(person: Person) -> Actor:
    role = {"prospect": "prospect", "local_rep": "rep", "manager": "manager"}[person]
    inbound, _ = playground_inbound({"role": role, "text": "hello", "conversation": None})
    return inbound.actor


async def chat_actor(person: Person) -> Actor:
    return SPEAKERS[{"prospect": "prospect", "local_rep": "rep", "manager": "manager"}[person]]


async def lead_actor(person: Person) -> Actor:
    assert person == "prospect"
    return lead_prospect("lead-1", LeadDetails(name="Dana", message="Hello"))


PLATFORMS: dict[str, tuple[Callable[[Person], Awaitable[Actor]], dict[Person, str]]] = {
    "slack": (slack_actor, {person: person for person in SLACK_PEOPLE}),
    "teams": (teams_actor, {person: person for person in TEAMS_PEOPLE}),
    "playground": (
        playground_actor,
        {"prospect": "prospect", "local_rep": "local_rep", "manager": "local_manager"},
    ),
    "chat": (
        chat_actor,
        {"prospect": "prospect", "local_rep": "local_rep", "manager": "local_manager"},
    ),
    "lead feed": (lead_actor, {"prospect": "prospect"}),
}


def _cases() -> list[tuple[str, Person]]:
    return [(platform, person) for platform, (_, people) in PLATFORMS.items() for person in people]


@pytest.mark.parametrize(("platform", "person"), _cases(), ids=[f"{p}-{q}" for p, q in _cases()])
async def test_every_person_a_platform_carries_may_do_exactly_what_the_matrix_says(
    platform: str, person: Person
) -> None:
    make, people = PLATFORMS[platform]
    actor = await make(person)
    expected = COUNTS_AS[people[person]]
    assert set(capacities(actor)) == expected, f"{platform} {person}: {actor}"
    for rule in MATRIX:
        allowed = bool(EXPECTED[rule.key] & expected)
        assert permitted(actor, rule.key, strict=True) is allowed, (platform, person, rule.key)
        # The same person as the conversation's owner (a rep's right only), and on a routed
        # ticket while it is fresh: the owner or a manager claims it.
        owning = expected | {"owner"} if "rep" in expected else expected
        assert set(capacities(actor, owner=actor.id)) == owning
        fresh = bool(EXPECTED_WHILE_FRESH.get(rule.key, EXPECTED[rule.key]) & owning)
        assert permitted(actor, rule.key, strict=True, owner=actor.id, fresh=True) is fresh
        fresh_other = bool(EXPECTED_WHILE_FRESH.get(rule.key, EXPECTED[rule.key]) & expected)
        assert permitted(actor, rule.key, strict=True, owner="someone", fresh=True) is fresh_other


def test_local_tools_have_two_approvers_so_four_eyes_works_from_one_keyboard() -> None:
    approvers = [actor for actor in SPEAKERS.values() if actor.may_approve]
    assert len(approvers) == 2
    assert not any(actor.sole_approver for actor in approvers)


async def test_a_slack_approver_configured_alone_is_the_sole_approver() -> None:
    alone = SLACK.model_copy(update={"approvers": frozenset({"U_APPR"})})

    async def is_guest(user_id: str) -> bool:
        return False

    form = {
        "command": "/metrics",
        "team_id": TEAM,
        "channel_id": "C1",
        "user_id": "U_APPR",
        "trigger_id": "t",
    }
    inbound = await from_command(form, alone, is_guest)
    assert isinstance(inbound, CommandInvoked)
    assert inbound.actor.sole_approver
    assert not (await slack_actor("approver")).sole_approver  # others are listed too
