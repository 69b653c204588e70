# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib
import os
import time

import pytest

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import (
    VENV,
    dump_yaml,
    file_cache,
    files_under,
    make_config,
    needs_mapproxy,
    run_module,
    seed_lock_held,
    tile_source,
    tms_tile_files,
    write_config,
    xyz_tiles,
)

from ansible_collections.p2d2.mapproxy.plugins.modules import mapproxy_seed

pytestmark = needs_mapproxy

BBOX = [5.8, 50.2, 9.0, 52.5]
LEVELS = {'from': 0, 'to': 7}


def expected_tiles(bbox=tuple(BBOX), levels=range(0, 8)):
    tiles = set()
    for z in levels:
        tiles |= xyz_tiles(bbox, z)
    return tiles


def seed(check_mode=False, **args):
    args.setdefault('venv', VENV)
    args.setdefault('concurrency', 2)
    args.setdefault('timeout', 120)
    return run_module(mapproxy_seed, args, check_mode=check_mode)


@pytest.fixture
def upstream_config(tmp_path, tile_server):
    """mapproxy.yaml with a tms file cache in front of the local tile server."""
    cache_dir = tmp_path / 'cache' / 'osm'
    conf = make_config(tmp_path / 'cache', sources={'osm_tiles': tile_source(tile_server.url)},
                       caches={'osm_cache': file_cache(directory=cache_dir, sources=['osm_tiles'])})
    return write_config(tmp_path / 'mapproxy.yaml', conf), cache_dir, conf


def snapshot(directory):
    """{tile: (mtime, sha256)}; MapProxy's tile_locks folder left out (a killed
    seeding may leave a lock file there, which MapProxy ignores and removes later)."""
    state = {}
    for rel in files_under(directory):
        if rel.startswith('tile_locks' + os.sep):
            continue
        path = os.path.join(directory, rel)
        with open(path, 'rb') as handle:
            state[rel] = (os.stat(path).st_mtime_ns, hashlib.sha256(handle.read()).hexdigest())
    return state


def test_seed_writes_the_tiles_and_a_second_run_changes_nothing(upstream_config, tile_server):
    config, cache_dir, _conf = upstream_config
    expected = expected_tiles()

    result = seed(config=config, caches=['osm_cache'], bbox=BBOX, levels=LEVELS)
    assert not result['failed'], result['msg']
    assert result['changed'] is True
    assert tms_tile_files(cache_dir) == expected
    assert result['tiles_to_seed'] == len(expected)
    assert result['tiles_written'] == len(expected)
    assert result['tiles_remaining'] == 0
    assert len(tile_server.requests) == len(expected)
    assert result['tasks'] == [dict(cache='osm_cache', grid='webmercator', levels=list(range(0, 8)),
                                    directory=str(cache_dir), tiles_to_seed=len(expected),
                                    tiles_written=len(expected), tiles_remaining=0)]
    assert result['seed_config']['seeds']['osm_cache'] == {
        'caches': ['osm_cache'], 'grids': ['webmercator'], 'levels': list(range(0, 8)),
        'refresh_before': {'time': '1970-01-01T00:00:00'}, 'coverages': ['p2d2_bbox']}
    assert result['seed_config']['coverages'] == {'p2d2_bbox': {'bbox': BBOX, 'srs': 'EPSG:4326'}}
    assert '--use-cache-lock' in result['cmd'] and ' -c 2' in result['cmd']
    # mapproxy-seed ran in the cache base_dir and keeps its lock file there
    assert (cache_dir.parent / '.mapproxy_seed.lck').is_file()

    before = snapshot(cache_dir)
    again = seed(config=config, caches=['osm_cache'], bbox=BBOX, levels=LEVELS)
    assert not again['failed'], again['msg']
    assert again['changed'] is False
    assert again['tiles_to_seed'] == 0
    assert again['tiles_written'] == 0
    assert snapshot(cache_dir) == before
    assert len(tile_server.requests) == len(expected)


def all_paths(directory):
    found = set()
    for root, dirs, files in os.walk(directory):
        found.update(os.path.join(root, name) for name in dirs + files)
    return found


