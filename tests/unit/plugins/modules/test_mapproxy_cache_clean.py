# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import subprocess
import time

import pytest

from ansible.module_utils.common import warnings as ansible_warnings
from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import (
    VENV,
    dump_yaml,
    file_cache,
    files_under,
    make_config,
    mapproxy_seed,
    needs_mapproxy,
    run_module,
    seed_lock_held,
    tms_tile_files,
    write_config,
    xyz_tiles,
)

from ansible_collections.p2d2.mapproxy.plugins.modules import mapproxy_cache_clean

pytestmark = needs_mapproxy

# About one tile per level up to level 12 (Cologne cathedral).
SMALL_BBOX = (6.955, 50.939, 6.962, 50.943)
LEVELS = range(0, 13)
DAY = 86400


def clean(**args):
    args.setdefault('venv', VENV)
    return run_module(mapproxy_cache_clean, args, check_mode=args.pop('check_mode', False))


@pytest.fixture
def seeded(tmp_path):
    """A factory: a cache with one layout seeded by MapProxy on levels 0-12."""
    def make(layout='tms', bbox=SMALL_BBOX, levels=LEVELS):
        cache_dir = tmp_path / 'cache' / 'osm'
        conf = make_config(tmp_path / 'cache', caches={'osm_cache': file_cache(directory=cache_dir, layout=layout)})
        config = write_config(tmp_path / 'mapproxy.yaml', conf)
        mapproxy_seed(config, ['osm_cache'], bbox, levels, tmp_path)
        tiles = {rel for rel in files_under(cache_dir) if not rel.startswith('tile_locks')}
        assert tiles
        return config, cache_dir, tiles
    return make


@pytest.fixture(scope='module')
def seeded_once(tmp_path_factory):
    """A seeded tms cache shared by tests that must not change it."""
    tmp_path = tmp_path_factory.mktemp('shared')
    cache_dir = tmp_path / 'cache' / 'osm'
    conf = make_config(tmp_path / 'cache', caches={'osm_cache': file_cache(directory=cache_dir, layout='tms')})
    config = write_config(tmp_path / 'mapproxy.yaml', conf)
    mapproxy_seed(config, ['osm_cache'], SMALL_BBOX, range(0, 3), tmp_path)
    return config, cache_dir, {rel for rel in files_under(cache_dir) if not rel.startswith('tile_locks')}


def age_half(cache_dir, tiles):
    """Make every other tile (sorted) 40 days old, the rest 1 day old; return the old ones."""
    now = time.time()
    old = set()
    for i, rel in enumerate(sorted(tiles)):
        age = 40 * DAY if i % 2 == 0 else DAY
        os.utime(cache_dir / rel, (now - age, now - age))
        if i % 2 == 0:
            old.add(rel)
    return old


def level_of(layout, rel):
    return int(rel.split(os.sep)[0])


@pytest.mark.parametrize('layout', ['tms', 'tc'])
def test_max_age_removes_exactly_the_aged_tiles(seeded, layout):
    config, cache_dir, tiles = seeded(layout)
    old = age_half(cache_dir, tiles)
    # Aged tiles below and above level 10 (MapProxy's own tms cleanup skips 0-9).
    assert {level_of(layout, rel) for rel in old} & set(range(0, 10))
    assert {level_of(layout, rel) for rel in old} & set(range(10, 13))

    result = clean(config=config, caches=['osm_cache'], max_age={'days': 30})
    assert not result['failed'], result['msg']
    assert result['changed'] is True
    assert result['tiles_removed'] == len(old)
    left = {rel for rel in files_under(cache_dir) if not rel.startswith('tile_locks')}
    assert left == tiles - old
    grid = result['caches']['osm_cache']['grids']['webmercator']
    assert grid['tiles_removed'] == len(old)
    assert sum(entry['tiles'] for entry in grid['levels']) == len(old)
    assert sorted(os.path.relpath(p, cache_dir) for p in result['paths']) == sorted(old)
    assert result['paths_truncated'] is False

    again = clean(config=config, caches=['osm_cache'], max_age='30d')
    assert not again['failed'], again['msg']
    assert again['changed'] is False
    assert again['tiles_removed'] == 0


def test_check_mode_removes_nothing_and_lists_what_would_go(seeded):
    config, cache_dir, tiles = seeded('tms')
    old = age_half(cache_dir, tiles)
    before = {rel: os.stat(cache_dir / rel).st_mtime for rel in tiles}
    result = clean(config=config, caches=['osm_cache'], max_age={'weeks': 4}, check_mode=True)
    assert not result['failed'], result['msg']
    assert result['changed'] is True
    assert result['tiles_removed'] == len(old)
    assert sorted(os.path.relpath(p, cache_dir) for p in result['paths']) == sorted(old)
    assert {rel: os.stat(cache_dir / rel).st_mtime for rel in tiles} == before
    # check mode takes no lock either: no lock file appears
    assert not (cache_dir.parent / '.mapproxy_seed.lck').exists()


def test_all_empties_the_cache(seeded):
    config, cache_dir, tiles = seeded('tms')
    result = clean(config=config, caches=['osm_cache'], remove_all=True)
    assert not result['failed'], result['msg']
    assert result['changed'] is True
    assert result['tiles_removed'] == len(tiles)
    assert result['bytes_removed'] > 0
    assert tms_tile_files(cache_dir) == set()
    assert cache_dir.is_dir()
    # the level folders are gone, as with MapProxy's own cleanup
    assert sorted(p.name for p in cache_dir.iterdir()) in ([], ['tile_locks'])
    assert result['cutoff'] is None


