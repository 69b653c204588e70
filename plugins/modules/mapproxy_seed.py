#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mapproxy_seed
short_description: Seed MapProxy caches for an area and levels
version_added: 0.1.0
description:
  - Fills MapProxy caches with the tiles of a bounding box (or a coverage) on some levels by
    running C(mapproxy-seed) of the venv with a seed configuration that the module writes.
    C(mapproxy-seed) has no options for caches, grids, levels or a bbox; it needs a seed
    configuration with a task.
  - Checks its options against the configuration before anything runs, and rejects what
    C(mapproxy-seed) would accept silently, such as unknown caches or grids, an inverted
    level range, levels beyond the grid, and a bbox outside the valid area of its SRS.
  - First counts the tiles that are missing (or older than O(refresh_before)) with a dry run
    of C(mapproxy-seed); this count decides whether anything changes. In check mode the
    module stops there. Otherwise it seeds, counts the tile files written in the cache
    folders, and counts again what is still missing.
  - C(mapproxy-seed) retries a failing source up to 100 times with waits of up to 10 minutes
    and may still exit with 0. The module stops seeding at the first failed source request
    (the C(An error occured ... Retries left) line of C(mapproxy-seed)) and fails, naming the
    source, and it stops and fails when O(timeout) passes. The stop rule and the runner are the
    ones of the seeding role's timers (module_utils/mapproxy_run.py), which allow a tile more tries. Tiles already in the cache are left
    as they are; running the task again continues with the missing tiles.
author:
  - p2d2 maintainers (@p2d2)
extends_documentation_fragment:
  - p2d2.mapproxy.mapproxy
  - p2d2.mapproxy.mapproxy.config
attributes:
  check_mode:
    support: full
    details: Runs the dry run of C(mapproxy-seed) only, which reads the caches and writes nothing.
  diff_mode:
    support: none
