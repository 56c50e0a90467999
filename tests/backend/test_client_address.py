"""Which address a request is counted against: X-Forwarded-For only from trusted proxies, only IP addresses."""

from __future__ import annotations

import pytest

from backend.api.client_address import client_address
from backend.config import ConfigError, parse_networks

PROXIES = parse_networks("CREDITDESK_TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16 ::1")


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "expected"), [
    ("127.0.0.1", ["203.0.113.9"], (), "127.0.0.1"),  # no trusted proxy: the header means nothing
    ("203.0.113.9", ["1.2.3.4"], PROXIES, "203.0.113.9"),  # not from a proxy: ignored
    ("10.0.0.1", ["203.0.113.9"], PROXIES, "203.0.113.9"),  # from the proxy: its client
    ("10.0.0.1", [], PROXIES, "10.0.0.1"),  # the proxy itself
    ("10.0.0.1", ["6.6.6.6, 203.0.113.9"], PROXIES, "203.0.113.9"),  # the client's own claim is not believed
    ("10.0.0.1", ["6.6.6.6, 203.0.113.9, 192.168.4.4"], PROXIES, "203.0.113.9"),  # two proxies in a row
    ("10.0.0.1", ["6.6.6.6", "203.0.113.9"], PROXIES, "203.0.113.9"),  # the header given twice
    ("10.0.0.1", ["evil"], PROXIES, "10.0.0.1"),  # not an IP address: not an address
    ("10.0.0.1", ["6.6.6.6, unknown"], PROXIES, "10.0.0.1"),
    ("10.0.0.1", ["203.0.113.9:4711"], PROXIES, "10.0.0.1"),
    ("10.0.0.1", [" 2001:db8::1 "], PROXIES, "2001:db8::/64"),  # IPv6: its /64, which one host may hold whole
    ("10.0.0.1", ["2001:db8::1:2:3:4"], PROXIES, "2001:db8::/64"),
    ("2001:db8:0:7:a::1", [], (), "2001:db8:0:7::/64"),
    ("::1", [], (), "::1"),  # loopback as it is
    ("::ffff:203.0.113.9", [], (), "203.0.113.9"),  # IPv4-mapped: its IPv4 address, as it is
    ("203.0.113.9", [], (), "203.0.113.9"),
    ("fe80::1:2%eth0", [], (), "fe80::/64"),  # link-local with its zone
    ("64:ff9b::203.0.113.9", [], (), "203.0.113.9"),  # through NAT64: each IPv4 client on its own
    ("64:ff9b::198.51.100.7", [], (), "198.51.100.7"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", [], (), "192.0.2.45"),  # Teredo (RFC 4380's example): its client
    ("::1", ["::ffff:203.0.113.9"], PROXIES, "203.0.113.9"),  # an IPv4 address in IPv6 clothes
    ("::ffff:10.0.0.1", ["203.0.113.9"], PROXIES, "203.0.113.9"),
    ("10.0.0.1", ["192.168.1.1"], PROXIES, "192.168.1.1"),  # only proxies all the way: the first one
    (None, ["203.0.113.9"], PROXIES, "unknown"),
])
def test_client_address(peer: str | None, forwarded: list[str], trusted: tuple, expected: str) -> None:
    assert client_address(peer, forwarded, trusted) == expected


def test_a_bad_proxy_setting_names_the_entry() -> None:
    with pytest.raises(ConfigError, match=r"'10\.0\.0\.300'"):
        parse_networks("CREDITDESK_TRUSTED_PROXIES", "10.0.0.1, 10.0.0.300")
