#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mapproxy_cache_clean
short_description: Remove old or all tiles from MapProxy caches on disk or in a shared store
version_added: 0.1.0
description:
  - Removes the tiles of MapProxy caches that are older than O(max_age), or all tiles
    (O(remove_all)), optionally only on some O(levels) and inside a O(bbox).
  - MapProxy has no C(clean-cache) command; its own cleanup tasks (C(mapproxy-seed --cleanup))
    are not used because in MapProxy 7.0.0 a cleanup without coverage silently skips levels
    0 to 9 of caches with C(directory_layout=tms) and prints no counts. This module reads the
    cache folders, layouts and grids from the configuration with the MapProxy of the venv and
    removes the tile files itself, comparing each file's modification time as MapProxy does.
  - Understands the folder layouts C(tc), C(mp), C(tms), C(reverse_tms), C(quadkey) and
    C(arcgis). Files that are not tiles of the layout are kept (C(tile_locks),
    C(single_color_tiles), temporary files). Folders that become empty are removed, but
    never the cache folder itself.
  - Caches of type C(s3) and C(redis) are cleaned in their store, with MapProxy's client for it and the
    credentials of O(store_env_file), as p2d2.mapproxy.mapproxy_cache_info reads them - an S3 object listing
    under the cache's key prefix with one C(DeleteObjects) request per 1000 keys, a Redis C(SCAN) of its
    prefix with one C(UNLINK) pipeline per 1000 keys - not MapProxy's tile-by-tile walk. The age of an S3
    tile is its object's C(LastModified); a Redis tile's write time is worked out from its TTL and the
    cache's C(default_ttl), and tiles of a cache with C(default_ttl 0) have none (they are kept by O(max_age)
    and counted in RV(caches)). O(bbox) is for file caches only.
  - Reports what it removed; in check mode it removes nothing and reports what it would remove.
author:
  - p2d2 maintainers (@p2d2)
