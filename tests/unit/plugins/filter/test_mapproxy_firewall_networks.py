# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The allow-list filter of the firewall role."""

from __future__ import annotations

import pytest

from ansible_collections.p2d2.mapproxy.plugins.filter.mapproxy_firewall_networks import mapproxy_firewall_networks


def test_sorts_and_normalises_by_family():
    result = mapproxy_firewall_networks(
        ["192.0.2.1", "198.51.100.0/24", "2001:DB8::1", "2001:db8:0::/32", " 192.0.2.1 ", "203.0.113.7/32", "::/0", "0.0.0.0/0"])
    assert result == {
        "ipv4": ["192.0.2.1", "198.51.100.0/24", "203.0.113.7", "0.0.0.0/0"],
        "ipv6": ["2001:db8::1", "2001:db8::/32", "::/0"],
        "invalid": [],
    }


@pytest.mark.parametrize("entry, reason", [
    ("192.0.2.300", "'192.0.2.300': is not an IPv4 or IPv6 address"),
    ("10.0.0.1/8", "'10.0.0.1/8': has host bits set (the network is 10.0.0.0/8)"),
    ("2001:db8::1/64", "'2001:db8::1/64': has host bits set (the network is 2001:db8::/64)"),
    ("proxy.lan", "'proxy.lan': is not an IPv4 or IPv6 address"),
    ("192.0.2.0/33", "'192.0.2.0/33': is not an IPv4 or IPv6 address"),
    ("", "'': is not an address or a network"),
    (None, "None: is not an address or a network"),
])
def test_names_each_invalid_entry(entry, reason):
    result = mapproxy_firewall_networks(["192.0.2.1", entry])
    assert result["ipv4"] == ["192.0.2.1"]
    assert len(result["invalid"]) == 1
    assert result["invalid"][0].startswith(reason), result["invalid"]


def test_a_string_is_not_a_list():
    assert mapproxy_firewall_networks("192.0.2.1")["invalid"] == ["'192.0.2.1': is not a list of addresses or networks"]


def test_empty():
    assert mapproxy_firewall_networks([]) == {"ipv4": [], "ipv6": [], "invalid": []}
