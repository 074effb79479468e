"""Where the bot may send requests of its own: outbound URLs are attacker-controlled.

A lead's `reply_url` comes from whoever posts the lead, so a request to it must not reach
this machine, the private network behind it or a cloud's metadata service (server-side
request forgery; RELIABILITY.md, rule 12). `OutboundPolicy` holds the rules and the
operator's exceptions (`SALESBOT_OUTBOUND_ALLOW`):

- the URL is `https`, without a user name or password, naming a fully qualified host or
  an IP address written the usual way (`127.1`, `0x7f.1` or `2130706433` are refused: the
  operating system would read them as 127.0.0.1);
- neither the host nor any address it is connected to is loopback, link-local, private,
  unspecified, multicast, reserved, shared (100.64/10) or a cloud metadata endpoint — IPv6
  forms that carry an IPv4 address (`::ffff:127.0.0.1`, NAT64, 6to4) are judged by that
  address — unless the allow-list names the host, the address or a range holding it;
- plain `http` only to a loopback address the allow-list names (a receiver on this
  machine: nothing crosses a network);
- names that mean this machine, a metadata service or a private network by definition
  (`localhost`, `metadata.google.internal`, `*.internal`, `*.local`, `*.home.arpa`) and
  single-label names (`intranet`, resolved through search domains) are refused without
  asking DNS, unless the allow-list names them.

A URL is checked twice. At intake (`check_url`, then `check_resolved`, which asks DNS once
and refuses a host whose every address is forbidden; a name that does not resolve yet is
accepted: it may by the time a reply goes out). At send time `addresses` resolves the host
and keeps only allowed addresses; `adapters.outbound_http` hands exactly those to the
connection, so a DNS server that answers differently the second time (DNS rebinding) has no
second time to answer.

Name resolution is injected (`Lookup`), so tests fake DNS without a network; the default is
the event loop's `getaddrinfo`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

Lookup = Callable[[str, int], Awaitable[Sequence[str]]]
"""`(host, port) -> addresses` as text; raises OSError when the name does not resolve."""

ALLOW_SETTING = "SALESBOT_OUTBOUND_ALLOW"
INTAKE_LOOKUP_TIMEOUT_S = 2.0
"""How long intake waits for DNS before accepting the URL unresolved (send time checks
again)."""


class OutboundRefusedError(OSError):
    """A destination the rules forbid. `reason` completes a sentence about the URL ("must
    use https", "resolves to a private address (10.0.0.7), …").

    An OSError, so that aiohttp, which wraps its resolver's OSErrors in
    `ClientConnectorDNSError`, keeps it as `os_error`: the sender can tell a refusal
    (permanent) from a failed lookup (retried)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def system_lookup(host: str, port: int) -> list[str]:
    """The event loop's `getaddrinfo` (the system resolver, in a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _networks(kind: str, *cidrs: str) -> list[tuple[IPNetwork, str]]:
    return [(ipaddress.ip_network(cidr), kind) for cidr in cidrs]


_METADATA_V4 = ipaddress.IPv4Address("169.254.169.254")
_FORBIDDEN: list[tuple[IPNetwork, str]] = [
    # The most specific first: the metadata endpoints sit inside wider ranges.
    *_networks("cloud metadata", "169.254.169.254/32", "fd00:ec2::254/128", "100.100.100.200/32"),
    *_networks("unspecified", "0.0.0.0/8", "::/128"),
    *_networks("loopback", "127.0.0.0/8", "::1/128"),
    *_networks("link-local", "169.254.0.0/16", "fe80::/10"),
    *_networks(
        "private",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
        "fec0::/10",  # IPv6 site-local, deprecated but still routed inside some networks
        "64:ff9b:1::/48",  # local-use NAT64
    ),
    *_networks("shared", "100.64.0.0/10"),
    *_networks("multicast", "224.0.0.0/4", "ff00::/8"),
    *_networks(
        "reserved",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "198.51.100.0/24",
        "203.0.113.0/24",
        "198.18.0.0/15",  # benchmarking
        "192.88.99.0/24",  # 6to4 relay anycast, deprecated
        "240.0.0.0/4",  # future use, and the broadcast address
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo included
        "2001:db8::/32",  # documentation
        "3fff::/20",
        "::/8",  # IPv4-compatible and other legacy forms
    ),
]
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when it stands for one: IPv4-mapped
    (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:AABB:CCDD::`)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def forbidden_kind(address: IPAddress) -> str | None:
    """What makes `address` unfit for an outbound request ("loopback", "private", …), or
    None for a public address. An IPv6 form of an IPv4 address is judged by that address."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return forbidden_kind(inner)
    plain = address
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        plain = ipaddress.IPv6Address(address.compressed.split("%", 1)[0])
    for network, kind in _FORBIDDEN:
        if plain.version == network.version and plain in network:
            return kind
    if isinstance(plain, ipaddress.IPv6Address) and plain not in _GLOBAL_UNICAST_V6:
        return "reserved"
    if not plain.is_global:  # anything the standard library knows is not public
        return "reserved"
    return None


_LOOPBACK_NAMES = ("localhost",)
_METADATA_NAMES = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data"}
)
_PRIVATE_SUFFIXES = (".internal", ".local", ".home.arpa", ".localdomain")
_LOCALHOST_ADDRESSES: tuple[IPAddress, ...] = (
    ipaddress.IPv4Address("127.0.0.1"),
    ipaddress.IPv6Address("::1"),
)
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_CANONICAL_V4 = re.compile(
    r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$"
)
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|\d+)$")


