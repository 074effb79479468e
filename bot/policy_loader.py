"""Finding and reading policy files: the I/O half of `domain.policy`.

A reference is either the name of a bundled policy (`default`, `seed`) or a path to a
TOML file. `extends = "<name or path>"` chains are followed (relative paths resolve
against the extending file) and cycles are refused.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from pydantic import ValidationError

from bot.business_hours import zone_problems
from bot.knowledge_index import build_index
from domain.errors import PolicyError
from domain.knowledge import KnowledgeBase, KnowledgeIndex
from domain.policy import Document, Policy, build_policy, merge_documents, parse_document
from domain.policy_check import check_policy
from domain.understanding.model import ReaderModel

DEFAULT_POLICY = "default"


def bundled_policy_names() -> tuple[str, ...]:
    files = resources.files("domain.policies")
    return tuple(
        sorted(
            entry.name.removesuffix(".toml")
            for entry in files.iterdir()
            if entry.name.endswith(".toml")
        )
    )


def _is_bundled_name(ref: str) -> bool:
    return "/" not in ref and "\\" not in ref and not ref.endswith(".toml")


def _read(ref: str, relative_to: Path | None) -> tuple[str, str, Path | None]:
    """Return (text, source label, directory for relative extends)."""
    if _is_bundled_name(ref):
        resource = resources.files("domain.policies").joinpath(f"{ref}.toml")
        if not resource.is_file():
            known = ", ".join(bundled_policy_names())
            raise PolicyError(f"unknown policy {ref!r}: use a bundled name ({known}) or a path")
        return resource.read_text(encoding="utf-8"), f"{ref}.toml", None
    path = Path(ref)
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{path}: policy file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read policy file: {exc}") from None
    return text, str(path), path.parent


@functools.lru_cache(maxsize=16)
def _reader(raw: bytes, source: str) -> ReaderModel:
    """A model file's content, validated once per distinct content (models are large and
    policies are loaded often; a `ReaderModel` is immutable, so sharing it is safe)."""
    try:
        document = json.loads(raw.decode("utf-8"))
        return ReaderModel.model_validate(document)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyError(f"{source}: the model file is not JSON: {exc}") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise PolicyError(
            f"{source}: the model file does not validate ({exc.error_count()} errors; "
            f"first: {where}: {first['msg']})"
        ) from None


def _attach_reader(document: Document, source: str, directory: Path | None) -> None:
    """Read the model file an `[understanding]` table names and check its SHA-256."""
    table = document.get("understanding")
    if not isinstance(table, dict) or "reader" in table:
        return
    raw = _referenced_file(table, "model", "understanding", source, directory, "retrain or")
    table["reader"] = _reader(raw, f"{source}: {table['model']}")


def _referenced_file(
    table: dict[str, object],
    key: str,
    section: str,
    source: str,
    directory: Path | None,
    remedy: str = "review the change, then",
) -> bytes:
    """The bytes of the file a section names by path (`key`) and `sha256`, checked."""
    name = table.get(key)
    expected = table.get("sha256")
    if not isinstance(name, str) or not isinstance(expected, str):
        raise PolicyError(f"{source}: {section}: needs {key} (a path) and sha256")
    location: Traversable | Path
    if directory is None:
        location = resources.files("domain.policies").joinpath(name)
    else:
        location = directory / name
    try:
        raw = location.read_bytes()
    except (OSError, FileNotFoundError) as exc:
        raise PolicyError(f"{source}: {section}.{key}: cannot read {name}: {exc}") from None
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected:
        raise PolicyError(
            f"{source}: {section}.sha256: {name} has SHA-256 {actual}, the policy says "
            f"{expected}; {remedy} update the hash"
        )
    return raw


@functools.lru_cache(maxsize=16)
def _knowledge(raw: bytes, source: str) -> tuple[KnowledgeBase, KnowledgeIndex]:
    """A knowledge file's content and its BM25 index, built once per distinct content."""
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{source}: the knowledge file is not TOML: {exc}") from None
    try:
        base = KnowledgeBase.model_validate(document)
    except ValidationError as exc:
        lines = [
            f"{source}: {'.'.join(str(part) for part in error['loc']) or '(top level)'}: "
            f"{error['msg']}"
            for error in exc.errors(include_url=False)
        ]
        raise PolicyError("\n".join(lines)) from None
    return base, build_index(base)


def _attach_knowledge(document: Document, source: str, directory: Path | None) -> None:
    """Read the knowledge file a `[knowledge]` table names, check its SHA-256, and hand in
    its entries and their index (as `_attach_reader` does for the reader's model)."""
    table = document.get("knowledge")
    if not isinstance(table, dict) or "base" in table:
        return
    if "file" not in table and "sha256" not in table:
        return  # a policy tuning its base's table (`min_score`, …): the base names the file
    raw = _referenced_file(table, "file", "knowledge", source, directory)
    table["base"], table["index"] = _knowledge(raw, f"{source}: {table['file']}")


def _knowledge_named(document: Document, source: str) -> None:
    """A `[knowledge]` table that no file of the `extends` chain gave a file to."""
    table = document.get("knowledge")
    if isinstance(table, dict) and "base" not in table:
        raise PolicyError(f"{source}: knowledge: needs file (a path) and sha256")


def _load_document(ref: str, relative_to: Path | None, seen: tuple[str, ...]) -> Document:
    text, source, directory = _read(ref, relative_to)
    if source in seen:
        chain = " -> ".join((*seen, source))
        raise PolicyError(f"{source}: extends cycle: {chain}")
    document = parse_document(text, source)
    _attach_reader(document, source, directory)
    _attach_knowledge(document, source, directory)
    base_ref = document.get("extends")
    if base_ref is None:
        return document
    if not isinstance(base_ref, str):
        raise PolicyError(f"{source}: extends: must be a policy name or path")
    base = _load_document(base_ref, directory, (*seen, source))
    return merge_documents(base, document)


def load_document(ref: str | None = None) -> Document:
    """The merged, unvalidated document for a policy reference (for tools and tests)."""
    ref = ref or DEFAULT_POLICY
    document = _load_document(ref, None, ())
    _knowledge_named(document, _source(ref))
    return document


def _source(ref: str) -> str:
    return f"{ref}.toml" if _is_bundled_name(ref) else ref


def load_policy(ref: str | None = None) -> Policy:
    """Load, merge and validate a policy; every failure is a `PolicyError` naming the file."""
    ref = ref or DEFAULT_POLICY
    document = load_document(ref)
    return build_policy(document, _source(ref))


def load_checked_policy(ref: str | None = None) -> Policy:
    """A policy the bot may run: loaded as `load_policy` does, and refused with one line per
    violation when `salesbot check` would reject it, so what `check` forbids is never said
    (`serve` and `chat` exit 2 with those lines)."""
    policy = load_policy(ref)
    problems = check_policy(policy) + zone_problems(policy)
    if problems:
        lines = [f"policy {policy.name} fails `salesbot check` ({len(problems)} violations):"]
        raise PolicyError("\n".join([*lines, *problems]))
    return policy
