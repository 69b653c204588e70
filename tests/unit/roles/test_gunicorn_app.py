# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The WSGI application the role mapproxy_gunicorn serves (files/p2d2_mapproxy_app.py), with
the real MapProxy of the venv running pytest: it marks for nginx exactly the answers MapProxy
gave without storing the tile, and only for the generation it serves; the generation is the one
the module mapproxy_config_info answers nginx's role."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import pytest
import yaml

from ansible_collections.p2d2.mapproxy.plugins.modules import mapproxy_config_info
from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import VENV, needs_mapproxy, run_module

pytestmark = needs_mapproxy

FILES = Path(__file__).resolve().parents[3] / 'roles' / 'mapproxy_gunicorn' / 'files'


@pytest.fixture(name='app_module', scope='module')
def app_module_fixture():
    sys.path.insert(0, str(FILES))
    try:
        import p2d2_mapproxy_app
        yield p2d2_mapproxy_app
    finally:
        sys.path.remove(str(FILES))


def _config(tmp_path, coverage_bbox=(5.0, 47.0, 15.0, 55.0)):
    """A stored debug cache, and a cache whose WMS source covers Germany (its upstream is a
    closed port: a tile inside the coverage is an error, one outside is MapProxy's blank)."""
    return {
        'services': {'tms': {'origin': 'nw'}, 'wmts': {'restful': True, 'kvp': False}},
        'layers': [{'name': 'debug', 'title': 'D', 'sources': ['debug_cache']},
                   {'name': 'osm', 'title': 'O', 'sources': ['osm_cache']}],
        'caches': {
            'debug_cache': {'grids': ['webmercator'], 'sources': ['debug'],
                            'cache': {'type': 'file', 'directory': str(tmp_path / 'debug'), 'directory_layout': 'tms'}},
            'osm_cache': {'grids': ['webmercator'], 'sources': ['osm_wms'],
                          'cache': {'type': 'file', 'directory': str(tmp_path / 'osm'), 'directory_layout': 'tms'}},
        },
        'sources': {
            'debug': {'type': 'debug'},
            'osm_wms': {'type': 'wms', 'req': {'url': 'http://127.0.0.1:9/wms', 'layers': 'osm'},
                        'http': {'client_timeout': 1},
                        'coverage': {'bbox': list(coverage_bbox), 'srs': 'EPSG:4326'}},
        },
        'grids': {'webmercator': {'base': 'GLOBAL_WEBMERCATOR', 'srs': 'EPSG:3857', 'origin': 'nw'}},
        'globals': {'cache': {'base_dir': str(tmp_path), 'lock_dir': str(tmp_path / 'locks')}},
    }


def _write(tmp_path, config):
    path = tmp_path / 'mapproxy.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


def _get(app, url, tile_path=None, generation=None):
    answer = {}
    environ = {'REQUEST_METHOD': 'GET', 'PATH_INFO': url, 'QUERY_STRING': '', 'SERVER_NAME': 'x',
               'SERVER_PORT': '80', 'wsgi.url_scheme': 'http', 'wsgi.input': io.BytesIO(), 'HTTP_HOST': 'x'}
    if tile_path is not None:
        environ['HTTP_X_P2D2_TILE_PATH'] = str(tile_path)
    if generation is not None:
        environ['HTTP_X_P2D2_GENERATION'] = generation
    body = b''.join(app(environ, lambda status, headers, exc=None: answer.update(status=status, headers=headers)))
    return answer['status'], dict(answer['headers']), body


# Level 6 of GLOBAL_WEBMERCATOR: column 33, row 21 lies in Germany; 10/10 in the Atlantic.
INSIDE = '6/33/21.png'
OUTSIDE = '6/10/10.png'


def test_only_answers_mapproxy_did_not_store_are_marked(app_module, tmp_path):
    path = _write(tmp_path, _config(tmp_path))
    app = app_module.make_app(str(path))
    generation = run_module(mapproxy_config_info, {'path': str(path), 'venv': VENV})['served']['generation']
    assert app.generation == generation and len(generation) == 40

    # Outside the source's coverage: MapProxy's blank tile, not stored: marked.
    tile = tmp_path / 'osm' / OUTSIDE
    status, headers, body = _get(app, '/wmts/osm/webmercator/' + OUTSIDE, tile, generation)
    assert status.startswith('200') and headers['Content-type'] == 'image/png' and body[:4] == b'\x89PNG'
    assert headers.get('X-P2D2-Unstored') == '1'
    assert not tile.exists()
    # The same answer for a request without the headers (nginx not in front): not marked,
    # otherwise unchanged.
    status2, headers2, body2 = _get(app, '/wmts/osm/webmercator/' + OUTSIDE)
    assert 'X-P2D2-Unstored' not in headers2 and body2 == body
    assert sorted(headers2) == sorted(h for h in headers if h != 'X-P2D2-Unstored')

    # Another generation (nginx written for another configuration): not marked.
    assert 'X-P2D2-Unstored' not in _get(app, '/wmts/osm/webmercator/' + OUTSIDE, tile, '0' * 40)[1]

    # A stored tile: MapProxy wrote the file nginx looked for: not marked.
    stored = tmp_path / 'debug' / INSIDE
    status, headers, body = _get(app, '/wmts/debug/webmercator/' + INSIDE, stored, generation)
    assert status.startswith('200') and stored.read_bytes() == body
    assert 'X-P2D2-Unstored' not in headers

    # Inside the coverage, the upstream down: an error, not marked, nothing stored.
    inside = tmp_path / 'osm' / INSIDE
    status, headers, _body = _get(app, '/wmts/osm/webmercator/' + INSIDE, inside, generation)
    assert not status.startswith('200') and 'X-P2D2-Unstored' not in headers and not inside.exists()


