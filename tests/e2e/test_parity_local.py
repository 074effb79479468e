"""The playground, `salesbot chat` and the lead feed decide as Slack does.

The conversation every surface runs (`parity.QUESTIONS`: a question the knowledge base
answers, a meeting request, a pricing question in Spanish, a request for a person) goes
through each local surface by its own entry point:

- the playground: `POST /playground/send` as the prospect, the page's own route; what the
  page shows read back from `GET /playground/history`;
- the lead feed: `POST /leads` with the first question as the lead's message, then
  `POST /leads/{id}/messages`; the prospect's replies arrive at the lead's reply URL (a
  receiver on 127.0.0.1 that checks each signature); the team's posts and the ticket go to
  the playground, which is the leads pane and the handoff channel of a server with no
  platform configured (the playground and the feed are served together, as `salesbot
  serve` does without Slack or Teams);
- `salesbot chat`: the command in-process (`bot.cli.main`, stdin lines) on SQLite, its
  log read back from the store afterwards.

Each is compared with the Slack run of `test_parity` (`conftest.slack_run` runs it once
for both modules), which has the same four messages twice: in a shared channel's thread
(the playground's and the terminal's reference: direct conversations) and through the lead
feed into Slack's leads channel (the feed's reference). Compared: the event types and what
was decided for each message (flow steps, the template and its language, the knowledge
entry, the reply language, the meeting, the ticket's kind and reason, the team's posts),
the state path, the ticket, every event's content once ids are normalised as `test_parity`
normalises them, what the prospect was shown, the ticket card in the handoff channel and
the lead's posts to the team. Then the feed's lead is compared with the direct thread.

What legitimately differs by surface is normalised explicitly, each where it is done:
- ids, a template's wording and the booking link, all derived from the conversation id, as
  `test_parity` does (`parity.normalised`); the playground's and the terminal's prospect
  have local ids and no name (nobody logs in), which no reply here uses;
- the feed's lead has a reply URL (the receiver on 127.0.0.1); Slack's lead has none, its
  replies are read in its thread (`comparable`);
- compared with a direct conversation, a lead arrives as a lead (`LeadArrived`: its
  `conversation_started` says so and carries the lead's details) and its thread in the
  leads channel hears of the hot lead and the meeting (`team_notified`); a direct
  conversation has no lead thread (`domain.meetings.post_to_team`). Asserted, then set
  aside (`as_direct`);
- the terminal's printed lines are its transcript contract (prefixes, card layout), tested
  with it and being reworked by another change: the chat is compared by its events, and its
  transcript only by each reply's text, and the ticket's title, appearing in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

import bot.logs
from adapters.playground.identities import PROSPECT as PLAYGROUND
from bot.chat import LOCAL_PROSPECT
from bot.cli import main
from bot.settings import ENV_FILE_VARIABLE, Settings
from domain.events import (
    BotReplied,
    ConversationStarted,
    EventEnvelope,
    MeetingRequested,
    ProspectMessageReceived,
    ProspectMessageShown,
    TeamNotified,
    TicketOpened,
)
from storage.sqlite import SqliteStore
from tests.e2e.harness import outbox_drained, serving
from tests.e2e.parity import (
    FEED_TOKEN,
    LEAD_DETAILS,
    QUESTIONS,
    START,
    Run,
    by_inbound,
    decisions,
    event_view,
    feed_questions,
    folded,
    lead_prospect,
    meets_expectations,
    normalised,
    state_path,
)
from tests.e2e.test_lead_feed import SECRET, Receiver

Client = TestClient[web.Request, web.Application]
SURFACES = ("playground", "chat", "lead feed")
CHAT_CONVERSATION = "chat-parity"


@dataclass
class Surface:
    """One local surface's run of `QUESTIONS`: its log, and what it showed."""

    run: Run
    prospect_saw: list[str] = field(default_factory=list)  # the bot's posts, in order
    handoff: list[dict[str, Any]] = field(default_factory=list)  # ticket cards, neutral
    team: list[Any] = field(default_factory=list)  # a lead's posts to the team, neutral
    printed: str = ""  # the terminal's transcript

    @property
    def log(self) -> list[EventEnvelope]:
        (log,) = self.run.logs
        return log


