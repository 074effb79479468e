"""A local Bot Framework token issuer for tests: an RSA key, its OpenID metadata and JWKS
served on 127.0.0.1, and tokens signed with it.

    async with LocalIssuer(app_id="app-1") as issuer:
        validator = TokenValidator(app_id="app-1", tenant_id=None,
                                   metadata_url=issuer.metadata_url)
        await validator.validate(f"Bearer {issuer.token()}", service_url=issuer.service_url)

The switches (`rotate`, `down`, `hold_metadata`) and counters (`metadata_fetches`,
`jwks_fetches`) let tests play key rotation, an outage and a slow key server.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from types import TracebackType
from typing import Any

import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import RSAAlgorithm

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
DEFAULT_SERVICE_URL = "http://127.0.0.1:3978/"
METADATA_PATH = "/v1/.well-known/openidconfiguration"
JWKS_PATH = "/v1/.well-known/keys"


def new_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def _first_key() -> RSAPrivateKey:
    """Every issuer starts with this key (under its own `kid`): generating a 2048-bit key
    takes about 0.1 s, once per session instead of once per test."""
    return new_key()


class LocalIssuer:
    """Serves the metadata and keys of one current signing key (`rotate` replaces it)."""

    def __init__(
        self,
        *,
        app_id: str,
        service_url: str = DEFAULT_SERVICE_URL,
        metadata_issuer: str | None = BOT_FRAMEWORK_ISSUER,
    ) -> None:
        self.app_id = app_id
        self.service_url = service_url
        self.metadata_issuer = metadata_issuer
        self.key = _first_key()
        self.kid = uuid.uuid4().hex
        self.down = False
        """True: both endpoints answer 503."""
        self.endorsements: list[str] | None = None
        """Set: the served key lists these channels as its endorsements (as Bot Framework's do)."""
        self.hold_metadata: asyncio.Event | None = None
        """Set: the metadata answer waits for this event."""
        self.metadata_requested = asyncio.Event()
        self.metadata_fetches = 0
        self.jwks_fetches = 0
        self._server: TestServer | None = None

    async def __aenter__(self) -> LocalIssuer:
        app = web.Application()
        app.router.add_get(METADATA_PATH, self._metadata)
        app.router.add_get(JWKS_PATH, self._jwks)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            await self._server.close()

    @property
    def metadata_url(self) -> str:
        return self._url(METADATA_PATH)

    @property
    def jwks_url(self) -> str:
        return self._url(JWKS_PATH)

    def rotate(self) -> None:
        """A new key under a new `kid`; the old one is no longer served."""
        self.key = new_key()
        self.kid = uuid.uuid4().hex

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Default claims, with `overrides` applied; an override of None removes the claim.
        `serviceUrl`/`serviceurl` in any casing replaces the default `serviceurl`."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": BOT_FRAMEWORK_ISSUER,
            "aud": self.app_id,
            "exp": now + 3600,
            "nbf": now - 10,
            "serviceurl": self.service_url,
        }
        for name, value in overrides.items():
            if name.lower() == "serviceurl":
                claims.pop("serviceurl", None)
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def token(
        self,
        *,
        signed_with: RSAPrivateKey | None = None,
        kid: str | None = None,
        **claim_overrides: Any,
    ) -> str:
        """An RS256 token from this issuer (or signed with another key, or naming another
        `kid`, for forgeries)."""
        return jwt.encode(
            self.claims(**claim_overrides),
            signed_with or self.key,
            algorithm="RS256",
            headers={"kid": kid or self.kid},
        )

    def authorization(self, **claim_overrides: Any) -> str:
        return f"Bearer {self.token(**claim_overrides)}"

    def _url(self, path: str) -> str:
        if self._server is None:
            raise RuntimeError("use LocalIssuer as `async with LocalIssuer(...) as issuer`")
        return str(self._server.make_url(path))

    async def _metadata(self, request: web.Request) -> web.Response:
        self.metadata_fetches += 1
        self.metadata_requested.set()
        if self.hold_metadata is not None:
            await self.hold_metadata.wait()
        if self.down:
            return web.Response(status=503)
        document: dict[str, Any] = {
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        if self.metadata_issuer is not None:
            document["issuer"] = self.metadata_issuer
        return web.json_response(document)

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        if self.down:
            return web.Response(status=503)
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        if self.endorsements is not None:
            jwk["endorsements"] = list(self.endorsements)
        return web.json_response({"keys": [jwk]})
