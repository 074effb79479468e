"""`salesbot crm check`, `salesbot crm setup` and `salesbot crm backfill` (issue 16, item 4):
is the configured CRM ready for salesbot's writes, create what it needs, and bring it up to
what the stored conversations have reached.

`check` names every problem on its own line (the token or scopes, a custom property or
field missing, a stage id the CRM does not know) and exits 1 when there is any, 0 with one
line when the CRM is ready. `setup` creates HubSpot's custom properties (idempotent: it
says what it created, nothing when all were there) and prints Salesforce's Setup steps,
which its REST API cannot do. Without `SALESBOT_CRM`, one line and exit 2.

`backfill` goes through the normal path, so audit and replay stay exact: each conversation
(active since `--since`) receives a `crm_backfill` inbound, decided by the domain into the
`crm_sync_requested` events the policy's `[crm]` calls for and the CRM never got
(`domain.crm.backfill`), committed with their outbox items; then this process sends them
through an outbox worker of its own (the CRM's channel only: a running `salesbot serve` may
take some of them, the leases keep every write single). Running it twice writes nothing new.
The summary counts records: created (written for the first time), updated (written before,
changed since or refused last time), unchanged (already as they should be), failed
(refused for good: dead-lettered and alerted) and, when `--wait` runs out, waiting.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from typing import Any, TextIO

EXIT_OK = 0
EXIT_PROBLEMS = 1

BACKFILL_WAIT_S = 120.0
"""How long `backfill` waits, by default, for its writes to be settled (a 429's Retry-After
and the outbox's backoff included) before it reports the rest as waiting."""
BACKFILL_POLL_S = 0.2
PROGRESS_MIN = 1


def _installation(args: argparse.Namespace) -> str:
    """`--installation`: "" for the first installation (`first`, the default), else the id."""
    from bot.report import installation_option

    return installation_option(getattr(args, "installation", None)) or ""


def _section(args: argparse.Namespace) -> Any:
    """The CRM of the installation `--installation` names: the environment's for the first,
    its table in `SALESBOT_CRM_INSTALLATIONS_FILE` for another."""
    from bot.settings import SettingsError, load_settings
    from bot.surfaces import crm, crm_installations

    installation = _installation(args)
    settings = load_settings()
    if installation:
        found = crm_installations.section(settings)
        config = None if found is None else found.crms.get(installation)
        if config is None:
            raise SettingsError(
                f"installation {installation} has no CRM: give it a table in "
                "SALESBOT_CRM_INSTALLATIONS_FILE (docs/crm.md)"
            )
        return config
    config = crm.section(settings)
    if config is None:
        raise SettingsError("no CRM is configured: set SALESBOT_CRM to hubspot or salesforce")
    return config


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    from bot.policy_loader import load_policy

    config = _section(args)
    policy = load_policy(args.policy)
    if config.vendor == "hubspot":
        from adapters.crm import hubspot_setup

        problems = hubspot_setup.check(config.hubspot_token, config.hubspot_api_url, crm=policy.crm)
    else:
        from adapters.crm import salesforce_setup

        problems = salesforce_setup.check(
            config.salesforce,
            mode=config.salesforce_records,
            api_version=config.salesforce_api_version,
            quotes=policy.crm is not None and policy.crm.quote_as == "quote",
        )
    for problem in problems:
        out.write(f"{config.vendor}: {problem}\n")
    if problems:
        return EXIT_PROBLEMS
    out.write(f"{config.vendor}: ready for salesbot's writes\n")
    return EXIT_OK


def cmd_setup(args: argparse.Namespace, out: TextIO) -> int:
    config = _section(args)
    if config.vendor == "hubspot":
        from adapters.crm import hubspot_setup
        from bot.settings import SettingsError

        try:
            done = hubspot_setup.setup(config.hubspot_token, config.hubspot_api_url)
        except (hubspot_setup.HubSpotProblemError, hubspot_setup.HubSpotUnreachableError) as exc:
            raise SettingsError(f"hubspot: {exc}") from None
        for line in done:
            out.write(f"hubspot: {line}\n")
        if not done:
            out.write("hubspot: every property salesbot needs is there; nothing created\n")
        return EXIT_OK
    from adapters.crm import salesforce_setup
    from bot.policy_loader import load_policy
    from bot.settings import load_settings

    # The policy says whether quotes are Quote objects (`[crm] quote_as = "quote"`), which
    # need Quotes turned on and fields on two more objects.
    policy = load_policy(args.policy or load_settings().salesbot_policy)
    quotes = policy.crm is not None and policy.crm.quote_as == "quote"
    out.write("salesforce: its REST API cannot create fields; in Setup, as an administrator:\n")
    for line in salesforce_setup.setup_steps(config.salesforce_records, quotes=quotes):
        out.write(f"  {line}\n")
    return EXIT_OK


@dataclass
class BackfillSummary:
    """What `salesbot crm backfill` did, in records (`--json` prints it as it is)."""

    conversations: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    waiting: int = 0

    def line(self, vendor: str) -> str:
        waiting = f", waiting {self.waiting}" if self.waiting else ""
        return (
            f"{vendor}: backfill of {self.conversations} conversation(s): "
            f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}, "
            f"failed {self.failed}{waiting}\n"
        )


