"""The `salesbot` command line.

Exit codes are a contract: 0 success, 1 a check that found something, 2 bad input or
usage. Errors are one line on stderr, never a traceback; `--json` prints exactly one
JSON object on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, NoReturn, TextIO

from bot import (
    cli_backup,
    cli_crm,
    cli_migrate,
    cli_schema,
    cli_understand,
    cli_verify,
    report,
)
from domain.errors import DomainError
from storage.errors import StorageError

# Start-up is part of the contract (issue 18): `salesbot --help` and building the parser
# import argparse and this package's parser modules, nothing else. Each command imports
# what it needs when it runs (pydantic, the policy, the store, aiohttp, SciPy…);
# tests/unit/test_cli_startup.py fails when an eager import comes back.

EXIT_OK = 0
EXIT_FOUND = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input detected by the CLI itself (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"salesbot: error: {message}\n")


def _json_default(value: object) -> object:
    from decimal import Decimal

    if isinstance(value, Decimal):
        # JSON numbers; these are weights and scores, not money (money is integer cents).
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _emit_json(data: dict[str, Any], out: TextIO) -> None:
    import json

    out.write(json.dumps(data, default=_json_default, ensure_ascii=False, indent=2) + "\n")


def _now_ms(args: argparse.Namespace) -> int:
    from bot.clock import parse_iso_ms, system_now_ms

    if args.now is None:
        return system_now_ms()
    try:
        return parse_iso_ms(args.now)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_score(args: argparse.Namespace, out: TextIO) -> int:
    from datetime import UTC, datetime

    from bot.clock import system_now_ms
    from bot.policy_loader import load_policy
    from domain.artifacts import LeadScoreReport
    from domain.presenters import number, score_lines
    from domain.scoring import score_lead

    policy = load_policy(args.policy)
    text = " ".join(args.text)
    if policy.understanding is not None:
        from domain.understanding.scores import score_text

        today = datetime.fromtimestamp(system_now_ms() / 1000, tz=UTC).date()
        score = score_text(policy.understanding.reader, text, today=today)
    else:
        score = score_lead(text, policy.scoring)
    if args.json:
        _emit_json(LeadScoreReport.of(score, policy).model_dump(mode="python"), out)
    else:
        chance = ""
        if score.hot_probability is not None:
            chance = f"; {number(score.hot_probability)} calibrated probability of hot"
        out.write(
            f"score {number(score.score)} ({score.band}{chance}) under policy {policy.name}\n"
        )
        for line in score_lines(score):
            out.write(f"  {line}\n")
    return EXIT_OK


def cmd_quote(args: argparse.Namespace, out: TextIO) -> int:
    from decimal import Decimal

    from bot.policy_loader import load_policy
    from domain.artifacts import QuoteReport
    from domain.money import parse_amount, parse_fraction
    from domain.quotes import QuoteRequest, compute_quote

    policy = load_policy(args.policy)
    catalog = policy.catalog
    if args.unit is None and args.sku is None:
        raise UsageError("give --unit PRICE (a custom line) or --sku CODE (a catalog item)")
    request = QuoteRequest(
        qty=args.qty,
        sku=args.sku,
        unit_cents=parse_amount(args.unit, catalog.minor_units) if args.unit is not None else None,
        discount=parse_fraction(args.discount) if args.discount is not None else Decimal(0),
        tax_rate=parse_fraction(args.tax) if args.tax is not None else None,
    )
    quote = compute_quote(request, catalog, now_ms=_now_ms(args))
    if args.json:
        _emit_json(QuoteReport.of(quote, policy).model_dump(mode="python"), out)
    else:
        figures = quote.figures()
        out.write(
            f"Quote {quote.quote_id}: total {figures['total']}, valid until {figures['expires']}\n"
        )
        if quote.needs_approval:
            out.write("  needs approval: the discount is above the rep cap\n")
        for line in quote.proof:
            out.write(f"  {line}\n")
    return EXIT_OK


def cmd_narrative(args: argparse.Namespace, out: TextIO) -> int:
    from bot.policy_loader import load_policy
    from domain.artifacts import NarrativeReport
    from domain.narrative import assess_narrative
    from domain.presenters import number

    policy = load_policy(args.policy)
    audit = assess_narrative(" ".join(args.text), policy.narrative, policy.fairness, args.credit)
    if args.json:
        _emit_json(NarrativeReport.of(audit, policy).model_dump(mode="python"), out)
    else:
        out.write(
            f"resonance {number(audit.resonance)}, urgency {number(audit.raw_urgency)} → "
            f"{number(audit.penalized_urgency)} ({audit.reason}; {audit.reason_code})\n"
        )
    return EXIT_OK


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    from bot.business_hours import zone_problems
    from bot.policy_loader import load_policy
    from domain.artifacts import CheckReport, PolicyRef
    from domain.policy_check import check_policy

    policy = load_policy(args.policy)
    problems = check_policy(policy) + zone_problems(policy)
    if args.json:
        report = CheckReport(policy=PolicyRef.of(policy), violations=problems)
        _emit_json(report.model_dump(mode="python"), out)
    else:
        for line in problems:
            out.write(f"{line}\n")
        if not problems:
            out.write(f"policy {policy.name} ({policy.short_version}) is sound\n")
    return EXIT_FOUND if problems else EXIT_OK


def cmd_flow(args: argparse.Namespace, out: TextIO) -> int:
    from bot.policy_loader import load_policy
    from domain.flow import to_dot, to_mermaid

    policy = load_policy(args.policy)
    render = to_mermaid if args.format == "mermaid" else to_dot
    out.write(render(policy.flow).rstrip("\n") + "\n")
    return EXIT_OK


def cmd_manifest(args: argparse.Namespace, out: TextIO) -> int:
    from bot.settings import load_settings

    settings = load_settings()
    if args.platform == "slack":
        from adapters.slack.manifest import manifest_json as slack_manifest

        out.write(slack_manifest(settings.salesbot_public_url))
        return EXIT_OK
    from adapters.teams.manifest import manifest_json as teams_manifest
    from adapters.teams.manifest import resolve_app_id

    app_id, notice = resolve_app_id(settings.teams_app_id)
    if notice:
        sys.stderr.write(f"salesbot: note: {notice}\n")
    out.write(teams_manifest(app_id=app_id, public_url=settings.salesbot_public_url))
    return EXIT_OK


def cmd_teams_package(args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from adapters.teams.manifest import build_package, resolve_app_id
    from bot.settings import load_settings

    settings = load_settings()
    app_id, notice = resolve_app_id(settings.teams_app_id)
    if notice:
        sys.stderr.write(f"salesbot: note: {notice}\n")
    target = Path(args.out)
    try:
        target.write_bytes(build_package(app_id=app_id, public_url=settings.salesbot_public_url))
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    out.write(f"wrote {target} (upload it in Teams: Apps → Manage your apps → Upload an app)\n")
    return EXIT_OK


def jobs_arg(text: str) -> int:
    """`--jobs`: a whole number of worker processes, 0 for one per CPU."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, not {text!r}")
    return value


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    """`bot.cli_replay`, imported when it runs: replay needs the store and the domain, not
    the runtime and the chat surfaces `bot.cli_ops` brings in."""
    import asyncio

    from bot.cli_replay import replay

    return asyncio.run(replay(args, out, sys.stderr))


