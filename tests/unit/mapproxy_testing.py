# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Helpers of the module tests: run a module's main() in-process, build
MapProxy configurations, count tiles independently of MapProxy, serve tiles
on 127.0.0.1. Imported as
``ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing`` (the
collection loader of ansible-test does not allow ``import conftest``)."""

from __future__ import annotations

import contextlib
import http.server
import io
import math
import os
import subprocess
import sys
import threading
from pathlib import Path
from unittest import mock

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args

# The venv that runs pytest is the MapProxy venv of the tests.
VENV = sys.prefix
HAVE_MAPPROXY = os.access(os.path.join(VENV, 'bin', 'python'), os.X_OK) and os.access(
    os.path.join(VENV, 'bin', 'mapproxy-seed'), os.X_OK)

needs_mapproxy = pytest.mark.skipif(not HAVE_MAPPROXY, reason='MapProxy is not installed in the venv running pytest')


class ModuleExit(Exception):
    def __init__(self, result):
        super().__init__(result.get('msg', ''))
        self.result = result


def run_module(module, args, check_mode=False):
    """Run ``module.main()`` with ``args``; return the result dict (``failed``
    is True when the module called fail_json)."""
    args = dict(args)
    if check_mode:
        args['_ansible_check_mode'] = True

    def exit_json(self, **kwargs):
        kwargs.setdefault('changed', False)
        kwargs['failed'] = False
        raise ModuleExit(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs['msg'] = msg
        kwargs['failed'] = True
        raise ModuleExit(kwargs)

    ansible_warnings._global_warnings.clear()
    result = None
    with patch_module_args(args), \
            mock.patch.object(basic.AnsibleModule, 'exit_json', exit_json), \
            mock.patch.object(basic.AnsibleModule, 'fail_json', fail_json):
        try:
            module.main()
        except ModuleExit as ex:
            result = ex.result
    if result is None:
        raise AssertionError('the module returned without exit_json or fail_json')
    result['_ansible_warnings'] = list(ansible_warnings.get_warning_messages())
    ansible_warnings._global_warnings.clear()
    return result


# ---------------------------------------------------------------------------
# MapProxy configurations


def dump_yaml(data):
    import yaml
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=False)


def make_config(base_dir, caches=None, sources=None, layers=None, grids=None, services=None, globals_extra=None):
    """A MapProxy configuration dict with the webmercator grid of the runbook."""
    conf = {
        'services': services if services is not None else {'tms': {'origin': 'nw'}, 'wmts': {}},
        'layers': layers if layers is not None else [
            {'name': name, 'title': name, 'sources': [name]} for name in (caches or {})],
        'caches': caches or {},
        'sources': sources if sources is not None else {'dbg': {'type': 'debug'}},
        'grids': grids if grids is not None else {
            'webmercator': {'base': 'GLOBAL_WEBMERCATOR', 'srs': 'EPSG:3857', 'origin': 'nw'}},
        'globals': {'cache': {'base_dir': str(base_dir), 'lock_dir': str(Path(base_dir) / 'locks')}},
    }
    if globals_extra:
        conf['globals'].update(globals_extra)
    return conf


def file_cache(directory=None, layout='tms', grids=('webmercator',), sources=('dbg',)):
    cache = {'type': 'file', 'directory_layout': layout}
    if directory is not None:
        cache['directory'] = str(directory)
    return {'grids': list(grids), 'sources': list(sources), 'cache': cache}


def write_config(path, conf):
    path = Path(path)
    path.write_text(dump_yaml(conf))
    return str(path)


# ---------------------------------------------------------------------------
# Tile arithmetic, independent of MapProxy (web mercator, XYZ / origin nw)


def xyz_tiles(bbox, level):
    """Tiles of GLOBAL_WEBMERCATOR (origin nw) that a lon/lat bbox touches."""
    def tile_x(lon):
        return int(math.floor((lon + 180.0) / 360.0 * 2 ** level))

    def tile_y(lat):
        rad = math.radians(lat)
        return int(math.floor((1.0 - math.log(math.tan(rad) + 1.0 / math.cos(rad)) / math.pi) / 2.0 * 2 ** level))

    minx, miny, maxx, maxy = bbox
    last = 2 ** level - 1
    xs = range(max(tile_x(minx), 0), min(tile_x(maxx), last) + 1)
    ys = range(max(tile_y(maxy), 0), min(tile_y(miny), last) + 1)
    return {(x, y, level) for x in xs for y in ys}


def files_under(directory):
    """All files below a folder, as relative paths."""
    found = set()
    for root, _dirs, files in os.walk(directory):
        for name in files:
            found.add(os.path.relpath(os.path.join(root, name), directory))
    return found


def tms_tile_files(directory):
    """{(x, y, z)} of a tms-layout cache folder, for assertions."""
    tiles = set()
    for rel in files_under(directory):
        parts = rel.split(os.sep)
        if len(parts) == 3 and parts[2].endswith('.png'):
            tiles.add((int(parts[1]), int(parts[2][:-4]), int(parts[0])))
    return tiles


# ---------------------------------------------------------------------------
# Local upstream servers (loopback only)


def _png_bytes():
    from PIL import Image
    buf = io.BytesIO()
    Image.new('RGB', (256, 256), (200, 220, 240)).save(buf, 'PNG')
    return buf.getvalue()


class TileServer:
    def __init__(self):
        png = _png_bytes()
        self.requests = []
        server_self = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server_self.requests.append(self.path)
                if self.path.startswith('/tiles/') and self.path.endswith('.png'):
                    self.send_response(200)
                    self.send_header('Content-Type', 'image/png')
                    self.send_header('Content-Length', str(len(png)))
                    self.end_headers()
                    self.wfile.write(png)
                else:
                    self.send_error(404)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = 'http://127.0.0.1:%d/tiles/%%(tms_path)s.png' % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def tile_source(url, grid='webmercator'):
    return {'type': 'tile', 'url': url, 'grid': grid}


def mapproxy_seed(config_path, caches, bbox, levels, workdir, grids=None):
    """Seed with the real mapproxy-seed (not through a module), to prepare caches."""
    import subprocess
    task = {'caches': list(caches), 'levels': list(levels), 'coverages': ['area']}
    if grids:
        task['grids'] = list(grids)
    seed = {'coverages': {'area': {'bbox': list(bbox), 'srs': 'EPSG:4326'}}, 'seeds': {'prepare': task}}
    seed_path = Path(workdir) / 'prepare-seed.yaml'
    seed_path.write_text(dump_yaml(seed))
    proc = subprocess.run([os.path.join(VENV, 'bin', 'mapproxy-seed'), '-f', str(config_path), '-s', str(seed_path),
                           '--seed', 'prepare', '-c', '1'],
                          capture_output=True, text=True, timeout=120, check=False, cwd=str(workdir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seed_path.unlink()


@contextlib.contextmanager
def seed_lock_held(base_dir, cache):
    """A process that holds mapproxy-seed's cache lock on ``cache`` with MapProxy's own
    CacheLocker, as ``mapproxy-seed --use-cache-lock`` does when started in ``base_dir``.
    Yields the process; kills it on exit."""
    holder = subprocess.Popen(
        [os.path.join(VENV, 'bin', 'python'), '-c',
         'import sys, time\n'
         'from mapproxy.seed.cachelock import CacheLocker\n'
         'with CacheLocker(".mapproxy_seed.lck").lock(sys.argv[1]):\n'
         '    print("locked", flush=True)\n'
         '    time.sleep(60)\n', cache],
        cwd=str(base_dir), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        yield holder
    finally:
        holder.kill()
        holder.wait()
