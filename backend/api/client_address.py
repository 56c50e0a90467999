"""Which address a request comes from, for rate limits: the peer, or what trusted proxies say.

``X-Forwarded-For`` is believed only from a peer named in ``CREDITDESK_TRUSTED_PROXIES`` (none by
default, so the bundled backend believes no one), and only hop by hop from the right, each proxy
vouching for the one before it: the first hop that is not a trusted proxy is the client. A hop that
is not a bare IP address ends the walk at the last address that was vouched for, so a made-up value
can never become an address of its own.

An IPv6 client is counted by its /64: one host is given a whole /64 and can take any address in it, so
counting single addresses would let it make as many fresh ones as it likes. (IPv4 addresses, IPv4 in IPv6
clothes and the loopback address are counted as they are; so is the IPv4 address inside a NAT64 or Teredo
address, whose /64 many clients share.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


def _parse(text: str) -> Address | None:
    try:
        address = ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> str:
    """The client's address; ``forwarded_for`` holds every ``X-Forwarded-For`` header value, in order."""
    address = _parse(peer or "")
    if address is None:
        return peer or "unknown"
    if not trusted:
        return _counted(address)
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        if not any(address in network for network in trusted):
            break  # `address` did not come through a proxy we trust: it is the client
        vouched = _parse(hop)
        if vouched is None:
            break
        address = vouched
    return _counted(address)


# NAT64's well-known prefix (RFC 6052): IPv4 clients reaching an IPv6 server through a translator.
NAT64 = IPv6Network("64:ff9b::/96")


def _counted(address: Address) -> str:
    if isinstance(address, IPv6Address) and not address.is_loopback:
        # An IPv4 client in an IPv6 address of a translator or tunnel shared by many: counted by its IPv4
        # address, not by a /64 that every client of that translator is in.
        if address in NAT64:
            return str(IPv4Address(int(address) & 0xFFFFFFFF))
        if address.teredo is not None:
            return str(address.teredo[1])
        return str(IPv6Network((address, 64), strict=False))
    return str(address)
