"""Each workspace's handoff channel, chosen by an admin (`SALESBOT_ADMINS`) with
`/salesbot setup handoff #channel`, through the real server, the SQLite store and a fake
Slack on 127.0.0.1: the second workspace's tickets go to the channel its admin chose, posted
by its own bot, while the first workspace's still go to the configured channel; a rep who
is no admin is refused and nothing changes; the choice survives a restart; the audit says
who chose it."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from adapters.slack.channels import KEY
from domain.events import RolesSet
from storage.sqlite import SqliteStore
from tests.e2e.harness import eventually, outbox_drained
from tests.fakes.slack_api import FakeSlackApi
from tests.slack.test_workspaces import (
    FIRST,
    FIRST_CHANNEL,
    SECOND,
    SECOND_CHANNEL,
    SECOND_TOKEN,
    Site,
)
from tests.slack.test_workspaces import serving as workspaces_serving

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

CONFIGURED = "C0HANDOFF"
"""`SLACK_HANDOFF_CHANNEL`: a channel of the first workspace."""
DESK = "C0GLOBEXDESK"
INSTALLER = "U0ADMIN"
"""Who added the app to the second workspace (the fake's grant)."""
"""The channel the second workspace's admin chooses."""
ADMIN, REP, AUDITOR = "U0GLOBEXADMIN", "U0GLOBEXREP", "U0GLOBEXAUDIT"
REFUND = "Can we cancel the contract and get a refund?"
_TRIGGERS = itertools.count(1)


@asynccontextmanager
async def serving(
    api: FakeSlackApi, path: Path, *, auditors: tuple[str, ...] = (AUDITOR,), **more: Any
) -> AsyncIterator[Site]:
    """Two workspaces' server (`test_workspaces.serving`) with the configured handoff channel,
    an admin and auditors; `more`: further settings."""
    async with workspaces_serving(
        api,
        path,
        slack_handoff_channel=CONFIGURED,
        salesbot_admins=(ADMIN,),
        salesbot_auditors=auditors,
        **more,
    ) as site:
        yield site


@pytest.fixture
async def api() -> AsyncIterator[FakeSlackApi]:
    async with FakeSlackApi(token="xoxb-test", team_id=FIRST) as api:
        api.grant("code-globex", token=SECOND_TOKEN, team_id=SECOND, team="Globex")
        for user in (ADMIN, REP, AUDITOR):
            api.add_user(user, team_id=SECOND)
        yield api


async def slash(
    site: Site,
    user: str,
    command: str,
    text: str,
    *,
    team: str = SECOND,
    channel: str = SECOND_CHANNEL,
) -> str:
    """Run a slash command in `team`'s `channel` (the second workspace's by default);
    returns its response URL."""
    url = site.api.response_url(channel, user)
    form = {
        "command": command,
        "text": text,
        "user_id": user,
        "user_name": user.lower(),
        "channel_id": channel,
        "team_id": team,
        "trigger_id": f"trigger-{next(_TRIGGERS)}",
        "response_url": url,
    }
    response = await site.signed_post(urlencode(form).encode())
    assert response.status == 200
    assert await response.read() == b""  # taken: the answer follows through the outbox
    return url


def told(site: Site, url: str) -> str:
    """Everything the person who ran a command was told privately."""
    bodies = site.api.response_posts(url) + site.api.ephemerals(SECOND_CHANNEL)
    return "\n".join(json.dumps(body) for body in bodies)


def tickets(site: Site, channel: str) -> list[dict[str, Any]]:
    return [m for m in site.bot_posts(channel) if "refund" in json.dumps(m)]


async def test_an_admin_moves_their_workspaces_handoff_channel_and_only_theirs(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    async with serving(api, tmp_path / "bot.db") as site:
        await site.install("code-globex")
        url = await slash(site, ADMIN, "/salesbot", f"setup handoff <#{DESK}|globex-desk>")
        await eventually(lambda: "#globex-desk" in told(site, url), "the admin's answer")

        await site.prospect_says(SECOND, SECOND_CHANNEL, REFUND)
        await site.prospect_says(FIRST, FIRST_CHANNEL, REFUND)
        await eventually(lambda: bool(tickets(site, DESK)), "the second's ticket")
        await eventually(lambda: bool(tickets(site, CONFIGURED)), "the first's ticket")

    (second,) = tickets(site, DESK)
    (first,) = tickets(site, CONFIGURED)
    assert (second["team"], second["user"]) == (SECOND, "UBOTT0002")  # its own bot
    assert (first["team"], first["user"]) == (FIRST, api.bot_user_id)


async def test_a_rep_who_is_no_admin_is_refused_and_nothing_changes(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    async with serving(api, tmp_path / "bot.db") as site:
        await site.install("code-globex")
        url = await slash(site, REP, "/salesbot", f"setup handoff <#{DESK}|globex-desk>")
        await eventually(lambda: "only admins" in told(site, url), "the refusal")
        document = await site.store.get_state(KEY)
        assert document is not None
        assert set(document["workspaces"][SECOND]) == {"installer"}  # no channel chosen

        await site.prospect_says(SECOND, SECOND_CHANNEL, REFUND)
        # No channel chosen: the ticket goes to whoever added the app, in direct messages,
        # never to the first workspace's configured channel.
        await eventually(lambda: bool(tickets(site, INSTALLER)), "the ticket")
        events = await site.store.load(f"slack:{SECOND}:{SECOND_CHANNEL}")
    assert tickets(site, DESK) == []
    assert tickets(site, CONFIGURED) == []
    (ticket,) = tickets(site, INSTALLER)
    assert (ticket["team"], ticket["user"]) == (SECOND, "UBOTT0002")  # by its own bot
    refused = [env.event for env in events if env.event.type == "command_refused"]
    assert [(e.command, e.by, e.reason) for e in refused] == [("setup", REP, "not_admin")]
    assert not [env for env in events if env.event.type == "channel_set"]


async def test_the_choice_survives_a_restart_and_the_audit_says_who_made_it(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    path = tmp_path / "bot.db"
    async with serving(api, path) as site:
        await site.install("code-globex")
        url = await slash(site, ADMIN, "/setup", f"handoff <#{DESK}|globex-desk>")
        await eventually(lambda: "#globex-desk" in told(site, url), "the admin's answer")

    async with serving(api, path) as site:
        await site.prospect_says(SECOND, SECOND_CHANNEL, REFUND)
        await eventually(lambda: bool(tickets(site, DESK)), "the ticket after the restart")
        conversation = f"slack:{SECOND}:{SECOND_CHANNEL}"
        url = await slash(site, AUDITOR, "/audit", conversation)
        await eventually(lambda: AUDITOR in told(site, url), "the audit")
    assert tickets(site, CONFIGURED) == []
    audit = told(site, url)
    assert f"{ADMIN} chose #globex-desk as the handoff channel of slack:{SECOND}" in audit


async def test_a_choice_committed_but_not_written_down_is_in_force_after_a_restart(
    api: FakeSlackApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store takes the commit but not the adapter's write of the choice (a crash between
    # the two looks the same to the next start): the admin is answered all the same.
    put_state = SqliteStore.put_state

    async def refusing(self: SqliteStore, key: str, value: Any, at_ms: int) -> None:
        if key == KEY:
            raise OSError("disk full")
        await put_state(self, key, value, at_ms)

    path = tmp_path / "bot.db"
    monkeypatch.setattr(SqliteStore, "put_state", refusing)
    async with serving(api, path) as site:
        await site.install("code-globex")
        url = await slash(site, ADMIN, "/salesbot", f"setup handoff <#{DESK}|globex-desk>")
        await eventually(lambda: "#globex-desk" in told(site, url), "the admin's answer")
        assert await site.store.get_state(KEY) is None

    monkeypatch.setattr(SqliteStore, "put_state", put_state)
    async with serving(api, path) as site:
        await outbox_drained(site.client)  # the outbox applied the choice at start
        document = await site.store.get_state(KEY)
        assert document is not None
        assert document["workspaces"][SECOND]["handoff"]["channel"] == DESK
        await site.prospect_says(SECOND, SECOND_CHANNEL, REFUND)
        await eventually(lambda: bool(tickets(site, DESK)), "the ticket after the restart")
    assert tickets(site, CONFIGURED) == []


async def test_a_workspaces_installer_sets_its_own_role_lists_and_only_its_own(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    installer = "U0GLOBEXOWNER"
    api.grant("code-owner", token=SECOND_TOKEN, team_id=SECOND, team="Globex", installer=installer)
    api.add_user(installer, team_id=SECOND)
    conversation = f"slack:{SECOND}:{SECOND_CHANNEL}"
    async with serving(api, tmp_path / "bot.db") as site:
        await site.install("code-owner")
        # Who added the app is an admin of the workspace (SALESBOT_ADMINS does not name them).
        url = await slash(site, installer, "/salesbot", f"setup auditors <@{REP}|riley>")
        await eventually(
            lambda: "auditors of this workspace are now riley" in told(site, url), "the answer"
        )

        # The rep reads audits there now; the configured auditor no longer does, there.
        url = await slash(site, REP, "/audit", conversation)
        await eventually(lambda: "made riley the auditors" in told(site, url), "the audit")
        url = await slash(site, AUDITOR, "/audit", conversation)
        await eventually(lambda: "limited to auditors" in told(site, url), "the refusal")

        # Once the admins list is set, it is the whole list: the installer is no admin now.
        url = await slash(site, installer, "/salesbot", f"setup admins <@{REP}|riley>")
        await eventually(
            lambda: "admins of this workspace are now riley" in told(site, url), "the answer"
        )
        url = await slash(site, installer, "/salesbot", f"setup handoff <#{DESK}|globex-desk>")
        await eventually(lambda: "only admins" in told(site, url), "the installer's refusal")
        events = await site.store.load(conversation)
    assert [
        (env.event.role, [u.id for u in env.event.users], env.event.by)
        for env in events
        if isinstance(env.event, RolesSet)
    ] == [("auditors", [REP], installer), ("admins", [REP], installer)]


async def test_an_installed_workspace_s_ticket_never_lands_in_the_first_workspace_s_channel(
    api: FakeSlackApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net under the router: when the second workspace has neither a chosen
    channel nor a noted installer (the store refused that write at install), its ticket is
    refused rather than posted in the first workspace's configured channel."""
    put_state = SqliteStore.put_state

    async def refusing(self: SqliteStore, key: str, value: Any, at_ms: int) -> None:
        if key == KEY:
            raise OSError("disk full")
        await put_state(self, key, value, at_ms)

    monkeypatch.setattr(SqliteStore, "put_state", refusing)
    async with serving(api, tmp_path / "bot.db") as site:
        await site.install("code-globex")
        await site.prospect_says(SECOND, SECOND_CHANNEL, REFUND)
        await site.prospect_says(FIRST, FIRST_CHANNEL, REFUND)
        await eventually(lambda: bool(tickets(site, CONFIGURED)), "the first's ticket")
        await outbox_drained(site.client)  # the second's ticket was refused, not retried
        refused = [
            item
            for item in await site.store.dead_letters()
            if item.channel == f"slack:{CONFIGURED}" and SECOND in item.conversation_id
        ]
    assert refused
    (first,) = tickets(site, CONFIGURED)  # the first workspace's own, nothing of the second's
    assert first["team"] == FIRST
    assert tickets(site, INSTALLER) == []
