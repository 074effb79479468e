"""The Slack installation's pause state, with a scripted `auth.test` and the memory store:
what pauses it, what does not, what lifts it, and what survives a restart."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, cast

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.models.installation import (
    Installation as SdkInstallation,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack.installation import (
    CHECK_EVERY_MS,
    IDENTITY_KEY,
    KEY_PREFIX,
    RECHECK_MS,
    SlackInstallation,
)
from storage.memory import MemoryStore

TEAM, BOT, BOT_ID = "T0001", "UBOT", "BBOT"
OK = {"ok": True, "team_id": TEAM, "user_id": BOT, "bot_id": BOT_ID}


def slack_error(error: str | None, status: int = 200) -> SlackApiError:
    data: dict[str, Any] = {"ok": False} | ({"error": error} if error else {})
    response = AsyncSlackResponse(
        client=cast(AsyncWebClient, None),  # not needed to read an answer
        http_verb="POST",
        api_url="http://127.0.0.1/api/auth.test",
        req_args={},
        data=data,
        headers={},
        status_code=status,
    )
    return SlackApiError("auth.test failed", response)  # type: ignore[no-untyped-call]


class AuthTest:
    """`auth.test` answering from a script (then OK); counts the calls."""

    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.answers: deque[dict[str, Any] | Exception] = deque(answers)
        self.calls = 0

    async def auth_test(self) -> dict[str, Any]:
        self.calls += 1
        answer = self.answers.popleft() if self.answers else OK
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.ms = 1_790_000_000_000

    def __call__(self) -> int:
        return self.ms


def installation(
    store: MemoryStore, client: AuthTest, clock: Clock | None = None
) -> SlackInstallation:
    return SlackInstallation(cast(AsyncWebClient, client), store, clock or Clock())


@pytest.fixture
async def store() -> MemoryStore:
    return MemoryStore()


async def started(store: MemoryStore, client: AuthTest, clock: Clock) -> SlackInstallation:
    """Started, with the check at start done (as the background loop would)."""
    slack = installation(store, client, clock)
    await slack.start()
    if client.calls == 0:
        await slack.check()
    return slack


async def test_a_revoked_user_token_pauses_nothing_and_writes_nothing(store: MemoryStore) -> None:
    slack = await started(store, AuthTest(), Clock())
    await slack.tokens_revoked(TEAM, bot=[], users=3)
    assert slack.status == "ok"
    assert slack.held_because() is None
    assert await store.get_state(KEY_PREFIX + TEAM) is None


async def test_a_revoked_bot_token_pauses_and_is_persisted(store: MemoryStore) -> None:
    clock = Clock()
    slack = await started(store, AuthTest(), clock)
    await slack.tokens_revoked(TEAM, bot=[BOT], users=1)
    assert slack.status == "paused: bot token revoked"
    assert slack.held_because() == "bot token revoked"
    assert await store.get_state(KEY_PREFIX + TEAM) == {
        "paused": "bot token revoked",
        "since_ms": clock.ms,
    }
    assert await store.get_state(IDENTITY_KEY) == {
        "team_id": TEAM,
        "bot_user_id": BOT,
        "bot_id": BOT_ID,
    }


async def test_the_bot_id_counts_as_well_as_the_bot_user_id(store: MemoryStore) -> None:
    slack = await started(store, AuthTest(), Clock())
    await slack.tokens_revoked(TEAM, bot=[BOT_ID], users=0)
    assert slack.status == "paused: bot token revoked"


async def test_another_bot_users_token_pauses_nothing(store: MemoryStore) -> None:
    slack = await started(store, AuthTest(), Clock())
    await slack.tokens_revoked(TEAM, bot=["UOTHER"], users=0)
    assert slack.status == "ok"


async def test_before_the_identity_is_known_any_bot_token_of_the_workspace_is_ours(
    store: MemoryStore,
) -> None:
    """An app has one bot user per workspace: the entry can only be this bot's."""
    slack = installation(store, AuthTest(aiohttp.ClientConnectionError()))
    await slack.start()
    await slack.check()  # Slack unreachable: identity unknown
    await slack.tokens_revoked(TEAM, bot=["UWHOEVER"], users=0)
    assert slack.status == "paused: bot token revoked"
    assert (await store.get_state(KEY_PREFIX + TEAM) or {})["paused"] == "bot token revoked"


