"""Validation against the committed JSON Schemas (`docs/schemas/`, written by `salesbot schema
export`): the schemas integrators validate with, so the tests validate what salesbot
produces with the very same files."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs installed

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


@functools.cache
def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8")
    )
    return loaded


@functools.cache
def _validator(name: str) -> Any:
    return Draft202012Validator(schema(name))


def problems(name: str, document: object) -> list[str]:
    """Every way `document` breaks the `name` schema, as "path: message" lines."""
    found = sorted(_validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message[:300]}"
        for error in found
    ]


def assert_valid(name: str, document: object) -> None:
    """Fail with the first few problems when `document` does not validate."""
    found = problems(name, document)
    assert not found, f"not a valid {name} ({len(found)} problems): " + "; ".join(found[:5])
