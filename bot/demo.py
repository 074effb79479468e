"""`salesbot demo`: a handful of realistic leads, decided by the real runtime into the
configured store, so metrics, audit and replay have something to show.

Delivery ids are fixed, so running it twice adds nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.ids import LEADS as LEAD_IDS
from adapters.ids import lead_actor_id
from bot.runtime import Runtime
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

REP = Actor(id="demo-rep", name="Riley (demo rep)", role="rep", approver=True, auditor=True)

LEADS: Sequence[LeadDetails] = (
    LeadDetails(
        name="Priya Shah",
        company="Northwind",
        email="priya@northwind.example",
        source="referral",
        message="We have an approved budget of $40k, I'm the head of sales ops and we need to go live next month.",
        company_size=350,
        credit_score=720,
    ),
    LeadDetails(
        name="Marco Rossi",
        company="Bellavista",
        email="marco@bellavista.example",
        source="web",
        message="We're evaluating CRMs for our team of 25 and would like a demo.",
        company_size=25,
        credit_score=650,
    ),
    LeadDetails(
        name="Sam Lee",
        company="",
        email="sam@student.example",
        source="web",
        message="Just browsing for a student project, no budget.",
    ),
    LeadDetails(
        name="Dana Kim",
        company="Kimco",
        email="dana@kimco.example",
        source="web",
        message="Your pricing looks too expensive compared to what we pay now.",
        company_size=80,
        credit_score=690,
    ),
    LeadDetails(
        name="Alex Moreno",
        company="Moreno Logistics",
        email="alex@moreno.example",
        source="partner",
        message="This is urgent, we need priority support and want to start soon.",
        company_size=120,
        credit_score=540,
    ),
)


def _lead_id(index: int) -> str:
    return LEAD_IDS.conversation_id(f"demo-{index + 1}")


async def seed_demo(runtime: Runtime) -> int:
    """Seed the demo conversations; returns how many inbounds were newly committed."""
    committed = 0

    async def send(inbound: Inbound) -> None:
        nonlocal committed
        result = await runtime.handle(inbound)
        committed += result.status == "committed"

    for index, lead in enumerate(LEADS):
        conversation = _lead_id(index)
        prospect = Actor(id=lead_actor_id(conversation), name=lead.name, role="prospect")
        await send(
            LeadArrived(
                delivery_id=f"demo:{conversation}:lead",
                conversation_id=conversation,
                actor=prospect,
                lead=lead,
            )
        )
    # The hot lead is quoted and accepts: a won deal for the metrics.
    hot, hot_prospect = (
        _lead_id(0),
        Actor(id=lead_actor_id(_lead_id(0)), name=LEADS[0].name, role="prospect"),
    )
    quoted = await runtime.handle(
        CommandInvoked(
            delivery_id=f"demo:{hot}:quote",
            conversation_id=hot,
            actor=REP,
            command="quote",
            args="40 pro 10%",
        )
    )
    committed += quoted.status == "committed"
    quote_ids = [
        env.event.quote.quote_id
        for env in (quoted.decision.events if quoted.decision else ())
        if isinstance(env.event, QuoteIssued)
    ]
    if quote_ids:
        await send(
            ButtonClicked(
                delivery_id=f"demo:{hot}:accept",
                conversation_id=hot,
                actor=hot_prospect,
                action="accept_quote",
                target=quote_ids[0],
            )
        )
    # The price objection turns into a contract question: a ticket for the handoff channel.
    objection = _lead_id(3)
    await send(
        MessagePosted(
            delivery_id=f"demo:{objection}:contract",
            conversation_id=objection,
            actor=Actor(id=lead_actor_id(objection), name=LEADS[3].name, role="prospect"),
            text="And can we cancel the contract at any time?",
        )
    )
    return committed