async def test_an_uninstall_in_another_workspace_is_recorded_there_only(
    store: MemoryStore,
) -> None:
    slack = await started(store, AuthTest(), Clock())
    await slack.uninstalled("T0OTHER")
    assert slack.status == "ok"
    assert (await store.get_state(KEY_PREFIX + "T0OTHER") or {})["paused"] == "app_uninstalled"
    assert await store.get_state(KEY_PREFIX + TEAM) is None


async def test_an_uninstall_logs_one_pause_and_names_the_uninstall(
    store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    slack = await started(store, AuthTest(), Clock())
    with caplog.at_level(logging.INFO, logger="adapters.slack.installation"):
        await slack.tokens_revoked(TEAM, bot=[BOT], users=0)  # Slack sends both, in this order
        await slack.uninstalled(TEAM)
        await slack.uninstalled(TEAM)  # a retried delivery
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "slack installation T0001 paused: bot token revoked; replies are kept in the outbox "
        "until auth.test succeeds (checked every 60 s)"
    ]
    assert slack.status == "paused: app_uninstalled"
    assert (await store.get_state(KEY_PREFIX + TEAM) or {})["paused"] == "app_uninstalled"


@pytest.mark.parametrize(
    "failure",
    [
        aiohttp.ClientConnectionError(),
        TimeoutError(),
        slack_error(None, status=503),
        slack_error("ratelimited", status=429),
        slack_error("internal_error"),
    ],
    ids=["unreachable", "timeout", "5xx", "429", "internal_error"],
)
async def test_a_check_that_cannot_tell_changes_nothing(
    store: MemoryStore, failure: Exception
) -> None:
    clock = Clock()
    client = AuthTest(OK, failure)
    slack = await started(store, client, clock)
    await slack.uninstalled(TEAM)
    await slack.check()
    assert slack.status == "paused: app_uninstalled"
    await slack.check()  # now OK
    assert slack.status == "ok"


async def test_a_check_answering_an_authentication_error_pauses(store: MemoryStore) -> None:
    slack = await started(store, AuthTest(OK, slack_error("invalid_auth")), Clock())
    assert slack.status == "ok"
    await slack.check()
    assert slack.status == "paused: auth.test answered invalid_auth"


async def test_a_restart_is_still_paused_until_auth_test_succeeds(store: MemoryStore) -> None:
    clock = Clock()
    first = await started(store, AuthTest(), clock)
    await first.uninstalled(TEAM)

    revoked = AuthTest(slack_error("token_revoked"))
    again = installation(store, revoked, clock)
    await again.start()  # paused on file: checked at once
    assert revoked.calls == 1
    assert again.status == "paused: app_uninstalled"

    clock.ms += CHECK_EVERY_MS
    third = installation(store, AuthTest(), clock)
    await third.start()
    assert third.status == "ok"
    assert (await store.get_state(KEY_PREFIX + TEAM) or {})["paused"] is None
    fourth = installation(store, AuthTest(slack_error("token_revoked")), clock)
    await fourth.start()  # the lift was persisted: not paused on file, checked later
    assert fourth.status == "ok"


async def test_a_refusal_pauses_only_when_it_means_the_token_does_not_work(
    store: MemoryStore,
) -> None:
    slack = await started(store, AuthTest(), Clock())
    assert not await slack.refused("not_in_channel")
    assert not await slack.refused("missing_scope")
    assert slack.status == "ok"
    assert await slack.refused("account_inactive")
    assert slack.status == "paused: Slack answered account_inactive"


