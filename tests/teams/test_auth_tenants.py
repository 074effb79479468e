"""The token check of a bot installed in several tenants: Entra's issuers of every installed
tenant are accepted, any other tenant's refused (`auth.TokenValidator`, `tenants.py`),
against a local issuer on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.teams.auth import AuthError, TokenValidator
from adapters.teams.tenants import Tenants
from storage.memory import MemoryStore
from tests.teams.keys import LocalIssuer, new_key

APP = "app-1"
HOME = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"
C = "cccccccc-0000-4000-8000-000000000003"
FIXTURE = Path(__file__).parent / "fixtures" / "installation_update_team.json"
PATIENCE_S = 10.0


def issuers(tenant: str) -> list[str]:
    return [
        f"https://sts.windows.net/{tenant}/",
        f"https://login.microsoftonline.com/{tenant}/v2.0",
    ]


def install(tenant: str, action: str = "add") -> dict[str, Any]:
    activity: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    activity.pop("_source")
    activity["action"] = action
    activity["conversation"]["tenantId"] = tenant
    activity["channelData"]["tenant"]["id"] = tenant
    return activity


@pytest.fixture
async def issuer() -> AsyncIterator[LocalIssuer]:
    async with LocalIssuer(app_id=APP) as local:
        yield local


def validator(issuer: LocalIssuer, tenants: Tenants) -> TokenValidator:
    return TokenValidator(
        app_id=APP,
        tenant_id=HOME,
        metadata_url=issuer.metadata_url,
        http_timeout_s=5.0,
        installed=tenants.installed,
    )


async def outcome(check: TokenValidator, issuer: LocalIssuer, token: str) -> str:
    try:
        await asyncio.wait_for(
            check.validate(f"Bearer {token}", service_url=issuer.service_url), PATIENCE_S
        )
    except AuthError as refused:
        return refused.reason
    return "ok"


async def test_tokens_of_every_installed_tenant_are_accepted_and_of_no_other(
    issuer: LocalIssuer,
) -> None:
    clock = iter(range(1_800_000_000_000, 1_900_000_000_000)).__next__
    tenants = Tenants(MemoryStore(), home_tenant=HOME, allowed=(B,), clock=clock)
    check = validator(issuer, tenants)
    for iss in issuers(B) + issuers(C):
        assert await outcome(check, issuer, issuer.token(iss=iss)) == "token issuer not accepted"

    await tenants.record_update(install(B))
    await tenants.record_update(install(C))  # installed, but C is not in TEAMS_TENANTS
    for iss in issuers(HOME) + issuers(B):
        assert await outcome(check, issuer, issuer.token(iss=iss)) == "ok"
    for iss in issuers(C):
        assert await outcome(check, issuer, issuer.token(iss=iss)) == "token issuer not accepted"
    # Naming an installed tenant is no way around the signature.
    forged = issuer.token(iss=issuers(B)[0], signed_with=new_key())
    assert await outcome(check, issuer, forged) == "token signature invalid"
    # Bot Framework's own tokens (what a multi-tenant bot mostly receives) as before.
    assert await outcome(check, issuer, issuer.token()) == "ok"

    await tenants.record_update(install(B, "remove"))
    for iss in issuers(B):
        assert await outcome(check, issuer, issuer.token(iss=iss)) == "token issuer not accepted"
    for iss in issuers(HOME):  # the home tenant is configured: always accepted
        assert await outcome(check, issuer, issuer.token(iss=iss)) == "ok"


async def test_an_issuer_that_only_looks_like_entras_is_refused(issuer: LocalIssuer) -> None:
    asked: list[str] = []

    async def installed(tenant: str) -> bool:
        asked.append(tenant)
        return True

    check = TokenValidator(
        app_id=APP, tenant_id=None, metadata_url=issuer.metadata_url, installed=installed
    )
    for iss in (
        f"https://sts.windows.net.evil.example/{B}/",
        f"https://sts.windows.net/{B}/extra/",
        f"http://sts.windows.net/{B}/",
        f"https://login.microsoftonline.com/{B}/v2.0/x",
    ):
        assert await outcome(check, issuer, issuer.token(iss=iss)) == "token issuer not accepted"
    assert asked == []  # not an Entra issuer: no tenant was even looked up
