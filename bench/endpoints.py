"""The platform endpoints end to end, in one run: acknowledged requests per second through
the real HTTP server (parse, verify, translate, decide, commit, answer) for Slack's signed
events and Teams activities (unauthenticated local mode and with JWT validation). The outbox
worker is off, so only the ingest path is compared. Also the token check alone."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from adapters.slack.sender import make_client
from adapters.teams.auth import TokenValidator
from adapters.teams.connector import NoToken
from bot.policy_loader import load_policy
from bot.server import build_app
from bot.service import build_service
from bot.settings import Settings
from storage.memory import MemoryStore
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.teams_connector import FakeConnector
from tests.teams.keys import LocalIssuer

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TENANT = "tenant-0001"
TEXTS = ("Hello", "We have a $5000 budget", "I am the CTO", "too expensive", "next month works")
Post = Callable[[int, int], Awaitable[int]]


async def _rate(post: Post, conversations: int, messages: int) -> float:
    async def conversation(c: int) -> None:
        for m in range(messages):
            status = await post(c, m)
            if status != 200:
                raise RuntimeError(f"request answered {status}")

    start = time.perf_counter()
    await asyncio.gather(*(conversation(c) for c in range(conversations)))
    return conversations * messages / (time.perf_counter() - start)


def _serve(settings: Settings, **build: Any) -> TestClient[web.Request, web.Application]:
    ticks = itertools.count()
    service = build_service(
        settings,
        load_policy("default"),
        MemoryStore(),
        clock=lambda: int(time.time() * 1000) + next(ticks),
        slack_pacing_ms=0,
        **build,
    )

    async def outbox_off(stop: asyncio.Event, idle_poll_s: float = 0.0) -> None:
        # The ingest path only: sends would compete for the one core differently per platform
        # (in signed mode they go to an https URL the local fake cannot answer).
        await stop.wait()

    service.worker.run = outbox_off  # type: ignore[method-assign]  # bench only
    return TestClient(TestServer(build_app(service), host="127.0.0.1"))


async def _slack(conversations: int, messages: int) -> float:
    from slack_sdk.signature import SignatureVerifier

    verifier = SignatureVerifier(SECRET)
    async with FakeSlackApi(token="xoxb-bench") as api:
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-bench"),
            slack_signing_secret=SecretStr(SECRET),
            slack_api_url=api.base_url,
        )
        client_ = make_client(api.token, api.base_url, timeout_s=5)
        async with _serve(settings, slack_client=client_) as client:

            async def post(c: int, m: int) -> int:
                body = json.dumps(
                    {
                        "type": "event_callback",
                        "team_id": "T0001",
                        "api_app_id": "A0001",
                        "event_id": f"Ev{c}-{m}",
                        "event_time": int(time.time()),
                        "event": {
                            "type": "message",
                            "channel": f"C{c:05d}",
                            "channel_type": "channel",
                            "user": "U0PAT",
                            "user_team": "T0ACME",
                            "text": TEXTS[m % len(TEXTS)],
                            "ts": f"1790000000.{c:03d}{m:03d}",
                        },
                        "authorizations": [{"team_id": "T0001", "user_id": "UBOT"}],
                    }
                ).encode()
                ts = str(int(time.time()))
                headers = {
                    "Content-Type": "application/json",
                    "X-Slack-Request-Timestamp": ts,
                    "X-Slack-Signature": str(verifier.generate_signature(timestamp=ts, body=body)),
                }
                async with client.post("/slack/events", data=body, headers=headers) as r:
                    return r.status

            return await _rate(post, conversations, messages)


def _activity(c: int, m: int, service_url: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"act-{c}-{m}",
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": {"id": "29:pat", "aadObjectId": "aad-pat", "name": "Pat", "tenantId": "acme"},
        "conversation": {
            "id": f"19:c{c}@thread.tacv2;messageid=1",
            "conversationType": "channel",
            "tenantId": TENANT,
        },
        "recipient": {"id": "28:app-bench", "name": "salesbot"},
        "text": TEXTS[m % len(TEXTS)],
        "channelData": {"tenant": {"id": TENANT}},
    }


async def _teams(conversations: int, messages: int, *, signed: bool) -> float:
    async with (
        FakeConnector(tenant_id=TENANT) as connector,
        LocalIssuer(app_id="app-bench") as issuer,
    ):
        values: dict[str, Any] = {"teams_app_tenant_id": TENANT}
        service_url = connector.base_url
        if signed:
            # https is required with credentials; the outbox's sends then fail locally.
            service_url = service_url.replace("http://", "https://")
            values |= {
                "teams_app_id": "app-bench",
                "teams_app_password": SecretStr("bench"),
                "teams_openid_metadata_url": issuer.metadata_url,
            }
        else:
            values["teams_allow_unauthenticated"] = True
        async with _serve(Settings(**values), teams_tokens=NoToken()) as client:
            token = issuer.token(serviceUrl=service_url) if signed else None
            headers = {"Authorization": f"Bearer {token}"} if token else {}

            async def post(c: int, m: int) -> int:
                activity = _activity(c, m, service_url)
                async with client.post("/api/messages", json=activity, headers=headers) as r:
                    return r.status

            return await _rate(post, conversations, messages)


async def _validations(seconds: float = 0.3) -> float:
    async with LocalIssuer(app_id="app-bench") as issuer:
        validator = TokenValidator(
            app_id="app-bench", tenant_id=None, metadata_url=issuer.metadata_url
        )
        header = issuer.authorization(serviceUrl="https://x.test/")
        await validator.validate(header, service_url="https://x.test/")  # keys fetched once
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            await validator.validate(header, service_url="https://x.test/")
            calls += 1
        return calls / (time.perf_counter() - start)


async def measure(conversations: int = 50, messages: int = 5) -> dict[str, float]:
    results: dict[str, float] = {}
    results["slack_events_acked_per_s"] = await _slack(conversations, messages)
    results["teams_activities_acked_per_s"] = await _teams(conversations, messages, signed=False)
    results["teams_signed_activities_acked_per_s"] = await _teams(
        conversations, messages, signed=True
    )
    results["teams_token_validations_per_s"] = await _validations()
    results["teams_vs_slack_ack_cost"] = (
        results["slack_events_acked_per_s"] / results["teams_activities_acked_per_s"]
    )
    results["teams_jwt_cost_per_request_share"] = (1 / results["teams_token_validations_per_s"]) / (
        1 / results["teams_signed_activities_acked_per_s"]
    )
    return results
