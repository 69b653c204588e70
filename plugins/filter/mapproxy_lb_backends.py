# Copyright: p2d2 maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The MapProxy hosts behind a balancer: name, address and port of each, and the invalid entries."""

from __future__ import annotations

import re

DOCUMENTATION = r"""
name: mapproxy_lb_backends
short_description: The MapProxy hosts behind a balancer, with the address and port of each
description:
  - Reads one entry per MapProxy host and returns the server lines of a balancer (the role
    p2d2.mapproxy.mapproxy_lb), each with a name, the address to connect to, and the port.
  - The port is that of the host's first public bind (C(listen), its C(mapproxy_nginx_listen)) unless
    the entry gives C(port). The address is the entry's C(address), else the address of that bind when
    it names one (not a wildcard or loopback), else C(host) (its C(ansible_host) or inventory name).
  - Bad entries are not raised as errors but returned under C(invalid), each naming the host and what
    is wrong, so that a role's preflight can fail naming them all before anything changes.
options:
  _input:
    description:
      - One mapping per host, with C(name), and C(port) or C(listen); C(address) or C(host) give the
        address. C(local) true says that the balancer runs on that host, so that a loopback address
        (C(127.0.0.1), C(::1), C(localhost)) reaches it; for other hosts it is refused.
    type: list
    elements: dict
    required: true
author: p2d2 maintainers
"""

EXAMPLES = r"""
servers: "{{ [{'name': 'mp1', 'host': '10.0.0.11', 'listen': ['0.0.0.0:8080']}] | p2d2.mapproxy.mapproxy_lb_backends }}"
# {"backends": [{"name": "mp1", "address": "10.0.0.11", "port": 8080}], "invalid": []}
"""

RETURN = r"""
_value:
  description: The backends, and one message per invalid entry.
  type: dict
  contains:
    backends:
      description: C(name) (characters HAProxy takes in a server name), C(address) and C(port), in input order.
      type: list
      elements: dict
    invalid:
      description: One message per invalid entry, naming the host and what to set.
      type: list
      elements: str
"""

_BIND = re.compile(r'^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>[0-9]{1,5})$')
_ADDRESS = re.compile(r'^(?:[A-Za-z0-9._-]+|\[?[0-9A-Fa-f:.]+\]?)$')
_NOT_AN_ADDRESS = {'0.0.0.0', '::', '127.0.0.1', '::1', 'localhost'}
_LOOPBACK = {'127.0.0.1', '::1', 'localhost'}


def _port(value):
    try:
        port = int(str(value))
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


def mapproxy_lb_backends(entries):
    backends, invalid, names = [], [], set()
    for entry in entries or []:
        if not isinstance(entry, dict) or not str(entry.get('name') or '').strip():
            invalid.append('%r: give a mapping with name, and port or listen' % (entry,))
            continue
        name = str(entry['name']).strip()
        label = 'MapProxy host %s' % name
        bind_host, port = None, None
        if entry.get('port') not in (None, ''):
            port = _port(entry['port'])
            if port is None:
                invalid.append('%s: port %r is not a TCP port (1-65535)' % (label, entry['port']))
                continue
        else:
            listen = entry.get('listen')
            first = listen[0] if isinstance(listen, list) and listen else None
            match = _BIND.match(first) if isinstance(first, str) else None
            if match is None or _port(match.group('port')) is None:
                invalid.append('%s: its mapproxy_nginx_listen is %r; give a list of HOST:PORT, or a port of its own'
                               % (label, listen))
                continue
            port = _port(match.group('port'))
            bind_host = match.group('v6') or match.group('host')
        address = str(entry.get('address') or '').strip()
        if not address and bind_host and bind_host not in _NOT_AN_ADDRESS:
            address = bind_host
        if not address:
            address = str(entry.get('host') or name).strip()
        if entry.get('local') and address in _LOOPBACK:
            pass  # the balancer runs on this host: its loopback is the host's
        elif address in _NOT_AN_ADDRESS or not _ADDRESS.match(address):
            invalid.append('%s: %r is not an address the balancer can reach; set its mapproxy_lb_backend_address'
                           % (label, address))
            continue
        if ':' in address and not address.startswith('['):
            address = '[%s]' % address
        server = re.sub(r'[^A-Za-z0-9_.:-]', '_', name)
        if server in names:
            invalid.append('%s: a second host with the server name %s' % (label, server))
            continue
        names.add(server)
        backends.append({'name': server, 'address': address, 'port': port})
    return {'backends': backends, 'invalid': invalid}


class FilterModule:
    def filters(self):
        return {'mapproxy_lb_backends': mapproxy_lb_backends}
