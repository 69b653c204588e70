#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mapproxy_config_info
short_description: Check a MapProxy configuration and describe it
version_added: 0.1.0
description:
  - Loads a MapProxy configuration (C(mapproxy.yaml)) with the MapProxy of a venv on the
    managed host, as MapProxy itself does on start, and reports whether it is valid, its
    errors and warnings in words, and its layers, caches, sources, grids and services.
  - Use it to check a rendered configuration B(before) it replaces the live file.
  - MapProxy only logs the details of most errors and raises other errors as C(KeyError),
    C(ValueError) or C(CRSError); this module collects them and names the key or object.
  - Unknown keys are only warnings for MapProxy (it ignores them). Set O(warnings_as_errors)
    to reject them.
  - The check builds every grid and cache and the configured services, without creating
    cache folders or files and without contacting any source or cache store.
  - With O(check_stores), it also connects to the store of every C(s3) and C(redis) cache, as
    the service will, and writes, reads back and deletes one object there.
  - Optionally checks a seed configuration (C(seed.yaml)) against the configuration. Unlike
    C(mapproxy-seed), which only warns, unknown keys in a seed configuration are errors,
    because a misspelt key such as C(level) instead of C(levels) silently widens a task to
    every level of the whole grid.
  - Fails when the configuration (or the seed configuration) is invalid.
author:
  - p2d2 maintainers (@p2d2)
extends_documentation_fragment:
  - p2d2.mapproxy.mapproxy
attributes:
  check_mode:
    support: full
    details: The module never changes anything.
  diff_mode:
    support: none
options:
  path:
    description:
      - Path of the MapProxy configuration on the managed host.
      - Relative paths in the configuration are resolved against its folder, as MapProxy does.
      - Exactly one of O(path) and O(content) is required.
    type: path
  content:
    description:
      - The text of a MapProxy configuration, for example a rendered template.
      - The module writes it to a private temporary folder and loads it from there. Relative paths
        resolve against O(content_dir); without it, against that folder, and relative C(base_dir),
        C(directory), C(cache_dir), C(lock_dir), C(tile_lock_dir) and C(filename) values are reported
        as warnings.
      - Not logged, because a configuration may hold credentials of sources.
      - Exactly one of O(path) and O(content) is required.
    type: str
  content_dir:
    description:
      - With O(content), the folder the configuration is going to live in (that of the live file).
        MapProxy resolves relative paths against it, its own relative defaults such as the lock
        directory C(./cache_data/tile_locks) included, as it will once the file is there; RV(write_dirs)
        and RV(caches) then name the real paths.
    type: path
  seed_path:
    description:
      - Path of a seed configuration on the managed host to check against the configuration.
    type: path
  seed_content:
    description:
      - The text of a seed configuration to check against the configuration.
      - Mutually exclusive with O(seed_path).
    type: str
  env:
    description:
      - Variables to set in the environment of MapProxy's loader, for example the credentials of
        the caches' stores that the service reads from its environment file (C(AWS_ACCESS_KEY_ID),
        a Redis password that a C(${VAR}) placeholder names).
      - Passed to the venv's Python on its standard input, never on a command line; not logged.
    type: dict
    default: {}
  check_stores:
    description:
      - Connect to the store of every cache of type C(s3) (its bucket must exist) and C(redis), with
        MapProxy's own client for it and the credentials of O(env) and the module's environment (C(AWS_*)
        variables, a profile, or what C(${VAR}) placeholders in the configuration name), and write,
        read back and delete one object, C(p2d2-store-check-<host>-<random>) under the cache's key prefix.
      - Fails, naming the cache, the store and what went wrong, when a store cannot be reached in
        time (3 s to connect, 5 s to answer, 2 attempts), refuses the credentials or cannot be
        written. RV(stores) names the stores checked.
      - Without it, no store is contacted (the S3 caches are built without asking for their bucket).
    type: bool
    default: false
  warnings_as_errors:
    description:
      - Fail when MapProxy reports warnings (unknown keys, deprecated settings, the demo
        service), not only on errors.
    type: bool
    default: false
  accepted_warnings:
    description:
      - Regular expressions (Python, searched) of MapProxy warnings that are expected, such as
        V(demo page enabled) for a deployment that serves the demo page on purpose.
      - A matching warning is still returned in RV(config_warnings), but it is not shown as a
        task warning and does not fail the task under O(warnings_as_errors).
    type: list
    elements: str
    default: []
