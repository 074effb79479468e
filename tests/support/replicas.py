"""Several `salesbot serve` processes on one PostgreSQL, behind a round-robin proxy, talking
Slack to one fake Web API — for the replica tests (`tests/integration/test_replicas.py`)
and `bench/replicas.py`. Everything listens on 127.0.0.1, on ports the OS picks.

    async with FakeSlackApi(...) as api, Fleet.start(3, dsn, api, logs) as fleet:
        status = await fleet.post(slack_event(...))        # through the proxy
        status = await fleet.post(body, to=fleet.replicas[1])  # to one replica

A replica's stderr (its log) goes to a file: a pipe nobody reads would fill up under load
and stop the process. `Replica.kill` is kill -9.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from adapters.slack.ids import message_delivery_id
from bench.served import Server, salesbot_serve
from tests.fakes.local import serve_locally
from tests.fakes.slack_api import FakeSlackApi
from tests.support.slack_clicks import BOT as BOT
from tests.support.slack_clicks import TEAM as TEAM
from tests.support.slack_clicks import block_actions
from tests.support.slack_clicks import bot_messages as bot_messages

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
HANDOFF = "C0HANDOFF"
REP, BOSS = "U0REP", "U0BOSS"
PROSPECT_TEAM = "T0ACME"  # Slack Connect: the prospects write from another workspace
_EVENT_IDS = itertools.count(1)


@dataclass(frozen=True)
class Request:
    """One signed Slack request, ready to post (and to post again: Slack's retries)."""

    body: bytes
    content_type: str
    delivery_id: str | None = None
    """What the bot stores it under, when the test needs to know (a message's)."""

    def headers(self, *, retry: int = 0) -> dict[str, str]:
        """Signed now (Slack signs each retry anew)."""
        stamp = str(int(time.time()))
        signature = SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=self.body)
        headers = {
            "Content-Type": self.content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": str(signature),
        }
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return headers


def slack_event(
    event: Mapping[str, Any], *, event_id: str | None = None, delivery_id: str | None = None
) -> Request:
    """An Events API callback as Slack sends it."""
    body = json.dumps(
        {
            "token": "x",
            "team_id": TEAM,
            "api_app_id": "A0001",
            "type": "event_callback",
            "event_id": event_id or f"Ev{os.getpid()}r{next(_EVENT_IDS)}",
            "event_time": int(time.time()),
            "event": dict(event),
            "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}],
        }
    ).encode()
    return Request(body=body, content_type="application/json", delivery_id=delivery_id)


def prospect_message(
    api: FakeSlackApi, channel: str, user: str, text: str, *, thread: str | None = None
) -> Request:
    """A prospect of another workspace writes in `channel` (opening a thread, or in
    `thread`): the message is in Slack's history, and this is its signed event."""
    ts = api.add_message(channel, text, user=user, thread_ts=thread)
    event: dict[str, Any] = {
        "type": "message",
        "channel": channel,
        "channel_type": "channel",
        "text": text,
        "ts": ts,
        "user": user,
        "user_team": PROSPECT_TEAM,
    }
    if thread is not None:
        event["thread_ts"] = thread
    return slack_event(event, delivery_id=message_delivery_id(channel, ts))


def slack_form(fields: Mapping[str, str]) -> Request:
    """A slash command or an interaction (`payload=`), form-encoded as Slack posts them."""
    return Request(
        body=urlencode(fields).encode(), content_type="application/x-www-form-urlencoded"
    )


def click(
    message: Mapping[str, Any],
    action: str,
    user: str,
    *,
    channel: str,
    user_team: str = TEAM,
    value: str | None = None,
) -> Request:
    """`user` clicks the button `action` of `message` as it sits in `channel`."""
    payload = block_actions(
        message, action, user, channel=channel, user_team=user_team, value=value
    )
    return slack_form({"payload": json.dumps(payload)})


def posted_keys(api: FakeSlackApi, channels: list[str]) -> list[str]:
    """The outbox key of every message the bot posted in `channels` (each once per post)."""
    keys = []
    for channel in channels:
        for message in bot_messages(api, channel):
            metadata: dict[str, Any] = message.get("metadata") or {}
            key = (metadata.get("event_payload") or {}).get("key")
            if key is not None:
                keys.append(str(key))
    return keys


