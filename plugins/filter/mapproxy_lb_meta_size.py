# Copyright: p2d2 maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tile groups a balancer keeps on one host: every meta tile of every cache inside one."""

from __future__ import annotations

from math import gcd

DOCUMENTATION = r"""
name: mapproxy_lb_meta_size
short_description: The smallest tile group that holds every meta tile of every cache
description:
  - Reads the results of p2d2.mapproxy.mapproxy_config_info of one or more MapProxy hosts and returns
    [width, height] in tiles, the least common multiple of the C(meta_size) of all their caches.
  - MapProxy aligns meta tiles at tile 0 of each level, so a group of this size, aligned the same way,
    holds whole meta tiles of every cache; a balancer that sends all tiles of a group to one host keeps
    each meta tile on one host (p2d2.mapproxy.mapproxy_lb).
  - V([1, 1]) when no cache reports a meta size.
options:
  _input:
    description: Results of p2d2.mapproxy.mapproxy_config_info (their C(caches)).
    type: list
    elements: dict
    required: true
author: p2d2 maintainers
"""

EXAMPLES = r"""
group: "{{ __config_infos.results | p2d2.mapproxy.mapproxy_lb_meta_size }}"
# caches with meta_size [4, 4] and [2, 6]: [4, 12]
"""

RETURN = r"""
_value:
  description: Width and height of the group, in tiles.
  type: list
  elements: int
"""


def _lcm(a, b):
    return a * b // gcd(a, b)


def mapproxy_lb_meta_size(results):
    width, height = 1, 1
    for result in results or []:
        for cache in ((result or {}).get('caches') or {}).values():
            size = (cache or {}).get('meta_size')
            if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
                width, height = _lcm(width, size[0]), _lcm(height, size[1])
    return [width, height]


class FilterModule:
    def filters(self):
        return {'mapproxy_lb_meta_size': mapproxy_lb_meta_size}
