"""slack_sdk's `AsyncInstallationStore` and `AsyncOAuthStateStore` on salesbot's own store.

Why on the store and not on one of slack_sdk's own stores (SQLite3, SQLAlchemy, files):
salesbot already has one store per deployment — SQLite, PostgreSQL or memory, with the
same contract suite — and several replicas share it. The installations live in its
adapter state (`storage.ports.AdapterStateStore`: small JSON documents by key), so they
are on PostgreSQL when the events are, are copied by `salesbot migrate`, and need no
table or migration of their own.

Keys (`{E}:{T}` is `-:{team}` for a workspace, also inside an Enterprise Grid org, and
`{enterprise}:-` for an org-wide install; `workspace_key`):

    slack:oauth:bot:{E}:{T}                   the workspace's bot (what sending needs)
    slack:oauth:installation:{E}:{T}          the workspace's latest installation
    slack:oauth:installation:{E}:{T}:{U}      the latest installation by installer {U}
    slack:oauth:state:{state}                 an OAuth state issued and not yet consumed

Every record carries `schema` and `generator`; times are integer epoch milliseconds
(`installed_at_ms`, `bot_token_expires_at_ms`), converted to slack_sdk's seconds at the
edge.

Tokens are secrets. They are never logged, and they are stored *sealed*: AES-256-GCM
(`cryptography`, as `storage.sealing` uses for prospects' data) under a key derived with
HKDF-SHA256 from the Slack app's client secret (`SLACK_CLIENT_SECRET`), with the record's
key as associated data (a sealed token copied under another workspace does not open). So
a copy of the database — a backup, a `salesbot migrate` source, a support dump — holds no
usable token without the deployment's configuration. `SLACK_CLIENT_SECRET` may list
older secrets after the current one ("new,old"), as `SALESBOT_ACTION_SECRET` does: tokens
sealed under an older one still open and are sealed again under the current one when
next read, so regenerating the client secret in Slack's settings costs no reinstall.
Unlike prospects' data, tokens are not sealed with a key kept in the store: that would
protect nothing here.

States are single-use and expire (`STATE_TTL_MS`, as bolt's default 600 s): consuming
one deletes it, and only the caller whose delete removed it gets True, so two replicas
handed the same redirect cannot both accept it. A state nobody came back with (an install
link opened and abandoned) is deleted once expired by `forget_expired`, which the Slack
surface runs at start and every minute (`bot/surfaces/slack.py`), in bounded batches.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from domain import GENERATOR

log = logging.getLogger(__name__)

RECORD_SCHEMA = 1
BOT_PREFIX = "slack:oauth:bot:"
INSTALLATION_PREFIX = "slack:oauth:installation:"
STATE_PREFIX = "slack:oauth:state:"
STATE_TTL_MS = 600_000
"""How long an issued OAuth state may be consumed (bolt's `state_expiration_seconds`)."""
STATE_SWEEP_BATCH = 500
"""Expired states forgotten per store call (`StoreOAuthStates.forget_expired`)."""
STATE_SWEEP_BATCHES = 10
"""Store calls per sweep at most: a sweep's work is bounded whatever piled up; the rest
goes at the next one."""
NONE_ID = "-"
SEAL_VERSION = "s1"
_SEAL_INFO = b"salesbot/slack-installation-tokens/v1"
_NONCE_BYTES = 12
_STATE_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")
_TOKEN_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")


class StateBook(Protocol):
    """The store's adapter state (`storage.ports.AdapterStateStore`), as used here."""

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None: ...

    async def get_state(self, key: str) -> dict[str, Any] | None: ...

    async def delete_state(self, key: str) -> bool: ...

    async def delete_states_before(self, prefix: str, before_ms: int, limit: int) -> int: ...


class TokenSeal:
    """Seals and opens tokens under keys derived from the client secret(s); the first
    secret is the current one (it seals), the others only open (see the module docstring)."""

    def __init__(self, secrets_: Sequence[str]) -> None:
        usable = [secret for secret in secrets_ if secret]
        if not usable:
            raise ValueError("sealing tokens needs the Slack app's client secret")
        self._keys = [_derive(secret) for secret in usable]

    @classmethod
    def from_setting(cls, value: str) -> TokenSeal:
        """`SLACK_CLIENT_SECRET` as configured: "current[,older…]"."""
        return cls([part.strip() for part in value.split(",") if part.strip()])

    def seal(self, token: str, where: str) -> str:
        kid, key = self._keys[0]
        nonce = os.urandom(_NONCE_BYTES)
        body = AESGCM(key).encrypt(nonce, token.encode("utf-8"), _aad(where))
        return f"{SEAL_VERSION}:{kid}:{base64.b64encode(nonce + body).decode('ascii')}"

    def open(self, sealed: str, where: str) -> tuple[str, bool] | None:
        """The token and whether it was sealed under the current key; None when no
        configured secret opens it (sealed under a secret no longer configured, or changed)."""
        version, _, rest = sealed.partition(":")
        kid, _, body = rest.partition(":")
        if version != SEAL_VERSION or not body:
            return None
        for index, (key_id, key) in enumerate(self._keys):
            if key_id != kid:
                continue
            try:
                raw = base64.b64decode(body, validate=True)
                plain = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(where))
                return plain.decode("utf-8"), index == 0
            except (InvalidTag, ValueError):
                return None
        return None