def test_check_mode_counts_and_writes_nothing(upstream_config, tile_server, tmp_path):
    config, cache_dir, _conf = upstream_config
    before = all_paths(tmp_path)
    result = seed(config=config, caches=['osm_cache'], bbox=BBOX, levels=LEVELS, check_mode=True)
    assert not result['failed'], result['msg']
    assert result['changed'] is True
    assert result['tiles_to_seed'] == len(expected_tiles())
    assert result['tiles_written'] == 0
    assert result['tiles_remaining'] is None
    assert ' -n ' in result['cmd']
    assert all_paths(tmp_path) == before
    assert not cache_dir.exists()
    assert tile_server.requests == []


def test_only_missing_tiles_are_fetched(upstream_config, tile_server):
    config, cache_dir, _conf = upstream_config
    first = seed(config=config, caches=['osm_cache'], bbox=BBOX, levels={'from': 0, 'to': 5})
    assert not first['failed'], first['msg']
    old = snapshot(cache_dir)
    requests = len(tile_server.requests)

    result = seed(config=config, caches=['osm_cache'], bbox=BBOX, levels=LEVELS)
    assert not result['failed'], result['msg']
    new_tiles = expected_tiles(levels=[6, 7])
    assert result['tiles_to_seed'] == len(new_tiles)
    assert result['tiles_written'] == len(new_tiles)
    assert len(tile_server.requests) - requests == len(new_tiles)
    now = snapshot(cache_dir)
    assert {rel: now[rel] for rel in old} == old


def test_refresh_before_fetches_old_tiles_again(upstream_config, tile_server):
    config, cache_dir, _conf = upstream_config
    levels = [0, 1, 2, 3]
    assert not seed(config=config, caches=['osm_cache'], bbox=BBOX, levels=levels)['failed']
    tiles = tms_tile_files(cache_dir)
    old = time.time() - 10 * 86400
    aged = sorted(tiles)[:2]
    for x, y, z in aged:
        os.utime(cache_dir / str(z) / str(x) / ('%d.png' % y), (old, old))

    result = seed(config=config, caches=['osm_cache'], bbox=BBOX, levels=levels, refresh_before={'days': 7})
    assert not result['failed'], result['msg']
    assert result['changed'] is True
    assert result['tiles_to_seed'] == 2
    assert result['tiles_written'] == 2
    for x, y, z in aged:
        assert os.stat(cache_dir / str(z) / str(x) / ('%d.png' % y)).st_mtime > time.time() - 600
    again = seed(config=config, caches=['osm_cache'], bbox=BBOX, levels=levels, refresh_before='7d')
    assert again['changed'] is False


def test_unreachable_upstream_fails_fast_and_keeps_cached_tiles(upstream_config, closed_port, tmp_path):
    config, cache_dir, conf = upstream_config
    assert not seed(config=config, caches=['osm_cache'], bbox=BBOX, levels=[0, 1, 2, 3])['failed']
    before = snapshot(cache_dir)
    assert before

    dead_url = 'http://127.0.0.1:%d/tiles/%%(tms_path)s.png' % closed_port
    conf['sources']['osm_tiles']['url'] = dead_url
    write_config(config, conf)
    start = time.monotonic()
    result = seed(config=config, caches=['osm_cache'], bbox=BBOX, levels={'from': 0, 'to': 6}, timeout=60)
    elapsed = time.monotonic() - start
    assert result['failed']
    assert elapsed < 20, 'took %.1f s' % elapsed
    assert 'first failed request to a source' in result['msg']
    assert '127.0.0.1:%d' % closed_port in result['msg']
    assert 'Retries left' in result['msg']
    assert 'Connection refused' in result['msg']
    assert snapshot(cache_dir) == before
    assert _processes_with(result['cmd'].split(' -s ')[1].split()[0]) == []


