# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filter that chooses the URLs nginx answers from disk (role mapproxy_nginx), fed as the
role feeds it: with the answer of the module mapproxy_config_info, in which the real MapProxy
of the venv running pytest has read the configuration."""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path

import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.p2d2.mapproxy.plugins.filter.mapproxy_nginx_fast_path import mapproxy_nginx_fast_path
from ansible_collections.p2d2.mapproxy.plugins.modules import mapproxy_config_info
from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import VENV, needs_mapproxy, run_module

pytestmark = needs_mapproxy

# The shape of the mapproxy role's defaults (the runbook's layers, caches and grid).
RUNBOOK = {
    'services': {'demo': None, 'tms': {'origin': 'nw'}, 'kml': None,
                 'wmts': {'restful': True, 'kvp': True,
                          'restful_template': '/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.{Format}'},
                 'wms': {'srs': ['EPSG:3857']}},
    'layers': [{'name': 'osm', 'title': 'OSM', 'sources': ['osm_cache']},
               {'name': 'geoserver_base', 'title': 'GS', 'sources': ['geoserver_cache']}],
    'caches': {'osm_cache': {'grids': ['webmercator'], 'sources': ['osm_tiles'],
                             'cache': {'type': 'file', 'directory': '/cache/osm', 'directory_layout': 'tms'}},
               'geoserver_cache': {'grids': ['webmercator'], 'sources': ['geoserver_wms'],
                                   'cache': {'type': 'file', 'directory': '/cache/geoserver',
                                             'directory_layout': 'tms'}}},
    'grids': {'webmercator': {'base': 'GLOBAL_WEBMERCATOR', 'srs': 'EPSG:3857', 'origin': 'nw'}},
    'globals': {'cache': {'base_dir': '/cache', 'lock_dir': '/cache/locks'}},
    'sources': {'osm_tiles': {'type': 'debug'}, 'geoserver_wms': {'type': 'debug'}},
}


@pytest.fixture(name='plan')
def plan_fixture(tmp_path):
    """plan(config, **options): the filter's answer for config, as MapProxy reads it from a file
    in config_dir (tmp_path unless given)."""
    def plan(config, config_dir=None, **options):
        folder = Path(config_dir or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / 'mapproxy.yaml').write_text(yaml.safe_dump(config))
        info = run_module(mapproxy_config_info, {'path': str(folder / 'mapproxy.yaml'), 'venv': VENV})
        assert not info['failed'], info['msg']
        return mapproxy_nginx_fast_path(info, **options)
    return plan


def _config(**changes):
    config = copy.deepcopy(RUNBOOK)
    for path, value in changes.items():
        node = config
        keys = path.split('__')
        for key in keys[:-1]:
            node = node[key]
        if value is None:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
    return config


def _match(plan, url):
    """The route nginx would pick for url, and the file it tries."""
    for route in plan['routes']:
        match = re.match(route['regex'].replace('(?<', '(?P<'), url)
        if match:
            path = route['file'].replace('$z', match['z']).replace('$x', match['x']).replace('$y', match['y'])
            return route, route['root'] + path
    return None, None


def test_runbook_layers_get_wmts_and_tiles_urls(plan):
    plan = plan(RUNBOOK)
    assert plan['skipped'] == []
    assert plan['cache_control'] == 'public, max-age=259200, s-maxage=259200'
    assert plan['cors_origin'] == '*'
    assert sorted((r['layer'], r['service']) for r in plan['routes']) == [
        ('geoserver_base', 'tiles'), ('geoserver_base', 'wmts'), ('osm', 'tiles'), ('osm', 'wmts')]
    assert _match(plan, '/wmts/osm/webmercator/6/33/21.png')[1] == '/cache/osm/6/33/21.png'
    assert _match(plan, '/tiles/osm_EPSG3857/6/33/21.png')[1] == '/cache/osm/6/33/21.png'
    assert _match(plan, '/tiles/geoserver_base_EPSG3857/1/0/1.png')[1] == '/cache/geoserver/1/0/1.png'
    assert all(r['content_type'] == 'image/png' for r in plan['routes'])


@pytest.mark.parametrize('url', [
    '/wmts/osm/webmercator/6/33/21.jpeg',  # another format: MapProxy answers (an error)
    '/wmts/osm/webmercator/6/-1/21.png',
    '/wmts/osmx/webmercator/6/33/21.png',
    '/wmts/osm/webmercatorx/6/33/21.png',
    '/tms/1.0.0/osm/EPSG3857/6/33/21.png',  # TMS numbers rows from the south
    '/tiles/osm/webmercator/6/33/21.png',
    '/wmts/osm/webmercator/6/33/21.png/x',
])
def test_other_urls_are_not_routed(plan, url):
    assert _match(plan(RUNBOOK), url) == (None, None)


@pytest.mark.parametrize('changes, reason', [
    ({'caches__osm_cache__cache__type': 'mbtiles'}, 'cache osm_cache: it is a mbtiles cache'),
    ({'caches__osm_cache__cache': None}, 'cache osm_cache: its directory_layout is tc'),
    ({'caches__osm_cache__cache__directory_layout': 'tc'}, 'cache osm_cache: its directory_layout is tc'),
    ({'caches__osm_cache__refresh_before': {'days': 1}}, 'cache osm_cache: it has refresh_before'),
    ({'caches__osm_cache__disable_storage': True}, 'cache osm_cache: it has disable_storage'),
    ({'caches__osm_cache__format': 'mixed', 'caches__osm_cache__request_format': 'image/png'},
     'cache osm_cache: its format is mixed'),
    ({'caches__osm_cache__image': {'format': 'image/png; mode=8bit'}}, 'cache osm_cache: its format is image/png; mode=8bit'),
    ({'grids__webmercator__origin': 'sw'}, 'layer osm, cache osm_cache, grid webmercator: the grid\'s origin is sw'),
    ({'grids__webmercator': {'srs': 'EPSG:3857'}}, 'grid webmercator: the grid\'s origin is sw, not nw'),  # MapProxy's default
    ({'layers': [{'name': 'osm', 'title': 'x', 'sources': ['osm_cache'], 'dimensions': {'elevation': {'values': ['0', '1000']}}}]},
     'layer osm: it has dimensions'),
    ({'layers': [{'name': 'osm', 'title': 'x', 'sources': ['osm_cache', 'geoserver_cache']}]},
     'layer osm: more than one source'),
    ({'layers': [{'name': 'osm', 'title': 'x', 'sources': ['osm_tiles']}]}, 'layer osm: a source is not a cache'),
    ({'services__wmts__restful_template': '/{Layer}/{Style}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.{Format}'},
     'WMTS restful: the WMTS restful_template has {Style}'),
])
def test_what_is_left_to_mapproxy_and_why(plan, changes, reason):
    plan = plan(_config(**changes))
    assert any(s.startswith(reason) or reason in s for s in plan['skipped']), plan['skipped']
    route = _match(plan, '/wmts/osm/webmercator/6/33/21.png')[0]
    assert route is None
    # the other layer keeps its fast path (unless the change was global or replaced the layers)
    if next(iter(changes)).startswith('caches__'):
        assert _match(plan, '/wmts/geoserver_base/webmercator/1/0/1.png')[0] is not None


def test_caches_and_layers_from_a_base_file_are_served(plan, tmp_path):
    """MapProxy merges base: files into the configuration; the fast path follows what it merged."""
    included = {key: RUNBOOK[key] for key in ('layers', 'caches')}
    (tmp_path / 'layers.yaml').write_text(yaml.safe_dump(included))
    config = {key: value for key, value in RUNBOOK.items() if key not in included}
    config['base'] = 'layers.yaml'
    routes = plan(config)['routes']
    assert _match({'routes': routes}, '/wmts/osm/webmercator/6/33/21.png')[1] == '/cache/osm/6/33/21.png'
    assert len(routes) == 4


def test_excluded_layers_and_caches(plan):
    plan = plan(RUNBOOK, exclude_layers=['osm'], exclude_caches=['geoserver_cache'])
    assert plan['routes'] == []
    assert 'layer osm: it is listed in mapproxy_nginx_exclude_layers' in plan['skipped']
    assert 'cache geoserver_cache: it is listed in mapproxy_nginx_exclude_caches' in plan['skipped']


def test_tiles_urls_follow_the_tms_service(plan):
    first = plan(_config(services__tms={'origin': 'sw'}))
    assert {r['service'] for r in first['routes']} == {'wmts'}
    assert '/tiles: the TMS service has origin sw: rows are flipped' in first['skipped']
    by_grid_name = plan(_config(services__tms={'use_grid_names': True}))
    assert _match(by_grid_name, '/tiles/osm/webmercator/2/1/0.png')[1] == '/cache/osm/2/1/0.png'
    assert plan(_config(services__tms=None, services__wmts=None))['routes'] == []


def test_headers_follow_globals_and_paths_follow_mapproxy(plan, tmp_path):
    config = _config(globals={'tiles': {'expires_hours': 1}, 'http': {'access_control_allow_origin': ''},
                              'cache': {'base_dir': 'data'}},
                     caches__osm_cache__cache={'type': 'file', 'directory_layout': 'tms'},
                     caches__osm_cache__format='image/jpeg')
    plan = plan(config, config_dir=tmp_path / 'srv' / 'mp')
    assert plan['cache_control'] == 'public, max-age=3600, s-maxage=3600'
    assert plan['cors_origin'] == ''
    route, path = _match(plan, '/wmts/osm/webmercator/3/1/2.jpeg')
    # MapProxy's own answer: a relative base_dir follows the config file's folder.
    assert path == str(tmp_path / 'srv' / 'mp' / 'data' / 'osm_cache_EPSG3857' / '3' / '1' / '2.jpeg')
    assert route['content_type'] == 'image/jpeg'


def test_a_bad_cors_origin_is_refused(plan):
    with pytest.raises(AnsibleFilterError, match='access_control_allow_origin'):
        plan(_config(globals={'http': {'access_control_allow_origin': 'a"; x'}}))


def test_no_answer_serves_nothing_from_disk():
    assert mapproxy_nginx_fast_path({}) == {'routes': [], 'skipped': [], 'cache_control': '', 'cors_origin': '',
                                            'generation': ''}


@pytest.mark.parametrize('changes', [
    {'caches__osm_cache__use_direct_from_level': 8},
    {'caches__osm_cache__use_direct_from_res': 100.0},
    {'caches__osm_cache__upscale_tiles': 2},
    {'caches__osm_cache__downscale_tiles': 1},
])
def test_caches_rendered_on_request_keep_no_unstored_answers(plan, changes):
    """MapProxy renders these tiles from the source (or other levels) on every request without
    storing them: nginx may serve stored tiles from disk but must not keep the other answers."""
    plain = plan(RUNBOOK)
    assert re.fullmatch('[0-9a-f]{40}', plain['generation'])
    assert all(r['keep_unstored'] for r in plain['routes'])
    changed = plan(_config(**changes))
    assert changed['generation'] != plain['generation']
    assert not _match(changed, '/wmts/osm/webmercator/6/33/21.png')[0]['keep_unstored']
    assert _match(changed, '/wmts/geoserver_base/webmercator/6/33/21.png')[0]['keep_unstored']
    if 'upscale_tiles' in next(iter(changes)) or 'downscale_tiles' in next(iter(changes)):
        kept = plan(_config(caches__osm_cache__cache_rescaled_tiles=True, **changes))
        assert _match(kept, '/wmts/osm/webmercator/6/33/21.png')[0]['keep_unstored']


def test_mapproxy_writes_the_file_the_route_names(plan, tmp_path):
    """Real MapProxy, debug source: the tile of a routed URL lands in the file the route tries,
    with the headers the plan says."""
    from mapproxy.wsgiapp import make_wsgi_app

    config = _config(caches__osm_cache__sources=['debug'], caches__osm_cache__cache__directory=str(tmp_path / 'osm'),
                     caches__geoserver_cache__sources=['debug'],
                     caches__geoserver_cache__cache__directory=str(tmp_path / 'gs'),
                     globals={'cache': {'base_dir': str(tmp_path)}, 'tiles': {'expires_hours': 2}})
    config['services'].pop('demo')
    config['sources'] = {'debug': {'type': 'debug'}}
    plan = plan(config)
    app = make_wsgi_app(str(tmp_path / 'mapproxy.yaml'))
    for url in ['/wmts/osm/webmercator/3/2/1.png', '/tiles/geoserver_base_EPSG3857/4/3/5.png']:
        answer = {}
        environ = {'REQUEST_METHOD': 'GET', 'PATH_INFO': url, 'QUERY_STRING': '', 'SERVER_NAME': 'x',
                   'SERVER_PORT': '80', 'wsgi.url_scheme': 'http', 'wsgi.input': io.BytesIO(), 'HTTP_HOST': 'x'}
        body = b''.join(app(environ, lambda status, headers, exc=None: answer.update(status=status, headers=headers)))
        assert answer['status'].startswith('200'), url
        headers = {k.lower(): v for k, v in answer['headers']}
        route, path = _match(plan, url)
        with open(path, 'rb') as stream:
            assert stream.read() == body, url
        assert headers['content-type'] == route['content_type']
        assert headers['cache-control'] == plan['cache_control'] == 'public, max-age=7200, s-maxage=7200'
        assert headers['access-control-allow-origin'] == plan['cors_origin']


STORES = {
    'caches__osm_cache__cache': {'type': 's3', 'bucket_name': 'tiles', 'directory': 'osm',
                                 'endpoint_url': 'http://127.0.0.1:9', 'region_name': 'us-east-1'},
    'caches__geoserver_cache__cache': {'type': 'redis', 'host': '127.0.0.1', 'port': 9, 'prefix': 'gs'},
}


def _store_route(plan, url):
    return next(r for r in plan['routes'] if re.match(r['regex'].replace('(?<', '(?P<'), url))


def test_store_caches_are_routed_for_copies_only_when_asked(plan):
    """Tiles of s3 and redis caches are not on disk: nginx gets their URLs (to keep copies of
    MapProxy's answers) only with store_caches, and never a file to try."""
    off = plan(_config(**STORES))
    assert off['routes'] == []
    assert 'cache osm_cache: it is a s3 cache and mapproxy_nginx_store_cache is false' in off['skipped']
    assert 'cache geoserver_cache: it is a redis cache and mapproxy_nginx_store_cache is false' in off['skipped']
    on = plan(_config(**STORES), store_caches=True)
    assert len(on['routes']) == 4
    route = _store_route(on, '/wmts/osm/webmercator/6/33/21.png')
    assert (route['cache'], route['store'], route['root'], route['file']) == ('osm_cache', True, None, None)
    assert not route['keep_unstored']
    assert _store_route(on, '/tiles/geoserver_base_EPSG3857/1/0/1.png')['cache'] == 'geoserver_cache'


@pytest.mark.parametrize('changes, reason', [
    ({'caches__osm_cache__refresh_before': {'days': 1}}, 'it has refresh_before'),
    ({'caches__osm_cache__use_direct_from_level': 8}, 'MapProxy renders some of its tiles on every request'),
    ({'caches__osm_cache__disable_storage': True}, 'it has disable_storage'),
])
def test_store_caches_mapproxy_renews_are_left_to_it(plan, changes, reason):
    on = plan(_config(**STORES, **changes), store_caches=True)
    assert any(s.startswith('cache osm_cache: ' + reason) for s in on['skipped']), on['skipped']
    assert {r['cache'] for r in on['routes']} == {'geoserver_cache'}
