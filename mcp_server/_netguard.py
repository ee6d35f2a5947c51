"""The SSRF guard: which addresses a connector's requests may reach.

Policy, applied before every connection and every redirect hop:

* Only `http` and `https` URLs with a non-empty host and a port in 1..65535.
* Every address the host resolves to must be public. Loopback, private, link-local, cloud metadata,
  unspecified, multicast, CGNAT, documentation and other reserved ranges are refused, and one refused
  address refuses the whole answer (a rebinding name answering [public, 127.0.0.1] does not get through).
* IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, NAT64 64:ff9b::/96) are
  judged by that IPv4 address, so `::ffff:127.0.0.1` is loopback.
* IP literals are recognised in every spelling the OS resolver accepts (`2130706433`, `0x7f.1`, `0177.0.0.1`),
  so an odd spelling neither escapes the check nor costs a DNS query.
* Exceptions: the connector's base URL host is always allowed, whatever it resolves to (the operator chose it),
  and so is the host of each operation's own base URL (the same manifest chose it);
  the manifest's `network: {allow: [...]}` adds CIDRs, single addresses and host names (`*.corp.example` for
  subdomains). An allowed host *name* lifts the private-address ban but not the cloud-metadata one: that needs
  an address or network entry covering it, because a name is only as trustworthy as whoever answers its DNS.

The checked addresses are returned so that the caller connects to exactly those, leaving no window for the
name to resolve differently between the check and the connection.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
import httpx2
import idna

from mcp_server._errors import BlockedDestination, UpstreamUnreachable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

CLOUD_METADATA = "cloud metadata"
_ALLOWED_SCHEMES = {"http": 80, "https": 443}

# Instance metadata services hand out credentials to whoever asks from inside the instance.
_METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.170.23",  # AWS EKS Pod Identity
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure WireServer: a public-looking address that only the platform answers
    )
)


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# First match wins; explicit tables rather than `ipaddress.is_private`, whose answers change between
# Python releases (3.11 calls multicast and site-local "global").
_IPV4_RANGES: tuple[tuple[tuple[IPNetwork, ...], str], ...] = (
    (_nets("0.0.0.0/8"), "unspecified"),  # Linux connects 0.0.0.0 to the local host
    (_nets("127.0.0.0/8"), "loopback"),
    (_nets("169.254.0.0/16"), "link-local"),
    (_nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"), "private"),
    (_nets("100.64.0.0/10"), "shared address space (CGNAT)"),
    (_nets("224.0.0.0/4"), "multicast"),
    (_nets("255.255.255.255/32"), "broadcast"),
    (_nets("240.0.0.0/4", "192.0.0.0/24", "192.88.99.0/24"), "reserved"),
    (_nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"), "documentation"),
    (_nets("198.18.0.0/15"), "benchmarking"),
)
_IPV6_RANGES: tuple[tuple[tuple[IPNetwork, ...], str], ...] = (
    (_nets("::/128"), "unspecified"),
    (_nets("::1/128"), "loopback"),
    (_nets("fe80::/10"), "link-local"),
    (_nets("fc00::/7", "64:ff9b:1::/48"), "private"),  # unique local; local-use NAT64
    (_nets("fec0::/10"), "site-local"),
    (_nets("ff00::/8"), "multicast"),
    (_nets("2001:db8::/32", "3fff::/20"), "documentation"),
    (_nets("100::/64", "2001::/23", "5f00::/16"), "reserved"),  # discard-only, IETF protocols (Teredo...), SRv6
)
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, IPv4-compatible, 6to4 or NAT64 address reaches, if any."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    if ip in _IPV4_MAPPED or ip in _NAT64:
        return low32
    # `::` and `::1` are IPv6's own unspecified and loopback addresses, not IPv4-compatible ones.
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return low32
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why `ip` is refused by default (`"loopback"`, `"private"`, `"cloud metadata"`, ...), or None if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        bare = ipaddress.IPv6Address(int(ip))  # the zone id does not change which host this is
        if bare in _METADATA_ADDRESSES:
            return CLOUD_METADATA
        inner = embedded_ipv4(bare)
        if inner is not None:
            return blocked_reason(inner)
        ranges = _IPV6_RANGES
    else:
        if ip in _METADATA_ADDRESSES:
            return CLOUD_METADATA
        ranges = _IPV4_RANGES
    for networks, reason in ranges:
        if any(ip in net for net in networks):
            return reason
    # Anything the tables missed but Python knows to be special-purpose.
    return None if ip.is_global else "reserved"


# One part as glibc's inet_aton reads it: strtoul base 0, so 0x-hex, 0-octal or decimal.
_INET_ATON_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def _parse_inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """inet_aton's rules: 1-4 parts; all but the last are one byte each, the last fills the remaining bytes."""
    parts = host.split(".")
    if len(parts) > 4 or not all(_INET_ATON_PART.fullmatch(p) for p in parts):
        return None
    numbers = [int(p, 0) if p[:2].lower() == "0x" else int(p, 8) if p.startswith("0") else int(p) for p in parts]
    *leading, last = numbers
    if any(n > 0xFF for n in leading) or last >= 1 << (8 * (4 - len(leading))):
        return None
    value = last
    for i, n in enumerate(leading):
        value |= n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def parse_host_literal(host: str) -> IPAddress | None:
    """The address if `host` is an IP literal in any spelling an HTTP client or OS resolver accepts, else None.

    IPv4 follows inet_aton (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`); IPv6 may be bracketed and carry a
    zone id, raw (`%eth0`) or URL-encoded (`%25eth0`).
    """
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    elif text.endswith(".") and ":" not in text:
        text = text[:-1]  # "127.0.0.1." is the same host for any resolver that treats it as a name
    if ":" not in text:
        return _parse_inet_aton(text)
    address, _, zone = text.partition("%")
    try:
        bare = ipaddress.IPv6Address(address)
    except ValueError:
        return None
    if zone.startswith("25") and len(zone) > 2:
        zone = zone[2:]  # RFC 6874 percent-encodes the "%" in URLs
    try:
        return ipaddress.IPv6Address(f"{address}%{zone}") if zone else bare
    except ValueError:
        return bare  # an unusable zone id does not change which address this is


