"""Who may POST to `/api/messages`: the Bot Connector's bearer token, checked.

Bot Framework signs every activity it delivers with an RS256 JWT ("Authenticate requests
from the Bot Connector service"). The check here follows that page: the signing key comes
from the OpenID metadata document's `jwks_uri`; the audience is the bot's app id; the
issuer is Bot Framework's, or Entra's for the home tenant (`TEAMS_APP_TENANT_ID`) or for a
tenant with an installation (`tenants.py`: looked up only when a token names an Entra
issuer; any other tenant's is refused); `exp`/`nbf` hold within five
minutes of clock skew; and a `serviceurl` claim, when present, names the same connector the
activity asks us to answer — otherwise a token issued for one connector could steer the
bot's own credentials to another.

Why not the Agents SDK's `JwtTokenValidator`: it hardcodes the key URLs
(login.botframework.com / login.microsoftonline.com), so it cannot be pointed at a local key
source in tests or in an isolated deployment, and it leaves the `serviceurl` claim to the
caller. The metadata URL here is a setting (`TEAMS_OPENID_METADATA_URL`).

Every fetch is a blocking urllib call (PyJWT's `PyJWKClient` is synchronous), so it runs in
a thread; one asyncio lock makes concurrent requests share one fetch instead of stampeding
the key endpoint. Refusals raise `AuthError` with a short reason that is safe to put in a
401 body and in logs: it never contains the token.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
from jwt import PyJWK, PyJWKClient

from adapters.loopback import is_loopback_url

log = logging.getLogger(__name__)

DEFAULT_OPENID_METADATA_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
ALGORITHM = "RS256"
"""The only algorithm Bot Framework signs with. Fixed here, never read from the token:
accepting the token's own `alg` is how `none` and HS256-with-the-public-key forgeries work."""

METADATA_TTL_S = 24 * 3600
"""Microsoft publishes keys well before signing with them, so a day-old key set is current;
a token with a newer `kid` triggers an early refresh anyway."""
FORCED_REFRESH_COOLDOWN_S = 60.0
"""At most one early refresh per minute: tokens with made-up `kid`s must not turn into a
stream of requests to Microsoft's key endpoint."""
STALE_RETRY_S = 300.0
"""When the daily refresh fails, the keys already held stay in use; retry this much later
rather than on every request (each attempt can wait the full HTTP timeout)."""
MAX_DOCUMENT_BYTES = 1_000_000

UNAVAILABLE = "signing keys unavailable"


class AuthError(Exception):
    """The request is refused (401). `reason` is short and safe to show or log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified token: who it was issued to and by, and for which connector."""

    app_id: str
    issuer: str
    service_url: str | None
    raw: dict[str, Any]


@dataclass(slots=True)
class _KeySource:
    """One fetch of the metadata document and of the key set its `jwks_uri` names."""

    issuer: str | None
    keys: dict[str, PyJWK]  # by kid: looked up without a lock or a thread
    endorsements: dict[str, frozenset[str]]  # by kid: the channels a key may sign for
    expires_at: float  # time.monotonic()


