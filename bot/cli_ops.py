"""CLI commands that read the configured store: audit, metrics, projections, chat (replay is
`bot.cli_replay`).

They open the store themselves (`SALESBOT_DB`), so they work on a copy of production data
or next to a running bot (WAL lets readers and the bot's writer work at once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import getpass
import io
import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal, TextIO

from adapters.ports import Route
from adapters.terminal.ids import SCHEME as TERMINAL
from bot.audit_bundle import build_bundle, write_file
from bot.boot_slot import BootSlot
from bot.bootstrap import open_store
from bot.chat import ChatSession
from bot.cli_replay import progress_bar as progress_bar  # `salesbot verify` draws it too
from bot.clock import system_now_ms
from bot.policy_loader import load_checked_policy, load_policy
from bot.queries import load_audit, load_metrics
from bot.report import installation_option
from bot.runtime import Runtime
from bot.settings import load_settings
from domain.analytics import render_metrics
from domain.audit import render_audit
from domain.audit_bundle import BundleManifest
from domain.cards import Reply
from domain.errors import DomainError
from domain.events import Erased
from domain.fairness_report import LeadSample, fairness_report, lead_sample, render_fairness
from domain.inbound import Actor, CommandInvoked, Inbound
from domain.narrative import FairnessConfig
from domain.state import ConversationState

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The bot cannot start where it was asked to (a busy port): one line, exit 2."""


def _login() -> str:
    """Who ran the command, for the audit trail: the login name ($LOGNAME, $USER, the
    account entry), else `uid:<n>`. A container's user often has no account entry, and
    `getpass.getuser()` then raises (KeyError; OSError from Python 3.13)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):
        getuid = getattr(os, "getuid", None)
        return f"uid:{getuid()}" if getuid is not None else "unknown"


class _Unrouted:
    """Decisions taken at the command line have no chat to answer in: nothing is routed."""

    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        return []


async def audit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = load_settings()
    policy = load_policy(None if args.policy is None else args.policy)
    bundle: Path | None = None if args.bundle is None else Path(args.bundle)
    async with open_store(settings) as store:
        report = await load_audit(store, args.id)
        manifest = None
        if bundle is not None:
            # Written before the access is recorded, so a path that cannot be written
            # records nothing; the bundle therefore holds the record as it was before.
            data, manifest = await build_bundle(store, report.conversation_id)
            try:
                write_file(bundle, data)
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise DomainError(f"cannot write the bundle to {bundle}: {reason}") from None
        # Access to audit data is itself audited, from the command line as from chat.
        runtime = Runtime(store, policy, _Unrouted(), clock=system_now_ms)
        await runtime.start()
        operator = Actor(id=f"cli:{_login()}", name="command line", role="rep", auditor=True)
        try:
            await runtime.handle(
                CommandInvoked(
                    delivery_id=f"cli-audit:{uuid.uuid4().hex}",
                    conversation_id=report.conversation_id,
                    actor=operator,
                    command="audit",
                    args=args.id,
                )
            )
        except BaseException:
            if bundle is not None:  # no bundle leaves without its access on record
                bundle.unlink(missing_ok=True)
            raise
    if manifest is not None and bundle is not None:
        _bundle_written(bundle, manifest, args.json, out)
        return 0
    if args.json:
        # Numbers as JSON numbers (scores, weights, contributions; money is integer cents),
        # as every other command's --json prints them.
        out.write(json.dumps(report.model_dump(mode="python"), default=_json_number, indent=2))
        out.write("\n")
    else:
        for line in render_audit(report, detail=args.detail):
            out.write(line + "\n")
    return 0


async def erase(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`salesbot erase ID [--reason request|retention] [--by NAME]`: erase the prospect's
    personal data in the conversation of ID (a conversation, lead or quote id), as
    `Runtime.erase` does; one line (or `--json`) saying what was erased and what remains.
    Whoever can run this has the store: the operator's shell access is the boundary."""
    settings = load_settings()
    policy = load_policy(None if args.policy is None else args.policy)
    if args.reason not in ("request", "retention"):
        raise DomainError(f"--reason must be request or retention, not {args.reason!r}")
    reason: Literal["request", "retention"] = args.reason
    by = args.by.strip() if args.by is not None else f"cli:{_login()}"
    if not by or len(by) > 200 or not by.isprintable():
        raise DomainError("--by must be 1 to 200 printable characters")
    async with open_store(settings) as store:
        conversation_id: str | None = args.id
        if not await store.version(args.id):
            conversation_id = await store.quote_conversation(args.id)
        if conversation_id is None:
            raise DomainError(f"No conversation, lead or quote with id {args.id!r}.")
        runtime = Runtime(store, policy, _Unrouted(), clock=system_now_ms)
        await store.put_policy(policy.version, policy.canonical_json())
        envelope = await runtime.erase(conversation_id, by=by, reason=reason)
        if envelope is None:
            result: dict[str, object] = {"conversation_id": conversation_id, "erased": False}
            line = f"{conversation_id}: already erased; nothing more to erase"
        else:
            event = envelope.event
            assert isinstance(event, Erased)
            result = {
                "conversation_id": conversation_id,
                "erased": True,
                "seq": envelope.seq,
                "at_ms": envelope.at_ms,
                "by": event.by,
                "reason": event.reason,
                "legacy_events": event.legacy_events,
            }
            line = (
                f"{conversation_id}: erased ({event.reason}, by {event.by}) at seq "
                f"{envelope.seq}: its key is deleted, its words read [erased]"
            )
            if event.legacy_events:
                line += (
                    f"; {event.legacy_events} events stored before sealing existed keep "
                    "their words (README, 'Personal data')"
                )
    if args.json:
        out.write(json.dumps(result, indent=2) + "\n")
    else:
        out.write(line + "\n")
    return 0


