"""An aiohttp session that connects only where `OutboundPolicy` allows.

aiohttp asks its connector's resolver for the addresses of a URL's host and connects to
what it gets back. `CheckedResolver` answers with `OutboundPolicy.addresses`: one look-up,
the forbidden answers dropped (none left: `OutboundRefusedError`). So the address checked is
the address connected to — there is no second look-up a DNS-rebinding server could answer
differently — while TLS still verifies the certificate for the URL's own host name (SNI and
`Host` come from the URL, not from the address).

aiohttp connects to an IP literal without asking the resolver (only the four-decimal IPv4
spelling counts as one), so a sender checks the URL itself first (`OutboundPolicy.check_url`).
The session does not cache DNS answers, keeps no connection alive between requests (every
request is a fresh, checked connection), ignores proxy variables (a proxy would connect for
us, unchecked) and is meant to be used with `allow_redirects=False`.
"""

from __future__ import annotations

import socket
import ssl

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from adapters.outbound import OutboundPolicy


class CheckedResolver(AbstractResolver):
    """aiohttp's resolver interface over `OutboundPolicy.addresses`."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self._policy.addresses(host, port)
        wanted = [a for a in addresses if family == socket.AF_UNSPEC or _family(a) == family]
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=_family(address),
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in wanted or addresses
        ]

    async def close(self) -> None:
        """Nothing to release: the look-ups belong to the policy."""


def _family(address: object) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in str(address) else socket.AF_INET


def checked_session(
    policy: OutboundPolicy, *, ssl_context: ssl.SSLContext | None = None
) -> aiohttp.ClientSession:
    """A session whose every connection goes to an address `policy` allows. `ssl_context`
    replaces the default verified context (tests: a local certificate authority); it is
    never a switch to turn verification off."""
    connector = aiohttp.TCPConnector(
        resolver=CheckedResolver(policy),
        use_dns_cache=False,
        force_close=True,
        family=socket.AF_UNSPEC,
        ssl=ssl_context if ssl_context is not None else True,
    )
    return aiohttp.ClientSession(connector=connector, trust_env=False)
