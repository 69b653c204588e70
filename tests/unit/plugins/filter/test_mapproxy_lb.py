# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The balancer role's filters: its backends, and the tile groups it keeps on one host."""

from __future__ import annotations

from ansible_collections.p2d2.mapproxy.plugins.filter.mapproxy_lb_backends import mapproxy_lb_backends
from ansible_collections.p2d2.mapproxy.plugins.filter.mapproxy_lb_meta_size import mapproxy_lb_meta_size


def test_port_of_the_first_public_bind_and_the_inventory_address():
    result = mapproxy_lb_backends([
        {'name': 'mp1', 'host': 'mp1.lan', 'listen': ['0.0.0.0:8080', '[::]:8080']},
        {'name': 'mp2', 'host': 'mp2.lan', 'listen': ['10.0.0.12:8081']},
        {'name': 'mp3', 'host': '10.0.0.13', 'listen': ['127.0.0.1:8080'], 'address': '192.0.2.13'},
        {'name': 'mp 4', 'address': '2001:db8::4', 'port': '80'},
        # A container's name, as Docker's DNS resolves it.
        {'name': 'p2d2_mp5', 'listen': ['[::]:8080']},
    ])
    assert result == {'invalid': [], 'backends': [
        {'name': 'mp1', 'address': 'mp1.lan', 'port': 8080},
        # A bind to one address is where the host answers.
        {'name': 'mp2', 'address': '10.0.0.12', 'port': 8081},
        {'name': 'mp3', 'address': '192.0.2.13', 'port': 8080},
        {'name': 'mp_4', 'address': '[2001:db8::4]', 'port': 80},
        {'name': 'p2d2_mp5', 'address': 'p2d2_mp5', 'port': 8080},
    ]}


def test_bad_entries_name_the_host_and_what_to_set():
    result = mapproxy_lb_backends([
        {'name': 'loop', 'listen': ['127.0.0.1:8080'], 'host': 'localhost'},
        {'name': 'noport', 'listen': 'x'},
        {'name': 'bigport', 'port': 70000},
        {'name': 'ok', 'port': 8080},
        {'name': 'ok', 'port': 8081},
        'mp9',
    ])
    assert result['backends'] == [{'name': 'ok', 'address': 'ok', 'port': 8080}]
    assert result['invalid'] == [
        "MapProxy host loop: 'localhost' is not an address the balancer can reach; set its mapproxy_lb_backend_address",
        "MapProxy host noport: its mapproxy_nginx_listen is 'x'; give a list of HOST:PORT, or a port of its own",
        "MapProxy host bigport: port 70000 is not a TCP port (1-65535)",
        "MapProxy host ok: a second host with the server name ok",
        "'mp9': give a mapping with name, and port or listen",
    ]


def test_loopback_reaches_only_the_host_the_balancer_runs_on():
    result = mapproxy_lb_backends([
        {'name': 'self', 'listen': ['127.0.0.1:18880'], 'address': '127.0.0.1', 'host': 'self', 'local': True},
        {'name': 'other', 'listen': ['127.0.0.1:8080'], 'address': '127.0.0.1', 'host': 'other', 'local': False},
        {'name': 'wild', 'listen': ['0.0.0.0:8080'], 'address': '0.0.0.0', 'host': 'wild', 'local': True},
    ])
    assert result['backends'] == [{'name': 'self', 'address': '127.0.0.1', 'port': 18880}]
    assert result['invalid'] == [
        "MapProxy host other: '127.0.0.1' is not an address the balancer can reach; set its mapproxy_lb_backend_address",
        "MapProxy host wild: '0.0.0.0' is not an address the balancer can reach; set its mapproxy_lb_backend_address",
    ]


def test_meta_size_holds_every_cache_s_meta_tile():
    assert mapproxy_lb_meta_size([{'caches': {'a': {'meta_size': [4, 4]}}}]) == [4, 4]
    assert mapproxy_lb_meta_size([
        {'caches': {'a': {'meta_size': [4, 4]}, 'b': {'meta_size': [2, 6]}}},
        {'caches': {'c': {'meta_size': [8, 1]}, 'bad': {'meta_size': None}}},
    ]) == [8, 12]
    assert mapproxy_lb_meta_size([{'caches': {}}, {}]) == [1, 1]
