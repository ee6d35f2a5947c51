"""The SSRF guard: address verdicts, IP-literal spellings, and DestinationPolicy.check end to end.

DNS answers come from a small fake of the OS resolver (a name → addresses table); "localhost" also goes
through the real system resolver.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

import pytest

from mcp_server._errors import BlockedDestination, UpstreamUnreachable
from mcp_server._netguard import (
    Destination,
    DestinationPolicy,
    IPAddress,
    blocked_reason,
    parse_host_literal,
)

ip = ipaddress.ip_address

# ------------------------------------------------------------------ blocked_reason

BLOCKED = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("192.0.0.192", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "shared address space (CGNAT)"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("ff02::1", "multicast"),
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("192.0.2.10", "documentation"),
    ("2001:db8::1", "documentation"),
    ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:7f00:1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("::127.0.0.1", "loopback"),  # IPv4-compatible
    ("64:ff9b::7f00:1", "loopback"),  # NAT64
    ("64:ff9b::a9fe:a9fe", "cloud metadata"),
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::1", "cloud metadata"),
]
PUBLIC = ["8.8.8.8", "93.184.216.34", "1.1.1.1", "2606:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.8.8"]


@pytest.mark.parametrize(("address", "reason"), BLOCKED)
def test_blocked_reason_names_why(address: str, reason: str) -> None:
    assert blocked_reason(ip(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ip(address)) is None


# ------------------------------------------------------------------ parse_host_literal

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "2130706433",
    "0177.0.0.1",
    "017700000001",
    "0x7f.0.0.1",
    "0x7f000001",
    "0X7F000001",
    "127.1",
    "127.0.1",
    "0x7f.1",
    "0177.0.0.01",
    "127.0.0.1.",
]
METADATA_SPELLINGS = [
    "169.254.169.254",
    "2852039166",
    "0xA9FEA9FE",
    "0xa9.0xfe.0xa9.0xfe",
    "0251.0376.0251.0376",
    "169.254.43518",
    "169.16689662",
    "025177524776",
]
NOT_LITERALS = [
    "example.com",
    "127.0.0.1.nip.io",
    "1.2.3.4.5",
    "256.0.0.1",
    "08.0.0.1",
    "0x",
    "0x.0.0.1",
    "1..2",
    "4294967296",
    "127.16777216",
    "",
    "localhost",
    "[example.com]",
    "::g",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_every_ipv4_spelling_of_loopback(host: str) -> None:
    assert parse_host_literal(host) == ip("127.0.0.1")


@pytest.mark.parametrize("host", METADATA_SPELLINGS)
def test_every_ipv4_spelling_of_metadata(host: str) -> None:
    assert parse_host_literal(host) == ip("169.254.169.254")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("::ffff:7f00:1", "::ffff:127.0.0.1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("[fe80::1%25eth0]", "fe80::1%eth0"),
        ("[FE80::1]", "fe80::1"),
    ],
)
def test_ipv6_literals(host: str, expected: str) -> None:
    assert parse_host_literal(host) == ip(expected)


@pytest.mark.parametrize("host", NOT_LITERALS)
def test_non_literals(host: str) -> None:
    assert parse_host_literal(host) is None


@pytest.mark.skipif(sys.platform != "linux", reason="compares with glibc's inet_aton")
@pytest.mark.parametrize("host", [h for h in LOOPBACK_SPELLINGS + METADATA_SPELLINGS + NOT_LITERALS if ":" not in h])
def test_ipv4_parsing_agrees_with_the_c_library(host: str) -> None:
    try:
        expected: IPAddress | None = ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        expected = None
    if host.endswith("."):
        expected = ipaddress.IPv4Address(socket.inet_aton(host[:-1]))  # a resolver strips the root dot first
    assert parse_host_literal(host) == expected


# ------------------------------------------------------------------ DestinationPolicy.check

DNS: dict[str, list[str]] = {
    "api.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "internal.example.com": ["10.0.0.5"],
    "rebind.example.com": ["93.184.216.34", "127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
    "db.corp.example": ["10.20.0.7"],
    "svc.corp.example": ["10.20.0.8"],
    "corp.example": ["10.20.0.1"],
    "evil.corp.example.net": ["10.20.0.9"],
    "imds.corp.example": ["169.254.169.254"],
    "intranet": ["192.168.7.7"],
    "mapped.example.com": ["::ffff:192.168.0.10"],
    "dup.example.com": ["8.8.8.8", "8.8.8.8", "8.8.4.4"],
}
asked: list[tuple[str, int]] = []


async def fake_resolver(host: str, port: int) -> list[IPAddress]:
    """The OS resolver's contract: addresses for a known name, `socket.gaierror` for an unknown one."""
    asked.append((host, port))
    if host not in DNS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [ip(a) for a in DNS[host]]


