"""The parity runs, once per session: `test_parity` compares Slack with Teams, and
`test_parity_local` compares the playground, `salesbot chat` and the lead feed with the same
Slack run (each run takes seconds; neither module should pay for it twice)."""

from __future__ import annotations

import pytest
import pytest_asyncio

from tests.e2e.parity import Run
from tests.e2e.test_parity import run_slack, run_teams


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def slack_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The parity script through Slack, end to end (`test_parity.run_slack`)."""
    return await run_slack(tmp_path_factory.mktemp("parity-slack") / "slack.db")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def teams_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The parity script through Teams, end to end (`test_parity.run_teams`)."""
    return await run_teams(tmp_path_factory.mktemp("parity-teams") / "teams.db")
