"""Where a slash command's replies go: named with the command's response URL key, so they
reach the person who ran it also where the bot is not a member."""

from __future__ import annotations

import pytest

from adapters.slack.router import SlackRouter
from domain.cards import Card, Reply
from domain.decide import new_conversation
from domain.inbound import Actor, CommandInvoked, MessagePosted
from domain.policy import Policy

CONVERSATION = "slack:T0001:C0SALES"
REP = Actor(id="U0REP", role="rep")


def command() -> CommandInvoked:
    return CommandInvoked(
        delivery_id="slack:cmd:trig-9",
        conversation_id=CONVERSATION,
        actor=REP,
        command="quote",
        args="10 pro",
    )


def targets(
    router: SlackRouter, inbound: CommandInvoked | MessagePosted, reply: Reply, policy: Policy
) -> list[dict[str, object]]:
    state = new_conversation(inbound.conversation_id, policy)
    return [route.target for route in router.route(inbound, reply, state)]


ROUTER = SlackRouter(handoff_channel="C0HANDOFF", leads_channel=None)


@pytest.mark.parametrize("audience", ["requester", "conversation"])
def test_a_commands_replies_name_its_response_url(audience: str, default_policy: Policy) -> None:
    reply = Reply(audience=audience, text="x")  # type: ignore[arg-type]

    [target] = targets(ROUTER, command(), reply, default_policy)

    assert target["response_key"] == "slack:response:trig-9"
    assert target["channel"] == "C0SALES"


def test_a_card_updated_in_place_or_a_handoff_post_does_not(default_policy: Policy) -> None:
    update = Reply(
        audience="conversation", text="x", card=Card(kind="quote", title="Q"), replaces="Q-1"
    )
    handoff = Reply(audience="handoff", text="x")

    assert "response_key" not in targets(ROUTER, command(), update, default_policy)[0]
    assert "response_key" not in targets(ROUTER, command(), handoff, default_policy)[0]


def test_replies_to_a_message_have_no_response_url(default_policy: Policy) -> None:
    message = MessagePosted(
        delivery_id="slack:msg:C0SALES:1.2", conversation_id=CONVERSATION, actor=REP, text="hi"
    )

    [target] = targets(ROUTER, message, Reply(audience="requester", text="x"), default_policy)

    assert "response_key" not in target
