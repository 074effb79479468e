"""Shared fixtures: the bundled policies are loaded once per session (they are immutable).

Every test is isolated from a developer's `.env` (`SALESBOT_ENV_FILE=/dev/null`; a test of
the file itself sets its own) and from the logging configuration another test left behind
(`salesbot` commands configure logging for the whole process: it is restored after each
test, as are the secrets the log masks).

Hypothesis runs a fixed, derandomised profile when `CI` is set (the same examples on every
run, no example database), so a CI failure reproduces locally with `CI=true make unit`;
elsewhere the default profile explores new examples each run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

import bot.logs
from bot.policy_loader import load_policy
from bot.settings import ENV_FILE_VARIABLE
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
def lexicon_policy() -> Policy:
    """The default policy reading with its lexicons, as every policy did before the trained
    reader (and as stored policies without `[understanding]` still do): for tests of the
    lexicon classifier's own mechanics (hits, negation, confidence, weights)."""
    return load_policy("default").model_copy(update={"understanding": None})


@pytest.fixture(scope="session")
def seed_policy() -> Policy:
    return load_policy("seed")


@pytest.fixture(autouse=True)
def _no_env_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_FILE_VARIABLE, os.devnull)


@pytest.fixture(autouse=True)
def _logging_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(bot.logs, "_masked", bot.logs._masked)
    names = [None, *bot.logs.OWN_PACKAGES, *bot.logs.QUIET_LIBRARIES]
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg, lg.level, lg.handlers[:], lg.propagate, lg.disabled) for lg in loggers]
    yield
    logging.captureWarnings(False)
    for lg, level, handlers, propagate, disabled in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate, lg.disabled = propagate, disabled
