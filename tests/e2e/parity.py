"""What the parity tests share: the conversation every surface runs, and how a run's record
is made comparable across surfaces.

`test_parity` runs a script through Slack and Teams end to end; `test_parity_local` runs its
last conversation (`QUESTIONS`) through the playground, `salesbot chat` and the lead feed,
and compares with the Slack run. Both read a run's event log through the helpers here:

- `Run.placeholders` names every value a surface's addressing decides (conversation, actor
  and delivery ids; quote ids and ticket keys hashed from the conversation id; a template's
  wording, the booking link and the owner, all picked by a hash of the conversation id), and
  `normalised` swaps them for placeholders naming their role, consistently, so "the same
  quote" or "the same link" must still match;
- `event_view` is an envelope without its ids and times;
- `decisions` is what the bot decided for each inbound: event types, flow steps, templates
  and their languages, the knowledge entry, the meeting, tickets and team posts.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from adapters.leadfeed.web import prospect
from bot.policy_loader import load_policy
from domain.events import (
    BotReplied,
    EventEnvelope,
    FlowAdvanced,
    KnowledgeAnswered,
    MeetingRequested,
    OwnerAssigned,
    QuoteIssued,
    ReplyLanguageChosen,
    TeamNotified,
    TicketOpened,
)
from domain.inbound import LeadDetails
from domain.state import ConversationState, fold, initial_state
from tests.e2e.harness import outbox_drained

START = load_policy("default").flow.start

KNOWLEDGE = "Do you have an API?"
MEETING = "Could we book a demo for Thursday afternoon?"
SWITCH = "Perfecto, ¿y cuánto cuesta el plan Pro para nuestro equipo?"
HUMAN = "Can I talk to a real person please?"
QUESTIONS = (KNOWLEDGE, MEETING, SWITCH, HUMAN)
"""One conversation, every surface: a product question the knowledge base answers, a
meeting request, a question in Spanish (long enough to switch the reply language; answered
from the knowledge base with the catalog's prices, in Spanish), a request for a person."""

LEAD = {"name": "Pat Prospect", "company": "Acme", "email": "pat@acme.example"}
"""The lead whose first message is `QUESTIONS[0]`, on every surface that takes leads."""
LEAD_DETAILS = LeadDetails.model_validate(LEAD | {"message": QUESTIONS[0]})
FEED_TOKEN = "parity-feed-token"


def lead_prospect(lead_id: str) -> str:
    """The actor id the feed gives the lead's prospect."""
    return prospect(lead_id, LEAD_DETAILS).id


EXPECTED: tuple[dict[str, Any], ...] = (
    {"knowledge": [("api", "en")], "said": [("knowledge.api", "en")]},
    {"meeting": [("Thursday afternoon", "hash")], "said": [("meeting.booking", "en")]},
    {
        "language": ["es"],
        "knowledge": [("plans_and_prices", "es")],
        "said": [("knowledge.plans_and_prices", "es")],
    },
    {
        "language": ["en"],
        "tickets": [("handoff", "human_request")],
        "said": [("escalate.human_request", "en")],
        "flow": [("proposal", "handoff")],
    },
)
"""What `QUESTIONS` must decide, message by message, written down apart from the code (the
default policy's knowledge base, `[meetings]`, `[languages]` and handoff reasons): each
key's value must appear in that message's `decisions`. A surface that silently stops
answering from the knowledge base, booking, switching language or handing off fails here,
not only when it differs from another surface."""


async def feed_questions(
    client: TestClient[web.Request, web.Application], *, reply_url: str | None = None
) -> str:
    """`QUESTIONS` through the lead feed of the served bot: the first as the lead's message
    (`POST /leads`), the others as its later messages; each sent on (the outbox drained)
    before the next. The lead's id."""
    auth = {"Authorization": f"Bearer {FEED_TOKEN}"}
    first, *rest = QUESTIONS
    lead: dict[str, Any] = LEAD | {"message": first}
    if reply_url is not None:
        lead["reply_url"] = reply_url
    created = await client.post("/leads", json=lead, headers=auth | {"Idempotency-Key": "parity"})
    assert created.status == 201, await created.text()
    lead_id: str = (await created.json())["lead_id"]
    await outbox_drained(client)
    for number, text in enumerate(rest, 2):
        message = {"text": text, "message_id": f"m-{number}"}
        posted = await client.post(f"/leads/{lead_id}/messages", json=message, headers=auth)
        assert posted.status == 201, await posted.text()
        await outbox_drained(client)
    return lead_id


@dataclass
class Run:
    """What one surface's run left behind."""

    logs: list[list[EventEnvelope]] = field(default_factory=list)  # per conversation, in order
    names: dict[str, str] = field(default_factory=dict)  # actor ids and names -> placeholder
    cards: dict[str, Any] = field(default_factory=dict)  # script step -> card as shown then
    posts: dict[str, list[Any]] = field(default_factory=dict)  # place -> final posts, neutral

    def placeholders(self) -> dict[str, str]:
        """Every platform-derived id or name in this run, and the placeholder it becomes."""
        found = dict(self.names)
        quotes = itertools.count(1)
        tickets = itertools.count(1)
        for number, log in enumerate(self.logs, 1):
            found[log[0].conversation_id] = f"<conversation {number}>"
            for envelope in log:
                event = envelope.event
                if isinstance(event, QuoteIssued):
                    found[event.quote.quote_id] = f"<quote {next(quotes)}>"
                elif isinstance(event, TicketOpened):
                    found[event.ticket_key] = f"<ticket {next(tickets)}>"
                elif isinstance(event, BotReplied) and event.variant is not None:
                    # The wording is picked by a hash of the conversation id, which differs by
                    # platform; which template was said must match, not which of its wordings.
                    found[event.text] = f"<{event.template} reply>"
                elif isinstance(event, MeetingRequested) and event.chosen_by == "hash":
                    # One of the policy's links, picked by a hash of the conversation id (as a
                    # wording is): that a link was offered, and how it was chosen, must match.
                    found[event.link] = "<booking link>"
                elif isinstance(event, OwnerAssigned) and event.rule == "spread":
                    # The owner, spread by a hash of the conversation id (`[routing] spread`):
                    # that the conversation got one, by the spread, must match; not which.
                    found[event.owner] = "<owner>"
                    found[event.name] = "<owner's name>"
        return found


_CLOCK = (
    (re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z"), "<time>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<date>"),
)


def normalised(run: Run, value: Any) -> Any:
    """`value` with this run's platform ids and names, and clock readings, as placeholders."""
    found = run.placeholders()
    ids = re.compile(
        "|".join(rf"(?<!\w){re.escape(key)}(?!\w)" for key in sorted(found, key=len, reverse=True))
    )

    def text(s: str) -> str:
        s = ids.sub(lambda m: found[m[0]], s)
        for pattern, placeholder in _CLOCK:
            s = pattern.sub(placeholder, s)
        return s

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return text(node)
        if isinstance(node, dict):
            return {key: walk(item) for key, item in node.items()}
        if isinstance(node, list | tuple):
            return [walk(item) for item in node]
        return node

    return walk(value)


def event_view(run: Run, envelope: EventEnvelope) -> dict[str, Any]:
    """An envelope without its conversation id, delivery id and time; times inside the event
    (a quote's issue and expiry) relative to the envelope's."""
    data = envelope.model_dump(mode="json", exclude={"conversation_id", "delivery_id", "at_ms"})

    def relative(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: item - envelope.at_ms
                if key.endswith("_at_ms") and isinstance(item, int)
                else relative(item)
                for key, item in node.items()
            }
        if isinstance(node, list):
            return [relative(item) for item in node]
        return node

    view: dict[str, Any] = normalised(run, relative(data))
    if view["event"]["type"] == "bot_replied" and view["event"]["variant"] is not None:
        view["event"]["variant"] = "<wording>"  # picked by the conversation id's hash
    return view


def folded(log: list[EventEnvelope]) -> ConversationState:
    return fold(initial_state(log[0].conversation_id, START), log)


def state_path(log: list[EventEnvelope]) -> list[str]:
    steps = [e.event for e in log if isinstance(e.event, FlowAdvanced)]
    return [steps[0].from_state, *(step.to_state for step in steps)] if steps else []


def by_inbound(log: list[EventEnvelope]) -> list[list[EventEnvelope]]:
    """The log cut into what each inbound caused, in order (one delivery id each)."""
    return [list(group) for _, group in itertools.groupby(log, key=lambda e: e.delivery_id)]


def decisions(run: Run, log: list[EventEnvelope]) -> list[dict[str, Any]]:
    """What the bot decided for each inbound of `log`, in words a reader can compare."""
    found: list[dict[str, Any]] = []
    for caused in by_inbound(log):
        events = [e.event for e in caused]
        found.append(
            normalised(
                run,
                {
                    "events": [event.type for event in events],
                    "flow": [
                        (e.from_state, e.to_state) for e in events if isinstance(e, FlowAdvanced)
                    ],
                    "said": [(e.template, e.language) for e in events if isinstance(e, BotReplied)],
                    "audiences": [e.audience for e in events if isinstance(e, BotReplied)],
                    "knowledge": [
                        (e.entry_id, e.language) for e in events if isinstance(e, KnowledgeAnswered)
                    ],
                    "language": [e.language for e in events if isinstance(e, ReplyLanguageChosen)],
                    "meeting": [
                        (e.when, e.chosen_by) for e in events if isinstance(e, MeetingRequested)
                    ],
                    "tickets": [(e.kind, e.reason) for e in events if isinstance(e, TicketOpened)],
                    "team": [(e.kind, e.text) for e in events if isinstance(e, TeamNotified)],
                },
            )
        )
    return found


def meets_expectations(decided: list[dict[str, Any]]) -> None:
    """Assert that the four `QUESTIONS` (the last inbounds in `decided`) decided what
    `EXPECTED` says, each message on its own."""
    assert len(decided) >= len(EXPECTED), decided
    for number, (made, expected) in enumerate(
        zip(decided[-len(EXPECTED) :], EXPECTED, strict=True), 1
    ):
        for key, values in expected.items():
            shown = [tuple(v) if isinstance(v, list) else v for v in made[key]]
            for value in values:
                assert value in shown, f"message {number}: no {key} {value!r} in {made}"
