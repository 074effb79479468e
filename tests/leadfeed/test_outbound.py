"""Where a reply URL may point (adapters/outbound.py): every forbidden range, in every
spelling an attacker would try, refused with a reason; the operator's allow-list as the
only way in; DNS faked, never asked."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

import pytest

from adapters import outbound
from adapters.outbound import OutboundPolicy, OutboundRefusedError, system_lookup

STRICT = OutboundPolicy()

REFUSED = [
    # (url, what the reason must say)
    ("https://127.0.0.1/", "loopback address"),
    ("https://127.255.255.254/", "loopback address"),
    ("https://[::1]/", "loopback address"),
    ("https://0.0.0.0/", "unspecified address"),
    ("https://[::]/", "unspecified address"),
    ("https://10.1.2.3/", "private address"),
    ("https://172.16.0.1/", "private address"),
    ("https://172.31.255.255/", "private address"),
    ("https://192.168.1.1/", "private address"),
    ("https://[fc00::1]/", "private address"),
    ("https://[fd12:3456::1]/", "private address"),
    ("https://[fec0::1]/", "private address"),
    ("https://169.254.169.254/latest/meta-data/", "cloud metadata address"),
    ("https://[fd00:ec2::254]/", "cloud metadata address"),
    ("https://100.100.100.200/", "cloud metadata address"),
    ("https://169.254.1.1/", "link-local address"),
    ("https://[fe80::1]/", "link-local address"),
    ("https://[fe80::1%25eth0]/", "link-local address"),
    ("https://100.64.0.1/", "shared address"),
    ("https://100.127.255.255/", "shared address"),
    ("https://224.0.0.1/", "multicast address"),
    ("https://239.255.255.250/", "multicast address"),
    ("https://[ff02::1]/", "multicast address"),
    ("https://240.0.0.1/", "reserved address"),
    ("https://255.255.255.255/", "reserved address"),
    ("https://192.0.2.1/", "reserved address"),
    ("https://198.18.0.1/", "reserved address"),
    ("https://192.0.0.192/", "reserved address"),
    ("https://[2001:db8::1]/", "reserved address"),
    ("https://[::7f00:1]/", "reserved address"),  # IPv4-compatible, deprecated
    # IPv6 forms that carry an IPv4 address are judged by that address.
    ("https://[::ffff:127.0.0.1]/", "loopback address"),
    ("https://[::ffff:7f00:1]/", "loopback address"),
    ("https://[::ffff:10.0.0.1]/", "private address"),
    ("https://[::ffff:169.254.169.254]/", "cloud metadata address"),
    ("https://[64:ff9b::7f00:1]/", "loopback address"),  # NAT64
    ("https://[2002:a9fe:a9fe::]/", "cloud metadata address"),  # 6to4 of 169.254.169.254
    # Spellings the operating system reads as 127.0.0.1: one spelling only.
    ("http://2130706433/", "four decimal numbers"),
    ("https://2130706433/", "four decimal numbers"),
    ("https://0x7f.1/", "four decimal numbers"),
    ("https://0x7f000001/", "four decimal numbers"),
    ("https://0177.0.0.1/", "four decimal numbers"),
    ("https://017700000001/", "four decimal numbers"),
    ("https://127.1/", "four decimal numbers"),
    ("https://999.1.1.1/", "four decimal numbers"),
    ("https://1.2.3.4.5/", "four decimal numbers"),
    # Trailing dots, IDNA mappings and full-width digits change nothing.
    ("https://127.0.0.1./", "loopback address"),
    ("https://１２７.０.０.１/", "loopback address"),
    ("https://127。0。0。1/", "loopback address"),
    ("https://localhost/", "loopback host"),
    ("https://localhost./", "loopback host"),
    ("https://LOCALHOST/", "loopback host"),
    ("https://ⓛocalhost/", "loopback host"),
    ("https://api.localhost/", "loopback host"),
    # Names that mean a metadata service or the local network by definition.
    ("https://metadata.google.internal/computeMetadata/v1/", "cloud metadata host"),
    ("https://metadata.google.internal./", "cloud metadata host"),
    ("https://metadata.goog/", "cloud metadata host"),
    ("https://instance-data.ec2.internal/", "cloud metadata host"),
    ("https://db.internal/", "private-use host"),
    ("https://printer.local/", "private-use host"),
    ("https://router.home.arpa/", "private-use host"),
    ("https://intranet/", "fully qualified host"),
    # Credentials, including the trick of a harmless-looking user name before the real host.
    ("https://good.example.com@127.0.0.1/", "user name or password"),
    ("https://user:pw@crm.example.com/", "user name or password"),
    ("https://127.0.0.1\\@good.example.com/", "valid URL"),
    # Schemes and shapes.
    ("http://crm.example.com/replies", "must use https"),
    ("HTTP://crm.example.com/replies", "must use https"),
    ("ftp://crm.example.com/", "absolute https URL"),
    ("file:///etc/passwd", "absolute https URL"),
    ("gopher://127.0.0.1:6379/_INFO", "absolute https URL"),
    ("javascript:alert(1)", "absolute https URL"),
    ("//crm.example.com/replies", "absolute https URL"),
    ("/replies", "absolute https URL"),
    ("https://", "absolute https URL"),
    ("", "absolute https URL"),
    ("https://[::1/", "valid URL"),
    ("https://crm.example.com:99999/", "valid URL"),
    ("https://exa%6dple.com/", "valid host"),
    ("https://a b.example.com/", "valid host"),
    ("https://-crm.example.com/", "valid host"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED, ids=[u or "empty" for u, _ in REFUSED])
def test_a_forbidden_reply_url_is_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(OutboundRefusedError) as refused:
        STRICT.check_url(url)

    assert reason in refused.value.reason


ALLOWED = [
    "https://crm.example.com/replies?token=abc",
    "https://CRM.Example.com./replies",
    "https://crm.example.com:8443/replies",
    "https://bücher.example/",
    "https://xn--bcher-kva.example/",
    "https://x_y.example.com/",
    "https://93.184.215.14/",
    "https://8.8.8.8/",
    "https://[2606:4700::1111]/",
    "https://[64:ff9b::808:808]/",  # NAT64 of a public address
    "https://[::ffff:8.8.8.8]/",
]


@pytest.mark.parametrize("url", ALLOWED)
def test_a_public_https_reply_url_is_accepted(url: str) -> None:
    STRICT.check_url(url)


@pytest.mark.parametrize(
    ("allow", "url"),
    [
        (["127.0.0.1"], "http://127.0.0.1:8080/replies"),
        (["127.0.0.1"], "https://127.0.0.1/replies"),
        (["127.0.0.1"], "http://localhost:8080/replies"),
        (["127.0.0.1"], "https://[::ffff:127.0.0.1]/"),
        (["::1"], "http://[::1]:8080/replies"),
        (["127.0.0.0/8"], "http://127.0.0.2/"),
        (["10.0.0.0/8"], "https://10.1.2.3/replies"),
        (["10.0.0.0/8"], "https://[::ffff:10.1.2.3]/replies"),
        (["::ffff:10.1.2.3"], "https://10.1.2.3/replies"),
        (["169.254.169.254"], "https://169.254.169.254/"),
        (["fd00::/8"], "https://[fd12::1]/"),
        (["crm.internal"], "https://crm.internal/replies"),
        (["CRM.Internal."], "https://crm.internal./replies"),
        (["intranet"], "https://intranet/replies"),
        (["bücher.internal"], "https://xn--bcher-kva.internal/"),
        (["  10.0.0.5 ", ""], "https://10.0.0.5/"),
    ],
)
def test_the_allow_list_lets_a_listed_host_address_or_range_through(
    allow: list[str], url: str
) -> None:
    OutboundPolicy(allow).check_url(url)


@pytest.mark.parametrize(
    ("allow", "url", "reason"),
    [
        (["127.0.0.1"], "http://127.0.0.2/", "must use https"),
        (["127.0.0.1"], "https://127.0.0.2/", "loopback address"),
        (["127.0.0.1"], "http://[::1]/", "must use https"),
        (["127.0.0.1"], "https://10.0.0.1/", "private address"),
        (["127.0.0.1"], "http://0x7f.1/", "four decimal numbers"),
        (["127.0.0.1"], "http://good@127.0.0.1/", "user name or password"),
        (["10.0.0.0/8"], "http://10.1.2.3/", "must use https"),  # plain http: loopback only
        (["crm.internal"], "https://other.internal/", "private-use host"),
        (["crm.internal"], "http://crm.internal/", "must use https"),
        (["crm.example.com"], "https://10.0.0.1/", "private address"),
    ],
)
def test_the_allow_list_lets_nothing_else_through(allow: list[str], url: str, reason: str) -> None:
    with pytest.raises(OutboundRefusedError) as refused:
        OutboundPolicy(allow).check_url(url)

    assert reason in refused.value.reason


@pytest.mark.parametrize(
    "entry", ["foo bar", "http://127.0.0.1", "10.0.0.0/33", "127.1", "*.example.com", "a/b"]
)
def test_an_allow_list_entry_that_is_not_a_host_address_or_range_is_a_configuration_error(
    entry: str,
) -> None:
    with pytest.raises(ValueError, match="SALESBOT_OUTBOUND_ALLOW") as error:
        OutboundPolicy(["127.0.0.1", entry])

    assert repr(entry) in str(error.value)


class FakeDns:
    """Answers from a table, counting questions; an unknown name does not resolve."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


