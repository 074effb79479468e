"""Slack/Teams parity: one scripted conversation through each adapter gives the same decisions.

The script runs once per platform, end to end (the real server, runtime and outbox, and the
fake platform on 127.0.0.1, as `test_slack` and `test_teams` do, whose helpers it reuses):

1. a prospect from another organisation (a Slack Connect user from another workspace; a
   Teams user from another tenant) opens a thread in a shared channel, "Hi, we are
   evaluating CRMs", then says "We have a $5000 budget, I am the CTO, next month";
2. a rep @mentions the bot in the thread: "quote 10 pro 10%";
3. the prospect clicks Accept on the quote card (Slack `block_actions`; Teams
   `Action.Execute` invoke);
4. in a second thread the prospect asks "Can we cancel the contract and get a refund?": a
   ticket card goes to the handoff channel, and the rep claims it there;
5. in a third thread the prospect has the conversation every surface runs (`parity.QUESTIONS`,
   which `test_parity_local` also runs through the playground, `salesbot chat` and the lead
   feed): "Do you have an API?" (a knowledge answer), "Could we book a demo for Thursday
   afternoon?" (the booking link), a pricing question in Spanish (the reply language switches;
   the catalog's prices from the knowledge base, in Spanish), "Can I talk to a real person
   please?" (back to English, and a handoff ticket in the handoff channel at once);
6. the same four messages arrive through the lead feed (`POST /leads` with the first as the
   lead's message, then `POST /leads/{id}/messages`): the lead card starts a thread in the
   leads channel (Slack's leads channel; Teams' leads conversation, as a reply chain), the
   conversation goes on under it, and the thread also hears of the hot lead and the meeting;
7. the handoff desk, in a fourth thread: the prospect says hello, a rep answers in the thread
   without pressing *Claim* (a takeover by presence: the ticket card says who holds it, the
   bot stays quiet when the prospect thanks them), the rep resolves the ticket as *Closed*
   on its card, and the prospect writes again (the ticket comes back to the rep: "prospect
   wrote again", the bot still quiet).

Compared per conversation: the event types, the flow's state path, the quote's figures, the
tickets, what each of the questions decided (`parity.decisions`, also checked against
`parity.EXPECTED`), every event's whole content; then the cards each platform rendered and
every post the prospect, the lead's thread and the handoff channel saw, reduced to a neutral summary (title, status, text,
facts, arithmetic lines, buttons). Only what legitimately differs by platform is normalised:

- ids that come from the platform's addressing: conversation ids, actor ids, delivery ids
  (dropped), and the quote ids and ticket keys hashed from the conversation id; each is
  replaced by a placeholder naming its role, consistently, so "the same quote" must match;
- nothing about people's names: both platforms show the name people see (Slack's profile
  name from `users.info`, Teams' `from.name`), so "Accepted by Pat Prospect" and the
  greeting's "Hi Pat" are compared as they are;
- a reply's wording: a template's variant is picked by a hash of the conversation id, so the
  same template may be worded differently on each platform; its texts become `<template
  reply>` and its variant number `<wording>` (which template was said must still match);
  likewise the booking link, one of the policy's links picked by the same hash, becomes
  `<booking link>` (that a link was offered, and how it was chosen, must still match);
- time: the envelopes' `at_ms`; quote times are kept relative to their envelope's, and
  rendered dates and times become placeholders;
- markup: Block Kit's `&amp;`/`&lt;`/`&gt;` and code fences; Adaptive Cards' Markdown
  backslash escapes and paragraph breaks; Teams' button styles named as Slack's.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from bot.settings import Settings
from domain.events import (
    BotReplied,
    ProspectMessageReceived,
    ProspectMessageShown,
    QuoteIssued,
    TeamNotified,
)
from storage.sqlite import SqliteStore
from tests.e2e import test_slack as slack_e2e
from tests.e2e import test_teams as teams_e2e
from tests.e2e.harness import eventually, outbox_drained, serving
from tests.e2e.parity import (
    FEED_TOKEN,
    QUESTIONS,
    START,
    Run,
    decisions,
    event_view,
    feed_questions,
    folded,
    lead_prospect,
    meets_expectations,
    normalised,
    state_path,
)
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.teams_connector import FakeConnector, thread_id

GREETING = "Hi, we are evaluating CRMs"
DETAILS = "We have a $5000 budget, I am the CTO, next month"
QUOTE = "quote 10 pro 10%"
OBJECTION = "Can we cancel the contract and get a refund?"
PROSPECT_NAME = teams_e2e.PROSPECT.name  # "Pat Prospect" on both platforms
DESK_HELLO = "Hi, we are looking at CRMs for our sales team"
DESK_REP = "Hi Pat, Rae from sales here. Happy to help."
DESK_THANKS = "Great, thanks Rae!"
DESK_AGAIN = "Sorry, one more question about invoices"
CARDS = ("quote", "accepted", "ticket", "claimed", "person", "lead", "taken over", "wrote again")
LEADS = "C0LEADS"  # Slack's leads channel (Teams': `teams_e2e.LEADS`)

Client = TestClient[web.Request, web.Application]
Summary = dict[str, Any]
"""A card as the neutral `domain.cards.Card` it was rendered from (see `slack_card`)."""


# --- Slack ---------------------------------------------------------------------------------


async def run_slack(db: Path) -> Run:
    run = Run()
    async with FakeSlackApi(
        token="xoxb-test", team_id=slack_e2e.TEAM, bot_user_id=slack_e2e.BOT
    ) as api:
        # The same people as in the Teams run, with the profile names users.info gives.
        for user, team, person in (
            (slack_e2e.REP, slack_e2e.TEAM, teams_e2e.REP),
            (slack_e2e.BOSS, slack_e2e.TEAM, teams_e2e.BOSS),
            (slack_e2e.PROSPECT["user"], slack_e2e.PROSPECT["user_team"], teams_e2e.PROSPECT),
        ):
            api.add_user(
                user,
                team_id=team,
                name=user.lower(),
                profile={"display_name": "", "real_name": person.name},
            )
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-test"),
            slack_signing_secret=SecretStr(slack_e2e.SECRET),
            slack_api_url=api.base_url,
            slack_handoff_channel=slack_e2e.HANDOFF,
            slack_leads_channel=LEADS,
            salesbot_leads_token=SecretStr(FEED_TOKEN),
            # As `teams_e2e.local_settings` configures Teams.
            salesbot_approvers=(slack_e2e.BOSS,),
            salesbot_auditors=(slack_e2e.BOSS,),
        )
        store = await SqliteStore.open(db)
        try:
            async with serving(api, settings, store) as client:
                slack = slack_e2e.Slack(api=api, client=client, events=_poster(client), store=store)
                await _slack_script(slack, run)
                run.logs = [await store.load(c) for c in await store.conversation_ids()]
        finally:
            await store.close()
    prospect, rep = slack_e2e.PROSPECT["user"], slack_e2e.REP
    run.names |= {prospect: "<prospect>", rep: "<rep>"}
    return run


def _poster(client: Client) -> Callable[[dict[str, Any]], Awaitable[ClientResponse]]:
    """Signed Events API deliveries, as the `slack` fixture of `test_slack` posts them."""
    counter = itertools.count(1)

    async def post_event(event: dict[str, Any]) -> ClientResponse:
        body = json.dumps(
            {
                "token": "x",
                "team_id": slack_e2e.TEAM,
                "api_app_id": "A0001",
                "type": "event_callback",
                "event_id": f"Ev{next(counter)}",
                "event_time": int(time.time()),
                "event": event,
                "authorizations": [
                    {"team_id": slack_e2e.TEAM, "user_id": slack_e2e.BOT, "is_bot": True}
                ],
            }
        ).encode()
        headers = slack_e2e.signed(body) | {"Content-Type": "application/json"}
        return await client.post("/slack/events", data=body, headers=headers)

    return post_event


async def _slack_script(slack: slack_e2e.Slack, run: Run) -> None:
    api, shared, handoff = slack.api, slack_e2e.SHARED, slack_e2e.HANDOFF
    prospect = slack_e2e.PROSPECT
    handle = prospect["user"].lower()  # as `click` names the clicker

    def posts(channel: str, thread: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for m in slack_e2e.bot_messages(api, channel)
            if thread is None or m.get("thread_ts") == thread
        ]

    async def prospect_says(text: str, thread: str | None = None) -> str:
        ts = api.add_message(shared, text, user=prospect["user"], thread_ts=thread)
        event: dict[str, Any] = {"type": "message", "channel": shared, "channel_type": "channel"}
        event |= {"text": text, "ts": ts, **prospect}
        # Slack's message events carry the sender's profile: the same name Teams gives.
        event["user_profile"] = {"display_name": "", "real_name": PROSPECT_NAME, "name": handle}
        if thread is not None:
            event["thread_ts"] = thread
        assert (await slack.events(event)).status == 200
        return ts

    first = await prospect_says(GREETING)
    await eventually(lambda: len(posts(shared, first)) == 1, "the greeting")
    await prospect_says(DETAILS, first)
    await eventually(lambda: len(posts(shared, first)) == 2, "the proposal")

    mention = f"<@{slack_e2e.BOT}> {QUOTE}"
    ts = api.add_message(shared, mention, user=slack_e2e.REP, thread_ts=first)
    rep_says = {"type": "app_mention", "channel": shared, "user": slack_e2e.REP}
    rep_says |= {"team": slack_e2e.TEAM, "text": mention, "ts": ts, "thread_ts": first}
    assert (await slack.events(rep_says)).status == 200
    await eventually(lambda: len(posts(shared, first)) == 3, "the quote card")
    quote = posts(shared, first)[2]
    run.cards["quote"] = slack_card(quote)

    accept = await slack_e2e.click(
        slack, quote, "accept_quote", prospect["user"], prospect["user_team"]
    )
    assert accept.status == 200
    await eventually(lambda: len(api.calls_of("chat.update")) == 1, "the accepted card")
    await eventually(lambda: len(posts(shared, first)) == 4, "the thank-you")
    run.cards["accepted"] = slack_card(_by_ts(posts(shared), quote["ts"]))

    second = await prospect_says(OBJECTION)
    await eventually(lambda: len(posts(handoff)) == 1, "the ticket card")
    ticket = posts(handoff)[0]
    run.cards["ticket"] = slack_card(ticket)
    claim = await slack_e2e.click(slack, ticket, "claim_ticket", slack_e2e.REP)
    assert claim.status == 200
    await eventually(lambda: len(api.calls_of("chat.update")) == 2, "the claimed card")
    run.cards["claimed"] = slack_card(_by_ts(posts(handoff), ticket["ts"]))

    third = await prospect_says(QUESTIONS[0])
    await eventually(lambda: len(posts(shared, third)) == 1, "the knowledge answer")
    for number, text in enumerate(QUESTIONS[1:], 2):
        await prospect_says(text, third)

        def replied(count: int = number) -> bool:
            return len(posts(shared, third)) == count

        await eventually(replied, f"reply {number}")
    await eventually(lambda: len(posts(handoff)) == 2, "the person's ticket card")
    run.cards["person"] = slack_card(posts(handoff)[1])

    lead_id = await feed_questions(slack.client)
    run.names[lead_prospect(lead_id)] = "<prospect>"
    (lead, *_) = posts(LEADS)
    run.cards["lead"] = slack_card(lead)

    fourth = await prospect_says(DESK_HELLO)
    await eventually(lambda: len(posts(shared, fourth)) == 1, "the desk thread's greeting")
    ts = api.add_message(shared, DESK_REP, user=slack_e2e.REP, thread_ts=fourth)
    rep_writes = {"type": "message", "channel": shared, "channel_type": "channel"}
    rep_writes |= {"user": slack_e2e.REP, "team": slack_e2e.TEAM, "text": DESK_REP}
    rep_writes |= {"ts": ts, "thread_ts": fourth}
    assert (await slack.events(rep_writes)).status == 200
    await eventually(lambda: len(posts(handoff)) == 4, "the takeover's ticket card")
    desk = posts(handoff)[3]
    run.cards["taken over"] = slack_card(desk)

    def desk_status() -> str:
        return str(slack_card(_by_ts(posts(handoff), desk["ts"]))["status"])

    def desk_text() -> list[str]:
        return list(slack_card(_by_ts(posts(handoff), desk["ts"]))["text"])

    await prospect_says(DESK_THANKS, fourth)
    await eventually(lambda: f"prospect: {DESK_THANKS}" in desk_text(), "the card refreshed")
    await _slack_press(slack, _by_ts(posts(handoff), desk["ts"]), "Resolve")
    await eventually(lambda: desk_status().endswith("how did it end?"), "the outcome picker")
    await _slack_press(slack, _by_ts(posts(handoff), desk["ts"]), "Closed")
    await eventually(lambda: desk_status().startswith("Closed by"), "the ticket closed")
    await prospect_says(DESK_AGAIN, fourth)
    await eventually(lambda: desk_status().endswith("prospect wrote again"), "reopened")
    run.cards["wrote again"] = slack_card(_by_ts(posts(handoff), desk["ts"]))

    await outbox_drained(slack.client)
    run.posts = {
        "quote thread": [slack_post(m) for m in posts(shared, first)],
        "ticket thread": [slack_post(m) for m in posts(shared, second)],
        "questions thread": [slack_post(m) for m in posts(shared, third)],
        "desk thread": [slack_post(m) for m in posts(shared, fourth)],
        "lead thread": [
            slack_post(m) for m in posts(LEADS) if m["ts"] == lead["ts"] or m.get("thread_ts")
        ],
        "handoff channel": [slack_post(m) for m in posts(handoff)],
        "private notices": [
            _slack_text(m.get("text", "")) for c in (shared, handoff) for m in api.ephemerals(c)
        ],
    }


def _by_ts(messages: list[dict[str, Any]], ts: str) -> dict[str, Any]:
    return next(m for m in messages if m["ts"] == ts)


async def _slack_press(slack: slack_e2e.Slack, message: dict[str, Any], label: str) -> None:
    """The rep presses the button labelled `label` on a card in the handoff channel (the
    outcome picker has several `resolve_ticket` buttons, told apart by their values)."""
    button = next(
        element
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["text"]["text"] == label
    )
    action = button["action_id"].split(":", 1)[0]
    pressed = await slack_e2e.click(
        slack, message, action, slack_e2e.REP, channel=slack_e2e.HANDOFF, value=button["value"]
    )
    assert pressed.status == 200


# --- Teams ---------------------------------------------------------------------------------


async def run_teams(db: Path) -> Run:
    run = Run()
    async with FakeConnector(members=teams_e2e.ROSTER, tenant_id=teams_e2e.TENANT) as connector:
        store = await SqliteStore.open(db)
        try:
            settings = teams_e2e.local_settings(
                teams_leads_conversation=teams_e2e.LEADS,
                salesbot_leads_token=SecretStr(FEED_TOKEN),
            )
            async with serving(None, settings, store) as client:

                async def post(activity: dict[str, Any]) -> ClientResponse:
                    return await client.post("/api/messages", json=activity)

                teams = teams_e2e.Teams(connector=connector, client=client, store=store, post=post)
                await _teams_script(teams, run)
                run.logs = [await store.load(c) for c in await store.conversation_ids()]
        finally:
            await store.close()
    for person, role in ((teams_e2e.PROSPECT, "<prospect>"), (teams_e2e.REP, "<rep>")):
        run.names |= {person.teams_id: role, person.aad: role}
    return run


async def _teams_script(teams: teams_e2e.Teams, run: Run) -> None:
    connector, url = teams.connector, teams.connector.base_url
    prospect, rep, handoff = teams_e2e.PROSPECT, teams_e2e.REP, teams_e2e.HANDOFF

    def click(conversation: str, who: teams_e2e.Person, verb: str, card: dict[str, Any]) -> Any:
        data = teams_e2e.action_data(teams_e2e.card_of(card), verb)
        return teams.post(teams_e2e.invoke(conversation, who, verb, data, service_url=url))

    first = thread_id(teams_e2e.SHARED, "1700000000100")
    await teams.post(teams_e2e.say(teams, first, prospect, GREETING))
    await connector.wait_for_posts(first, 1)
    await teams.post(teams_e2e.say(teams, first, prospect, DETAILS))
    await connector.wait_for_posts(first, 2)
    await teams.post(teams_e2e.say(teams, first, rep, QUOTE, mention=True))
    quote = (await connector.wait_for_posts(first, 3))[2]
    run.cards["quote"] = teams_card(teams_e2e.card_of(quote))

    accept = await click(first, prospect, "accept_quote", quote)
    assert accept.status == 200
    answered = teams_card((await accept.json())["value"])
    await connector.wait_for_updates(1)
    await connector.wait_for_posts(first, 4)
    run.cards["accepted"] = teams_card(teams_e2e.card_of(_latest(connector, first, quote)))
    assert answered == run.cards["accepted"], "the invoke's answer is the card updated in place"

    second = thread_id(teams_e2e.SHARED, "1700000000300")
    await teams.post(teams_e2e.say(teams, second, prospect, OBJECTION))
    (ticket,) = await connector.wait_for_posts(handoff, 1)
    run.cards["ticket"] = teams_card(teams_e2e.card_of(ticket))
    claim = await click(handoff, rep, "claim_ticket", ticket)
    assert claim.status == 200
    answered = teams_card((await claim.json())["value"])
    await connector.wait_for_updates(2)
    run.cards["claimed"] = teams_card(teams_e2e.card_of(_latest(connector, handoff, ticket)))
    assert answered == run.cards["claimed"], "the invoke's answer is the card updated in place"

    third = thread_id(teams_e2e.SHARED, "1700000000500")
    for number, text in enumerate(QUESTIONS, 1):
        await teams.post(teams_e2e.say(teams, third, prospect, text))
        await connector.wait_for_posts(third, number)
    person = (await connector.wait_for_posts(handoff, 2))[1]
    run.cards["person"] = teams_card(teams_e2e.card_of(person))

    lead_id = await feed_questions(teams.client)
    run.names[lead_prospect(lead_id)] = "<prospect>"
    (lead,) = connector.posted(teams_e2e.LEADS)
    run.cards["lead"] = teams_card(teams_e2e.card_of(lead))

    fourth = thread_id(teams_e2e.SHARED, "1700000000700")
    await teams.post(teams_e2e.say(teams, fourth, prospect, DESK_HELLO))
    await connector.wait_for_posts(fourth, 1)
    # The rep answers in the thread without mentioning the bot (the app's RSC delivers it).
    await teams.post(teams_e2e.say(teams, fourth, rep, DESK_REP))
    desk = (await connector.wait_for_posts(handoff, 4))[3]
    run.cards["taken over"] = teams_card(teams_e2e.card_of(desk))

    def desk_card() -> Summary:
        return teams_card(teams_e2e.card_of(_latest(connector, handoff, desk)))

    await teams.post(teams_e2e.say(teams, fourth, prospect, DESK_THANKS))
    await eventually(lambda: f"prospect: {DESK_THANKS}" in desk_card()["text"], "refreshed")
    picker = await _teams_press(teams, handoff, rep, teams_e2e.card_of(desk), "Resolve")
    closed = await _teams_press(teams, handoff, rep, picker, "Closed")
    assert teams_card(closed)["status"].startswith("Closed by")
    await eventually(lambda: desk_card()["status"].startswith("Closed by"), "the ticket closed")
    await teams.post(teams_e2e.say(teams, fourth, prospect, DESK_AGAIN))
    await eventually(lambda: desk_card()["status"].endswith("prospect wrote again"), "reopened")
    run.cards["wrote again"] = desk_card()

    await outbox_drained(teams.client)
    run.posts = {
        "quote thread": [teams_post(a) for a in connector.posted(first)],
        "ticket thread": [teams_post(a) for a in connector.posted(second)],
        "questions thread": [teams_post(a) for a in connector.posted(third)],
        "desk thread": [teams_post(a) for a in connector.posted(fourth)],
        "lead thread": [
            teams_post(a) for a in [lead, *connector.posted(thread_id(teams_e2e.LEADS, lead["id"]))]
        ],
        "handoff channel": [teams_post(a) for a in connector.posted(handoff)],
        # Teams' private notices go to the person's personal chat with the bot.
        "private notices": [
            _teams_text(a.get("text", ""))
            for person in (teams_e2e.PROSPECT, teams_e2e.REP)
            for a in teams_e2e.privately(connector, person)
        ],
    }


async def _teams_press(
    teams: teams_e2e.Teams,
    conversation: str,
    who: teams_e2e.Person,
    card: dict[str, Any],
    title: str,
) -> dict[str, Any]:
    """`who` presses the button titled `title` on `card` (as they see it): the invoke's
    answer, the card refreshed in place."""
    action = next(a for a in card["actions"] if a["title"] == title)
    url = teams.connector.base_url
    activity = teams_e2e.invoke(conversation, who, action["verb"], action["data"], service_url=url)
    response = await teams.post(activity)
    assert response.status == 200
    answered: dict[str, Any] = (await response.json())["value"]
    return answered


def _latest(connector: FakeConnector, conversation: str, posted: dict[str, Any]) -> dict[str, Any]:
    activity = connector.activity(conversation, posted["id"])
    assert activity is not None
    return activity


# --- neutral summaries of what each platform shows -----------------------------------------


def _summary() -> Summary:
    return {"title": "", "status": "", "text": [], "facts": [], "lines": [], "buttons": []}


def _slack_text(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def slack_card(message: dict[str, Any]) -> Summary:
    """A Block Kit card read back (the layout `adapters.slack.blocks` writes)."""
    summary = _summary()
    for block in message["blocks"]:
        kind = block["type"]
        text = block.get("text", {}).get("text", "")
        if kind == "header":
            summary["title"] = _slack_text(text)
        elif kind == "context":
            status = block["elements"][0]["text"]
            assert status.startswith("*Status:* "), block
            summary["status"] = _slack_text(status.removeprefix("*Status:* "))
        elif kind == "section" and "fields" in block:
            for item in block["fields"]:
                label, value = item["text"].split("\n", 1)
                summary["facts"].append([_slack_text(label.strip("*")), _slack_text(value)])
        elif kind == "section" and text.startswith("```"):
            code = text.removeprefix("```\n").removesuffix("\n```").replace("`\u200b", "`")
            summary["lines"] += _slack_text(code).split("\n")
        elif kind == "section":
            summary["text"] += _slack_text(text).split("\n")
        elif kind == "input":
            element = block["element"]
            summary["input"] = [block["label"]["text"], element["placeholder"]["text"]]
        elif kind == "actions":
            summary["buttons"] += [
                [b["action_id"], _slack_text(b["text"]["text"]), b.get("style", "default")]
                for b in block["elements"]
            ]
        else:
            raise AssertionError(f"a block the card layout does not have: {block}")
    return summary


_BACKSLASH_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_TEAMS_STYLES = {"positive": "primary", "destructive": "danger"}


def _teams_text(text: str) -> str:
    """Teams Markdown as plain text: a paragraph break is one line break, escapes undone."""
    return _BACKSLASH_ESCAPE.sub(r"\1", text.replace("\n\n", "\n"))


def teams_card(card: dict[str, Any]) -> Summary:
    """An Adaptive Card read back (the layout `adapters.teams.cards` writes)."""
    summary = _summary()
    for item in card["body"]:
        kind = item["type"]
        if kind == "TextBlock" and item.get("style") == "heading":
            summary["title"] = _teams_text(item["text"])
        elif kind == "TextBlock" and item.get("color") == "Accent":
            summary["status"] = _teams_text(item["text"])
        elif kind == "TextBlock":
            summary["text"] += _teams_text(item["text"]).split("\n")
        elif kind == "FactSet":
            summary["facts"] += [
                [_teams_text(f["title"]), _teams_text(f["value"])] for f in item["facts"]
            ]
        elif kind == "Container":
            summary["lines"] += [_teams_text(line["text"]) for line in item["items"]]
        elif kind == "Input.Text":
            summary["input"] = [item["label"], item["placeholder"]]
        else:
            raise AssertionError(f"an element the card layout does not have: {item}")
    for action in card.get("actions", []):
        assert action["type"] == "Action.Execute", action
        style = _TEAMS_STYLES.get(action.get("style", ""), "default")
        summary["buttons"].append([action["verb"], action["title"], style])
    return summary


def slack_post(message: dict[str, Any]) -> Any:
    """A bot post as its card's summary, or as its text."""
    if any(block["type"] == "header" for block in message["blocks"]):
        return slack_card(message)
    return _slack_text(message["text"])


