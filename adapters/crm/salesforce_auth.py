"""Getting a Salesforce access token ourselves, then handing it to `simple-salesforce`.

`simple-salesforce` logs in only against `https://<domain>.salesforce.com` (its SOAP login
and its OAuth helpers build that host themselves), which neither a My Domain URL with a port
nor a test server on 127.0.0.1 is. So the token request is made here, against
`SALESFORCE_LOGIN_URL`, with one of Salesforce's documented OAuth 2.0 flows, and the client
is then built from the answer's `instance_url` and `access_token` ("Direct Session and
Instance Access" in its docstring):

- client credentials (server-to-server, recommended): `grant_type=client_credentials` with
  the connected app's consumer key and secret. Salesforce serves this flow only on the org's
  My Domain host (`https://<MyDomain>.my.salesforce.com`), not on login.salesforce.com.
  https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm
- username-password: `grant_type=password` with the consumer key and secret, the user name
  and the password followed by the user's security token (Salesforce's own rule for API
  logins from outside the org's trusted IP ranges). New orgs block this flow by default.
  https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_username_password_flow.htm

Nothing here is logged: the secrets, the password and the token never leave this module
except inside the request and the returned `SalesforceToken`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import requests

TOKEN_PATH = "/services/oauth2/token"


@dataclass(frozen=True)
class SalesforceCredentials:
    """How to get a token: the connected app, and a user for the username-password flow.

    `repr` hides every secret, so a credentials object in a traceback shows none."""

    login_url: str
    client_id: str
    client_secret: str = field(repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.login_url.startswith("https://"):
            raise ValueError("SALESFORCE_LOGIN_URL must be an https:// URL (secrets go there)")
        if not self.client_id or not self.client_secret:
            raise ValueError("SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET are required")
        if self.username and not self.password:
            raise ValueError("SALESFORCE_USERNAME needs SALESFORCE_PASSWORD")

    @property
    def flow(self) -> Literal["client_credentials", "password"]:
        return "password" if self.username else "client_credentials"

    def form(self) -> dict[str, str]:
        """The token request's form body (application/x-www-form-urlencoded)."""
        form = {
            "grant_type": self.flow,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        if self.username:
            form["username"] = self.username
            form["password"] = (self.password or "") + (self.security_token or "")
        return form


@dataclass(frozen=True)
class SalesforceToken:
    """A session: where the org's REST API lives and the bearer token for it."""

    instance_url: str
    access_token: str = field(repr=False)


class SalesforceAuthError(Exception):
    """The token endpoint said no, or answered what no token response looks like.

    `status` is the HTTP status (0 when the answer never came or was unreadable);
    `transient` tells the sender whether a later try may succeed. The message holds
    Salesforce's `error` and `error_description`, never a secret."""

    def __init__(self, status: int, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


def fetch_token(
    session: requests.Session, credentials: SalesforceCredentials, timeout_s: float | None = None
) -> SalesforceToken:
    """One token request; `SalesforceAuthError` when it fails (timeouts and resets are
    transient: nothing was written to Salesforce yet). Without `timeout_s`, the session's
    own (the sender's sessions always have one)."""
    url = credentials.login_url.rstrip("/") + TOKEN_PATH
    headers = {"Accept": "application/json"}
    try:
        if timeout_s is None:
            response = session.post(url, data=credentials.form(), headers=headers)
        else:
            response = session.post(
                url, data=credentials.form(), headers=headers, timeout=timeout_s
            )
    except requests.RequestException as exc:
        raise SalesforceAuthError(
            0, f"token request failed: {type(exc).__name__}", transient=True
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        error = description = ""
        if isinstance(body, dict):
            error = str(body.get("error", ""))
            description = str(body.get("error_description", ""))
        words = ": ".join(part for part in (error, description) if part) or "no token"
        transient = response.status_code in (408, 429) or response.status_code >= 500
        raise SalesforceAuthError(
            response.status_code,
            f"token request refused ({response.status_code}): {words}",
            transient=transient,
        )
    instance_url = body.get("instance_url")
    access_token = body.get("access_token")
    if not isinstance(instance_url, str) or not isinstance(access_token, str):
        raise SalesforceAuthError(
            response.status_code,
            "token response without instance_url or access_token",
            transient=False,
        )
    return SalesforceToken(instance_url=instance_url.rstrip("/"), access_token=access_token)
