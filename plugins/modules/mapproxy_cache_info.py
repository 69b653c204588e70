#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mapproxy_cache_info
short_description: Count the tiles and bytes of MapProxy caches, on disk and in S3 or Redis
version_added: 0.1.0
description:
  - Reports, per cache and grid, how many tiles and bytes MapProxy has stored on each
    level and the oldest and newest tile; for a file cache also the free and total space of
    the file system that holds it.
  - Caches of type C(s3) and C(redis) are read in their store with MapProxy's client for it
    and the credentials of O(store_env_file), with an S3 object listing under the cache's key
    prefix (one request per 1000 tiles) and a Redis C(SCAN) of the cache's prefix with each
    key's size and TTL (one pipeline per 1000 keys). A store that does not answer within
    seconds fails the module, naming the cache and the store.
  - MapProxy has no command for this (C(mapproxy-util cache-stats) does not exist). The module
    reads the cache folders, folder layouts and grids from the configuration with the
    MapProxy of the venv, then walks the folders itself.
  - Understands the folder layouts C(tc), C(mp), C(tms), C(reverse_tms), C(quadkey) and
    C(arcgis), in folders and in S3 keys. Without C(cache.directory), MapProxy keeps the tiles of a cache in
    C(BASE_DIR/CACHE_EPSGCODE) (named after the grid's SRS), or in
    C(BASE_DIR/CACHE/GRID) with C(use_grid_names).
  - Files that are not tiles of the layout are not counted, for example MapProxy's
    C(tile_locks) and C(single_color_tiles) folders and temporary files of tiles being written.
author:
  - p2d2 maintainers (@p2d2)
extends_documentation_fragment:
  - p2d2.mapproxy.mapproxy
  - p2d2.mapproxy.mapproxy.config
attributes:
  check_mode:
    support: full
    details: The module never changes anything.
  diff_mode:
    support: none
options:
  caches:
    description:
      - Names of the caches to report on, of type C(file), C(s3) or C(redis).
      - By default all caches of those types that store tiles; other caches are listed in RV(skipped_caches).
    type: list
    elements: str
    default: []
notes:
  - Reading needs permission to list the cache folders; run as root or as MapProxy's user.
  - The walk uses one C(lstat) per tile and no subprocess per file; on a test machine it took
    about 0.4 seconds for 100,000 tiles.
  - A tile that MapProxy stored as a link to a single-colour tile (C(link_single_color_images))
    counts with the size of the link.
  - S3 keeps no access time, and Redis no write time. The oldest and newest of an C(s3) cache are
    the objects' C(LastModified); those of a C(redis) cache are worked out from each key's TTL and the
    cache's C(default_ttl) (null with C(default_ttl=0)). MapProxy's own reading of a Redis tile's
    time takes the key's remaining TTL as time passed, which is why its C(remove_before) removes fresh tiles.
seealso:
  - module: p2d2.mapproxy.mapproxy_cache_clean
  - module: p2d2.mapproxy.mapproxy_seed
"""

EXAMPLES = r"""
- name: Count the tiles of all caches, on disk and in their stores
  p2d2.mapproxy.mapproxy_cache_info:
  register: __mapproxy_cache

- name: Show tiles and size of the OSM cache
  ansible.builtin.debug:
    msg: >-
      {{ __mapproxy_cache.caches.osm_cache.tiles }} tiles,
      {{ __mapproxy_cache.caches.osm_cache.bytes | human_readable }}

- name: Warn when the cache file system is nearly full
  ansible.builtin.assert:
    that: >-
      __mapproxy_cache.caches.osm_cache.grids.webmercator.filesystem.free_bytes
      > 2 * 1024 ** 3
    fail_msg: Less than 2 GiB left for the OSM cache

- name: Count the tiles of one cache with another venv and configuration
  p2d2.mapproxy.mapproxy_cache_info:
    config: /srv/mapproxy/mapproxy.yaml
    caches:
      - geoserver_cache
    venv: /srv/mapproxy/venv
"""

RETURN = r"""
caches:
  description: Per cache, the counts of all its grids and the details per grid.
  returned: always
  type: dict
  sample:
    osm_cache:
      type: file
      directory_layout: tms
      tiles: 87381
      bytes: 1203441152
      disk_bytes: 1431560192
      oldest: "2026-10-01T02:00:13+00:00"
      newest: "2026-11-24T05:31:54+00:00"
      grids:
        webmercator:
          directory: /cache/osm
          exists: true
          shared_with: []
          tiles: 87381
          bytes: 1203441152
          disk_bytes: 1431560192
          oldest: "2026-10-01T02:00:13+00:00"
          newest: "2026-11-24T05:31:54+00:00"
          levels:
            - {level: 0, tiles: 1, bytes: 14567, oldest: "2026-10-01T02:00:13+00:00", newest: "2026-10-01T02:00:13+00:00"}
          filesystem: {free_bytes: 20401094656, total_bytes: 40802189312}
    hot_tiles:
      type: redis
      directory_layout: null
      tiles: 21
      bytes: 310233
      oldest: "2026-11-24T05:01:12+00:00"
      newest: "2026-11-24T05:31:54+00:00"
      grids:
        webmercator:
          store: "redis://redis.lan:6379/3"
          key_prefix: hot-
          shared_with: []
          other_keys: 0
          tiles: 21
          bytes: 310233
          oldest: "2026-11-24T05:01:12+00:00"
          newest: "2026-11-24T05:31:54+00:00"
          levels:
            - {level: 5, tiles: 21, bytes: 310233, oldest: "2026-11-24T05:01:12+00:00", newest: "2026-11-24T05:31:54+00:00"}
  contains:
    type:
      description: The cache's type, C(file), C(s3) or C(redis).
      type: str
    directory_layout:
      description: Folder layout of the cache.
      type: str
    tiles:
      description: Number of tiles of all grids.
      type: int
    bytes:
      description: Sum of the tile file sizes of all grids.
      type: int
    disk_bytes:
      description:
        - Disk space the tile files take (allocated blocks), usually much more than RV(caches.bytes) for small tiles.
        - File caches only.
      type: int
    oldest:
      description: Modification time of the oldest tile (ISO 8601, UTC), V(null) without tiles.
      type: str
    newest:
      description: Modification time of the newest tile (ISO 8601, UTC), V(null) without tiles.
      type: str
    grids:
      description:
        - Per grid of the cache, the same counts, the folder and the tiles per level.
        - C(directory) is the folder, C(exists) whether it exists, C(shared_with) other grids of
          the cache in the same folder (MapProxy names folders after the SRS, so two grids in
          one SRS share a folder and their tiles are counted once for the cache),
          C(levels) a list of C({level, tiles, bytes, oldest, newest}) sorted by level (only
          levels with tiles), C(filesystem) the C(free_bytes) (available to unprivileged users)
          and C(total_bytes) of the file system that holds the folder.
        - For an C(s3) or C(redis) cache, C(store) in place of C(directory) (the bucket and endpoint,
          or the Redis server and db; never a credential), C(key_prefix) the prefix of its tiles'
          keys, C(other_keys) how many keys under that prefix are not tiles of the layout, and
          C(shared_with) the grids with the same prefix; no C(exists), C(disk_bytes) or C(filesystem).
      type: dict
total_tiles:
  description: Number of tiles in all reported caches.
  returned: always
  type: int
  sample: 87381
total_bytes:
  description: Sum of the tile file sizes of all reported caches.
  returned: always
  type: int
  sample: 1203441152
skipped_caches:
  description: Caches left out because their type is not C(file), C(s3) or C(redis), or they store no tiles, with the reason.
  returned: always
  type: dict
  sample: {geoserver_mbtiles: "type mbtiles"}
scan_seconds:
  description: Time the walk through the folders and the reads of the stores took, with loading the configuration.
  returned: always
  type: float
  sample: 0.42
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.p2d2.mapproxy.plugins.module_utils.mapproxy import (
    DEFAULT_CONFIG,
    MapProxyVenv,
    STORE_TYPES,
    grid_directories,
    iso_time,
    load_config,
    select_caches,
    select_grids,
    venv_options,
)
from ansible_collections.p2d2.mapproxy.plugins.module_utils.mapproxy_tiles import (
    LevelStats,
    collect_stats,
    filesystem_usage,
)


def _summary(stats):
    return dict(tiles=stats.tiles, bytes=stats.bytes, disk_bytes=stats.disk_bytes,
                oldest=iso_time(stats.oldest), newest=iso_time(stats.newest))


def _store_cache(module, cache_name, info):
    """The entry of an s3 or redis cache from what the probe read in its store. Grids
    whose tiles share one key prefix are counted once."""
    cache = info['caches'][cache_name]
    grids = (info.get('store_stats') or {}).get(cache_name) or {}
    entry = {'type': cache['type'], 'directory_layout': cache['directory_layout'] or ('tms' if cache['type'] == 's3' else None),
             'grids': {}}
    by_prefix = {}
    for grid in sorted(grids):
        by_prefix.setdefault((grids[grid]['store'], grids[grid]['key_prefix']), []).append(grid)
    cache_total = LevelStats()
    for (store, key_prefix), prefix_grids in sorted(by_prefix.items()):
        answer = grids[prefix_grids[0]]
        prefix_total = LevelStats()
        levels = []
        for level, (tiles, size, oldest, newest) in sorted(answer['levels'].items(), key=lambda item: int(item[0])):
            stats = LevelStats()
            stats.tiles, stats.bytes, stats.oldest, stats.newest = tiles, size, oldest, newest
            prefix_total.merge(stats)
            level_entry = dict(level=int(level))
            level_entry.update(_summary(stats))
            del level_entry['disk_bytes']
            levels.append(level_entry)
        cache_total.merge(prefix_total)
        for grid in prefix_grids:
            grid_entry = dict(store=store, key_prefix=key_prefix, shared_with=[g for g in prefix_grids if g != grid],
                              levels=levels, other_keys=answer['other_keys'])
            grid_entry.update(_summary(prefix_total))
            del grid_entry['disk_bytes']
            entry['grids'][grid] = grid_entry
        if len(prefix_grids) > 1:
            module.warn('Grids %s of cache %s share the key prefix %s in %s: their tiles are counted once.'
                        % (', '.join(prefix_grids), cache_name, key_prefix, store))
    entry.update(_summary(cache_total))
    del entry['disk_bytes']
    return entry


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type='path', default=DEFAULT_CONFIG),
            caches=dict(type='list', elements='str', default=[]),
            **venv_options(),
        ),
        supports_check_mode=True,
    )
    params = module.params
    venv = MapProxyVenv(module, params['venv'])
    start = time.monotonic()
    info = load_config(module, venv, params['config'], store_stats=params['caches'] or True)
    names = select_caches(module, info, params['caches'], types=('file',) + STORE_TYPES)
    skipped = {}
    if not params['caches']:
        for name, cache in sorted(info['caches'].items()):
            if name in names:
                continue
            skipped[name] = 'disable_storage' if cache['disable_storage'] else 'type %s' % cache['type']
    store_names = [name for name in names if info['caches'][name]['type'] in STORE_TYPES]
    cache_grids = select_grids(module, info, [name for name in names if name not in store_names], [])

    result_caches = {}
    total = LevelStats()
    for cache_name in store_names:
        entry = _store_cache(module, cache_name, info)
        total.tiles += entry['tiles']
        total.bytes += entry['bytes']
        result_caches[cache_name] = entry
    for cache_name, dir_grids, directory, layout in grid_directories(module, info, cache_grids,
                                                                     require_complete=False):
        levels = collect_stats(directory, layout)
        dir_total = LevelStats()
        level_list = []
        for level in sorted(levels):
            dir_total.merge(levels[level])
            entry = dict(level=level)
            entry.update(_summary(levels[level]))
            del entry['disk_bytes']
            level_list.append(entry)
        free, size = filesystem_usage(directory)
        cache_entry = result_caches.setdefault(cache_name, {
            'type': 'file', 'directory_layout': layout, '_stats': LevelStats(), 'grids': {}})
        cache_entry['_stats'].merge(dir_total)
        total.merge(dir_total)
        for grid in dir_grids:
            grid_entry = dict(directory=directory, exists=os.path.isdir(directory),
                              shared_with=[g for g in dir_grids if g != grid], levels=level_list,
                              filesystem=dict(free_bytes=free, total_bytes=size))
            grid_entry.update(_summary(dir_total))
            cache_entry['grids'][grid] = grid_entry
        if len(dir_grids) > 1:
            module.warn('Grids %s of cache %s share the folder %s (MapProxy names it after the SRS): '
                        'their tiles are counted once.' % (', '.join(dir_grids), cache_name, directory))
    for cache_name in names:
        if cache_name in store_names:
            continue
        entry = result_caches.setdefault(cache_name, {'type': 'file',
                                                      'directory_layout': info['caches'][cache_name]['directory_layout'],
                                                      '_stats': LevelStats(), 'grids': {}})
        entry.update(_summary(entry.pop('_stats')))
    module.exit_json(
        changed=False,
        caches=result_caches,
        total_tiles=total.tiles,
        total_bytes=total.bytes,
        skipped_caches=skipped,
        scan_seconds=round(time.monotonic() - start, 3),
    )


if __name__ == '__main__':
    main()
