"""Who may use the playground: local only, or whoever holds its token.

The playground's identities are trusted (the rep and the manager are approvers and
auditors) and nobody logs in, so it must not be reachable by anyone else:

- **Local only** (no `SALESBOT_PLAYGROUND_TOKEN`): served only on a loopback bind and
  never beside a real platform, and every request's `Host` must be a loopback name or
  address. A DNS-rebinding page reaches 127.0.0.1 under its own name, so its requests say
  `Host: attacker.example` and are refused.
- **Token required**: any host, but every request (page, static files, history, WebSocket,
  posts) presents the token, as `Authorization: Bearer …` or as the cookie a browser gets
  by opening `/?token=…` once (HttpOnly, SameSite=Strict; the token then leaves the URL).

In both modes an `Origin`, when present, must be this same host: another site open in the
same browser must not speak as the rep.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from adapters.loopback import is_loopback_host

COOKIE = "salesbot_playground"
MIN_TOKEN_CHARS = 16
"""Shorter tokens are refused at start: this one guards an approver's rights."""
_COOKIE_CONTEXT = b"salesbot playground session v1"


class PlaygroundRefusedError(ValueError):
    """A configuration in which the playground must not start; the message says why."""


class AccessDeniedError(Exception):
    """A request that may not use the playground: its status and one-line reason."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _as_bytes(value: str) -> bytes:
    return value.encode("utf-8", "replace")


@dataclass(frozen=True)
class PlaygroundAccess:
    """The playground's mode, decided once at start (`decide`) and checked per request."""

    token: str | None = field(default=None, repr=False)  # a secret: never in a log line
    reasons: tuple[str, ...] = ()
    """Why a token is required (off loopback, beside Slack…); empty when it was simply set."""

    @classmethod
    def decide(cls, *, host: str, token: str | None, platforms: Sequence[str]) -> PlaygroundAccess:
        """Local only, or token required; refused (`PlaygroundRefusedError`) when the
        playground would be reachable by others and no token is set."""
        reasons: list[str] = []
        if not is_loopback_host(host):
            reasons.append("off loopback")
        if platforms:
            reasons.append(f"beside {' and '.join(platforms)}")
        if token is None:
            if reasons:
                where = f"on {host!r}" if not is_loopback_host(host) else ""
                where += (" and " if where and platforms else "") + (
                    f"beside {' and '.join(platforms)}" if platforms else ""
                )
                raise PlaygroundRefusedError(
                    f"the playground would be served {where}, where anyone who "
                    "reaches it acts as an approver and auditor: set SALESBOT_PLAYGROUND_TOKEN "
                    "(every playground request must then present it), or do not serve the "
                    "playground (unset SALESBOT_PLAYGROUND; bind to 127.0.0.1)"
                )
            return cls()
        if len(token) < MIN_TOKEN_CHARS:
            raise PlaygroundRefusedError(
                f"SALESBOT_PLAYGROUND_TOKEN must be at least {MIN_TOKEN_CHARS} characters"
            )
        return cls(token=token, reasons=tuple(reasons))

    @property
    def token_required(self) -> bool:
        return self.token is not None

    def startup_line(self, url: str) -> str:
        """The one line `serve` prints, so an operator sees which mode is on (never the token)."""
        if self.token is None:
            return f"playground: local only at {url}"
        why = f" ({', '.join(self.reasons)})" if self.reasons else ""
        return f"playground: token required{why} at {url} — open {url}?token=… once in the browser"

    def cookie_value(self) -> str:
        """What the browser keeps: derived from the token, so the cookie is not the token."""
        if self.token is None:
            raise ValueError("no token is set")
        return hmac.new(_as_bytes(self.token), _COOKIE_CONTEXT, hashlib.sha256).hexdigest()

    def token_matches(self, candidate: str) -> bool:
        return self.token is not None and hmac.compare_digest(
            _as_bytes(candidate), _as_bytes(self.token)
        )

    def check(self, request: web.Request, *, with_token: bool = True) -> None:
        """Raise `AccessDeniedError` unless `request` may use the playground (`with_token`
        False: everything but the token, for the request that brings it)."""
        host = request.headers.get("Host", "")
        if self.token is None and not _loopback_host_header(host):
            raise AccessDeniedError(
                "This playground answers only on 127.0.0.1, localhost or [::1].", 403
            )
        origin = request.headers.get("Origin")
        if origin is not None and not _same_origin(origin, host):
            raise AccessDeniedError("Cross-origin requests are not accepted.", 403)
        if with_token and self.token is not None and not self._presents_token(request):
            raise AccessDeniedError(
                "This playground needs its token: open /?token=… once in the browser, "
                "or send Authorization: Bearer ….",
                401,
            )

    def _presents_token(self, request: web.Request) -> bool:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(credentials.strip()):
            return True
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and hmac.compare_digest(
            _as_bytes(cookie), _as_bytes(self.cookie_value())
        )


def _loopback_host_header(host: str) -> bool:
    """A `Host` header naming a loopback host, with any port (or none)."""
    try:
        parts = urlsplit(f"//{host}")
        parts.port  # noqa: B018  # raises ValueError on a port that is not a number
    except ValueError:
        return False
    return (
        "@" not in host
        and parts.netloc == host
        and parts.hostname is not None
        and is_loopback_host(parts.hostname)
    )


def _same_origin(origin: str, host: str) -> bool:
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == host.lower()