def test_timeout_stops_seeding_and_its_workers(upstream_config, silent_port):
    config, cache_dir, conf = upstream_config
    conf['sources']['osm_tiles']['url'] = 'http://127.0.0.1:%d/tiles/%%(tms_path)s.png' % silent_port
    write_config(config, conf)
    start = time.monotonic()
    result = seed(config=config, caches=['osm_cache'], bbox=BBOX, levels=[0, 1], timeout=5)
    elapsed = time.monotonic() - start
    assert result['failed']
    assert 'did not finish within 5 seconds (option timeout)' in result['msg']
    assert elapsed < 5 + 15, 'took %.1f s' % elapsed
    assert tms_tile_files(cache_dir) == set()
    assert _processes_with(result['cmd'].split(' -s ')[1].split()[0]) == []


def _processes_with(text):
    """PIDs of processes whose command line contains text (for leftover workers)."""
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                cmdline = handle.read().replace(b'\0', b' ').decode('utf-8', 'replace')
        except OSError:
            continue
        if text in cmdline:
            found.append(int(pid))
    return found


def test_coverage_from_option_and_from_seed_config(upstream_config, tmp_path):
    config, cache_dir, _conf = upstream_config
    area = [6.5, 50.5, 7.5, 51.0]
    result = seed(config=config, caches=['osm_cache'], levels=[5, 6], coverage='cgn',
                  coverages={'cgn': {'bbox': area, 'srs': 'EPSG:4326'}})
    assert not result['failed'], result['msg']
    assert tms_tile_files(cache_dir) == expected_tiles(area, [5, 6])

    seed_yaml = tmp_path / 'seed.yaml'
    seed_yaml.write_text(dump_yaml({'coverages': {'cgn': {'bbox': area, 'srs': 'EPSG:4326'}}}))
    result = seed(config=config, caches=['osm_cache'], levels=[5, 6, 7], coverage='cgn', coverages_from=str(seed_yaml))
    assert not result['failed'], result['msg']
    assert result['tiles_written'] == len(expected_tiles(area, [7]))
    assert result['seed_config']['coverages'] == {'cgn': {'bbox': area, 'srs': 'EPSG:4326'}}


