"""Two workspaces on one salesbot, through the real server, the SQLite store and a fake Slack
on 127.0.0.1: the first configured by `SLACK_BOT_TOKEN`, the second added through Add to
Slack. Each has an auditor (both in `SALESBOT_AUDITORS`). An auditor reads the audits of
their own workspace's conversations and quotes; asking for the other workspace's is
answered exactly as for an id that never existed, so not even its existence leaks. The
conversations themselves record which installation they belong to."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.e2e.harness import eventually
from tests.fakes.slack_api import FakeSlackApi
from tests.slack.test_workspace_channels import serving
from tests.slack.test_workspace_channels import slash as run_slash
from tests.slack.test_workspaces import (
    FIRST,
    FIRST_CHANNEL,
    SECOND,
    SECOND_CHANNEL,
    SECOND_TOKEN,
    Site,
)

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

ACME_AUDITOR, GLOBEX_AUDITOR = "U0ACMEAUDIT", "U0GLOBEXAUDIT"
GLOBEX_REP = "U0GLOBEXREP"
QUESTION = "We are 40 people and need pricing for the pro plan this quarter."
_TRIGGERS = itertools.count(1)
NOT_FOUND = "No conversation, lead or quote with id"
NEVER = "slack:T0404:C0NONE:1700000000.000100"


@pytest.fixture
async def api() -> AsyncIterator[FakeSlackApi]:
    async with FakeSlackApi(token="xoxb-test", team_id=FIRST) as api:
        api.grant("code-globex", token=SECOND_TOKEN, team_id=SECOND, team="Globex")
        api.add_user(ACME_AUDITOR, team_id=FIRST)
        for user in (GLOBEX_AUDITOR, GLOBEX_REP):
            api.add_user(user, team_id=SECOND)
        yield api


async def slash(site: Site, team: str, channel: str, user: str, command: str, text: str) -> str:
    """Run a slash command in `team`'s `channel`; returns its response URL."""
    return await run_slash(site, user, command, text, team=team, channel=channel)


def told(site: Site, url: str, channel: str) -> str:
    bodies = site.api.response_posts(url) + site.api.ephemerals(channel)
    return "\n".join(json.dumps(body) for body in bodies)


async def audit(site: Site, team: str, channel: str, auditor: str, target: str) -> str:
    url = await slash(site, team, channel, auditor, "/audit", target)
    await eventually(lambda: target in told(site, url, channel), f"the answer to {target}")
    return "\n".join(json.dumps(body) for body in site.api.response_posts(url))