def cmd_backfill(args: argparse.Namespace, out: TextIO) -> int:
    import asyncio
    import json

    from bot.cli import UsageError
    from bot.clock import parse_iso_ms
    from bot.policy_loader import load_policy
    from bot.settings import SettingsError

    config = _section(args)
    policy = load_policy(args.policy)
    if policy.crm is None:
        raise SettingsError(
            "the policy has no [crm] table: it syncs nothing (README, 'Policies': [crm])"
        )
    since_ms = None
    if args.since is not None:
        try:
            since_ms = parse_iso_ms(args.since)
        except (ValueError, OverflowError, OSError):
            raise UsageError(
                f"--since {args.since!r} is not an ISO 8601 date or time (e.g. 2026-11-01 or "
                "2026-11-01T09:00:00Z)"
            ) from None
    if args.wait < 0:
        raise UsageError("--wait cannot be negative")
    summary = asyncio.run(
        _backfill(config, policy, since_ms, args.wait, sys.stderr, _installation(args))
    )
    if args.json:
        out.write(json.dumps({"schema_version": 1, "crm": config.vendor, **asdict(summary)}))
        out.write("\n")
    else:
        out.write(summary.line(config.vendor))
    return EXIT_PROBLEMS if summary.failed or summary.waiting else EXIT_OK


async def _backfill(
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


def _installation_argument(parser: Any) -> None:
    parser.add_argument(
        "--installation",
        metavar="ID",
        help="whose CRM: `first` (default: SALESBOT_CRM's) or an installation id such as "
        "slack:T0123 with a table in SALESBOT_CRM_INSTALLATIONS_FILE",
    )


def add_commands(sub: Any, common: Any, parser_class: type) -> None:
    crm = sub.add_parser("crm", help="the CRM salesbot writes to: check it, set it up")
    actions = crm.add_subparsers(dest="crm_command", required=True, parser_class=parser_class)
    p = actions.add_parser(
        "check",
        parents=[common],
        help="is the configured CRM ready (token, scopes, fields, stages)? exit 1 if not",
    )
    _installation_argument(p)
    p.set_defaults(handler=cmd_check)
    p = actions.add_parser(
        "setup",
        help="create the custom properties salesbot needs (HubSpot), or print the steps",
    )
    _installation_argument(p)
    p.set_defaults(handler=cmd_setup, policy=None, policy_flag_means_candidate=True)
    p = actions.add_parser(
        "backfill",
        parents=[common],
        help="push the stored conversations to the CRM (idempotent); a summary of the records",
    )
    p.add_argument(
        "--since",
        metavar="ISO",
        help="only conversations active since then (default: all)",
    )
    p.add_argument(
        "--wait",
        metavar="SECONDS",
        type=float,
        default=BACKFILL_WAIT_S,
        help=f"how long to wait for the writes to be settled (default {BACKFILL_WAIT_S:.0f})",
    )
    _installation_argument(p)
    p.set_defaults(handler=cmd_backfill)