def test_sqlite_cache_counts_by_dry_run(tmp_path):
    conf = make_config(tmp_path / 'cache', caches={'osm_cache': {
        'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {'type': 'sqlite', 'directory': str(tmp_path / 'sq')}}})
    config = write_config(tmp_path / 'mapproxy.yaml', conf)
    expected = expected_tiles(levels=range(0, 4))
    result = seed(config=config, caches=['osm_cache'], bbox=BBOX, levels=[0, 1, 2, 3])
    assert not result['failed'], result['msg']
    assert result['changed'] is True
    assert result['tiles_to_seed'] == len(expected)
    assert result['tiles_written'] == len(expected)
    assert result['tiles_remaining'] == 0
    assert result['tasks'][0]['directory'] is None
    again = seed(config=config, caches=['osm_cache'], bbox=BBOX, levels=[0, 1, 2, 3])
    assert again['changed'] is False and again['tiles_to_seed'] == 0


def test_cache_without_tile_times_is_refused(tmp_path):
    conf = make_config(tmp_path / 'cache', caches={'osm_cache': {
        'grids': ['webmercator'], 'sources': ['dbg'],
        'cache': {'type': 'mbtiles', 'filename': str(tmp_path / 'osm.mbtiles')}}})
    result = seed(config=write_config(tmp_path / 'mapproxy.yaml', conf), caches=['osm_cache'], bbox=BBOX, levels=[0])
    assert result['failed']
    assert 'Cache osm_cache (option caches, type mbtiles) keeps no tile times' in result['msg']
    assert not (tmp_path / 'osm.mbtiles').exists()


@pytest.mark.parametrize('args, message', [
    (dict(caches=['nope']), 'Unknown cache in option caches: nope. Caches in the configuration: osm_cache.'),
    (dict(grids=['GLOBAL_GEODETIC']), 'Grid GLOBAL_GEODETIC (option grids) not used by cache osm_cache'),
    (dict(levels={'from': 7, 'to': 2}), 'Option levels: from (7) is greater than to (2).'),
    (dict(levels={'from': 0, 'to': 25}), 'Option levels: grid webmercator has levels 0 to 19 only'),
    (dict(levels={'from': 0}), 'Option levels needs both from and to'),
    (dict(levels={'form': 0, 'to': 3}), 'Unknown key form in option levels'),
    (dict(levels=[-1]), 'is not a level number'),
    (dict(bbox=[-190, 50, 9, 52]), 'lies outside the valid area of EPSG:4326'),
    (dict(bbox=[50.2, 5.8, 52.5, 200.0]), 'lies outside the valid area of EPSG:4326'),
    (dict(bbox=[9.0, 50.2, 5.8, 52.5]), 'with minx < maxx'),
    (dict(bbox=[-3e7, 0, 1000, 1000], srs='EPSG:3857'), 'lies outside the valid area of EPSG:3857'),
    (dict(bbox=[1, 2, 3, 4], srs='EPSG:99999'), "srs 'EPSG:99999'"),
    (dict(bbox=None, coverage='nope', coverages={'cgn': {'bbox': BBOX, 'srs': 'EPSG:4326'}}),
     'Coverage nope (option coverage) is not in option coverages; there are: cgn.'),
    (dict(bbox=None, coverage='cgn', coverages={'cgn': {'box': BBOX, 'srs': 'EPSG:4326'}}),
     "Coverage cgn (option coverage): unknown 'box'"),
    (dict(bbox=None, coverage='cgn'), 'Option coverage needs coverages or coverages_from'),
    (dict(refresh_before={'day': 7}), 'Unknown key day in option refresh_before'),
    (dict(refresh_before={'time': '2026-01-01'}), 'is not of the form YYYY-MM-DDTHH:MM:SS'),
    (dict(concurrency=0), 'Option concurrency must be at least 1.'),
    (dict(lock_timeout=-1), 'Option lock_timeout must be 0 or more seconds.'),
    (dict(coverage='cgn', coverages={'cgn': {}}), 'mutually exclusive'),
])
def test_bad_options_fail_before_anything_runs(upstream_config, tile_server, args, message):
    config, cache_dir, _conf = upstream_config
    full = dict(config=config, caches=['osm_cache'], bbox=BBOX, levels=LEVELS)
    full.update(args)
    full = dict((k, v) for k, v in full.items() if v is not None)
    result = seed(**full)
    assert result['failed']
    assert message in result['msg']
    assert not cache_dir.exists()
    assert tile_server.requests == []


def test_missing_mapproxy_seed_names_the_fix(upstream_config, tmp_path):
    config, _cache_dir, _conf = upstream_config
    fake = tmp_path / 'venv' / 'bin'
    fake.mkdir(parents=True)
    (fake / 'python').symlink_to(os.path.join(VENV, 'bin', 'python'))
    result = seed(config=config, caches=['osm_cache'], bbox=BBOX, levels=LEVELS, venv=str(tmp_path / 'venv'))
    assert result['failed']
    assert 'bin/mapproxy-seed' in result['msg'] and 'p2d2.mapproxy.mapproxy_venv' in result['msg']


def test_waits_for_the_cache_lock_of_another_seeding(upstream_config, tile_server, tmp_path):
    """mapproxy-seed --use-cache-lock keeps its lock in its working directory:
    the module runs it in lock_dir (the cache base_dir) and says who holds it."""
    config, cache_dir, _conf = upstream_config
    base_dir = tmp_path / 'cache'
    base_dir.mkdir()
    with seed_lock_held(base_dir, 'osm_cache'):
        result = seed(config=config, caches=['osm_cache'], bbox=BBOX, levels=[0, 1], timeout=4)
        assert result['failed']
        assert 'did not finish within 4 seconds' in result['msg']
        assert ('another mapproxy-seed holds or waits for the cache lock of osm_cache in %s/.mapproxy_seed.lck'
                % base_dir) in result['msg']
        assert tile_server.requests == []
        unlocked = seed(config=config, caches=['osm_cache'], bbox=BBOX, levels=[0, 1], use_cache_lock=False)
        assert not unlocked['failed'], unlocked['msg']
        assert unlocked['tiles_written'] == 2
        assert '--use-cache-lock' not in unlocked['cmd']
