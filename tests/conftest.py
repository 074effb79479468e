"""Shared fixtures: the bundled policies are loaded once per session (they are immutable).

Hypothesis runs a fixed, derandomised profile when `CI` is set (the same examples on every
run, no example database), so a CI failure reproduces locally with `CI=true make unit`;
elsewhere the default profile explores new examples each run.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from bot.policy_loader import load_policy
from domain.policy import Policy

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=(HealthCheck.too_slow,),
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def default_policy() -> Policy:
    return load_policy("default")


@pytest.fixture(scope="session")
def seed_policy() -> Policy:
    return load_policy("seed")
