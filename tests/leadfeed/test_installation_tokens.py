"""Leads of several installations on one salesbot, through the real server, runtime and
SQLite store: a lead posted with an installation's own token
(`SALESBOT_INSTALLATION_LEADS_TOKENS`) belongs to that installation — its conversation says
so, its `/metrics` counts it — and is read or written with that token only; another
installation's token gets the 404 of a lead that does not exist. The same idempotency key
used by two installations makes two leads. A malformed token list stops the start."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.policy_loader import load_policy
from bot.server import build_app
from bot.service import build_service
from bot.settings import Settings, SettingsError
from storage.sqlite import SqliteStore

FIRST_TOKEN = "first-leads-token-0001"
GLOBEX = "slack:T0002"
GLOBEX_TOKEN = "globex-leads-token-0002"
INITECH = "teams:7f3c0000-0000-0000-0000-000000000001"
INITECH_TOKEN = "initech-leads-token-0003"
TOKENS = f"{GLOBEX}={GLOBEX_TOKEN}, {INITECH}={INITECH_TOKEN}"
LEAD = {
    "name": "Dana Reyes",
    "company": "Acme",
    "email": "dana@acme.example",
    "message": "We need pricing for 40 seats.",
}


@dataclass
class Site:
    client: TestClient[web.Request, web.Application]
    store: SqliteStore

    async def post(
        self, token: str, path: str, body: Mapping[str, object], **headers: str
    ) -> ClientResponse:
        return await self.client.post(
            path, json=body, headers={"Authorization": f"Bearer {token}", **headers}
        )


def settings(tokens: str = TOKENS) -> Settings:
    return Settings(
        salesbot_leads_token=SecretStr(FIRST_TOKEN),
        salesbot_installation_leads_tokens=SecretStr(tokens),
        salesbot_action_secret=SecretStr("leads-installations-action-secret"),
    )


@asynccontextmanager
async def serving(path: Path) -> AsyncIterator[Site]:
    store = await SqliteStore.open(path)
    try:
        service = build_service(
            settings(), load_policy("default"), store, clock=lambda: int(time.time() * 1000)
        )
        async with TestClient(TestServer(build_app(service), host="127.0.0.1")) as client:
            yield Site(client, store)
    finally:
        await store.close()


async def lead_id(response: ClientResponse) -> str:
    assert response.status in (200, 201), await response.text()
    return str((await response.json())["lead_id"])


async def test_a_lead_belongs_to_the_installation_whose_token_posted_it(tmp_path: Path) -> None:
    async with serving(tmp_path / "bot.db") as site:
        first = await lead_id(await site.post(FIRST_TOKEN, "/leads", LEAD))
        globex = await lead_id(await site.post(GLOBEX_TOKEN, "/leads", LEAD))
        initech = await lead_id(await site.post(INITECH_TOKEN, "/leads", LEAD))
        started = {}
        for lead in (first, globex, initech):
            (event,) = [
                e.event
                for e in await site.store.load(lead)
                if e.event.type == "conversation_started"
            ]
            started[lead] = event.installation
        counted = {
            installation: (await site.store.metrics_projection(installation)).counts
            for installation in ("", GLOBEX, INITECH)
        }
    assert started == {first: "", globex: GLOBEX, initech: INITECH}
    assert {inst: c["conversations"][""] for inst, c in counted.items()} == {
        "": 1,
        GLOBEX: 1,
        INITECH: 1,
    }


async def test_a_lead_is_read_and_written_with_its_own_installation_s_token_only(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path / "bot.db") as site:
        globex = await lead_id(await site.post(GLOBEX_TOKEN, "/leads", LEAD))
        mine = await site.post(GLOBEX_TOKEN, f"/leads/{globex}/messages", {"text": "Any news?"})
        theirs = await site.post(FIRST_TOKEN, f"/leads/{globex}/messages", {"text": "Hello?"})
        other = await site.post(INITECH_TOKEN, f"/leads/{globex}/messages", {"text": "Hi"})
        never = await site.post(FIRST_TOKEN, "/leads/lead-0000000000000000/messages", {"text": "x"})
        read_mine = await site.client.get(
            f"/leads/{globex}/messages", headers={"Authorization": f"Bearer {GLOBEX_TOKEN}"}
        )
        read_theirs = await site.client.get(
            f"/leads/{globex}/messages", headers={"Authorization": f"Bearer {FIRST_TOKEN}"}
        )
        prospect_texts = [
            e.event.text
            for e in await site.store.load(globex)
            if e.event.type == "prospect_message_received"
        ]
        assert mine.status in (200, 201)
        assert read_mine.status == 200
        assert "Any news?" in await read_mine.text()
        # Word for word the answer for a lead that does not exist:
        assert (theirs.status, other.status, read_theirs.status) == (404, 404, 404)
        assert await theirs.json() == await never.json()
    assert "Hello?" not in prospect_texts
    assert "Hi" not in prospect_texts


async def test_two_installations_using_one_idempotency_key_get_two_leads(tmp_path: Path) -> None:
    key = {"Idempotency-Key": "form-submission-42"}
    async with serving(tmp_path / "bot.db") as site:
        first = await lead_id(await site.post(FIRST_TOKEN, "/leads", LEAD, **key))
        again = await lead_id(await site.post(FIRST_TOKEN, "/leads", LEAD, **key))
        globex = await lead_id(await site.post(GLOBEX_TOKEN, "/leads", LEAD, **key))
    assert first == again
    assert globex != first


@pytest.mark.parametrize(
    ("tokens", "says"),
    [
        ("slack:T0002", "entry 1 is not `installation=token`"),
        (f"{GLOBEX}=a-token,{GLOBEX}=b-token", "slack:T0002 is listed twice"),
        (f"{GLOBEX}={FIRST_TOKEN}", "the token of slack:T0002 is used more than once"),
        (f"T0002={GLOBEX_TOKEN}", "entry 1 is not `installation=token`"),
    ],
)
async def test_a_malformed_token_list_stops_the_start_naming_the_entry_not_the_token(
    tmp_path: Path, tokens: str, says: str
) -> None:
    store = await SqliteStore.open(tmp_path / "bot.db")
    try:
        with pytest.raises(SettingsError) as refused:
            build_service(settings(tokens), load_policy("default"), store, clock=lambda: 0)
    finally:
        await store.close()
    assert says in str(refused.value)
    assert FIRST_TOKEN not in str(refused.value)
    assert "a-token" not in str(refused.value)
