"""`salesbot crm check` and `salesbot crm setup` (issue 16, item 4): is the configured CRM
ready for salesbot's writes, and create what it needs.

`check` names every problem on its own line (the token or scopes, a custom property or
field missing, a stage id the CRM does not know) and exits 1 when there is any, 0 with one
line when the CRM is ready. `setup` creates HubSpot's custom properties (idempotent: it
says what it created, nothing when all were there) and prints Salesforce's Setup steps,
which its REST API cannot do. Without `SALESBOT_CRM`, one line and exit 2.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

EXIT_OK = 0
EXIT_PROBLEMS = 1


def _section(args: argparse.Namespace) -> Any:
    from bot.settings import SettingsError, load_settings
    from bot.surfaces import crm

    config = crm.section(load_settings())
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

    out.write("salesforce: its REST API cannot create fields; in Setup, as an administrator:\n")
    for line in salesforce_setup.setup_steps(config.salesforce_records):
        out.write(f"  {line}\n")
    return EXIT_OK


def add_commands(sub: Any, common: Any, parser_class: type) -> None:
    crm = sub.add_parser("crm", help="the CRM salesbot writes to: check it, set it up")
    actions = crm.add_subparsers(dest="crm_command", required=True, parser_class=parser_class)
    p = actions.add_parser(
        "check",
        parents=[common],
        help="is the configured CRM ready (token, scopes, fields, stages)? exit 1 if not",
    )
    p.set_defaults(handler=cmd_check)
    p = actions.add_parser(
        "setup",
        help="create the custom properties salesbot needs (HubSpot), or print the steps",
    )
    p.set_defaults(handler=cmd_setup, policy=None, policy_flag_means_candidate=True)
