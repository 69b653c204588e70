# Copyright: p2d2 maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sort firewall allow-list entries into IPv4 and IPv6 networks, and name the invalid ones."""

from __future__ import annotations

import ipaddress

DOCUMENTATION = r"""
name: mapproxy_firewall_networks
short_description: Sort addresses and networks into IPv4 and IPv6, and name the invalid entries
description:
  - Reads a list of IPv4 and IPv6 addresses and networks in CIDR notation (C(192.0.2.1), C(192.0.2.0/24),
    C(2001:db8::/32)) and returns them normalised and sorted by family, for an nftables ruleset.
  - Entries that are not an address or a network, and networks with host bits set (C(192.0.2.1/24)),
    are not raised as errors but returned under C(invalid), each with the reason, so that a role's
    preflight can fail naming its variable and every bad entry before anything changes.
  - Uses Python's C(ipaddress) only; no C(netaddr) is needed on the controller.
options:
  _input:
    description: The entries, addresses or networks.
    type: list
    elements: str
    required: true
author: p2d2 maintainers
"""

EXAMPLES = r"""
allowed: "{{ ['192.0.2.1', '2001:db8::/64', '10.0.0.1/8'] | p2d2.mapproxy.mapproxy_firewall_networks }}"
# {"ipv4": ["192.0.2.1"], "ipv6": ["2001:db8::/64"],
#  "invalid": ["'10.0.0.1/8': has host bits set (the network is 10.0.0.0/8)"]}
"""

RETURN = r"""
_value:
  description: The entries by family, and the invalid ones with the reason.
  type: dict
  contains:
    ipv4:
      description: IPv4 addresses (without C(/32)) and networks, normalised, without duplicates, in input order.
      type: list
      elements: str
    ipv6:
      description: IPv6 addresses (without C(/128)) and networks, normalised, without duplicates, in input order.
      type: list
      elements: str
    invalid:
      description: One message per invalid entry, naming it and saying why.
      type: list
      elements: str
"""


def _network(entry):
    """The normalised network of one entry, or a ValueError saying why it is none."""
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError("is not an address or a network in CIDR notation")
    text = entry.strip()
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError("is not an IPv4 or IPv6 address or a network in CIDR notation") from None
    raise ValueError(f"has host bits set (the network is {loose})")


def mapproxy_firewall_networks(entries):
    result = {"ipv4": [], "ipv6": [], "invalid": []}
    if isinstance(entries, (str, bytes)) or not isinstance(entries, (list, tuple)):
        result["invalid"].append(f"{entries!r}: is not a list of addresses or networks")
        return result
    for entry in entries:
        try:
            net = _network(entry)
        except ValueError as exc:
            result["invalid"].append(f"{entry!r}: {exc}")
            continue
        text = str(net.network_address) if net.num_addresses == 1 else str(net)
        family = "ipv4" if net.version == 4 else "ipv6"
        if text not in result[family]:
            result[family].append(text)
    return result


class FilterModule:
    def filters(self):
        return {"mapproxy_firewall_networks": mapproxy_firewall_networks}
