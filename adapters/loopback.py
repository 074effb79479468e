"""Is this host this machine? One answer for every adapter that allows something only on
loopback (local test modes, the playground without a token, fake platform APIs)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1), in any case, with or without
    IPv6 brackets and a trailing dot."""
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str, *, scheme: str | None = None) -> bool:
    """Whether `url` points at this machine (and uses `scheme`, when given)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if host is None or (scheme is not None and parts.scheme.lower() != scheme):
        return False
    return is_loopback_host(host)
