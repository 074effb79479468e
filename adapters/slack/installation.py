"""The Slack installation's state: whether the bot may post in its workspace, and why not.

RELIABILITY.md rule 9: every pause is scoped to what caused it.

- `tokens_revoked` lists, per kind of token, the *user ids* whose tokens were revoked
  (https://api.slack.com/events/tokens_revoked): `oauth` are user tokens (xoxp-), `bot` the
  bot user's token (xoxb-). The bot posts with its bot token only, so a revoked user token
  changes nothing here. A revoked bot token (`bot` names this bot's user id or bot id; when
  the identity was never learned, any entry: an app has one bot user per workspace) or
  `app_uninstalled` pauses the installation of the event's workspace (`team_id`).
- A bot token refused by Slack while sending (`token_revoked`, `invalid_auth`, …, see
  `AUTH_ERRORS`) or by `auth.test` pauses it as well: nothing can be posted with it, so the
  replies are kept instead of being dead-lettered one by one.
- The pause is lifted by a successful `auth.test` with the configured token: at start,
  every `CHECK_EVERY_MS` while paused, and at once (at most every `RECHECK_MS`) when a signed
  request arrives from the paused workspace. An event by itself does not lift it: Slack's
  events carry no token, and a reinstall issues a new bot token, which only works once it is
  configured (`SLACK_BOT_TOKEN`, then a restart: the check at start lifts the pause).

The pause is kept in the store's adapter state under `slack:installation:<team>` (so a
restart is still paused), and `slack:installation` remembers which workspace and bot user
the configured token belongs to (so a restart with a revoked token, when `auth.test`
cannot say, still knows). Pausing and lifting are logged once each, with the workspace id
and the reason; never a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

KEY_PREFIX = "slack:installation:"
IDENTITY_KEY = "slack:installation"
UNINSTALLED = "app_uninstalled"
CHECK_EVERY_MS = 60_000
"""How often `auth.test` is asked while the installation is paused (by the injected clock)."""
RECHECK_MS = 5_000
"""The least gap between two checks prompted by requests from a paused workspace."""
START_CHECK_S = 5
"""How long a start waits for `auth.test` when it finds the installation paused."""
TICK_S = 1.0
"""How often (wall time) the background loop looks whether a check is due."""

AUTH_ERRORS = frozenset(
    {"token_revoked", "account_inactive", "invalid_auth", "not_authed", "token_expired"}
)
"""Slack's answers meaning the bot token does not work (revoked, the app uninstalled, a wrong
token): nothing can be posted until it does."""


class StateBook(Protocol):
    """The store's adapter state (`storage.ports.AdapterStateStore`), as used here."""

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None: ...

    async def get_state(self, key: str) -> dict[str, Any] | None: ...


class Pause(NamedTuple):
    reason: str
    since_ms: int


