"""A scripted sales day through the real runtime: every kind of conversation the metrics
tell apart, enough of them (past the small-sample threshold) to give real intervals and
percentiles, and the metrics and audits asked in the middle of it."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.ports import Route, Router
from bot.queries import query_answerer
from bot.runtime import Runtime
from domain.analytics import Metrics, compute_metrics
from domain.cards import Reply
from domain.events import QuoteIssued
from domain.inbound import (
    Actor,
    ButtonClicked,
    CommandInvoked,
    Inbound,
    LeadArrived,
    LeadDetails,
    MessagePosted,
)
from domain.policy import Policy
from domain.state import ConversationState
from storage.ports import Store

NOW = 1_790_000_000_000
MINUTE = 60_000
DAY = 24 * 3600 * 1000
FEED = Actor(id="lead-feed", name="lead feed", role="prospect")
PROSPECT = Actor(id="P1", name="Dana Prospect", role="prospect")
REP = Actor(id="U_REP", name="Riley Rep", role="rep", auditor=True)
MANAGER = Actor(id="U_BOSS", name="Morgan Manager", role="rep", approver=True, auditor=True)
HOT = "We have a $5000 budget, I am the CTO and we want to start next month"


class OneChannelEach:
    """Every reply of a conversation to one channel, the requester's to their own."""

    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        if reply.audience == "requester":
            return [Route(channel=f"dm:{inbound.actor.id}", target={"user": inbound.actor.id})]
        return [Route(channel=f"conv:{inbound.conversation_id}")]


class Clock:
    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        self.now += 1000
        return self.now


class SalesDay:
    """Drives conversations through a `Runtime` on `store` with a controllable clock."""

    def __init__(
        self,
        store: Store,
        policy: Policy,
        clock: Clock | None = None,
        router: Router | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock or Clock()
        self.runtime = Runtime(
            store,
            policy,
            router or OneChannelEach(),
            clock=self.clock,
            answer_query=query_answerer(policy),
        )
        self._deliveries = 0
        self.quotes: list[str] = []

    async def start(self) -> None:
        await self.runtime.start()

    def _delivery(self) -> str:
        self._deliveries += 1
        return f"d-{self._deliveries}"

    async def send(self, inbound: Inbound) -> None:
        result = await self.runtime.handle(inbound)
        if result.decision is not None:
            for env in result.decision.events:
                if isinstance(env.event, QuoteIssued):
                    self.quotes.append(env.event.quote.quote_id)

    async def lead(self, cid: str, message: str = HOT) -> None:
        lead = LeadDetails(name="Dana Prospect", company="Acme", message=message)
        await self.send(
            LeadArrived(delivery_id=self._delivery(), conversation_id=cid, lead=lead, actor=FEED)
        )

    async def say(self, cid: str, text: str, actor: Actor = PROSPECT) -> None:
        await self.send(
            MessagePosted(delivery_id=self._delivery(), conversation_id=cid, text=text, actor=actor)
        )

    async def command(self, cid: str, command: str, args: str = "", actor: Actor = REP) -> None:
        await self.send(
            CommandInvoked(
                delivery_id=self._delivery(),
                conversation_id=cid,
                command=command,
                args=args,
                actor=actor,
            )
        )

    async def click(self, cid: str, action: str, target: str, actor: Actor) -> None:
        await self.send(
            ButtonClicked(
                delivery_id=self._delivery(),
                conversation_id=cid,
                action=action,  # type: ignore[arg-type]
                target=target,
                actor=actor,
            )
        )

    async def run(self, conversations: int = 36) -> None:
        """`conversations` of six kinds in turn, interleaved with metrics and audits."""
        for i in range(conversations):
            cid = f"conv-{i}"
            match i % 6:
                case 0:  # a hot lead, quoted twice (the first superseded), accepted: won
                    await self.lead(cid)
                    await self.command(cid, "quote", "12 pro 10%")
                    await self.command(cid, "quote", "10 pro 10%")
                    await self.click(cid, "accept_quote", self.quotes[-1], PROSPECT)
                case 1:  # warm at first, qualified minutes later, then marked lost
                    await self.say(cid, "Hello, we are looking at CRM tools")
                    self.clock.now += (i + 1) * 7 * MINUTE
                    await self.say(cid, HOT)
                    await self.click(cid, "mark_lost", f"{cid}:no_response", REP)
                case 2:  # a hello and then silence: abandoned by the idle sweep later
                    await self.say(cid, "Hello")
                case 3:  # a sensitive question: handed to a human
                    await self.lead(cid, "Hi, tell me more")
                    await self.say(cid, "Can we cancel the contract early and get a refund?")
                case 4:  # a discount above the cap, approved by the manager, accepted
                    await self.lead(cid)
                    await self.command(cid, "quote", "10 pro 25%")
                    pending = self.quotes[-1]
                    await self.click(cid, "request_approval", pending, REP)
                    await self.click(cid, "approve_quote", pending, MANAGER)
                    await self.click(cid, "accept_quote", self.quotes[-1], PROSPECT)
                case _:  # a rep's own stream: pasted text, a quote (which starts it, never
                    # engaged), metrics, audits of a quote and of a conversation
                    await self.command(f"dm-{i}", "lead", HOT)
                    await self.command(f"dm-{i}", "quote", "3 pro")
                    await self.command(f"dm-{i}", "metrics")
                    await self.command(f"dm-{i}", "audit", self.quotes[-1])
                    await self.command(f"dm-{i}", "audit", "conv-0")
            self.clock.now += 13 * MINUTE
        self.clock.now += 8 * DAY
        await self.runtime.sweep_idle()
        await self.runtime.settled()


async def recomputed(store: Store, policy: Policy | None = None) -> Metrics:
    """`domain.analytics` over every stored event: what the projections must equal."""
    events = [env async for env in store.iterate_all()]
    if policy is None:
        return compute_metrics(events)
    return compute_metrics(events, states=policy.flow.states, start=policy.flow.start)
