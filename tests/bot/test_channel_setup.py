"""An admin's channel choice (or role list) is never lost between the commit and the
adapter's write (`bot/channel_setup.py`): it is committed with an outbox item that applies
it, retried when the write fails, and applied after a restart when the process died first —
for Slack's workspaces and Teams' tenants alike, on the SQLite store, with the injected
clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adapters.ports import Delivery, Rejected, RetryLater, Route, Sender, Sent
from adapters.roles import InstallationRoles, RoleSets
from adapters.slack.channels import KEY, WorkspaceChannels
from adapters.slack.channels import installation_id as slack_installation
from adapters.slack.ids import SCHEME as SLACK
from adapters.teams import book
from adapters.teams.ids import SCHEME as TEAMS
from adapters.teams.ids import installation_id as teams_installation
from adapters.teams.tenants import Tenants
from bot.channel_setup import (
    SETUP_ADDRESS,
    KeepingSetup,
    SetupEvent,
    handle_and_keep,
    keeper,
    read_setup,
    setup_channel,
    setup_items,
)
from bot.outbox_worker import OutboxWorker
from bot.runtime import Runtime
from domain.cards import Reply
from domain.events import ChannelSet
from domain.inbound import Actor, ChannelRef, CommandInvoked, Inbound, UserRef
from domain.policy import Policy
from domain.state import ConversationState
from storage.sqlite import SqliteStore

ADMIN = Actor(id="U_ADM", name="Ada Admin", role="rep", admin=True)
HOME = "tenant-home"
START_MS = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = START_MS

    def __call__(self) -> int:
        return self.now


class Nowhere:
    """A router with nowhere to place replies: only the effects reach the outbox."""

    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        return []


class NoPosts:
    """A platform sender that must not be asked to post anything here."""

    async def send(self, delivery: Delivery) -> Sent:
        raise AssertionError(f"posted {delivery.channel}")

    async def find_sent(self, delivery: Delivery) -> str | None:
        return None


class Flaky:
    """The store's adapter state, whose writes fail while `failing` is set."""

    def __init__(self, store: SqliteStore) -> None:
        self.store, self.failing = store, True

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None:
        if self.failing:
            raise OSError("disk full")
        await self.store.put_state(key, value, at_ms)

    async def get_state(self, key: str) -> dict[str, Any] | None:
        return await self.store.get_state(key)


def command(conversation: str, installation: str, channel: str, *, n: int) -> CommandInvoked:
    return CommandInvoked(
        delivery_id=f"d-{n}",
        conversation_id=conversation,
        actor=ADMIN,
        command="setup",
        args=f"handoff <#{channel}>",
        installation=installation,
        channel=ChannelRef(id=channel),
    )


def worker(store: SqliteStore, clock: Clock, senders: dict[str, Sender]) -> OutboxWorker:
    async def no_sleep(_seconds: float) -> None:
        await asyncio.sleep(0)

    return OutboxWorker(
        store,
        lambda channel: senders.get(channel.split(":", 1)[0]),
        clock=clock,
        sleep=no_sleep,
        rng=random.Random(0),
        pacing_ms=lambda _channel: 0,
    )


def test_each_platforms_installations_have_their_platforms_setup_channel() -> None:
    assert setup_channel(slack_installation("T2")) == SLACK.channel(SETUP_ADDRESS)
    assert setup_channel(teams_installation("Tenant-B")) == TEAMS.channel(SETUP_ADDRESS)
    assert SLACK.owns_channel("slack:~setup")
    assert not TEAMS.owns_channel("slack:~setup")
    assert setup_channel("") is None
    assert setup_channel("slack:") is None


async def test_a_choice_committed_but_never_kept_is_in_force_after_a_restart(
    default_policy: Policy, tmp_path: Path
) -> None:
    path, clock = tmp_path / "bot.db", Clock()
    store = await SqliteStore.open(path)
    runtime = Runtime(store, default_policy, Nowhere(), clock=clock, effects=setup_items)
    slack = command("slack:T2:C9", slack_installation("T2"), "C0DESK", n=1)
    teams = command("teams:19:desk@thread.tacv2", teams_installation(HOME), "19:desk", n=2)
    auditors = command("slack:T2:C9", slack_installation("T2"), "C0DESK", n=3).model_copy(
        update={"args": "auditors @ann", "users": (UserRef(id="U_ANN", name="ann"),)}
    )
    for inbound in (slack, teams, auditors):
        result = await runtime.handle(inbound)
        assert result.status == "committed"
    # The process dies here: committed, but neither adapter wrote the choice down.
    await store.close()

    store = await SqliteStore.open(path)
    try:
        clock.now += 60_000
        channels = WorkspaceChannels(store, clock, handoff_channel="C0HANDOFF", leads_channel=None)
        await channels.load()
        tenants = Tenants(store, home_tenant=HOME, home_handoff="19:env", clock=clock)
        roles = InstallationRoles(store, clock)
        assert channels.handoff("T2") == "C0HANDOFF"
        assert (await tenants.home()).handoff == "19:env"

        senders: dict[str, Sender] = {
            "slack": KeepingSetup(
                NoPosts(), keeper(channels.chose, roles.chose), channel=SLACK.channel(SETUP_ADDRESS)
            ),
            "teams": KeepingSetup(
                NoPosts(), keeper(tenants.chose, roles.chose), channel=TEAMS.channel(SETUP_ADDRESS)
            ),
        }
        assert await worker(store, clock, senders).drain_once() == 3
        assert channels.handoff("T2") == "C0DESK"
        lists = await roles.for_installation(slack_installation("T2"), RoleSets())
        assert lists.auditors == {"U_ANN"}
        assert (await tenants.home()).handoff == "19:desk"
        # Kept where the next start reads it, and the outbox has nothing left.
        again = WorkspaceChannels(store, clock, handoff_channel="C0HANDOFF", leads_channel=None)
        await again.load()
        assert again.handoff("T2") == "C0DESK"
        assert await worker(store, clock, senders).drain_once() == 0
        assert await store.outbox_stats() == []  # every item settled, none dead
    finally:
        await store.close()