def card_summary(card: dict[str, Any]) -> dict[str, Any]:
    """A neutral `domain.cards.Card` (as the playground delivers it) in the summary
    `test_parity.slack_card` reads back from Block Kit."""
    summary = {
        "title": card["title"],
        "status": card["status"],
        "text": card["text"].split("\n") if card["text"].strip() else [],
        "facts": [[f["label"], f["value"]] for f in card["fields"]],
        "lines": list(card["lines"]),
        "buttons": [[b["action"], b["label"], b["style"]] for b in card["buttons"]],
    }
    if card.get("input"):
        summary["input"] = [card["input"]["label"], card["input"]["placeholder"]]
    return summary


# --- the playground and the lead feed, served together -------------------------------------


async def _playground(client: Client, store: SqliteStore) -> Surface:
    conversation = None
    for text in QUESTIONS:
        sent = await client.post(
            "/playground/send",
            json={"role": "prospect", "conversation": conversation, "text": text},
        )
        assert sent.status == 200, await sent.text()
        conversation = (await sent.json())["conversation"]
        await outbox_drained(client)  # the reply reached the page before the next line
    assert conversation is not None
    history = await _history(client)
    return Surface(
        run=Run(logs=[await store.load(conversation)], names={PLAYGROUND.id: "<prospect>"}),
        prospect_saw=[m["reply"]["text"] for m in _shown(history, conversation, "conversation")],
        handoff=[
            card_summary(m["reply"]["card"]) for m in _shown(history, conversation, "handoff")
        ],
    )


async def _lead_feed(client: Client, store: SqliteStore, receiver: Receiver) -> Surface:
    lead_id = await feed_questions(client, reply_url=receiver.url)
    assert len(receiver.replies) == len(QUESTIONS)
    assert receiver.bad_signatures == 0
    history = await _history(client)
    return Surface(
        run=Run(logs=[await store.load(lead_id)], names={lead_prospect(lead_id): "<prospect>"}),
        prospect_saw=[reply["text"] for reply in receiver.replies.values()],
        handoff=[card_summary(m["reply"]["card"]) for m in _shown(history, lead_id, "handoff")],
        team=[_post(m["reply"]) for m in _shown(history, lead_id, "team")],
    )


def _post(reply: dict[str, Any]) -> Any:
    """A post as its card's summary, or as its text (as `test_parity.slack_post`)."""
    return card_summary(reply["card"]) if reply["card"] else reply["text"]


def _shown(history: list[dict[str, Any]], conversation: str, audience: str) -> list[dict[str, Any]]:
    """What the bot showed on the page for `conversation`, to `audience`."""
    return [
        m
        for m in history
        if m["conversation"] == conversation and m["audience"] == audience and m["author"] == "bot"
    ]


async def _history(client: Client) -> list[dict[str, Any]]:
    answer = await client.get("/playground/history")
    assert answer.status == 200
    messages: list[dict[str, Any]] = (await answer.json())["messages"]
    return messages


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Surface]]:
    """The playground's and the lead feed's runs, on one server with no platform."""
    receiver = Receiver()
    widget = web.Application()
    widget.router.add_post("/reply", receiver.handle)
    async with TestServer(widget, host="127.0.0.1") as widget_server:
        receiver.url = str(widget_server.make_url("/reply"))
        settings = Settings(
            salesbot_leads_token=SecretStr(FEED_TOKEN),
            salesbot_lead_reply_secret=SecretStr(SECRET),
            salesbot_outbound_allow=("127.0.0.1",),  # the receiver above listens there
        )
        store = await SqliteStore.open(tmp_path_factory.mktemp("parity-local") / "served.db")
        try:
            async with serving(None, settings, store) as client:
                yield {
                    "playground": await _playground(client, store),
                    "lead feed": await _lead_feed(client, store, receiver),
                }
        finally:
            await store.close()


# --- salesbot chat ---------------------------------------------------------------------------


@contextlib.contextmanager
def _isolated_like_a_test(db: Path) -> Iterator[None]:
    """What `tests/conftest.py` does around each test (no developer `.env`; logging, which
    a `salesbot` command configures for the whole process, restored), for a run the whole
    module shares; and the chat's own database."""
    names = [None, *bot.logs.OWN_PACKAGES, *bot.logs.QUIET_LIBRARIES]
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg, lg.level, lg.handlers[:], lg.propagate, lg.disabled) for lg in loggers]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV_FILE_VARIABLE, os.devnull)
        patch.setenv("SALESBOT_DB", str(db))
        patch.delenv("SALESBOT_POLICY", raising=False)
        patch.setattr(bot.logs, "_masked", bot.logs._masked)
        try:
            yield
        finally:
            logging.captureWarnings(False)
            for lg, level, handlers, propagate, disabled in saved:
                lg.setLevel(level)
                lg.handlers[:] = handlers
                lg.propagate, lg.disabled = propagate, disabled


