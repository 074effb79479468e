"""`salesbot serve` as a real subprocess on 127.0.0.1, talking Slack to a fake Web API in the
caller's event loop: for the restart test and `bench/outbox.py`. Prospects write in one
shared channel, each in a thread of their own, so every reply goes to one paced channel."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from slack_sdk.signature import SignatureVerifier

from tests.fakes.slack_api import FakeSlackApi

ROOT = Path(__file__).resolve().parents[2]
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM, BOT = "T0001", "UBOT"
SHARED = "C0SHARED"
PROSPECT = {"user": "U0PAT", "user_team": "T0ACME"}  # Slack Connect: another workspace
_EVENT_IDS = itertools.count(1)


class Served:
    """One `salesbot serve` process on a free port."""

    def __init__(self, process: asyncio.subprocess.Process, base_url: str) -> None:
        self.process = process
        self.base_url = base_url

    @classmethod
    async def start(cls, db: Path, api: FakeSlackApi, *, root: Path = ROOT) -> Served:
        """`root`: the source tree to run (the bench also runs a previous release's)."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SALESBOT_DB": str(db),
            "SLACK_BOT_TOKEN": api.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": api.base_url,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "serve",
            "--port",
            "0",
            cwd=root,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        first = (await process.stdout.readline()).decode()  # printed once it listens
        match = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        if match is None:
            process.kill()
            _out, err = await process.communicate()
            raise RuntimeError(f"serve did not start: {first}{err.decode()}")
        return cls(process, f"http://127.0.0.1:{match.group(1)}")

    async def prospect_writes(
        self, session: aiohttp.ClientSession, api: FakeSlackApi, text: str
    ) -> None:
        """A prospect opens a new thread in the shared channel: the message is in Slack's
        history (where the bot looks before resending), and its signed event reaches us."""
        ts = api.add_message(SHARED, text, user=PROSPECT["user"])
        body = json.dumps(
            {
                "token": "x",
                "team_id": TEAM,
                "api_app_id": "A0001",
                "type": "event_callback",
                "event_id": f"Ev{os.getpid()}x{next(_EVENT_IDS)}",
                "event_time": int(time.time()),
                "event": {
                    "type": "message",
                    "channel": SHARED,
                    "channel_type": "channel",
                    "text": text,
                    "ts": ts,
                    **PROSPECT,
                },
                "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}],
            }
        ).encode()
        stamp = str(int(time.time()))
        signature = str(SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body))
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature,
        }
        async with session.post(f"{self.base_url}/slack/events", data=body, headers=headers) as r:
            if r.status != 200:
                raise RuntimeError(f"the event was answered {r.status}: {await r.text()}")

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal the process and wait for it to end; returns its exit code."""
        self.process.send_signal(sig)
        _out, err = await asyncio.wait_for(self.process.communicate(), timeout=60)
        code = self.process.returncode
        assert code is not None
        if sig != signal.SIGKILL and (code != 0 or b"Traceback" in err):
            raise RuntimeError(f"serve stopped with {code}: {err.decode()}")
        return code


def bot_keys(api: FakeSlackApi) -> list[str]:
    """The outbox key of every message the bot posted in the shared channel, in order."""
    keys = []
    for message in api.messages(SHARED):
        metadata: dict[str, Any] = message.get("metadata") or {}
        key = (metadata.get("event_payload") or {}).get("key")
        if key is not None:
            keys.append(str(key))
    return keys


def leased(db: Path) -> int:
    """How many outbox items are in flight (works on every schema version)."""
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'in_flight'").fetchone()
    return int(count)


def outbox_rows(db: Path) -> list[tuple[str, str, str | None]]:
    """(key, status, lease owner) of every outbox item, read as an operator's sqlite3 would."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT key, status, lease_owner FROM outbox ORDER BY id").fetchall()
    return [(str(key), str(status), owner) for key, status, owner in rows]


def owners(db: Path) -> list[tuple[str, str | None, int, int]]:
    """(owner, identity, started_at_ms, alive_until_ms) of every recorded lease owner."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT owner, identity, started_at_ms, alive_until_ms FROM outbox_owners "
            "ORDER BY started_at_ms"
        ).fetchall()
    return [(str(o), i, int(s), int(a)) for o, i, s, a in rows]