options:
  caches:
    description:
      - Names of the caches to seed. Each gets its own task in the seed configuration.
    type: list
    elements: str
    required: true
  grids:
    description:
      - Grids to seed. Each must be a grid of every cache in O(caches).
      - By default all grids of each cache.
    type: list
    elements: str
    default: []
  bbox:
    description:
      - The area to seed, V([minx, miny, maxx, maxy]) in O(srs).
      - Mutually exclusive with O(coverage). Without both, the whole grid is seeded on O(levels).
    type: list
    elements: float
  srs:
    description:
      - SRS of O(bbox).
    type: str
    default: EPSG:4326
  coverage:
    description:
      - Name of a coverage in O(coverages) or in the C(coverages) of the seed configuration
        O(coverages_from) to seed instead of a bbox.
    type: str
  coverages:
    description:
      - Coverages by name, in MapProxy's coverage format (C(bbox) and C(srs), C(datasource) and
        C(where), C(union), C(intersection), C(difference), ...).
      - Unknown keys are rejected.
    type: dict
  coverages_from:
    description:
      - Path of a seed configuration on the managed host whose C(coverages) to use.
      - Mutually exclusive with O(coverages).
    type: path
  levels:
    description:
      - >-
        Levels to seed - a level such as V(5), levels and ranges as text such as V(11-14) or
        V(3,5,7-9), a list such as V([0, 1, 2]) or V({from: 0, to: 10}). The role
        p2d2.mapproxy.mapproxy_seeding and the playbooks read levels the same way.
      - Required because MapProxy seeds all levels of the grid without it.
    type: raw
    required: true
  refresh_before:
    description:
      - Also fetch again the tiles that are older than this, not only missing tiles.
      - >-
        An age as a dictionary of V(weeks), V(days), V(hours), V(minutes), V(seconds) such as
        V({days: 7}) or a string such as V(7d); or V({time: YYYY-MM-DDTHH:MM:SS}) (local time of
        the host); or V({mtime: /path/of/a/file}) (that file's modification time).
      - By default only missing tiles are fetched (the seed task gets C(refresh_before) at the
        epoch, which also makes the dry run count only missing tiles).
    type: raw
  concurrency:
    description:
      - Number of seeding processes (C(mapproxy-seed -c)). Seeding is CPU-bound; more processes
        than CPU cores gain nothing.
      - By default the number of CPUs the module may use on the host.
    type: int
  timeout:
    description:
      - Seconds the whole task may take, dry runs included. When they have passed, the module
        stops C(mapproxy-seed) and its workers and fails.
      - For long seedings, raise it and run the task with C(async).
    type: int
    default: 3600
  use_cache_lock:
    description:
      - Run C(mapproxy-seed --use-cache-lock), which waits until no other C(mapproxy-seed) with
        this option seeds the same cache.
      - mapproxy-seed keeps that lock in the file C(.mapproxy_seed.lck) of its working
        directory, so the module runs it in O(lock_dir); other seedings (cron jobs) must run
        there too to exclude each other. p2d2.mapproxy.mapproxy_cache_clean uses the same lock.
      - A cache in a shared store (C(s3), C(redis)) is seeded and cleaned from several hosts, so
        the module first takes its lock in the store (an object or key C(p2d2-lock) beside its
        tiles, renewed while the seeding runs); a seeding or cleanup of it on any host makes the
        module wait up to O(lock_timeout), then fail naming the holder's host, job and start. An S3
        store must support conditional writes (C(If-None-Match), C(If-Match)), as AWS S3, MinIO,
        Ceph RGW and moto do.
    type: bool
    default: true
  lock_timeout:
    description:
      - Seconds to wait for the lock of a cache in a shared store (see O(use_cache_lock)) before
        failing. The lock of mapproxy-seed on this host is waited for as long as O(timeout) allows.
    type: int
    default: 60
  lock_dir:
    description:
      - Working directory of C(mapproxy-seed) and folder of its cache lock file.
      - By default the C(globals.cache.base_dir) of the configuration; it is created if missing.
    type: path
  user:
    description:
      - When the module runs as root, C(mapproxy-seed) runs as this user, with its primary group
        and its groups, so that the tiles, folders and lock file it writes belong to the MapProxy
        service, as with C(become_user), but without sudo or su (a service user has no login
        shell, and a minimal host has no sudo).
      - By default the owner of the configuration's cache base folder (C(globals.cache.base_dir)),
        which is the service user with the collection's roles; root when root owns that folder.
      - A module that does not run as root runs C(mapproxy-seed) as its own user.
    type: str
notes:
  - Run the task as root (C(become=true)), or as MapProxy's user. As root, O(user) decides who
    owns the new tiles, because tiles written as root could not be replaced later by the MapProxy
    service.
  - C(mapproxy-seed) prints no machine-readable output. The tile counts come from the C((N tiles))
    of its dry-run progress lines; for sources that MapProxy fetches in meta tiles, that count is
    the number of meta tiles to fetch times the tiles per meta tile. RV(tiles_written) counts the
    files written in the seeded levels of file caches during the run (tiles that the MapProxy
    service wrote at the same time included).
  - The seed configuration is written to a private temporary folder and removed afterwards;
    RV(seed_config) returns it.
seealso:
  - module: p2d2.mapproxy.mapproxy_cache_info
  - module: p2d2.mapproxy.mapproxy_cache_clean
  - name: MapProxy seeding
    description: mapproxy-seed and the seed configuration.
    link: https://mapproxy.org/docs/latest/seed.html
"""

EXAMPLES = r"""
- name: Seed the OSM cache for North Rhine-Westphalia, levels 0 to 10
  p2d2.mapproxy.mapproxy_seed:
    caches:
      - osm_cache
    grids:
      - webmercator
    levels:
      from: 0
      to: 10
    bbox: [5.8, 50.2, 9.0, 52.5]
  become: true

- name: Show how many tiles a refresh of levels 11 to 14 around Cologne would fetch
  p2d2.mapproxy.mapproxy_seed:
    caches:
      - osm_cache
    levels:
      from: 11
      to: 14
    bbox: [6.0, 50.5, 7.5, 51.5]
    refresh_before:
      days: 7
  check_mode: true
  register: __mapproxy_seed_plan

- name: Seed with a coverage of the seeding configuration, in the background
  p2d2.mapproxy.mapproxy_seed:
    caches:
      - osm_cache
    coverage: germany
    coverages_from: /etc/mapproxy/seed.yaml
    levels: [11, 12]
    timeout: 36000
  async: 36000
  poll: 60
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
tiles_to_seed:
  description:
    - Tiles that were missing (or older than O(refresh_before)) before the run, as counted by the
      dry run of C(mapproxy-seed). This count decides C(changed) in check mode.
  returned: always
  type: int
  sample: 78
tiles_written:
  description:
    - Tile files written in the seeded levels of the file caches during the run.
    - For other cache types, RV(tiles_to_seed) minus RV(tiles_remaining).
    - V(0) in check mode and when nothing was missing.
  returned: always
  type: int
  sample: 78
tiles_remaining:
  description:
    - Tiles still missing after the run (dry run again). Not V(0) when a source does not deliver
      some tiles on purpose (for example C(on_error) with C(cache=false)); the module then warns.
    - V(null) when the module did not seed.
  returned: always
  type: int
  sample: 0
tasks:
  description: Per cache and grid, the counts, the levels and the cache folder (V(null) for non-file caches).
  returned: always
  type: list
  elements: dict
  sample:
    - {cache: osm_cache, grid: webmercator, levels: [0, 1, 2], directory: /cache/osm,
       tiles_to_seed: 78, tiles_written: 78, tiles_remaining: 0}
duration:
  description: Seconds the seeding run took (without the dry runs). V(0) when it did not run.
  returned: always
  type: float
  sample: 12.3
seed_config:
  description:
    - The seed configuration the module ran C(mapproxy-seed) with.
    - Passwords in URLs and connection strings (C(password=...)) are masked.
  returned: always
  type: dict
  sample:
    coverages:
      p2d2_bbox: {bbox: [5.8, 50.2, 9.0, 52.5], srs: "EPSG:4326"}
    seeds:
      osm_cache:
        caches: [osm_cache]
        grids: [webmercator]
        levels: [0, 1, 2]
        coverages: [p2d2_bbox]
        refresh_before: {time: "1970-01-01T00:00:00"}
user:
  description:
    - The user C(mapproxy-seed) ran as (see O(user)); V(null) when it ran as the user of the module.
  returned: success
  type: str
  sample: mapproxy
cmd:
  description: The last C(mapproxy-seed) command (the seeding run, or the dry run when it did not seed).
  returned: always
  type: str
  sample: /opt/mapproxy/venv/bin/mapproxy-seed -f /etc/mapproxy/mapproxy.yaml -s /tmp/p2d2-mapproxy-x/seed.yaml --seed osm_cache -c 2 --use-cache-lock
stdout:
  description: Output of that command (long output is shortened in the middle).
  returned: always
  type: str
stderr:
  description: Error output of that command.
  returned: always
  type: str
"""

import contextlib
import json
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.p2d2.mapproxy.plugins.module_utils.mapproxy import (
    DEFAULT_CONFIG,
    MapProxyVenv,
    REASON_RE,
    SOURCE_ERROR_RE,
    STORE_TYPES,
    TempDir,
    check_levels_in_grids,
    grid_directories,
    load_config,
    mask_secrets,
    parse_levels,
    parse_time_spec,
    run_watched,
    select_caches,
    select_grids,
    store_lock_failure,
    tool_user,
    venv_options,
)
from ansible_collections.p2d2.mapproxy.plugins.module_utils.mapproxy_run import RetryWatch
from ansible_collections.p2d2.mapproxy.plugins.module_utils.mapproxy_tiles import (
    TileFilter,
    count_written_since,
)

ONLY_MISSING = {'time': '1970-01-01T00:00:00'}
BBOX_COVERAGE = 'p2d2_bbox'
TASK_RE = re.compile(r"^\s*Seeding cache '(?P<cache>.+)' with grid '(?P<grid>.+)' in ")
COUNT_RE = re.compile(r'\((?P<n>\d+) tiles\)\s*$')
EXIT_CODES = {
    1: 'unknown task, missing file, or re-seed interval not reached',
    2: 'invalid option, configuration or seed configuration, or interrupted',
    3: 'all seeding processes died',
}


class Counter:
    """Collect the last ``(N tiles)`` per (cache, grid) from mapproxy-seed's output."""

    def __init__(self):
        self.current = None
        self.counts = {}
        self.source_errors = []
        self.reasons = []

    def __call__(self, stream, line):
        if stream == 'stdout':
            match = TASK_RE.match(line)
            if match:
                self.current = (match.group('cache'), match.group('grid'))
                self.counts.setdefault(self.current, 0)
                return
            match = COUNT_RE.search(line)
            if match and self.current is not None:
                self.counts[self.current] = int(match.group('n'))
                return
            match = SOURCE_ERROR_RE.search(line)
            if match and len(self.source_errors) < 3:
                text = mask_secrets(match.group(1).strip())
                if text not in self.source_errors:
                    self.source_errors.append(text)
                return
            match = REASON_RE.match(line)
            if match and match.group(1) != 'HTTPClientError' and len(self.reasons) < 3:
                text = mask_secrets('%s: %s' % match.groups())
                if text not in self.reasons:
                    self.reasons.append(text)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type='path', default=DEFAULT_CONFIG),
            caches=dict(type='list', elements='str', required=True),
            grids=dict(type='list', elements='str', default=[]),
            bbox=dict(type='list', elements='float'),
            srs=dict(type='str', default='EPSG:4326'),
            coverage=dict(type='str'),
            coverages=dict(type='dict'),
            coverages_from=dict(type='path'),
            levels=dict(type='raw', required=True),
            refresh_before=dict(type='raw'),
            concurrency=dict(type='int'),
            timeout=dict(type='int', default=3600),
            use_cache_lock=dict(type='bool', default=True),
            lock_timeout=dict(type='int', default=60),
            lock_dir=dict(type='path'),
            **venv_options(),
            user=dict(type='str'),
        ),
        mutually_exclusive=[('bbox', 'coverage'), ('coverages', 'coverages_from')],
        required_by={'coverages': 'coverage', 'coverages_from': 'coverage'},
        supports_check_mode=True,
    )
    Seeder(module).run()


