"""`salesbot replay`: re-run every stored conversation through `decide` and report what would
change (`domain.replay`), under the policies each inbound recorded or a candidate policy.

Its own module, importing only what replay uses (the store, the policies, the domain), so
the command does not pay at start-up for the chat surfaces, the CRM clients and the runtime
that `bot.cli_ops` imports (about a second of a small store's replay).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from typing import TextIO

from pydantic import TypeAdapter

from bot.bootstrap import open_store
from bot.policy_loader import load_policy
from bot.settings import load_settings
from domain.artifacts import ReplayReport
from domain.chain import ERASED_EVENT_TYPE
from domain.errors import PolicyError
from domain.inbound import Inbound
from domain.policy import Policy, policy_from_json
from domain.recorded_decisions import RecordedCheck, check_recorded_decisions
from domain.replay import ConversationReplay, RecordedInbound, replay_conversation
from storage.ports import Store

INBOUND: TypeAdapter[Inbound] = TypeAdapter(Inbound)


class RecordedPolicies:
    """Each recorded policy version's policy, rebuilt from the text stored under its hash.

    The texts are read as the conversations that name them come up (`fetch`), not by a
    first pass over every stored inbound of the store; each policy is built once."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._texts: dict[str, str] = {}
        self._policies: dict[str, Policy] = {}

    async def fetch(self, versions: Iterable[str]) -> None:
        for version in versions:
            if version not in self._texts:
                text = await self._store.get_policy(version)
                if text is None:
                    raise PolicyError(f"the store has no policy text for version {version[:12]}")
                self._texts[version] = text

    def __call__(self, version: str) -> Policy:
        policy = self._policies.get(version)
        if policy is None:
            policy = self._policies[version] = policy_from_json(self._texts[version])
        return policy


async def _recorded_policies(store: Store) -> Callable[[str], Policy]:
    """The policy of every version the store's inbounds recorded, read up front."""
    policies = RecordedPolicies(store)
    async for stored in store.all_inbounds():
        await policies.fetch((stored.policy_version,))
    return policies


def progress_bar(done: int, total: int, err: TextIO, label: str = "replaying") -> None:
    """`label [#####.....] done/total` on stderr, redrawn in place; on a terminal only."""
    if err.isatty():
        width = 30
        filled = width * done // max(total, 1)
        err.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            err.write("\n")
        err.flush()


async def replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = load_settings()
    async with open_store(settings) as store:
        recorded_policies: RecordedPolicies | None = None
        policy_for: Callable[[str], Policy]
        if args.policy is not None:
            candidate = load_policy(args.policy)
            policy_for = lambda _version: candidate  # noqa: E731  (a what-if: one policy for all)
        else:
            policy_for = recorded_policies = RecordedPolicies(store)
        conversation_ids = await store.conversation_ids()
        results: list[ConversationReplay] = []
        erased: list[RecordedCheck] = []
        for index, conversation_id in enumerate(conversation_ids, start=1):
            events = await store.load(conversation_id)
            stored_inbounds = await store.inbounds(conversation_id)
            if recorded_policies is not None:
                await recorded_policies.fetch(stored.policy_version for stored in stored_inbounds)
            if any(env.event.type == ERASED_EVENT_TYPE for env in events):
                # The inbounds' words are gone: the decisions are re-derived from the
                # numbers they recorded instead (`domain.recorded_decisions`), under the
                # policies their events recorded.
                if recorded_policies is not None:
                    await recorded_policies.fetch(env.policy_version for env in events)
                erased.append(check_recorded_decisions(conversation_id, events, policy_for))
                progress_bar(index, len(conversation_ids), err)
                continue
            recorded = [
                RecordedInbound(
                    inbound=INBOUND.validate_python(stored.inbound),
                    received_at_ms=stored.received_at_ms,
                    policy_version=stored.policy_version,
                )
                for stored in stored_inbounds
            ]
            results.append(replay_conversation(conversation_id, recorded, events, policy_for))
            progress_bar(index, len(conversation_ids), err)
    diffs = (
        *(d for r in results for d in r.differences),
        *(d for check in erased for d in check.differences),
    )
    summary = ReplayReport(
        conversations=len(results),
        inbounds=sum(r.inbounds for r in results),
        differences=len(diffs),
        diffs=diffs,
        erased=tuple(check.conversation_id for check in erased),
        rederived=sum(check.checked for check in erased),
    )
    if args.json:
        out.write(json.dumps(summary.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
    else:
        for d in diffs:
            out.write(
                f"{d.conversation_id} #{d.position} ({d.delivery_id}) {d.aspect}: "
                f"{d.recorded!r} → {d.replayed!r}\n"
            )
        for check in erased:
            out.write(
                f"{check.conversation_id}: [erased]: {check.checked} recorded decisions "
                f"re-derived from their recorded features, {len(check.differences)} differences\n"
            )
        against = f"policy {args.policy}" if args.policy else "the recorded policies"
        out.write(
            f"replayed {summary.conversations} conversations, {summary.inbounds} inbounds "
            f"against {against}: {summary.differences} differences\n"
        )
    return 1 if args.fail_on_diff and diffs else 0