def policy(base_url: str = "https://api.example.com/v1", allow: tuple[str, ...] = ()) -> DestinationPolicy:
    return DestinationPolicy(base_url=base_url, allow=allow, resolver=fake_resolver)


async def refused(p: DestinationPolicy, url: str) -> BlockedDestination:
    with pytest.raises(BlockedDestination) as info:
        await p.check(url)
    return info.value


async def test_public_host_returns_its_addresses_in_resolver_order() -> None:
    dest = await policy(base_url="https://other.example.org").check("https://api.example.com/v1/items?x=1")
    assert dest == Destination("api.example.com", 443, (ip("93.184.216.34"), ip("2606:2800:220:1:248:1893:25c8:1946")))


async def test_duplicate_answers_are_dropped_and_ports_default_by_scheme() -> None:
    dest = await policy().check("http://dup.example.com/")
    assert dest.port == 80
    assert dest.addresses == (ip("8.8.8.8"), ip("8.8.4.4"))


async def test_host_names_are_normalised_before_resolution() -> None:
    asked.clear()
    dest = await policy(base_url="https://other.example.org").check("https://API.Example.COM.:8443/x")
    assert dest.host == "api.example.com"
    assert asked == [("api.example.com", 8443)]


async def test_ip_literals_are_not_sent_to_the_resolver() -> None:
    asked.clear()
    dest = await policy().check("http://8.8.8.8/")
    assert dest.addresses == (ip("8.8.8.8"),)
    assert asked == []


@pytest.mark.parametrize(
    ("url", "address", "reason"),
    [
        ("http://2130706433/", "127.0.0.1", "loopback"),
        ("http://0x7f.1/", "127.0.0.1", "loopback"),
        ("http://[::ffff:7f00:1]:8080/", "::ffff:7f00:1", "loopback"),
        ("http://[::1]/", "::1", "loopback"),
        ("http://[fe80::1%25eth0]/", "fe80::1%eth0", "link-local"),
        ("http://0xa9fea9fe/latest/meta-data/", "169.254.169.254", "cloud metadata"),
        ("http://169.254.43518/latest/meta-data/", "169.254.169.254", "cloud metadata"),
        ("http://0.0.0.0:9000/", "0.0.0.0", "unspecified"),
    ],
)
async def test_blocked_literals(url: str, address: str, reason: str) -> None:
    err = await refused(policy(), url)
    assert err.details["address"] == address
    assert err.details["reason"] == reason
    assert err.error_code == "BLOCKED_DESTINATION"


async def test_name_resolving_to_a_private_address_is_refused() -> None:
    err = await refused(policy(), "https://internal.example.com/admin")
    assert err.details == {
        "host": "internal.example.com",
        "address": "10.0.0.5",
        "reason": "private",
        "url": "https://internal.example.com:443/admin",
    }
    assert "internal.example.com" in err.message
    assert "10.0.0.5" in err.message
    assert "network: {allow:" in err.message


async def test_one_bad_address_poisons_a_rebinding_answer() -> None:
    err = await refused(policy(), "https://rebind.example.com/")
    assert err.details["address"] == "127.0.0.1"
    assert err.details["reason"] == "loopback"


async def test_metadata_is_named_as_such() -> None:
    err = await refused(policy(), "http://metadata.example.com/latest/meta-data/iam/")
    assert err.details["reason"] == "cloud metadata"
    assert "metadata" in err.message


