"""Labelled messages and the reader's spec, read from files (`docs/labelling.md`).

A corpus file is JSON Lines: one labelled message (or conversation) per line. Everything
`salesbot train` and `salesbot eval` read goes through here, so a malformed line is refused
with its file and line number instead of skewing a figure.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.understanding.model import INTENTS, OBJECTIONS, REASONS, SIGNALS, ReaderSpec

BANDS = ("hot", "warm", "cold")
SPEC_FILE = Path("data/understanding/features.toml")
TRAINING_DIR = Path("data/understanding/train")
TEST_DIR = Path("data/understanding/test")
CONVERSATIONS_FILE = Path("data/understanding/conversations.jsonl")


class CorpusError(ValueError):
    """A corpus or spec file that cannot be used; the message names file and line."""


@dataclass(frozen=True)
class Example:
    """One labelled message (or conversation, when `messages` has more than one text)."""

    id: str
    lang: str
    messages: tuple[str, ...]
    band: str
    signals: dict[str, bool]
    objection: str | None
    reasons: tuple[str, ...]
    intents: tuple[str, ...]
    metadata: dict[str, object] = field(default_factory=dict)
    now: datetime | None = None

    @property
    def text(self) -> str:
        return self.messages[-1]

    @property
    def needs_human(self) -> bool:
        return bool(self.reasons)


def _labels(record: Mapping[str, Any], where: str) -> dict[str, Any]:
    band = record.get("band")
    if band not in BANDS:
        raise CorpusError(f"{where}: band must be one of {', '.join(BANDS)}")
    signals = record.get("signals")
    if not isinstance(signals, dict) or set(signals) != set(SIGNALS):
        raise CorpusError(f"{where}: signals must have exactly {', '.join(SIGNALS)}")
    if not all(isinstance(v, bool) for v in signals.values()):
        raise CorpusError(f"{where}: signal values must be true or false")
    objection = record.get("objection")
    if objection is not None and objection not in OBJECTIONS:
        raise CorpusError(f"{where}: unknown objection {objection!r}")
    reasons = record.get("reasons", [])
    intents = record.get("intents", [])
    if not isinstance(reasons, list) or not set(reasons) <= set(REASONS):
        raise CorpusError(f"{where}: reasons must be a list of {', '.join(REASONS)}")
    if not isinstance(intents, list) or not set(intents) <= set(INTENTS):
        raise CorpusError(f"{where}: intents must be a list of {', '.join(INTENTS)}")
    if "needs_human" in record and record["needs_human"] != bool(reasons):
        raise CorpusError(f"{where}: needs_human must be true exactly when reasons is not empty")
    return {
        "band": band,
        "signals": {name: bool(signals[name]) for name in SIGNALS},
        "objection": objection,
        "reasons": tuple(sorted(set(reasons))),
        "intents": tuple(sorted(set(intents))),
    }


def parse_example(record: object, where: str) -> Example:
    if not isinstance(record, dict):
        raise CorpusError(f"{where}: not a JSON object")
    ident = record.get("id")
    if not isinstance(ident, str | int) or isinstance(ident, bool):
        raise CorpusError(f"{where}: id must be a string or an integer")
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise CorpusError(f"{where}: messages must be a non-empty list of texts")
    else:
        messages = [record.get("text")]
    if not all(isinstance(m, str) for m in messages):
        raise CorpusError(f"{where}: text must be a string")
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise CorpusError(f"{where}: metadata must be an object")
    now = record.get("now")
    parsed_now = None
    if now is not None:
        try:
            parsed_now = datetime.fromisoformat(str(now))
        except ValueError:
            raise CorpusError(f"{where}: now must be ISO 8601") from None
    return Example(
        id=str(ident),
        lang=str(record.get("lang", "und")),
        messages=tuple(messages),
        metadata=metadata,
        now=parsed_now,
        **_labels(record, where),
    )


def read_examples(path: Path) -> Iterator[Example]:
    """Every labelled line of one file; blank lines are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: cannot read: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{where}: not JSON: {exc.msg}") from None
        yield parse_example(record, where)


def corpus_files(paths: Iterable[Path]) -> list[Path]:
    """Files named, and the `*.jsonl` files of directories named, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.glob("*.jsonl")))
        elif path.exists():
            found.append(path)
        else:
            raise CorpusError(f"{path}: no such file or directory")
    return found


def load_examples(paths: Iterable[Path]) -> list[Example]:
    examples = [example for path in corpus_files(paths) for example in read_examples(path)]
    seen: set[str] = set()
    for example in examples:
        if example.id in seen:
            raise CorpusError(f"duplicate id {example.id!r}")
        seen.add(example.id)
    return examples


def data_hash(paths: Iterable[Path]) -> str:
    """SHA-256 over the files' names and bytes, in order: what a model was trained on."""
    digest = hashlib.sha256()
    for path in corpus_files(paths):
        digest.update(path.name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class TrainingConfig:
    seed: int
    folds: int
    min_count: int
    l2_grid: tuple[float, ...]
    l1_ratio: float
    needs_human_recall: float
    constraints: dict[str, dict[str, int]]
    """head → feature → +1 (weight ≥ 0) or -1 (weight ≤ 0)."""
    rules: tuple[str, ...] = ()
    """The labelling guide's consistency rules the trained model applies (`model.Rule`)."""


def load_spec(path: Path) -> tuple[ReaderSpec, TrainingConfig, str]:
    """The reader spec, the training settings and the file's SHA-256."""
    try:
        raw = path.read_bytes()
        document = tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CorpusError(f"{path}: cannot read the reader spec: {exc}") from None
    training = document.pop("training", {})
    rules = tuple(str(rule) for rule in document.pop("rules", ()))
    constraints_doc = document.pop("constraints", {})
    lexicons = {
        name: {"negatable": body.get("negatable", True), "terms": body.get("terms", {})}
        for name, body in document.pop("lexicons", {}).items()
    }
    spec = ReaderSpec.model_validate({**document, "lexicons": lexicons})
    constraints: dict[str, dict[str, int]] = {}
    for head, body in constraints_doc.items():
        signs = dict.fromkeys(body.get("positive", ()), 1)
        signs.update(dict.fromkeys(body.get("negative", ()), -1))
        constraints[head] = signs
    config = TrainingConfig(
        seed=int(training.get("seed", 0)),
        folds=int(training.get("folds", 5)),
        min_count=int(training.get("min_count", 2)),
        l2_grid=tuple(float(v) for v in training.get("l2_grid", (1.0,))),
        l1_ratio=float(training.get("l1_ratio", 0.0)),
        needs_human_recall=float(training.get("needs_human_recall", 0.95)),
        constraints=constraints,
        rules=rules,
    )
    return spec, config, hashlib.sha256(raw).hexdigest()


TRAINING_DATE = date(2026, 12, 1)
"""The decision date corpus lines without `now` are read at (dates like "next month")."""
