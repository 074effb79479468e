"""Logging an operator can use: configured once at start, on stderr, as text or JSON lines.

Why the standard library (`logging.config.dictConfig`) and not structlog: every library the
bot runs on (aiohttp, slack-sdk, slack-bolt, msal) logs through `logging`, so one
configuration of it reaches every line, and it needs no new dependency. What structlog
would add — bound context and JSON rendering — is a contextvar and two small formatters
here (`log_context`, `TextFormatter`, `JsonFormatter`); the formatters are our own rather
than python-json-logger's because they also have to withhold exception messages (below).

The rules, all enforced here rather than at each call site:
- **stderr, never stdout**: stdout carries `--json` and the chat transcript.
- **Our level, their warnings**: `SALESBOT_LOG_LEVEL` applies to salesbot's own packages
  (`bot`, `adapters`, `storage`, `domain`); libraries log at WARNING and above whatever the
  level (at DEBUG slack-sdk logs request bodies — what the bot says to prospects — and
  aiohttp's access log the raw path, with a playground `?token=`). The one line per HTTP
  request comes from `bot.server`'s middleware, with the route pattern, not the path.
- **No exception messages**: a traceback is written as its frames and exception types. A
  message may quote data: pydantic's `ValidationError` prints every refused `input_value`,
  which is a prospect's text when a message or a lead fails validation. Only errors whose
  messages salesbot writes itself about its environment (`StorageError`, `OSError`) keep
  them. Where a message repeats such an exception's text, that text is withheld too.
- **No secrets**: every secret value from the settings (and the action secret loaded from
  the store) is masked in every line, as a last line of defence.
- **Ids on every line**: `log_context(conversation_id=…, delivery_id=…)` binds ids to the
  running task (a contextvar, so concurrent conversations never mix), and every line
  logged inside carries them.

Text (`2026-01-05T10:00:00.123Z INFO bot.server: POST /slack/events 200 3.1 ms
request=…`) on a terminal; JSON (one object per line: `time`, `level`, `logger`,
`message`, the bound ids, the request fields, `exception`) otherwise, or as configured.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.config
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from storage.errors import StorageError

OWN_PACKAGES = ("bot", "adapters", "storage", "domain")
"""Loggers that follow `SALESBOT_LOG_LEVEL`; every other logger is held at WARNING."""
QUIET_LIBRARIES = (
    "aiohttp",
    "aiohttp.access",
    "asyncio",
    "slack_sdk",
    "slack_bolt",
    "msal",
    "microsoft_agents",
    "urllib3",
    "dotenv",
)
"""Libraries held at WARNING (or the configured level, when higher) explicitly, in case one
of them sets a level of its own."""
FIELDS_ATTRIBUTE = "salesbot_fields"
"""`extra={FIELDS_ATTRIBUTE: {...}}` adds structured fields to a line (the request log)."""
MIN_SECRET_CHARS = 6
"""Shorter secret values are not masked: masking them would garble ordinary words."""

_MESSAGES_KEPT: tuple[type[BaseException], ...] = (StorageError, OSError)
_ids: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("salesbot_log_ids", default=())
_masked: tuple[str, ...] = ()
"""Secret values to mask, longest first; replaced whole (never mutated), so a line being
formatted on another thread always iterates a complete tuple."""


@contextlib.contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Every line logged inside carries these ids (None values are left out), also in tasks
    started inside (they copy the context)."""
    added = tuple((name, value) for name, value in ids.items() if value is not None)
    current = tuple(pair for pair in _ids.get() if pair[0] not in ids)
    token = _ids.set(current + added)
    try:
        yield
    finally:
        _ids.reset(token)


def bind_ids(**ids: str | None) -> None:
    """Bind ids for the rest of the running task: for a task of its own (asyncio gives each
    task a copy of the context, so nothing leaks to its parent or siblings)."""
    added = tuple((name, value) for name, value in ids.items() if value is not None)
    _ids.set(tuple(pair for pair in _ids.get() if pair[0] not in ids) + added)


def bound_ids() -> dict[str, str]:
    """The ids bound in the running context."""
    return dict(_ids.get())


def mask_secrets(*values: str | None) -> None:
    """Mask these values in every line from now on (secrets read after start-up, such as
    the action secret kept in the store)."""
    global _masked
    found = set(_masked)
    for value in values:
        if value and len(value) >= MIN_SECRET_CHARS:
            found.add(value)
            found.add(json.dumps(value)[1:-1])  # as it appears inside a JSON string
    _masked = tuple(sorted(found, key=len, reverse=True))


