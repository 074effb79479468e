"""The requests the ingest benches send: real platform payload shapes (the fixtures in
`tests/fixtures/`, copied from /work/shared/fixtures), with ids that make every request a new
message in one of `conversations` conversations.

Slack: the `event_callback` wrapping a `message` (bolt-python's fixture), its speaker made a
prospect from another workspace (Slack Connect: `user_team` differs from the bot's team; the
fixture's W111 is the bot itself, which every app ignores), in channel `C{n}` under thread
`{n}` — one conversation per channel, so the outbox's per-channel pacing is spread as wide
as the conversations are. Signed as Slack signs (`v0:{timestamp}:{body}`, HMAC-SHA256).

Teams: the 1:1 `message` activity (Microsoft's docs), one personal conversation per
conversation number, from a user of another tenant (a prospect to salesbot), `serviceUrl`
pointed at the local fake connector.

Only the standard library here: the load generator imports this before it starts timing.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
TEAM, BOT, APP = "T0001", "UBOT", "A0001"
PROSPECT_TEAM = "T0ACME"
TEXTS = (
    "Hello, we are evaluating CRMs for our sales team",
    "We are a team of 40 and need something this quarter",
    "We have a $5000 budget, I am the head of sales",
    "Can you send pricing for the pro plan?",
    "Hmm, that is too expensive for us",
    "Does it integrate with our email and calendar?",
    "We want to start next month if the numbers work",
)
"""What prospects write, cycled per conversation (message `m` of every conversation is
`TEXTS[m % 7]`)."""

Request = tuple[bytes, dict[str, str]]


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    data.pop("_source", None)
    return data


SLACK_FIXTURE = "slack/event_callback_message.bolt_fixture.json"
TEAMS_FIXTURE = "teams/teams_message_personal.json"


class SlackBodies:
    """Signed `event_callback` requests; `run` keeps the ids of separate runs apart."""

    def __init__(self, secret: str, *, run: str, timestamp: int) -> None:
        self.secret = secret.encode()
        self.run = run
        self.stamp = str(timestamp)
        self.template = _fixture(SLACK_FIXTURE)
        self.template.pop("enterprise_id", None)
        self.template.update(team_id=TEAM, api_app_id=APP)
        self.template["authorizations"] = [
            {"team_id": TEAM, "user_id": BOT, "is_bot": True, "is_enterprise_install": False}
        ]

    def body(self, conversation: int, message: int, stamp: str | None = None) -> dict[str, Any]:
        data = copy.deepcopy(self.template)
        text = TEXTS[message % len(TEXTS)]
        channel = f"C{self.run}{conversation:05d}"
        thread = f"1790000000.{conversation:06d}"
        ts = f"{1790000001 + message}.{conversation:06d}"
        event = data["event"]
        event.pop("client_msg_id", None)
        event.update(
            user="U0PAT",
            user_team=PROSPECT_TEAM,
            team=PROSPECT_TEAM,
            text=text,
            ts=ts,
            event_ts=ts,
            thread_ts=thread,
            channel=channel,
        )
        event["blocks"][0]["elements"][0]["elements"][0]["text"] = text
        data.update(
            event_id=f"Ev{self.run}x{conversation}x{message}",
            event_time=int(stamp or self.stamp),
            event_context=f"1-message-{TEAM}-{channel}",
        )
        return data

    def request(self, conversation: int, message: int, *, timestamp: int | None = None) -> Request:
        """Signed at `timestamp` (epoch seconds; default the one given at construction)."""
        stamp = self.stamp if timestamp is None else str(timestamp)
        raw = json.dumps(self.body(conversation, message, stamp), separators=(",", ":")).encode()
        base = b"v0:" + stamp.encode() + b":" + raw
        signature = "v0=" + hmac.new(self.secret, base, hashlib.sha256).hexdigest()
        return raw, {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature,
        }


class TeamsBodies:
    """Unsigned `message` activities (token checking off on both servers alike)."""

    def __init__(self, service_url: str, *, run: str, authorization: str | None = None) -> None:
        self.service_url = service_url
        self.run = run
        self.authorization = authorization
        self.template = _fixture(TEAMS_FIXTURE)

    def body(self, conversation: int, message: int) -> dict[str, Any]:
        data = copy.deepcopy(self.template)
        text = TEXTS[message % len(TEXTS)]
        data.update(
            id=f"act-{self.run}-{conversation}-{message}",
            serviceUrl=self.service_url,
            text=text,
            attachments=[{"contentType": "text/html", "content": f"<div>{text}</div>"}],
        )
        data["conversation"]["id"] = f"a:bench-{self.run}-{conversation:05d}"
        return data

    def request(self, conversation: int, message: int) -> Request:
        raw = json.dumps(self.body(conversation, message), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if self.authorization is not None:
            headers["Authorization"] = self.authorization
        return raw, headers