async def test_at_send_time_only_allowed_answers_are_connected_to() -> None:
    dns = FakeDns(
        {
            "public.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
            "mixed.example.com": ["10.0.0.7", "93.184.215.14", "127.0.0.1"],
            "private.example.com": ["10.0.0.7"],
            "metadata.example.com": ["169.254.169.254"],
            "mapped.example.com": ["::ffff:127.0.0.1"],
            "junk.example.com": ["not-an-address"],
            "empty.example.com": [],
        }
    )
    policy = OutboundPolicy(lookup=dns)

    assert [str(a) for a in await policy.addresses("public.example.com", 443)] == [
        "93.184.215.14",
        "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
    ]
    assert [str(a) for a in await policy.addresses("mixed.example.com.", 443)] == ["93.184.215.14"]
    for host, reason in [
        ("private.example.com", "private address (10.0.0.7)"),
        ("metadata.example.com", "cloud metadata address (169.254.169.254)"),
        ("mapped.example.com", "loopback address (::ffff:7f00:1)"),
        ("junk.example.com", "unspecified address"),
    ]:
        with pytest.raises(OutboundRefusedError) as refused:
            await policy.addresses(host, 443)
        assert reason in refused.value.reason
        assert "SALESBOT_OUTBOUND_ALLOW" in refused.value.reason
    for host in ["unknown.example.com", "empty.example.com"]:
        with pytest.raises(OSError, match=r"not known|no address") as failed:
            await policy.addresses(host, 443)
        assert not isinstance(failed.value, OutboundRefusedError)  # retried, not refused