extends_documentation_fragment:
  - p2d2.mapproxy.mapproxy
  - p2d2.mapproxy.mapproxy.config
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  caches:
    description:
      - Names of the caches to clean, of type C(file), C(s3) or C(redis).
    type: list
    elements: str
    required: true
  grids:
    description:
      - Grids to clean. Each must be a grid of every cache in O(caches).
      - By default all grids of each cache.
      - MapProxy keeps the tiles of two grids of a cache with the same SRS in one folder
        (unless C(use_grid_names) is set); such grids can only be cleaned together.
    type: list
    elements: str
    default: []
  max_age:
    description:
      - Remove tiles whose modification time is older than this age.
      - >-
        A dictionary of V(weeks), V(days), V(hours), V(minutes) and V(seconds) (added up),
        such as V({days: 30}), or a string of a number and one of the units C(w), C(d), C(h),
        C(m), C(s), such as V(30d).
      - Exactly one of O(max_age) and O(remove_all=true) is required.
    type: raw
  remove_all:
    description:
      - Set to V(true) to remove every tile of the selected caches, grids and levels.
      - Exactly one of O(max_age) and O(remove_all=true) is required.
      - C(all) is its old name; it works, with a deprecation warning, until 0.3.0.
    type: bool
    aliases: [all]
  levels:
    description:
      - >-
        Only remove tiles on these levels - a level such as V(5), levels and ranges as text
        such as V(11-14) or V(3,5,7-9), a list such as V([0, 1, 2]) or V({from: 11, to: 14}).
        The role p2d2.mapproxy.mapproxy_seeding and the playbooks read levels the same way.
      - By default all levels.
    type: raw
  bbox:
    description:
      - Only remove tiles that touch this box, V([minx, miny, maxx, maxy]) in O(srs). File caches only.
      - The tiles are selected by their grid coordinates, as MapProxy selects them for a bbox
        coverage (tiles that only touch the edge are left out).
    type: list
    elements: float
  srs:
    description:
      - SRS of O(bbox).
    type: str
    default: EPSG:4326
  use_cache_lock:
    description:
      - Take the cache lock of C(mapproxy-seed --use-cache-lock) for each cache while removing
        tiles, so that the cleanup does not run while such a seeding works on the same cache.
      - The lock is the file C(.mapproxy_seed.lck) in O(lock_dir) (mapproxy-seed keeps it in its
        working directory; p2d2.mapproxy.mapproxy_seed runs it in O(lock_dir)), taken with MapProxy's own
        C(CacheLocker) in the venv's Python - the same code as the seeding role's cleanup and size-limit
        timers.
      - MapProxy itself takes no lock for cleanups, and the server writes tiles at any time;
        a tile written during the cleanup is new and stays.
      - A cache in a shared store (C(s3), C(redis)) is seeded and cleaned from several hosts, so
        its lock lives in the store too (an object or key C(p2d2-lock) beside its tiles), taken
        first; a seeding or cleanup of it on any host (this module, p2d2.mapproxy.mapproxy_seed,
        the seeding role's timers) makes the module wait up to O(lock_timeout), then fail naming
        the holder's host, job and start. An S3 store must support conditional writes
        (C(If-None-Match), C(If-Match)), as AWS S3, MinIO, Ceph RGW and moto do.
    type: bool
    default: true
  lock_dir:
    description:
      - Folder of the cache lock file.
      - By default the C(globals.cache.base_dir) of the configuration. If that folder does not
        exist, the cleanup runs without the lock and warns.
    type: path
  lock_timeout:
    description:
      - Seconds to wait for the cache lock (and a store cache's lock in its store) before failing.
    type: int
    default: 60
notes:
  - Run the task as root or as MapProxy's user, which must be allowed to remove the tiles.
  - The module only removes tiles (files, or objects and keys in a store); it starts no MapProxy process
    that writes tiles.
  - nginx's copies of tiles from a store (role p2d2.mapproxy.mapproxy_nginx, C(mapproxy_nginx_store_cache))
    are not the module's - C(playbooks/clean_cache.yml) has nginx forget them after an invalidation.
seealso:
  - module: p2d2.mapproxy.mapproxy_cache_info
  - module: p2d2.mapproxy.mapproxy_seed
"""

EXAMPLES = r"""
- name: Remove OSM tiles older than 30 days
  p2d2.mapproxy.mapproxy_cache_clean:
    caches:
      - osm_cache
    max_age:
      days: 30

- name: Show what would be removed from the GeoServer cache
  p2d2.mapproxy.mapproxy_cache_clean:
    caches:
      - geoserver_cache
    remove_all: true
  check_mode: true
  register: __mapproxy_clean

- name: Empty the GeoServer cache
  p2d2.mapproxy.mapproxy_cache_clean:
    caches:
      - geoserver_cache
    remove_all: true

- name: Remove tiles of levels 11 to 14 around Cologne that are older than a week
  p2d2.mapproxy.mapproxy_cache_clean:
    caches:
      - osm_cache
    grids:
      - webmercator
    max_age: 1w
    levels:
      from: 11
      to: 14
    bbox: [6.7, 50.8, 7.2, 51.1]
"""

RETURN = r"""
holder:
  description:
    - On failure, when a cache in a shared store is locked by another host or process - its
      record in the store - what holds it (C(what)), on which C(host), with which C(pid),
      C(since) when (seconds since the epoch), and a random C(token).
  returned: when the lock of a cache in a shared store was not free
  type: dict
  sample: {what: seeding task seed_s3 (p2d2-mapproxy-cache), host: mapproxy1, pid: 4711, since: 1796680800, token: 9f3c2a1b7d4e5f60}
store:
  description: On failure, the store whose lock was not free, in words (no credentials).
  returned: when the lock of a cache in a shared store was not free
  type: str
  sample: s3://tiles at http://stores:5000
tiles_removed:
  description: Number of tiles removed (in check mode, that would be removed).
  returned: always
  type: int
  sample: 1234
bytes_removed:
  description: Sum of the sizes of these tiles.
  returned: always
  type: int
  sample: 15034331
cutoff:
  description: Tiles modified before this time (ISO 8601, UTC) were removed. V(null) with O(remove_all).
  returned: always
  type: str
  sample: "2026-10-25T05:31:54+00:00"
caches:
  description:
    - Per cache and grid, the folder and what was removed from it.
    - C(directory) is the folder, C(shared_with) other grids in the same folder,
      C(tiles_removed) and C(bytes_removed) the counts, and C(levels) a list of
      C({level, tiles, bytes}) for the levels with removed tiles.
    - For an C(s3) or C(redis) cache, C(store) and C(key_prefix) in place of C(directory), and
      C(unknown_age), the tiles O(max_age) kept because their write time is unknown.
  returned: always
  type: dict
  sample:
    osm_cache:
      grids:
        webmercator:
          directory: /cache/osm
          shared_with: []
          tiles_removed: 1234
          bytes_removed: 15034331
          levels:
            - {level: 12, tiles: 1234, bytes: 15034331}
store_caches:
  description: The caches of O(caches) in a shared store (type C(s3) or C(redis)), cleaned there.
  returned: always
  type: list
  elements: str
  sample: [geoserver_cache]
paths:
  description:
    - The first 100 removed (in check mode, to be removed) tile files, and keys of tiles in stores
      (C(s3://bucket/key), or the Redis key).
  returned: always
  type: list
  elements: str
  sample: [/cache/osm/12/2143/1390.png]
paths_truncated:
  description: Whether more tiles were removed than RV(paths) lists.
  returned: always
  type: bool
  sample: false
"""

import contextlib
import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.p2d2.mapproxy.plugins.module_utils.mapproxy import (
    DEFAULT_CONFIG,
    MapProxyVenv,
    PATH_LIST_LIMIT,
    check_levels_in_grids,
    grid_directories,
    iso_time,
    load_config,
    parse_age,
    parse_levels,
    select_caches,
    select_grids,
    store_lock_failure,
    STORE_TYPES,
    venv_options,
)
from ansible_collections.p2d2.mapproxy.plugins.module_utils.mapproxy_tiles import (
    LevelStats,
    TileFilter,
    remove_tiles,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type='path', default=DEFAULT_CONFIG),
            caches=dict(type='list', elements='str', required=True),
            grids=dict(type='list', elements='str', default=[]),
            max_age=dict(type='raw'),
            remove_all=dict(type='bool', aliases=['all'],
                            deprecated_aliases=[dict(name='all', version='0.3.0', collection_name='p2d2.mapproxy')]),
            levels=dict(type='raw'),
            bbox=dict(type='list', elements='float'),
            srs=dict(type='str', default='EPSG:4326'),
            use_cache_lock=dict(type='bool', default=True),
            lock_dir=dict(type='path'),
            lock_timeout=dict(type='int', default=60),
            **venv_options(),
        ),
        mutually_exclusive=[('max_age', 'remove_all')],
        required_one_of=[('max_age', 'remove_all')],
        supports_check_mode=True,
    )
    params = module.params
    if not params['caches']:
        module.fail_json(msg='Option caches is empty: name the caches to clean.')
    # remove_all: false passes the spec's checks.
    if not params['remove_all'] and params['max_age'] is None:
        module.fail_json(msg='Set max_age (remove tiles older than that) or remove_all: true (remove every tile).')
    max_age = None if params['remove_all'] else parse_age(module, params['max_age'], 'max_age')
    levels = parse_levels(module, params['levels'], 'levels')
    if params['bbox'] is not None and len(params['bbox']) != 4:
        module.fail_json(msg='Option bbox needs 4 numbers [minx, miny, maxx, maxy], not %d.' % len(params['bbox']))
    if params['lock_timeout'] < 0:
        module.fail_json(msg='Option lock_timeout must be 0 or more seconds.')

    venv = MapProxyVenv(module, params['venv'])
    request = {}
    if params['bbox'] is not None:
        request['bbox'] = dict(bbox=params['bbox'], srs=params['srs'], grids=params['grids'],
                               caches=params['caches'])
    info = load_config(module, venv, params['config'], **request)
    names = select_caches(module, info, params['caches'], types=('file',) + STORE_TYPES)
    store_names = [name for name in names if info['caches'][name]['type'] in STORE_TYPES]
    if store_names and params['bbox'] is not None:
        module.fail_json(msg='Option bbox works on file caches only; %s %s in a store (type %s): leave bbox out or '
                             'clean by levels.' % (', '.join(store_names), 'is' if len(store_names) == 1 else 'are',
                                                   info['caches'][store_names[0]]['type']))
    cache_grids = select_grids(module, info, names, params['grids'])
    for grids in cache_grids.values():
        check_levels_in_grids(module, levels, info, grids)
    store_grids = dict((name, cache_grids.pop(name)) for name in store_names)
    ranges_by_grid = None
    if params['bbox'] is not None:
        planned = info.get('bbox') or {}
        if planned.get('errors'):
            module.fail_json(msg='Option bbox: %s.' % '; '.join(planned['errors']))
        ranges_by_grid = dict((grid, dict((int(k), v) for k, v in plan['ranges'].items()))
                              for grid, plan in planned.get('grids', {}).items())
    entries = grid_directories(module, info, cache_grids)

    now = time.time()
    cutoff = None if max_age is None else now - max_age

    lock_dir = None
    if params['use_cache_lock'] and not module.check_mode:
        lock_dir = _lock_dir(module, params, info)
    paths = []
    counter = {'n': 0}

    def on_remove(path, _st):
        counter['n'] += 1
        if len(paths) < PATH_LIST_LIMIT:
            paths.append(path)

    result_caches = {}
    total = LevelStats()
    store_lock = None
    if params['use_cache_lock'] and store_names and not module.check_mode:
        store_lock = dict(config=os.path.abspath(params['config']), caches=store_names,
                          what='mapproxy_cache_clean of %s' % ', '.join(store_names))
    locks = (venv.cache_locks(lock_dir, names, params['lock_timeout'], store=store_lock)
             if lock_dir is not None or store_lock else contextlib.nullcontext())
    with locks as busy:
        failure = store_lock_failure(busy, store_names)
        if failure:
            module.fail_json(msg=failure[0], **failure[1])
        if busy:
            module.fail_json(
                msg='Cache %s is locked by mapproxy-seed (lock file %s/.mapproxy_seed.lck); waited %d seconds '
                    '(option lock_timeout). Try again later or set use_cache_lock: false.'
                    % (busy.get('cache'), lock_dir, params['lock_timeout']))
        for cache_name, dir_grids, directory, layout in entries:
            ranges = None
            if ranges_by_grid is not None:
                if len(dir_grids) > 1:
                    module.fail_json(msg='Grids %s of cache %s share the folder %s: option bbox cannot tell their '
                                         'tiles apart.' % (', '.join(dir_grids), cache_name, directory))
                ranges = ranges_by_grid.get(dir_grids[0], {})
            tile_filter = TileFilter(levels=levels, ranges=ranges)
            removed = remove_tiles(directory, layout, tile_filter, before=cutoff, dry_run=module.check_mode,
                                   on_remove=on_remove)
            dir_total = LevelStats()
            level_list = []
            for level in sorted(removed):
                dir_total.merge(removed[level])
                level_list.append(dict(level=level, tiles=removed[level].tiles, bytes=removed[level].bytes))
            total.merge(dir_total)
            cache_entry = result_caches.setdefault(cache_name, {'grids': {}})
            for grid in dir_grids:
                cache_entry['grids'][grid] = dict(
                    directory=directory, shared_with=[g for g in dir_grids if g != grid],
                    tiles_removed=dir_total.tiles, bytes_removed=dir_total.bytes, levels=level_list)
        if store_grids:
            store_total, keys = _clean_stores(module, venv, params, store_grids, levels, cutoff, result_caches)
            total.merge(store_total)
            counter['n'] += store_total.tiles
            paths.extend(keys[:max(0, PATH_LIST_LIMIT - len(paths))])

    for name in names:
        result_caches.setdefault(name, {'grids': {}})
    module.exit_json(
        changed=total.tiles > 0,
        tiles_removed=total.tiles,
        bytes_removed=total.bytes,
        cutoff=iso_time(cutoff),
        caches=result_caches,
        store_caches=sorted(store_grids),
        paths=paths,
        paths_truncated=counter['n'] > len(paths),
    )


def _clean_stores(module, venv, params, store_grids, levels, cutoff, result_caches):
    """Remove the tiles of s3 and redis caches in their stores (the probe lists and deletes
    page by page, in the venv's Python with the store credentials). Returns the total and
    the first keys removed."""
    info = load_config(module, venv, params['config'], require_valid=False, store_clean=dict(
        caches=store_grids, levels=levels, before=cutoff, dry_run=module.check_mode))
    if info.get('errors'):
        module.fail_json(msg='Cleaning %s in the store failed: %s'
                             % (', '.join(sorted(store_grids)), '; '.join(info['errors'])),
                         errors=info['errors'])
    total = LevelStats()
    keys = []
    for cache_name, entries in sorted((info.get('store_clean') or {}).items()):
        cache_entry = result_caches.setdefault(cache_name, {'grids': {}})
        for entry in entries:
            prefix_total = LevelStats()
            level_list = []
            for level, (tiles, size, _oldest, _newest) in sorted(entry['removed'].items(), key=lambda i: int(i[0])):
                prefix_total.tiles += tiles
                prefix_total.bytes += size
                level_list.append(dict(level=int(level), tiles=tiles, bytes=size))
            keys.extend(entry['keys'])
            total.merge(prefix_total)
            if entry['unknown_age']:
                module.warn('Cache %s keeps %d tiles in %s whose write time is unknown (a Redis cache with '
                            'default_ttl 0): max_age does not remove them.'
                            % (cache_name, entry['unknown_age'], entry['store']))
            for grid in entry['grids']:
                cache_entry['grids'][grid] = dict(
                    store=entry['store'], key_prefix=entry['key_prefix'],
                    shared_with=[g for g in entry['grids'] if g != grid],
                    tiles_removed=prefix_total.tiles, bytes_removed=prefix_total.bytes, levels=level_list,
                    unknown_age=entry['unknown_age'])
    return total, keys


def _lock_dir(module, params, info):
    lock_dir = os.path.abspath(params['lock_dir']) if params['lock_dir'] else info.get('base_dir')
    if params['lock_dir'] and not os.path.isdir(lock_dir):
        module.fail_json(msg='The folder %s of option lock_dir does not exist.' % lock_dir)
    if not lock_dir or not os.path.isdir(lock_dir):
        module.warn('The cache base folder %s does not exist, so no mapproxy-seed can hold a cache lock there: '
                    'cleaning without the lock.' % lock_dir)
        return None
    return lock_dir


if __name__ == '__main__':
    main()