def teams_post(activity: dict[str, Any]) -> Any:
    if activity.get("attachments"):
        return teams_card(teams_e2e.card_of(activity))
    return _teams_text(activity["text"])


# --- the comparison ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(slack_run: Run, teams_run: Run) -> tuple[Run, Run]:
    """Both platforms' runs, once for the session (`conftest`: `test_parity_local` compares
    the other surfaces with the Slack run): each test compares one aspect."""
    return slack_run, teams_run


def test_both_platforms_record_the_same_events_in_each_conversation(
    runs: tuple[Run, Run],
) -> None:
    slack, teams = runs
    types = [[[e.event.type for e in log] for log in run.logs] for run in runs]
    assert types[0] == types[1]
    quoted, ticketed, questions, lead, desk = types[0]
    assert "quote_accepted" in quoted
    assert "ticket_claimed" in ticketed
    for transition in ("ticket_opened", "ticket_claimed", "ticket_resolved", "ticket_reopened"):
        assert transition in desk, transition
    for asked in (questions, lead):
        for decided in ("knowledge_answered", "meeting_requested", "reply_language_chosen"):
            assert decided in asked
        assert "ticket_opened" in asked
    assert "team_notified" not in questions  # a direct conversation has no lead thread
    assert lead.count("team_notified") == 2  # the hot lead, the meeting
    assert [len(log) for log in slack.logs] == [len(log) for log in teams.logs]


