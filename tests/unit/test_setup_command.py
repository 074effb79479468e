"""`setup handoff|leads #channel`: an admin chooses an installation's channel; the choice
is recorded (who, which installation, which channel) and answered privately; anyone else
is refused and the refusal recorded; usage mistakes change nothing."""

from __future__ import annotations

import itertools

from domain.audit_plain import PlainContext, plain_line
from domain.cards import Reply
from domain.decide import decide, new_conversation
from domain.decision import Decision
from domain.events import ChannelSet, CommandRefused, RolesSet
from domain.inbound import Actor, ChannelRef, CommandInvoked, UserRef
from domain.policy import Policy
from domain.state import fold

ADMIN = Actor(id="U_ADM", name="Ada Admin", role="rep", admin=True)
REP = Actor(id="U_REP", name="Riley Rep", role="rep")
GUEST_LISTED = Actor(id="U_G", name="Gus Guest", role="prospect", admin=True)
DESK = ChannelRef(id="C0DESK", name="deals-desk")
_ids = itertools.count(1)


def setup(
    policy: Policy,
    actor: Actor,
    args: str,
    *,
    installation: str = "slack:T2",
    channel: ChannelRef | None = DESK,
    users: tuple[UserRef, ...] = (),
) -> Decision:
    state = new_conversation("slack:T2:C9", policy)
    command = CommandInvoked(
        delivery_id=f"d-{next(_ids)}",
        conversation_id=state.conversation_id,
        actor=actor,
        command="setup",
        args=args,
        installation=installation,
        channel=channel,
        users=users,
    )
    return decide(state, command, policy, 1_790_000_000_000)


def private(decision: Decision) -> list[Reply]:
    return [reply for reply in decision.replies if reply.audience == "requester"]


def test_an_admin_sets_the_handoff_channel_and_is_told_where_it_goes(
    default_policy: Policy,
) -> None:
    decision = setup(default_policy, ADMIN, "handoff #deals-desk")
    (event,) = [env.event for env in decision.events]
    assert event == ChannelSet(
        installation="slack:T2", purpose="handoff", channel="C0DESK", name="deals-desk", by="U_ADM"
    )
    (answer,) = private(decision)
    assert "Handoff tickets and approval requests of this workspace now go to #deals-desk" in (
        answer.text
    )
    assert [r for r in decision.replies if r.audience != "requester"] == []
    assert not decision.state.started  # the conversation itself is untouched


def test_the_leads_channel_too(default_policy: Policy) -> None:
    decision = setup(default_policy, ADMIN, "LEADS #deals-desk")
    assert [env.event.purpose for env in decision.events] == ["leads"]  # type: ignore[union-attr]


def test_a_rep_who_is_no_admin_is_refused_and_the_refusal_recorded(
    default_policy: Policy,
) -> None:
    for actor in (REP, GUEST_LISTED):
        decision = setup(default_policy, actor, "handoff #deals-desk")
        assert [env.event for env in decision.events] == [
            CommandRefused(command="setup", by=actor.id, reason="not_admin")
        ]
        assert "only admins" in private(decision)[0].text


def test_usage_mistakes_are_answered_and_change_nothing(default_policy: Policy) -> None:
    cases = [
        ("", {}),
        ("escalation #deals-desk", {}),
        ("handoff", {"channel": None}),
        ("handoff #deals-desk", {"installation": ""}),
    ]
    answers = []
    for args, changes in cases:
        decision = setup(default_policy, ADMIN, args, **changes)  # type: ignore[arg-type]
        assert decision.events == ()
        answers.append(private(decision)[0].text)
    assert answers[0].startswith("Usage: setup handoff #channel")
    assert answers[1].startswith("Usage: ")
    assert "Which channel?" in answers[2]
    assert "here they come from the configuration" in answers[3]


def test_the_event_replays_to_the_same_state(default_policy: Policy) -> None:
    decision = setup(default_policy, ADMIN, "handoff #deals-desk")
    replayed = fold(new_conversation("slack:T2:C9", default_policy), decision.events)
    assert replayed == decision.state


def test_a_command_without_the_new_fields_is_stored_as_before() -> None:
    old = CommandInvoked(
        delivery_id="d-1", conversation_id="c-1", actor=REP, command="quote", args="1 pro"
    )
    assert set(old.model_dump(mode="json")) == {
        "schema_version",
        "delivery_id",
        "conversation_id",
        "actor",
        "kind",
        "command",
        "args",
    }
    assert "admin" not in old.model_dump(mode="json")["actor"]


def test_said_in_the_channel_it_sets_the_answer_says_this_channel(
    default_policy: Policy,
) -> None:
    # Teams: `setup handoff` is said in the channel; its adapter resolves `here` to it.
    here = ChannelRef(id="19:desk@thread.tacv2")
    decision = setup(default_policy, ADMIN, "handoff here", installation="teams:t1", channel=here)
    (event,) = [env.event for env in decision.events]
    assert event == ChannelSet(
        installation="teams:t1", purpose="handoff", channel=here.id, name="", by="U_ADM"
    )
    (answer,) = private(decision)
    assert answer.text == "Done: handoff tickets and approval requests now come to this channel."
    refused = setup(default_policy, REP, "leads here", installation="teams:t1", channel=here)
    assert [env.event.type for env in refused.events] == ["command_refused"]


ANN, BEN = UserRef(id="U_ANN", name="ann"), UserRef(id="S_SALES", name="sales-leads")


def test_an_admin_sets_a_role_list_of_the_installation(default_policy: Policy) -> None:
    decision = setup(
        default_policy, ADMIN, "approvers @ann @sales-leads", channel=None, users=(ANN, BEN)
    )
    (envelope,) = decision.events
    assert envelope.event == RolesSet(
        installation="slack:T2", role="approvers", users=(ANN, BEN), by="U_ADM"
    )
    (answer,) = private(decision)
    assert "the approvers of this workspace are now ann, sales-leads" in answer.text
    assert plain_line(envelope, PlainContext()) == (
        "U_ADM made ann, sales-leads the approvers of slack:T2"
    )


def test_each_role_list_and_nothing_without_people_or_an_installation(
    default_policy: Policy,
) -> None:
    for role in ("auditors", "Managers", "admins"):
        decision = setup(default_policy, ADMIN, f"{role} @ann", channel=None, users=(ANN,))
        assert [env.event.role for env in decision.events] == [role.lower()]  # type: ignore[union-attr]
    unnamed = setup(default_policy, ADMIN, "approvers ann", channel=None)
    assert unnamed.events == ()
    assert "Name them with @mentions" in private(unnamed)[0].text
    elsewhere = setup(default_policy, ADMIN, "admins @ann", installation="", users=(ANN,))
    assert elsewhere.events == ()
    assert "from the configuration" in private(elsewhere)[0].text


def test_only_an_admin_sets_role_lists_and_a_refusal_is_recorded(default_policy: Policy) -> None:
    for actor in (REP, GUEST_LISTED):
        decision = setup(default_policy, actor, "admins @ann", channel=None, users=(ANN,))
        assert [env.event for env in decision.events] == [
            CommandRefused(command="setup", by=actor.id, reason="not_admin")
        ]
