"""The dependency rule, checked on the source: the core stays pure and platform-free."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The functional core may use the standard library's pure parts, pydantic, the stemmer and
# scipy (pure numerics: Beta and normal quantiles for metrics intervals) and numpy (the
# reader's exact integer dot products).
DOMAIN_ALLOWED_THIRD_PARTY = {"pydantic", "snowballstemmer", "scipy", "numpy"}
DOMAIN_FORBIDDEN_STDLIB = {
    "asyncio",
    "logging",
    "os",
    "io",
    "socket",
    "subprocess",
    "time",
    "pathlib",
    "random",
    "urllib",
    "http",
    "shutil",
    "sqlite3",
    "threading",
    "multiprocessing",
    "importlib",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("domain"), ids=lambda p: p.name)
def test_the_domain_imports_nothing_impure_or_outside_itself(path: Path) -> None:
    imported = _imports(path)
    assert not imported & {"bot", "adapters", "storage"}
    assert not imported & DOMAIN_FORBIDDEN_STDLIB
    third_party = imported - set(sys.stdlib_module_names) - {"domain", "__future__"}
    assert third_party <= DOMAIN_ALLOWED_THIRD_PARTY


@pytest.mark.parametrize("path", _modules("domain"), ids=lambda p: p.name)
def test_the_domain_speaks_no_platform_words(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\b(slack|teams|block ?kit|adaptive ?card)\b", text, re.IGNORECASE)


@pytest.mark.parametrize("path", _modules("storage") + _modules("adapters"), ids=lambda p: p.name)
def test_storage_and_adapters_never_import_the_composition_root(path: Path) -> None:
    assert "bot" not in _imports(path)


def test_every_package_in_the_tree_ships_in_the_distribution() -> None:
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("bot", "adapters", "domain", "storage")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
