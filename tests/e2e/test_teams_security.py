"""Teams security regressions through the real server (issue 10): every click is bound to the
card it came from, and hostile bodies get a clear 4xx with nothing stored.

The clicks are made as the attacks were: a user of another tenant, from their own personal
chat with the bot, submits card data naming another conversation's quote — copied from a real
card, made up without a signature (as every card was before signing), or with one made up —
and a prospect edits the target of a real button. None may accept the quote or close the deal;
each is recorded, refused, in the conversation it was made in (what the domain then says is
the domain's, tested there).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.teams import ids
from adapters.teams.connector import NoToken
from bot.settings import Settings
from domain.inbound import CUT_MARKER
from storage.sqlite import SqliteStore
from tests.e2e import test_teams as e2e
from tests.e2e.harness import outbox_drained, serving
from tests.e2e.test_teams import (
    HANDOFF,
    PROSPECT,
    REP,
    ROSTER,
    SHARED,
    TENANT,
    Person,
    Teams,
    action_data,
    card_of,
    invoke,
    say,
)
from tests.fakes.teams_connector import FakeConnector, thread_id
from tests.teams.keys import LocalIssuer

EVIL_TENANT = "tenant-evil"
MALLORY = Person("29:mallory", "aad-mallory", "Mallory", EVIL_TENANT)
MALLORYS_CHAT = "a:mallory-and-the-bot"


def from_mallory(activity: dict[str, Any]) -> dict[str, Any]:
    """An activity as Teams delivers it from Mallory's personal chat in her own tenant."""
    activity["conversation"] = {
        "id": MALLORYS_CHAT,
        "conversationType": "personal",
        "tenantId": EVIL_TENANT,
    }
    activity["channelData"] = {"tenant": {"id": EVIL_TENANT}}
    return activity


async def quoted_thread(teams: Teams, root: str) -> tuple[str, dict[str, Any]]:
    """A prospect's thread in the shared channel with a quote card in it: the thread and the
    card's Accept button data."""
    thread = thread_id(SHARED, root)
    await teams.post(say(teams, thread, PROSPECT, "We have a $5000 budget, I am the CTO"))
    await teams.connector.wait_for_posts(thread, 1)
    await teams.post(say(teams, thread, REP, "quote 10 pro 10%", mention=True))
    posts = await teams.connector.wait_for_posts(thread, 2)
    return thread, action_data(card_of(posts[-1]), "accept_quote")


async def event_types(teams: Teams, conversation: str) -> list[str]:
    return [envelope.event.type for envelope in await teams.store.load(conversation)]


async def all_event_types(teams: Teams) -> list[str]:
    return [
        kind
        for conversation in await teams.store.conversation_ids()
        for kind in await event_types(teams, conversation)
    ]


async def stored_click(teams: Teams, conversation: str) -> dict[str, Any]:
    """The one click recorded in `conversation`, as stored."""
    clicks = [
        stored.inbound
        for stored in await teams.store.inbounds(ids.conversation_id(conversation))
        if stored.inbound["kind"] == "action"
    ]
    assert len(clicks) == 1, clicks
    return clicks[0]


async def clicked(teams: Teams, activity: dict[str, Any]) -> dict[str, Any]:
    """Post an `Action.Execute` click: always answered 200 with a message or card."""
    response = await teams.post(activity)
    assert response.status == 200
    answer: dict[str, Any] = await response.json()
    assert answer["statusCode"] == 200
    return answer


async def test_a_user_of_another_tenant_cannot_accept_another_conversations_quote(
    teams: Teams,
) -> None:
    url = teams.connector.base_url
    thread, accept = await quoted_thread(teams, "1700000000500")

    # Copied from the real card: a valid signature, but for our tenant and that thread.
    copied = from_mallory(invoke(thread, MALLORY, "accept_quote", accept, service_url=url))
    answer = await clicked(teams, copied)
    assert answer["type"] == "application/vnd.microsoft.activity.message"
    click = await stored_click(teams, MALLORYS_CHAT)
    assert (click["binding"], click["action"], click["target"]) == (
        "wrong_tenant",
        "accept_quote",
        accept["t"],
    )

    await outbox_drained(teams.client)
    assert "quote_accepted" not in await all_event_types(teams)
    assert "conversation_closed" not in await all_event_types(teams)
    # The prospect's own click on the same button still works: the forgery used nothing up.
    await clicked(teams, invoke(thread, PROSPECT, "accept_quote", accept, service_url=url))
    assert "quote_accepted" in await event_types(teams, ids.conversation_id(thread))