def test_all_on_some_levels(seeded):
    config, cache_dir, tiles = seeded('tc')
    result = clean(config=config, caches=['osm_cache'], remove_all=True, levels={'from': 11, 'to': 12})
    assert not result['failed'], result['msg']
    left = {rel for rel in files_under(cache_dir) if not rel.startswith('tile_locks')}
    assert left == {rel for rel in tiles if level_of('tc', rel) < 11}
    assert result['tiles_removed'] == len(tiles) - len(left)


def test_bbox_limits_the_cleanup(seeded):
    area = (5.8, 50.2, 9.0, 52.5)
    inner = (6.5, 50.5, 7.5, 51.0)
    config, cache_dir, _tiles = seeded('tms', bbox=area, levels=range(0, 8))
    before = tms_tile_files(cache_dir)
    result = clean(config=config, caches=['osm_cache'], remove_all=True, bbox=list(inner), levels=[6, 7])
    assert not result['failed'], result['msg']
    expected_removed = xyz_tiles(inner, 6) | xyz_tiles(inner, 7)
    assert expected_removed <= before
    assert tms_tile_files(cache_dir) == before - expected_removed
    assert result['tiles_removed'] == len(expected_removed)


def test_cache_lock_of_mapproxy_seed_is_respected(seeded, tmp_path):
    config, cache_dir, tiles = seeded('tms')
    with seed_lock_held(tmp_path / 'cache', 'osm_cache'):
        start = time.monotonic()
        result = clean(config=config, caches=['osm_cache'], remove_all=True, lock_timeout=1)
        assert result['failed']
        assert time.monotonic() - start < 15
        assert 'Cache osm_cache is locked by mapproxy-seed (lock file %s/.mapproxy_seed.lck)' % (
            tmp_path / 'cache') in result['msg']
        assert {rel for rel in files_under(cache_dir) if not rel.startswith('tile_locks')} == tiles
    # the holder is gone: its stale lock row no longer blocks
    result = clean(config=config, caches=['osm_cache'], remove_all=True, lock_timeout=5)
    assert not result['failed'], result['msg']
    assert result['tiles_removed'] == len(tiles)


def test_the_old_option_all_works_with_a_deprecation(seeded):
    config, cache_dir, tiles = seeded()
    ansible_warnings._global_deprecations.clear()
    result = clean(config=config, caches=['osm_cache'], all=True)
    assert not result['failed'], result['msg']
    assert result['tiles_removed'] == len(tiles) and tms_tile_files(cache_dir) == set()
    deprecations = [d['msg'] for d in ansible_warnings.get_deprecation_messages()]
    assert "Alias 'all' is deprecated" in ' '.join(deprecations), deprecations


@pytest.mark.parametrize('args, message', [
    (dict(max_age={'days': 30}, remove_all=True), 'parameters are mutually exclusive: max_age|remove_all'),
    (dict(), 'one of the following is required: max_age, remove_all'),
    (dict(remove_all=False), 'Set max_age'),
    (dict(max_age={'day': 30}), 'Unknown key day in option max_age'),
    (dict(max_age='30 days'), "Option max_age: '30 days' is not an age"),
    (dict(remove_all=True, levels={'from': 12, 'to': 3}), 'Option levels: from (12) is greater than to (3).'),
    (dict(remove_all=True, levels=[25]), 'Option levels: grid webmercator has levels 0 to 19 only, not 25.'),
    (dict(remove_all=True, caches=['nope']), 'Unknown cache in option caches: nope.'),
    (dict(remove_all=True, grids=['GLOBAL_GEODETIC']), 'Grid GLOBAL_GEODETIC (option grids) not used by cache osm_cache'),
    (dict(remove_all=True, bbox=[-200, 0, 10, 10]), 'Option bbox: bbox [-200.0, 0.0, 10.0, 10.0] lies outside the valid area'),
    (dict(remove_all=True, bbox=[10, 0, 5, 10]), 'with minx < maxx'),
    (dict(remove_all=True, bbox=[1, 2, 3]), 'Option bbox needs 4 numbers'),
])
def test_bad_options_fail_with_a_named_message(seeded_once, args, message):
    config, cache_dir, tiles = seeded_once
    args.setdefault('caches', ['osm_cache'])
    result = clean(config=config, **args)
    assert result['failed']
    assert message in result['msg']
    assert {rel for rel in files_under(cache_dir) if not rel.startswith('tile_locks')} == tiles


def test_mapproxy_builtin_tms_cleanup_still_skips_levels_0_to_9(seeded, tmp_path):
    """Why the module removes files itself: MapProxy 7.0.0's coverage-less
    cleanup of a tms cache leaves levels 0-9. If this test fails, MapProxy
    fixed the bug and the module could use mapproxy-seed --cleanup again."""
    config, cache_dir, tiles = seeded('tms')
    seed_path = tmp_path / 'cleanup.yaml'
    seed_path.write_text(dump_yaml({'cleanups': {'all': {'caches': ['osm_cache'], 'remove_all': True}}}))
    proc = subprocess.run([os.path.join(VENV, 'bin', 'mapproxy-seed'), '-f', config, '-s', str(seed_path),
                           '--cleanup', 'all'], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    left = {rel for rel in files_under(cache_dir) if not rel.startswith('tile_locks')}
    assert {level_of('tms', rel) for rel in left} == set(range(0, 10))
