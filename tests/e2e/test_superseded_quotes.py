"""Quotes that cannot be confused, end to end on both platforms (the real server, runtime and
outbox; the fake Slack Web API and the fake Teams connector on 127.0.0.1): a second quote in
a prospect's thread turns the first card into "Superseded by Q-…" in place (Slack
`chat.update`, Teams activity update), Accept pressed on the stale first card is refused
with the current quote offered, and the current quote closes the deal."""

from __future__ import annotations

import copy
import json
from typing import Any

from domain.events import EventEnvelope, QuoteAccepted, QuoteAcceptRefused, QuoteIssued
from tests.e2e import test_slack as slack_e2e
from tests.e2e import test_teams as teams_e2e
from tests.e2e.harness import eventually, outbox_drained
from tests.fakes.teams_connector import thread_id

slack = slack_e2e.slack
teams = teams_e2e.teams

HELLO = "Hi, we are evaluating CRMs"
DETAILS = "We have a $5000 budget, I am the CTO, next month"


def quote_ids(events: list[EventEnvelope]) -> list[str]:
    return [e.event.quote.quote_id for e in events if isinstance(e.event, QuoteIssued)]


def event_types(events: list[EventEnvelope]) -> list[str]:
    return [e.event.type for e in events]


# ---- Slack ---------------------------------------------------------------------------------


async def test_slack_updates_the_first_card_in_place_and_refuses_its_stale_accept(
    slack: slack_e2e.Slack,
) -> None:
    api = slack.api
    channel, prospect = slack_e2e.SHARED, slack_e2e.PROSPECT

    def posts() -> list[dict[str, Any]]:
        return slack_e2e.bot_messages(api, channel)

    thread = api.add_message(channel, HELLO, user=prospect["user"])
    await slack.events(
        {"type": "message", "channel": channel, "channel_type": "channel", "text": HELLO}
        | {"ts": thread, **prospect}
    )
    await eventually(lambda: len(posts()) == 1, "the greeting")

    async def rep_quotes(args: str, expected_posts: int) -> dict[str, Any]:
        text = f"<@{slack_e2e.BOT}> quote {args}"
        ts = api.add_message(channel, text, user=slack_e2e.REP, thread_ts=thread)
        await slack.events(
            {"type": "app_mention", "channel": channel, "user": slack_e2e.REP}
            | {"team": slack_e2e.TEAM, "text": text, "ts": ts, "thread_ts": thread}
        )
        await eventually(lambda: len(posts()) == expected_posts, f"the quote card ({args})")
        return posts()[-1]

    first = await rep_quotes("10 pro 10%", 2)
    stale = copy.deepcopy(first)  # the card as the prospect's client still shows it
    await rep_quotes("12 pro 10%", 3)
    events = await slack.store.load((await slack.store.conversation_ids())[0])
    old, current = quote_ids(events)

    await eventually(
        lambda: f"Superseded by {current}" in slack_e2e.texts([posts()[1]]),
        "the first card updated in place",
    )
    assert [call.params.get("ts") for call in api.calls_of("chat.update")] == [first["ts"]]
    assert "accept_quote" not in json.dumps(posts()[1]["blocks"])
    assert "Ready to accept" in slack_e2e.texts([posts()[2]])

    response = await slack_e2e.click(
        slack, stale, "accept_quote", prospect["user"], prospect["user_team"]
    )
    assert response.status == 200

    def offer() -> dict[str, Any] | None:
        return next(
            (e for e in api.ephemerals(channel) if "has been replaced" in e.get("text", "")),
            None,
        )

    await eventually(lambda: offer() is not None, "the prospect told, privately")
    offered = offer()
    assert offered is not None
    assert offered["user"] == prospect["user"]
    assert f"The current quote is {current}" in offered["text"]
    assert f"Quote {current}" in json.dumps(offered["blocks"])
    await outbox_drained(slack.client)
    events = await slack.store.load((await slack.store.conversation_ids())[0])
    assert "quote_accept_refused" in event_types(events)
    assert "quote_accepted" not in event_types(events)
    assert "conversation_closed" not in event_types(events)
    assert "Accepted by" not in slack_e2e.texts(posts())

    # The offered card's Accept closes the deal on the current quote, whose card updates.
    await slack_e2e.click(slack, offered, "accept_quote", prospect["user"], prospect["user_team"])
    await eventually(
        lambda: "Accepted by" in slack_e2e.texts([posts()[2]]), "the current card accepted"
    )
    assert f"Superseded by {current}" in slack_e2e.texts([posts()[1]])
    events = await slack.store.load((await slack.store.conversation_ids())[0])
    accepted = [e.event for e in events if isinstance(e.event, QuoteAccepted)]
    assert [a.quote_id for a in accepted] == [current]
    assert old != current


