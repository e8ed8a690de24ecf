"""Refuse webhook targets that point into private networks (server-side request forgery).

A subscriber chooses the URL we POST to, so without this check anyone allowed to create a
subscription could make the worker call cloud metadata services, databases' HTTP ports or admin
consoles on the internal network. The check runs before each send batch, not only when the
subscription is saved, because what a name resolves to can change at any time. It narrows but
cannot close the window between our resolution and the HTTP client's own (DNS rebinding); closing
it needs the connection pinned to the checked address, which the transport does not offer.

The URL is parsed with httpx, the same parser the sending client uses, so the host checked is the
host connected to.
"""

import asyncio
import ipaddress
import socket

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT = 10.0
ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052


class UnsafeTarget(ValueError):
    """A webhook URL we will not send to; the message says why."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped, 6to4 or NAT64."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether `address` is globally routable; IPv6 forms of IPv4 addresses are judged by the
    IPv4 address they carry, so `::ffff:127.0.0.1` counts as loopback."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED_ADDRESS_SPACE:
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
    )


async def _resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise UnsafeTarget(f"cannot resolve {host}: {str(exc) or 'timed out'}") from exc
    addresses = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        addresses.append(ipaddress.ip_address(sockaddr[0]))
    if not addresses:
        raise UnsafeTarget(f"cannot resolve {host}: no addresses")
    return addresses


async def check_target(url: str, allow_private: bool) -> None:
    """Raise UnsafeTarget unless `url` is http(s) with a host whose every address is public.

    `allow_private` (for development and for deployments whose subscribers live on the same
    network) skips the address check; the URL must still be well formed and resolvable.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeTarget(f"not a valid URL: {exc}") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise UnsafeTarget(f"scheme must be http or https, not {parsed.scheme or 'missing'!r}")
    if not parsed.raw_host:
        raise UnsafeTarget("the URL has no host")
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    addresses = await _resolve(host, port)
    if allow_private:
        return
    for address in addresses:
        if not is_public(address):
            raise UnsafeTarget(f"{host} resolves to {address}, which is not a public address")
