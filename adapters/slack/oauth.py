"""Slack's OAuth install flow ("Add to Slack"): `GET /slack/install` and
`GET /slack/oauth_redirect`, as bolt serves them (its `AsyncOAuthSettings` defaults: those
paths, the `slack-app-oauth-state` cookie, states valid for 600 s), on salesbot's own store.

Why not bolt's `AsyncOAuthFlow`: HTTP requests here do not go through bolt (`app.py` says
why), and the flow is a few steps whose answers we want to choose ourselves — every bad
request a clear 4xx page, never a 500 — with slack_sdk's pieces doing the Slack parts:

1. `/slack/install` issues a state (`oauth_store.StoreOAuthStates`: single-use, expiring),
   sets it in a cookie bound to this browser (HttpOnly, SameSite=Lax, Secure behind https)
   and answers a page with the "Add to Slack" link to Slack's authorize URL (the bot scopes
   of the app manifest, `manifest.BOT_SCOPES`; no user scopes; the redirect URL under
   `SALESBOT_PUBLIC_URL`).
2. Slack sends the installer back to `/slack/oauth_redirect?code=…&state=…` (or `error=…`
   when they cancelled). The state must be the cookie's and be consumed here for the first
   time before it expires; then the code is exchanged with `oauth.v2.access` (the client id
   and secret, by slack_sdk's `AsyncWebClient`), `auth.test` with the new token gives the
   bot id (oauth.v2.access does not), and the installation is saved
   (`oauth_store.StoreInstallations`). `on_installed` then tells the rest of the Slack
   surface (a workspace that was paused by an uninstall is installed again).

Answers: 200 page on success; 400 page for a missing or foreign state, a state used or
expired, a cancelled install or a code Slack refuses; 502 page when Slack cannot be reached
or refuses the app's own credentials (the operator's to fix, said in the log). Nothing
logged carries a code, a state or a token.
"""

from __future__ import annotations

import hmac
import html
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.manifest import REDIRECT_PATH

log = logging.getLogger(__name__)

__all__ = ["INSTALL_PATH", "REDIRECT_PATH", "STATE_COOKIE", "SlackOAuth"]

INSTALL_PATH = "/slack/install"
AUTHORIZE_URL = "https://slack.com/oauth/v2/authorize"
STATE_COOKIE = "slack-app-oauth-state"
"""bolt's default cookie name: a deployment moving from bolt's flow keeps its links."""
STATE_COOKIE_MAX_AGE_S = 600
MAX_PARAM_CHARS = 500
CODE_ERRORS = frozenset({"invalid_code", "code_already_used", "code_expired", "invalid_grant_type"})
"""oauth.v2.access answers that are about the code the browser brought (start again), not
about the app's configuration."""

OnInstalled = Callable[[Installation], Awaitable[None]]


