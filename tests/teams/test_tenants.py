"""Tenant installations (`adapters/teams/tenants.py`): what Teams' `installationUpdate`
records, which installation a conversation belongs to, and where its handoffs go."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.teams import book
from adapters.teams.ids import installation_id, tenant_of
from adapters.teams.tenants import CACHE_MS, RECORD_SCHEMA, Tenants, tenant_key
from domain import GENERATOR
from domain.events import ChannelSet
from storage.memory import MemoryStore

FIXTURE = Path(__file__).parent / "fixtures" / "installation_update_team.json"
HOME, OTHER, STRANGER = "tenant-home", "tenant-sample-0001", "tenant-stranger"
SELECTED = "19:selected-sample@thread.skype"
TEAM = "19:general-sample@thread.skype"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        self.now += 1
        return self.now


def team_install(action: str = "add", **changes: Any) -> dict[str, Any]:
    activity: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    activity.pop("_source")
    activity["action"] = action
    for path, value in changes.items():
        where = activity
        *parents, last = path.split(".")
        for part in parents:
            where = where[part]
        where[last] = value
    return activity


def personal_install(action: str, tenant: str, user: str) -> dict[str, Any]:
    return {
        "type": "installationUpdate",
        "action": action,
        "id": f"f:{action}-{user}",
        "channelId": "msteams",
        "serviceUrl": "https://smba.trafficmanager.net/emea/",
        "from": {"id": f"29:{user}", "aadObjectId": f"aad-{user}"},
        "recipient": {"id": "28:app-0001", "name": "salesbot"},
        "conversation": {"conversationType": "personal", "tenantId": tenant, "id": f"a:{user}"},
        "channelData": {"tenant": {"id": tenant}},
    }


def tenants(store: MemoryStore, clock: Clock, **kw: Any) -> Tenants:
    kw.setdefault("home_tenant", HOME)
    kw.setdefault("allowed", (OTHER,))
    return Tenants(store, clock=clock, **kw)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


async def test_adding_the_app_to_a_team_installs_its_tenant_with_the_chosen_channel(
    store: MemoryStore,
) -> None:
    clock = Clock()
    book_ = tenants(store, clock)
    assert await book_.installation(OTHER) is None

    change = await book_.record_update(team_install())
    assert not isinstance(change, str)
    assert (change.tenant_id, change.action, change.installed) == (OTHER, "add", True)
    installation = await book_.installation(OTHER)
    assert installation is not None
    assert installation.handoff == installation.leads == SELECTED
    assert installation.service_url == "https://smba.trafficmanager.net/amer/"
    assert installation.bot == {"id": "28:app-0001", "name": "salesbot"}
    assert not installation.home

    record = await store.get_state(tenant_key(OTHER))
    assert record is not None
    assert (record["schema"], record["generator"]) == (RECORD_SCHEMA, GENERATOR)
    assert record["places"][f"team:{TEAM}"]["conversation"] == SELECTED
    assert isinstance(record["at_ms"], int)
    assert record["at_ms"] > 1_800_000_000_000

    removed = await book_.record_update(team_install("remove"))
    assert not isinstance(removed, str)
    assert not removed.installed
    assert await book_.installation(OTHER) is None


async def test_a_tenant_not_listed_is_recorded_but_its_people_stay_prospects(
    store: MemoryStore,
) -> None:
    clock = Clock()
    unlisted = tenants(store, clock, allowed=())
    change = await unlisted.record_update(team_install())
    assert not isinstance(change, str)
    assert (change.installed, change.allowed) == (False, False)
    assert not await unlisted.installed(OTHER)
    # Listing it later activates the installation without installing again.
    assert await tenants(store, clock, allowed=(OTHER.upper(),)).installed(OTHER)
    assert await tenants(store, clock, allowed=("*",)).installed(OTHER)


async def test_a_personal_install_installs_the_tenant_until_its_last_place_is_removed(
    store: MemoryStore,
) -> None:
    clock = Clock()
    book_ = tenants(store, clock)
    await book_.record_update(personal_install("add", OTHER, "ada"))
    await book_.record_update(personal_install("add", OTHER, "bo"))
    installation = await book_.installation(OTHER)
    assert installation is not None
    # No team: nowhere a prospect's ticket could go without leaving the tenant.
    assert installation.handoff is None
    assert installation.leads is None
    await book_.record_update(personal_install("remove", OTHER, "ada"))
    assert await book_.installed(OTHER)
    await book_.record_update(personal_install("remove-upgrade", OTHER, "bo"))
    assert not await book_.installed(OTHER)


async def test_the_first_team_keeps_the_conversations_until_it_removes_the_app(
    store: MemoryStore,
) -> None:
    clock = Clock()
    book_ = tenants(store, clock)
    await book_.record_update(team_install())
    second = {
        "channelData.team": {"id": "19:second@thread.tacv2"},
        "conversation.id": "19:second@thread.tacv2",
        "channelData.settings": {"selectedChannel": {"id": "19:second-sales@thread.tacv2"}},
    }
    await book_.record_update(team_install("add-upgrade", **second))
    first = await book_.installation(OTHER)
    assert first is not None
    assert first.handoff == SELECTED
    await book_.record_update(team_install("remove"))
    after = await book_.installation(OTHER)
    assert after is not None
    assert after.handoff == "19:second-sales@thread.tacv2"


async def test_setup_wins_over_the_install_channel_and_goes_with_its_team(
    store: MemoryStore,
) -> None:
    clock = Clock()
    book_ = tenants(store, clock)
    await book_.record_update(team_install())
    await book_.set_destination(
        OTHER,
        "handoff",
        "19:desk@thread.tacv2;messageid=1700000000001",
        team=TEAM,
        by="aad-rae",
        service_url=None,
    )
    installation = await book_.installation(OTHER)
    assert installation is not None
    assert installation.handoff == "19:desk@thread.tacv2"  # the channel, not the thread
    assert installation.leads == SELECTED
    record = await store.get_state(tenant_key(OTHER))
    assert record is not None
    assert record["handoff"]["by"] == "aad-rae"

    # Re-adding the team later: the desk set before was cleared with the team's removal.
    await book_.record_update(team_install("remove"))
    await book_.record_update(team_install("add"))
    again = await book_.installation(OTHER)
    assert again is not None
    assert again.handoff == SELECTED


async def test_the_home_tenant_is_the_first_installation_seeded_from_the_environment(
    store: MemoryStore,
) -> None:
    clock = Clock()
    book_ = tenants(store, clock, home_handoff="19:env-handoff@thread.tacv2")
    home = await book_.installation(HOME.upper())
    assert home is not None
    assert home.home
    assert await book_.installed(HOME)
    assert home.handoff == "19:env-handoff@thread.tacv2"
    assert home.leads is None  # no leads conversation, no team: nowhere yet, as before
    assert await store.get_state(tenant_key(HOME)) is None  # seeded, not written

    # The channel the bot was last added to (before installations) serves as before.
    legacy = {"conversation": {"id": "19:added@thread.tacv2"}, "serviceUrl": "https://x/"}
    await store.put_state(book.INSTALL_KEY, legacy, clock())
    home = await book_.home()
    assert (home.handoff, home.leads) == ("19:env-handoff@thread.tacv2", "19:added@thread.tacv2")

    # Said explicitly in Teams, `setup` wins over the environment's seed.
    await book_.set_destination(
        HOME, "handoff", "19:desk@thread.tacv2", team=None, by="aad-rae", service_url=None
    )
    assert (await book_.home()).handoff == "19:desk@thread.tacv2"
    # And removing the home tenant's team never uninstalls it: it is configured.
    home_team = team_install("remove", **{"conversation.tenantId": HOME})
    home_team["channelData"]["tenant"]["id"] = HOME
    change = await book_.record_update(home_team)
    assert not isinstance(change, str)
    assert change.installed


async def test_a_conversation_belongs_to_its_tenants_installation_else_to_the_home_one(
    store: MemoryStore,
) -> None:
    clock = Clock()
    book_ = tenants(store, clock, home_handoff="19:home-desk@thread.tacv2")
    await book_.record_update(team_install())

    def reference(tenant: str | None) -> dict[str, Any]:
        conversation: dict[str, Any] = {"id": "19:x@thread.tacv2"}
        if tenant is not None:
            conversation["tenantId"] = tenant
        return {"conversation": conversation}

    assert (await book_.for_reference(reference(OTHER))).handoff == SELECTED
    for stranger in (reference(STRANGER), reference(None), None):
        found = await book_.for_reference(stranger)
        assert found.home
        assert found.handoff == "19:home-desk@thread.tacv2"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"action": "upgrade"}, "installation action 'upgrade' is not handled"),
        ({"conversation.tenantId": "tenant-else"}, "without exactly one tenant"),
    ],
)
async def test_an_installation_update_that_cannot_be_read_changes_nothing(
    store: MemoryStore, change: dict[str, Any], reason: str
) -> None:
    book_ = tenants(store, Clock())
    result = await book_.record_update(team_install(**change))
    assert isinstance(result, str)
    assert reason in result
    assert await store.get_state(tenant_key(OTHER)) is None
    bare = copy.deepcopy(team_install())
    del bare["conversation"]["tenantId"], bare["channelData"]["tenant"]
    assert isinstance(await book_.record_update(bare), str)


async def test_another_replicas_install_is_seen_within_the_cache_time(
    store: MemoryStore,
) -> None:
    clock = Clock()
    here, there = tenants(store, clock), tenants(store, clock)
    assert not await here.installed(OTHER)  # looked up: "not installed" is cached
    await there.record_update(team_install())
    assert await there.installed(OTHER)  # its own change at once
    assert not await here.installed(OTHER)
    clock.now += CACHE_MS
    assert await here.installed(OTHER)


async def test_a_group_chat_install_is_its_own_place_and_an_upgrade_keeps_the_first_team(
    store: MemoryStore,
) -> None:
    clock = Clock()
    book_ = tenants(store, clock)
    chat: dict[str, Any] = {
        "conversation": {
            "id": "19:chat@thread.v2",
            "conversationType": "groupChat",
            "tenantId": OTHER,
        },
        "channelData": {"tenant": {"id": OTHER}},
    }
    await book_.record_update(team_install(**chat))
    await book_.record_update(team_install())
    second: dict[str, Any] = {
        "channelData.team": {"id": "19:second@thread.tacv2"},
        "channelData.settings": {"selectedChannel": {"id": "19:second-sales@thread.tacv2"}},
    }
    await book_.record_update(team_install(**second))
    await book_.record_update(team_install("add-upgrade"))  # the first team, upgraded
    first = await book_.installation(OTHER)
    assert first is not None
    assert first.handoff == SELECTED
    # Someone else removing the app from the chat removes the chat, whoever added it.
    removal = team_install("remove", **chat)
    removal["from"] = {"id": "29:someone-else", "aadObjectId": "aad-else"}
    await book_.record_update(removal)
    record = await store.get_state(tenant_key(OTHER))
    assert record is not None
    assert sorted(record["places"]) == [
        "team:19:general-sample@thread.skype",
        "team:19:second@thread.tacv2",
    ]


async def test_ids_longer_than_teams_gives_are_not_kept(store: MemoryStore) -> None:
    book_ = tenants(store, Clock())
    huge = "19:" + "x" * 5000 + "@thread.tacv2"
    overlong: dict[str, Any] = {"conversation.id": huge, "channelData.team": {}}
    result = await book_.record_update(team_install(**overlong))
    assert result == "installation update without a conversation"
    with pytest.raises(ValueError, match="longer"):
        await book_.set_destination(OTHER, "handoff", huge, team=None, by="x", service_url=None)
    assert await store.get_state(tenant_key(OTHER)) is None


async def test_a_committed_setup_is_applied_with_the_team_noted_when_it_was_said(
    store: MemoryStore,
) -> None:
    clock = Clock()
    book_ = tenants(store, clock)
    await book_.record_update(team_install())
    desk = "19:desk@thread.tacv2"
    await store.put_state(
        book.setup_place_key(f"{desk};messageid=1700000000001"),
        {"tenant_id": OTHER, "team": TEAM, "service_url": "https://smba.example/"},
        clock(),
    )
    chosen = ChannelSet(
        installation=installation_id(OTHER.upper()),
        purpose="handoff",
        channel=desk,
        name="",
        by="aad-rae",
    )
    assert tenant_of(chosen.installation) == OTHER
    assert await book_.chose(chosen, 1_800_000_001_000)
    assert await book_.chose(chosen, 1_800_000_001_000)  # again: the same record
    installation = await book_.installation(OTHER)
    assert installation is not None
    assert installation.handoff == desk
    record = await store.get_state(tenant_key(OTHER))
    assert record is not None
    assert record["handoff"] == {
        "conversation": desk,
        "team": TEAM,
        "by": "aad-rae",
        "at_ms": 1_800_000_001_000,
    }

    # An older choice arriving late (a retry) never undoes the newer one.
    older = chosen.model_copy(update={"channel": "19:old@thread.tacv2"})
    await book_.chose(older, 1_800_000_000_500)
    after = await book_.installation(OTHER)
    assert after is not None
    assert after.handoff == desk

    # Slack's installations are not Teams': nothing kept.
    slack = chosen.model_copy(update={"installation": "slack:T1"})
    assert not await book_.chose(slack, 1_800_000_002_000)
    assert tenant_of("slack:T1") is None

    # The team noted goes with the choice: its removal clears it.
    await book_.record_update(team_install("remove"))
    await book_.record_update(team_install("add"))
    again = await book_.installation(OTHER)
    assert again is not None
    assert again.handoff == SELECTED
