"""Smoke check of the performance harness (scripts/bench.py): its measuring and table
code against a real MapProxy behind a real Gunicorn on loopback, a few seconds in all.
It checks that the harness measures and produces a table, never how fast anything is."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
_spec = importlib.util.spec_from_file_location('p2d2_bench', ROOT / 'scripts' / 'bench.py')
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

pytestmark = pytest.mark.skipif(not (BIN / 'gunicorn').exists() or not (BIN / 'mapproxy-util').exists(),
                                reason='the venv running pytest has no Gunicorn or MapProxy (tests/requirements.txt)')

CONFIG = '''
services:
  wmts:
    restful: true
    restful_template: "/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.{Format}"
    kvp: false
layers:
  - {name: osm, title: Smoke, sources: [osm_cache]}
caches:
  osm_cache:
    grids: [webmercator]
    sources: [debug]
    meta_size: [1, 1]
    cache: {type: file, directory: %(cache)s, directory_layout: tms}
sources:
  debug: {type: debug}
grids:
  webmercator: {base: GLOBAL_WEBMERCATOR, srs: "EPSG:3857", origin: nw}
globals:
  cache: {base_dir: %(base)s, lock_dir: %(base)s/locks}
'''


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """MapProxy (debug source, file cache in the tms layout) behind Gunicorn gthread 2 x 2."""
    if shutil.which('wrk') is None:
        pytest.fail('wrk is not installed: apt-get install wrk (scripts/test.sh installs it)')
    tmp = tmp_path_factory.mktemp('bench')
    cache = tmp / 'cache' / 'osm'
    (tmp / 'mapproxy.yaml').write_text(CONFIG % {'cache': cache, 'base': tmp / 'cache'}, encoding='utf-8')
    port = _free_port()
    proc = subprocess.Popen(
        [BIN / 'gunicorn', '--bind', '127.0.0.1:%d' % port, '--workers', '2', '--worker-class', 'gthread',
         '--threads', '2', '--control-socket', str(tmp / 'gunicorn.ctl'), '--chdir', str(tmp),
         'mapproxy.wsgiapp:make_wsgi_app("%s")' % (tmp / 'mapproxy.yaml')],
        stdout=subprocess.DEVNULL, stderr=open(tmp / 'gunicorn.log', 'wb'))
    base = 'http://127.0.0.1:%d' % port
    try:
        bench.wait_for(base + bench.tile_path(0, 0, 0), seconds=30)
        yield base, cache, tmp
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _files(cache):
    return sorted(str(p.relative_to(cache)) for p in cache.rglob('*.png'))


def test_harness_measures_and_prints_a_table(server):
    base, cache, tmp = server
    before = set(_files(cache))
    # The harness's tile paths are the files of the tms layout: every request writes its file.
    paths = [bench.tile_path(*t) for t in bench.tiles_in_bbox(bench.BBOX, [4, 5, 6, 7])]
    for path in paths:
        assert bench.http_get(base + path)[0] == 200, path
    written = set(_files(cache)) - before
    assert written == {p[len(bench.TILE_PREFIX):] for p in paths}

    cells = {}
    lua = bench.write_lua(tmp / 'cached.lua', paths)
    for conns in (2, 4):
        for layout in ('first', 'second'):
            cells.setdefault((layout, conns), []).append(bench.run_wrk(base, lua, conns, 1))
    for (_, conns), (result,) in cells.items():
        assert result['requests'] > 0 and result['rps'] > 0
        assert result['socket_errors'] == 0 and result['status'] == 0
        assert 0 < result['p50_us'] <= result['p99_us'] <= result['max_us']

    # Uncached: each path once, in turn; every answered request wrote a new file.
    fresh = [bench.tile_path(*t) for t in bench.tiles_in_bbox(bench.BBOX, bench.UNCACHED_LEVELS)]
    count_before = len(_files(cache))
    uncached = bench.run_wrk(base, bench.write_lua(tmp / 'fresh.lua', fresh, order='sequential'), 2, 1)
    new_files = len(_files(cache)) - count_before
    assert uncached['wrapped'] == 0 and uncached['requests'] > 0
    assert uncached['requests'] <= new_files <= uncached['requests'] + 2

    table = bench.Table()
    bench.add_cells(table, 1, 'cached tiles', ['first', 'second'], [2, 4], cells, 'first')
    bench.add_cells(table, 2, 'uncached tiles', ['first'], [2], {('first', 2): [uncached]}, 'first')
    text = table.render()
    lines = text.splitlines()
    assert lines[0].startswith('| # | Measurement |') and len(lines) == 2 + 5
    second_c4 = [line for line in lines if 'second, 4 conns' in line][0]
    ratio = cells[('first', 4)][0]['rps'] / cells[('second', 4)][0]['rps']
    assert 'first ÷ this: %.2f' % ratio in second_c4
    assert bench.fnum(cells[('second', 4)][0]['rps']) + ' req/s' in second_c4
    assert '0 non-2xx, 0 socket' in second_c4


def test_harness_counts_failures(server):
    """Non-2xx answers counted by the response hook, and a run stopped with SIGINT
    (the reload window) still reports."""
    base, _, tmp = server
    paths = [bench.tile_path(0, 0, 0), '/wmts/nosuchlayer/webmercator/0/0/0.png']
    lua = bench.write_lua(tmp / 'status.lua', paths, count_status=True)
    load = bench.WrkInBackground(base, lua, 2)
    time.sleep(1.5)
    result = load.stop()
    assert result['requests'] > 0 and 0 < result['non2xx'] < result['requests']
    assert result['non2xx'] >= result['status'] > 0
    assert 'non-2xx' in bench.errors_text([result]) and not bench.errors_text([result]).startswith('0 ')


def test_harness_profile_summary():
    raw = ('process 1:"gunicorn";run (gunicorn/arbiter.py:5);sleep (gunicorn/arbiter.py:9) 50\n'
           'process 2:"gunicorn";a (x/site-packages/gunicorn/w.py:10);handle_request (gunicorn/sync.py:3);'
           'b (mapproxy/tile.py:5) 30\n'
           'process 2:"gunicorn";a (x/site-packages/gunicorn/w.py:10);ThreadWorker.handle_request (g.py:3);'
           'c (PIL/Image.py:7) 10\n')
    lines = bench.summarise_profile(raw)
    assert lines[0].startswith('- py-spy: 90 samples of the Gunicorn master and workers, 40 of them')
    assert '  - 75.0 % b (mapproxy/tile.py)' in lines
    assert '  - 25.0 % c (PIL/Image.py)' in lines
    assert not any('arbiter' in line for line in lines)


def test_mixed_session_tiles_and_coverage():
    """The mixed workload's tiles: the window around the runbook's centre, and which lie
    outside the OSM coverage, checked against tile bboxes worked out by hand."""
    assert bench.tile_bbox(0, 0, 0) == pytest.approx((-180.0, -85.0511, 180.0, 85.0511), abs=1e-4)
    # 6/33/21: 5.625-11.25 E, 48.92-52.48 N, inside Germany; 6/10/10: the North Pacific.
    assert bench.tile_bbox(6, 33, 21) == pytest.approx((5.625, 48.9225, 11.25, 52.4828), abs=1e-4)
    coverage = bench.osm_coverage()
    assert coverage == (5.8, 47.2, 15.0, 55.0)
    tiles = bench.mixed_tiles((7.0, 51.0), [6], (9, 5), coverage)
    assert len(tiles) == 45 and len({t[:3] for t in tiles}) == 45
    assert (6, 33, 21, False) in tiles
    assert (6, 29, 19, True) in tiles  # 16.9-11.25 W: the Atlantic
    assert all(29 <= x <= 37 and 19 <= y <= 23 for _z, x, y, _o in tiles)
