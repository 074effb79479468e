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
from typing import Any, TextIO

EXIT_OK = 0
EXIT_PROBLEMS = 1

BACKFILL_WAIT_S = 120.0
"""How long `backfill` waits, by default, for its writes to be settled (a 429's Retry-After
and the outbox's backoff included) before it reports the rest as waiting."""


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


def cmd_backfill(args: argparse.Namespace, out: TextIO) -> int:
    import asyncio
    import json

    from bot.cli import UsageError
    from bot.clock import parse_iso_ms
    from bot.crm_backfill import backfill_conversations
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
        backfill_conversations(config, policy, since_ms, args.wait, sys.stderr, _installation(args))
    )
    if args.json:
        out.write(json.dumps({"schema_version": 1, "crm": config.vendor, **summary.as_json()}))
        out.write("\n")
    else:
        out.write(summary.line(config.vendor))
    return EXIT_PROBLEMS if summary.failed or summary.waiting else EXIT_OK


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
