"""Each installation's role lists (`adapters/roles.py`): a list its admin set replaces the
environment's there and only there, a list never set is the environment's, the installer
is an admin until the admins list is set, a retried older list never undoes a newer one,
and another replica's change is seen within the cache time (the injected clock)."""

from __future__ import annotations

from adapters.roles import CACHE_MS, InstallationRoles, RoleSets, roles_key
from domain import GENERATOR
from domain.events import RolesSet
from domain.inbound import UserRef
from storage.memory import MemoryStore

ENV = RoleSets(
    approvers=frozenset({"U_APPROVER"}),
    auditors=frozenset({"U_AUDITOR"}),
    managers=frozenset({"U_MANAGER"}),
    admins=frozenset({"U_ADMIN"}),
)
B = "slack:T0B"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


def chosen(role: str, *people: str, installation: str = B) -> RolesSet:
    return RolesSet(
        installation=installation,
        role=role,  # type: ignore[arg-type]
        users=tuple(UserRef(id=person, name=person.lower()) for person in people),
        by="U_B_ADMIN",
    )


async def test_a_list_set_for_an_installation_replaces_the_environments_there_only() -> None:
    clock, store = Clock(), MemoryStore()
    roles = InstallationRoles(store, clock)
    assert await roles.for_installation(B, ENV) == ENV  # nothing set: as before
    assert await roles.chose(chosen("approvers", "U_ANN", "S_GROUP"), clock())
    lists = await roles.for_installation(B, ENV)
    assert lists == RoleSets(
        approvers=frozenset({"U_ANN", "S_GROUP"}),
        auditors=ENV.auditors,
        managers=ENV.managers,
        admins=ENV.admins,
    )
    assert await roles.for_installation("slack:T0A", ENV) == ENV
    assert await roles.for_installation(None, ENV) == ENV
    # An empty list is a list: nobody approves there.
    await roles.chose(chosen("approvers"), clock())
    assert (await roles.for_installation(B, ENV)).approvers == frozenset()
    document = await store.get_state(roles_key(B))
    assert document is not None
    assert document["lists"]["approvers"] == {"users": [], "by": "U_B_ADMIN", "at_ms": clock()}
    assert (document["schema"], document["generator"]) == (1, GENERATOR)


async def test_the_installer_is_an_admin_until_the_admins_list_is_set() -> None:
    clock, store = Clock(), MemoryStore()
    roles = InstallationRoles(store, clock)
    await roles.installed_by(B, "U_INSTALLER", clock())
    await roles.installed_by(B, "U_LATER", clock())  # the first installer only
    assert (await roles.for_installation(B, ENV)).admins == {"U_ADMIN", "U_INSTALLER"}
    await roles.chose(chosen("admins", "U_BEA"), clock())
    assert (await roles.for_installation(B, ENV)).admins == {"U_BEA"}


async def test_an_older_list_arriving_late_never_undoes_a_newer_one() -> None:
    clock, store = Clock(), MemoryStore()
    roles = InstallationRoles(store, clock)
    await roles.chose(chosen("auditors", "U_NEW"), clock.now)
    await roles.chose(chosen("auditors", "U_OLD"), clock.now - 1)
    await roles.chose(chosen("auditors", "U_NEW"), clock.now)  # the same again: the same
    assert (await roles.for_installation(B, ENV)).auditors == {"U_NEW"}


async def test_another_replicas_change_is_seen_within_the_cache_time() -> None:
    clock, store = Clock(), MemoryStore()
    here, there = InstallationRoles(store, clock), InstallationRoles(store, clock)
    assert await here.for_installation(B, ENV) == ENV
    await there.chose(chosen("managers", "U_MAX"), clock())
    assert await here.for_installation(B, ENV) == ENV  # cached
    clock.now += CACHE_MS
    assert (await here.for_installation(B, ENV)).managers == {"U_MAX"}
