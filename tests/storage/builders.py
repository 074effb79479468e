"""Realistic commits for the store tests, made by the real domain.

`decide_commit` does what the runtime does for one inbound: fold the stored events into
the state, call `domain.decide.decide`, and map the `Decision` into a `Commit` (events,
the raw inbound, one outbox item per reply, the ticket events).
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from domain.decide import decide, new_conversation
from domain.decision import Decision
from domain.events import Erased, EventEnvelope, TicketOpened
from domain.inbound import (
    ActionId,
    Actor,
    ButtonClicked,
    Inbound,
    LeadArrived,
    LeadDetails,
    MessagePosted,
)
from domain.policy import Policy
from domain.state import fold
from storage.ports import Commit, OutboxItem, Store, TicketEvent

NOW = 1_790_000_000_000
FEED = Actor(id="lead-feed", name="lead feed", role="prospect")
PROSPECT = Actor(id="P1", name="Dana Prospect", role="prospect")
REP = Actor(id="U_REP", name="Riley Rep", role="rep")
OTHER_REP = Actor(id="U_OTHER", name="Sam Other", role="rep")
REFUND_QUESTION = "Can we cancel the contract early and get a refund?"

INBOUND = TypeAdapter[Inbound](Inbound)


def lead(
    conversation_id: str, delivery_id: str, message: str = "Hi, we are evaluating tools"
) -> LeadArrived:
    return LeadArrived(
        delivery_id=delivery_id,
        conversation_id=conversation_id,
        actor=FEED,
        lead=LeadDetails(name="Dana Prospect", company="Acme", message=message),
    )


def message(
    conversation_id: str, delivery_id: str, text: str, actor: Actor = PROSPECT
) -> MessagePosted:
    return MessagePosted(
        delivery_id=delivery_id, conversation_id=conversation_id, actor=actor, text=text
    )


def click(
    conversation_id: str, delivery_id: str, action: ActionId, target: str, actor: Actor = REP
) -> ButtonClicked:
    return ButtonClicked(
        delivery_id=delivery_id,
        conversation_id=conversation_id,
        actor=actor,
        action=action,
        target=target,
    )


def channel_for(conversation_id: str, audience: str) -> str:
    return f"playground:{conversation_id}:{audience}"


def to_commit(
    decision: Decision,
    inbound: Inbound,
    policy: Policy,
    expected_version: int,
    received_at_ms: int,
) -> Commit:
    """Map a decision into the one transaction the runtime writes for it."""
    outbox = tuple(
        OutboxItem(
            key=f"{inbound.delivery_id}/{index}",
            conversation_id=inbound.conversation_id,
            channel=channel_for(inbound.conversation_id, reply.audience),
            payload=reply.model_dump(mode="json"),
            created_at_ms=received_at_ms,
            available_at_ms=received_at_ms,
        )
        for index, reply in enumerate(decision.replies)
    )
    ticket_events: tuple[TicketEvent, ...] = decision.ticket_events
    return Commit(
        conversation_id=inbound.conversation_id,
        expected_version=expected_version,
        delivery_id=inbound.delivery_id,
        received_at_ms=received_at_ms,
        policy_version=policy.version,
        inbound=inbound_json(inbound),
        events=decision.events,
        outbox=outbox,
        ticket_events=ticket_events,
    )


def inbound_json(inbound: Inbound) -> dict[str, Any]:
    data: dict[str, Any] = INBOUND.dump_python(inbound, mode="json")
    return data


async def decide_commit(store: Store, policy: Policy, inbound: Inbound, now_ms: int) -> Commit:
    """What the runtime would commit for `inbound`, given what `store` holds now."""
    start = new_conversation(inbound.conversation_id, policy)
    state = fold(start, await store.load(inbound.conversation_id))
    decision = decide(state, inbound, policy, now_ms)
    return to_commit(decision, inbound, policy, state.version, now_ms)


class Script:
    """Decides a conversation ahead of time, without a store: a list of commits that
    follow each other (each one's expected version is the previous one's result)."""

    def __init__(self, policy: Policy, conversation_id: str, now_ms: int = NOW) -> None:
        self.policy = policy
        self.conversation_id = conversation_id
        self.state = new_conversation(conversation_id, policy)
        self.now_ms = now_ms
        self.commits: list[Commit] = []

    def then(self, inbound: Inbound) -> Commit:
        decision = decide(self.state, inbound, self.policy, self.now_ms)
        commit = to_commit(decision, inbound, self.policy, self.state.version, self.now_ms)
        self.state = decision.state
        self.now_ms += 1000
        self.commits.append(commit)
        return commit


def handoff_script(policy: Policy, conversation_id: str, now_ms: int = NOW) -> Script:
    """A lead, then a refund question that the policy sends to a human with a ticket."""
    script = Script(policy, conversation_id, now_ms)
    script.then(lead(conversation_id, f"{conversation_id}/lead"))
    script.then(message(conversation_id, f"{conversation_id}/refund", REFUND_QUESTION))
    return script


def opened_ticket(commit: Commit) -> TicketOpened:
    opened = [event for event in commit.ticket_events if isinstance(event, TicketOpened)]
    assert len(opened) == 1, commit.ticket_events
    return opened[0]


BATCH_IDS = ("conv-a", "conv-b", "conv-c", "conv-d", "conv-e")


async def erased_and_continued(store: Store, policy: Policy) -> list[str]:
    """For the batch reads' tests (`replay_logs`, `verify_logs`): five conversations with
    sealed words; `conv-b` erased, `conv-d` erased and then continued (its new words sealed
    under a new key). Returned in an order unlike the store's, with an unknown id among
    them."""
    for index, conversation_id in enumerate(BATCH_IDS):
        for commit in handoff_script(policy, conversation_id, NOW + index).commits:
            await store.commit(commit)
    for conversation_id in ("conv-b", "conv-d"):
        version = await store.version(conversation_id)
        erased = EventEnvelope(
            conversation_id=conversation_id,
            seq=version + 1,
            at_ms=NOW + 10_000,
            policy_version="0" * 64,
            delivery_id=f"erase:{conversation_id}",
            event=Erased(by="dpo", reason="request"),
        )
        await store.erase(conversation_id, version, erased)
    later = message("conv-d", "conv-d/after", "Still there? Pricing?")
    assert (await store.commit(await decide_commit(store, policy, later, NOW + 20_000))).status == (
        "committed"
    )
    return ["conv-e", "conv-b", "unknown", "conv-a", "conv-d", "conv-c"]