def test_the_mark_needs_an_image_clients_may_keep_and_no_file(app_module, tmp_path):
    tile = tmp_path / 'tile.png'
    ok = [('Content-Type', 'image/png'), ('Cache-control', 'public, max-age=3600, s-maxage=3600')]
    assert app_module.unstored('200 OK', ok, str(tile))
    assert not app_module.unstored('304 Not Modified', ok, str(tile))
    assert not app_module.unstored('200 OK', [('Content-Type', 'text/xml')], str(tile))
    # MapProxy's answer for an upstream error it serves but does not cache (on_error, cache: false).
    assert not app_module.unstored('200 OK', [('Content-Type', 'image/png'),
                                              ('Cache-Control', 'no-cache, no-store')], str(tile))
    tile.write_bytes(b'x')
    assert not app_module.unstored('200 OK', ok, str(tile))
    # A link MapProxy made for a single-colour tile counts as stored, even when dangling.
    os.symlink(tmp_path / 'gone.png', tmp_path / 'link.png')
    assert not app_module.unstored('200 OK', ok, str(tmp_path / 'link.png'))


def test_the_generation_follows_what_mapproxy_read(app_module, tmp_path):
    base = tmp_path / 'base.yaml'
    base.write_text(yaml.safe_dump({'globals': {'tiles': {'expires_hours': 1}}}))
    config = dict(_config(tmp_path), base=['base.yaml'])
    path = _write(tmp_path, config)
    first = app_module.make_app(str(path)).generation

    def generation():
        return run_module(mapproxy_config_info, {'path': str(path), 'venv': VENV})['served']['generation']

    assert generation() == first
    # A change in a base: file is a new generation, for both.
    base.write_text(yaml.safe_dump({'globals': {'tiles': {'expires_hours': 2}}}))
    second = app_module.make_app(str(path)).generation
    assert second != first and generation() == second
    # The coverage changed: a new generation.
    _write(tmp_path, dict(_config(tmp_path, coverage_bbox=(0.0, 40.0, 20.0, 60.0)), base=['base.yaml']))
    third = app_module.make_app(str(path)).generation
    assert third not in (first, second) and generation() == third
    # A file changed after MapProxy read it: no generation, nothing is marked.
    app = app_module.make_app(str(path))
    later = time.time() + 5
    os.utime(base, (later, later))
    assert app_module.mapproxy_probe.config_generation(app.config_files) is None


def _store_config(tmp_path, cache):
    config = _config(tmp_path)
    config['caches']['debug_cache']['cache'] = cache
    return _write(tmp_path, config)


def test_store_timeouts_bound_a_hung_redis_per_request(app_module, tmp_path, silent_port):
    """redis-py has no timeout of its own: with the service's timeouts a hung Redis is a miss
    after at most four asks (load it, is it there, again under the lock, store it)."""
    pytest.importorskip('redis')
    path = _store_config(tmp_path, {'type': 'redis', 'host': '127.0.0.1', 'port': silent_port, 'prefix': 'd'})
    app = app_module.make_app(str(path), store_timeouts={'connect': 1, 'read': 1, 'attempts': 1})
    start = time.monotonic()
    status, headers, _body = _get(app, '/wmts/debug/webmercator/' + INSIDE)
    elapsed = time.monotonic() - start
    assert status.startswith('200')
    assert {name.lower(): value for name, value in headers.items()}['content-type'] == 'image/png'
    assert 3 <= elapsed < 4 * 1 * 1 + 1.5


def test_store_timeouts_bound_a_hung_s3_endpoint(app_module, tmp_path, silent_port, monkeypatch):
    """botocore waits 60 s and retries by default; MapProxy asks for the bucket when it loads."""
    pytest.importorskip('boto3')
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'p2d2-test-key')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'p2d2-test-secret')
    path = _store_config(tmp_path, {'type': 's3', 'bucket_name': 'tiles', 'region_name': 'us-east-1',
                                    'endpoint_url': 'http://127.0.0.1:%d' % silent_port})
    start = time.monotonic()
    with pytest.raises(Exception, match='Read timeout'):
        app_module.make_app(str(path), store_timeouts={'connect': 1, 'read': 1, 'attempts': 2})
    assert time.monotonic() - start < 2 * 1 + 2.5
