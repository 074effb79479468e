"""Clean failures at start (issue 11): a busy port, a database directory that is missing or
cannot be written, a user id with no account entry — each is one clear `salesbot: error:`
line and exit 2 (or, for the account, no failure at all), never a traceback. And `.env`:
read from the working directory when present, beneath the real environment; never in tests.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import ENV_FILE_VARIABLE, load_settings
from domain.events import AuditRequested
from storage.sqlite import SqliteStore
from tests.support.cli import run


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "salesbot.db"
    monkeypatch.setenv("SALESBOT_DB", str(path))
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


def test_a_busy_port_is_one_line_and_exit_2(
    db: Path, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run("serve", "--port", str(busy_port))
    assert code == 2
    assert err == (
        f"salesbot: error: cannot listen on 127.0.0.1:{busy_port}: the address is already in "
        "use (another salesbot? choose another with --port or SALESBOT_PORT)\n"
    )
    assert out == ""
    assert "Traceback" not in capsys.readouterr().err
    # It let go of what it opened: the database is closed (no write-ahead log left).
    assert db.exists()
    assert not Path(f"{db}-wal").exists()


def test_a_missing_database_directory_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "not-there" / "salesbot.db"
    monkeypatch.setenv("SALESBOT_DB", str(path))
    code, _out, err = run("metrics")
    assert code == 2
    assert err == (
        f"salesbot: error: cannot open the database {path} (SALESBOT_DB): its directory "
        f"{path.parent} does not exist\n"
    )
    assert "Traceback" not in capsys.readouterr().err


def test_a_database_path_under_a_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a-file").write_text("x")
    path = tmp_path / "a-file" / "salesbot.db"
    monkeypatch.setenv("SALESBOT_DB", str(path))
    code, _, err = run("serve", "--port", "0")
    assert code == 2
    assert err == (
        f"salesbot: error: cannot open the database {path} (SALESBOT_DB): "
        f"{path.parent} is not a directory\n"
    )


def test_a_database_directory_this_user_cannot_write_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() == 0:
        # Root writes through permission bits; /proc/self refuses new files even to root.
        directory = Path("/proc/self")
    else:
        directory = tmp_path / "read-only"
        directory.mkdir()
        directory.chmod(0o555)
    path = directory / "salesbot.db"
    monkeypatch.setenv("SALESBOT_DB", str(path))
    code, _, err = run("serve", "--port", "0")
    assert code == 2
    assert err == (
        f"salesbot: error: cannot open the database {path} (SALESBOT_DB): this user "
        f"(uid {os.getuid()}) cannot write in its directory {directory}, where SQLite keeps "
        "salesbot.db-wal and salesbot.db-shm beside it\n"
    )
    assert "Traceback" not in capsys.readouterr().err


def test_an_audit_by_a_user_id_without_an_account_entry_is_recorded_under_the_id(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("demo")[0] == 0
    # A container's user: no $USER or $LOGNAME, and no entry in /etc/passwd.
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)

    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    code, out, err = run("audit", "lead-demo-1")
    assert (code, err) == (0, "")
    assert "lead-demo-1" in out

    async def audits() -> list[AuditRequested]:
        async with await SqliteStore.open(db) as store:
            return [
                e.event
                for e in await store.load("lead-demo-1")
                if isinstance(e.event, AuditRequested)
            ]

    (recorded,) = asyncio.run(audits())
    assert recorded.by == f"cli:uid:{os.getuid()}"


def test_an_env_file_in_the_working_directory_is_read_beneath_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_FILE_VARIABLE)  # as outside the test suite
    for name in ("SALESBOT_PORT", "SALESBOT_DB", "SALESBOT_STATE_CACHE_MB", "SLACK_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    Path(".env").write_text(
        "# copied from .env.example\n"
        "SALESBOT_PORT=4000\n"
        "SALESBOT_DB=/srv/salesbot/salesbot.db\n"
        "SALESBOT_STATE_CACHE_MB=64\n"
        "SLACK_BOT_TOKEN=\n",
        encoding="utf-8",
    )
    settings = load_settings()
    assert (settings.salesbot_port, settings.salesbot_db) == (4000, "/srv/salesbot/salesbot.db")
    assert settings.salesbot_state_cache_mb == 64
    assert settings.slack_bot_token is None  # empty counts as unset, in the file too

    monkeypatch.setenv("SALESBOT_PORT", "5000")
    assert load_settings().salesbot_port == 5000  # the environment wins


def test_a_bad_value_in_the_env_file_is_named_like_one_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_FILE_VARIABLE)
    monkeypatch.delenv("SALESBOT_STATE_CACHE_MB", raising=False)
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    Path(".env").write_text("SALESBOT_STATE_CACHE_MB=lots\n", encoding="utf-8")
    code, out, err = run("score", "hello")  # reads the settings for SALESBOT_POLICY
    assert (code, out) == (2, "")
    assert err.startswith("salesbot: error: invalid configuration: SALESBOT_STATE_CACHE_MB:")


def test_the_test_suite_never_reads_a_developers_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SALESBOT_PORT", raising=False)
    Path(".env").write_text("SALESBOT_PORT=4000\n", encoding="utf-8")
    assert os.environ[ENV_FILE_VARIABLE] == os.devnull  # tests/conftest.py
    assert load_settings().salesbot_port == 3000


def test_a_bad_log_level_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESBOT_LOG_LEVEL", "chatty")
    code, out, err = run("score", "hello", "--policy", "seed")
    assert (code, out) == (2, "")
    assert err.startswith("salesbot: error: invalid configuration: SALESBOT_LOG_LEVEL:")
    assert len(err.splitlines()) == 1