notes:
  - The module runs the venv's Python as a separate process and needs no MapProxy in the
    Python that runs Ansible modules.
  - Ansible reserves the result key C(warnings), so MapProxy's warnings are returned as
    RV(config_warnings) (and also shown as task warnings, unless O(accepted_warnings) expects them).
seealso:
  - name: MapProxy configuration
    description: Reference of the mapproxy.yaml options.
    link: https://mapproxy.org/docs/latest/configuration.html
  - name: MapProxy seeding configuration
    description: Reference of seed.yaml.
    link: https://mapproxy.org/docs/latest/seed.html
"""

EXAMPLES = r"""
- name: Render the MapProxy configuration to a variable
  ansible.builtin.set_fact:
    __mapproxy_rendered: "{{ lookup('ansible.builtin.template', 'mapproxy.yaml.j2') }}"

- name: Check the rendered configuration before it replaces the live one
  p2d2.mapproxy.mapproxy_config_info:
    content: "{{ __mapproxy_rendered }}"
    venv: /opt/mapproxy/venv
    warnings_as_errors: true

- name: Check the live configuration and the seeding tasks
  p2d2.mapproxy.mapproxy_config_info:
    path: /etc/mapproxy/mapproxy.yaml
    seed_path: /etc/mapproxy/seed.yaml
  register: __mapproxy_config

- name: Show the file caches and their folders
  ansible.builtin.debug:
    msg: "{{ item.key }}: {{ item.value.directory }} ({{ item.value.directory_layout }})"
  loop: "{{ __mapproxy_config.caches | dict2items | selectattr('value.type', 'equalto', 'file') }}"
"""

RETURN = r"""
valid:
  description:
    - Whether the configuration (and the seed configuration, if given) is valid.
    - V(false) also when O(warnings_as_errors) is set and there are warnings; the module then fails.
  returned: always
  type: bool
  sample: true
errors:
  description:
    - The errors, in words, naming the key or object. Empty when valid.
  returned: always
  type: list
  elements: str
  sample: ["'type' not in sources.osm_tiles", "cache 'osm_cache': grid 'nogrid' is not defined in grids"]
config_warnings:
  description:
    - Warnings that MapProxy logged while loading the configuration, such as unknown keys.
  returned: always
  type: list
  elements: str
  sample: ["unknown 'srs' in services.kml"]
mapproxy_version:
  description: Version of MapProxy in the venv.
  returned: always
  type: str
  sample: 7.0.0
layers:
  description: Names of all layers, nested ones included.
  returned: always
  type: list
  elements: str
  sample: [osm, geoserver_base]
