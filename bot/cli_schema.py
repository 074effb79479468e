"""`salesbot schema export DIR`: the JSON Schemas of every artifact (`bot.schemas`).

Needs no policy, store or environment: the schemas come from the code alone, so the export
of a release is the same on every machine (`docs/schemas/` holds this release's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

EXIT_OK = 0
EXIT_USAGE = 2


def cmd_schema_export(args: argparse.Namespace, out: TextIO) -> int:
    # Imported here: the schemas import every artifact's model, which the parser never needs.
    from bot import schemas

    err: TextIO = getattr(args, "err", sys.stderr)
    target = Path(args.dir)
    try:
        written = schemas.export(target)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, FileExistsError | NotADirectoryError):
            reason = "it is not a directory"
        err.write(f"salesbot: error: cannot write the schemas to {target}: {reason}\n")
        return EXIT_USAGE
    out.write(
        f"wrote {len(written) - 1} schemas and {schemas.INDEX} to {target} "
        f"(JSON Schema draft 2020-12)\n"
    )
    return EXIT_OK


def add_commands(sub: Any, parser_class: type) -> None:
    p = sub.add_parser("schema", help="the JSON Schemas of every artifact salesbot writes")
    actions = p.add_subparsers(
        dest="schema_action", required=True, metavar="ACTION", parser_class=parser_class
    )
    q = actions.add_parser(
        "export", help="write one <artifact>.schema.json per artifact and index.json into DIR"
    )
    q.add_argument("dir", metavar="DIR", help="the directory to write (created if missing)")
    q.set_defaults(handler=cmd_schema_export, policy=None, policy_flag_means_candidate=True)