class ContextFilter(logging.Filter):
    """Stamps the bound ids onto each record as it is logged (in the caller's context)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.salesbot_ids = dict(_ids.get())
        return True


class _SafeFormatter(logging.Formatter):
    """What both formats share: the message with exception texts withheld, the traceback
    without messages, secrets masked. Formats every record itself: `record.exc_text`, which
    the standard formatter caches on the record, may hold another handler's rendering."""

    def message(self, record: logging.LogRecord) -> str:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            text = f"{record.msg!s} (unformattable arguments)"
        if record.name == "asyncio" or record.name.startswith("asyncio."):
            # asyncio appends the failed task's repr, which quotes its exception's message.
            text = text.split("\n", 1)[0]
        for exc in _chain(record.exc_info[1] if record.exc_info else None):
            if isinstance(exc, _MESSAGES_KEPT):
                continue
            with contextlib.suppress(Exception):
                said = str(exc)
                if len(said) >= 4:  # shorter: too likely to be an ordinary word
                    text = text.replace(said, f"<{type(exc).__name__} message withheld>")
        return text

    def traceback(self, record: logging.LogRecord) -> str | None:
        exc = record.exc_info[1] if record.exc_info else None
        return _safe_traceback(exc) if exc is not None else None

    def timestamp(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    @staticmethod
    def mask(line: str) -> str:
        for secret in _masked:
            if secret in line:
                line = line.replace(secret, "**********")
        return line


class TextFormatter(_SafeFormatter):
    """`time LEVEL logger: message key=value …`, the traceback on the following lines."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [self.timestamp(record), record.levelname, f"{record.name}:", self.message(record)]
        extras = {**getattr(record, "salesbot_ids", {})}
        line = " ".join(parts)
        if extras:
            line += " " + " ".join(f"{key}={value}" for key, value in extras.items())
        trace = self.traceback(record)
        if trace:
            line += "\n" + trace
        return self.mask(line)


class JsonFormatter(_SafeFormatter):
    """One JSON object per line (newlines inside values are escaped by JSON itself)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": self.message(record),
        }
        entry.update(getattr(record, "salesbot_ids", {}))
        fields = getattr(record, FIELDS_ATTRIBUTE, None)
        if isinstance(fields, Mapping):
            entry.update(fields)
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            entry["exception"] = {"type": _type_name(exc), "traceback": self.traceback(record)}
        return self.mask(json.dumps(entry, ensure_ascii=True, default=str))


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is when a line is emitted (a test's capture, a
    redirected stream), never to stdout."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def resolve_format(configured: Literal["text", "json"] | None) -> Literal["text", "json"]:
    """Unset: text for a person at a terminal, JSON lines for a collector."""
    if configured is not None:
        return configured
    isatty = getattr(sys.stderr, "isatty", None)
    return "text" if callable(isatty) and isatty() else "json"


def configure_logging(
    level: str = "INFO",
    log_format: Literal["text", "json"] | None = None,
    *,
    secrets: Iterable[str | None] = (),
) -> None:
    """Configure logging for the whole process (idempotent: a second call replaces the
    first). Loggers created before keep working (`disable_existing_loggers` is off)."""
    mask_secrets(*secrets)
    numeric = logging.getLevelName(level)
    others = logging.getLevelName(
        max(numeric, logging.WARNING) if isinstance(numeric, int) else logging.WARNING
    )
    formatter = JsonFormatter if resolve_format(log_format) == "json" else TextFormatter
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"ids": {"()": ContextFilter}},
            "formatters": {"salesbot": {"()": formatter}},
            "handlers": {
                "stderr": {"()": StderrHandler, "filters": ["ids"], "formatter": "salesbot"}
            },
            "loggers": {
                **{name: {"level": level} for name in OWN_PACKAGES},
                **{name: {"level": others} for name in QUIET_LIBRARIES},
            },
            "root": {"level": others, "handlers": ["stderr"]},
        }
    )
    logging.captureWarnings(True)


def origin(exc: BaseException) -> str:
    """An exception's type and where it was raised, without its message: for a one-line
    report of an unexpected error."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return _type_name(exc)
    last = frames[-1]
    return f"{_type_name(exc)} at {Path(last.filename).name}:{last.lineno} in {last.name}"


def _chain(exc: BaseException | None) -> list[BaseException]:
    """The exception and its causes and contexts, innermost last, each once."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return chain


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _safe_traceback(exc: BaseException) -> str:
    """Like Python's traceback, with each exception's message withheld unless its type is
    one whose messages describe the environment only."""
    lines: list[str] = []
    previous: BaseException | None = None
    for link in reversed(_chain(exc)):
        if previous is not None:
            lines.append(
                "The above exception was the direct cause of the following exception:"
                if link.__cause__ is previous
                else "During handling of the above exception, another exception occurred:"
            )
        previous = link
        lines.append("Traceback (most recent call last):")
        lines.extend(
            entry.rstrip("\n")
            for entry in traceback.format_list(traceback.extract_tb(link.__traceback__))
        )
        if isinstance(link, _MESSAGES_KEPT):
            lines.append(f"{_type_name(link)}: {link}")
        else:
            lines.append(f"{_type_name(link)} (message withheld: it may quote user data)")
        if isinstance(link, BaseExceptionGroup):
            inner = ", ".join(_type_name(sub) for sub in link.exceptions)
            lines.append(f"  with sub-exceptions: {inner}")
    return "\n".join(lines)