async def test_an_auditor_sees_their_own_workspaces_conversations_and_never_the_others(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    async with serving(api, tmp_path / "bot.db", auditors=(ACME_AUDITOR, GLOBEX_AUDITOR)) as site:
        await site.install("code-globex")
        await site.prospect_says(FIRST, FIRST_CHANNEL, QUESTION)
        await site.prospect_says(SECOND, SECOND_CHANNEL, QUESTION)
        await eventually(lambda: bool(site.bot_posts(SECOND_CHANNEL)), "the second's reply")
        await eventually(lambda: bool(site.bot_posts(FIRST_CHANNEL)), "the first's reply")
        # Each prospect's message starts its own thread: the conversation.
        acme = f"slack:{FIRST}:{FIRST_CHANNEL}:{site.bot_posts(FIRST_CHANNEL)[0]['thread_ts']}"
        globex = f"slack:{SECOND}:{SECOND_CHANNEL}:{site.bot_posts(SECOND_CHANNEL)[0]['thread_ts']}"

        own_first = await audit(site, FIRST, FIRST_CHANNEL, ACME_AUDITOR, acme)
        others_first = await audit(site, FIRST, FIRST_CHANNEL, ACME_AUDITOR, globex)
        own_second = await audit(site, SECOND, SECOND_CHANNEL, GLOBEX_AUDITOR, globex)
        others_second = await audit(site, SECOND, SECOND_CHANNEL, GLOBEX_AUDITOR, acme)
        never = await audit(site, FIRST, FIRST_CHANNEL, ACME_AUDITOR, NEVER)

        started = {
            cid: [
                e.event
                for e in await site.store.load(cid)
                if e.event.type == "conversation_started"
            ]
            for cid in (acme, globex)
        }

    for own in (own_first, own_second):
        assert NOT_FOUND not in own
        assert QUESTION[:20] in own  # the auditor reads the prospect's words
    for other, target in ((others_first, globex), (others_second, acme)):
        assert QUESTION[:20] not in other
        # Word for word what an id that never existed gets:
        assert _answer(other) == _answer(never).replace(NEVER, target)
    assert [e.installation for e in started[acme]] == [""]  # the first installation's
    assert [e.installation for e in started[globex]] == [f"slack:{SECOND}"]


async def test_a_quote_of_another_workspace_is_not_found_by_its_id(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    async with serving(api, tmp_path / "bot.db", auditors=(ACME_AUDITOR, GLOBEX_AUDITOR)) as site:
        await site.install("code-globex")
        url = await slash(site, SECOND, SECOND_CHANNEL, GLOBEX_REP, "/quote", "10 pro")

        def posted() -> str:
            return told(site, url, SECOND_CHANNEL) + json.dumps(site.bot_posts(SECOND_CHANNEL))

        await eventually(lambda: "Q-" in posted(), "the quote")
        quote_id = _quote_id(posted())

        theirs = await audit(site, SECOND, SECOND_CHANNEL, GLOBEX_AUDITOR, quote_id)
        others = await audit(site, FIRST, FIRST_CHANNEL, ACME_AUDITOR, quote_id)

    assert NOT_FOUND not in theirs
    assert "Audit of quote" in _answer(theirs)
    assert _answer(others) == f"{NOT_FOUND} {quote_id!r}."


def _answer(bodies: str) -> str:
    texts = [json.loads(line).get("text", "") for line in bodies.splitlines() if line]
    return "\n".join(texts)


def _quote_id(text: str) -> str:
    found = re.search(r"Q-[0-9a-f]{10}", text)
    assert found is not None, text
    return found.group(0)


async def test_each_workspace_s_metrics_count_its_own_conversations(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    async with serving(api, tmp_path / "bot.db", auditors=(ACME_AUDITOR, GLOBEX_AUDITOR)) as site:
        await site.install("code-globex")
        for _ in range(3):
            await site.prospect_says(FIRST, FIRST_CHANNEL, QUESTION)
        await site.prospect_says(SECOND, SECOND_CHANNEL, QUESTION)
        await eventually(lambda: len(site.bot_posts(FIRST_CHANNEL)) >= 3, "the first's replies")
        await eventually(lambda: bool(site.bot_posts(SECOND_CHANNEL)), "the second's reply")

        first = await slash(site, FIRST, FIRST_CHANNEL, ACME_AUDITOR, "/metrics", "")
        second = await slash(site, SECOND, SECOND_CHANNEL, GLOBEX_REP, "/metrics", "")
        await eventually(lambda: "Conversations:" in told(site, first, FIRST_CHANNEL), "first")
        await eventually(lambda: "Conversations:" in told(site, second, SECOND_CHANNEL), "second")

    assert "Conversations: 3 started, 3 engaged" in _answer(told(site, first, FIRST_CHANNEL))
    assert "Conversations: 1 started, 1 engaged" in _answer(told(site, second, SECOND_CHANNEL))


GLOBEX_ADMIN = "U0GLOBEXADMIN"
FIRST_LEADS, GLOBEX_LEADS = "C0LEADS", "C0GLOBEXLEADS"
FIRST_TOKEN, GLOBEX_TOKEN = "first-leads-token-0001", "globex-leads-token-0002"
LEAD = {
    "name": "Dana Reyes",
    "company": "Initrode",
    "email": "dana@initrode.example",
    "message": "We need pricing for 40 seats this quarter.",
}


async def test_a_workspace_s_own_lead_feed_posts_its_leads_in_its_own_leads_channel(
    api: FakeSlackApi, tmp_path: Path
) -> None:
    """A lead posted with the second workspace's own token is posted, by that workspace's
    bot, in the leads channel its admin chose — never in the first workspace's; the first
    workspace's leads still go to the configured channel."""
    api.add_user(GLOBEX_ADMIN, team_id=SECOND)
    async with serving(
        api,
        tmp_path / "bot.db",
        slack_leads_channel=FIRST_LEADS,
        salesbot_leads_token=SecretStr(FIRST_TOKEN),
        salesbot_installation_leads_tokens=SecretStr(f"slack:{SECOND}={GLOBEX_TOKEN}"),
    ) as site:
        await site.install("code-globex")
        url = await slash(
            site, SECOND, SECOND_CHANNEL, GLOBEX_ADMIN, "/setup", f"leads <#{GLOBEX_LEADS}|leads>"
        )
        await eventually(lambda: "#leads" in told(site, url, SECOND_CHANNEL), "the choice")
        for token in (GLOBEX_TOKEN, FIRST_TOKEN):
            response = await site.client.post(
                "/leads", json=LEAD, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status == 201, await response.text()
        await eventually(lambda: bool(site.bot_posts(GLOBEX_LEADS)), "the second's lead card")
        await eventually(lambda: bool(site.bot_posts(FIRST_LEADS)), "the first's lead card")

    # The card and what follows in its thread, each by the workspace's own bot:
    assert {(m["team"], m["user"]) for m in site.bot_posts(GLOBEX_LEADS)} == {(SECOND, "UBOTT0002")}
    assert {(m["team"], m["user"]) for m in site.bot_posts(FIRST_LEADS)} == {
        (FIRST, api.bot_user_id)
    }
    assert "Initrode" in json.dumps(site.bot_posts(GLOBEX_LEADS)[0])