@pytest.mark.parametrize(
    ("forge", "binding"),
    [
        # The original defect: hand-made data naming the quote, as unsigned cards were.
        (
            lambda real: ids.action_data(real["c"], "accept_quote", real["t"], "n-forged"),
            "unsigned",
        ),
        (lambda real: {**real, "s": "v1.0123456789abcdef0123456789abcdef"}, "bad_signature"),
        # Re-signing is impossible without the key; claiming her own tenant breaks the signature.
        (lambda real: {**real, "tn": EVIL_TENANT, "w": MALLORYS_CHAT}, "bad_signature"),
    ],
    ids=["unsigned", "made-up-signature", "claimed-placement"],
)
async def test_forged_card_data_from_another_tenant_accepts_nothing(
    teams: Teams, forge: Any, binding: str
) -> None:
    url = teams.connector.base_url
    thread, accept = await quoted_thread(teams, "1700000000600")
    forged = forge(accept)
    # Both ways a click arrives: Action.Execute, and its Action.Submit fallback.
    await clicked(
        teams, from_mallory(invoke(thread, MALLORY, "accept_quote", forged, service_url=url))
    )
    submit = from_mallory(say(teams, thread, MALLORY, ""))
    submit["value"] = {**forged, "n": forged["n"] + "-submit"}
    assert (await teams.post(submit)).status == 200

    clicks = [
        stored.inbound
        for stored in await teams.store.inbounds(ids.conversation_id(MALLORYS_CHAT))
        if stored.inbound["kind"] == "action"
    ]
    assert [c["binding"] for c in clicks] == [binding, binding]
    await outbox_drained(teams.client)
    assert "quote_accepted" not in await all_event_types(teams)
    assert "conversation_closed" not in await all_event_types(teams)
    # Nothing about the forgery reached the prospect's thread.
    assert [s.inbound["kind"] for s in await teams.store.inbounds(ids.conversation_id(thread))] == [
        "message",
        "message",
    ]


async def test_a_tampered_target_or_conversation_is_a_bad_signature(teams: Teams) -> None:
    url = teams.connector.base_url
    first, accept_first = await quoted_thread(teams, "1700000000700")
    second, accept_second = await quoted_thread(teams, "1700000000701")
    # The prospect of the first thread points its Accept at the second thread's quote.
    tampered = {**accept_first, "c": accept_second["c"], "t": accept_second["t"]}
    answer = await clicked(
        teams, invoke(first, PROSPECT, "accept_quote", tampered, service_url=url)
    )
    assert answer["type"] == "application/vnd.microsoft.activity.message"
    click = await stored_click(teams, first)
    assert (click["binding"], click["conversation_id"]) == (
        "bad_signature",
        ids.conversation_id(first),
    )
    await outbox_drained(teams.client)
    assert "quote_accepted" not in await event_types(teams, ids.conversation_id(first))
    assert "quote_accepted" not in await event_types(teams, ids.conversation_id(second))


async def test_a_real_button_clicked_in_another_conversation_of_our_tenant_is_refused_there(
    teams: Teams,
) -> None:
    url = teams.connector.base_url
    _, accept = await quoted_thread(teams, "1700000000800")
    elsewhere = "19:deal-room-3@thread.v2"
    replayed = invoke(elsewhere, REP, "accept_quote", accept, service_url=url)
    replayed["conversation"]["conversationType"] = "groupChat"
    await clicked(teams, replayed)
    click = await stored_click(teams, elsewhere)
    assert click["binding"] == "wrong_conversation"
    await outbox_drained(teams.client)
    assert "quote_accepted" not in await all_event_types(teams)


async def test_a_click_on_a_card_from_before_signing_is_recorded_as_unsigned(
    teams: Teams,
) -> None:
    url = teams.connector.base_url
    thread, accept = await quoted_thread(teams, "1700000000900")
    legacy = {k: v for k, v in accept.items() if k not in ("tn", "w", "s")}
    answer = await clicked(teams, invoke(thread, PROSPECT, "accept_quote", legacy, service_url=url))
    # Never a broken card: the current card comes back, signed (see the next test).
    assert answer["type"] == "application/vnd.microsoft.card.adaptive"
    click = await stored_click(teams, thread)
    assert (click["binding"], click["conversation_id"]) == ("unsigned", ids.conversation_id(thread))
    assert "quote_accepted" not in await event_types(teams, ids.conversation_id(thread))


