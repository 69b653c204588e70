# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import (
    VENV,
    dump_yaml,
    file_cache,
    make_config,
    needs_mapproxy,
    run_module,
    write_config,
)

from ansible_collections.p2d2.mapproxy.plugins.modules import mapproxy_config_info

pytestmark = needs_mapproxy


def check(**args):
    args.setdefault('venv', VENV)
    return run_module(mapproxy_config_info, args)


@pytest.fixture
def base_conf(tmp_path):
    return make_config(tmp_path / 'cache', caches={
        'osm_cache': file_cache(directory=tmp_path / 'cache' / 'osm'),
        'plain_cache': file_cache(layout='tc'),
    })


def test_valid_config_reports_layers_caches_and_services(tmp_path, base_conf):
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf))
    assert not result['failed'], result['msg']
    assert result['changed'] is False
    assert result['valid'] is True
    assert result['errors'] == []
    assert result['layers'] == ['osm_cache', 'plain_cache']
    assert result['services'] == ['tms', 'wmts']
    assert result['grids'] == ['webmercator']
    assert result['grid_levels'] == {'webmercator': 20}
    assert result['sources'] == {'dbg': {'type': 'debug'}}
    osm = result['caches']['osm_cache']
    assert osm['type'] == 'file'
    assert osm['grids'] == ['webmercator']
    assert osm['sources'] == ['dbg']
    assert osm['directory_layout'] == 'tms'
    assert osm['directory'] == str(tmp_path / 'cache' / 'osm')
    # Without cache.directory MapProxy names the folder after the grid's SRS.
    plain = result['caches']['plain_cache']
    assert plain['directory_layout'] == 'tc'
    assert plain['directory'] == str(tmp_path / 'cache' / 'plain_cache_EPSG3857')
    # A check creates nothing.
    assert not (tmp_path / 'cache').exists()


def test_unknown_key_is_a_warning_naming_it(tmp_path, base_conf):
    base_conf['caches']['osm_cache']['cache']['directory_layuot'] = 'tc'
    base_conf['services']['kml'] = {'srs': 'EPSG:4326'}
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf))
    assert not result['failed'], result['msg']
    assert result['valid'] is True
    assert "unknown 'directory_layuot' in caches.osm_cache.cache" in result['config_warnings']
    assert "unknown 'srs' in services.kml" in result['config_warnings']
    assert any('directory_layuot' in w for w in result['_ansible_warnings'])


def test_warnings_as_errors_fails_on_unknown_key(tmp_path, base_conf):
    base_conf['caches']['osm_cache']['cache']['directory_layuot'] = 'tc'
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf), warnings_as_errors=True)
    assert result['failed']
    assert result['valid'] is False
    assert 'directory_layuot' in result['msg']
    assert 'warnings_as_errors' in result['msg']


def test_accepted_warnings_are_returned_but_neither_shown_nor_fatal(tmp_path, base_conf):
    base_conf['services']['demo'] = None
    base_conf['caches']['osm_cache']['cache']['directory_layuot'] = 'tc'
    path = write_config(tmp_path / 'mapproxy.yaml', base_conf)
    result = check(path=path, accepted_warnings=['demo page enabled'])
    assert not result['failed'], result['msg']
    assert any('demo page enabled' in w for w in result['config_warnings'])
    shown = result.get('_ansible_warnings') or []
    assert not any('demo page' in w for w in shown)
    assert any('directory_layuot' in w for w in shown)
    # only what is not accepted fails under warnings_as_errors
    result = check(path=path, accepted_warnings=['demo page enabled'], warnings_as_errors=True)
    assert result['failed'] and 'directory_layuot' in result['msg'] and 'demo page' not in result['msg']
    del base_conf['caches']['osm_cache']['cache']['directory_layuot']
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf),
                   accepted_warnings=['demo page enabled'], warnings_as_errors=True)
    assert not result['failed'], result['msg']
    assert check(path=path, accepted_warnings=['(unclosed'])['msg'].startswith(
        'Option accepted_warnings: (unclosed is not a regular expression')