class SlackInstallation:
    """The pause state of the installation the configured bot token belongs to (and of any
    other workspace an event named). `held_because()` is what the sender asks before each
    send; `tokens_revoked`, `uninstalled` and `heard_from` are what the endpoint reports."""

    def __init__(
        self,
        client: AsyncWebClient,
        states: StateBook,
        clock: Callable[[], int],
        *,
        check_every_ms: int = CHECK_EVERY_MS,
        recheck_ms: int = RECHECK_MS,
        tick_s: float = TICK_S,
        configured: bool = True,
    ) -> None:
        self._client = client
        # False: no SLACK_BOT_TOKEN (only workspaces installed through Add to Slack, whose
        # uninstall deletes their installation): there is no configured token to pause.
        self._configured = configured
        self._states = states
        self._clock = clock
        self._check_every_ms = check_every_ms
        self._recheck_ms = recheck_ms
        self.tick_s = tick_s
        self._team: str | None = None  # the configured token's workspace, once known
        self._bot_ids: frozenset[str] = frozenset()  # its bot user id and bot id
        self._pauses: dict[str | None, Pause] = {}
        self._last_check_ms: int | None = None
        self._checking: asyncio.Task[None] | None = None

    # --- what the rest of the bot asks ----------------------------------------------------

    @property
    def status(self) -> str:
        """For `/readyz`: "ok", or "paused: <reason>"."""
        pause = self._pauses.get(self._team)
        return "ok" if pause is None else f"paused: {pause.reason}"

    def held_because(self) -> str | None:
        """Why replies must wait (None: they may go). Makes a due check start."""
        pause = self._pauses.get(self._team)
        if pause is not None and self._due(self._check_every_ms):
            self._kick()
        return None if pause is None else pause.reason

    async def refused(self, error: str) -> bool:
        """A send was refused with `error`: True (and the installation paused) when it means
        the bot token does not work, so the reply is kept rather than dead-lettered."""
        if error not in AUTH_ERRORS or not self._configured:
            return False
        await self._pause(self._team, f"Slack answered {error}")
        return True

    # --- what the endpoint reports ---------------------------------------------------------

    async def tokens_revoked(self, team: str | None, *, bot: Iterable[str], users: int) -> None:
        if not self._configured:
            log.info("slack tokens_revoked in %s, a workspace not installed here", team or "?")
            return
        bot_users = frozenset(bot)
        if not bot_users:
            log.info(
                "slack tokens_revoked in %s: %d user token(s), not the bot's: nothing paused",
                team or "?",
                users,
            )
            return
        if self._bot_ids and not bot_users & self._bot_ids:
            log.info(
                "slack tokens_revoked in %s names another bot user: nothing paused", team or "?"
            )
            return
        await self._pause(team or self._team, "bot token revoked")

    async def uninstalled(self, team: str | None) -> None:
        if not self._configured:
            log.info("slack app_uninstalled in %s, a workspace not installed here", team or "?")
            return
        await self._pause(team or self._team, UNINSTALLED)

    async def installed(self, installation: Installation) -> None:
        """A workspace installed the app through "Add to Slack" (`oauth.py`): a pause of
        that workspace (its uninstall) is over, whatever token the next send uses."""
        if installation.team_id:
            await self._lift(installation.team_id, "installed again through Add to Slack")

    def heard_from(self, team: object) -> None:
        """A signed request from `team`: if that installation is paused, Slack is talking to
        the app again (a reinstall?), so check the token now rather than in a minute."""
        if not isinstance(team, str) or team != self._team or team not in self._pauses:
            return
        if self._due(self._recheck_ms):
            self._kick()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Read what was persisted (the pause survives a restart). When it says paused, the
        token is checked at once (for at most `START_CHECK_S`), so a restart after the token
        was fixed sends the kept replies without waiting; otherwise the check at start runs
        in the background (`run`), and a slow Slack delays nothing."""
        if not self._configured:
            return
        await self._load()
        if self._team in self._pauses:
            try:
                async with asyncio.timeout(START_CHECK_S):
                    await self.check()
            except TimeoutError:
                log.warning("slack auth.test did not answer within %d s at start", START_CHECK_S)

    async def _load(self) -> None:
        identity = await self._states.get_state(IDENTITY_KEY) or {}
        team = identity.get("team_id")
        if not isinstance(team, str) or not team:
            return
        self._team = team
        self._bot_ids = frozenset(
            str(identity[k]) for k in ("bot_user_id", "bot_id") if identity.get(k)
        )
        record = await self._states.get_state(KEY_PREFIX + team) or {}
        reason = record.get("paused")
        if isinstance(reason, str) and reason:
            since = record.get("since_ms")
            self._pauses[team] = Pause(reason, since if isinstance(since, int) else self._clock())
            log.warning(
                "slack installation %s is still paused (%s); replies are kept in the outbox "
                "until auth.test succeeds",
                team,
                reason,
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Check at once, then every `check_every_ms` while paused, until `stop` is set."""
        while not stop.is_set():
            self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.tick_s)

    def tick(self) -> None:
        """One turn of `run`: start a check if none was made yet, or if paused and due by
        the injected clock."""
        if not self._configured:
            return
        if self._last_check_ms is None or (
            self._team in self._pauses and self._due(self._check_every_ms)
        ):
            self._kick()

    async def checked(self) -> None:
        """Wait for the check under way, if any: what it decided is then in effect."""
        if self._checking is not None:
            await self._checking

    async def close(self) -> None:
        if self._checking is not None and not self._checking.done():
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checking

    async def check(self) -> None:
        """`auth.test` with the configured token: success lifts the pause, an authentication
        error pauses; anything else (Slack unreachable, 5xx, 429) changes nothing."""
        self._last_check_ms = self._clock()
        try:
            answer: Any = await self._client.auth_test()
        except SlackApiError as exc:
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            if isinstance(error, str) and error in AUTH_ERRORS:
                await self._pause(self._team, f"auth.test answered {error}")
            else:
                log.warning(
                    "slack auth.test failed (%s, HTTP %s); the installation's state is unchanged",
                    error or "no error code",
                    exc.response.status_code,
                )
            return
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning(
                "slack auth.test failed (%s); the installation's state is unchanged",
                type(exc).__name__,
            )
            return
        await self._learn(answer)
        await self._lift(self._team, "auth.test succeeded")

    # --- internals -------------------------------------------------------------------------

    def _due(self, gap_ms: int) -> bool:
        last = self._last_check_ms
        return last is None or self._clock() - last >= gap_ms

    def _kick(self) -> None:
        """Start a check in the background unless one is running."""
        if self._checking is None or self._checking.done():
            self._last_check_ms = self._clock()  # due again only after the gap
            self._checking = asyncio.create_task(self._safe_check(), name="slack-auth-test")

    async def _safe_check(self) -> None:
        try:
            await self.check()
        except Exception as exc:  # a check that fails unexpectedly is tried again later
            log.error("slack installation check failed (%s)", type(exc).__name__)

    async def _learn(self, answer: Any) -> None:
        """The token's workspace and bot identity, remembered for the next start."""
        team = str(answer.get("team_id") or "") or None
        bot_user, bot_id = answer.get("user_id"), answer.get("bot_id")
        ids = frozenset(str(i) for i in (bot_user, bot_id) if i)
        if team is None:
            return
        if None in self._pauses:  # paused before the workspace was known: it is this one
            self._pauses.setdefault(team, self._pauses.pop(None))
        if team == self._team and ids == self._bot_ids:
            return
        self._team, self._bot_ids = team, ids
        await self._states.put_state(
            IDENTITY_KEY,
            {"team_id": team, "bot_user_id": bot_user, "bot_id": bot_id},
            self._clock(),
        )

    async def _pause(self, team: str | None, reason: str) -> None:
        if self._team is None and team is not None:
            # Never checked yet: a single-workspace app's events come from its workspace.
            self._team = team
        now = self._clock()
        known = self._pauses.get(team)
        if known is not None:
            if reason == UNINSTALLED and known.reason != reason:
                # Slack sends tokens_revoked, then app_uninstalled: say the bigger thing.
                self._pauses[team] = known._replace(reason=reason)
                await self._persist(team, self._pauses[team], now)
                log.info("slack installation %s: paused because of %s", team or "?", reason)
            return
        self._pauses[team] = Pause(reason, now)
        await self._persist(team, self._pauses[team], now)
        ours = team == self._team
        log.warning(
            "slack installation %s paused: %s; %s",
            team or "(workspace not yet known)",
            reason,
            "replies are kept in the outbox until auth.test succeeds (checked every "
            f"{self._check_every_ms // 1000} s)"
            if ours
            else "not the configured token's workspace: replies are not affected",
        )

    async def _persist(self, team: str | None, pause: Pause | None, now: int) -> None:
        """Written on each change only. A workspace not yet known is not written: the check
        at the next start finds the same failing token again."""
        if team is None:
            return
        value = {"paused": None} if pause is None else {"paused": pause.reason}
        await self._states.put_state(
            KEY_PREFIX + team, {**value, "since_ms": now if pause is None else pause.since_ms}, now
        )

    async def _lift(self, team: str | None, how: str) -> None:
        pause = self._pauses.pop(team, None)
        if pause is None:
            return
        now = self._clock()
        await self._persist(team, None, now)
        log.warning(
            "slack installation %s resumed: %s (paused %d s: %s); kept replies go out in order",
            team or "?",
            how,
            max(0, now - pause.since_ms) // 1000,
            pause.reason,
        )