async def test_an_old_quote_card_clicked_in_place_comes_back_signed(teams: Teams) -> None:
    url = teams.connector.base_url
    thread, accept = await quoted_thread(teams, "1700000000950")
    legacy = {k: v for k, v in accept.items() if k not in ("tn", "w", "s")} | {"r": accept["t"]}
    answer = await clicked(teams, invoke(thread, PROSPECT, "accept_quote", legacy, service_url=url))
    # The clicked card is answered with the current card, its buttons signed for this thread.
    assert answer["type"] == "application/vnd.microsoft.card.adaptive"
    fresh = action_data(answer["value"], "accept_quote")
    assert fresh["s"].startswith("v1.")
    accepted = await clicked(
        teams, invoke(thread, PROSPECT, "accept_quote", fresh, service_url=url)
    )
    assert "Accepted by" in json.dumps(accepted)
    assert "quote_accepted" in await event_types(teams, ids.conversation_id(thread))


async def test_an_old_ticket_card_in_the_handoff_channel_is_posted_again_signed(
    teams: Teams,
) -> None:
    thread = thread_id(SHARED, "1700000001100")
    await teams.post(say(teams, thread, PROSPECT, "Can we cancel the contract and get a refund?"))
    (ticket,) = await teams.connector.wait_for_posts(HANDOFF, 1)
    claim = action_data(card_of(ticket), "claim_ticket")
    legacy = {k: v for k, v in claim.items() if k not in ("tn", "w", "s")}
    in_its_thread = thread_id(HANDOFF, ticket["id"])
    url = teams.connector.base_url
    await clicked(teams, invoke(in_its_thread, REP, "claim_ticket", legacy, service_url=url))
    conversation = ids.conversation_id(thread)
    assert "ticket_claimed" not in await event_types(teams, conversation)
    assert (await stored_click(teams, thread))["binding"] == "unsigned"
    (update,) = await teams.connector.wait_for_updates(1)
    assert (update.conversation_id, update.activity_id) == (HANDOFF, ticket["id"])
    again = action_data(card_of(update.activity), "claim_ticket")
    assert again["s"].startswith("v1.")
    answer = await clicked(
        teams, invoke(in_its_thread, REP, "claim_ticket", again, service_url=url)
    )
    assert "Claimed by" in json.dumps(answer)


async def test_a_ticket_card_in_the_handoff_channel_works_from_its_thread(teams: Teams) -> None:
    """The handoff channel's cards act on the prospect's conversation: signed for the channel,
    clicked from the card's own thread there, they are accepted."""
    thread = thread_id(SHARED, "1700000001000")
    await teams.post(say(teams, thread, PROSPECT, "Can we cancel the contract and get a refund?"))
    (ticket,) = await teams.connector.wait_for_posts(HANDOFF, 1)
    claim = action_data(card_of(ticket), "claim_ticket")
    in_its_thread = thread_id(HANDOFF, ticket["id"])
    answer = await clicked(
        teams,
        invoke(in_its_thread, REP, "claim_ticket", claim, service_url=teams.connector.base_url),
    )
    assert "Claimed by" in json.dumps(answer)
    assert "ticket_claimed" in await event_types(teams, ids.conversation_id(thread))


# --- hostile bodies ------------------------------------------------------------------------


