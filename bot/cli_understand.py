"""`salesbot understand`, `salesbot train` and `salesbot eval`: the reader as a tool.

`understand` is a public contract (README, "Understanding"): JSON Lines in, exactly one JSON
line out per accepted input line, flushed as it goes, refusals on stderr with their line
number. `train` writes a model file from labelled data; `eval` prints the held-out figures
of one or more policies side by side.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from domain.errors import DomainError

if TYPE_CHECKING:
    from datetime import date
    from decimal import Decimal

    from domain.policy import Policy
    from domain.understanding.reading import Reading

# Only argparse at import: `add_commands` runs for every `salesbot` invocation (and
# `--help`), so the reader, the corpus tools and the store are imported by the commands.

EXIT_OK = 0
EXIT_REFUSED = 2


def _number(value: Decimal) -> int | float:
    """A score as a JSON number: an integer when whole, else its (at most 12-place) decimal."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def reading_json(ident: object, reading: Reading, policy: Policy) -> dict[str, Any]:
    from domain import GENERATOR
    from domain.understand import UNDERSTAND_SCHEMA_VERSION
    from domain.understanding.model import to_micro

    calibration = (
        policy.understanding.reader.band.calibration if policy.understanding is not None else None
    )
    calibrated = (
        {"hot_probability": _number(calibration.probability(to_micro(reading.score)))}
        if calibration is not None
        else {}
    )
    return {
        "id": ident,
        "language": reading.language,
        "band": reading.band,
        "score": _number(reading.score),
        **calibrated,
        "signals": reading.signals,
        "objection": reading.objection,
        "needs_human": reading.needs_human,
        "reasons": list(reading.reasons),
        "intents": list(reading.intents),
        "entities": reading.entities,
        "policy_version": policy.version,
        "schema_version": UNDERSTAND_SCHEMA_VERSION,
        "generator_version": GENERATOR,
    }


def _json_default(value: object) -> object:
    from datetime import date
    from decimal import Decimal

    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _today(now: str) -> date:
    from datetime import UTC, datetime

    from bot.clock import parse_iso_ms

    return datetime.fromtimestamp(parse_iso_ms(now) / 1000, tz=UTC).date()


def _metadata(raw: object) -> dict[str, object]:
    """The metadata fields the reader uses, when well-typed; anything else is ignored."""
    if not isinstance(raw, dict):
        return {}
    found: dict[str, object] = {}
    size = raw.get("company_size")
    if isinstance(size, int) and not isinstance(size, bool):
        found["company_size"] = size
    source = raw.get("source")
    if isinstance(source, str):
        found["source"] = source
    return found


def _lines(source: Iterable[str] | Iterable[bytes]) -> Iterator[str | None]:
    """Each input line as text; None for a line that is not UTF-8."""
    for line in source:
        if isinstance(line, bytes):
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError:
                yield None
        else:
            yield line


def _refusal(record: object) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    if "id" not in record:
        return "no id"
    ident = record["id"]
    if isinstance(ident, bool) or not isinstance(ident, str | int):
        return "id must be a string or an integer"
    if "text" not in record:
        return "no text"
    if not isinstance(record["text"], str):
        return "text must be a string"
    return None