caches:
  description: The caches, by name.
  returned: always
  type: dict
  sample:
    osm_cache:
      type: file
      grids: [webmercator]
      sources: [osm_tiles]
      format: image/png
      disable_storage: false
      refresh_before: false
      directory: /cache/osm
      directories: {webmercator: /cache/osm}
      directory_layout: tms
      link_single_color_images: false
      file_ext: png
      timestamps: true
      meta_size: [4, 4]
  contains:
    type:
      description: Cache type (C(file), C(mbtiles), C(sqlite), C(geopackage), C(compact), ...).
      type: str
    grids:
      description: Grids of the cache.
      type: list
      elements: str
    sources:
      description: Sources (or caches) the cache reads from.
      type: list
      elements: str
    format:
      description: Image format of the tiles, as MapProxy resolves it (C(image.format), C(format), C(request_format)).
      type: str
    disable_storage:
      description: Whether the cache stores no tiles.
      type: bool
    refresh_before:
      description: Whether the cache renews tiles older than C(refresh_before) when they are requested.
      type: bool
    renders_unstored:
      description:
        - Whether MapProxy renders some tiles of the cache on every request without storing them
          (C(use_direct_from_level), C(use_direct_from_res), or C(upscale_tiles) or C(downscale_tiles) without
          C(cache_rescaled_tiles)).
      type: bool
    directory:
      description:
        - Absolute folder (file caches) or file (mbtiles, geopackage) of the cache, if it has
          exactly one grid; V(null) otherwise or when the configuration is invalid.
        - Without C(cache.directory) MapProxy uses C(BASE_DIR/CACHE_EPSGCODE), named after the
          grid's SRS, not after the grid.
      type: str
    directories:
      description: Folder or file of the cache per grid.
      type: dict
    directory_layout:
      description: Folder layout of a file cache (C(tc) by default). V(null) for other types unless set.
      type: str
    link_single_color_images:
      description: Whether single-colour tiles are stored as links. V(null) if unknown.
      type: bool
    file_ext:
      description: File extension of the tiles of a file cache.
      type: str
      returned: for file caches of a valid configuration
    timestamps:
      description:
        - Whether the cache keeps the time of each tile, which C(refresh_before) and dry runs
          of C(mapproxy-seed) need. V(false) for C(mbtiles), C(geopackage) and C(compact)
          caches in MapProxy 7. V(null) if unknown.
      type: bool
    meta_size:
      description:
        - The meta tile size of the cache in tiles, [width, height], as MapProxy's loader reads it
          (the cache's C(meta_size), else C(globals.cache.meta_size), else 4 x 4). MapProxy locks and
          fetches a meta tile as a whole; a balancer sends all its tiles to one host
          (p2d2.mapproxy.mapproxy_lb). V(null) when the configuration is invalid.
      type: list
      elements: int
sources:
  description: The sources, by name, with their type and URL (credentials masked).
  returned: always
  type: dict
  sample: {osm_tiles: {type: tile, url: "http://osm-tiler.lan:8080/tiles/%(tms_path)s.png"}}
grids:
  description: Names of the grids defined in the configuration and of built-in grids used by a cache.
  returned: always
  type: list
  elements: str
  sample: [webmercator]
grid_levels:
  description:
    - Number of levels of each grid in RV(grids) (levels run from 0 to this number minus one).
  returned: always
  type: dict
  sample: {webmercator: 20}
grid_info:
  description:
    - The grids of RV(grids) as MapProxy builds them.
  returned: always
  type: dict
  sample: {webmercator: {srs: "EPSG:3857", origin: ul, levels: 20, bbox: [-20037508.34, -20037508.34, 20037508.34, 20037508.34], tile_size: [256, 256]}}
  contains:
    srs:
      description: The grid's SRS code.
      type: str
    origin:
      description: Where tile rows start, as MapProxy names it (C(ul) for C(nw), C(ll) for C(sw)).
      type: str
    levels:
      description: Number of levels.
      type: int
    bbox:
      description: Extent in the grid's SRS.
      type: list
      elements: float
    tile_size:
      description: Width and height of a tile in pixels.
      type: list
      elements: int
served:
  description:
    - What the role p2d2.mapproxy.mapproxy_nginx needs to answer tiles from disk (filter
      p2d2.mapproxy.mapproxy_nginx_fast_path) besides RV(caches) and RV(grid_info).
    - Empty when the configuration is invalid.
  returned: always
  type: dict
  contains:
    services:
      description: The C(services) section, with C(base) files merged in.
      type: dict
    layers:
      description: The C(layers) section, with C(base) files merged in.
      type: list
      elements: dict
    expires_hours:
      description: C(globals.tiles.expires_hours), or MapProxy's default.
      type: float
    access_control_allow_origin:
      description: C(globals.http.access_control_allow_origin), or MapProxy's default.
      type: str
    generation:
      description:
        - The configuration's generation, the SHA-1 of the names and contents of the files MapProxy read
          (C(path) and the files its C(base) names); null when one changed while MapProxy read it. The WSGI
          application of the role p2d2.mapproxy.mapproxy_gunicorn computes the same, and nginx keeps MapProxy's
          answers for tiles it did not store under it.
      type: str
write_dirs:
  description:
    - The directories MapProxy writes to, as it resolves them - the cache base, the lock
      directories, each cache's directory (or the folder of its mbtiles or GeoPackage file)
      and its tile locks. A directory that holds the configuration's folder is left out.
    - Empty when the configuration is invalid.
  returned: always
  type: list
  elements: str
  sample: [/cache, /cache/locks, /cache/osm, /cache/osm/tile_locks]
stores:
  description:
    - The caches whose store was checked (type C(s3) or C(redis)), each with its store in words
      (bucket and endpoint, or Redis host, port and db; never a credential).
  returned: when O(check_stores) is set
  type: dict
  sample: {osm_s3: "s3://tiles at http://minio.lan:9000", hot_redis: "redis://redis.lan:6379/3"}
services:
  description: Names of the configured services.
  returned: always
  type: list
  elements: str
  sample: [demo, kml, tms, wms, wmts]
seed_tasks:
  description: Task names of the seed configuration.
  returned: when O(seed_path) or O(seed_content) is set
  type: dict
  sample: {seeds: [osm_germany], cleanups: [remove_old]}
  contains:
    seeds:
      description: Names of the seeding tasks.
      type: list
      elements: str
    cleanups:
      description: Names of the cleanup tasks.
      type: list
      elements: str
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.p2d2.mapproxy.plugins.module_utils.mapproxy import (
    MapProxyVenv,
    TempDir,
    store_errors_only,
    venv_options,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path'),
            content=dict(type='str', no_log=True),
            content_dir=dict(type='path'),
            seed_path=dict(type='path'),
            seed_content=dict(type='str'),
            **venv_options(),
            env=dict(type='dict', default={}, no_log=True),
            check_stores=dict(type='bool', default=False),
            warnings_as_errors=dict(type='bool', default=False),
            accepted_warnings=dict(type='list', elements='str', default=[]),
        ),
        mutually_exclusive=[('path', 'content'), ('seed_path', 'seed_content')],
        required_one_of=[('path', 'content')],
        required_by={'content_dir': 'content'},
        supports_check_mode=True,
    )
    params = module.params
    venv = MapProxyVenv(module, params['venv'])

    with TempDir() as tmp:
        if params['content'] is not None:
            config_path = tmp.write('mapproxy.yaml', params['content'])
            shown_path = 'the configuration given as content'
        else:
            config_path = os.path.abspath(params['path'])
            shown_path = config_path
            if not os.path.isfile(config_path):
                module.fail_json(msg='The MapProxy configuration %s does not exist (option path).' % config_path)
        seed_path = os.path.abspath(params['seed_path']) if params['seed_path'] else None
        if params['seed_content'] is not None:
            seed_path = tmp.write('seed.yaml', params['seed_content'])
        elif seed_path and not os.path.isfile(seed_path):
            module.fail_json(msg='The seed configuration %s does not exist (option seed_path).' % seed_path)

        request = dict(config=config_path, content_mode=params['content'] is not None and not params['content_dir'],
                       config_dir=params['content_dir'])
        if seed_path:
            request['seed'] = seed_path
        if params['check_stores']:
            request['check_stores'] = True
        if params['env']:
            request['env'] = dict((str(name), str(value)) for name, value in params['env'].items())
        info = venv.probe(request, cwd=tmp.path)

    errors = list(info.get('errors') or [])
    warnings = list(info.get('warnings') or [])
    seed = info.get('seed')
    if seed is not None:
        errors.extend('seed configuration: %s' % e for e in seed['errors'])
        warnings.extend('seed configuration: %s' % w for w in seed['warnings'])
    elif seed_path and not errors:
        errors.append('seed configuration: not checked')

    caches = info.get('caches') or {}
    used_grids = set()
    for cache in caches.values():
        used_grids.update(cache.get('grids') or [])
    grids = [name for name, grid in (info.get('grids') or {}).items()
             if grid.get('configured') or name in used_grids]

    result = dict(
        changed=False,
        valid=not errors,
        errors=errors,
        config_warnings=warnings,
        mapproxy_version=info.get('mapproxy_version'),
        layers=info.get('layers') or [],
        caches=caches,
        sources=info.get('sources') or {},
        grids=grids,
        grid_levels=dict((name, (info.get('grids') or {})[name].get('levels')) for name in grids),
        grid_info=dict((name, dict((key, value) for key, value in (info.get('grids') or {})[name].items()
                                   if key != 'configured')) for name in grids),
        services=info.get('services') or [],
        served=info.get('served') or {},
        write_dirs=info.get('write_dirs') or [],
    )
    if params['check_stores']:
        result['stores'] = info.get('stores') or {}
    if seed_path:
        result['seed_tasks'] = dict(seeds=(seed or {}).get('seeds', []), cleanups=(seed or {}).get('cleanups', []))

    try:
        accepted = [re.compile(pattern) for pattern in params['accepted_warnings']]
    except re.error as ex:
        module.fail_json(msg='Option accepted_warnings: %s is not a regular expression (%s).' % (ex.pattern, ex))
    unexpected = [warning for warning in warnings if not any(rx.search(warning) for rx in accepted)]
    for warning in unexpected:
        module.warn('MapProxy: %s' % warning)

    if errors:
        result['valid'] = False
        if store_errors_only(errors):
            # The configuration is fine; a store it names cannot be used as it stands.
            msg = '%s names a store that cannot be used: %s' % (shown_path, '; '.join(errors))
        else:
            msg = '%s is not a valid MapProxy configuration: %s' % (shown_path, '; '.join(errors))
        module.fail_json(msg=msg, **result)
    if unexpected and params['warnings_as_errors']:
        result['valid'] = False
        module.fail_json(msg='MapProxy reports warnings for %s (warnings_as_errors is set): %s'
                         % (shown_path, '; '.join(unexpected)), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