def teams_rows(db: Path) -> dict[str, int]:
    """Rows a Teams request could have written, read from the database file itself."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ("streams", "events", "deliveries", "inbounds", "outbox", "tickets")
        } | {
            "teams_state": int(
                conn.execute(
                    "SELECT count(*) FROM adapter_state WHERE key LIKE 'teams:%'"
                ).fetchone()[0]
            )
        }


NOTHING = dict.fromkeys(
    ("streams", "events", "deliveries", "inbounds", "outbox", "tickets", "teams_state"), 0
)


def nested(depth: int) -> bytes:
    return b'{"type":"message","serviceUrl":"x","value":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (nested(100_000), "application/json", 400, "nests deeper"),
        (nested(65), "application/json", 400, "nests deeper"),
        (nested(63), "application/json", 401, "unauthorized"),  # 64 deep: on to the token
        (b'{"type": "message"', "application/json", 400, "not JSON"),
        (b'{"text": "caf\xe9"}', "application/json", 400, "not UTF-8"),
        (b'{"type": "message", "text": "\\ud800"}', "application/json", 400, "lone surrogate"),
        (b'{"type": "message"}', "text/plain", 415, "Content-Type"),
        (b'{"type": "message"}', "application/json; charset=latin-1", 415, "UTF-8"),
        (b'{"type": "message"}', "application/x-www-form-urlencoded", 415, "Content-Type"),
        (b"[" + b" " * (1024 * 1024) + b"]", "application/json", 413, "over"),
    ],
    ids=[
        "deep",
        "just-too-deep",
        "deep-enough",
        "truncated",
        "latin-1",
        "lone-surrogate",
        "text",
        "charset",
        "form",
        "oversized",
    ],
)
async def test_a_hostile_body_gets_a_clear_4xx_before_the_token_and_stores_nothing(
    tmp_path: Path, body: bytes, content_type: str, status: int, reason: str
) -> None:
    """With credentials configured and no token at all: the body is refused for what it is
    (not 401 after parsing it, and never 500)."""
    db = tmp_path / "teams.db"
    async with LocalIssuer(app_id="app-0001") as issuer:
        settings = Settings(
            teams_app_id="app-0001",
            teams_app_password=SecretStr("not-used-in-tests"),
            teams_app_tenant_id=TENANT,
            teams_openid_metadata_url=issuer.metadata_url,
        )
        store = await SqliteStore.open(db)
        try:
            async with serving(None, settings, store, teams_tokens=NoToken()) as client:
                response = await client.post(
                    "/api/messages", data=body, headers={"Content-Type": content_type}
                )
                assert response.status == status
                assert reason in (await response.json())["error"]
                assert (await client.get("/healthz")).status == 200
        finally:
            await store.close()
    assert teams_rows(db) == NOTHING


async def raw_post(client: Any, headers: bytes, body: bytes) -> tuple[int, bytes]:
    """A request written byte for byte (an HTTP client would refuse such headers): its
    status and body."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + headers
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, content = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), content


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (b"Content-Type: application/json\r\nAuthorization: Bearer \xff\xfe.a.b\r\n", 401),
        (b"Content-Type: application/json\r\nAuthorization: Bearer eyJ\xc3(.x.y\r\n", 401),
        (b"Content-Type: application/json\r\nAuthorization: \xff\r\n", 401),
        (b"Content-Type: application/json; charset=\xff\r\n", 415),
        (b"Content-Type: \xff\xfe\r\n", 415),
    ],
    ids=["token-latin-1", "token-bad-utf-8", "scheme", "charset", "content-type"],
)
async def test_headers_that_are_not_ascii_get_a_4xx_not_a_500(
    tmp_path: Path, headers: bytes, status: int
) -> None:
    db = tmp_path / "teams.db"
    async with LocalIssuer(app_id="app-0001") as issuer:
        settings = Settings(
            teams_app_id="app-0001",
            teams_app_password=SecretStr("not-used-in-tests"),
            teams_app_tenant_id=TENANT,
            teams_openid_metadata_url=issuer.metadata_url,
        )
        store = await SqliteStore.open(db)
        try:
            async with serving(None, settings, store, teams_tokens=NoToken()) as client:
                activity = e2e.message(
                    SHARED, PROSPECT, "Hello", service_url="https://127.0.0.1:1/"
                )
                got, body = await raw_post(client, headers, json.dumps(activity).encode())
                assert (got, "error" in json.loads(body)) == (status, True)
        finally:
            await store.close()
    assert teams_rows(db) == NOTHING


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"not gzip at all", 400, "could not be read"),
        (gzip.compress(b"[" * 5_000_000), 413, "over"),  # 5 KB that inflate to 5 MB
    ],
    ids=["bad-gzip", "gzip-bomb"],
)
async def test_a_compressed_body_is_read_within_the_limits_or_refused(
    bot_with_db: tuple[Teams, Path], body: bytes, status: int, reason: str
) -> None:
    teams, db = bot_with_db
    headers = b"Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
    got, answer = await raw_post(teams.client, headers, body)
    assert got == status
    assert reason in json.loads(answer)["error"]
    assert teams_rows(db) == NOTHING