@pytest.fixture(scope="module")
def chatted(tmp_path_factory: pytest.TempPathFactory) -> Surface:
    """`salesbot chat --conversation chat-parity`, the four lines on stdin."""
    db = tmp_path_factory.mktemp("parity-chat") / "chat.db"
    out, err = io.StringIO(), io.StringIO()
    with _isolated_like_a_test(db):
        code = main(
            ["chat", "--conversation", CHAT_CONVERSATION],
            out=out,
            err=err,
            stdin=[line + "\n" for line in QUESTIONS],
        )
    assert code == 0, err.getvalue()

    async def stored() -> list[EventEnvelope]:
        store = await SqliteStore.open(db)
        try:
            return await store.load(CHAT_CONVERSATION)
        finally:
            await store.close()

    log = asyncio.run(stored())
    run = Run(logs=[log], names={LOCAL_PROSPECT.id: "<prospect>"})
    return Surface(run=run, printed=out.getvalue())


@pytest.fixture(scope="module")
def surfaces(served: dict[str, Surface], chatted: Surface) -> dict[str, Surface]:
    return served | {"chat": chatted}


@pytest.fixture(scope="module")
def slack(slack_run: Run) -> dict[str, Surface]:
    """The Slack run's two conversations of `QUESTIONS` (`test_parity`, steps 5 and 6): the
    shared channel's thread ("direct"), and the lead through the feed, whose thread is in the
    leads channel ("lead"). What each showed is read from the posts `test_parity` compares
    with Teams."""
    direct, lead = slack_run.logs[2], slack_run.logs[3]
    for log in (direct, lead):
        heard = [e.event.text for e in log if isinstance(e.event, ProspectMessageReceived)]
        assert heard == list(QUESTIONS)
    told = [e.event.text for e in lead if isinstance(e.event, TeamNotified)]
    told += [f"Pat Prospect wrote: “{text}”" for text in QUESTIONS[1:]]  # `lead_room`
    card, *thread = slack_run.posts["lead thread"]
    return {
        "direct": Surface(
            run=Run(logs=[direct], names=slack_run.names),
            prospect_saw=slack_run.posts["questions thread"],
            handoff=[slack_run.cards["person"]],
        ),
        "lead": Surface(
            run=Run(logs=[lead], names=slack_run.names),
            # The lead's prospect is not in Slack: the thread shows the team what they
            # were sent, between the team's own posts.
            prospect_saw=[post for post in thread if post not in told],
            # The lead's ticket card, as the handoff channel shows it at the end (the third
            # card posted there; the desk's thread, step 7, posts the fourth).
            handoff=[slack_run.posts["handoff channel"][2]],
            team=[card, *(post for post in thread if post in told)],
        ),
    }


REFERENCE = {"playground": "direct", "chat": "direct", "lead feed": "lead"}
"""Which of the Slack run's conversations each surface's is compared with: the playground's
and the terminal's are direct conversations, the feed's is a lead."""


def reference(slack: dict[str, Surface], name: str) -> Surface:
    return slack[REFERENCE[name]]


# --- what legitimately differs, set aside explicitly ------------------------------------------


def comparable(name: str, surface: Surface) -> list[EventEnvelope]:
    """`surface`'s log as its Slack reference's would be. The lead's reply URL is set aside:
    the feed's lead gives one (the receiver on 127.0.0.1), the lead in the Slack run has
    none (its replies are read in the lead's thread). Other surfaces' logs as they are."""
    log = surface.log
    if name != "lead feed":
        return log
    started = log[0].event
    assert isinstance(started, ConversationStarted)
    assert started.lead is not None
    assert started.lead.reply_url is not None
    assert started.lead.reply_url.startswith("http://127.0.0.1:")
    without_url = started.model_copy(
        update={"lead": started.lead.model_copy(update={"reply_url": None})}
    )
    return [log[0].model_copy(update={"event": without_url}), *log[1:]]


