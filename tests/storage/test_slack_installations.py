"""slack_sdk's installation and OAuth state stores on salesbot's store
(`adapters.slack.oauth_store`), once per store (memory, SQLite, PostgreSQL): an installed
workspace's bot is found again with its token, a token is never stored readable, a
workspace's uninstall deletes what it had and nothing of another's, and an OAuth state is
accepted once, only before it expires, and one nobody came back with is deleted once
expired, in bounded batches."""

from __future__ import annotations

import asyncio
import json

from slack_sdk.oauth.installation_store.models.installation import Installation

from adapters.slack.oauth_store import (
    BOT_PREFIX,
    INSTALLATION_PREFIX,
    STATE_PREFIX,
    STATE_TTL_MS,
    StoreInstallations,
    StoreOAuthStates,
    TokenSeal,
)
from storage.ports import Store

SECRET = "client-secret-1"
NOW_MS = 1_767_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = NOW_MS

    def __call__(self) -> int:
        return self.now


def installation(team: str, token: str, user: str = "U0ADMIN") -> Installation:
    return Installation(
        app_id="A0001",
        team_id=team,
        team_name=f"Team {team}",
        bot_token=token,
        bot_id="B" + team,
        bot_user_id="UBOT" + team,
        bot_scopes="chat:write,commands",
        user_id=user,
        user_token="xoxp-user-secret",
        user_scopes="",
        installed_at=NOW_MS / 1000,
    )


async def test_a_saved_workspace_is_found_again_with_its_bot_token(store: Store) -> None:
    installations = StoreInstallations(store, Clock(), TokenSeal([SECRET]))
    await installations.async_save(installation("T0001", "xoxb-one"))
    await installations.async_save(installation("T0002", "xoxb-two"))

    bot = await installations.async_find_bot(enterprise_id=None, team_id="T0002")
    assert bot is not None
    assert (bot.bot_token, bot.bot_user_id, bot.team_name) == (
        "xoxb-two",
        "UBOTT0002",
        "Team T0002",
    )
    assert list(bot.bot_scopes) == ["chat:write", "commands"]
    assert bot.installed_at == NOW_MS / 1000
    found = await installations.async_find_installation(enterprise_id=None, team_id="T0001")
    assert found is not None
    assert (found.bot_token, found.user_id, found.user_token) == (
        "xoxb-one",
        "U0ADMIN",
        "xoxp-user-secret",
    )
    by_user = await installations.async_find_installation(
        enterprise_id=None, team_id="T0001", user_id="U0ADMIN"
    )
    assert by_user is not None
    assert by_user.bot_token == "xoxb-one"
    assert await installations.async_find_bot(enterprise_id=None, team_id="T0009") is None


async def test_no_token_is_stored_readable_and_records_carry_schema_and_ms(store: Store) -> None:
    installations = StoreInstallations(store, Clock(), TokenSeal([SECRET]))
    await installations.async_save(installation("T0001", "xoxb-one"))

    for key in (BOT_PREFIX + "-:T0001", INSTALLATION_PREFIX + "-:T0001"):
        record = await store.get_state(key)
        assert record is not None
        stored = json.dumps(record)
        assert "xoxb-one" not in stored
        assert "xoxp-user-secret" not in stored
        assert record["schema"] == 1
        assert record["generator"].startswith("salesbot/")
        assert record["installed_at_ms"] == NOW_MS


async def test_tokens_open_only_with_the_client_secret(store: Store) -> None:
    await StoreInstallations(store, Clock(), TokenSeal([SECRET])).async_save(
        installation("T0001", "xoxb-one")
    )
    stranger = StoreInstallations(store, Clock(), TokenSeal(["another-secret"]))
    assert await stranger.async_find_bot(enterprise_id=None, team_id="T0001") is None


async def test_a_sealed_token_moved_to_another_workspace_does_not_open(store: Store) -> None:
    installations = StoreInstallations(store, Clock(), TokenSeal([SECRET]))
    await installations.async_save(installation("T0001", "xoxb-one"))
    record = await store.get_state(BOT_PREFIX + "-:T0001")
    assert record is not None
    await store.put_state(BOT_PREFIX + "-:T0666", {**record, "team_id": "T0666"}, NOW_MS)
    assert await installations.async_find_bot(enterprise_id=None, team_id="T0666") is None


async def test_a_rotated_client_secret_still_opens_and_reseals_older_tokens(store: Store) -> None:
    await StoreInstallations(store, Clock(), TokenSeal(["old-secret"])).async_save(
        installation("T0001", "xoxb-one")
    )
    before = await store.get_state(BOT_PREFIX + "-:T0001")
    rotated = StoreInstallations(store, Clock(), TokenSeal.from_setting("new-secret, old-secret"))
    bot = await rotated.async_find_bot(enterprise_id=None, team_id="T0001")
    assert bot is not None
    assert bot.bot_token == "xoxb-one"
    after = await store.get_state(BOT_PREFIX + "-:T0001")
    assert before is not None
    assert after is not None
    assert after["bot_token"] != before["bot_token"]
    # Resealed under the new secret alone: the old one may now be dropped.
    only_new = StoreInstallations(store, Clock(), TokenSeal(["new-secret"]))
    again = await only_new.async_find_bot(enterprise_id=None, team_id="T0001")
    assert again is not None
    assert again.bot_token == "xoxb-one"