class Replica:
    """One `salesbot serve` process on a free loopback port."""

    def __init__(
        self, process: asyncio.subprocess.Process, base_url: str, log: Path, name: str
    ) -> None:
        self.process = process
        self.base_url = base_url
        self.log = log
        self.name = name

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(
        cls, name: str, dsn: str, api: FakeSlackApi, logs: Path, env: Mapping[str, str]
    ) -> Replica:
        log = logs / f"{name}.log"
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SALESBOT_ENV_FILE": "/dev/null",
            "SALESBOT_DB": dsn,
            "SALESBOT_LOG_FORMAT": "json",
            "SLACK_BOT_TOKEN": api.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": api.base_url,
            "SLACK_HANDOFF_CHANNEL": HANDOFF,
            "SALESBOT_APPROVERS": BOSS,
            **env,
        }
        try:
            server = await Server.start(salesbot_serve(), environment, log)
        except RuntimeError as exc:
            raise RuntimeError(f"replica {name} did not start: {exc}") from None
        return cls(server.process, server.base_url, log, name)

    def freeze(self) -> None:
        """SIGSTOP: the process runs no more code (a kill -9 then ends it as it was)."""
        self.process.send_signal(signal.SIGSTOP)

    async def kill(self) -> None:
        """kill -9: no shutdown, no lease released."""
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM, and wait for the graceful stop; returns the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.process.communicate(), timeout=60)
        code = self.process.returncode
        assert code is not None
        return code

    def tracebacks(self) -> str:
        """The log's lines that carry a traceback (the JSON formatter's `exception`)."""
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(line for line in lines if '"exception"' in line or "Traceback" in line)


@dataclass
class RoundRobin:
    """A load balancer in a few lines: each request to the next replica in turn. A replica
    that refuses the connection (dead) is skipped for the next; one that drops a request it
    was given answers 502 — the request may have been handled, so, as a real balancer does,
    it is not sent elsewhere (the platform retries it)."""

    replicas: list[Replica]
    base_url: str = ""
    served: list[str] = field(default_factory=list)
    """The name of the replica that answered each forwarded request, in order."""
    _turns: itertools.count[int] = field(default_factory=itertools.count)
    _session: aiohttp.ClientSession | None = None
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        # A new connection per request: a dead replica refuses it (skipped), where a kept
        # one would fail half-way (502) as if the request had been handled.
        self._session = aiohttp.ClientSession(
            auto_decompress=False, connector=aiohttp.TCPConnector(force_close=True)
        )
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner, port = await serve_locally(app)
        self.base_url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}
        }
        for _ in range(len(self.replicas)):
            replica = self.replicas[next(self._turns) % len(self.replicas)]
            try:
                async with self._session.request(
                    request.method,
                    replica.base_url + request.path_qs,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                ) as answer:
                    payload = await answer.read()
                    self.served.append(replica.name)
                    kept = {
                        k: v
                        for k, v in answer.headers.items()
                        if k.lower() not in {"content-length", "transfer-encoding", "connection"}
                    }
                    return web.Response(status=answer.status, body=payload, headers=kept)
            except aiohttp.ClientConnectorError:
                continue  # nobody listens there any more: the next replica
            except aiohttp.ClientError:
                return web.Response(status=502, text="the replica dropped the request")
        return web.Response(status=502, text="no replica listens")


class Fleet:
    """Replicas started together, and the proxy in front of them."""

    def __init__(
        self, replicas: list[Replica], proxy: RoundRobin, session: aiohttp.ClientSession
    ) -> None:
        self.replicas = replicas
        self.proxy = proxy
        self.session = session

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        count: int,
        dsn: str,
        api: FakeSlackApi,
        logs: Path,
        env: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Fleet]:
        """`count` replicas started at once (as a deploy starts them: they race to create
        the schema and the action secret), stopped with SIGTERM at the end."""
        started = await asyncio.gather(
            *(Replica.start(f"replica-{n}", dsn, api, logs, env or {}) for n in range(count)),
            return_exceptions=True,
        )
        replicas = [r for r in started if isinstance(r, Replica)]
        proxy = RoundRobin(replicas)
        session = aiohttp.ClientSession()
        try:
            failed = [r for r in started if isinstance(r, BaseException)]
            if failed:
                raise failed[0]
            await proxy.start()
            yield cls(replicas, proxy, session)
        finally:
            await session.close()
            await proxy.close()
            await asyncio.gather(*(r.stop() for r in replicas), return_exceptions=True)

    async def post(self, request: Request, *, to: Replica | None = None, retry: int = 0) -> int:
        """Post through the proxy (or straight `to` one replica); the HTTP status, or 0
        when the connection failed."""
        base = self.proxy.base_url if to is None else to.base_url
        try:
            async with self.session.post(
                f"{base}/slack/events", data=request.body, headers=request.headers(retry=retry)
            ) as answer:
                await answer.read()
                return answer.status
        except aiohttp.ClientError:
            return 0

    async def deliver(self, request: Request, *, attempts: int = 4) -> int:
        """As Slack delivers an event: the original and up to 3 retries until one is
        acknowledged (200); returns how many tries it took, 0 if none was acknowledged."""
        for attempt in range(attempts):
            if await self.post(request, retry=attempt) == 200:
                return attempt + 1
        return 0