class TokenValidator:
    """Validates the `Authorization` header of one inbound activity request."""

    def __init__(
        self,
        *,
        app_id: str,
        tenant_id: str | None,
        metadata_url: str,
        leeway_s: int = 300,
        http_timeout_s: float = 10.0,
        installed: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        """`tenant_id` is the home tenant; `installed(tenant)` says whether another tenant
        has an installation (`tenants.py`): tokens that Entra issued for it are accepted
        too. Any other tenant's tokens are refused."""
        if not app_id:
            raise ValueError("app_id is required to validate Teams tokens")
        _require_trusted_url(metadata_url, what="OpenID metadata URL")
        self._app_id = app_id
        self._tenant_id = tenant_id
        self._installed = installed
        self._metadata_url = metadata_url
        self._leeway_s = leeway_s
        self._http_timeout_s = http_timeout_s
        self._lock = asyncio.Lock()
        self._source: _KeySource | None = None
        self._last_forced_refresh: float | None = None
        self._failed_fetches = 0

    async def validate(
        self, authorization: str | None, *, service_url: str | None, channel_id: str | None = None
    ) -> Claims:
        """The verified claims of the request's bearer token, or `AuthError`.

        `service_url` is the activity's `serviceUrl`, which the reply will be sent to;
        `channel_id` its `channelId` ("msteams"), which a key listing endorsements must name.
        """
        token = _bearer_token(authorization)
        kid = _key_id(token)
        key, source = await self._signing_key(kid)
        endorsed = source.endorsements.get(kid, frozenset())
        if channel_id is not None and endorsed and channel_id not in endorsed:
            # Bot Framework publishes which channels each key signs for: a key endorsed for
            # another channel must not vouch for a Teams activity.
            raise AuthError("signing key not endorsed for this channel")
        issuers = await self._accepted_issuers(source, token)
        try:
            payload = jwt.decode(
                token,
                key=key.key,
                algorithms=[ALGORITHM],
                audience=self._app_id,
                issuer=issuers,
                leeway=self._leeway_s,
                options={"require": ["exp", "iss", "aud"], "strict_aud": True},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(_reason(exc)) from None
        claim = _service_url_claim(payload)
        # A token without the claim is accepted: tokens that Azure Bot Service obtains from
        # Entra ID (single-tenant bots, `sts.windows.net` / `login.microsoftonline.com`
        # issuers) carry no `serviceurl`. Signature, audience and issuer still bind them to
        # this bot; the connector's own allow-list (`check_service_url`) guards where
        # replies go.
        if claim is not None and (
            service_url is None or _normalized_url(claim) != _normalized_url(service_url)
        ):
            raise AuthError("token serviceUrl does not match the activity")
        return Claims(
            app_id=self._app_id, issuer=str(payload["iss"]), service_url=claim, raw=payload
        )

    async def _accepted_issuers(self, source: _KeySource, token: str) -> list[str]:
        """Bot Framework's issuer, the metadata's, and Entra's issuers of the home tenant
        and, when the token names another tenant's, of that tenant if it is installed."""
        issuers = [BOT_FRAMEWORK_ISSUER]
        if source.issuer:
            issuers.append(source.issuer)
        tenants = [self._tenant_id] if self._tenant_id else []
        other = _entra_tenant(token)
        if (
            other is not None
            and other.lower() != (self._tenant_id or "").lower()
            and self._installed is not None
            and await self._installed(other)
        ):
            tenants.append(other)
        for tenant in tenants:
            issuers += [
                f"https://sts.windows.net/{tenant}/",
                f"https://login.microsoftonline.com/{tenant}/v2.0",
            ]
        return issuers

    async def _signing_key(self, kid: str) -> tuple[PyJWK, _KeySource]:
        """The key named `kid`, fetching the metadata and keys when they are missing, old,
        or (once per cooldown) when the key is unknown — Microsoft has rotated keys."""
        source = self._source
        if source is not None and time.monotonic() < source.expires_at:
            key = source.keys.get(kid)
            if key is not None:
                return key, source  # the common case: a known key, no lock, no thread
        failures_before = self._failed_fetches
        async with self._lock:
            if self._failed_fetches != failures_before and self._source is None:
                # The first fetch failed while this request waited: fail with it rather
                # than queue another full-timeout attempt behind it.
                raise AuthError(UNAVAILABLE)
            now = time.monotonic()
            fresh = False
            if self._source is None or now >= self._source.expires_at:
                fresh = await self._refresh_source()
            source = self._require_source()
            key = source.keys.get(kid)
            if key is not None:
                return key, source
            recently = (
                self._last_forced_refresh is not None
                and now - self._last_forced_refresh < FORCED_REFRESH_COOLDOWN_S
            )
            if fresh or recently:
                raise AuthError("unknown signing key")
            self._last_forced_refresh = now
            if not await self._refresh_source():
                raise AuthError(UNAVAILABLE)
            source = self._require_source()
            key = source.keys.get(kid)
            if key is None:
                raise AuthError("unknown signing key")
            return key, source

    def _require_source(self) -> _KeySource:
        if self._source is None:
            raise AuthError(UNAVAILABLE)
        return self._source

    async def _refresh_source(self) -> bool:
        """Fetches the metadata and the keys into a new key client (dropping keys cached by
        the old one, so retired keys stop verifying). On failure, keeps the keys already
        held and returns False."""
        try:
            source = await asyncio.to_thread(self._load_source)
        except (OSError, ValueError, http.client.HTTPException, jwt.PyJWTError) as exc:
            self._failed_fetches += 1
            log.warning(
                "Teams OpenID metadata fetch from %s failed: %s: %s",
                self._metadata_url,
                type(exc).__name__,
                exc,
            )
            if self._source is not None:
                self._source.expires_at = time.monotonic() + STALE_RETRY_S
            return False
        self._source = source
        return True

    def _load_source(self) -> _KeySource:
        """Blocking: runs in a thread. Both documents are fetched before anything is
        replaced, so a failure half-way leaves the previous keys in use."""
        metadata = _fetch_json(self._metadata_url, self._http_timeout_s)
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("the metadata document has no jwks_uri")
        _require_trusted_url(
            jwks_uri,
            what="jwks_uri",
            loopback_http=is_loopback_url(self._metadata_url, scheme="http"),
        )
        algorithms = metadata.get("id_token_signing_alg_values_supported")
        if isinstance(algorithms, list) and ALGORITHM not in algorithms:
            raise ValueError(f"the metadata does not offer {ALGORITHM}")
        issuer = metadata.get("issuer")
        client = PyJWKClient(
            jwks_uri,
            cache_keys=True,
            lifespan=METADATA_TTL_S,
            timeout=self._http_timeout_s,
            # Early refreshes are decided above, once, with their own cooldown; the
            # client's own unknown-kid refresh would add a second, unthrottled path.
            cooldown_duration=METADATA_TTL_S,
        )
        raw = client.fetch_data()  # the key set as JSON: PyJWK keeps no endorsements
        keys = client.get_signing_keys()  # from the fetch above; raises if it has none
        return _KeySource(
            issuer=issuer if isinstance(issuer, str) and issuer else None,
            keys={key.key_id: key for key in keys if key.key_id},
            endorsements=_endorsements(raw),
            expires_at=time.monotonic() + METADATA_TTL_S,
        )


def _endorsements(key_set: Any) -> dict[str, frozenset[str]]:
    """`kid` → the channels in the key's `endorsements` (Bot Framework's JWKS lists them)."""
    found: dict[str, frozenset[str]] = {}
    entries = key_set.get("keys") if isinstance(key_set, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        channels = entry.get("endorsements")
        if isinstance(channels, list):
            found[entry["kid"]] = frozenset(c for c in channels if isinstance(c, str))
    return found


_SPACE = re.compile(r"\s")
_COMPACT_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
"""A JWS in compact serialization: three base64url parts (RFC 7515, section 7.1). Checked
before PyJWT sees the token: a header with bytes that are not UTF-8 reaches us as lone
surrogates, which PyJWT cannot encode."""


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("missing bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or _SPACE.search(token):
        raise AuthError("authorization header is not a bearer token")
    if not _COMPACT_JWT.fullmatch(token):
        raise AuthError("malformed token")
    return token


def _key_id(token: str) -> str:
    """The `kid` of a token whose header names the one accepted algorithm; checked before
    any key is fetched, so junk tokens cost no request."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("malformed token") from None
    if header.get("alg") != ALGORITHM:
        raise AuthError("token algorithm not accepted")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AuthError("token has no key id")
    return kid


_ENTRA_ISSUER = re.compile(
    r"https://(?:sts\.windows\.net/([0-9A-Za-z.-]{1,128})/"
    r"|login\.microsoftonline\.com/([0-9A-Za-z.-]{1,128})/v2\.0)"
)


def _entra_tenant(token: str) -> str | None:
    """The tenant an Entra issuer in the token names, read *unverified*: only to decide
    which issuers to accept; `jwt.decode` then verifies the token against them."""
    try:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return None
    found = _ENTRA_ISSUER.fullmatch(issuer) if isinstance(issuer, str) else None
    return (found.group(1) or found.group(2)) if found else None


def _reason(exc: jwt.PyJWTError) -> str:
    reasons: list[tuple[type[jwt.PyJWTError], str]] = [
        (jwt.InvalidSignatureError, "token signature invalid"),
        (jwt.ExpiredSignatureError, "token expired"),
        (jwt.ImmatureSignatureError, "token not yet valid"),
        (jwt.InvalidAudienceError, "token audience not accepted"),
        (jwt.InvalidIssuerError, "token issuer not accepted"),
        (jwt.InvalidAlgorithmError, "token algorithm not accepted"),
        (jwt.MissingRequiredClaimError, "token lacks a required claim"),
        (jwt.DecodeError, "malformed token"),
    ]
    for kind, reason in reasons:
        if isinstance(exc, kind):
            return reason
    return "token invalid"


def _service_url_claim(payload: dict[str, Any]) -> str | None:
    """Bot Framework names the claim `serviceurl`; any casing is read, and every copy must
    be a string (a token cannot smuggle a second, different value past the check)."""
    values = [v for k, v in payload.items() if k.lower() == "serviceurl"]
    if not values:
        return None
    if any(not isinstance(v, str) for v in values) or len(set(values)) > 1:
        raise AuthError("token serviceUrl does not match the activity")
    value: str = values[0]
    return value


def _normalized_url(url: str) -> str:
    """Equal for the same connector: one trailing `/` dropped; scheme and host compared
    without case (they are case-insensitive); the path kept as is."""
    if url.endswith("/"):
        url = url[:-1]
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()))


def _require_trusted_url(url: str, *, what: str, loopback_http: bool = True) -> None:
    """Keys are trusted because of where they come from: https, or plain http to this
    machine (tests, a local issuer). Anything else could be answered by whoever sits on the
    network path."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "https" or (loopback_http and is_loopback_url(url, scheme="http")):
        return
    raise ValueError(f"the {what} must be https (or http on loopback): {url!r}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The metadata is read from the configured address only, as PyJWKClient reads keys."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def _fetch_json(url: str, timeout_s: float) -> dict[str, Any]:
    """Blocking: call it in a thread."""
    opener = urllib.request.build_opener(_NoRedirect())
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with opener.open(request, timeout=timeout_s) as response:
            body = response.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError("the metadata document is too large")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("the metadata document is not a JSON object")
    return document
