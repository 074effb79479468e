"""What `salesbot crm backfill` runs (`bot.cli_crm` parses it): each conversation's
`crm_backfill` inbound through the runtime, then the CRM's writes sent by an outbox worker
of this process until they are settled or the wait runs out. A module of its own so that
the parser imports none of it (start-up, issue 18)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TextIO

BACKFILL_POLL_S = 0.2
PROGRESS_MIN = 1


@dataclass
class BackfillSummary:
    """What `salesbot crm backfill` did, in records (`--json` prints it as it is)."""

    conversations: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    waiting: int = 0

    def as_json(self) -> dict[str, int]:
        return asdict(self)

    def line(self, vendor: str) -> str:
        waiting = f", waiting {self.waiting}" if self.waiting else ""
        return (
            f"{vendor}: backfill of {self.conversations} conversation(s): "
            f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}, "
            f"failed {self.failed}{waiting}\n"
        )


async def backfill_conversations(
    config: Any,
    policy: Any,
    since_ms: int | None,
    wait_s: float,
    err: TextIO,
    installation: str = "",
) -> BackfillSummary:
    """`installation`'s conversations only, their writes sent on its own channel with its
    own CRM (`config`)."""
    import asyncio
    import random

    from adapters.crm.ids import channel_for, outbox_key
    from bot.bootstrap import open_store
    from bot.clock import system_now_ms
    from bot.crm_outbox import CrmOutcomes
    from bot.outbox_worker import OutboxWorker
    from bot.service import build_service
    from bot.settings import load_settings
    from bot.surfaces import crm
    from domain.crm import backfill
    from domain.crm_sync import crm_facts
    from domain.events import CrmSyncRequested
    from domain.inbound import SYSTEM, CrmBackfillRequested

    settings = load_settings()
    summary = BackfillSummary()
    run = system_now_ms()
    async with open_store(settings) as store:
        # The whole composition (its routers send a refusal's alert where `serve` would);
        # only the CRM's writes are sent from here.
        service = build_service(settings, policy, store, clock=system_now_ms)
        runtime = service.runtime
        await store.put_policy(policy.version, policy.canonical_json())
        sender = crm.sender_of(config)
        channel_of_writes = channel_for(installation)
        outcomes = CrmOutcomes(
            runtime.handle,
            lambda channel: sender if channel == channel_of_writes else None,
            runtime.report_dead_letter,
            clock=system_now_ms,
        )
        worker = OutboxWorker(
            store,
            lambda channel: sender if channel == channel_of_writes else None,
            clock=system_now_ms,
            sleep=asyncio.sleep,
            rng=random.Random(),
            pacing_ms=lambda _channel: crm.pacing_ms(config),
            on_dead_letter=outcomes.on_dead_letter,
            on_sent=outcomes.on_sent,
            prefixes=(channel_of_writes,),
        )
        written: dict[str, bool] = {}  # outbox key -> written before (an update)
        ids = await store.conversation_ids()
        with _progress(len(ids), err, "conversations") as bar:
            for conversation_id in ids:
                bar.update(1)
                state = await runtime.conversation(conversation_id)
                if state is None or state.installation != installation:
                    continue  # another installation's: its own CRM, its own backfill
                if since_ms is not None and state.last_activity_ms < since_ms:
                    continue
                summary.conversations += 1
                plan = backfill(
                    state.crm_told, crm_facts(state), policy.crm, first_seq=state.version + 1
                )
                result = await runtime.handle(
                    CrmBackfillRequested(
                        delivery_id=f"crm-backfill:{run}:{conversation_id}",
                        conversation_id=conversation_id,
                        actor=SYSTEM,
                    )
                )
                if result.decision is None or state.erased:
                    continue
                summary.unchanged += plan.unchanged
                for envelope in result.decision.events:
                    if isinstance(envelope.event, CrmSyncRequested):
                        key = outbox_key(conversation_id, envelope.seq)
                        written[key] = envelope.event.external_id in state.crm_told
        await _send_all(store, worker, written, summary, wait_s, err)
    return summary


async def _send_all(
    store: Any,
    worker: Any,
    written: dict[str, bool],
    summary: BackfillSummary,
    wait_s: float,
    err: TextIO,
) -> None:
    """Send until every write is settled (written or dead-lettered) or `wait_s` passes;
    count each by its outcome. Another process (a `salesbot serve`) may settle some."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    open_keys = set(written)
    with _progress(len(written), err, "writes") as bar:
        try:
            while open_keys:
                await worker.drain_once()
                for key in sorted(open_keys):
                    item = await store.outbox_item(key)
                    if item is None or item.status not in ("sent", "dead"):
                        continue
                    open_keys.discard(key)
                    bar.update(1)
                    if item.status == "dead":
                        summary.failed += 1
                    elif written[key]:
                        summary.updated += 1
                    else:
                        summary.created += 1
                if not open_keys or loop.time() >= deadline:
                    break
                await asyncio.sleep(BACKFILL_POLL_S)
        finally:
            await worker.release()
    summary.waiting = len(open_keys)


def _progress(total: int, err: TextIO, unit: str) -> Any:
    """tqdm on stderr, only on a terminal (never in a pipe, a log or a test)."""
    from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs installed

    return tqdm(
        total=total,
        file=err,
        disable=total < PROGRESS_MIN or not err.isatty(),
        desc=f"crm backfill: {unit}",
        unit=unit[:4],
        leave=False,
    )
