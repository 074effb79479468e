"""The log as an operator reads it (issue 11): on stderr only — stdout stays one JSON object
for `--json`, even at DEBUG —, text or JSON lines, the bound ids on every line, library
chatter held at WARNING, exception messages (which can quote a prospect) and secrets never
written."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from bot.cli import main
from bot.logs import configure_logging, log_context, mask_secrets
from storage.errors import StorageError

ROOT = Path(__file__).resolve().parents[2]
PROSPECT_TEXT = "my card number is 4111 1111 1111 1111"


class _Strict(BaseModel):
    count: int


def _validation_error() -> ValidationError:
    try:
        _Strict.model_validate({"count": PROSPECT_TEXT})
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


def lines_of(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines()]


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "salesbot.db"
    monkeypatch.setenv("SALESBOT_DB", str(path))
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    assert main(["demo"]) == 0
    return path


@pytest.mark.parametrize("log_format", ["json", "text"])
@pytest.mark.parametrize(
    "argv",
    [
        ["score", "We have a $5000 budget and want to start next month"],
        ["quote", "--qty", "10", "--sku", "pro", "--discount", "10%"],
        ["replay"],
        ["audit", "lead-demo-1"],
        ["metrics"],
    ],
    ids=["score", "quote", "replay", "audit", "metrics"],
)
def test_json_output_stays_alone_on_stdout_at_debug(
    seeded: Path,
    argv: list[str],
    log_format: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SALESBOT_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("SALESBOT_LOG_FORMAT", log_format)
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    assert isinstance(json.loads(captured.out), dict)  # exactly one JSON object
    if log_format == "json":
        lines_of(captured.err)  # every log line is JSON too
    if argv[0] == "audit":  # the audited access is decided by the runtime, which logs it
        assert "command handled: committed" in captured.err
        assert "conversation_id" in captured.err or "conversation=" in captured.err


def test_json_output_stays_alone_on_stdout_at_debug_in_a_subprocess(seeded: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "audit", "lead-demo-1", "--json"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "SALESBOT_DB": str(seeded),
            "SALESBOT_ENV_FILE": "/dev/null",
            "SALESBOT_LOG_LEVEL": "debug",
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["conversation_id"] == "lead-demo-1"
    logged = lines_of(result.stderr)  # not a terminal: JSON lines by default
    assert any(line["logger"] == "bot.runtime" for line in logged)


def test_a_json_line_carries_the_bound_ids_and_a_text_line_names_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = logging.getLogger("bot.test")
    configure_logging("INFO", "json")
    with log_context(conversation_id="c-1", delivery_id="d-1"):
        log.info("decided %s", "something")
    with log_context(conversation_id="c-2"), log_context(delivery_id="d-2"):
        log.warning("nested")
    log.info("outside")
    first, second, third = lines_of(capsys.readouterr().err)
    assert first["message"] == "decided something"
    assert (first["level"], first["logger"]) == ("INFO", "bot.test")
    assert (first["conversation_id"], first["delivery_id"]) == ("c-1", "d-1")
    assert (second["conversation_id"], second["delivery_id"]) == ("c-2", "d-2")
    assert "conversation_id" not in third
    assert str(first["time"]).endswith("Z")

    configure_logging("INFO", "text")
    with log_context(conversation_id="c-3", delivery_id="d-3"):
        log.info("decided")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(" INFO bot.test: decided conversation_id=c-3 delivery_id=d-3")


async def test_concurrent_conversations_never_mix_their_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = logging.getLogger("bot.test")
    configure_logging("INFO", "json")
    gate = asyncio.Event()

    async def conversation(name: str) -> None:
        with log_context(conversation_id=name):
            await gate.wait()
            log.info(name)

    tasks = [asyncio.create_task(conversation(f"c-{n}")) for n in range(5)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    lines = lines_of(capsys.readouterr().err)
    assert len(lines) == 5
    assert all(line["message"] == line["conversation_id"] for line in lines)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_an_exception_is_logged_by_type_and_place_never_by_its_message(
    log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log = logging.getLogger("bot.test")
    configure_logging("INFO", log_format)  # type: ignore[arg-type]
    error = _validation_error()
    assert PROSPECT_TEXT in str(error)  # what Python's own traceback would print
    try:
        try:
            raise error
        except ValidationError as inner:
            raise RuntimeError(f"wrapped: {inner}") from inner
    except RuntimeError:
        log.exception("handling failed")
    try:
        raise error
    except ValidationError as exc:
        log.error("a library repeats it: %s", exc, exc_info=True)
    err = capsys.readouterr().err
    assert PROSPECT_TEXT not in err
    assert "ValidationError (message withheld" in err
    assert "RuntimeError (message withheld" in err
    assert "test_logging.py" in err  # where it happened is kept
    assert "<ValidationError message withheld>" in err


def test_errors_about_the_environment_keep_their_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    try:
        raise StorageError("The database /srv/salesbot.db reported an error: disk I/O error.")
    except StorageError:
        logging.getLogger("bot.test").exception("commit failed")
    (line,) = lines_of(capsys.readouterr().err)
    exception = line["exception"]
    assert isinstance(exception, dict)
    assert exception["type"] == "storage.errors.StorageError"
    assert "disk I/O error" in str(exception["traceback"])


def test_secrets_are_masked_in_every_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json", secrets=["xoxb-very-secret-token", "short"])
    mask_secrets('quote"and\\backslash-secret')
    log = logging.getLogger("bot.test")
    log.warning("token %s in a message", "xoxb-very-secret-token")
    log.warning("a %s one", 'quote"and\\backslash-secret')
    log.warning("short is not masked: it would garble words")
    err = capsys.readouterr().err
    assert "xoxb-very-secret-token" not in err
    assert "backslash-secret" not in err
    first, second, third = lines_of(err)
    assert first["message"] == "token ********** in a message"
    assert second["message"] == "a ********** one"
    assert third["message"] == "short is not masked: it would garble words"


def test_libraries_stay_at_warning_while_salesbot_logs_debug(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("DEBUG", "json")
    logging.getLogger("slack_sdk.web.async_base_client").debug("Sending a request: body")
    logging.getLogger("aiohttp.access").info('127.0.0.1 "GET /?token=abc HTTP/1.1" 200')
    logging.getLogger("somelibrary").info("chatter")
    logging.getLogger("slack_bolt.App").warning("a library warning")
    logging.getLogger("adapters.slack.app").debug("our own debug line")
    messages = [line["message"] for line in lines_of(capsys.readouterr().err)]
    assert messages == ["a library warning", "our own debug line"]


def test_the_level_applies_to_salesbot_and_above_warning_to_everything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("ERROR", "json")
    logging.getLogger("bot.runtime").warning("dropped")
    logging.getLogger("slack_bolt").warning("dropped too")
    logging.getLogger("bot.runtime").error("kept")
    assert [line["message"] for line in lines_of(capsys.readouterr().err)] == ["kept"]


def test_asyncio_reports_keep_their_first_line_only(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    logging.getLogger("asyncio").error(
        "Task exception was never retrieved\n"
        f"future: <Task finished exception=ValueError('{PROSPECT_TEXT}')>"
    )
    (line,) = lines_of(capsys.readouterr().err)
    assert line["message"] == "Task exception was never retrieved"


def test_the_format_follows_the_terminal_when_unset(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", None)  # captured stderr is not a terminal: JSON
    logging.getLogger("bot.test").info("for a collector")
    assert lines_of(capsys.readouterr().err)[0]["message"] == "for a collector"

    class Terminal:
        def __init__(self) -> None:
            self.written: list[str] = []

        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> int:
            self.written.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    configure_logging("INFO", None)
    logging.getLogger("bot.test").info("for a person")
    assert "".join(terminal.written).rstrip("\n").endswith(" INFO bot.test: for a person")
