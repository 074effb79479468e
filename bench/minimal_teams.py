"""The least a chat product must do per Teams message, on plain aiohttp: the floor under
salesbot's Teams ingest (issue 18, item 2), measured beside the Agents SDK echo bot and
salesbot in one run (`bench.teams_ingest`).

Per activity, and nothing else:

* aiohttp's own work: the request parsed, its JSON read;
* `decide` under the default policy, on the conversation's state kept in a dict;
* a durable commit of what was decided — the stream, the events, the delivery and the
  inbound — through the raw single-writer group-commit loop of `bench.append` (one
  transaction per batch of whatever is queued, WAL, `synchronous = FULL`);
* the acknowledgement (200) once that commit is durable, as salesbot acknowledges only what
  it stored;
* each reply posted to the activity's connector (`serviceUrl`, Connector API v3) over
  kept-alive connections, its text only, not awaited by the request.

No token check (off on every side of the comparison alike), no framework of activities or
turns, and none of salesbot's guarantees: dedupe, hash chain, sealing, projections, durable
outbox, pacing, retries, logging, tenants. So its throughput beside the SDK echo bot's says
how far any product that decides, stores and answers in one Python process on these two
cores can be from the SDK, salesbot included.

    SALESBOT_DB=… python -m bench.minimal_teams

It prints the URL it listens on as its first line (`bench.served.Server`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from bench import floor
from bench.append import RawGroupCommit, decided
from bot.policy_loader import load_policy
from domain.decide import new_conversation
from domain.inbound import Actor, MessagePosted
from domain.state import ConversationState


def make_app(writer: RawGroupCommit, session: aiohttp.ClientSession) -> web.Application:
    """The app: `writer` is the raw loop on a store's schema; replies go through `session`."""
    policy = load_policy("default")
    states: dict[str, ConversationState] = {}
    sending: set[asyncio.Task[Any]] = set()

    async def post(service_url: str, conversation: str, text: str) -> None:
        url = f"{service_url.rstrip('/')}/v3/conversations/{quote(conversation, safe='')}"
        async with session.post(f"{url}/activities", json={"type": "message", "text": text}):
            pass

    async def messages(request: web.Request) -> web.Response:
        activity = await request.json()
        if activity.get("type") != "message":
            return web.Response(status=200)
        conversation = str(activity["conversation"]["id"])
        conversation_id = f"teams:{conversation}"
        sender = activity["from"]
        state = states.get(conversation_id) or new_conversation(conversation_id, policy)
        inbound = MessagePosted(
            delivery_id=f"teams:{activity['id']}",
            conversation_id=conversation_id,
            actor=Actor(id=str(sender["id"]), name=str(sender.get("name") or ""), role="prospect"),
            text=str(activity.get("text") or ""),
        )
        commit, decision = decided(state, inbound, policy, time.time_ns() // 1_000_000)
        await asyncio.wrap_future(writer.submit(commit))
        states[conversation_id] = decision.state
        for reply in decision.replies:
            task = asyncio.create_task(post(str(activity["serviceUrl"]), conversation, reply.text))
            sending.add(task)
            task.add_done_callback(sending.discard)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    return app


async def main() -> None:
    await floor.serve(make_app)


if __name__ == "__main__":
    asyncio.run(main())