def test_missing_required_key_is_an_error_in_words(tmp_path, base_conf):
    base_conf['sources'] = {'dbg': {'url': 'http://127.0.0.1:9/'}}
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf))
    assert result['failed']
    assert result['valid'] is False
    assert "'type' not in sources.dbg" in result['errors']
    assert "'type' not in sources.dbg" in result['msg']


def test_wrong_type_is_an_error(tmp_path, base_conf):
    base_conf['layers'][0]['title'] = ['not', 'a', 'string']
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf))
    assert result['failed']
    assert any('layers[0].title' in e for e in result['errors'])


def test_unknown_grid_is_an_error_naming_cache_and_grid(tmp_path, base_conf):
    base_conf['caches']['osm_cache']['grids'] = ['nogrid']
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf))
    assert result['failed']
    assert "cache 'osm_cache': grid 'nogrid' is not defined in grids" in result['errors']
    assert 'KeyError' not in result['msg']
    # MapProxy built the configuration but one of its objects failed: nothing to serve or write from it.
    assert result['served'] == {}
    assert result['write_dirs'] == []


def test_bad_directory_layout_is_an_error(tmp_path, base_conf):
    base_conf['caches']['osm_cache']['cache']['directory_layout'] = 'bogus'
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf))
    assert result['failed']
    assert any(e.startswith("cache 'osm_cache':") and 'directory_layout "bogus"' in e for e in result['errors'])


def test_unknown_epsg_is_an_error(tmp_path, base_conf):
    base_conf['grids']['webmercator'] = {'srs': 'EPSG:99999', 'bbox': [0, 0, 1, 1], 'origin': 'nw'}
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf))
    assert result['failed']
    assert any(e.startswith("grid 'webmercator': invalid or unknown SRS") and 'EPSG:99999' in e
               for e in result['errors'])


def test_unknown_layer_source_is_an_error_with_wms(tmp_path, base_conf):
    base_conf['layers'].append({'name': 'broken', 'title': 'broken', 'sources': ['nocache']})
    base_conf['services']['wms'] = {}
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf))
    assert result['failed']
    assert "Source 'nocache' for layer 'broken' not in cache or source section" in result['errors']
    assert any(e.startswith('services/layers:') and 'nocache' in e for e in result['errors'])


def test_unknown_layer_source_is_only_a_warning_without_wms(tmp_path, base_conf):
    # MapProxy itself starts with this (tms/wmts skip the layer): report, do not fail.
    base_conf['layers'].append({'name': 'broken', 'title': 'broken', 'sources': ['nocache']})
    path = write_config(tmp_path / 'mapproxy.yaml', base_conf)
    result = check(path=path)
    assert not result['failed'], result['msg']
    assert "Source 'nocache' for layer 'broken' not in cache or source section" in result['config_warnings']
    assert check(path=path, warnings_as_errors=True)['failed']


def test_yaml_syntax_error(tmp_path):
    path = tmp_path / 'mapproxy.yaml'
    path.write_text('services: [\n')
    result = check(path=str(path))
    assert result['failed']
    assert 'YAMLError' in result['errors'][0]


def test_content_is_checked_without_touching_the_live_file(tmp_path, base_conf):
    result = check(content=dump_yaml(base_conf))
    assert not result['failed'], result['msg']
    assert result['valid'] is True
    assert result['caches']['osm_cache']['directory'] == str(tmp_path / 'cache' / 'osm')
    assert 'content' in mapproxy_config_info.DOCUMENTATION  # no_log option documented


def test_content_with_relative_path_warns(tmp_path, base_conf):
    base_conf['globals']['cache']['base_dir'] = 'cache_data'
    result = check(content=dump_yaml(base_conf))
    assert not result['failed'], result['msg']
    assert any('globals.cache.base_dir is a relative path' in w for w in result['config_warnings'])