def _derive(secret: str) -> tuple[str, bytes]:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO).derive(
        secret.encode("utf-8")
    )
    return hashlib.sha256(key).hexdigest()[:8], key


def _aad(where: str) -> bytes:
    return f"salesbot/slack-token/{where}".encode()


def _id(value: str | None) -> str:
    return value if value else NONE_ID


def workspace_key(enterprise_id: str | None, team_id: str | None, is_enterprise: bool) -> str:
    """`{E}:{T}`. A workspace's installation is keyed by its team alone (`-:{T}`), also
    inside an Enterprise Grid org: team ids are unique across Slack, and an event or a
    conversation id names the team, not always its org. An org-wide install is keyed by its
    enterprise alone (`{E}:-`), as bolt's stores do (its events name a team, but the
    installation is the org's)."""
    if is_enterprise:
        return f"{_id(enterprise_id)}:{NONE_ID}"
    return f"{NONE_ID}:{_id(team_id)}"


class StoreInstallations(AsyncInstallationStore):
    """slack_sdk's installation store on the store's adapter state (module docstring).

    `on_change(team_id)` is called after a save or a delete, so whoever caches a
    workspace's client drops it."""

    def __init__(
        self,
        states: StateBook,
        clock: Callable[[], int],
        seal: TokenSeal,
        *,
        on_change: Callable[[str | None], None] | None = None,
    ) -> None:
        self._states = states
        self._clock = clock
        self._seal = seal
        self._on_change = on_change
        self._logger = log

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    # --- writing ---------------------------------------------------------------------------

    async def async_save(self, installation: Installation) -> None:
        where = workspace_key(
            installation.enterprise_id, installation.team_id, installation.is_enterprise_install
        )
        record = self._record(installation, where)
        now = self._clock()
        bot = await self._states.get_state(BOT_PREFIX + where) or {}
        installers = _strings(bot.get("installers"))
        if installation.user_id and installation.user_id not in installers:
            installers.append(installation.user_id)
        await self._states.put_state(INSTALLATION_PREFIX + where, record, now)
        if installation.user_id:
            await self._states.put_state(
                f"{INSTALLATION_PREFIX}{where}:{installation.user_id}", record, now
            )
        if installation.bot_token:
            await self.async_save_bot(installation.to_bot(), installers=installers)
        self._changed(installation.team_id)

    async def async_save_bot(self, bot: Bot, *, installers: Iterable[str] | None = None) -> None:
        """The workspace's bot; `installers` (default: those already listed) are the users
        whose own installation records `async_delete_all` must remove too."""
        where = workspace_key(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        if installers is None:
            known = await self._states.get_state(BOT_PREFIX + where) or {}
            installers = _strings(known.get("installers"))
        fields = {
            "app_id": bot.app_id,
            "enterprise_id": bot.enterprise_id,
            "enterprise_name": bot.enterprise_name,
            "team_id": bot.team_id,
            "team_name": bot.team_name,
            "bot_token": bot.bot_token,
            "bot_id": bot.bot_id,
            "bot_user_id": bot.bot_user_id,
            "bot_scopes": list(bot.bot_scopes or ()),
            "bot_refresh_token": bot.bot_refresh_token,
            "bot_token_expires_at_ms": _ms(bot.bot_token_expires_at),
            "is_enterprise_install": bool(bot.is_enterprise_install),
            "installed_at_ms": _ms(bot.installed_at),
            "installers": list(installers),
        }
        await self._states.put_state(BOT_PREFIX + where, self._sealed(fields, where), self._clock())
        self._changed(bot.team_id)

    # --- reading ---------------------------------------------------------------------------

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        where = workspace_key(enterprise_id, team_id, bool(is_enterprise_install))
        record = await self._opened(BOT_PREFIX + where, where)
        if record is None:
            return None
        return Bot(
            app_id=record.get("app_id"),
            enterprise_id=record.get("enterprise_id"),
            enterprise_name=record.get("enterprise_name"),
            team_id=record.get("team_id"),
            team_name=record.get("team_name"),
            bot_token=str(record.get("bot_token") or ""),
            bot_id=str(record.get("bot_id") or ""),
            bot_user_id=str(record.get("bot_user_id") or ""),
            bot_scopes=_strings(record.get("bot_scopes")),
            bot_refresh_token=record.get("bot_refresh_token"),
            bot_token_expires_at=_seconds_int(record.get("bot_token_expires_at_ms")),
            is_enterprise_install=bool(record.get("is_enterprise_install")),
            installed_at=_seconds(record.get("installed_at_ms")) or 0.0,
        )

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        where = workspace_key(enterprise_id, team_id, bool(is_enterprise_install))
        key = INSTALLATION_PREFIX + where + (f":{user_id}" if user_id else "")
        record = await self._opened(key, where)
        if record is None:
            return None
        installation = Installation(
            app_id=record.get("app_id"),
            enterprise_id=record.get("enterprise_id"),
            enterprise_name=record.get("enterprise_name"),
            enterprise_url=record.get("enterprise_url"),
            team_id=record.get("team_id"),
            team_name=record.get("team_name"),
            bot_token=record.get("bot_token"),
            bot_id=record.get("bot_id"),
            bot_user_id=record.get("bot_user_id"),
            bot_scopes=_strings(record.get("bot_scopes")),
            bot_refresh_token=record.get("bot_refresh_token"),
            bot_token_expires_at=_seconds_int(record.get("bot_token_expires_at_ms")),
            user_id=str(record.get("user_id") or ""),
            user_token=record.get("user_token"),
            user_scopes=_strings(record.get("user_scopes")),
            user_refresh_token=record.get("user_refresh_token"),
            user_token_expires_at=_seconds_int(record.get("user_token_expires_at_ms")),
            incoming_webhook_url=record.get("incoming_webhook_url"),
            incoming_webhook_channel=record.get("incoming_webhook_channel"),
            incoming_webhook_channel_id=record.get("incoming_webhook_channel_id"),
            incoming_webhook_configuration_url=record.get("incoming_webhook_configuration_url"),
            is_enterprise_install=bool(record.get("is_enterprise_install")),
            token_type=record.get("token_type"),
            installed_at=_seconds(record.get("installed_at_ms")),
        )
        if user_id is None:
            # The workspace's latest installation carries the newest bot, which a later
            # bot-only save may have replaced (slack_sdk's file store does the same).
            bot = await self.async_find_bot(
                enterprise_id=enterprise_id,
                team_id=team_id,
                is_enterprise_install=is_enterprise_install,
            )
            if bot is not None and bot.bot_token != installation.bot_token:
                installation.bot_token = bot.bot_token
                installation.bot_id = bot.bot_id
                installation.bot_user_id = bot.bot_user_id
                installation.bot_scopes = bot.bot_scopes
        return installation

    # --- deleting --------------------------------------------------------------------------

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        for where in _both(enterprise_id, team_id):
            await self._states.delete_state(BOT_PREFIX + where)
        self._changed(team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        for where in _both(enterprise_id, team_id):
            if user_id is not None:
                await self._states.delete_state(f"{INSTALLATION_PREFIX}{where}:{user_id}")
                continue
            bot = await self._states.get_state(BOT_PREFIX + where) or {}
            for installer in _strings(bot.get("installers")):
                await self._states.delete_state(f"{INSTALLATION_PREFIX}{where}:{installer}")
            await self._states.delete_state(INSTALLATION_PREFIX + where)
        self._changed(team_id)

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Everything of the workspace (`app_uninstalled`): the installers' records first,
        while the bot record still lists them."""
        await self.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id)
        await self.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)

    # --- internals -------------------------------------------------------------------------

    def _record(self, installation: Installation, where: str) -> dict[str, Any]:
        fields = {
            "app_id": installation.app_id,
            "enterprise_id": installation.enterprise_id,
            "enterprise_name": installation.enterprise_name,
            "enterprise_url": installation.enterprise_url,
            "team_id": installation.team_id,
            "team_name": installation.team_name,
            "bot_token": installation.bot_token,
            "bot_id": installation.bot_id,
            "bot_user_id": installation.bot_user_id,
            "bot_scopes": list(installation.bot_scopes or ()),
            "bot_refresh_token": installation.bot_refresh_token,
            "bot_token_expires_at_ms": _ms(installation.bot_token_expires_at),
            "user_id": installation.user_id,
            "user_token": installation.user_token,
            "user_scopes": list(installation.user_scopes or ()),
            "user_refresh_token": installation.user_refresh_token,
            "user_token_expires_at_ms": _ms(installation.user_token_expires_at),
            "incoming_webhook_url": installation.incoming_webhook_url,
            "incoming_webhook_channel": installation.incoming_webhook_channel,
            "incoming_webhook_channel_id": installation.incoming_webhook_channel_id,
            "incoming_webhook_configuration_url": installation.incoming_webhook_configuration_url,
            "is_enterprise_install": bool(installation.is_enterprise_install),
            "token_type": installation.token_type,
            "installed_at_ms": _ms(installation.installed_at),
        }
        return self._sealed(fields, where)

    def _sealed(self, fields: Mapping[str, Any], where: str) -> dict[str, Any]:
        record: dict[str, Any] = {"schema": RECORD_SCHEMA, "generator": GENERATOR}
        for name, value in fields.items():
            if name in _TOKEN_FIELDS and isinstance(value, str) and value:
                record[name] = self._seal.seal(value, f"{where}/{name}")
            else:
                record[name] = value
        return record

    async def _opened(self, key: str, where: str) -> dict[str, Any] | None:
        """The record under `key` with its tokens opened; None when there is none, or when a
        token in it does not open (logged once per read, never the token): a record the
        bot cannot use is as good as absent, and Slack's reinstall writes a fresh one."""
        record = await self._states.get_state(key)
        if record is None:
            return None
        stale = False
        for name in _TOKEN_FIELDS:
            value = record.get(name)
            if not isinstance(value, str) or not value:
                continue
            opened = self._seal.open(value, f"{where}/{name}")
            if opened is None:
                log.error(
                    "slack installation %s: its %s does not open with SLACK_CLIENT_SECRET "
                    "(sealed under a client secret no longer listed there?); reinstall the "
                    "app in that workspace or list the old secret after the new one",
                    where,
                    name,
                )
                return None
            record[name], current = opened
            stale = stale or not current
        if stale:  # sealed under an older secret: sealed again under the current one
            resealed = self._sealed({k: v for k, v in record.items() if k not in _META}, where)
            await self._states.put_state(key, resealed, self._clock())
        return record

    def _changed(self, team_id: str | None) -> None:
        if self._on_change is not None:
            self._on_change(team_id)


_META = ("schema", "generator")


def _both(enterprise_id: str | None, team_id: str | None) -> list[str]:
    """The keys a delete names: the workspace's and, when no team is given, the org's."""
    keys = [workspace_key(enterprise_id, team_id, False)]
    if enterprise_id and not team_id:
        keys = [workspace_key(enterprise_id, None, True)]
    return keys


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [part for part in value.split(",") if part]
    if isinstance(value, list):
        return [str(item) for item in value if isinstance(item, str) and item]
    return []


def _ms(seconds: float | int | None) -> int | None:
    return None if seconds is None else round(float(seconds) * 1000)


def _seconds(ms: object) -> float | None:
    return ms / 1000 if isinstance(ms, int) else None


def _seconds_int(ms: object) -> int | None:
    return ms // 1000 if isinstance(ms, int) else None


class StoreOAuthStates(AsyncOAuthStateStore):
    """slack_sdk's OAuth state store on the store's adapter state: a state is issued with
    an expiry (integer epoch ms) and consumed at most once (module docstring)."""

    def __init__(
        self, states: StateBook, clock: Callable[[], int], *, ttl_ms: int = STATE_TTL_MS
    ) -> None:
        self._states = states
        self._clock = clock
        self._ttl_ms = ttl_ms
        self._logger = log

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(32)
        now = self._clock()
        await self._states.put_state(
            STATE_PREFIX + state,
            {
                "schema": RECORD_SCHEMA,
                "generator": GENERATOR,
                "issued_at_ms": now,
                "expires_at_ms": now + self._ttl_ms,
            },
            now,
        )
        return state

    async def async_consume(self, state: str) -> bool:
        """True once for a state this store issued and that has not expired; False for
        anything else (unknown, malformed, used, expired). Never raises for bad input."""
        if not isinstance(state, str) or not _STATE_SHAPE.match(state):
            return False
        key = STATE_PREFIX + state
        record = await self._states.get_state(key)
        if record is None or not await self._states.delete_state(key):
            return False  # unknown, or consumed by another request first
        expires = record.get("expires_at_ms")
        return isinstance(expires, int) and self._clock() < expires

    async def forget_expired(
        self, *, batch: int = STATE_SWEEP_BATCH, batches: int = STATE_SWEEP_BATCHES
    ) -> int:
        """Delete the states issued more than the time to live ago (expired: consuming one
        would fail anyway), at most `batch` × `batches`; returns how many."""
        # Issued at or before now − ttl: `async_consume` refuses it from then on.
        cutoff = self._clock() - self._ttl_ms + 1
        forgotten = 0
        for _ in range(batches):
            deleted = await self._states.delete_states_before(STATE_PREFIX, cutoff, batch)
            forgotten += deleted
            if deleted < batch:
                break
        if forgotten:
            log.info("forgot %d expired slack install states", forgotten)
        return forgotten