def _json_number(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _bundle_written(path: Path, manifest: BundleManifest, as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(manifest.model_dump_json(indent=2) + "\n")
        return
    head = manifest.chain.head
    where = "no chain head" if head is None else f"chain head seq {head.seq} {head.hash}"
    out.write(
        f"wrote {path}: conversation {manifest.conversation_id}, {manifest.events} events "
        f"({where}), {manifest.inbounds} inbounds, {len(manifest.policies)} policies, "
        f"{len(manifest.schemas)} schemas. Check it with: salesbot verify {path}\n"
    )


async def metrics(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = load_settings()
    policy = load_policy(args.policy)
    async with open_store(settings) as store:
        result = await load_metrics(store, policy, installation_option(args.installation) or "")
    if args.json:
        out.write(result.model_dump_json(indent=2) + "\n")
    else:
        for line in render_metrics(result):
            out.write(line + "\n")
    return 0


def _decimal_option(text: str | None, name: str, default: Decimal) -> Decimal:
    if text is None:
        return default
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise DomainError(f"{name} must be a number, not {text!r}") from None
    if not value.is_finite() or value < 0:
        raise DomainError(f"{name} must be a finite number ≥ 0, not {text!r}")
    return value


async def fairness(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Stored leads decided with and without the fairness penalty (`domain.fairness_report`),
    under the policy's knobs or those given. The figures are about groups, but they come from
    credit scores: auditors' data (the operator's shell access is the boundary)."""
    settings = load_settings()
    policy = load_policy(args.policy)
    floor = policy.pursuit.min_urgency if policy.pursuit is not None else None
    if args.min_urgency is None and floor is None:
        raise DomainError(
            f"policy {policy.name} has no [pursuit]: nothing is pursued now; "
            "give --min-urgency to ask what it would be"
        )
    min_urgency = _decimal_option(args.min_urgency, "--min-urgency", floor or Decimal(0))
    lam = _decimal_option(args.lambda_, "--lambda", policy.fairness.lambda_)
    if lam > 1:
        raise DomainError(f"--lambda must be between 0 and 1, not {args.lambda_!r}")
    knobs = FairnessConfig(c0=policy.fairness.c0 if args.c0 is None else args.c0, lambda_=lam)
    samples: list[LeadSample] = []
    async with open_store(settings) as store:
        for conversation_id in await store.conversation_ids():
            sample = lead_sample(conversation_id, await store.load(conversation_id))
            if sample is not None:
                samples.append(sample)
    report = fairness_report(
        samples,
        policy_version=policy.version,
        urgency_weights=dict(policy.narrative.urgency_weights),
        fairness=knobs,
        min_urgency=min_urgency,
        sweep=args.sweep,
    )
    if args.json:
        out.write(report.model_dump_json(indent=2) + "\n")
    else:
        for line in render_fairness(report):
            out.write(line + "\n")
    return 0


async def projections_rebuild(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Recompute the projections `/metrics` and `/audit` read from the event log. Safe next
    to a running bot (its commits wait only for the final swap) and idempotent: `changed`
    counts the stored rows the log disagreed with, 0 on a second run."""
    settings = load_settings()
    async with open_store(settings) as store:
        summary = await store.rebuild_projections()
    if args.json:
        out.write(summary.model_dump_json(indent=2) + "\n")
    else:
        out.write(
            f"projections rebuilt from {summary.events} events: {summary.conversations} "
            f"conversations, {summary.qualified} qualified, {summary.quotes} quotes indexed; "
            f"{summary.changed} stored rows differed (schema {summary.schema_version}, "
            f"{summary.generator})\n"
        )
    return 0


class _Output:
    """The chat's stdout. When the reader goes away (`salesbot chat --json | head -3`), the
    session stops reading input and ends quietly: no traceback, no retried sends logged."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.closed = False

    def write(self, line: str) -> None:
        if self.closed:
            return
        try:
            self._out.write(line + "\n")
            self._out.flush()
        except BrokenPipeError:
            self.closed = True
            # Python flushes stdout once more at exit: point it at /dev/null first.
            with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._out.fileno())

    def while_open(self, lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            if self.closed:
                return
            yield line


async def chat(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = load_settings()
    policy = load_checked_policy(args.policy)
    session = format(system_now_ms(), "x")
    conversation_id = args.conversation or TERMINAL.conversation_id(session)

    output = _Output(out)
    async with open_store(settings, memory=args.memory) as store:
        slot = None if args.memory else BootSlot.acquire(settings.salesbot_db)
        chat_session = ChatSession(
            store,
            policy,
            output.write,
            conversation_id=conversation_id,
            session=session,
            clock=system_now_ms,
            outbox_identity=None if slot is None else slot.identity,
            json_lines=args.json,
        )
        try:
            await chat_session.run(output.while_open(args.input))
        finally:
            await chat_session.close()
            if slot is not None:
                slot.release()
    return 0


async def serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run until SIGINT/SIGTERM: every configured platform in one aiohttp server."""
    import signal

    from aiohttp import web

    from bot.server import SHUTDOWN_TIMEOUT_S, build_app
    from bot.service import build_service

    settings = load_settings()
    policy = load_checked_policy(args.policy)
    host = args.host or settings.salesbot_host
    settings = settings.model_copy(update={"salesbot_host": host})
    port = settings.salesbot_port if args.port is None else args.port
    async with open_store(settings, serving=True) as store:
        slot = BootSlot.acquire(settings.salesbot_db)  # held until this process ends
        service = build_service(
            settings,
            policy,
            store,
            clock=system_now_ms,
            outbox_identity=None if slot is None else slot.identity,
        )
        # On SIGTERM/SIGINT `cleanup` stops listening, lets the requests under way finish
        # (up to SHUTDOWN_TIMEOUT_S), then stops the service: the outbox finishes its sends
        # and releases its leases, so the next start delivers the pending replies at once.
        # aiohttp's access log is off: it logs the raw path (ids, a playground ?token=);
        # bot.server's middleware logs one line per request with the route pattern instead.
        runner = web.AppRunner(
            build_app(service),
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            access_log=None,
        )
        await runner.setup()
        settle_heap()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise StartupError(_listen_failure(host, port, exc)) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        bound = runner.addresses[0][1] if runner.addresses else port
        platforms, notices = service.startup_lines(host, bound)
        out.write(
            f"salesbot serving on http://{host}:{bound} (policy {policy.short_version}; "
            f"platforms: {', '.join(platforms)})\n"
        )
        log.info("serving on %s:%s (platforms: %s)", host, bound, ", ".join(platforms))
        for line in notices:
            out.write(line + "\n")
        out.flush()
        # SciPy (the conversion intervals of the `/metrics` command) loads on a worker
        # thread once the bot listens: readiness does not wait for it, and the first
        # `/metrics` does not stall the event loop for the second it takes to import.
        loop.run_in_executor(None, _preload, "scipy.stats")
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            if slot is not None:
                slot.release()
    return 0


def settle_heap() -> None:
    """Before listening: collect once, then move everything alive — imports, the policy
    and its reader model, the service — out of the garbage collector's sight
    (`gc.freeze`).

    Those hundreds of thousands of objects live as long as the process, yet every full
    collection walked them all again: under the Slack bench's load a full collection took
    50–380 ms, the event loop and every request waiting behind it. Frozen, a collection
    walks only what was made since. Reference counting still frees a frozen object the
    moment it is no longer used; only the cycle collector stops looking at them."""
    import gc

    gc.collect()
    gc.freeze()


def _preload(module: str) -> None:
    """Import `module` ahead of its first use; if it cannot be, that use will say why."""
    import gc
    import importlib

    # The import makes a few hundred thousand objects that live as long as the process.
    # Collections triggered while it runs would walk them all again and again, pausing the
    # serving event loop (76 ms measured): none run during the import, and afterwards
    # what it made joins the frozen start-up objects (`settle_heap`). No collection before
    # freezing — the bot is serving, and a full one would pause it; the cost is that a
    # cycle already garbage at this instant is never collected.
    enabled = gc.isenabled()
    gc.disable()
    try:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
        gc.freeze()
    finally:
        if enabled:
            gc.enable()


def _listen_failure(host: str, port: int, exc: OSError) -> str:
    shown = f"[{host}]" if ":" in host else host
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {shown}:{port}: the address is already in use (another "
            "salesbot? choose another with --port or SALESBOT_PORT)"
        )
    if exc.errno is not None and exc.errno > 0:
        reason = os.strerror(exc.errno)
    else:  # a host name that does not resolve (socket.gaierror)
        reason = exc.strerror or type(exc).__name__
    return f"cannot listen on {shown}:{port}: {reason}"


async def demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from bot.demo import seed_demo
    from bot.service import build_service

    settings = load_settings()
    policy = load_policy(args.policy)
    async with open_store(settings) as store:
        service = build_service(settings, policy, store, clock=system_now_ms)
        await service.runtime.start()
        committed = await seed_demo(service.runtime)
    out.write(
        f"demo: {committed} inbounds committed to {settings.salesbot_db} "
        f"(0 means the demo was already seeded). Try: salesbot metrics, salesbot audit lead-demo-1\n"
    )
    return 0