async def test_ipv4_mapped_answer_is_judged_by_its_ipv4_address() -> None:
    err = await refused(policy(), "http://mapped.example.com/")
    assert err.details["reason"] == "private"
    assert "192.168.0.10" in err.message


async def test_base_url_host_is_allowed_whatever_it_is() -> None:
    p = policy(base_url="http://127.0.0.1:9000")
    dest = await p.check("http://127.0.0.1:9000/x")
    assert dest == Destination("127.0.0.1", 9000, (ip("127.0.0.1"),))
    # The same address in another spelling is the same host.
    assert (await p.check("http://2130706433:9000/y")).addresses == (ip("127.0.0.1"),)
    err = await refused(p, "http://127.0.0.2/")
    assert err.details["reason"] == "loopback"


async def test_base_url_host_name_is_allowed_but_other_private_names_are_not() -> None:
    p = policy(base_url="https://intranet/api/")
    assert (await p.check("https://INTRANET./api/x")).addresses == (ip("192.168.7.7"),)
    await refused(p, "https://internal.example.com/")


async def test_allow_by_cidr() -> None:
    p = policy(allow=("10.0.0.0/8", "fd00::/8"))
    assert (await p.check("https://internal.example.com/")).addresses == (ip("10.0.0.5"),)
    assert (await p.check("http://[fd00::5]/")).addresses == (ip("fd00::5"),)
    await refused(p, "https://rebind.example.com/")  # 127.0.0.1 is not in the list


async def test_allowed_ipv4_network_covers_its_ipv4_mapped_form() -> None:
    p = policy(allow=("192.168.0.0/16",))
    assert (await p.check("http://mapped.example.com/")).addresses == (ip("::ffff:192.168.0.10"),)


async def test_allow_by_single_address() -> None:
    p = policy(allow=("10.0.0.5",))
    assert (await p.check("https://internal.example.com/")).host == "internal.example.com"
    await refused(p, "http://10.0.0.6/")


async def test_allow_by_exact_name_is_case_insensitive() -> None:
    p = policy(allow=("DB.Corp.Example",))
    assert (await p.check("http://db.corp.example:5984/")).addresses == (ip("10.20.0.7"),)
    await refused(p, "http://svc.corp.example/")


async def test_allow_by_wildcard_matches_subdomains_only() -> None:
    p = policy(allow=("*.corp.example",))
    assert (await p.check("http://db.corp.example/")).addresses == (ip("10.20.0.7"),)
    assert (await p.check("http://svc.corp.example/")).addresses == (ip("10.20.0.8"),)
    await refused(p, "http://corp.example/")
    await refused(p, "http://evil.corp.example.net/")


async def test_allowed_name_does_not_unlock_metadata() -> None:
    err = await refused(policy(allow=("*.corp.example",)), "http://imds.corp.example/")
    assert err.details["reason"] == "cloud metadata"
    assert (await policy(allow=("169.254.169.254",)).check("http://imds.corp.example/")).addresses


def test_unusable_allow_entries_are_rejected() -> None:
    for entry in ("*", "*.", "not a host", "http://x/"):
        with pytest.raises(ValueError, match=r"network\.allow"):
            policy(allow=(entry,))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:70/_x", "ftp://example.com/", "/relative"])
async def test_other_schemes_are_refused(url: str) -> None:
    err = await refused(policy(), url)
    assert err.details["reason"] == "scheme not allowed"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http:///x", "empty host"),
        ("http://h:99999/", "invalid port"),
        ("http://h:0/", "invalid port"),
        # Four all-digit parts: the HTTP client insists on plain dotted decimal there.
        ("http://0251.0376.0251.0376/", "invalid URL"),
    ],
)
async def test_malformed_destinations_are_refused(url: str, reason: str) -> None:
    err = await refused(policy(), url)
    assert err.details["reason"] == reason