def _ops(name: str) -> Callable[[argparse.Namespace, TextIO], int]:
    """The async command `name` of `bot.cli_ops`, imported when it runs: those commands open
    the store and build the runtime (aiohttp, SciPy through the analytics), which `--help`
    and every other command must not pay for at start-up."""

    def run(args: argparse.Namespace, out: TextIO) -> int:
        import asyncio

        from bot import cli_ops

        command: Callable[[argparse.Namespace, TextIO, TextIO], Coroutine[Any, Any, int]]
        command = getattr(cli_ops, name)
        try:
            return asyncio.run(command(args, out, sys.stderr))
        except cli_ops.StartupError as exc:  # a busy port: one line, exit 2, like bad usage
            raise UsageError(str(exc)) from None

    return run


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--policy",
        metavar="NAME|PATH",
        help="bundled policy name or TOML path (default: $SALESBOT_POLICY or 'default')",
    )
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    timed = _Parser(add_help=False)
    timed.add_argument(
        "--now", metavar="ISO8601", help="the time to decide at (default: the system clock)"
    )

    parser = _Parser(
        prog="salesbot", description="An auditable sales assistant for Slack and Microsoft Teams."
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    p = sub.add_parser("score", parents=[common], help="lead score with per-feature contributions")
    p.add_argument("text", nargs="+", help="the lead's text")
    p.set_defaults(handler=cmd_score)

    p = sub.add_parser("quote", parents=[common, timed], help="a quote with its arithmetic")
    p.add_argument("--qty", type=int, required=True, help="quantity (a positive integer)")
    p.add_argument("--unit", metavar="PRICE", help="unit price in major units, e.g. 199.00")
    p.add_argument("--sku", metavar="CODE", help="catalog SKU, e.g. PRO")
    p.add_argument("--discount", metavar="F", help="discount fraction (0.1) or percent (10%%)")
    p.add_argument(
        "--tax", metavar="F", help="tax rate fraction or percent (default: the catalog's)"
    )
    p.set_defaults(handler=cmd_quote)

    p = sub.add_parser(
        "narrative", parents=[common], help="resonance, urgency and the fairness penalty"
    )
    p.add_argument("text", nargs="+", help="the lead's text")
    p.add_argument("--credit", type=int, help="credit score (omit when unknown)")
    p.set_defaults(handler=cmd_narrative)

    p = sub.add_parser("check", parents=[common], help="validate and verify a policy")
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("demo", parents=[common], help="seed a few realistic leads into the store")
    p.set_defaults(handler=_ops("demo"))

    p = sub.add_parser(
        "serve", parents=[common], help="the bot: every configured platform in one server"
    )
    p.add_argument("--host", help="bind address (default $SALESBOT_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default $SALESBOT_PORT or 3000; 0 = any free)")
    p.set_defaults(handler=_ops("serve"))

    p = sub.add_parser(
        "chat",
        parents=[common],
        help="a conversation in the terminal (stdin lines; --json: one JSON object per output)",
    )
    p.add_argument("--memory", action="store_true", help="use an in-memory store, not SALESBOT_DB")
    p.add_argument("--conversation", metavar="ID", help="continue this conversation")
    p.set_defaults(handler=_ops("chat"), input=None)

    p = sub.add_parser(
        "replay", parents=[common], help="re-run stored conversations through decide"
    )
    p.add_argument(
        "--fail-on-diff", action="store_true", help="exit 1 when any decision would change"
    )
    p.add_argument(
        "--jobs",
        type=jobs_arg,
        default=1,
        metavar="N",
        help="replay in N worker processes (0: one per CPU; default 1); the report is the same",
    )
    p.set_defaults(handler=cmd_replay, policy_flag_means_candidate=True)

    p = sub.add_parser(
        "audit", parents=[common], help="every decision on a conversation, lead or quote"
    )
    p.add_argument("id", help="conversation id, lead id or quote id")
    p.add_argument(
        "--detail",
        action="store_true",
        help="add the engineering detail: event types, formulas, policy hashes",
    )
    p.add_argument(
        "--bundle",
        metavar="FILE",
        help="write the conversation's tamper-evident audit bundle (a zip) to FILE instead",
    )
    p.set_defaults(handler=_ops("audit"))

    p = sub.add_parser(
        "erase",
        parents=[common],
        help="erase a prospect's personal data in a conversation (its key is deleted)",
    )
    p.add_argument("id", help="conversation id, lead id or quote id")
    p.add_argument(
        "--reason",
        default="request",
        help="why: request (the prospect asked; the default) or retention",
    )
    p.add_argument("--by", metavar="NAME", help="who erases it (default: cli:<login name>)")
    p.set_defaults(handler=_ops("erase"))

    p = sub.add_parser(
        "metrics", parents=[common], help="conversion, time to qualify, abandonment, funnel"
    )
    p.add_argument(
        "--installation",
        metavar="ID",
        help="whose conversations: `first` (default: the installation configured from the "
        "environment) or an id such as slack:T0123 or teams:<tenant id>",
    )
    p.set_defaults(handler=_ops("metrics"))

    p = sub.add_parser(
        "fairness",
        parents=[common],
        help="what the fairness penalty changes: stored leads pursued now with and without it",
    )
    p.add_argument("--c0", type=int, metavar="N", help="credit threshold (default: the policy's)")
    p.add_argument(
        "--lambda",
        dest="lambda_",
        metavar="X",
        help="penalty fraction, 0 to 1 (default: the policy's)",
    )
    p.add_argument(
        "--min-urgency",
        metavar="X",
        help="urgency a hot lead needs to be pursued now (default: the policy's [pursuit])",
    )
    p.add_argument("--sweep", action="store_true", help="also sweep c0 (±50, ±100) and λ 0…1")
    p.set_defaults(handler=_ops("fairness"))

    p = sub.add_parser("projections", help="the stored projections /metrics and /audit read")
    actions = p.add_subparsers(
        dest="projections_action", required=True, metavar="ACTION", parser_class=_Parser
    )
    q = actions.add_parser(
        "rebuild", parents=[common], help="recompute them from the event log (idempotent)"
    )
    q.set_defaults(handler=_ops("projections_rebuild"))

    p = sub.add_parser("manifest", help="the app manifest, from the one command list")
    p.add_argument("platform", choices=("slack", "teams"))
    p.set_defaults(handler=cmd_manifest, policy=None, policy_flag_means_candidate=True)

    p = sub.add_parser("teams-package", help="the Teams app zip (manifest and icons)")
    p.add_argument("--out", default="salesbot-teams.zip", help="where to write the zip")
    p.set_defaults(handler=cmd_teams_package, policy=None, policy_flag_means_candidate=True)

    cli_understand.add_commands(sub, common, _Parser)
    cli_schema.add_commands(sub, _Parser)
    cli_verify.add_commands(sub, _Parser)
    cli_backup.add_commands(sub, _Parser)
    cli_migrate.add_commands(sub, _Parser)
    cli_crm.add_commands(sub, common, _Parser)
    report.add_commands(sub, common, _Parser)

    p = sub.add_parser("flow", parents=[common], help="print the conversation flow graph")
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    p.set_defaults(handler=cmd_flow)
    return parser


def main(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: Iterable[str] | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace, TextIO], int] = args.handler
    from bot.logs import configure_logging
    from bot.settings import SettingsError, load_log_settings, load_settings

    try:
        logging_settings = load_log_settings()
        configure_logging(logging_settings.salesbot_log_level, logging_settings.salesbot_log_format)
        if getattr(args, "input", "absent") is None:
            args.input = stdin if stdin is not None else sys.stdin
        if args.policy is None and not getattr(args, "policy_flag_means_candidate", False):
            args.policy = load_settings().salesbot_policy
        args.err = err
        return handler(args, out)
    except (DomainError, UsageError, SettingsError, StorageError) as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            err.write(f"salesbot: error: {line}\n")
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`salesbot fairness | head`): stop quietly, as other Unix
        # tools do. Python would otherwise print a traceback, then fail flushing stdout at
        # exit; pointing stdout at /dev/null makes that final flush harmless.
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