class Seeder:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = dict(changed=False, tiles_to_seed=0, tiles_written=0, tiles_remaining=None, tasks=[], user=None,
                           duration=0.0, seed_config={}, cmd='', stdout='', stderr='')

    def fail(self, msg, **extra):
        result = dict(self.result)
        result.update(extra)
        result.pop('changed', None)
        self.module.fail_json(msg=msg, **result)

    def remaining(self):
        return self.deadline - time.monotonic()

    # -- checks ------------------------------------------------------------

    def check_options(self):
        module, params = self.module, self.params
        if not params['caches']:
            module.fail_json(msg='Option caches is empty: name the caches to seed.')
        if params['coverage'] is not None and not (params['coverages'] or params['coverages_from']):
            module.fail_json(msg='Option coverage needs coverages or coverages_from, where the coverage is defined.')
        if params['bbox'] is not None and len(params['bbox']) != 4:
            module.fail_json(msg='Option bbox needs 4 numbers [minx, miny, maxx, maxy], not %d.' % len(params['bbox']))
        if params['timeout'] < 1:
            module.fail_json(msg='Option timeout must be at least 1 second.')
        if params['lock_timeout'] < 0:
            module.fail_json(msg='Option lock_timeout must be 0 or more seconds.')
        if params['concurrency'] is not None and params['concurrency'] < 1:
            module.fail_json(msg='Option concurrency must be at least 1.')
        self.levels = parse_levels(module, params['levels'], 'levels')
        self.refresh = ONLY_MISSING
        if params['refresh_before'] is not None:
            self.refresh = parse_time_spec(module, params['refresh_before'], 'refresh_before')
        if params['coverages'] is not None:
            for name, cov in params['coverages'].items():
                if not isinstance(cov, dict):
                    module.fail_json(msg='Option coverages: coverage %s must be a dictionary.' % name)
        self.concurrency = params['concurrency'] or _cpu_count()

    def load(self):
        params = self.params
        self.config = os.path.abspath(params['config'])
        request = {}
        if params['bbox'] is not None:
            request['bbox'] = dict(bbox=params['bbox'], srs=params['srs'], grids=params['grids'],
                                   caches=params['caches'])
        if params['coverages'] is not None:
            request['coverages'] = params['coverages']
        if params['coverage'] is not None:
            request['coverage'] = params['coverage']
        if params['coverages_from']:
            if not os.path.isfile(params['coverages_from']):
                self.module.fail_json(msg='The seed configuration %s of option coverages_from does not exist.'
                                      % params['coverages_from'])
            request['coverages_from'] = os.path.abspath(params['coverages_from'])
        self.info = load_config(self.module, self.venv, self.config, **request)

    def check_against_config(self):
        module, params, info = self.module, self.params, self.info
        self.caches = select_caches(module, info, params['caches'], types=None)
        for name in self.caches:
            cache = info['caches'][name]
            if cache.get('timestamps') is False:
                module.fail_json(
                    msg='Cache %s (option caches, type %s) keeps no tile times in MapProxy %s: mapproxy-seed cannot '
                        'tell missing tiles from cached ones there (its dry run counts every tile, and with '
                        'refresh_before it fetches every tile again), so this module cannot seed it with an honest '
                        'changed. Use a cache of type file or sqlite, or run mapproxy-seed yourself.'
                        % (name, cache['type'], info.get('mapproxy_version')))
        self.cache_grids = select_grids(module, info, self.caches, params['grids'])
        for grids in self.cache_grids.values():
            check_levels_in_grids(module, self.levels, info, grids)
        self.coverage_name = None
        self.coverage_conf = None
        if params['bbox'] is not None:
            planned = info.get('bbox') or {}
            if planned.get('errors'):
                module.fail_json(msg='Option bbox: %s.' % '; '.join(planned['errors']))
            self.coverage_name = BBOX_COVERAGE
            self.coverage_conf = {'bbox': list(params['bbox']), 'srs': params['srs']}
        elif params['coverage'] is not None:
            if params['coverages_from']:
                if info.get('coverages_from_error'):
                    module.fail_json(msg='Cannot read %s (option coverages_from): %s'
                                     % (params['coverages_from'], info['coverages_from_error']))
                available = info.get('coverages_from') or {}
                where = 'the coverages of %s (option coverages_from)' % params['coverages_from']
            else:
                available = params['coverages']
                where = 'option coverages'
            if params['coverage'] not in available:
                module.fail_json(msg='Coverage %s (option coverage) is not in %s; there are: %s.'
                                 % (params['coverage'], where, ', '.join(sorted(available)) or 'none'))
            self.coverage_name = params['coverage']
            self.coverage_conf = available[params['coverage']]
            # MapProxy loaded it in the probe: unknown keys, missing files, bad geometries
            errors = (info.get('coverages') or {}).get(self.coverage_name) or []
            if errors:
                module.fail_json(msg='Coverage %s (option coverage): %s.' % (self.coverage_name, '; '.join(errors)))

    # -- seed configuration ---------------------------------------------

    def seed_config(self):
        conf = {}
        if self.coverage_name:
            conf['coverages'] = {self.coverage_name: self.coverage_conf}
        seeds = {}
        for cache in self.caches:
            task = {'caches': [cache], 'grids': self.cache_grids[cache], 'levels': self.levels,
                    'refresh_before': self.refresh}
            if self.coverage_name:
                task['coverages'] = [self.coverage_name]
            seeds[cache] = task
        conf['seeds'] = seeds
        return conf

    def seed_argv(self, seed_path, dry_run):
        argv = self.venv.command([self.seed_bin, '-f', self.config, '-s', seed_path, '--seed', ','.join(self.caches)])
        if dry_run:
            argv += ['-n', '-c', '1']
        else:
            argv += ['-c', str(self.concurrency)]
            if self.params['use_cache_lock']:
                argv.append('--use-cache-lock')
        return argv

    def run_seed(self, seed_path, dry_run, cwd):
        counter = Counter()
        timeout = self.remaining()
        if timeout <= 0:
            self.fail('The task ran out of time (option timeout, %d seconds) before mapproxy-seed could run.'
                      % self.params['timeout'])
        try:
            run = run_watched(self.seed_argv(seed_path, dry_run), timeout, cwd=cwd,
                              watch=None if dry_run else RetryWatch(1), on_line=counter, user=self.user)
        except OSError as ex:
            as_user = ' as %s (option user)' % self.user.name if self.user is not None else ''
            self.fail('Cannot run %s%s: %s. The user must be able to run the venv and read the configuration.'
                      % (self.seed_bin, as_user, ex))
        self.result.update(cmd=run.cmd, stdout=run.stdout, stderr=run.stderr)
        return run, counter

    # -- main --------------------------------------------------------------

    def run(self):
        module = self.module
        self.deadline = time.monotonic() + self.params['timeout']
        self.check_options()
        self.venv = MapProxyVenv(module, self.params['venv'])
        self.seed_bin = self.venv.require('mapproxy-seed')
        self.load()
        self.user = tool_user(module, self.params['user'], self.info.get('base_dir'))
        self.result['user'] = self.user.name if self.user is not None else None
        self.check_against_config()
        conf = self.seed_config()
        self.result['seed_config'] = mask_secrets(conf)
        entries = grid_directories(module, self.info, self.cache_grids, require_complete=False)
        file_dirs = dict(((cache, grid), (directory, layout))
                         for cache, grids, directory, layout in entries
                         if self.info['caches'][cache]['type'] == 'file' for grid in grids)

        with TempDir(owner=self.user) as tmp:
            seed_path = tmp.write('seed.yaml', json.dumps(conf, indent=2))
            run, before = self.run_seed(seed_path, True, tmp.path)
            self.check_run(run, 'dry run')
            self.result['tiles_to_seed'] = sum(before.counts.values())
            tasks = []
            for cache in self.caches:
                for grid in self.cache_grids[cache]:
                    directory = file_dirs.get((cache, grid), (None, None))[0]
                    tasks.append(dict(cache=cache, grid=grid, levels=self.levels, directory=directory,
                                      tiles_to_seed=before.counts.get((cache, grid), 0), tiles_written=0,
                                      tiles_remaining=None))
            self.result['tasks'] = tasks
            if self.result['tiles_to_seed'] == 0 or module.check_mode:
                self.result['changed'] = self.result['tiles_to_seed'] > 0
                module.exit_json(**self.result)

            cwd = tmp.path
            if self.params['use_cache_lock']:
                cwd = self.prepare_lock_dir()
            with self.store_lock():
                marker = tmp.write('start', '')
                since_ns = os.stat(marker).st_mtime_ns
                run, seeding = self.run_seed(seed_path, False, cwd)
            self.result['duration'] = round(run.duration, 3)
            written = self.count_written(tasks, file_dirs, since_ns)
            if run.abort_line is not None:
                details = '; '.join(seeding.source_errors) or 'no details'
                if seeding.reasons:
                    details += ' (%s)' % '; '.join(seeding.reasons)
                self.fail('Seeding stopped at the first failed request to a source (mapproxy-seed would retry it up '
                          'to 100 times, waiting up to 10 minutes between tries): %s. mapproxy-seed: %s '
                          'Tiles written before: %d. Check that the source is reachable from the host, then run '
                          'the task again.' % (details, run.abort_line.strip(), written), rc=run.rc)
            if run.timed_out:
                self.fail('Seeding did not finish within %d seconds (option timeout)%s; mapproxy-seed was stopped. '
                          'Tiles written before: %d. Run the task again to continue, or raise timeout.'
                          % (self.params['timeout'], self.lock_hint(), written), rc=run.rc)
            self.check_run(run, 'seeding')

            run_after, after = self.run_seed(seed_path, True, tmp.path)
            self.check_run(run_after, 'dry run after seeding')
            # report the seeding run, not the recount
            self.result.update(cmd=run.cmd, stdout=run.stdout, stderr=run.stderr)
        remaining = 0
        for task in tasks:
            task['tiles_remaining'] = after.counts.get((task['cache'], task['grid']), 0)
            remaining += task['tiles_remaining']
            if task['directory'] is None:
                task['tiles_written'] = max(task['tiles_to_seed'] - task['tiles_remaining'], 0)
        self.result['tiles_remaining'] = remaining
        self.result['tiles_written'] = sum(task['tiles_written'] for task in tasks)
        self.result['changed'] = self.result['tiles_written'] > 0
        if remaining:
            module.warn('%d tiles are still missing after seeding (a source may not deliver them on purpose, '
                        'for example with on_error and cache: false).' % remaining)
        module.exit_json(**self.result)

    def check_run(self, run, what):
        if run.timed_out:
            self.fail('The %s of mapproxy-seed did not finish within the time left of %d seconds (option timeout).'
                      % (what, self.params['timeout']), rc=run.rc)
        if run.rc != 0:
            self.fail('The %s of mapproxy-seed failed with rc=%s (%s). See stdout and stderr.'
                      % (what, run.rc, EXIT_CODES.get(run.rc, 'unexpected error')), rc=run.rc)

    def count_written(self, tasks, file_dirs, since_ns):
        seen = set()
        total = 0
        for task in tasks:
            directory, layout = file_dirs.get((task['cache'], task['grid']), (None, None))
            if directory is None:
                continue
            if directory in seen:
                # grids sharing a folder: counted with the first one
                task['tiles_written'] = 0
                continue
            seen.add(directory)
            task['tiles_written'] = count_written_since(directory, layout, since_ns, TileFilter(levels=self.levels))
            total += task['tiles_written']
        return total

    def prepare_lock_dir(self):
        lock_dir = os.path.abspath(self.params['lock_dir']) if self.params['lock_dir'] else self.info.get('base_dir')
        if not lock_dir:
            self.fail('The configuration has no cache base_dir: set lock_dir or use_cache_lock: false.')
        if not os.path.isdir(lock_dir):
            try:
                os.makedirs(lock_dir)
                if self.user is not None:
                    self.user.give(lock_dir)
            except OSError as ex:
                self.fail('Cannot create the lock folder %s (option lock_dir): %s.' % (lock_dir, ex))
        self.lock_dir = lock_dir
        return lock_dir

    @contextlib.contextmanager
    def store_lock(self):
        """The lock in their shared store of the s3 and redis caches to seed, held by the
        venv's Python (the file lock is mapproxy-seed's own, --use-cache-lock)."""
        in_stores = [name for name in self.caches if self.info['caches'][name]['type'] in STORE_TYPES]
        if not (self.params['use_cache_lock'] and in_stores):
            yield
            return
        timeout = min(self.params['lock_timeout'], max(0, int(self.remaining())))
        store = dict(config=self.config, caches=in_stores, what='mapproxy_seed of %s' % ', '.join(in_stores))
        with self.venv.cache_locks(None, in_stores, timeout, store=store) as busy:
            failure = store_lock_failure(busy, in_stores)
            if failure:
                self.fail(failure[0], **failure[1])
            yield

    def lock_hint(self):
        if not self.params['use_cache_lock']:
            return ''
        busy = self.venv.busy_caches(self.lock_dir, self.caches)
        if not busy:
            return ''
        return (' (another mapproxy-seed holds or waits for the cache lock of %s in %s/.mapproxy_seed.lck)'
                % (', '.join(busy), self.lock_dir))


def _cpu_count():
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


if __name__ == '__main__':
    main()