def normalise_host(host: str) -> str:
    """Lower-case, brackets and trailing dot removed, IDNA-encoded: the form host names are compared in."""
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        return text[1:-1]
    if ":" in text:
        return text  # a bare IPv6 literal
    text = text.rstrip(".")
    if text.isascii():
        return text
    try:
        return idna.encode(text).decode("ascii")  # as the HTTP client encodes it
    except UnicodeError:
        return text  # not a valid name: it will fail to resolve, and the error says so


_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


@dataclass(frozen=True, slots=True)
class Destination:
    host: str
    """As in the URL: lower-cased, no brackets, no trailing dot, IDNA-encoded."""
    port: int
    addresses: tuple[IPAddress, ...]
    """The checked addresses to connect to, in resolver order."""


class CachingResolver:
    """Reuses an answer for `ttl` seconds, so a busy connector does not pay a DNS lookup per call.

    Each answer is still checked by `DestinationPolicy` on every use; caching only means a name
    cannot flip between two answers within the TTL.
    """

    def __init__(self, resolver: Resolver, *, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._resolver = resolver
        self._ttl = ttl
        self._clock = clock
        self._answers: dict[tuple[str, int], tuple[float, list[IPAddress]]] = {}

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        now = self._clock()
        cached = self._answers.get((host, port))
        if cached is not None and cached[0] > now:
            return list(cached[1])
        found = await self._resolver(host, port)
        if len(self._answers) > 1024:  # bounded: a connector reaches few hosts; redirects may add some
            self._answers.clear()
        self._answers[(host, port)] = (now + self._ttl, list(found))
        return found


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The OS resolver through anyio: unique addresses, order preserved."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    unique: dict[IPAddress, None] = {}
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            unique[ipaddress.ip_address(sockaddr[0])] = None
    return list(unique)


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str

    @property
    def safe_url(self) -> str:
        """scheme://host:port/path: never the query string or the userinfo, which may carry credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def _refuse(message: str, *, host: str, address: str | None, reason: str, url: str | None) -> BlockedDestination:
    return BlockedDestination(message, host=host, address=address, reason=reason, url=url)


def _parse_target(url: str) -> _Target:
    # The same parser as the HTTP client, so the guard judges the host the client will connect to.
    try:
        parsed = httpx2.URL(url)
    except httpx2.InvalidURL as exc:
        raise _refuse(
            f"Refused: the URL cannot be parsed ({exc})", host="", address=None, reason="invalid URL", url=None
        ) from exc
    scheme = parsed.scheme
    host = normalise_host(parsed.raw_host.decode("ascii"))
    if scheme not in _ALLOWED_SCHEMES:
        shown = f"a {scheme}:// URL" if scheme else "a relative URL"
        raise _refuse(
            f"Refused {shown}: connectors only reach http and https URLs",
            host=host,
            address=None,
            reason="scheme not allowed",
            url=None,
        )
    path = parsed.raw_path.decode("ascii").partition("?")[0] or "/"
    port = parsed.port if parsed.port is not None else _ALLOWED_SCHEMES[scheme]
    target = _Target(scheme, host, port, path)
    if not host:
        raise _refuse("Refused: the URL has no host", host="", address=None, reason="empty host", url=target.safe_url)
    if not 0 < port < 65536:
        raise _refuse(
            f"Refused {target.safe_url}: port {port} is out of range",
            host=host,
            address=None,
            reason="invalid port",
            url=target.safe_url,
        )
    return target


_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_URL_LENGTH = 65_536
"""The HTTP client refuses longer URLs; the full parse words that refusal."""


@functools.lru_cache(maxsize=512)
def _origin_target(origin: str) -> _Target:
    return _parse_target(origin)


def _target(url: str) -> _Target:
    """`_parse_target(url)`, with the scheme, host and port parsed once per distinct origin.

    They depend only on the text before the path (RFC 3986 ends the authority at the first `/`, `?` or `#`),
    and every call to a connector repeats its origin. The path is left as `/`: it only appears in messages,
    which re-parse the whole URL (`_parse_target`). A URL the client's parser would refuse for its control
    characters or its length, or with no `://`, takes the full parse.
    """
    start = url.find("://")
    if start < 0 or len(url) > _MAX_URL_LENGTH or _ASCII_CONTROL.search(url):
        return _parse_target(url)
    end = len(url)
    for stop in "/?#":
        found = url.find(stop, start + 3)
        if 0 <= found < end:
            end = found
    try:
        return _origin_target(url[:end])
    except BlockedDestination:
        return _parse_target(url)  # the same refusal, worded with the whole URL


def _unresolvable(url: str, why: str) -> UpstreamUnreachable:
    target = _parse_target(url)  # the whole URL, for the message (the origin was parsed from a cache)
    return UpstreamUnreachable(
        f"Cannot resolve host {target.host!r} for {target.safe_url}: {why}", host=target.host, url=target.safe_url
    )


class DestinationPolicy:
    """One connector's view of the guard: its base URL hosts (the connector's and its operations' own) and
    `network.allow` entries are let through."""

    def __init__(
        self,
        *,
        base_url: str,
        allow: Sequence[str] = (),
        resolver: Resolver | None = None,
        operation_base_urls: Sequence[str] = (),
    ) -> None:
        """Raises ValueError for a base URL without a host or an `allow` entry that is neither network nor name."""
        self._base_hosts: list[tuple[str, IPAddress | None]] = []
        for url in (base_url, *operation_base_urls):
            try:
                base_host = normalise_host(httpx2.URL(url).raw_host.decode("ascii"))
            except httpx2.InvalidURL as exc:
                raise ValueError(f"base URL cannot be parsed: {exc}") from exc
            if not base_host:
                raise ValueError(f"base URL has no host: {url!r}")
            self._base_hosts.append((base_host, parse_host_literal(base_host)))
        self._resolver: Resolver = resolver or system_resolver
        networks: list[IPNetwork] = []
        names: set[str] = set()
        suffixes: list[str] = []
        for entry in allow:
            network = _parse_network(entry)
            if network is not None:
                networks.append(network)
                continue
            name = normalise_host(entry.removeprefix("*."))
            if not _HOST_NAME.fullmatch(name):
                raise ValueError(f"network.allow entry is neither a network, an address nor a host name: {entry!r}")
            if entry.startswith("*."):
                suffixes.append("." + name)
            else:
                names.add(name)
        self._networks = tuple(networks)
        self._names = frozenset(names)
        self._suffixes = tuple(suffixes)

    def _is_base_host(self, host: str, literal: IPAddress | None) -> bool:
        for base_host, base_address in self._base_hosts:
            if literal is not None or base_address is not None:
                if literal == base_address:
                    return True
            elif host == base_host:
                return True
        return False

    def _name_allowed(self, host: str) -> bool:
        return host in self._names or host.endswith(self._suffixes)

    def _address_allowed(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (inner := embedded_ipv4(ip)) is not None:
            candidates.append(inner)
        return any(c in net for c in candidates for net in self._networks)

    async def check(self, url: str) -> Destination:
        """The addresses `url` may connect to; BlockedDestination if any is refused, UpstreamUnreachable if
        the host does not resolve."""
        target = _target(url)
        literal = parse_host_literal(target.host)
        addresses = (literal,) if literal is not None else await self._resolve(target, url)
        if self._is_base_host(target.host, literal):
            return Destination(target.host, target.port, addresses)
        name_allowed = literal is None and self._name_allowed(target.host)
        for ip in addresses:
            reason = blocked_reason(ip)
            if reason is None or self._address_allowed(ip):
                continue
            if name_allowed and reason != CLOUD_METADATA:
                continue
            raise self._blocked(_parse_target(url), literal is None, ip, reason)
        return Destination(target.host, target.port, addresses)

    async def _resolve(self, origin: _Target, url: str) -> tuple[IPAddress, ...]:
        try:
            found = await self._resolver(origin.host, origin.port)
        except (OSError, UnicodeError) as exc:
            raise _unresolvable(url, str(exc)) from exc
        if not found:
            raise _unresolvable(url, "no addresses")
        return tuple(dict.fromkeys(found))

    @staticmethod
    def _blocked(target: _Target, is_name: bool, ip: IPAddress, reason: str) -> BlockedDestination:
        inner = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
        shown = f"{ip} (which embeds {inner})" if inner is not None else str(ip)
        if is_name:
            where = f"{target.host} resolves to {shown}, which is"
        elif target.host != str(ip):
            where = f"{target.host} is the address {shown}, which is"  # an odd spelling: say what it means
        else:
            where = f"{shown} is"
        if reason == CLOUD_METADATA:
            remedy = (
                "Metadata endpoints hand out the instance's credentials; if this connector really needs one, "
                f'list the address itself in its manifest: network: {{allow: ["{inner or ip}"]}}.'
            )
        else:
            entries = f'"{target.host}" or "{inner or ip}"' if is_name else f'"{inner or ip}"'
            remedy = (
                f"If this destination is intended, add {entries} to the connector manifest's network: {{allow: [...]}}."
            )
        return _refuse(
            f"Refused {target.safe_url}: {where} blocked ({reason}). {remedy}",
            host=target.host,
            address=str(ip),
            reason=reason,
            url=target.safe_url,
        )


def _parse_network(entry: str) -> IPNetwork | None:
    """A CIDR or a single address (any spelling parse_host_literal knows); None for anything else."""
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        pass
    address = parse_host_literal(entry)
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv4Network((int(address), 32))
    if isinstance(address, ipaddress.IPv6Address):
        return ipaddress.IPv6Network((int(address), 128))
    return None
