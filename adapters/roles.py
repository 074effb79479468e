"""Each installation's role lists, as its admins set them.

`SALESBOT_APPROVERS`, `SALESBOT_AUDITORS`, `SALESBOT_MANAGERS` and `SALESBOT_ADMINS` are
one list each for the whole deployment. An installation's admin replaces any of them for
that installation alone with `setup approvers @ann @ben` (the domain records `roles_set`,
`domain.command_handlers`); once committed, the adapter keeps the list here and the
platform's directory reads it when it states who someone is (`Actor.approver`, …):

- a list set for the installation is that installation's, whole (the environment's list
  no longer applies there);
- a list never set is the environment's, as before — so the first installation keeps the
  environment's lists, and nothing changes for a deployment where nobody sets one;
- the person who installed the app there (Slack's "Add to Slack" installer, the Teams user
  whose `installationUpdate` first added it to a team of the tenant) is an admin of it
  until its admins list is set: someone can always set the lists of a new installation.

Kept in the store's adapter state, one document per installation (shared by the
platforms: the installation id names the platform):

    roles:{installation}   (`SCHEMA`, `generator`, times `…_ms`)
      installer {user, at_ms}                           who installed the app (first only)
      lists {approvers|auditors|managers|admins: {users [{id, name}], by, at_ms}}

Read through a cache (`CACHE_MS`, by the injected clock) dropped at once when this process
changes a document; another replica's change is seen within `CACHE_MS`. Losing a document
costs an installation its own lists (the environment's apply again), never a decision: the
event log remains the record of who set what.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, get_args

from domain import GENERATOR
from domain.events import RoleList, RolesSet

log = logging.getLogger(__name__)

KEY_PREFIX = "roles:"
SCHEMA = 1
CACHE_MS = 30_000
MAX_CACHED = 10_000
ROLE_LISTS: tuple[RoleList, ...] = get_args(RoleList)


class StateBook(Protocol):
    """The store's adapter state (`storage.ports.AdapterStateStore`), as used here."""

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None: ...

    async def get_state(self, key: str) -> dict[str, Any] | None: ...


def roles_key(installation: str) -> str:
    return f"{KEY_PREFIX}{installation}"


@dataclass(frozen=True)
class RoleSets:
    """The four role lists as sets of ids (user ids, or a platform's group ids)."""

    approvers: frozenset[str] = frozenset()
    auditors: frozenset[str] = frozenset()
    managers: frozenset[str] = frozenset()
    admins: frozenset[str] = frozenset()

    def of(self, role: RoleList) -> frozenset[str]:
        value: frozenset[str] = getattr(self, role)
        return value


class InstallationRoles:
    """The installations' own role lists, over the environment's (module docstring)."""

    def __init__(self, states: StateBook, clock: Callable[[], int]) -> None:
        self._states = states
        self._clock = clock
        self._cache: dict[str, tuple[dict[str, Any] | None, int]] = {}

    async def for_installation(self, installation: str | None, configured: RoleSets) -> RoleSets:
        """`installation`'s role lists: each set one, else the environment's (`configured`);
        its installer an admin while its admins list is not set. None (no installation):
        the environment's."""
        if not installation:
            return configured
        document = await self._document(installation)
        if document is None:
            return configured
        lists = _map(document, "lists")
        chosen: dict[RoleList, frozenset[str]] = {}
        for role in ROLE_LISTS:
            users = _ids(_map(lists, role).get("users"))
            chosen[role] = users if users is not None else configured.of(role)
        installer = _map(document, "installer").get("user")
        if _ids(_map(lists, "admins").get("users")) is None and isinstance(installer, str):
            chosen["admins"] = chosen["admins"] | {installer}
        return RoleSets(**chosen)

    async def chose(self, event: RolesSet, at_ms: int) -> bool:
        """Keep a committed `roles_set` (made at `at_ms`): the list replaces the one before,
        unless a newer one is kept already (a retried older choice never undoes it). The
        same event kept again writes the same entry. True: it is this book's to keep."""
        document = await self._fresh(event.installation)
        lists = dict(_map(document, "lists"))
        kept = _map(lists, event.role)
        if isinstance(kept.get("at_ms"), int) and kept["at_ms"] > at_ms:
            log.info("%s of %s: an older list ignored", event.role, event.installation)
            return True
        lists[event.role] = {
            "users": [{"id": user.id, "name": user.name} for user in event.users],
            "by": event.by,
            "at_ms": at_ms,
        }
        await self._put(event.installation, {**document, "lists": lists})
        log.info(
            "%s of %s set by %s (%d named)",
            event.role,
            event.installation,
            event.by,
            len(event.users),
        )
        return True

    async def installed_by(self, installation: str, user: str, at_ms: int) -> None:
        """Note who installed the app in `installation` (the first installer only): an
        admin there until its admins list is set."""
        if not user:
            return
        document = await self._fresh(installation)
        if _map(document, "installer").get("user"):
            return
        await self._put(installation, {**document, "installer": {"user": user, "at_ms": at_ms}})
        log.info("%s installed by %s: its first admin", installation, user)

    def forget(self, installation: str) -> None:
        self._cache.pop(installation, None)

    async def _fresh(self, installation: str) -> dict[str, Any]:
        """The stored document (not a cached one), to change it."""
        self.forget(installation)
        return await self._document(installation) or {}

    async def _document(self, installation: str) -> dict[str, Any] | None:
        now = self._clock()
        cached = self._cache.get(installation)
        if cached is not None and now - cached[1] < CACHE_MS:
            return cached[0]
        document = await self._states.get_state(roles_key(installation))
        self._cache[installation] = (document, now)
        while len(self._cache) > MAX_CACHED:
            self._cache.pop(next(iter(self._cache)))
        return document

    async def _put(self, installation: str, document: dict[str, Any]) -> None:
        document = {**document, "schema": SCHEMA, "generator": GENERATOR}
        now = self._clock()
        await self._states.put_state(roles_key(installation), document, now)
        self._cache[installation] = (document, now)


def _ids(value: object) -> frozenset[str] | None:
    """The ids of a stored list; None when there is no list (never set, or another shape)."""
    if not isinstance(value, list):
        return None
    return frozenset(
        entry["id"]
        for entry in value
        if isinstance(entry, Mapping) and isinstance(entry.get("id"), str) and entry["id"]
    )


def _map(data: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    value = data.get(key) if data is not None else None
    return value if isinstance(value, Mapping) else {}