def test_content_resolves_relative_paths_against_content_dir(tmp_path, base_conf):
    """As MapProxy will once the file is in content_dir: its own default lock_dir included."""
    del base_conf['globals']['cache']['lock_dir']
    base_conf['caches']['rel'] = file_cache(directory='rel_cache')
    live = tmp_path / 'etc'
    result = check(content=dump_yaml(base_conf), content_dir=str(live))
    assert not result['failed'], result['msg']
    assert not any('relative path' in w for w in result['config_warnings'])
    assert result['caches']['rel']['directory'] == str(live / 'rel_cache')
    assert str(live / 'cache_data' / 'tile_locks') in result['write_dirs']
    assert str(live / 'rel_cache') in result['write_dirs']
    assert all(path.startswith(str(tmp_path)) for path in result['write_dirs']), result['write_dirs']
    assert not live.exists()
    # Without it, the same content resolves against the module's temporary folder, and warns.
    result = check(content=dump_yaml(base_conf))
    assert any('caches.rel.cache.directory is a relative path' in w for w in result['config_warnings'])
    assert not any(path.startswith(str(live)) for path in result['write_dirs'])


def test_content_with_error_fails(base_conf):
    base_conf['caches']['osm_cache']['grids'] = ['nogrid']
    result = check(content=dump_yaml(base_conf))
    assert result['failed']
    assert 'the configuration given as content' in result['msg']


def test_mbtiles_cache_check_creates_no_file(tmp_path, base_conf):
    base_conf['caches']['mb'] = {'grids': ['webmercator'], 'sources': ['dbg'],
                                 'cache': {'type': 'mbtiles', 'filename': str(tmp_path / 'mb' / 'x.mbtiles')}}
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf))
    assert not result['failed'], result['msg']
    assert result['caches']['mb']['type'] == 'mbtiles'
    assert result['caches']['mb']['directory'] == str(tmp_path / 'mb' / 'x.mbtiles')
    assert not (tmp_path / 'mb').exists()


def test_write_dirs_grids_and_what_is_served(tmp_path, base_conf):
    """The directories MapProxy writes (an mbtiles file gives its folder), each grid as MapProxy
    builds it, and the sections and tile headers the nginx role's fast path reads."""
    base_conf['caches']['mb'] = {'grids': ['webmercator'], 'sources': ['dbg'],
                                 'cache': {'type': 'mbtiles', 'filename': str(tmp_path / 'mb' / 'x.mbtiles')}}
    base_conf['caches']['jpeg_cache'] = dict(file_cache(layout='tms'), format='image/jpeg',
                                             refresh_before={'days': 1})
    base_conf['globals']['tiles'] = {'expires_hours': 2}
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf))
    assert not result['failed'], result['msg']
    cache = tmp_path / 'cache'
    # A cache with a directory keeps its tile locks there, the others below the cache base.
    assert result['write_dirs'] == sorted(str(path) for path in [
        cache, cache / 'locks', cache / 'osm', cache / 'osm' / 'tile_locks', cache / 'tile_locks',
        cache / 'plain_cache_EPSG3857', cache / 'jpeg_cache_EPSG3857', tmp_path / 'mb'])
    assert result['grid_info']['webmercator']['srs'] == 'EPSG:3857'
    assert result['grid_info']['webmercator']['origin'] == 'ul'
    assert result['caches']['jpeg_cache']['format'] == 'image/jpeg'
    assert result['caches']['jpeg_cache']['refresh_before'] is True
    assert result['caches']['osm_cache']['refresh_before'] is False
    generation = result['served'].pop('generation')
    assert result['served'] == {'services': base_conf['services'], 'layers': base_conf['layers'],
                                'expires_hours': 2, 'access_control_allow_origin': '*'}
    # The files MapProxy read, by name and content (the config only: it has no base:).
    config = tmp_path / 'mapproxy.yaml'
    content = config.read_bytes()
    expected = hashlib.sha1(b'p2d2-mapproxy-generation 1\n' + b'%d %s\n' % (len(content), str(config).encode())
                            + content).hexdigest()
    assert generation == expected
    assert result['caches']['osm_cache']['renders_unstored'] is False
    assert not cache.exists()


def test_missing_path_fails_naming_the_option(tmp_path):
    result = check(path=str(tmp_path / 'nope.yaml'))
    assert result['failed']
    assert 'option path' in result['msg']