async def test_deleting_a_workspace_removes_all_of_it_and_nothing_else(store: Store) -> None:
    changed: list[str | None] = []
    installations = StoreInstallations(
        store, Clock(), TokenSeal([SECRET]), on_change=changed.append
    )
    await installations.async_save(installation("T0001", "xoxb-one", user="U0A"))
    await installations.async_save(installation("T0001", "xoxb-one-again", user="U0B"))
    await installations.async_save(installation("T0002", "xoxb-two"))
    changed.clear()

    await installations.async_delete_all(enterprise_id=None, team_id="T0001")

    assert changed
    assert set(changed) == {"T0001"}
    assert await installations.async_find_bot(enterprise_id=None, team_id="T0001") is None
    for user in (None, "U0A", "U0B"):
        assert (
            await installations.async_find_installation(
                enterprise_id=None, team_id="T0001", user_id=user
            )
            is None
        )
    other = await installations.async_find_bot(enterprise_id=None, team_id="T0002")
    assert other is not None
    assert other.bot_token == "xoxb-two"


async def test_a_reinstall_replaces_the_bot_token(store: Store) -> None:
    installations = StoreInstallations(store, Clock(), TokenSeal([SECRET]))
    await installations.async_save(installation("T0001", "xoxb-first"))
    await installations.async_save(installation("T0001", "xoxb-second"))
    bot = await installations.async_find_bot(enterprise_id=None, team_id="T0001")
    assert bot is not None
    assert bot.bot_token == "xoxb-second"


async def test_an_org_wide_install_is_found_by_its_enterprise(store: Store) -> None:
    installations = StoreInstallations(store, Clock(), TokenSeal([SECRET]))
    org = Installation(
        enterprise_id="E0001",
        team_id=None,
        bot_token="xoxb-org",
        bot_id="BORG",
        bot_user_id="UORG",
        user_id="U0ADMIN",
        is_enterprise_install=True,
        installed_at=NOW_MS / 1000,
    )
    await installations.async_save(org)
    bot = await installations.async_find_bot(
        enterprise_id="E0001", team_id="T0042", is_enterprise_install=True
    )
    assert bot is not None
    assert bot.bot_token == "xoxb-org"
    await installations.async_delete_all(enterprise_id="E0001", team_id=None)
    assert (
        await installations.async_find_bot(
            enterprise_id="E0001", team_id=None, is_enterprise_install=True
        )
        is None
    )


async def test_a_state_is_accepted_once(store: Store) -> None:
    states = StoreOAuthStates(store, Clock())
    state = await states.async_issue()
    assert await states.async_consume(state)
    assert not await states.async_consume(state)


async def test_two_requests_with_one_state_accept_it_once(store: Store) -> None:
    states = StoreOAuthStates(store, Clock())
    state = await states.async_issue()
    answers = await asyncio.gather(*(states.async_consume(state) for _ in range(4)))
    assert sorted(answers) == [False, False, False, True]


async def test_an_expired_state_is_refused(store: Store) -> None:
    clock = Clock()
    states = StoreOAuthStates(store, clock)
    fresh, stale = await states.async_issue(), await states.async_issue()
    clock.now += STATE_TTL_MS - 1
    assert await states.async_consume(fresh)
    clock.now += 1
    assert not await states.async_consume(stale)


async def test_install_states_nobody_came_back_with_are_deleted_once_expired(
    store: Store,
) -> None:
    clock = Clock()
    states = StoreOAuthStates(store, clock)
    abandoned = [await states.async_issue() for _ in range(5)]
    clock.now += 60_000
    fresh = await states.async_issue()
    # Other adapter state, some of it under a key that sorts just after the states' prefix.
    await store.put_state("slack:oauth:state", {"kept": True}, NOW_MS - 10 * STATE_TTL_MS)
    await store.put_state("slack:oauth:statf", {"kept": True}, NOW_MS - 10 * STATE_TTL_MS)
    await store.put_state("slack:channels", {"kept": True}, NOW_MS - 10 * STATE_TTL_MS)

    clock.now = NOW_MS + STATE_TTL_MS - 1
    assert await states.forget_expired() == 0  # none expired yet
    clock.now = NOW_MS + STATE_TTL_MS
    # Bounded: two per store call, two calls per sweep; the rest at the next sweep.
    assert await states.forget_expired(batch=2, batches=2) == 4
    assert await states.forget_expired(batch=2, batches=2) == 1
    assert await states.forget_expired() == 0
    for state in abandoned:
        assert await store.get_state(STATE_PREFIX + state) is None
        assert not await states.async_consume(state)
    assert await states.async_consume(fresh)  # not expired: still accepted, once
    for key in ("slack:oauth:state", "slack:oauth:statf", "slack:channels"):
        assert await store.get_state(key) == {"kept": True}


async def test_unknown_or_malformed_states_are_refused(store: Store) -> None:
    states = StoreOAuthStates(store, Clock())
    for state in ("", "short", "x" * 40, "../../etc/passwd" * 3, "é" * 30, "a" * 5000):
        assert not await states.async_consume(state)


async def test_a_workspace_of_an_enterprise_grid_org_is_found_by_its_team_alone(
    store: Store,
) -> None:
    """Events and conversation ids name the team; the install named its org too."""
    installations = StoreInstallations(store, Clock(), TokenSeal([SECRET]))
    grid = installation("T0005", "xoxb-grid")
    grid.enterprise_id = "E0001"
    await installations.async_save(grid)
    for enterprise in (None, "E0001"):
        bot = await installations.async_find_bot(enterprise_id=enterprise, team_id="T0005")
        assert bot is not None
        assert (bot.bot_token, bot.enterprise_id) == ("xoxb-grid", "E0001")
    await installations.async_delete_all(enterprise_id="E0001", team_id="T0005")
    assert await installations.async_find_bot(enterprise_id=None, team_id="T0005") is None
