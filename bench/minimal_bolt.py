"""The least a chat product must do per message, served by slack-bolt: the floor under
salesbot's Slack ingest (issue 18, item 1), measured beside bare bolt and salesbot in one run
(`bench.slack_ingest`).

Per message, and nothing else:

* bolt's own work, as the bare app does it (signature check, parsing, routing);
* `decide` under the default policy, on the conversation's state kept in a dict;
* a durable commit of what was decided — the stream, the events, the delivery and the
  inbound — through the raw single-writer group-commit loop of `bench.append` (one
  transaction per batch of whatever is queued, WAL, `synchronous = FULL`);
* the acknowledgement once that commit is durable (`process_before_response`: an
  acknowledged message must not be lost, as salesbot acknowledges only what it stored);
* each reply posted to the Web API with the app's client (its text only; not awaited by
  the request).

No dedupe, hash chain, sealing, projections, durable outbox, pacing, retries, logging,
access control or cache bound: what any product that decides, stores and answers a message
on these two cores pays at least. So its throughput beside bare bolt's is the ceiling of
any such product's ratio, salesbot's included.

    SLACK_BOT_TOKEN=… SLACK_SIGNING_SECRET=… SLACK_API_URL=… SALESBOT_DB=… \\
        python -m bench.minimal_bolt

It prints the URL it listens on as its first line (`bench.served.Server`).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bench import floor
from bench.append import RawGroupCommit, decided
from bot.policy_loader import load_policy
from domain.decide import new_conversation
from domain.inbound import Actor, MessagePosted
from domain.state import ConversationState


def make_app(
    writer: RawGroupCommit,
    session: aiohttp.ClientSession,
    *,
    token: str,
    signing_secret: str,
    api_url: str,
) -> AsyncApp:
    """The app: `writer` is the raw loop on a store's schema; the client posts to `api_url`
    through `session` (kept-alive connections, as salesbot's sender keeps them: without
    one, the Web API client opens a connection per call)."""
    policy = load_policy("default")
    states: dict[str, ConversationState] = {}
    sending: set[asyncio.Task[Any]] = set()
    app = AsyncApp(
        client=AsyncWebClient(token=token, base_url=api_url, session=session),
        signing_secret=signing_secret,
        process_before_response=True,
    )

    @app.event("message")
    async def decide_store_reply(
        body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient
    ) -> None:
        channel = str(event["channel"])
        thread = str(event.get("thread_ts") or event["ts"])
        conversation_id = f"{channel}:{thread}"
        state = states.get(conversation_id) or new_conversation(conversation_id, policy)
        inbound = MessagePosted(
            delivery_id=str(body["event_id"]),
            conversation_id=conversation_id,
            actor=Actor(id=str(event["user"]), name=str(event["user"]), role="prospect"),
            text=str(event.get("text") or ""),
        )
        commit, decision = decided(state, inbound, policy, time.time_ns() // 1_000_000)
        await asyncio.wrap_future(writer.submit(commit))
        states[conversation_id] = decision.state
        for reply in decision.replies:
            task = asyncio.create_task(
                client.chat_postMessage(channel=channel, thread_ts=thread, text=reply.text)
            )
            sending.add(task)
            task.add_done_callback(sending.discard)

    return app


async def main() -> None:
    await floor.serve(
        lambda writer, session: make_app(
            writer,
            session,
            token=os.environ["SLACK_BOT_TOKEN"],
            signing_secret=os.environ["SLACK_SIGNING_SECRET"],
            api_url=os.environ["SLACK_API_URL"],
        ).web_app(path="/slack/events")
    )


if __name__ == "__main__":
    asyncio.run(main())