def name_kind(name: str) -> str | None:
    """What makes a host *name* unfit ("loopback", "cloud metadata", "private-use"), or None.
    These never need DNS to be refused: they mean this machine or the local network by
    definition."""
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return "loopback"
    if name in _METADATA_NAMES or name.startswith("instance-data."):
        return "cloud metadata"
    if name.endswith(_PRIVATE_SUFFIXES):
        return "private-use"
    return None


@dataclass(frozen=True)
class Host:
    """A URL's host, normalised: `address` for an IP literal, else `name` (lower-case ASCII,
    IDNA-encoded, no trailing dot)."""

    name: str | None = None
    address: IPAddress | None = None


def parse_host(raw: str) -> Host:
    """`raw` as yarl or aiohttp hold it (IDNA-encoded, lower case, no brackets). Raises
    OutboundRefusedError for what is neither a usual IP address nor a valid host name."""
    if ":" in raw:
        try:
            return Host(address=ipaddress.IPv6Address(raw))
        except ValueError:
            raise OutboundRefusedError("must name a valid host") from None
    name = raw.lower()
    if name.endswith("."):
        name = name[:-1]  # the root: "example.com." is "example.com"
    if _CANONICAL_V4.match(name):
        return Host(address=ipaddress.IPv4Address(name))
    labels = name.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        # A numeric last label makes it an IPv4 address to URL parsers and to inet_aton:
        # only the four-decimal spelling is accepted, so there is one way to read it.
        raise OutboundRefusedError("must write an IPv4 address as four decimal numbers (a.b.c.d)")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise OutboundRefusedError("must name a valid host")
    return Host(name=name)