def test_each_question_is_decided_the_same_on_both_platforms_and_as_the_policy_says(
    runs: tuple[Run, Run],
) -> None:
    """Message by message: a knowledge answer, the booking link, the switch to Spanish with
    a Spanish knowledge answer, then back to English and a handoff for the person asked for;
    in a shared channel's thread and through the lead feed, whose lead's thread in the leads
    channel also hears of the hot lead and the meeting."""
    for conversation in (2, 3):
        slack, teams = (decisions(run, run.logs[conversation]) for run in runs)
        assert slack == teams
        assert len(slack) == len(QUESTIONS)
        meets_expectations(slack)
        meets_expectations(teams)
        told = [[kind for kind, _text in message["team"]] for message in slack]
        assert told == (
            [[], [], [], []] if conversation == 2 else [[], ["hot_lead", "meeting"], [], []]
        )


def test_the_flow_goes_through_the_same_states_on_both_platforms(runs: tuple[Run, Run]) -> None:
    paths = [[state_path(log) for log in run.logs] for run in runs]
    assert paths[0] == paths[1]
    for run, run_paths in zip(runs, paths, strict=True):
        for log, path in zip(run.logs, run_paths, strict=True):
            assert path[0] == START
            assert folded(log).flow_state == path[-1]


def test_the_quote_has_the_same_figures_on_both_platforms(runs: tuple[Run, Run]) -> None:
    def figures(run: Run) -> list[dict[str, Any]]:
        quotes = [
            e.event.quote for log in run.logs for e in log if isinstance(e.event, QuoteIssued)
        ]
        return [
            quote.model_dump(
                mode="json", exclude={"quote_id", "issued_at_ms", "expires_at_ms", "proof"}
            )
            | {
                "valid_ms": quote.expires_at_ms - quote.issued_at_ms,
                "proof": normalised(run, quote.proof),
            }
            for quote in quotes
        ]

    slack, teams = (figures(run) for run in runs)
    assert slack == teams
    (quote,) = slack
    assert (quote["sku"], quote["qty"], quote["unit_cents"]) == ("PRO", 10, 19_900)
    assert (quote["subtotal_cents"], quote["discount_cents"]) == (199_000, 19_900)
    assert (quote["tax_cents"], quote["total_cents"]) == (0, 179_100)