class SlackOAuth:
    """The two routes' handlers (module docstring). `client` is a Web API client without a
    token (the exchange authenticates with the client id and secret), pointed at
    `SLACK_API_URL`."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scopes: Sequence[str],
        installations: AsyncInstallationStore,
        states: AsyncOAuthStateStore,
        client: AsyncWebClient,
        clock: Callable[[], int],
        on_installed: OnInstalled | None = None,
        authorize_url: str = AUTHORIZE_URL,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uri = redirect_uri
        self._scopes = tuple(scopes)
        self._installations = installations
        self._states = states
        self._client = client
        self._clock = clock
        self._on_installed = on_installed
        self._authorize_url = authorize_url
        self._secure_cookie = redirect_uri.startswith("https://")

    def mount(self, app: web.Application) -> None:
        app.router.add_get(INSTALL_PATH, self.install)
        app.router.add_get(REDIRECT_PATH, self.redirect)

    def authorize_url(self, state: str) -> str:
        query = urlencode(
            {
                "client_id": self._client_id,
                "scope": ",".join(self._scopes),
                "user_scope": "",
                "redirect_uri": self._redirect_uri,
                "state": state,
            }
        )
        return f"{self._authorize_url}?{query}"

    async def install(self, request: web.Request) -> web.Response:
        state = await self._states.async_issue()
        url = self.authorize_url(state)
        response = _page(
            200,
            "Add salesbot to Slack",
            "<p>salesbot qualifies leads, quotes with the arithmetic shown, and hands off to "
            "a person when it should. Installing it adds its bot to a workspace you manage.</p>"
            f'<p><a class="button" href="{html.escape(url)}">Add to Slack</a></p>'
            "<p class=small>The link is valid for ten minutes, in this browser.</p>",
        )
        response.set_cookie(
            STATE_COOKIE,
            state,
            max_age=STATE_COOKIE_MAX_AGE_S,
            path="/slack",
            httponly=True,
            secure=self._secure_cookie,
            samesite="Lax",
        )
        return response

    async def redirect(self, request: web.Request) -> web.Response:
        query = request.query
        error = query.get("error")
        if error is not None:
            # The installer cancelled (access_denied) or Slack refused before asking them.
            return self._failure(
                400,
                "The installation was not completed",
                f"Slack answered: {_short(error)}. Nothing was installed.",
            )
        code, state = query.get("code"), query.get("state")
        if not code or not state or len(code) > MAX_PARAM_CHARS or len(state) > MAX_PARAM_CHARS:
            return self._failure(
                400,
                "This is not a link from Slack",
                "The address lacks Slack's authorization code or state.",
            )
        cookie = request.cookies.get(STATE_COOKIE, "")
        if not hmac.compare_digest(cookie.encode(), state.encode()):
            return self._failure(
                400,
                "This installation was started elsewhere",
                "The link does not belong to this browser's installation (or cookies are "
                "blocked for this site). Start again from the install page.",
            )
        if not await self._states.async_consume(state):
            return self._failure(
                400,
                "This install link has expired or was already used",
                "Each link works once, for ten minutes. Start again from the install page.",
            )
        answer = await self._exchange(code)
        if isinstance(answer, web.Response):
            return answer
        installation = answer
        await self._installations.async_save(installation)
        log.info(
            "slack installed in workspace %s%s by %s",
            installation.team_id or "-",
            f" (enterprise {installation.enterprise_id})" if installation.enterprise_id else "",
            installation.user_id or "?",
        )
        if self._on_installed is not None:
            await self._on_installed(installation)
        name = installation.team_name or installation.enterprise_name or "your workspace"
        response = _page(
            200,
            "salesbot is installed",
            f"<p>salesbot was added to <b>{html.escape(name)}</b>. Invite it to the channels "
            "it should serve.</p>",
        )
        response.del_cookie(STATE_COOKIE, path="/slack")
        return response

    async def _exchange(self, code: str) -> Installation | web.Response:
        """The code for an installation: oauth.v2.access, then auth.test with the token."""
        try:
            oauth: Any = await self._client.oauth_v2_access(
                client_id=self._client_id,
                client_secret=self._client_secret,
                code=code,
                redirect_uri=self._redirect_uri,
            )
        except SlackApiError as exc:
            slack_error = _error_of(exc)
            if slack_error in CODE_ERRORS:
                return self._failure(
                    400,
                    "Slack did not accept this installation",
                    f"Slack answered {html.escape(slack_error)}. Start again from the install "
                    "page.",
                )
            log.error(
                "slack oauth.v2.access refused the app (%s): check SLACK_CLIENT_ID, "
                "SLACK_CLIENT_SECRET and the app's redirect URL %s",
                slack_error or f"HTTP {exc.response.status_code}",
                self._redirect_uri,
            )
            return self._unavailable()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("slack oauth.v2.access failed (%s)", type(exc).__name__)
            return self._unavailable()
        token = oauth.get("access_token")
        team = oauth.get("team") or {}
        enterprise = oauth.get("enterprise") or {}
        installer = oauth.get("authed_user") or {}
        is_enterprise = bool(oauth.get("is_enterprise_install"))
        if not isinstance(token, str) or not token.startswith("xoxb-"):
            log.error("slack oauth.v2.access gave no bot token: is the app's bot scope set?")
            return self._unavailable()
        try:
            identity: Any = await self._client.auth_test(token=token)
        except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("slack auth.test after installing failed (%s)", type(exc).__name__)
            return self._unavailable()
        return Installation(
            app_id=oauth.get("app_id"),
            enterprise_id=enterprise.get("id"),
            enterprise_name=enterprise.get("name"),
            enterprise_url=identity.get("url") if is_enterprise else None,
            team_id=team.get("id"),
            team_name=team.get("name"),
            bot_token=token,
            bot_id=identity.get("bot_id"),
            bot_user_id=oauth.get("bot_user_id"),
            bot_scopes=str(oauth.get("scope") or ""),
            bot_refresh_token=oauth.get("refresh_token"),
            bot_token_expires_in=oauth.get("expires_in"),
            user_id=str(installer.get("id") or ""),
            user_token=installer.get("access_token"),
            user_scopes=str(installer.get("scope") or ""),
            is_enterprise_install=is_enterprise,
            token_type=oauth.get("token_type"),
            installed_at=self._clock() / 1000,
        )

    def _unavailable(self) -> web.Response:
        return self._failure(
            502,
            "Slack could not complete the installation",
            "Slack could not be reached or did not accept the app's credentials. Nothing was "
            "installed; try again in a few minutes, or tell the app's operator.",
        )

    def _failure(self, status: int, title: str, text: str) -> web.Response:
        response = _page(
            status,
            title,
            f"<p>{html.escape(text)}</p>"
            f'<p><a href="{html.escape(INSTALL_PATH)}">Start the installation again</a></p>',
        )
        response.del_cookie(STATE_COOKIE, path="/slack")
        return response


def _error_of(exc: SlackApiError) -> str:
    data = getattr(exc.response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, str) else ""


def _short(value: str) -> str:
    """An `error` parameter as shown back: what Slack sends is a short code."""
    return value[:60] if value.replace("_", "").isalnum() else "an error"


def _page(status: int, title: str, body: str) -> web.Response:
    """A small self-contained page: no script, no outside resource, never cached."""
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;"
        "color:#1d1c1d}h1{font-size:1.4rem}.small{color:#616061;font-size:.9rem}"
        ".button{display:inline-block;background:#1f3a5f;color:#fff;padding:.6rem 1.1rem;"
        "border-radius:6px;text-decoration:none;font-weight:600}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(
        status=status,
        text=document,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        },
    )