class AllowList:
    """`SALESBOT_OUTBOUND_ALLOW`: host names, IP addresses and CIDR ranges that outbound
    requests may reach although the rules would refuse them."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        networks: list[IPNetwork] = []
        names: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(_network(entry))
                continue
            except ValueError:
                pass
            try:
                host = parse_host(URL.build(scheme="https", host=entry).raw_host or "")
            except (ValueError, TypeError, OutboundRefusedError):
                host = None
            if host is None or host.name is None:
                raise ValueError(
                    f"{ALLOW_SETTING}: {entry!r} is not a host name, an IP address or a CIDR range"
                )
            names.add(host.name)
        self._networks = tuple(networks)
        self._names = frozenset(names)

    def allows_name(self, name: str) -> bool:
        return name in self._names

    def allows_address(self, address: IPAddress) -> bool:
        candidates = [address]
        inner = embedded_ipv4(address)
        if inner is not None:
            candidates.append(inner)
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self._networks
        )


def _network(entry: str) -> IPNetwork:
    network = ipaddress.ip_network(entry, strict=False)
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen == 128:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network(mapped)
    return network


@dataclass(frozen=True)
class Destination:
    """A checked URL: what to connect to is decided again at send time (`addresses`)."""

    url: URL
    host: Host
    port: int


class OutboundPolicy:
    """The rules (module docstring) with the operator's allow-list and a name resolver."""

    def __init__(self, allow: Iterable[str] = (), *, lookup: Lookup | None = None) -> None:
        self.allow = AllowList(allow)
        self._lookup = lookup or system_lookup

    def check_url(self, url: str) -> Destination:
        """Everything that can be said without DNS. Raises OutboundRefusedError."""
        try:
            parsed = URL(url)
            raw_host = parsed.raw_host
            port = parsed.port
        except (ValueError, TypeError, UnicodeError):
            raise OutboundRefusedError("must be a valid URL") from None
        if parsed.scheme not in {"http", "https"} or not raw_host or not parsed.is_absolute():
            raise OutboundRefusedError("must be an absolute https URL")
        if parsed.raw_user is not None or parsed.raw_password is not None:
            raise OutboundRefusedError("must not contain a user name or password")
        host = parse_host(raw_host)
        if parsed.scheme == "http" and not self._plain_http_allowed(host):
            raise OutboundRefusedError(
                f"must use https (plain http only to a loopback address listed in {ALLOW_SETTING})"
            )
        if host.address is not None:
            kind = forbidden_kind(host.address)
            if kind is not None and not self.allow.allows_address(host.address):
                raise OutboundRefusedError(
                    f"must not point at a {kind} address unless {ALLOW_SETTING} lists it"
                )
        elif host.name is not None and not self.allow.allows_name(host.name):
            kind = name_kind(host.name)
            if kind == "loopback":
                if not any(self.allow.allows_address(a) for a in _LOCALHOST_ADDRESSES):
                    raise OutboundRefusedError(
                        f"must not name a loopback host unless {ALLOW_SETTING} lists its address"
                    )
            elif kind is not None:
                raise OutboundRefusedError(
                    f"must not name a {kind} host unless {ALLOW_SETTING} lists it"
                )
            elif "." not in host.name:
                raise OutboundRefusedError(
                    "must name a fully qualified host (e.g. crm.example.com)"
                )
        return Destination(url=parsed, host=host, port=port or 443)

    async def check_resolved(self, url: str) -> Destination:
        """`check_url`, then one DNS look-up: refused when every address the host resolves
        to is forbidden. A look-up that fails or takes too long is no refusal (the name may
        resolve by the time a reply goes out, and is checked again then)."""
        destination = self.check_url(url)
        name = destination.host.name
        if name is None or self.allow.allows_name(name) or name_kind(name) is not None:
            return destination
        try:
            answers = await asyncio.wait_for(
                self._lookup(name, destination.port), timeout=INTAKE_LOOKUP_TIMEOUT_S
            )
        except (OSError, TimeoutError, UnicodeError):
            return destination
        addresses = _addresses(answers)
        refused = [a for a in addresses if not self._allowed(a)]
        if addresses and len(refused) == len(addresses):
            kind = forbidden_kind(refused[0]) or "reserved"
            raise OutboundRefusedError(
                f"must not resolve to a {kind} address unless {ALLOW_SETTING} lists it"
            )
        return destination

    async def addresses(self, raw_host: str, port: int) -> list[IPAddress]:
        """Send time: the addresses a connection to `raw_host` may use — the allowed ones
        among one look-up's answers. Raises OutboundRefusedError when none is allowed, OSError
        when the name does not resolve."""
        host = parse_host(raw_host)
        if host.address is not None:
            self._refuse_unless_allowed(host.address)
            return [host.address]
        name = host.name or ""
        if name_kind(name) == "loopback":
            # Never asked of DNS: localhost is this machine by definition (RFC 6761).
            answers: Sequence[IPAddress] = _LOCALHOST_ADDRESSES
        else:
            if name_kind(name) is not None and not self.allow.allows_name(name):
                raise OutboundRefusedError(
                    f"names a {name_kind(name)} host, which {ALLOW_SETTING} does not list"
                )
            answers = _addresses(await self._lookup(name, port))
        if not answers:
            raise OSError(f"{name} has no address")
        if self.allow.allows_name(name):
            return list(answers)
        allowed = [a for a in answers if self._allowed(a)]
        if not allowed:
            self._refuse_unless_allowed(answers[0])
        return allowed

    def _allowed(self, address: IPAddress) -> bool:
        return forbidden_kind(address) is None or self.allow.allows_address(address)

    def _refuse_unless_allowed(self, address: IPAddress) -> None:
        kind = forbidden_kind(address)
        if kind is not None and not self.allow.allows_address(address):
            raise OutboundRefusedError(
                f"resolves to a {kind} address ({address}), which {ALLOW_SETTING} does not list"
            )

    def _plain_http_allowed(self, host: Host) -> bool:
        if host.address is not None:
            return host.address.is_loopback and self.allow.allows_address(host.address)
        if host.name is not None and name_kind(host.name) == "loopback":
            return any(self.allow.allows_address(a) for a in _LOCALHOST_ADDRESSES)
        return False


def _addresses(answers: Iterable[str]) -> list[IPAddress]:
    """Answers as addresses; one that is not an address counts as the unspecified address
    (refused), never as skipped."""
    result: list[IPAddress] = []
    for answer in answers:
        try:
            result.append(ipaddress.ip_address(answer))
        except ValueError:
            result.append(ipaddress.IPv4Address(0))
    return result