async def test_slack_shows_an_approved_discount_as_version_two_of_the_same_quote(
    slack: slack_e2e.Slack,
) -> None:
    api = slack.api
    response = await slack_e2e.post_form(
        slack,
        {
            "command": "/quote",
            "text": "10 pro 20%",
            "team_id": slack_e2e.TEAM,
            "channel_id": slack_e2e.SHARED,
            "user_id": slack_e2e.REP,
            "user_name": "rae",
            "trigger_id": "trig-v2",
            "response_url": "https://hooks.slack.com/commands/v2",
        },
    )
    assert response.status == 200
    await eventually(
        lambda: any(e.get("blocks") for e in api.ephemerals(slack_e2e.SHARED)),
        "the rep's private card",
    )
    card = next(e for e in api.ephemerals(slack_e2e.SHARED) if e.get("blocks"))
    await slack_e2e.click(slack, card, "request_approval", slack_e2e.REP)
    await eventually(
        lambda: len(slack_e2e.bot_messages(api, slack_e2e.HANDOFF)) == 1, "the approval card"
    )
    approval = slack_e2e.bot_messages(api, slack_e2e.HANDOFF)[0]
    await slack_e2e.click(
        slack, approval, "approve_quote", slack_e2e.BOSS, channel=slack_e2e.HANDOFF
    )
    (quote_id,) = quote_ids(await slack.store.load((await slack.store.conversation_ids())[0]))
    await eventually(
        lambda: (
            f"Quote {quote_id} v2" in slack_e2e.texts(slack_e2e.bot_messages(api, slack_e2e.SHARED))
        ),
        "the approved quote, same id, version 2",
    )
    await eventually(
        lambda: (
            f"now {quote_id} v2" in slack_e2e.texts(slack_e2e.bot_messages(api, slack_e2e.HANDOFF))
        ),
        "the approval card updated in place",
    )
    assert len(slack_e2e.bot_messages(api, slack_e2e.HANDOFF)) == 1


# ---- Teams ---------------------------------------------------------------------------------


async def test_teams_updates_the_first_card_in_place_and_refuses_its_stale_accept(
    teams: teams_e2e.Teams,
) -> None:
    connector = teams.connector
    thread = thread_id(teams_e2e.SHARED, "1700000000900")
    prospect, rep = teams_e2e.PROSPECT, teams_e2e.REP
    await teams.post(teams_e2e.say(teams, thread, prospect, HELLO))
    await connector.wait_for_posts(thread, 1)
    await teams.post(teams_e2e.say(teams, thread, rep, "quote 10 pro 10%", mention=True))
    first = (await connector.wait_for_posts(thread, 2))[1]
    stale = teams_e2e.action_data(teams_e2e.card_of(first), "accept_quote")
    await teams.post(teams_e2e.say(teams, thread, rep, "quote 12 pro 10%", mention=True))
    posts = await connector.wait_for_posts(thread, 3)
    events = await teams.store.load((await teams.store.conversation_ids())[0])
    old, current = quote_ids(events)

    await connector.wait_for_updates(1)
    shown = teams_e2e.texts([connector.activity(thread, first["id"]) or {}])
    assert f"Superseded by {current}" in shown
    assert '"accept_quote"' not in shown
    assert "Ready to accept" in teams_e2e.texts([posts[2]])

    answer = await (
        await teams.post(
            teams_e2e.invoke(
                thread, prospect, "accept_quote", stale, service_url=connector.base_url
            )
        )
    ).json()
    # The clicked card comes back as it stands: superseded, nothing to press.
    assert answer["type"] == "application/vnd.microsoft.card.adaptive"
    assert f"Superseded by {current}" in json.dumps(answer["value"])
    assert '"accept_quote"' not in json.dumps(answer["value"])
    await outbox_drained(teams.client)
    events = await teams.store.load((await teams.store.conversation_ids())[0])
    refused = [e.event for e in events if isinstance(e.event, QuoteAcceptRefused)]
    assert [(r.quote_id, r.current_quote_id) for r in refused] == [(old, current)]
    assert "conversation_closed" not in event_types(events)
    # The prospect is offered the current quote privately, never in the thread.
    offered = [
        p
        for p in teams_e2e.privately(connector, prospect)
        if "has been replaced" in teams_e2e.texts([p])
    ]
    assert len(offered) == 1
    assert f"Quote {current}" in json.dumps(teams_e2e.card_of(offered[0]))
    assert "has been replaced" not in teams_e2e.texts(connector.posted(thread))

    accept = teams_e2e.action_data(teams_e2e.card_of(offered[0]), "accept_quote")
    personal = next(
        c.conversation_id for c in connector.creations if c.member_id == prospect.teams_id
    )
    await teams.post(
        teams_e2e.invoke(personal, prospect, "accept_quote", accept, service_url=connector.base_url)
    )
    await eventually(
        lambda: (
            "Accepted by" in teams_e2e.texts([connector.activity(thread, posts[2]["id"]) or {}])
        ),
        "the current card accepted in place",
    )


async def test_teams_shows_an_approved_discount_as_version_two_of_the_same_quote(
    teams: teams_e2e.Teams,
) -> None:
    connector = teams.connector
    chat = "19:deal-room-v2@thread.v2"
    approve = await teams_e2e.approval_requested(teams, chat)
    await teams.post(
        teams_e2e.invoke(
            teams_e2e.HANDOFF,
            teams_e2e.BOSS,
            "approve_quote",
            approve,
            service_url=connector.base_url,
        )
    )
    await eventually(lambda: len(connector.posted(chat)) == 2, "the new version")
    (quote_id,) = quote_ids(await teams.store.load((await teams.store.conversation_ids())[0]))
    v2 = teams_e2e.card_of(connector.posted(chat)[1])
    assert v2["body"][0]["text"].replace("\\", "").endswith(f"Quote {quote_id} v2")
    assert "1,592.00 USD" in json.dumps(v2)
