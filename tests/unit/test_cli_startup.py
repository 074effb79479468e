"""`salesbot --help` starts in about the time of a bare interpreter (issue 18: ≤ 2× `python
-c pass`; `bench/startup.py` measures it). Tests do not time things, so this guards the
cause instead: what a command imports before it runs, read from `python -X importtime` in a
fresh interpreter. An eager import of SciPy, pydantic or aiohttp at the top of a CLI module
costs from a tenth of a second to several seconds on every invocation; the failure names
the chain of imports that brought it in."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.corpus import SPEC_FILE

ROOT = Path(__file__).resolve().parents[2]

HEAVY = (
    "asyncio",  # ≈ 15 ms: most of the budget of `--help` on its own
    "pydantic",  # every model of the product, the settings and the policy
    "pydantic_settings",
    "numpy",
    "scipy",
    "bm25s",
    "snowballstemmer",
    "aiohttp",
    "aiosqlite",
    "sqlite3",
    "prometheus_client",
    "slack_bolt",
    "slack_sdk",
    "jwt",
    "cryptography",
    "microsoft_agents",
    "matplotlib",  # ≈ 0.5–2 s: only the process that draws a /metrics chart imports it
    "dataclasses",  # ≈ 10 ms with `inspect`: a command's data classes live beside its work
    "tempfile",  # ≈ 6 ms with `shutil` and `random`
)
"""Packages that the parser and `--help` never need: each command imports its own."""


@dataclass(frozen=True)
class Imported:
    name: str
    depth: int


def parse_importtime(stderr: str) -> list[Imported]:
    """`-X importtime`'s lines in order (a module's line follows the lines of the modules it
    imported), each with its nesting depth: one space, then two per level, before the name."""
    found: list[Imported] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line.endswith("| imported package"):
            continue  # not an import line, or the header
        name = line.rsplit("|", 1)[1]
        stripped = name.lstrip(" ")
        found.append(Imported(stripped.rstrip(), (len(name) - len(stripped) - 1) // 2))
    return found


def imports_of(*argv: str) -> tuple[list[Imported], subprocess.CompletedProcess[str]]:
    """Every module a fresh `python -m bot ARGV` imported, and how it ended."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bot", *argv],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SALESBOT_ENV_FILE": os.devnull},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return parse_importtime(done.stderr), done


def chain(found: list[Imported], index: int) -> str:
    """`top → … → the module at index`: each importer is the next line one level up."""
    names = [found[index].name]
    depth = found[index].depth
    for later in found[index + 1 :]:
        if later.depth < depth:
            names.append(later.name)
            depth = later.depth
    return " → ".join(reversed(names))


def heavy_imports(found: list[Imported], packages: tuple[str, ...]) -> list[str]:
    """The chain that first brought in each of `packages` that was imported."""
    chains: dict[str, str] = {}
    for index, module in enumerate(found):
        package = module.name.partition(".")[0]
        # The package's own line (its submodules come before it, deeper), else a submodule's.
        if package in packages and (package not in chains or module.name == package):
            chains[package] = chain(found, index)
    return [chains[package] for package in packages if package in chains]


def test_the_import_tree_is_read_with_each_importer() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 |       numpy._core",
            "import time:       100 |        200 |     numpy",
            "import time:       100 |        100 |     json",
            "import time:       100 |        400 |   bm25s",
            "import time:       100 |        500 | bot.knowledge_index",
            "import time:       100 |        100 | argparse",
        ]
    )
    found = parse_importtime(stderr)
    assert [(m.name, m.depth) for m in found] == [
        ("numpy._core", 3),
        ("numpy", 2),
        ("json", 2),
        ("bm25s", 1),
        ("bot.knowledge_index", 0),
        ("argparse", 0),
    ]
    assert heavy_imports(found, ("scipy", "numpy", "argparse")) == [
        "bot.knowledge_index → bm25s → numpy",
        "argparse",
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("check", "--help"),
        ("score", "--help"),
        ("serve", "--help"),
        ("audit", "--help"),
        ("train", "--help"),
        ("schema", "export", "--help"),
        ("no-such-command",),
    ],
    ids=" ".join,
)
def test_help_and_usage_errors_import_nothing_heavy(argv: tuple[str, ...]) -> None:
    found, done = imports_of(*argv)
    assert done.returncode in (0, 2), done.stderr[-2000:]
    assert "usage: salesbot" in done.stdout + done.stderr
    eager = heavy_imports(found, HEAVY)
    assert not eager, (
        f"`salesbot {' '.join(argv)}` imported what only a command needs, so every "
        "invocation pays for it (issue 18: --help ≤ 2× python -c pass). Import it inside "
        "the command that uses it (under TYPE_CHECKING for annotations), or refer to the "
        "command by name as bot/cli.py's _ops does:\n  " + "\n  ".join(eager)
    )


def test_the_guard_sees_what_a_command_imports_when_it_runs() -> None:
    """The same reading of a real run finds the packages a command does import, and their
    chain (were `-X importtime`'s format to change, the guard above would pass blindly)."""
    found, done = imports_of("score", "We have a $5000 budget, I am the CTO", "--policy", "seed")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("score "), done.stdout
    models, _scipy = heavy_imports(found, ("pydantic", "scipy"))
    assert models.startswith("bot.settings → "), models


def test_train_help_names_the_spec_it_reads_by_default() -> None:
    """The parser names the default spec without importing `bot.corpus`, which holds it."""
    done = subprocess.run(
        [sys.executable, "-m", "bot", "train", "--help"],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SALESBOT_ENV_FILE": os.devnull},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"(default {SPEC_FILE})" in " ".join(done.stdout.split())
