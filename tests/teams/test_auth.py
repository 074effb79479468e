"""The `/api/messages` bearer-token check, against a local issuer on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from adapters.teams.auth import AuthError, Claims, TokenValidator
from tests.teams.keys import BOT_FRAMEWORK_ISSUER, LocalIssuer, new_key

APP = "app-1"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
# Far longer than any fetch on loopback; a test that needs it has failed.
PATIENCE_S = 10.0


@pytest.fixture
async def issuer() -> AsyncIterator[LocalIssuer]:
    async with LocalIssuer(app_id=APP) as local:
        yield local


def validator_for(issuer: LocalIssuer, **overrides: Any) -> TokenValidator:
    settings: dict[str, Any] = {
        "app_id": APP,
        "tenant_id": None,
        "metadata_url": issuer.metadata_url,
        "http_timeout_s": 5.0,
    }
    settings.update(overrides)
    return TokenValidator(**settings)


async def validate(
    validator: TokenValidator, issuer: LocalIssuer, token: str, **kwargs: Any
) -> Claims:
    service_url = kwargs.get("service_url", issuer.service_url)
    return await asyncio.wait_for(
        validator.validate(f"Bearer {token}", service_url=service_url), PATIENCE_S
    )


async def refusal(
    validator: TokenValidator, authorization: str | None, service_url: str | None
) -> str:
    with pytest.raises(AuthError) as refused:
        await asyncio.wait_for(
            validator.validate(authorization, service_url=service_url), PATIENCE_S
        )
    reason = refused.value.reason
    # The reason may be shown and logged: it never repeats the token.
    for part in (authorization or "").split():
        assert len(part) < 20 or part not in reason
    return reason


def hs256_token(secret: bytes, claims: dict[str, Any], kid: str) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


async def test_a_valid_token_yields_its_claims_and_the_keys_are_fetched_once(issuer):
    validator = validator_for(issuer)

    claims = await validate(validator, issuer, issuer.token(tid=TENANT))
    again = await validate(validator, issuer, issuer.token())

    assert claims.app_id == APP
    assert claims.issuer == BOT_FRAMEWORK_ISSUER
    assert claims.service_url == issuer.service_url
    assert claims.raw["tid"] == TENANT
    assert again.app_id == APP
    assert (issuer.metadata_fetches, issuer.jwks_fetches) == (1, 1)


async def test_the_bearer_scheme_is_read_without_regard_to_case(issuer):
    claims = await validator_for(issuer).validate(
        f"bearer {issuer.token()}", service_url=issuer.service_url
    )
    assert claims.app_id == APP


async def test_a_request_without_an_authorization_header_is_refused(issuer):
    validator = validator_for(issuer)
    assert await refusal(validator, None, issuer.service_url) == "missing bearer token"
    assert await refusal(validator, "", issuer.service_url) == "missing bearer token"
    assert issuer.metadata_fetches == 0


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Bearer a b", "Token abc", "abc.def.ghi"],
)
async def test_an_authorization_header_that_is_not_a_bearer_token_is_refused(issuer, header):
    reason = await refusal(validator_for(issuer), header, issuer.service_url)
    assert reason == "authorization header is not a bearer token"


async def test_a_bearer_value_that_is_not_a_jwt_is_refused_before_any_key_is_fetched(issuer):
    reason = await refusal(validator_for(issuer), "Bearer not-a-jwt", issuer.service_url)
    assert reason == "malformed token"
    assert issuer.metadata_fetches == 0


@pytest.mark.parametrize(
    ("endorsements", "channel", "accepted"),
    [
        (["msteams", "skype"], "msteams", True),
        (["webchat"], "msteams", False),  # a key that signs for another channel only
        (None, "msteams", True),  # keys that list no endorsements (emulators, Entra)
        (["webchat"], None, True),  # no channel to check against
    ],
)
async def test_a_key_must_be_endorsed_for_the_activitys_channel(
    issuer, endorsements, channel, accepted
):
    issuer.endorsements = endorsements
    validator = validator_for(issuer)
    authorization = f"Bearer {issuer.token()}"
    call = validator.validate(authorization, service_url=issuer.service_url, channel_id=channel)
    if accepted:
        claims = await asyncio.wait_for(call, PATIENCE_S)
        assert claims.app_id == APP
    else:
        with pytest.raises(AuthError, match="not endorsed"):
            await asyncio.wait_for(call, PATIENCE_S)


async def test_a_token_for_another_audience_is_refused(issuer):
    validator = validator_for(issuer)
    token = issuer.token(aud="someone-else")
    assert await refusal(validator, f"Bearer {token}", issuer.service_url) == (
        "token audience not accepted"
    )


async def test_a_token_for_several_audiences_including_ours_is_refused(issuer):
    token = issuer.token(aud=[APP, "someone-else"])
    reason = await refusal(validator_for(issuer), f"Bearer {token}", issuer.service_url)
    assert reason == "token audience not accepted"


async def test_a_token_from_another_issuer_is_refused(issuer):
    token = issuer.token(iss="https://evil.example.com")
    reason = await refusal(validator_for(issuer), f"Bearer {token}", issuer.service_url)
    assert reason == "token issuer not accepted"


@pytest.mark.parametrize(
    "iss",
    [f"https://sts.windows.net/{TENANT}/", f"https://login.microsoftonline.com/{TENANT}/v2.0"],
)
async def test_the_bots_own_entra_tenant_is_an_accepted_issuer_only_when_configured(issuer, iss):
    token = issuer.token(iss=iss)

    claims = await validate(validator_for(issuer, tenant_id=TENANT), issuer, token)
    reason = await refusal(validator_for(issuer), f"Bearer {token}", issuer.service_url)

    assert claims.issuer == iss
    assert reason == "token issuer not accepted"


async def test_the_issuer_named_by_the_metadata_document_is_accepted():
    async with LocalIssuer(app_id=APP, metadata_issuer="https://issuer.example.com") as issuer:
        token = issuer.token(iss="https://issuer.example.com")
        claims = await validate(validator_for(issuer), issuer, token)
    assert claims.issuer == "https://issuer.example.com"


async def test_a_token_expired_more_than_five_minutes_ago_is_refused(issuer):
    token = issuer.token(exp=int(time.time()) - 6 * 60)
    reason = await refusal(validator_for(issuer), f"Bearer {token}", issuer.service_url)
    assert reason == "token expired"


async def test_a_token_expired_less_than_five_minutes_ago_is_accepted_as_clock_skew(issuer):
    token = issuer.token(exp=int(time.time()) - 4 * 60)
    claims = await validate(validator_for(issuer), issuer, token)
    assert claims.app_id == APP


async def test_a_token_without_an_expiry_is_refused(issuer):
    token = issuer.token(exp=None)
    reason = await refusal(validator_for(issuer), f"Bearer {token}", issuer.service_url)
    assert reason == "token lacks a required claim"


async def test_not_before_is_honoured_with_the_same_five_minutes_of_skew(issuer):
    validator = validator_for(issuer)
    now = int(time.time())

    soon = await validate(validator, issuer, issuer.token(nbf=now + 4 * 60))
    later = issuer.token(nbf=now + 6 * 60)

    assert soon.app_id == APP
    assert await refusal(validator, f"Bearer {later}", issuer.service_url) == (
        "token not yet valid"
    )


async def test_a_token_signed_by_another_key_under_the_same_key_id_is_refused(issuer):
    validator = validator_for(issuer)
    await validate(validator, issuer, issuer.token())  # the real key is now cached
    forged = issuer.token(signed_with=new_key())
    reason = await refusal(validator, f"Bearer {forged}", issuer.service_url)
    assert reason == "token signature invalid"


async def test_an_hs256_token_keyed_with_the_public_key_is_refused(issuer):
    public_pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = hs256_token(public_pem, issuer.claims(), issuer.kid)
    reason = await refusal(validator_for(issuer), f"Bearer {forged}", issuer.service_url)
    assert reason == "token algorithm not accepted"


async def test_an_unsigned_token_is_refused(issuer):
    unsigned = jwt.encode(issuer.claims(), "", algorithm="none", headers={"kid": issuer.kid})
    reason = await refusal(validator_for(issuer), f"Bearer {unsigned}", issuer.service_url)
    assert reason == "token algorithm not accepted"


async def test_a_token_without_a_key_id_is_refused(issuer):
    token = jwt.encode(issuer.claims(), issuer.key, algorithm="RS256")
    reason = await refusal(validator_for(issuer), f"Bearer {token}", issuer.service_url)
    assert reason == "token has no key id"


async def test_a_rotated_key_is_picked_up_by_one_refresh_of_the_metadata_and_keys(issuer):
    validator = validator_for(issuer)
    await validate(validator, issuer, issuer.token())
    old_token = issuer.token()

    issuer.rotate()
    claims = await validate(validator, issuer, issuer.token())

    assert claims.app_id == APP
    assert (issuer.metadata_fetches, issuer.jwks_fetches) == (2, 2)
    # The refreshed key set no longer has the retired key.
    reason = await refusal(validator, f"Bearer {old_token}", issuer.service_url)
    assert reason == "unknown signing key"


async def test_a_key_id_still_unknown_after_the_refresh_is_refused_and_not_fetched_again(issuer):
    validator = validator_for(issuer)
    await validate(validator, issuer, issuer.token())

    first = await refusal(validator, f"Bearer {issuer.token(kid='made-up-1')}", issuer.service_url)
    second = await refusal(validator, f"Bearer {issuer.token(kid='made-up-2')}", issuer.service_url)

    assert first == second == "unknown signing key"
    # One refresh for the first unknown key id; the second falls within the cooldown.
    assert (issuer.metadata_fetches, issuer.jwks_fetches) == (2, 2)


async def test_an_unknown_key_id_right_after_the_first_fetch_causes_no_second_fetch(issuer):
    token = issuer.token(kid="made-up")
    reason = await refusal(validator_for(issuer), f"Bearer {token}", issuer.service_url)
    assert reason == "unknown signing key"
    assert (issuer.metadata_fetches, issuer.jwks_fetches) == (1, 1)


async def test_a_service_url_claim_naming_another_connector_is_refused(issuer):
    token = issuer.token(serviceUrl="https://evil.example.com/")
    reason = await refusal(validator_for(issuer), f"Bearer {token}", issuer.service_url)
    assert reason == "token serviceUrl does not match the activity"


async def test_a_service_url_claim_is_refused_when_the_activity_names_no_service_url(issuer):
    reason = await refusal(validator_for(issuer), issuer.authorization(), None)
    assert reason == "token serviceUrl does not match the activity"


@pytest.mark.parametrize(
    ("claim", "activity"),
    [
        ("https://smba.trafficmanager.net/amer/", "https://smba.trafficmanager.net/amer"),
        ("https://smba.trafficmanager.net/amer", "https://smba.trafficmanager.net/amer/"),
        ("HTTPS://SMBA.trafficmanager.net/amer/", "https://smba.trafficmanager.net/amer/"),
    ],
)
async def test_a_service_url_claim_matches_despite_a_trailing_slash_or_host_case(
    issuer, claim, activity
):
    token = issuer.token(serviceurl=claim)
    claims = await validate(validator_for(issuer), issuer, token, service_url=activity)
    assert claims.service_url == claim


async def test_a_service_url_path_differing_in_case_is_another_connector(issuer):
    token = issuer.token(serviceurl="https://smba.trafficmanager.net/AMER/")
    reason = await refusal(
        validator_for(issuer), f"Bearer {token}", "https://smba.trafficmanager.net/amer/"
    )
    assert reason == "token serviceUrl does not match the activity"


async def test_a_token_without_a_service_url_claim_is_accepted_as_entra_tokens_are(issuer):
    token = issuer.token(serviceurl=None)
    claims = await validate(validator_for(issuer), issuer, token)
    assert claims.service_url is None


async def test_an_unavailable_metadata_server_refuses_the_request_with_an_auth_error(issuer):
    issuer.down = True
    reason = await refusal(validator_for(issuer), issuer.authorization(), issuer.service_url)
    assert reason == "signing keys unavailable"


async def test_an_unreachable_metadata_server_refuses_the_request_with_an_auth_error():
    async with LocalIssuer(app_id=APP) as issuer:
        validator = validator_for(issuer)
        authorization = issuer.authorization()
    # The server is closed: the connection is refused.
    reason = await refusal(validator, authorization, issuer.service_url)
    assert reason == "signing keys unavailable"


async def test_a_failed_fetch_is_not_remembered_once_the_server_is_back(issuer):
    validator = validator_for(issuer)
    issuer.down = True
    await refusal(validator, issuer.authorization(), issuer.service_url)

    issuer.down = False
    claims = await validate(validator, issuer, issuer.token())

    assert claims.app_id == APP


async def test_a_failed_refresh_keeps_the_keys_already_held_in_use(issuer):
    validator = validator_for(issuer)
    old_token = issuer.token()
    await validate(validator, issuer, old_token)

    issuer.rotate()
    issuer.down = True
    reason = await refusal(validator, issuer.authorization(), issuer.service_url)
    claims = await validate(validator, issuer, old_token)

    assert reason == "signing keys unavailable"
    assert claims.app_id == APP


async def test_concurrent_requests_share_one_fetch_of_the_metadata_and_keys(issuer):
    validator = validator_for(issuer)
    issuer.hold_metadata = asyncio.Event()
    pending = [asyncio.create_task(validate(validator, issuer, issuer.token())) for _ in range(5)]
    await asyncio.wait_for(issuer.metadata_requested.wait(), PATIENCE_S)

    issuer.hold_metadata.set()
    results = await asyncio.gather(*pending)

    assert [claims.app_id for claims in results] == [APP] * 5
    assert (issuer.metadata_fetches, issuer.jwks_fetches) == (1, 1)


async def test_requests_waiting_on_a_failing_fetch_fail_with_it_without_fetching_again(issuer):
    validator = validator_for(issuer)
    issuer.down = True
    issuer.hold_metadata = asyncio.Event()
    pending = [
        asyncio.create_task(refusal(validator, issuer.authorization(), issuer.service_url))
        for _ in range(3)
    ]
    await asyncio.wait_for(issuer.metadata_requested.wait(), PATIENCE_S)

    issuer.hold_metadata.set()
    reasons = await asyncio.gather(*pending)

    assert reasons == ["signing keys unavailable"] * 3
    assert issuer.metadata_fetches == 1


async def test_fetching_the_keys_never_blocks_the_event_loop(issuer):
    # The metadata answer waits for an event that only this coroutine sets, on the same
    # loop: were the fetch run on the loop, neither could proceed.
    validator = validator_for(issuer)
    issuer.hold_metadata = asyncio.Event()
    pending = asyncio.create_task(validate(validator, issuer, issuer.token()))

    await asyncio.wait_for(issuer.metadata_requested.wait(), PATIENCE_S)
    assert not pending.done()
    issuer.hold_metadata.set()
    claims = await asyncio.wait_for(pending, PATIENCE_S)

    assert claims.app_id == APP


@pytest.mark.parametrize(
    "url",
    ["http://login.botframework.com/v1/.well-known/openidconfiguration", "file:///etc/keys"],
)
def test_a_metadata_url_that_is_neither_https_nor_loopback_is_a_configuration_error(url):
    with pytest.raises(ValueError, match="https"):
        TokenValidator(app_id=APP, tenant_id=None, metadata_url=url)
