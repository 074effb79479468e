"""`salesbot report --out DIR [--since ISO] [--until ISO] [--policy P] [--json]`.

Reads every conversation of the live store (`SALESBOT_DB`), computes the report's numbers in
the domain (`domain.report_data.ReportData`), draws them (`bot.report_charts`, the flow with
`dot`: `bot.report_flow`) and writes one self-contained page, `DIR/report.html`
(`bot.report_html`). `--json` also prints the `ReportData` on stdout (its JSON Schema is
`docs/schemas/report.schema.json`).

Contract (the CLI's, `bot.cli`): bad input — an unreadable `--since`/`--until`, a window
that ends before it starts, a store that does not exist, an `--out` that is a file — is
one line on stderr and exit 2, with nothing written. The page is written atomically (a
temporary file in DIR, then a rename), mode 0600 as `mkstemp` makes it: it holds prospects'
company names and credit-derived figures, for auditors only (the operator's shell access is
the boundary; there is no chat command for it). A progress bar (tqdm) runs on stderr while
the conversations are read, on a terminal and for stores of at least `PROGRESS_MIN`
conversations only. Without Graphviz the report is still written and stderr says so in one
line.

Only `argparse` is imported at module level: `salesbot --help` must stay fast
(tests/unit/test_cli_startup.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

REPORT_FILE = "report.html"
PROGRESS_MIN = 200
"""Conversations below which no progress bar is drawn (reading them takes a moment)."""


def add_commands(sub: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    """Register `salesbot report` on the CLI's subparsers."""
    p = sub.add_parser(
        "report",
        parents=[common],
        help="one self-contained HTML report for sales ops (auditors' data)",
        description="Write DIR/report.html from the live store: the /metrics charts, scores "
        "by band, what drives scores, objections, tickets, the narrative scatter, the "
        "fairness counterfactual and the flow with its traffic.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write report.html in")
    p.add_argument(
        "--since",
        metavar="ISO",
        help="only conversations started at or after this time (e.g. 2026-11-01; UTC when "
        "no offset is given)",
    )
    p.add_argument(
        "--until",
        metavar="ISO",
        help="only conversations started before this time, and only their events before it",
    )
    p.add_argument(
        "--installation",
        metavar="ID",
        help="only the conversations of one installation: `first` (the one configured from "
        "the environment) or an id such as slack:T0123 or teams:<tenant id> (default: all)",
    )
    p.set_defaults(handler=cmd_report)


def installation_option(value: str | None) -> str | None:
    """`--installation`: None (every installation), "" for `first`, else the id as given."""
    if value is None:
        return None
    return "" if value.strip().lower() in {"first", ""} else value.strip()


def _time(value: str | None, option: str) -> int | None:
    from bot.cli import UsageError
    from bot.clock import parse_iso_ms

    if value is None:
        return None
    try:
        return parse_iso_ms(value)
    except (ValueError, OverflowError, OSError):
        raise UsageError(
            f"{option} {value!r} is not an ISO 8601 date or time (e.g. 2026-11-01 or "
            "2026-11-01T09:00:00Z)"
        ) from None


def cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    import asyncio

    from bot.cli import UsageError
    from bot.settings import load_settings

    err: TextIO = args.err
    since_ms = _time(args.since, "--since")
    until_ms = _time(args.until, "--until")
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        raise UsageError(f"--until {args.until!r} must be later than --since {args.since!r}")
    directory = Path(args.out)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--out {args.out!r} is a file, not a directory")
    database = Path(load_settings().salesbot_db)
    if not database.exists():
        raise UsageError(f"no store at {database} (set SALESBOT_DB)")
    data = asyncio.run(_report_data(args, database, since_ms, until_ms, err))
    html, problem = render_report(data)
    if problem is not None:
        err.write(f"salesbot: warning: {problem}\n")
    target = write_atomically(directory, REPORT_FILE, html.encode("utf-8"))
    if args.json:
        out.write(data.model_dump_json(indent=2) + "\n")
    else:
        out.write(
            f"wrote {target} ({data.conversations} conversations, {data.leads} leads; "
            f"policy {data.policy_name})\n"
        )
    return 0


async def _report_data(
    args: argparse.Namespace,
    database: Path,
    since_ms: int | None,
    until_ms: int | None,
    err: TextIO,
) -> Any:
    from bot.bootstrap import open_store
    from bot.clock import system_now_ms
    from bot.policy_loader import load_policy
    from bot.report_reads import crm_deliveries, persona_names
    from bot.settings import load_settings
    from domain.installations import conversation_installation
    from domain.report_data import persona_lookup, report_data

    policy = load_policy(args.policy)
    async with open_store(load_settings()) as store:
        conversations = []
        ids = await store.conversation_ids()
        wanted = installation_option(args.installation)
        with _progress(len(ids), err) as bar:
            for conversation_id in ids:
                events = await store.load(conversation_id)
                if wanted is None or conversation_installation(events) == wanted:
                    conversations.append(events)
                bar.update(1)
        versions = {e.policy_version for events in conversations for e in events}
        personas = await persona_names(store, versions)
        deliveries = await crm_deliveries(store, conversations)
    return report_data(
        conversations,
        policy=policy,
        store=str(database),
        persona_of=persona_lookup(personas),
        since_ms=since_ms,
        until_ms=until_ms,
        crm_deliveries=deliveries,
        now_ms=system_now_ms(),
    )


def _progress(total: int, err: TextIO) -> Any:
    """tqdm on stderr, off unless stderr is a terminal and the store is large."""
    from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs installed

    shown = total >= PROGRESS_MIN and err.isatty()
    return tqdm(
        total=total,
        file=err,
        disable=not shown,
        desc="reading conversations",
        unit="conv",
        leave=False,
    )


def render_report(data: Any) -> tuple[str, str | None]:
    """The page for `data` and, when the flow could not be drawn, why (one line)."""
    from bot import report_charts
    from bot.report_flow import render_flow
    from bot.report_html import render_html
    from domain.report_flow import flow_dot

    drawers: dict[str, Callable[[Any], report_charts.Picture | None]] = {
        "metrics": report_charts.metrics_picture,
        "scores": report_charts.scores_picture,
        "drivers": report_charts.contributions_picture,
        "objections": report_charts.objections_picture,
        "tickets": report_charts.tickets_picture,
        "narrative": report_charts.narrative_picture,
        "fairness": report_charts.fairness_picture,
    }
    pictures = {name: draw(data) for name, draw in drawers.items()}
    flow = render_flow(flow_dot(data.flow))
    return render_html(data, pictures, flow.svg, flow.problem), flow.problem


def write_atomically(directory: Path, name: str, payload: bytes) -> Path:
    """Write `directory/name` through a temporary file in the same directory and a rename,
    so a reader never sees half a report and a failure leaves the previous one."""
    import os
    import tempfile

    from bot.cli import UsageError

    target = directory / name
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise UsageError(f"cannot write in {directory}: {exc.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