async def test_a_failed_write_is_retried_by_the_outbox_and_a_late_older_choice_loses(
    default_policy: Policy, tmp_path: Path
) -> None:
    clock = Clock()
    store = await SqliteStore.open(tmp_path / "bot.db")
    try:
        flaky = Flaky(store)
        channels = WorkspaceChannels(flaky, clock, handoff_channel="C0HANDOFF", leads_channel=None)
        await channels.load()
        runtime = Runtime(store, default_policy, Nowhere(), clock=clock, effects=setup_items)
        first = command("slack:T2:C9", slack_installation("T2"), "C0OLD", n=1)
        keep = keeper(channels.chose, InstallationRoles(store, clock).chose)
        result = await handle_and_keep(runtime.handle, keep, first)
        assert result.status == "committed"  # the admin is answered; the write failed
        assert channels.handoff("T2") == "C0HANDOFF"

        keep = keeper(channels.chose, InstallationRoles(store, clock).chose)
        senders: dict[str, Sender] = {
            "slack": KeepingSetup(NoPosts(), keep, channel=SLACK.channel(SETUP_ADDRESS))
        }
        outbox = worker(store, clock, senders)
        assert await outbox.drain_once() == 1  # failed again: scheduled, not given up
        assert await store.dead_letters() == []
        assert channels.handoff("T2") == "C0HANDOFF"

        # A newer choice, kept at once once the store takes writes again.
        flaky.failing = False
        clock.now += 1_000
        newer = command("slack:T2:C9", slack_installation("T2"), "C0NEW", n=2)
        await handle_and_keep(runtime.handle, keep, newer)
        assert channels.handoff("T2") == "C0NEW"

        # The first choice's retry comes due after the newer one: it does not undo it.
        clock.now += 600_000
        while await outbox.drain_once():
            pass
        assert channels.handoff("T2") == "C0NEW"
        document = await store.get_state(KEY)
        assert document is not None
        assert document["workspaces"]["T2"]["handoff"]["channel"] == "C0NEW"
        assert await store.dead_letters() == []
    finally:
        await store.close()


async def test_a_setup_item_is_applied_never_posted_and_other_items_are_posted() -> None:
    kept: list[tuple[ChannelSet, int]] = []

    async def keep(event: SetupEvent, at_ms: int) -> bool:
        assert isinstance(event, ChannelSet)
        kept.append((event, at_ms))
        return event.installation.startswith("teams:")

    class Posts:
        async def send(self, delivery: Delivery) -> Sent:
            return Sent(remote_id="posted")

        async def find_sent(self, delivery: Delivery) -> str | None:
            return "posted"

    sender = KeepingSetup(Posts(), keep, channel=TEAMS.channel(SETUP_ADDRESS))
    event = ChannelSet(installation="teams:t1", purpose="leads", channel="19:x", name="", by="a")
    dumped = event.model_dump(mode="json")
    payload = {"event": dumped, "at_ms": 5}
    item = Delivery(key="k", conversation_id="c", channel="teams:~setup", payload=payload)
    assert read_setup(item) == (event, 5)
    assert await sender.send(item) == Sent()
    assert await sender.find_sent(item) is None  # applied again rather than looked for
    assert kept == [(event, 5)]
    other = item.model_copy(update={"channel": "teams:handoff"})
    assert await sender.send(other) == Sent(remote_id="posted")
    assert await sender.find_sent(other) == "posted"

    slack = {"event": {**dumped, "installation": "slack:T1"}, "at_ms": 5}
    assert isinstance(await sender.send(item.model_copy(update={"payload": slack})), Rejected)
    unreadable = item.model_copy(update={"payload": {"at_ms": 5}})
    assert isinstance(await sender.send(unreadable), Rejected)

    async def broken(event: SetupEvent, at_ms: int) -> bool:
        raise OSError("disk full")

    failing = KeepingSetup(Posts(), broken, channel=TEAMS.channel(SETUP_ADDRESS))
    assert isinstance(await failing.send(item), RetryLater)


async def test_the_teams_choice_uses_the_team_noted_when_it_was_said(tmp_path: Path) -> None:
    clock = Clock()
    store = await SqliteStore.open(tmp_path / "bot.db")
    try:
        tenants = Tenants(store, home_tenant=HOME, clock=clock)
        await store.put_state(
            book.setup_place_key("19:desk;messageid=1"),
            {"tenant_id": HOME, "team": "19:team", "service_url": "https://smba.example/"},
            clock(),
        )
        event = ChannelSet(
            installation=teams_installation(HOME),
            purpose="leads",
            channel="19:desk",
            name="",
            by="a",
        )
        assert await tenants.chose(event, clock())
        record = await store.get_state(f"teams:tenant:{HOME}")
        assert record is not None
        assert record["leads"]["team"] == "19:team"
        assert record["service_url"] == "https://smba.example/"
    finally:
        await store.close()