@pytest.fixture
async def bot_with_db(tmp_path: Path) -> AsyncIterator[tuple[Teams, Path]]:
    db = tmp_path / "teams.db"
    async with FakeConnector(members=ROSTER, tenant_id=TENANT) as connector:
        store = await SqliteStore.open(db)
        try:
            async with serving(None, e2e.local_settings(), store) as client:

                async def post(activity: dict[str, Any]) -> Any:
                    return await client.post("/api/messages", json=activity)

                yield Teams(connector=connector, client=client, store=store, post=post), db
        finally:
            await store.close()


@pytest.fixture
def teams(bot_with_db: tuple[Teams, Path]) -> Teams:
    return bot_with_db[0]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"from": "29:pat"}, "from"),
        ({"conversation": ["19:x"]}, "conversation"),
        ({"text": 42}, "text"),
        ({"entities": {"type": "mention"}}, "entities"),
        ({"channelData": {"tenant": {"id": 7}}}, "channelData.tenant.id"),
        ({"from": {"id": "29:pat", "aadObjectId": None, "name": ["Pat"]}}, "from.name"),
    ],
)
async def test_a_wrongly_typed_activity_is_a_422_naming_the_field_and_stores_nothing(
    bot_with_db: tuple[Teams, Path], change: dict[str, Any], named: str
) -> None:
    teams, db = bot_with_db
    activity = say(teams, thread_id(SHARED, "1700000001100"), PROSPECT, "Hello") | change
    response = await teams.post(activity)
    assert response.status == 422
    error = (await response.json())["error"]
    assert error.startswith(f"{named}:")
    assert "\n" not in error
    assert teams_rows(db) == NOTHING


async def test_a_wrongly_typed_card_click_is_still_answered_200_with_a_message(
    bot_with_db: tuple[Teams, Path],
) -> None:
    teams, db = bot_with_db
    click = invoke(SHARED, PROSPECT, "accept_quote", {}, service_url=teams.connector.base_url)
    click["from"] = 12
    answer = await clicked(teams, click)
    assert answer["type"] == "application/vnd.microsoft.activity.message"
    assert teams_rows(db) == NOTHING


async def test_text_over_forty_thousand_characters_is_heard_cut_with_a_note(
    bot_with_db: tuple[Teams, Path],
) -> None:
    teams, _ = bot_with_db
    thread = thread_id(SHARED, "1700000001200")
    response = await teams.post(say(teams, thread, PROSPECT, "We need a CRM. " + "x" * 60_000))
    assert response.status == 200
    (stored,) = await teams.store.inbounds(ids.conversation_id(thread))
    assert len(stored.inbound["text"]) == 40_000
    assert stored.inbound["text"].endswith(CUT_MARKER)
    await teams.connector.wait_for_posts(thread, 1)  # and answered


async def test_an_account_carrying_a_huge_unknown_field_is_accepted_and_its_reference_kept_small(
    bot_with_db: tuple[Teams, Path],
) -> None:
    """Was a 500: the whole `from` went into the stored conversation reference, over the
    store's limit for one value."""
    teams, _ = bot_with_db
    thread = thread_id(SHARED, "1700000001400")
    activity = say(teams, thread, PROSPECT, "Hello")
    activity["from"]["padding"] = "x" * 300_000
    activity["conversation"]["padding"] = ["y" * 1000] * 200
    assert (await teams.post(activity)).status == 200
    reference = await teams.store.get_state(f"teams:conv:{SHARED}")
    assert reference is not None
    assert "padding" not in json.dumps(reference)
    assert reference["user"]["id"] == PROSPECT.teams_id


async def test_a_huge_list_of_mentions_is_handled_quickly(bot_with_db: tuple[Teams, Path]) -> None:
    teams, _ = bot_with_db
    thread = thread_id(SHARED, "1700000001300")
    activity = say(teams, thread, PROSPECT, "<at>x</at> " * 2000 + "hello")
    activity["entities"] = [
        {"type": "mention", "text": "<at>x</at>", "mentioned": {"id": e2e.BOT}}
    ] * 10_000
    started = time.monotonic()
    response = await teams.post(activity)
    assert response.status == 200
    assert time.monotonic() - started < 2
