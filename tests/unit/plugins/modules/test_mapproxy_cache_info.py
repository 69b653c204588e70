# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import time

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import (
    VENV,
    file_cache,
    files_under,
    make_config,
    mapproxy_seed,
    needs_mapproxy,
    run_module,
    write_config,
    xyz_tiles,
)

from ansible_collections.p2d2.mapproxy.plugins.modules import mapproxy_cache_info

pytestmark = needs_mapproxy

BBOX = (5.8, 50.2, 9.0, 52.5)
LEVELS = range(0, 8)


def info(**args):
    args.setdefault('venv', VENV)
    return run_module(mapproxy_cache_info, args)


LAYOUTS = ['tms', 'tc', 'mp', 'quadkey', 'arcgis', 'reverse_tms']


def test_counts_per_level_match_what_mapproxy_wrote(tmp_path):
    """One cache per folder layout, seeded by MapProxy itself, counted by the module."""
    caches = dict(('cache_%s' % layout, file_cache(directory=tmp_path / 'cache' / layout, layout=layout))
                  for layout in LAYOUTS)
    config = write_config(tmp_path / 'mapproxy.yaml', make_config(tmp_path / 'cache', caches=caches))
    mapproxy_seed(config, sorted(caches), BBOX, LEVELS, tmp_path)

    result = info(config=config)
    assert not result['failed'], result['msg']
    assert result['changed'] is False
    expected = {z: len(xyz_tiles(BBOX, z)) for z in LEVELS}
    for layout in LAYOUTS:
        cache_dir = tmp_path / 'cache' / layout
        cache = result['caches']['cache_%s' % layout]
        assert cache['directory_layout'] == layout
        grid = cache['grids']['webmercator']
        assert grid['directory'] == str(cache_dir)
        assert grid['exists'] is True
        assert {entry['level']: entry['tiles'] for entry in grid['levels']} == expected, layout
        assert grid['tiles'] == sum(expected.values())
        # Every file MapProxy left is a tile (its tile_locks folder is empty again).
        on_disk = files_under(cache_dir)
        assert grid['tiles'] == len(on_disk), layout
        assert grid['bytes'] == sum(os.path.getsize(cache_dir / rel) for rel in on_disk), layout
        assert cache['tiles'] == grid['tiles']
        assert grid['filesystem']['total_bytes'] > 0
    assert result['total_tiles'] == len(LAYOUTS) * sum(expected.values())


def test_oldest_newest_and_skipped_files(tmp_path):
    cache_dir = tmp_path / 'cache' / 'osm'
    conf = make_config(tmp_path / 'cache', caches={'osm_cache': file_cache(directory=cache_dir, layout='tms')})
    config = write_config(tmp_path / 'mapproxy.yaml', conf)
    mapproxy_seed(config, ['osm_cache'], BBOX, range(0, 3), tmp_path)
    old = time.time() - 10 * 86400
    os.utime(cache_dir / '0' / '0' / '0.png', (old, old))
    # Not tiles: a half-written temporary file, a lock folder, a stray file.
    (cache_dir / '1' / '1' / '0.png.tmp-1234').write_bytes(b'x')
    (cache_dir / 'tile_locks').mkdir(exist_ok=True)  # MapProxy creates it when directory is set
    (cache_dir / 'tile_locks' / 'abc-1-1-1.lck').write_bytes(b'')
    (cache_dir / 'README').write_text('not a tile')

    result = info(config=config)
    assert not result['failed'], result['msg']
    cache = result['caches']['osm_cache']
    assert cache['tiles'] == 3
    assert cache['oldest'] == time.strftime('%Y-%m-%dT%H:%M:%S+00:00', time.gmtime(int(old)))
    assert cache['newest'] > cache['oldest']


def test_default_cache_folder_and_non_file_caches(tmp_path):
    conf = make_config(tmp_path / 'cache', caches={
        'osm_cache': file_cache(layout='tc'),
        'mb_cache': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {'type': 'mbtiles'}},
        'direct': {'grids': ['webmercator'], 'sources': ['dbg'], 'disable_storage': True},
    })
    config = write_config(tmp_path / 'mapproxy.yaml', conf)
    result = info(config=config)
    assert not result['failed'], result['msg']
    grid = result['caches']['osm_cache']['grids']['webmercator']
    assert grid['directory'] == str(tmp_path / 'cache' / 'osm_cache_EPSG3857')
    assert grid['exists'] is False
    assert grid['tiles'] == 0 and grid['levels'] == []
    assert result['skipped_caches'] == {'mb_cache': 'type mbtiles', 'direct': 'disable_storage'}


def test_unknown_cache_fails_listing_known_caches(tmp_path):
    conf = make_config(tmp_path / 'cache', caches={'osm_cache': file_cache(), 'geo_cache': file_cache()})
    result = info(config=write_config(tmp_path / 'mapproxy.yaml', conf), caches=['osm_cache', 'nope'])
    assert result['failed']
    assert result['msg'] == ('Unknown cache in option caches: nope. '
                             'Caches in the configuration: geo_cache, osm_cache.')


def test_non_file_cache_by_name_fails(tmp_path):
    conf = make_config(tmp_path / 'cache', caches={
        'mb_cache': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {'type': 'mbtiles'}}})
    result = info(config=write_config(tmp_path / 'mapproxy.yaml', conf), caches=['mb_cache'])
    assert result['failed']
    assert 'type mbtiles' in result['msg']


def test_invalid_config_fails_with_errors(tmp_path):
    conf = make_config(tmp_path / 'cache', caches={'osm_cache': file_cache(grids=['nogrid'])})
    result = info(config=write_config(tmp_path / 'mapproxy.yaml', conf))
    assert result['failed']
    assert 'is invalid' in result['msg'] and 'nogrid' in result['msg']


def test_missing_config_fails(tmp_path):
    result = info(config=str(tmp_path / 'missing.yaml'))
    assert result['failed']
    assert 'option config' in result['msg']


def test_grids_sharing_a_folder_are_counted_once(tmp_path):
    # Two grids in EPSG:3857 share CACHE_EPSG3857 without use_grid_names.
    grids = {'webmercator': {'base': 'GLOBAL_WEBMERCATOR', 'origin': 'nw'},
             'webmercator_sw': {'base': 'GLOBAL_WEBMERCATOR', 'origin': 'sw'}}
    conf = make_config(tmp_path / 'cache', grids=grids,
                       caches={'osm_cache': file_cache(grids=['webmercator', 'webmercator_sw'])})
    config = write_config(tmp_path / 'mapproxy.yaml', conf)
    mapproxy_seed(config, ['osm_cache'], BBOX, range(0, 2), tmp_path, grids=['webmercator'])
    result = info(config=config)
    assert not result['failed'], result['msg']
    cache = result['caches']['osm_cache']
    assert cache['grids']['webmercator']['directory'] == cache['grids']['webmercator_sw']['directory']
    assert cache['grids']['webmercator']['shared_with'] == ['webmercator_sw']
    assert cache['tiles'] == 2
    assert any('share the folder' in w for w in result['_ansible_warnings'])
