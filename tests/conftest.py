"""Shared fixtures: the bundled policies are loaded once per session (they are immutable)."""

from __future__ import annotations

import pytest

from bot.policy_loader import load_policy
from domain.policy import Policy


@pytest.fixture(scope="session")
def default_policy() -> Policy:
    return load_policy("default")


@pytest.fixture(scope="session")
def seed_policy() -> Policy:
    return load_policy("seed")