def as_direct(log: list[EventEnvelope]) -> list[EventEnvelope]:
    """A lead's log as a direct conversation's would be: without the posts to the lead's
    thread (a direct conversation has none: `domain.meetings.post_to_team`), with its first
    event's origin and lead details as a direct one's (checked here), its sequence numbers
    counted without those posts."""
    started = log[0].event
    assert isinstance(started, ConversationStarted)
    assert started.origin == "lead"
    assert started.lead is not None
    assert started.lead.model_copy(update={"reply_url": None}) == LEAD_DETAILS
    kept = [e for e in log if not isinstance(e.event, TeamNotified | ProspectMessageShown)]
    # The hot lead and the meeting (checked below), and the prospect's words after the
    # first (`[handoff] lead_room`).
    assert len(kept) == len(log) - 2 - (len(QUESTIONS) - 1)
    renumbered = {e.seq: number for number, e in enumerate(kept, 1)}
    direct = started.model_copy(update={"origin": "direct", "lead": None})
    found = []
    for envelope in kept:
        event = direct if envelope.event is started else envelope.event
        if isinstance(event, TicketOpened):
            event = event.model_copy(update={"trigger_seq": renumbered[event.trigger_seq]})
        found.append(envelope.model_copy(update={"seq": renumbered[envelope.seq], "event": event}))
    return found


def _run_of(surface: Surface, log: list[EventEnvelope]) -> Run:
    return Run(logs=[log], names=surface.run.names)


# --- the comparison ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SURFACES))
def test_each_message_records_the_same_events_as_in_slack(
    surfaces: dict[str, Surface], slack: dict[str, Surface], name: str
) -> None:
    def types(log: list[EventEnvelope]) -> list[list[str]]:
        return [[e.event.type for e in caused] for caused in by_inbound(log)]

    theirs = reference(slack, name).log
    assert types(comparable(name, surfaces[name])) == types(theirs)
    assert len(types(theirs)) == len(QUESTIONS)


@pytest.mark.parametrize("name", list(SURFACES))
def test_each_message_is_decided_as_in_slack_and_as_the_policy_says(
    surfaces: dict[str, Surface], slack: dict[str, Surface], name: str
) -> None:
    """The knowledge entry and its language, the booking link offered for "Thursday
    afternoon", the switch to Spanish and back, the ticket for the person asked for."""
    surface, theirs = surfaces[name], reference(slack, name)
    meets_expectations(decisions(surface.run, surface.log))
    log = comparable(name, surface)
    assert decisions(_run_of(surface, log), log) == decisions(theirs.run, theirs.log)


@pytest.mark.parametrize("name", list(SURFACES))
def test_the_flow_goes_through_the_same_states_as_in_slack(
    surfaces: dict[str, Surface], slack: dict[str, Surface], name: str
) -> None:
    log = surfaces[name].log
    assert state_path(log) == state_path(reference(slack, name).log)
    assert state_path(log)[0] == START
    assert folded(log).flow_state == "handoff"


@pytest.mark.parametrize("name", list(SURFACES))
def test_the_ticket_has_the_same_kind_reason_and_status_as_in_slack(
    surfaces: dict[str, Surface], slack: dict[str, Surface], name: str
) -> None:
    def tickets(surface: Surface) -> list[Any]:
        return [
            normalised(surface.run, (t.kind, t.reason, t.status, t.claimed_by))
            for t in folded(surface.log).tickets.values()
        ]

    expected = [["handoff", "human_request", "open", None]]
    assert tickets(surfaces[name]) == tickets(reference(slack, name)) == expected


@pytest.mark.parametrize("name", list(SURFACES))
def test_every_event_says_the_same_as_in_slack_once_ids_and_times_are_normalised(
    surfaces: dict[str, Surface], slack: dict[str, Surface], name: str
) -> None:
    surface, theirs = surfaces[name], reference(slack, name)
    log = comparable(name, surface)
    run = _run_of(surface, log)
    mine = [event_view(run, e) for e in log]
    for here, there in zip(mine, [event_view(theirs.run, e) for e in theirs.log], strict=True):
        assert here == there, f"seq {there['seq']}"