async def test_while_paused_the_token_is_checked_when_due_and_when_the_workspace_speaks(
    store: MemoryStore,
) -> None:
    clock = Clock()
    client = AuthTest(OK, slack_error("token_revoked"), slack_error("token_revoked"))
    slack = await started(store, client, clock)
    await slack.uninstalled(TEAM)
    slack.heard_from(TEAM)  # just checked: not yet
    assert slack.held_because() == "app_uninstalled"
    await slack.checked()
    assert client.calls == 1

    clock.ms += RECHECK_MS
    slack.heard_from("T0OTHER")  # another workspace: not ours to check
    slack.heard_from(TEAM)
    await slack.checked()
    assert client.calls == 2
    slack.heard_from(TEAM)  # checked again just now: not again
    await slack.checked()
    assert client.calls == 2
    assert slack.status == "paused: app_uninstalled"

    clock.ms += CHECK_EVERY_MS
    assert slack.held_because() == "app_uninstalled"  # the sender's question starts a check
    await slack.checked()
    assert client.calls == 3
    clock.ms += CHECK_EVERY_MS
    slack.held_because()
    await slack.checked()
    assert slack.status == "ok"
    assert client.calls == 4
    await slack.close()


async def test_the_loop_checks_at_start_and_every_interval_while_paused(
    store: MemoryStore,
) -> None:
    clock = Clock()
    client = AuthTest(OK, slack_error("token_revoked"))
    slack = installation(store, client, clock)
    await slack.start()
    slack.tick()  # the first turn checks at once
    await slack.checked()
    assert client.calls == 1
    await slack.uninstalled(TEAM)
    slack.tick()
    await slack.checked()
    assert client.calls == 1  # nothing due yet by the injected clock
    clock.ms += CHECK_EVERY_MS
    slack.tick()
    await slack.checked()
    assert client.calls == 2
    assert slack.status == "paused: app_uninstalled"  # still refused
    clock.ms += CHECK_EVERY_MS
    slack.tick()
    await slack.checked()
    assert slack.status == "ok"
    clock.ms += CHECK_EVERY_MS
    slack.tick()
    await slack.checked()
    assert client.calls == 3  # not paused: no more checks
    await slack.close()


async def test_the_running_loop_checks_the_token_at_once_and_stops_when_told(
    store: MemoryStore,
) -> None:
    stop = asyncio.Event()

    class StopsWhenAsked(AuthTest):
        async def auth_test(self) -> dict[str, Any]:
            stop.set()  # the loop's first turn asked: end it after this check
            return await super().auth_test()

    client = StopsWhenAsked(slack_error("token_revoked"))
    slack = installation(store, client, Clock())
    await asyncio.wait_for(slack.run(stop), 5)  # returns once stopped
    await slack.checked()
    assert client.calls == 1
    assert slack.status == "paused: auth.test answered token_revoked"


async def test_a_workspace_installed_again_through_add_to_slack_is_no_longer_paused(
    store: MemoryStore,
) -> None:
    clock = Clock()
    slack = await started(store, AuthTest(), clock)
    await slack.uninstalled(TEAM)
    assert slack.status == "paused: app_uninstalled"
    reinstall = SdkInstallation(team_id=TEAM, bot_token="xoxb-new", user_id="U0ADMIN")
    await slack.installed(reinstall)
    assert slack.status == "ok"
    assert slack.held_because() is None
    assert await store.get_state(KEY_PREFIX + TEAM) == {"paused": None, "since_ms": clock.ms}


async def test_without_a_configured_token_nothing_is_checked_or_paused(store: MemoryStore) -> None:
    client = AuthTest()
    slack = SlackInstallation(cast(AsyncWebClient, client), store, Clock(), configured=False)
    await slack.start()
    slack.tick()
    await slack.checked()
    await slack.uninstalled(TEAM)
    await slack.tokens_revoked(TEAM, bot=[BOT], users=0)
    assert not await slack.refused("token_revoked")  # a send is refused, never held
    assert client.calls == 0
    assert slack.status == "ok"
    assert slack.held_because() is None
    assert await store.get_state(KEY_PREFIX + TEAM) is None