def test_the_ticket_has_the_same_kind_and_reason_and_is_claimed_by_the_rep_on_both_platforms(
    runs: tuple[Run, Run],
) -> None:
    def tickets(run: Run) -> list[tuple[str, str, str, Any]]:
        return [
            normalised(run, (t.kind, t.reason, t.status, t.claimed_by))
            for log in run.logs
            for t in folded(log).tickets.values()
        ]

    slack, teams = (tickets(run) for run in runs)
    assert slack == teams
    (kind, _reason, status, holder), *people, desk = slack
    assert (kind, status, holder) == ("handoff", "claimed", "<rep>")
    assert [list(person) for person in people] == [["handoff", "human_request", "open", None]] * 2
    # The desk's ticket: opened by the rep's words, closed, and held by them again.
    assert list(desk) == ["handoff", "rep_took_over", "claimed", "<rep>"]


def test_every_event_says_the_same_on_both_platforms_once_ids_and_times_are_normalised(
    runs: tuple[Run, Run],
) -> None:
    slack, teams = ([[event_view(run, e) for e in log] for log in run.logs] for run in runs)
    for number, (slack_log, teams_log) in enumerate(zip(slack, teams, strict=True), 1):
        for slack_event, teams_event in zip(slack_log, teams_log, strict=True):
            assert slack_event == teams_event, f"conversation {number}, seq {slack_event['seq']}"