async def test_at_send_time_names_and_spellings_are_judged_without_asking_dns() -> None:
    dns = FakeDns({"localhost": ["93.184.215.14"], "metadata.google.internal": ["8.8.8.8"]})
    policy = OutboundPolicy(["127.0.0.1"], lookup=dns)

    assert [str(a) for a in await policy.addresses("localhost", 80)] == ["127.0.0.1"]
    with pytest.raises(OutboundRefusedError, match="cloud metadata host"):
        await policy.addresses("metadata.google.internal", 443)
    with pytest.raises(OutboundRefusedError, match="four decimal numbers"):
        await policy.addresses("0x7f.1", 443)
    with pytest.raises(OutboundRefusedError, match=r"loopback address \(127\.0\.0\.2\)"):
        await policy.addresses("127.0.0.2", 443)
    assert dns.asked == []


async def test_an_allow_listed_name_may_resolve_to_a_private_address() -> None:
    dns = FakeDns({"crm.internal": ["10.0.0.7"], "other.example.com": ["10.0.0.7"]})
    policy = OutboundPolicy(["crm.internal"], lookup=dns)

    assert [str(a) for a in await policy.addresses("crm.internal", 443)] == ["10.0.0.7"]
    with pytest.raises(OutboundRefusedError, match="private address"):
        await policy.addresses("other.example.com", 443)


async def test_at_intake_a_name_refused_only_when_every_answer_is_forbidden() -> None:
    dns = FakeDns(
        {
            "private.example.com": ["10.0.0.7", "fd00::7"],
            "mixed.example.com": ["10.0.0.7", "93.184.215.14"],
            "public.example.com": ["93.184.215.14"],
        }
    )
    policy = OutboundPolicy(lookup=dns)

    with pytest.raises(OutboundRefusedError) as refused:
        await policy.check_resolved("https://private.example.com/replies")
    assert refused.value.reason == (
        "must not resolve to a private address unless SALESBOT_OUTBOUND_ALLOW lists it"
    )
    await policy.check_resolved("https://mixed.example.com/replies")
    await policy.check_resolved("https://public.example.com/replies")
    await policy.check_resolved("https://not-yet.example.com/replies")  # does not resolve yet
    with pytest.raises(OutboundRefusedError, match="must use https"):
        await policy.check_resolved("http://public.example.com/replies")
    await policy.check_resolved("https://93.184.215.14/replies")  # a literal: nothing to ask
    assert dns.asked == [
        "private.example.com",
        "mixed.example.com",
        "public.example.com",
        "not-yet.example.com",
    ]


async def test_at_intake_a_slow_dns_answer_is_not_waited_for(monkeypatch) -> None:
    never = asyncio.Event()

    async def hanging(host: str, port: int) -> Sequence[str]:
        await never.wait()
        return ["10.0.0.7"]

    monkeypatch.setattr(outbound, "INTAKE_LOOKUP_TIMEOUT_S", 0.05)

    await OutboundPolicy(lookup=hanging).check_resolved("https://slow.example.com/")


async def test_the_system_lookup_goes_through_the_event_loop() -> None:
    # A numeric host: getaddrinfo answers without asking any DNS server.
    assert await system_lookup("127.0.0.1", 443) == ["127.0.0.1"]