@pytest.mark.parametrize("name", ["playground", "lead feed"])
def test_the_prospect_is_shown_the_same_replies_as_in_slack(
    surfaces: dict[str, Surface], slack: dict[str, Surface], name: str
) -> None:
    """The playground's thread and the lead's reply URL show what Slack showed: both
    knowledge answers word for word, the other replies by their template (the wording, and
    the booking link, are picked by a hash of the conversation id)."""
    surface, theirs = surfaces[name], reference(slack, name)
    shown = normalised(surface.run, surface.prospect_saw)
    assert shown == normalised(theirs.run, theirs.prospect_saw)
    assert len(shown) == len(QUESTIONS)
    assert shown[1] == "<meeting.booking reply>"
    link = next(e.event.link for e in surface.log if isinstance(e.event, MeetingRequested))
    assert link in surface.prospect_saw[1]


def test_the_terminal_prints_every_reply_the_log_says_the_prospect_was_sent(
    surfaces: dict[str, Surface], slack: dict[str, Surface]
) -> None:
    """The chat's printed lines are its transcript contract, tested with it
    (`tests/bot/test_chat*.py`): here only that each reply, and the ticket, reached the
    terminal, and that the replies are Slack's."""
    chat, theirs = surfaces["chat"], reference(slack, "chat")
    said = [
        e.event.text
        for e in chat.log
        if isinstance(e.event, BotReplied) and e.event.audience == "conversation"
    ]
    assert normalised(chat.run, said) == normalised(theirs.run, theirs.prospect_saw)
    for text in said:
        assert text in chat.printed
    assert theirs.handoff[0]["title"] in chat.printed


@pytest.mark.parametrize("name", ["playground", "lead feed"])
def test_the_handoff_channel_gets_the_same_ticket_card_as_in_slack(
    surfaces: dict[str, Surface], slack: dict[str, Surface], name: str
) -> None:
    surface, theirs = surfaces[name], reference(slack, name)
    (card,) = surface.handoff
    assert card["title"] == "Handoff: the prospect asked for a person"
    assert normalised(surface.run, card) == normalised(theirs.run, theirs.handoff[0])


def test_the_lead_feed_tells_the_team_in_the_leads_pane_as_slack_does_in_the_leads_thread(
    surfaces: dict[str, Surface], slack: dict[str, Surface]
) -> None:
    """A lead's thread hears what matters (`[team_posts]`): the lead card when it arrives,
    then once it is hot and when it asks to meet, with the link the prospect was sent."""
    lead, theirs = surfaces["lead feed"], reference(slack, "lead feed")
    posted = [e.event for e in lead.log if isinstance(e.event, TeamNotified)]
    assert [p.kind for p in posted] == ["hot_lead", "meeting"]
    meeting = next(e.event for e in lead.log if isinstance(e.event, MeetingRequested))
    assert meeting.link in posted[1].text
    card, *posts = lead.team
    assert card["title"] == "New lead: Pat Prospect (Acme)"
    words = [f"Pat Prospect wrote: “{text}”" for text in QUESTIONS[1:]]
    assert [post for post in posts if post not in words] == [p.text for p in posted]
    # `[handoff] lead_room`: each message after the first is shown there as the prospect's.
    assert [post for post in posts if post in words] == words
    assert normalised(lead.run, lead.team) == normalised(theirs.run, theirs.team)


def test_a_lead_is_decided_as_a_direct_conversation_except_that_its_thread_hears_of_it(
    surfaces: dict[str, Surface], slack: dict[str, Surface]
) -> None:
    """The lead feed's replies are the same decisions as a conversation started in a chat:
    what differs is only where it came from and what the lead's thread is told."""
    lead, direct = surfaces["lead feed"], slack["direct"]
    told = [
        [e.event.kind for e in caused if isinstance(e.event, TeamNotified)]
        for caused in by_inbound(lead.log)
    ]
    assert told == [[], ["hot_lead", "meeting"], [], []]
    shown = [
        sum(isinstance(e.event, ProspectMessageShown) for e in caused)
        for caused in by_inbound(lead.log)
    ]
    assert shown == [0, 1, 1, 1]
    log = as_direct(lead.log)
    run = _run_of(lead, log)
    assert decisions(run, log) == decisions(direct.run, direct.log)
    mine = [event_view(run, e) for e in log]
    for here, there in zip(mine, [event_view(direct.run, e) for e in direct.log], strict=True):
        assert here == there, f"seq {there['seq']}"
