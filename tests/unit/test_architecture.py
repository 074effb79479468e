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


ADAPTERS_SHARED = {
    path.stem for path in (ROOT / "adapters").glob("*.py") if path.stem != "__init__"
}
"""The modules every adapter may import: the ports, the id schemes, the shared helpers."""


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path", [p for p in _modules("adapters") if p.parent != ROOT / "adapters"], ids=str
)
def test_an_adapter_imports_neither_the_bot_nor_the_store_nor_another_adapter(path: Path) -> None:
    """Adapters translate; the composition root (`bot/`) wires them to the store and to each
    other. What several share (ports, id schemes) lives in `adapters/*.py`."""
    own = path.relative_to(ROOT / "adapters").parts[0]
    for module in _imported_modules(path):
        top, _, rest = module.partition(".")
        assert top not in {"bot", "storage"}, f"{path.name} imports {module}"
        if top == "adapters" and rest:
            package = rest.split(".")[0]
            assert package in {own, *ADAPTERS_SHARED}, f"{path.name} imports {module}"


@pytest.mark.parametrize("path", _modules("adapters"), ids=str)
def test_the_shared_adapter_modules_import_no_adapter_package(path: Path) -> None:
    if path.parent != ROOT / "adapters":
        return
    for module in _imported_modules(path):
        top, _, rest = module.partition(".")
        assert top not in {"bot", "storage"}, f"{path.name} imports {module}"
        if top == "adapters":
            assert rest.split(".")[0] in ADAPTERS_SHARED, f"{path.name} imports {module}"


def _scheme_prefixes() -> set[str]:
    from adapters.ids import LEAD_ACTOR_PREFIX
    from adapters.terminal.ids import SCHEME as TERMINAL
    from bot.surfaces import default_registrations

    schemes = [registration.scheme for registration in default_registrations()] + [TERMINAL]
    prefixes = {LEAD_ACTOR_PREFIX}
    for scheme in schemes:
        prefixes |= {scheme.channel_prefix, *scheme.delivery_prefixes}
        if scheme.conversation_prefix is not None:
            prefixes.add(scheme.conversation_prefix)
    return prefixes


def _string_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string constant and f-string piece, docstrings left out (prose may name ids)."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


BOT_OUTSIDE_THE_REGISTRATIONS = [path for path in _modules("bot") if path.parent.name != "surfaces"]


@pytest.mark.parametrize("path", BOT_OUTSIDE_THE_REGISTRATIONS, ids=lambda p: p.name)
def test_no_bot_module_spells_a_surfaces_id_prefix(path: Path) -> None:
    """Ids are built and recognised through each surface's `IdScheme` (`adapters/ids.py`),
    never by a prefix written out again in the composition root (`"slack:"`, `"lead-"`)."""
    prefixes = _scheme_prefixes()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    spelled = [
        (line, text)
        for line, text in _string_literals(tree)
        if any(text.startswith(prefix) for prefix in prefixes)
    ]
    assert not spelled, f"{path.name}: {spelled}"


COMPOSITION_ROOT = ["service.py", "server.py", "outbox_worker.py", "runtime.py", "routing.py"]


@pytest.mark.parametrize("name", COMPOSITION_ROOT)
def test_the_composition_root_reaches_the_surfaces_only_through_their_registrations(
    name: str,
) -> None:
    """Adding a surface (a CRM, a web widget) touches `bot/surfaces/`, never these: they
    import the shared adapter modules (ports, id schemes) and no adapter package."""
    for module in _imported_modules(ROOT / "bot" / name):
        top, _, rest = module.partition(".")
        if top == "adapters" and rest:
            assert rest.split(".")[0] in ADAPTERS_SHARED, f"{name} imports {module}"