@pytest.mark.parametrize("step", CARDS)
def test_the_cards_are_equivalent_on_both_platforms(runs: tuple[Run, Run], step: str) -> None:
    slack, teams = (normalised(run, run.cards[step]) for run in runs)
    assert slack == teams
    assert slack["title"]
    if step == "accepted":
        assert slack["status"] == "Accepted by Pat Prospect"  # the name people see
    if step in ("quote", "ticket", "person"):
        assert slack["buttons"], "a card to act on has buttons"
    if step == "person":
        assert slack["title"] == "Handoff: the prospect asked for a person"
    if step == "taken over":
        assert slack["status"] == "Taken over by Rae Rep"  # the team sees who holds it
        assert slack["text"][-1] == f"rep Rae Rep: {DESK_REP}"
    if step == "wrote again":
        assert slack["status"] == "Claimed by Rae Rep: prospect wrote again"
        assert slack["text"][-1] == f"prospect: {DESK_AGAIN}"
        assert [b[1] for b in slack["buttons"]] == ["Resolve", "Return to bot", "Won", "Lost…"]


def test_the_prospect_and_the_handoff_channel_see_the_same_posts_on_both_platforms(
    runs: tuple[Run, Run],
) -> None:
    slack_run, _ = runs
    slack, teams = (normalised(run, run.posts) for run in runs)
    assert slack.keys() == teams.keys()
    for place in slack:
        assert slack[place] == teams[place], place
    assert slack["quote thread"][0] == "<greet reply>"
    for run in runs:  # the name people see, in whichever wording each platform's hash picked
        greeting = next(e.event for e in run.logs[0] if isinstance(e.event, BotReplied))
        assert greeting.text.startswith("Hi Pat,")
    # The questions' thread shows the prospect what the log says the bot said to them:
    # the two knowledge answers word for word, the booking link's wording by its template.
    said = [
        e.event.text
        for e in slack_run.logs[2]
        if isinstance(e.event, BotReplied) and e.event.audience == "conversation"
    ]
    assert slack["questions thread"] == normalised(slack_run, said)
    assert [type(post) for post in slack["questions thread"]] == [str] * len(QUESTIONS)
    assert slack["questions thread"][1] == "<meeting.booking reply>"
    assert "Pro a 199.00 USD" in slack["questions thread"][2]
    assert [post["title"] for post in slack["handoff channel"]][1:] == [
        *["Handoff: the prospect asked for a person"] * 2,
        "Handoff: a rep took over the conversation",
    ]
    # The desk's thread: the bot greeted the prospect, then let the rep talk, even when the
    # prospect thanked the rep and when they wrote again after the ticket was closed.
    assert slack["desk thread"] == ["<greet reply>"]
    # The lead's thread: its card, then everything the lead's conversation said, to the
    # prospect and to the team (its `team_notified` posts), and the prospect's later
    # messages as their words (`prospect_message_shown`, `[handoff] lead_room`), in the order
    # it was decided.
    said_there = []
    heard = ""
    for e in slack_run.logs[3]:
        if isinstance(e.event, ProspectMessageReceived):
            heard = e.event.text
        elif isinstance(e.event, ProspectMessageShown):
            said_there.append(f"Pat Prospect wrote: “{heard}”")
        elif isinstance(e.event, TeamNotified) or (
            isinstance(e.event, BotReplied) and e.event.audience == "conversation"
        ):
            said_there.append(e.event.text)
    card, *thread = slack["lead thread"]
    assert card["title"] == "New lead: Pat Prospect (Acme)"
    assert thread == normalised(slack_run, said_there)
    assert [post for post in thread if post.startswith(("Hot lead:", "Meeting requested:"))] == [
        "Hot lead: Pat Prospect (Acme) is qualified.",
        "Meeting requested: Pat Prospect (Acme) asked to meet for Thursday afternoon. "
        "Booking link sent: <booking link>",
    ]