def test_path_and_content_are_exclusive(tmp_path, base_conf):
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf), content='x: 1')
    assert result['failed']
    assert 'mutually exclusive' in result['msg']


def test_missing_venv_fails_with_the_fix(tmp_path, base_conf):
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf), venv=str(tmp_path / 'novenv'))
    assert result['failed']
    assert 'option venv' in result['msg']
    assert 'p2d2.mapproxy.mapproxy_venv' in result['msg']


def test_venv_without_mapproxy_fails_with_the_fix(tmp_path, base_conf):
    fake = tmp_path / 'fakevenv' / 'bin'
    fake.mkdir(parents=True)
    (fake / 'python').symlink_to(sys.base_prefix + '/bin/python3')
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf), venv=str(tmp_path / 'fakevenv'))
    assert result['failed']
    assert 'MapProxy cannot be imported' in result['msg']
    assert 'p2d2.mapproxy.mapproxy_venv' in result['msg']


def test_seed_config_with_misspelt_key_is_an_error(tmp_path, base_conf):
    seed = {'seeds': {'t': {'caches': ['osm_cache'], 'level': {'from': 0, 'to': 3}}}}
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf), seed_content=dump_yaml(seed))
    assert result['failed']
    assert "seed configuration: unknown 'level' in seeds.t" in result['errors']


def test_seed_config_with_unknown_cache_is_an_error(tmp_path, base_conf):
    seed = {'seeds': {'t': {'caches': ['nocache'], 'levels': [0]}}}
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf), seed_content=dump_yaml(seed))
    assert result['failed']
    assert any('cache nocache not found' in e for e in result['errors'])


def test_valid_seed_config_lists_tasks(tmp_path, base_conf):
    seed = {
        'coverages': {'de': {'bbox': [5.8, 47.2, 15.0, 55.0], 'srs': 'EPSG:4326'}},
        'seeds': {'osm_de': {'caches': ['osm_cache'], 'coverages': ['de'], 'levels': {'from': 0, 'to': 3}}},
        'cleanups': {'old': {'caches': ['osm_cache'], 'remove_before': {'days': 30}, 'levels': [0, 1]}},
    }
    seed_path = tmp_path / 'seed.yaml'
    seed_path.write_text(dump_yaml(seed))
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', base_conf), seed_path=str(seed_path))
    assert not result['failed'], result['msg']
    assert result['seed_tasks'] == {'seeds': ['osm_de'], 'cleanups': ['old']}


def test_runs_as_a_standalone_module(tmp_path, base_conf):
    """The module also works as Ansible runs it: a separate process with a JSON args file."""
    args = tmp_path / 'args.json'
    args.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': {
        'path': write_config(tmp_path / 'mapproxy.yaml', base_conf), 'venv': VENV}}))
    import ansible
    collections = Path(mapproxy_config_info.__file__).parents[5]
    ansible_root = Path(ansible.__file__).parents[1]  # ansible may be on PYTHONPATH only (ansible-test)
    path = [str(collections), str(ansible_root)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    proc = subprocess.run([sys.executable, '-m', 'ansible_collections.p2d2.mapproxy.plugins.modules.mapproxy_config_info',
                           str(args)], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result['valid'] is True
    assert result['caches']['osm_cache']['directory_layout'] == 'tms'


def test_meta_size_is_the_cache_s_own_else_the_global_else_mapproxy_s_default(tmp_path, base_conf):
    # MapProxy's own default, 4 x 4, where neither is set.
    result = check(path=write_config(tmp_path / 'default.yaml', base_conf))
    assert not result['failed'], result['msg']
    assert result['caches']['osm_cache']['meta_size'] == [4, 4]
    base_conf.setdefault('globals', {}).setdefault('cache', {})['meta_size'] = [2, 3]
    base_conf['caches']['osm_cache']['meta_size'] = [8, 6]
    result = check(path=write_config(tmp_path / 'set.yaml', base_conf))
    assert not result['failed'], result['msg']
    assert result['caches']['osm_cache']['meta_size'] == [8, 6]
    assert result['caches']['plain_cache']['meta_size'] == [2, 3]