@pytest.mark.parametrize(
    "url",
    [
        "http://internal.example.com/v1/items?api_key=SECRET123",
        "http://user:SECRET123@internal.example.com/v1/items?api_key=SECRET123",
        "http://2130706433/v1/items?api_key=SECRET123#frag",
        "file:///etc/passwd?api_key=SECRET123",
    ],
)
async def test_query_string_never_appears_in_the_error(url: str) -> None:
    err = await refused(policy(), url)
    assert "SECRET123" not in err.message
    assert "SECRET123" not in repr(err.details)
    assert "api_key" not in repr(err.to_body())


async def test_resolution_failure_is_upstream_unreachable() -> None:
    with pytest.raises(UpstreamUnreachable) as info:
        await policy().check("https://no-such-host.invalid/x?api_key=SECRET123")
    assert "no-such-host.invalid" in info.value.message
    assert "SECRET123" not in info.value.message
    assert info.value.error_code == "UPSTREAM_UNREACHABLE"


async def test_empty_answer_is_upstream_unreachable() -> None:
    async def nothing(host: str, port: int) -> list[IPAddress]:
        return []

    with pytest.raises(UpstreamUnreachable):
        await DestinationPolicy(base_url="https://x.example", resolver=nothing).check("https://y.example/")


# ------------------------------------------------------------------ the real system resolver


async def test_localhost_through_the_system_resolver_is_refused() -> None:
    err = await refused(DestinationPolicy(base_url="https://api.example.com"), "http://localhost:8080/")
    assert err.details["reason"] == "loopback"
    assert err.details["host"] == "localhost"


async def test_localhost_as_the_base_url_is_allowed_with_its_real_addresses() -> None:
    dest = await DestinationPolicy(base_url="http://localhost:9000").check("http://localhost:9000/x")
    assert dest.addresses
    assert all(blocked_reason(a) == "loopback" for a in dest.addresses)


async def test_caching_resolver_reuses_answers_within_ttl() -> None:
    from mcp_server._netguard import CachingResolver

    calls: list[str] = []
    now = [100.0]

    async def resolver(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        return [ipaddress.ip_address("93.184.216.34")]

    cached = CachingResolver(resolver, ttl=30.0, clock=lambda: now[0])
    assert await cached("example.com", 443) == [ipaddress.ip_address("93.184.216.34")]
    await cached("example.com", 443)
    assert calls == ["example.com"]
    await cached("other.example", 443)
    now[0] += 31
    await cached("example.com", 443)
    assert calls == ["example.com", "other.example", "example.com"]


# ------------------------------------------------------------------ origins parsed once


async def test_a_repeated_origin_is_judged_the_same_with_any_path() -> None:
    p = policy(base_url="https://other.example.org")
    for path in ("/a", "/b/c?x=1", "?q", "#f", ""):
        dest = await p.check(f"https://api.example.com{path}")
        assert dest.host == "api.example.com" and dest.port == 443
    for path in ("/admin", "/other?y=2"):  # the cached origin still refuses, and names the whole path
        err = await refused(p, f"https://internal.example.com{path}")
        assert err.details["url"] == f"https://internal.example.com:443{path.partition('?')[0]}"


async def test_a_path_the_client_would_refuse_is_refused_even_after_its_origin_passed() -> None:
    p = policy(base_url="https://other.example.org")
    await p.check("https://api.example.com/fine")
    err = await refused(p, "https://api.example.com/bad\x00path")
    assert err.details["reason"] == "invalid URL"


async def test_userinfo_and_ports_are_part_of_the_origin() -> None:
    p = policy(base_url="https://other.example.org")
    assert (await p.check("https://api.example.com:8443/x")).port == 8443
    assert (await p.check("https://u:p@api.example.com/x")).port == 443
    err = await refused(p, "https://u:p@internal.example.com/x")
    assert err.details["reason"] == "private"


async def test_a_url_longer_than_the_client_takes_is_refused_not_crashed() -> None:
    p = policy(base_url="https://other.example.org")
    await p.check("https://api.example.com/short")  # the origin is cached now
    err = await refused(p, "https://api.example.com/x?q=" + "a" * 70_000)
    assert err.details["reason"] == "invalid URL"