def cmd_understand(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from bot.policy_loader import load_policy
    from domain.understand import understand

    err: TextIO = getattr(args, "err", sys.stderr)
    try:
        policy = load_policy(args.policy)
        default_today = _today(args.now) if args.now else _today_now()
    except (DomainError, ValueError) as exc:
        err.write(f"understand: {' '.join(str(exc).split())}\n")
        return EXIT_REFUSED
    source: Iterable[str] | Iterable[bytes] = args.input
    if source is sys.stdin and hasattr(sys.stdin, "buffer"):
        source = sys.stdin.buffer
    refused = 0
    try:
        for number, line in enumerate(_lines(source), 1):
            if line is None:
                err.write(f"understand: line {number}: not UTF-8\n")
                refused += 1
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                record = None
                reason: str | None = "not a JSON object"
            else:
                reason = _refusal(record)
            today = default_today
            if reason is None and isinstance(record, dict) and record.get("now") is not None:
                try:
                    today = _today(str(record["now"]))
                except ValueError:
                    reason = "now must be an ISO 8601 time"
            if reason is not None or not isinstance(record, dict):
                err.write(f"understand: line {number}: {reason}\n")
                refused += 1
                continue
            reading = understand(
                policy, [record["text"]], today=today, metadata=_metadata(record.get("metadata"))
            )
            out.write(
                json.dumps(
                    reading_json(record["id"], reading, policy),
                    default=_json_default,
                    ensure_ascii=True,
                    separators=(",", ":"),
                )
                + "\n"
            )
            out.flush()
    except OSError as exc:
        err.write(f"understand: cannot read stdin: {exc}\n")
        return EXIT_REFUSED
    return EXIT_REFUSED if refused else EXIT_OK


def _today_now() -> date:
    from datetime import UTC, datetime

    from bot.clock import system_now_ms

    return datetime.fromtimestamp(system_now_ms() / 1000, tz=UTC).date()


def _progress(err: TextIO) -> Callable[[str], None]:
    def say(message: str) -> None:
        err.write(f"train: {message}\n")
        err.flush()

    return say


def _quiet(message: str) -> None:
    del message


def cmd_train(args: argparse.Namespace, out: TextIO) -> int:
    # Imported here: training needs numpy and scipy's optimiser, which serving never loads.
    from bot.corpus import SPEC_FILE, CorpusError, data_hash, load_examples, load_spec
    from bot.training import check_model, model_text, train

    err: TextIO = getattr(args, "err", sys.stderr)
    try:
        if args.corrections:
            return _export_corrections(args, out)
        spec, config, spec_sha = load_spec(Path(args.spec) if args.spec else SPEC_FILE)
        if not args.out or not args.data:
            raise CorpusError("train needs --data FILE|DIR and --out PATH")
        paths = [Path(p) for p in args.data]
        examples = load_examples(paths)
        document = train(
            examples,
            spec,
            config,
            provenance={"data_sha256": data_hash(paths), "spec_sha256": spec_sha},
            progress=_progress(err) if args.verbose else _quiet,
        )
        check_model(document)
    except (CorpusError, ValueError) as exc:
        err.write(f"train: {' '.join(str(exc).split())}\n")
        return EXIT_REFUSED
    text = model_text(document)
    target = Path(args.out)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
    import hashlib

    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    figures = document["training"]["cross_validation"]
    out.write(
        f"wrote {target} ({len(examples)} examples, {document['training']['features']} features; "
        f"cross-validated band macro-F1 {figures['band_macro_f1']})\n"
        f"sha256 {digest}\n"
    )
    return EXIT_OK


def _export_corrections(args: argparse.Namespace, out: TextIO) -> int:
    """Reps' corrections in the store (SALESBOT_DB) as labelled corpus lines."""
    import asyncio
    import json

    lines = asyncio.run(_corrections())
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    if args.out:
        target = Path(args.out)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        out.write(f"wrote {target} ({len(lines)} corrected readings)\n")
    else:
        out.write(text)
    return EXIT_OK


async def _corrections() -> list[dict[str, Any]]:
    from bot.bootstrap import open_store
    from bot.settings import load_settings
    from domain.corrections import corrected_example
    from domain.events import MessageRead, ProspectMessageReceived, ReadingCorrected

    found: list[dict[str, Any]] = []
    async with open_store(load_settings()) as store:
        for conversation_id in await store.conversation_ids():
            envelopes = await store.load(conversation_id)
            by_seq = {env.seq: env for env in envelopes}
            texts = {
                env.delivery_id: env.event.text
                for env in envelopes
                if isinstance(env.event, ProspectMessageReceived)
            }
            corrections: dict[int, list[ReadingCorrected]] = {}
            for env in envelopes:
                if isinstance(env.event, ReadingCorrected):
                    corrections.setdefault(env.event.message_seq, []).append(env.event)
            for seq, made in sorted(corrections.items()):
                target = by_seq.get(seq)
                if target is None or not isinstance(target.event, MessageRead):
                    continue
                text = texts.get(target.delivery_id)
                if text is None:
                    continue
                found.append(
                    corrected_example(
                        f"correction:{conversation_id}:{seq}", text, target.event, made
                    )
                )
    return found


def cmd_eval(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from bot.corpus import CorpusError, load_examples
    from bot.evaluation import evaluate, render_report
    from bot.policy_loader import load_policy

    err: TextIO = getattr(args, "err", sys.stderr)
    try:
        examples = load_examples([Path(p) for p in args.data])
        refs: Sequence[str] = args.policies or ["default", "seed"]
        policies = [load_policy(ref) for ref in refs]
    except (CorpusError, DomainError) as exc:
        err.write(f"eval: {' '.join(str(exc).split())}\n")
        return EXIT_REFUSED
    if not examples:
        err.write("eval: no labelled examples in the data\n")
        return EXIT_REFUSED
    reports = [evaluate(policy, examples) for policy in policies]
    if args.json:
        out.write(
            json.dumps({"reports": reports}, indent=2, ensure_ascii=False, default=_json_default)
            + "\n"
        )
    else:
        out.write(render_report(reports))
    return EXIT_OK


def add_commands(sub: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    p = sub.add_parser(
        "understand",
        help="read JSON Lines of messages on stdin; one JSON reading per line on stdout",
    )
    p.add_argument("--policy", metavar="NAME|PATH", help="bundled policy name or TOML path")
    p.add_argument("--now", metavar="ISO8601", help="the decision time (default: the clock)")
    p.set_defaults(handler=cmd_understand, input=None)

    p = sub.add_parser("train", help="learn the reader's weights from labelled messages")
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="FILE|DIR",
        help="labelled JSON Lines (repeatable; a directory means its *.jsonl)",
    )
    p.add_argument("--out", metavar="PATH", help="where to write the model file")
    # The default is bot.corpus.SPEC_FILE, named here so that the parser need not import it.
    p.add_argument("--spec", help="the reader spec (default data/understanding/features.toml)")
    p.add_argument(
        "--corrections", action="store_true", help="export reps' corrections as labelled data"
    )
    p.add_argument("--verbose", action="store_true", help="progress on stderr")
    p.set_defaults(handler=cmd_train, policy_flag_means_candidate=True, policy=None)

    p = sub.add_parser("eval", help="held-out figures of policies side by side")
    p.add_argument(
        "--data", action="append", required=True, metavar="FILE|DIR", help="labelled JSON Lines"
    )
    p.add_argument(
        "--policy",
        dest="policies",
        action="append",
        metavar="NAME|PATH",
        help="a policy to evaluate (repeatable; default: default and seed side by side)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=cmd_eval, policy_flag_means_candidate=True, policy=None)
