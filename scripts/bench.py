#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The performance harness of the collection; run it with scripts/bench.sh.

It deploys the stack with playbooks/demo.yml into its own Debian 13 container
(``p2d2-bench``, host network, MapProxy on 127.0.0.1:18880, the stand-in
upstream on 127.0.0.1:18891), measures on loopback with wrk, and prints the
machine and one markdown table:

1. cached tiles (a random set over several levels, seeded first) on the
   Leaflet/WMTS URL at a low and a high connection count, for every layout of
   LAYOUTS, in interleaved rounds, with ratios against the first layout;
2. uncached tiles (MapProxy fetches them from the stand-in), fresh ones in
   every cell;
3. a graceful reload under load: site.yml changes a layer title while wrk
   runs; non-2xx answers, socket errors and the latency against steady load;
4. deploy time: playbooks/demo.yml on the fresh container, then playbooks/site.yml
   again (0 changes), and their ratio;
5. seeding: the module p2d2.mapproxy.mapproxy_seed against raw mapproxy-seed
   on the same job, the cache cleared before each;
6. mixed tiles: a Leaflet session on the runbook's map panned at levels 5-9,
   many of its tiles outside the OSM source's coverage (which MapProxy answers
   without storing them), after one pass over them, for the defaults and the
   runbook's Gunicorn settings;
7. tiles from a shared store: the same cached tiles from an S3 cache (moto's
   server on this machine, 127.0.0.1:18893) through the front door, with
   nginx's copies (the defaults) and without them, beside the file cache;
8. cleaning a shared store (``--measure store-cleanup``, not in the default set): MapProxy's
   ``mapproxy-seed --cleanup`` (a walk over the tile pyramid, requests per tile) against the
   collection's ``p2d2-mapproxy-cache clean`` and ``limit`` (a listing or a scan, a delete per
   page) on an S3 cache (moto's server, 127.0.0.1:18894) and a Redis cache (a redis-server of
   its own, 127.0.0.1:18895), a full pyramid of 21,845 tiles written into the store before every
   cell. Alone, it runs on this machine without the container and writes store-cleanup.md.
9. cached tiles through a balancer: the cached tiles of 1. through HAProxy (the role
   mapproxy_lb in the same container, the front door its one backend, 127.0.0.1:18896)
   against the front door directly, interleaved: the balancer's cost on the same cores.

``--sweep`` measures the Gunicorn variants of SWEEP on cached tiles instead.
The measuring and table code (wrk with a Lua done() hook that prints JSON) is
also used by tests/bench/test_bench.py against a local Gunicorn.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / '.testbed' / 'bench'

CONTAINER = 'p2d2-bench'
PUBLIC_PORT = 18880
STATIC_PORT = 18881
# Gunicorn's own TCP bind (mapproxy_gunicorn_backend_binds), for the rows that measure it without nginx.
BACKEND_PORT = 18882
STANDIN_PORT = 18891
# --upstream-delay: a proxy in the container that answers like the stand-in, later.
DELAY_PORT = 18892
# moto's S3 server (the tool venv's), on this machine: the container shares its network.
STORE_PORT = 18893
STORE_PREFIX = '/wmts/osm_s3/webmercator/'
# HAProxy of the role mapproxy_lb in the container (row 9) and its statistics page.
LB_PORT = 18896
LB_STATS_PORT = 18897
DELAY_PROXY = '''
import http.server, sys, time, urllib.error, urllib.request
port, target, delay = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def do_GET(self):
        time.sleep(delay)
        try:
            with urllib.request.urlopen(target + self.path, timeout=30) as answer:
                status, headers, body = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            status, headers, body = error.code, error.headers, error.read()
        self.send_response(status)
        self.send_header('Content-Type', headers.get('Content-Type', 'application/octet-stream'))
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer.request_queue_size = 256
http.server.ThreadingHTTPServer(('127.0.0.1', port), Handler).serve_forever()
'''
SERVICE = 'mapproxy'
CACHE_DIR = '/cache/osm'
TILE_PREFIX = '/wmts/osm/webmercator/'
MAPPROXY_CONFIG = '/etc/mapproxy/mapproxy.yaml'
VENV = '/opt/mapproxy/venv'

# The layouts compared on cached and uncached tiles, in this order in every round.
# A layout is extra vars for playbooks/site.yml, re-run with only `tags`; the first
# one is the reference of the ratios. `direct` layouts are measured on Gunicorn's own
# TCP bind (BACKEND_PORT) instead of nginx's public port. `static` is the static-file limit: nginx from
# Debian's packages serving the cache folder on STATIC_PORT (cached tiles only).
# `profile` marks the layout that --profile records (a Gunicorn worker under load).
DEFAULT_TAGS = ['mapproxy_gunicorn']
# Switching the fast path on or off runs the nginx role with the config it serves.
LAYOUT_TAGS = ['mapproxy_config', 'mapproxy_gunicorn', 'mapproxy_nginx']
LAYOUTS = [
    {'name': 'defaults: nginx fast path + Gunicorn', 'vars': {}, 'tags': LAYOUT_TAGS},
    {'name': 'Gunicorn only (no nginx)', 'vars': {}, 'direct': True, 'tags': LAYOUT_TAGS, 'profile': True},
    # The runbook's gunicorn.conf.py: sync, 4 workers, max_requests 1000 (+ jitter 50),
    # keepalive 2, Gunicorn asked directly (the runbook has no nginx).
    {'name': 'runbook: sync × 4, max_requests 1000', 'direct': True, 'vars': {
        'mapproxy_gunicorn_worker_class': 'sync',
        'mapproxy_gunicorn_workers': 4, 'mapproxy_gunicorn_max_requests': 1000,
        'mapproxy_gunicorn_max_requests_jitter': 50, 'mapproxy_gunicorn_keepalive': 2},
     'tags': LAYOUT_TAGS},
    {'name': 'static limit: nginx from disk', 'static': True},
]

# Gunicorn variants of --sweep (cached tiles; uncached ones too with --upstream-delay),
# each complete, so that the sweep does not depend on the current defaults.


def _gunicorn(worker_class, workers, threads=1, max_requests=0, keepalive=2):
    name = '%s %s' % (worker_class, '%d × %d' % (workers, threads) if worker_class == 'gthread' else '× %d' % workers)
    name += ', max_requests %d' % max_requests + (', keepalive %d' % keepalive if keepalive != 2 else '')
    # Gunicorn asked directly: with the fast path, nginx would answer the cached tiles.
    return {'name': name, 'tags': LAYOUT_TAGS, 'direct': True,
            'vars': {'mapproxy_gunicorn_worker_class': worker_class,
                     'mapproxy_gunicorn_workers': workers, 'mapproxy_gunicorn_threads': threads,
                     'mapproxy_gunicorn_max_requests': max_requests,
                     'mapproxy_gunicorn_keepalive': keepalive}}


SWEEP = [
    _gunicorn('sync', 4, max_requests=1000),
    _gunicorn('sync', 4),
    _gunicorn('gthread', 4, 4),
    _gunicorn('gthread', 2, 4),
    _gunicorn('gthread', 4, 4, keepalive=10),
]

# The area of the runbook's seeding example (EPSG:4326): inside the stand-in's coverage.
BBOX = (5.8, 50.2, 9.0, 52.5)
UNCACHED_LEVELS = (13, 14, 15)

# 6. A Leaflet session on the runbook's map (`L.map('map').setView([51.0, 7.0], 10)`),
# panned at levels 5 to 9: the tiles of a window of MIXED_WINDOW tiles (columns, rows)
# around the centre at each level. Those that do not touch the OSM source's coverage
# (Germany: roles/mapproxy's defaults, read from there) MapProxy answers without storing.
MIXED_CENTRE = (7.0, 51.0)
MIXED_LEVELS = (5, 6, 7, 8, 9)
MIXED_WINDOW = (9, 5)


class BenchError(Exception):
    pass


def log(message):
    print('==> ' + message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# wrk: a Lua script with the paths, and a done() hook that prints JSON

JSON_MARK = 'P2D2_BENCH_JSON '

_LUA = r'''-- Generated by scripts/bench.py.
local paths = {%(paths)s}
local order = "%(order)s"
local count_status = %(count_status)s
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(%(seed)d + id)
  n = 0
  wrapped = 0
  non2xx = 0
end

function request()
  local i
  if order == "random" then
    i = math.random(#paths)
  else
    -- Every thread walks its own share of the list: each path is requested once.
    i = id + n * %(threads)d
    n = n + 1
    if i >= #paths then
      wrapped = wrapped + 1
      i = i %% #paths
    end
    i = i + 1
  end
  return wrk.format("GET", paths[i])
end

if count_status then
  function response(status, headers, body)
    if status < 200 or status > 299 then
      non2xx = non2xx + 1
    end
  end
end

function done(summary, latency, requests)
  local non2xx_total, wrapped_total = 0, 0
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + (thread:get("non2xx") or 0)
    wrapped_total = wrapped_total + (thread:get("wrapped") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests": %%d, "duration_us": %%d, "bytes": %%d, ' ..
    '"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d, ' ..
    '"non2xx": %%s, "wrapped": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d, "mean_us": %%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    count_status and tostring(non2xx_total) or "null", wrapped_total,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
'''


def write_lua(path, paths, order='random', count_status=False, threads=2, seed=42):
    """A wrk script requesting ``paths`` at random or each once in turn
    (``sequential``); ``count_status`` counts every non-2xx answer (a Lua call per
    response: only where exact counts matter more than throughput)."""
    if order not in ('random', 'sequential'):
        raise ValueError(order)
    if not paths:
        raise BenchError('no paths to request')
    body = ','.join(json.dumps(p) for p in paths)
    Path(path).write_text(_LUA % {'paths': body, 'order': order, 'seed': seed, 'threads': threads,
                                  'count_status': 'true' if count_status else 'false',
                                  'mark': JSON_MARK}, encoding='utf-8')
    return Path(path)


def parse_wrk(stdout):
    """The JSON line of the done() hook, with derived figures."""
    for line in stdout.splitlines():
        if line.startswith(JSON_MARK):
            data = json.loads(line[len(JSON_MARK):])
            break
    else:
        raise BenchError('wrk printed no result (its output: %r)' % stdout[-2000:])
    seconds = data['duration_us'] / 1e6
    data['rps'] = data['requests'] / seconds if seconds else 0.0
    data['socket_errors'] = data['connect'] + data['read'] + data['write'] + data['timeout']
    return data


def wrk_argv(url, lua, conns, duration, threads=2, timeout=10):
    threads = max(1, min(threads, conns))
    return ['wrk', '-t%d' % threads, '-c%d' % conns, '-d%ds' % max(1, math.ceil(duration)),
            '--timeout', '%ds' % timeout, '-s', str(lua), url]


def run_wrk(url, lua, conns, duration, threads=2, timeout=10):
    """One wrk run; its parsed result."""
    argv = wrk_argv(url, lua, conns, duration, threads, timeout)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + timeout + 30)
    if proc.returncode != 0:
        raise BenchError('%s failed (%d): %s' % (shlex.join(argv), proc.returncode, proc.stderr.strip()))
    return parse_wrk(proc.stdout)


class WrkInBackground:
    """wrk running until stop(): it reports on SIGINT as at its end."""

    def __init__(self, url, lua, conns, threads=2, timeout=10, limit=600):
        self.proc = subprocess.Popen(wrk_argv(url, lua, conns, limit, threads, timeout),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.started = time.monotonic()

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=60)
        if self.proc.returncode != 0:
            raise BenchError('wrk failed (%d): %s' % (self.proc.returncode, err.strip()))
        return parse_wrk(out)


# ---------------------------------------------------------------------------
# Tiles

def xyz(lon, lat, zoom):
    n = 2 ** zoom
    x = int((lon + 180.0) / 360.0 * n)
    lat_r = math.radians(lat)
    y = int((1.0 - math.log(math.tan(lat_r) + 1.0 / math.cos(lat_r)) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def tiles_in_bbox(bbox, levels):
    """(z, x, y) of the XYZ tiles that cover ``bbox`` (EPSG:4326) on ``levels``."""
    minx, miny, maxx, maxy = bbox
    for z in levels:
        x0, y0 = xyz(minx, maxy, z)
        x1, y1 = xyz(maxx, miny, z)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                yield z, x, y


def tile_bbox(z, x, y):
    """(minlon, minlat, maxlon, maxlat) of an XYZ tile."""
    n = 2 ** z

    def lat(row):
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))
    return x / n * 360.0 - 180.0, lat(y + 1), (x + 1) / n * 360.0 - 180.0, lat(y)


def mixed_tiles(centre, levels, window, coverage):
    """(z, x, y, outside) of the tiles of a ``window`` around ``centre`` on ``levels``;
    ``outside``: the tile does not touch ``coverage`` (a bbox in EPSG:4326)."""
    tiles = []
    for z in levels:
        cx, cy = xyz(centre[0], centre[1], z)
        n = 2 ** z
        for x in range(cx - window[0] // 2, cx + window[0] // 2 + 1):
            for y in range(cy - window[1] // 2, cy + window[1] // 2 + 1):
                if not (0 <= x < n and 0 <= y < n):
                    continue
                b = tile_bbox(z, x, y)
                outside = b[2] <= coverage[0] or b[0] >= coverage[2] or b[3] <= coverage[1] or b[1] >= coverage[3]
                tiles.append((z, x, y, outside))
    return tiles


def osm_coverage():
    """The bbox of the OSM source's coverage in the mapproxy role's defaults."""
    import yaml
    defaults = yaml.safe_load((ROOT / 'roles' / 'mapproxy' / 'defaults' / 'main.yml').read_text(encoding='utf-8'))
    coverage = defaults['mapproxy_sources']['osm_tiles']['coverage']
    if coverage.get('srs') != 'EPSG:4326':
        raise BenchError('the OSM coverage is not in EPSG:4326: %r' % coverage)
    return tuple(coverage['bbox'])


def tile_path(z, x, y, prefix=TILE_PREFIX):
    return '%s%d/%d/%d.png' % (prefix, z, x, y)


def fmt_levels(levels):
    return '%d–%d' % (min(levels), max(levels)) if len(levels) > 1 else str(levels[0])


# ---------------------------------------------------------------------------
# The table

def ms(us):
    return '%.1f' % (us / 1000.0) if us < 100000 else '%d' % round(us / 1000.0)


def fnum(value):
    return '{:,.0f}'.format(value)


class Table:
    """One markdown table: a row per figure, whatever was measured."""

    HEAD = ('#', 'Measurement', 'Setting', 'Result', 'p50 / p99 / max (ms)', 'Errors', 'Ratio')

    def __init__(self):
        self.rows = []

    def add(self, number, measurement, setting, result, latency='', errors='', ratio=''):
        self.rows.append((str(number), measurement, setting, result, latency, errors, ratio))

    def render(self):
        lines = ['| ' + ' | '.join(self.HEAD) + ' |',
                 '|' + '|'.join(['---', '---', '---', '---:', '---:', '---:', '---:']) + '|']
        for row in self.rows:
            lines.append('| ' + ' | '.join(cell.replace('|', '\\|') for cell in row) + ' |')
        return '\n'.join(lines)


def errors_text(results):
    """Non-2xx (wrk counts status >= 400 unless the script counted every
    non-2xx) and socket errors, summed over runs."""
    non2xx = sum(r['non2xx'] if r.get('non2xx') is not None else r['status'] for r in results)
    sock = sum(r['socket_errors'] for r in results)
    text = '%d non-2xx, %d socket' % (non2xx, sock)
    wrapped = sum(r.get('wrapped', 0) for r in results)
    if wrapped:
        text += ', %d repeated' % wrapped
    return text


def summarise(results):
    """Median figures over rounds; the throughput of each round too."""
    rps = [r['rps'] for r in results]
    result = '%s req/s' % fnum(statistics.median(rps))
    if len(rps) > 1:
        result += ' (%s)' % ' / '.join(fnum(v) for v in rps)
    latency = '%s / %s / %s' % (ms(statistics.median(r['p50_us'] for r in results)),
                                ms(statistics.median(r['p99_us'] for r in results)),
                                ms(max(r['max_us'] for r in results)))
    return result, latency, errors_text(results)


def add_cells(table, number, measurement, layouts, conns_list, cells, reference=None):
    """Rows of one measurement: a row per layout and connection count, with the
    reference layout's median throughput divided by this layout's."""
    for conns in conns_list:
        ref = cells.get((reference, conns)) if reference else None
        for name in layouts:
            results = cells.get((name, conns))
            if not results:
                continue
            result, latency, errors = summarise(results)
            ratio = ''
            if ref and name != reference:
                ratio = '%s ÷ this: %.2f' % (reference, statistics.median(r['rps'] for r in ref)
                                              / statistics.median(r['rps'] for r in results))
            table.add(number, measurement, '%s, %d conns' % (name, conns), result, latency, errors, ratio)


# ---------------------------------------------------------------------------
# py-spy's collapsed stacks ("frame;frame;frame count"), summarised

_FRAME_RE = re.compile(r'^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$')


def short_frame(frame):
    match = _FRAME_RE.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group('file')
    for marker in ('site-packages/', 'lib/python3'):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return '%s (%s)' % (match.group('func'), path)


def summarise_profile(text, load=None, top=12):
    """Lines: where the workers spend the time they handle requests, by own
    time (the frame running when sampled) and including callees."""
    own, incl, total, handling = {}, {}, 0, 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(' ')
        if not stack or not count.isdigit():
            continue
        count = int(count)
        total += count
        frames = [short_frame(f) for f in stack.split(';')]
        # Only request handling: the master's loop and idle workers are left out.
        start = next((i for i, f in enumerate(frames) if f.startswith('handle_request ')
                      or '.handle_request ' in f), None)
        if start is None:
            continue
        frames = frames[start:]
        handling += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            incl[frame] = incl.get(frame, 0) + count
    if not handling:
        return ['- py-spy recorded %d samples, none of them in request handling' % total]
    lines = ['- py-spy: %d samples of the Gunicorn master and workers, %d of them in request handling%s;'
             ' shares below are of those' % (total, handling,
                                              (' (wrk meanwhile: %s req/s)' % fnum(load['rps'])) if load else '')]
    lines.append('- Own time (the frame running when sampled):')
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append('  - %4.1f %% %s' % (100.0 * count / handling, frame))
    lines.append('- Including callees:')
    for frame, count in sorted(incl.items(), key=lambda kv: -kv[1])[1:top + 1]:
        lines.append('  - %4.1f %% %s' % (100.0 * count / handling, frame))
    return lines


# ---------------------------------------------------------------------------
# The container and the playbooks

def run(argv, check=True, timeout=1800, **kwargs):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise BenchError('%s failed (%d):\n%s%s' % (shlex.join(str(a) for a in argv), proc.returncode,
                                                    proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc


def dexec(script, user=None, check=True, timeout=1800):
    argv = ['docker', 'exec']
    if user:
        argv += ['-u', user]
    return run(argv + [CONTAINER, 'sh', '-c', script], check=check, timeout=timeout)


def http_get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as ex:
        return ex.code, b''
    except (urllib.error.URLError, OSError):
        return 0, b''


def wait_for(url, seconds=90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if http_get(url, timeout=5)[0] == 200:
            return
        time.sleep(0.5)
    raise BenchError('%s did not answer 200 within %d s' % (url, seconds))


class Bench:
    def __init__(self, args):
        self.args = args
        self.table = Table()
        self.data = {}
        self.state = STATE
        self.logs = STATE / 'logs'
        self.logs.mkdir(parents=True, exist_ok=True)
        self.inventory = STATE / 'inventory'
        self.applied = None
        self.base = 'http://127.0.0.1:%d' % PUBLIC_PORT
        self.static = 'http://127.0.0.1:%d' % STATIC_PORT
        self.backend = 'http://127.0.0.1:%d' % BACKEND_PORT
        self.playbook_runs = 0
        self.rng = random.Random(args.seed)

    # -- set-up ------------------------------------------------------------

    def write_inventory(self):
        self.inventory.mkdir(parents=True, exist_ok=True)
        (self.inventory / 'hosts.yml').write_text(
            '# Written by scripts/bench.py: its own container, with the demo inventory\'s group_vars.\n'
            'mapproxy:\n  hosts:\n    %s:\n      ansible_connection: community.docker.docker\n'
            '      ansible_host: %s\n'
            # A host var, not an extra var: the stand-in upstream's own Gunicorn (a role
            # parameter of playbooks/standin_upstreams.yml) must keep its port.
            '      mapproxy_gunicorn_backend_binds: ["127.0.0.1:%d"]\n' % (CONTAINER, CONTAINER, BACKEND_PORT),
            encoding='utf-8')
        link = self.inventory / 'group_vars'
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(ROOT / 'inventory' / 'demo' / 'group_vars')

    def base_vars(self):
        return {'p2d2_demo_port': PUBLIC_PORT, 'p2d2_standin_port': STANDIN_PORT}

    def playbook(self, name, playbook, extra=None, tags=None, inventory=None):
        """Run a playbook against the container; wall seconds and the changed count."""
        self.playbook_runs += 1
        varsfile = self.state / ('vars-%02d.json' % self.playbook_runs)
        varsfile.write_text(json.dumps(dict(self.base_vars(), **(extra or {}))), encoding='utf-8')
        argv = ['ansible-playbook', '-i', str(inventory or self.inventory), str(ROOT / 'playbooks' / playbook),
                '-e', '@' + str(varsfile)]
        if tags:
            argv += ['--tags', ','.join(tags)]
        logfile = self.logs / ('%02d-%s.log' % (self.playbook_runs, name))
        start = time.monotonic()
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              cwd=ROOT, timeout=1800)
        seconds = time.monotonic() - start
        logfile.write_text(proc.stdout, encoding='utf-8')
        if proc.returncode != 0:
            raise BenchError('%s failed; the end of its log (%s):\n%s'
                             % (shlex.join(argv), logfile, proc.stdout[-4000:]))
        changed = sum(int(m) for m in re.findall(r'^\S+\s*:\s*ok=\d+\s+changed=(\d+)', proc.stdout, re.M))
        return seconds, changed

    def create_container(self):
        if run(['docker', 'container', 'inspect', CONTAINER], check=False).returncode == 0:
            log('Removing the container %s of an earlier run' % CONTAINER)
            run(['docker', 'rm', '-f', CONTAINER])
        ports = (PUBLIC_PORT, STATIC_PORT, STANDIN_PORT, BACKEND_PORT, STORE_PORT, LB_PORT, LB_STATS_PORT)
        for port in ports:
            if run(['ss', '-ltnH', 'sport = :%d' % port], check=False).stdout.strip():
                raise BenchError('port %d is taken on this machine: the harness needs 127.0.0.1:%s'
                                 % (port, ', '.join(str(p) for p in ports)))
        args = [a for a in os.environ.get('P2D2_CONTAINER_ARGS', '').split('\n') if a]
        if not args:
            raise BenchError('P2D2_CONTAINER_ARGS is empty: run the harness with scripts/bench.sh')
        log('Creating the Debian 13 container %s' % CONTAINER)
        run(['docker', 'run', '-d', '--name', CONTAINER, '--hostname', CONTAINER] + args + [self.args.image])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = dexec('systemctl is-system-running', check=False).stdout.strip()
            if state in ('running', 'degraded'):
                return
            time.sleep(1)
        raise BenchError('systemd in %s did not come up within 60 s' % CONTAINER)

    def remove_container(self):
        if run(['docker', 'container', 'inspect', CONTAINER], check=False).returncode == 0:
            run(['docker', 'rm', '-f', CONTAINER])
            log('Removed the container %s' % CONTAINER)

    # -- 4. deploy time ----------------------------------------------------

    def deploy(self):
        log('Deploying playbooks/demo.yml on the fresh container (timed)')
        first, changed1 = self.playbook('deploy-1', 'demo.yml')
        log('First run: %.0f s, %d changed; running it again' % (first, changed1))
        # What an operator runs again and again: site.yml alone, on the converged host.
        second, changed2 = self.playbook('deploy-2', 'site.yml')
        self.data['deploy'] = {'first_s': first, 'first_changed': changed1,
                               'second_s': second, 'second_changed': changed2}
        if changed2 != 0:
            raise BenchError('the second run, playbooks/site.yml, changed %d tasks (log: %s)'
                             % (changed2, self.logs))
        self.applied = {}
        wait_for(self.base + tile_path(6, 33, 21))

    # -- layouts -----------------------------------------------------------

    def apply(self, layout):
        """Switch the deployment to a layout: site.yml with its vars and tags, a
        restart (fresh workers for every layout), then wait for an answer."""
        if layout.get('static'):
            return
        layout_vars = dict(layout['vars'])
        tags = layout.get('tags', DEFAULT_TAGS)
        if self.args.upstream_delay:
            # MapProxy fetches uncached tiles through the delaying proxy.
            layout_vars['p2d2_standin_port'] = DELAY_PORT
            tags = sorted(set(tags) | {'mapproxy_config'})
        if layout_vars == self.applied:
            return
        log('Applying the layout "%s"' % layout['name'])
        self.playbook('layout', 'site.yml', layout_vars, tags)
        dexec('systemctl restart %s.service' % SERVICE)
        self.applied = layout_vars
        wait_for(self.url_of(layout) + self.cached_paths[0])

    def url_of(self, layout):
        if layout.get('static'):
            return self.static
        return self.backend if layout.get('direct') else self.base

    # -- the static limit ----------------------------------------------------

    def start_delay_proxy(self):
        delay = self.args.upstream_delay / 1000.0
        log('Starting a proxy on 127.0.0.1:%d that answers as the stand-in upstream, %.0f ms later'
            % (DELAY_PORT, self.args.upstream_delay))
        dexec('cat > /usr/local/lib/p2d2-bench-delay.py <<"EOF"\n%sEOF\n'
              'systemctl stop p2d2-bench-delay.service 2>/dev/null; systemctl reset-failed p2d2-bench-delay.service'
              ' 2>/dev/null; systemd-run --unit p2d2-bench-delay --quiet python3 /usr/local/lib/p2d2-bench-delay.py'
              ' %d http://127.0.0.1:%d %s' % (DELAY_PROXY, DELAY_PORT, STANDIN_PORT, delay))
        url = 'http://127.0.0.1:%d%s' % (DELAY_PORT, tile_path(0, 0, 0))
        wait_for(url)
        started = time.monotonic()
        status = http_get(url)[0]
        if status != 200 or time.monotonic() - started < delay:
            raise BenchError('the delaying proxy answered %s in %.3f s, not 200 after %.3f s'
                             % (status, time.monotonic() - started, delay))

    def start_static_nginx(self):
        log('Installing nginx (Debian package) in the container, serving %s on 127.0.0.1:%d'
            % (CACHE_DIR, STATIC_PORT))
        # policy-rc.d keeps the package from starting its own service (on port 80 of the host network).
        dexec('dpkg-query -W -f="${Status}" nginx 2>/dev/null | grep -q "install ok installed" || {'
              ' own=0; [ -e /usr/sbin/policy-rc.d ] || { printf "#!/bin/sh\\nexit 101\\n" > /usr/sbin/policy-rc.d;'
              ' chmod 0755 /usr/sbin/policy-rc.d; own=1; };'
              ' apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq'
              ' --no-install-recommends nginx >/dev/null; rc=$?;'
              ' [ "$own" = 1 ] && rm -f /usr/sbin/policy-rc.d; exit $rc; }', timeout=900)
        conf = '''# Written by scripts/bench.py: the static-file limit, not a deployment.
worker_processes auto;
pid /run/p2d2-bench-nginx.pid;
error_log /var/log/p2d2-bench-nginx.log;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:%d;
        location %s { alias %s/; }
    }
}
''' % (STATIC_PORT, TILE_PREFIX, CACHE_DIR)
        dexec('mkdir -p /etc/p2d2-bench && cat > /etc/p2d2-bench/nginx.conf <<"EOF"\n%sEOF\n'
              '[ -e /run/p2d2-bench-nginx.pid ] && nginx -c /etc/p2d2-bench/nginx.conf -s stop; sleep 0.5;'
              ' nginx -c /etc/p2d2-bench/nginx.conf' % conf)

    # -- 5. seeding ----------------------------------------------------------

    def clear_cache(self):
        dexec('find %s -mindepth 1 -delete' % CACHE_DIR)

    def count_tiles(self):
        return int(dexec("find %s -name '*.png' | wc -l" % CACHE_DIR).stdout.strip())

    def seed_raw(self, levels):
        seed = {'seeds': {'bench': {'caches': ['osm_cache'], 'grids': ['webmercator'],
                                    'levels': {'from': min(levels), 'to': max(levels)},
                                    'coverages': ['bench']}},
                'coverages': {'bench': {'bbox': list(BBOX), 'srs': 'EPSG:4326'}}}
        dexec("mkdir -p /etc/p2d2-bench && cat > /etc/p2d2-bench/seed.yaml <<'EOF'\n%s\nEOF\n"
              "chmod 0644 /etc/p2d2-bench/seed.yaml"
              % json.dumps(seed))
        start = time.monotonic()
        dexec('cd /cache && %s/bin/mapproxy-seed -f %s -s /etc/p2d2-bench/seed.yaml -c %d --use-cache-lock'
              ' >/dev/null' % (VENV, MAPPROXY_CONFIG, self.cores), user='mapproxy')
        return time.monotonic() - start, self.count_tiles()

    def seed_module(self, levels):
        args = {'caches': ['osm_cache'], 'grids': ['webmercator'], 'levels': {'from': min(levels), 'to': max(levels)},
                'bbox': list(BBOX), 'config': MAPPROXY_CONFIG, 'venv': VENV, 'concurrency': self.cores}
        # As root, as playbooks/seed.yml runs it: the module runs mapproxy-seed as the cache's
        # owner itself (the bare host has no sudo for a become_user).
        argv = ['ansible', CONTAINER, '-i', str(self.inventory), '-o',
                '-m', 'p2d2.mapproxy.mapproxy_seed', '-a', json.dumps(args)]
        start = time.monotonic()
        proc = run(argv, cwd=ROOT)
        seconds = time.monotonic() - start
        result = json.loads(proc.stdout.split('=>', 1)[1])
        return seconds, result, self.count_tiles()

    def seeding(self):
        levels = list(range(0, self.args.seed_levels + 1))
        log('Seeding levels %s of %s, raw mapproxy-seed against the module, %d round(s)'
            % (fmt_levels(levels), BBOX, self.args.rounds))
        raw, module = [], []
        for _ in range(self.args.rounds):
            self.clear_cache()
            seconds, tiles = self.seed_raw(levels)
            raw.append({'s': seconds, 'tiles': tiles})
            self.clear_cache()
            seconds, result, tiles = self.seed_module(levels)
            if result.get('tiles_written') != tiles:
                raise BenchError('the module reports %s tiles written, the cache holds %d'
                                 % (result.get('tiles_written'), tiles))
            module.append({'s': seconds, 'tiles': tiles, 'module_s': result['duration']})
        for run_ in raw + module:
            if run_['tiles'] != raw[0]['tiles'] or not run_['tiles']:
                raise BenchError('the seeding runs wrote different tile counts: %s %s' % (raw, module))
        self.data['seed'] = {'levels': fmt_levels(levels), 'raw': raw, 'module': module}
        tiles = raw[0]['tiles']
        raw_s = statistics.median(r['s'] for r in raw)
        mod_s = statistics.median(r['s'] for r in module)
        mod_inner = statistics.median(r['module_s'] for r in module)
        job = '%d tiles, levels %s of %s' % (tiles, fmt_levels(levels), ','.join(str(v) for v in BBOX))
        self.table.add(5, 'seeding', 'raw `mapproxy-seed -c %d`: %s' % (self.cores, job),
                       '%s tiles/s (%.1f s)' % (fnum(tiles / raw_s), raw_s))
        self.table.add(5, 'seeding', 'module `mapproxy_seed` (ad-hoc `ansible`, dry runs, counting)',
                       '%s tiles/s (%.1f s, seeding itself %.1f s)' % (fnum(tiles / mod_s), mod_s, mod_inner),
                       ratio='overhead: module ÷ raw time %.2f' % (mod_s / raw_s))

    # -- 1./2. tiles ---------------------------------------------------------

    def load_cached_paths(self):
        files = dexec("find %s -name '*.png' -printf '%%P\\n'" % CACHE_DIR).stdout.split()
        if not files:
            raise BenchError('the cache %s holds no tiles to measure' % CACHE_DIR)
        files.sort()
        self.rng.shuffle(files)
        self.cached_paths = [TILE_PREFIX + f for f in files[:self.args.tile_set]]
        self.cached_levels = sorted({int(f.split('/')[0]) for f in files})
        pool = list(tiles_in_bbox(BBOX, UNCACHED_LEVELS))
        self.rng.shuffle(pool)
        self.uncached_pool = [tile_path(*t) for t in pool]

    def check_same_bytes(self):
        """The static server serves the very files MapProxy serves."""
        path = self.cached_paths[0]
        code_a, body_a = http_get(self.base + path)
        code_b, body_b = http_get(self.static + path)
        if code_a != 200 or code_b != 200 or body_a != body_b:
            raise BenchError('%s: MapProxy answered %d (%d bytes), nginx %d (%d bytes): not the same tile'
                             % (path, code_a, len(body_a), code_b, len(body_b)))

    def take_uncached(self, count):
        if len(self.uncached_pool) < count:
            raise BenchError('too few uncached tiles left: lower --duration or --rounds')
        chunk, self.uncached_pool = self.uncached_pool[:count], self.uncached_pool[count:]
        return chunk

    def tiles(self, layouts, uncached=True):
        conns_list = self.args.conns
        cached_lua = write_lua(self.state / 'cached.lua', self.cached_paths, seed=self.args.seed)
        cached, fresh = {}, {}
        for rnd in range(1, self.args.rounds + 1):
            for layout in layouts:
                self.apply(layout)
                url = self.url_of(layout)
                log('Round %d, %s: cached tiles' % (rnd, layout['name']))
                run_wrk(url, cached_lua, max(conns_list), self.args.warmup)
                for conns in conns_list:
                    cached.setdefault((layout['name'], conns), []).append(
                        run_wrk(url, cached_lua, conns, self.args.duration))
                if not uncached or layout.get('static'):
                    continue
                log('Round %d, %s: uncached tiles' % (rnd, layout['name']))
                for conns in conns_list:
                    lua = write_lua(self.state / 'uncached.lua', self.take_uncached(self.args.uncached_set),
                                    order='sequential')
                    fresh.setdefault((layout['name'], conns), []).append(
                        run_wrk(url, lua, conns, self.args.duration, timeout=30))
        self.data['cached'] = {'%s|%d' % k: v for k, v in cached.items()}
        self.data['uncached'] = {'%s|%d' % k: v for k, v in fresh.items()}
        return cached, fresh

    # -- 6. mixed tiles ------------------------------------------------------

    def mixed(self):
        """The Leaflet session of MIXED_*: one pass over its tiles (MapProxy stores those
        inside the coverage, nginx keeps its answers for the others), then wrk at random over
        them, for the defaults and the runbook's Gunicorn settings."""
        tiles = mixed_tiles(MIXED_CENTRE, MIXED_LEVELS, MIXED_WINDOW, osm_coverage())
        paths = [tile_path(z, x, y) for z, x, y, _outside in tiles]
        outside = [tile_path(z, x, y) for z, x, y, out in tiles if out]
        lua = write_lua(self.state / 'mixed.lua', paths, seed=self.args.seed)
        # The defaults, the same without nginx's kept answers (as before they existed), and the runbook.
        layouts = [LAYOUTS[0], dict(LAYOUTS[0], name='defaults without kept answers (mapproxy_nginx_unstored_cache'
                                                      ' false)', vars={'mapproxy_nginx_unstored_cache': False}),
                   LAYOUTS[2]]
        cells = {}
        for rnd in range(1, self.args.rounds + 1):
            for layout in layouts:
                self.apply(layout)
                url = self.url_of(layout)
                log('Round %d, %s: mixed tiles (%d, %d outside the coverage), one pass first'
                    % (rnd, layout['name'], len(paths), len(outside)))
                failed = [(path, code) for path, code in self.fetch_all(url, paths) if code != 200]
                if failed:
                    raise BenchError('mixed tiles: %d answers were not 200, for example %s'
                                     % (len(failed), failed[:3]))
                for conns in self.args.conns:
                    cells.setdefault((layout['name'], conns), []).append(
                        run_wrk(url, lua, conns, self.args.duration))
        # What nginx sends from what it kept is what MapProxy sends.
        code_a, body_a = http_get(self.base + outside[0])
        code_b, body_b = http_get(self.backend + outside[0])
        if code_a != 200 or code_b != 200 or body_a != body_b:
            raise BenchError('%s: nginx answered %d (%d bytes), Gunicorn %d (%d bytes): not the same tile'
                             % (outside[0], code_a, len(body_a), code_b, len(body_b)))
        kept = dexec("grep -c 'GET /wmts/.* fastpath=miss upstream=\"-\" cache=HIT' %s || true"
                     % '/var/log/mapproxy/nginx-access.log').stdout.strip()
        self.data['mixed'] = {'%s|%d' % k: v for k, v in cells.items()}
        self.data['mixed_tiles'] = {'tiles': len(paths), 'outside': len(outside), 'kept_hits': int(kept or 0)}
        add_cells(self.table, 6, 'mixed tiles', [layout['name'] for layout in layouts], self.args.conns,
                  cells, layouts[0]['name'])
        return len(paths), len(outside)

    # -- 7. tiles from a shared store -----------------------------------------

    def store_vars(self, copies):
        """The defaults plus an S3 cache of the same source, osm_s3, and its layer."""
        import yaml
        with open(ROOT / 'roles' / 'mapproxy' / 'defaults' / 'main.yml', encoding='utf-8') as stream:
            defaults = yaml.safe_load(stream)
        caches = dict(defaults['mapproxy_caches'], osm_s3={
            'grids': ['webmercator'], 'sources': ['osm_tiles'],
            'cache': {'type': 's3', 'bucket_name': 'bench', 'directory': 'osm',
                      'endpoint_url': 'http://127.0.0.1:%d' % STORE_PORT, 'region_name': 'us-east-1'}})
        layers = defaults['mapproxy_layers'] + [{'name': 'osm_s3', 'title': 'OSM in S3', 'sources': ['osm_s3']}]
        return {'mapproxy_caches': caches, 'mapproxy_layers': layers, 'mapproxy_s3_create_buckets': True,
                'mapproxy_s3_credentials': {'access_key_id': 'bench', 'secret_access_key': 'bench'},
                'mapproxy_nginx_store_cache': copies}

    def stores(self):
        """The cached tiles of 1. from an S3 cache: one pass stores them in the bucket (and
        nginx's copies), then wrk at random over them, with nginx's copies and without,
        beside the same tiles from the file cache (nginx's fast path)."""
        moto = STATE.parent.parent / '.venv' / 'bin' / 'moto_server'
        log('Starting moto\'s S3 server on 127.0.0.1:%d' % STORE_PORT)
        server = subprocess.Popen([str(moto), '-H', '127.0.0.1', '-p', str(STORE_PORT)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while run(['ss', '-ltnH', 'sport = :%d' % STORE_PORT], check=False).stdout.strip() == '':
                if time.monotonic() > deadline:
                    raise BenchError('moto did not listen on 127.0.0.1:%d within 60 s' % STORE_PORT)
                time.sleep(0.5)
            return self._stores()
        finally:
            server.terminate()
            server.wait(timeout=30)

    def _stores(self):
        file_paths = self.cached_paths
        store_paths = [STORE_PREFIX + p[len(TILE_PREFIX):] for p in file_paths]
        file_lua = write_lua(self.state / 'stores-file.lua', file_paths, seed=self.args.seed)
        store_lua = write_lua(self.state / 'stores-s3.lua', store_paths, seed=self.args.seed)
        with_copies = {'name': 'S3 cache through the front door (nginx keeps copies)',
                       'vars': self.store_vars(True), 'tags': []}
        without = {'name': 'S3 cache through the front door, mapproxy_nginx_store_cache false',
                   'vars': self.store_vars(False), 'tags': ['mapproxy_nginx']}
        file_name = 'file cache: nginx fast path (as 1.)'
        cells = {}
        for rnd in range(1, self.args.rounds + 1):
            for layout in (with_copies, without):
                self.apply(layout)
                url = self.url_of(layout)
                if rnd == 1 and layout is with_copies:
                    log('Storing %d tiles in the S3 cache, one pass' % len(store_paths))
                    failed = [(path, code) for path, code in self.fetch_all(url, store_paths) if code != 200]
                    if failed:
                        raise BenchError('S3 tiles: %d answers were not 200, for example %s'
                                         % (len(failed), failed[:3]))
                    code_a, body_a = http_get(url + store_paths[0])
                    code_b, body_b = http_get(url + file_paths[0])
                    if code_a != 200 or code_b != 200 or body_a != body_b:
                        raise BenchError('%s answered %d (%d bytes), %s %d (%d bytes): not the same tile'
                                         % (store_paths[0], code_a, len(body_a), file_paths[0], code_b, len(body_b)))
                    log('Round %d, %s' % (rnd, file_name))
                    run_wrk(url, file_lua, max(self.args.conns), self.args.warmup)
                    for conns in self.args.conns:
                        cells.setdefault((file_name, conns), []).append(
                            run_wrk(url, file_lua, conns, self.args.duration))
                elif layout is with_copies:
                    log('Round %d, %s' % (rnd, file_name))
                    for conns in self.args.conns:
                        cells.setdefault((file_name, conns), []).append(
                            run_wrk(url, file_lua, conns, self.args.duration))
                log('Round %d, %s' % (rnd, layout['name']))
                run_wrk(url, store_lua, max(self.args.conns), self.args.warmup)
                for conns in self.args.conns:
                    cells.setdefault((layout['name'], conns), []).append(
                        run_wrk(url, store_lua, conns, self.args.duration))
        objects = int(dexec("%s/bin/python -c \"import boto3; c = boto3.client('s3', endpoint_url="
                            "'http://127.0.0.1:%d', region_name='us-east-1', aws_access_key_id='bench',"
                            " aws_secret_access_key='bench'); print(sum(p.get('KeyCount', 0) for p in"
                            " c.get_paginator('list_objects_v2').paginate(Bucket='bench')))\""
                            % (VENV, STORE_PORT)).stdout.strip())
        if objects != len(store_paths):
            raise BenchError('the bucket holds %d objects, not the %d tiles requested' % (objects, len(store_paths)))
        self.data['stores'] = {'%s|%d' % k: v for k, v in cells.items()}
        self.data['stores_tiles'] = {'tiles': len(store_paths), 'objects': objects}
        add_cells(self.table, 7, 'tiles from a shared store', [file_name, with_copies['name'], without['name']],
                  self.args.conns, cells, file_name)
        return len(store_paths)

    # -- 9. cached tiles through a balancer -------------------------------------

    def balancer(self):
        """The cached tiles of 1. through HAProxy against the front door directly, interleaved.
        The balancer is the role mapproxy_lb, deployed by site.yml into the same container with
        the container's front door as its one backend: everything shares the same cores, so the
        ratio is the balancer's work there, more than on a host of its own."""
        self.apply(LAYOUTS[0])
        inventory = self.state / 'inventory-lb'
        inventory.mkdir(parents=True, exist_ok=True)
        (inventory / 'hosts.yml').write_text(
            '# Written by scripts/bench.py: the container is also its own balancer (row 9).\n'
            'mapproxy:\n  hosts:\n    %s:\n      ansible_connection: community.docker.docker\n'
            '      ansible_host: %s\n      mapproxy_gunicorn_backend_binds: ["127.0.0.1:%d"]\n'
            '      mapproxy_lb_backend_address: 127.0.0.1\n'
            'mapproxy_lb:\n  hosts:\n    %s:\n' % (CONTAINER, CONTAINER, BACKEND_PORT, CONTAINER), encoding='utf-8')
        link = inventory / 'group_vars'
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(ROOT / 'inventory' / 'demo' / 'group_vars')
        log('Deploying HAProxy (mapproxy_lb) in front of the front door with site.yml --tags mapproxy_lb')
        seconds, _changed = self.playbook('balancer', 'site.yml', dict(
            self.applied or {}, mapproxy_lb_listen=['127.0.0.1:%d' % LB_PORT],
            mapproxy_lb_stats_listen='127.0.0.1:%d' % LB_STATS_PORT), ['mapproxy_lb'], inventory=inventory)
        lb_url = 'http://127.0.0.1:%d' % LB_PORT
        wait_for(lb_url + self.cached_paths[0])
        code_a, body_a = http_get(self.base + self.cached_paths[0])
        code_b, body_b = http_get(lb_url + self.cached_paths[0])
        if code_a != 200 or code_b != 200 or body_a != body_b:
            raise BenchError('%s: the front door answered %d (%d bytes), HAProxy %d (%d bytes): not the same tile'
                             % (self.cached_paths[0], code_a, len(body_a), code_b, len(body_b)))
        lua = write_lua(self.state / 'balancer.lua', self.cached_paths, seed=self.args.seed)
        direct = 'one host directly: its front door (the defaults, as 1.)'
        through = 'through HAProxy (mapproxy_lb) in front of it, on the same cores'
        cells = {}
        for rnd in range(1, self.args.rounds + 1):
            for name, url in ((direct, self.base), (through, lb_url)):
                log('Round %d, %s: cached tiles' % (rnd, name))
                run_wrk(url, lua, max(self.args.conns), self.args.warmup)
                for conns in self.args.conns:
                    cells.setdefault((name, conns), []).append(run_wrk(url, lua, conns, self.args.duration))
        self.data['balancer'] = {'%s|%d' % k: v for k, v in cells.items()}
        self.data['balancer_deploy_s'] = seconds
        add_cells(self.table, 9, 'cached tiles through a balancer', [direct, through], self.args.conns, cells, direct)
        return len(self.cached_paths)

    def fetch_all(self, url, paths, workers=4):
        from concurrent.futures import ThreadPoolExecutor

        def one(path):
            return path, http_get(url + path, timeout=60)[0]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(one, paths))

    # -- 3. reload under load ------------------------------------------------

    def reload(self, layout):
        self.apply(layout)
        lua = write_lua(self.state / 'reload.lua', self.cached_paths, count_status=True, seed=self.args.seed)
        conns = max(self.args.conns)
        log('Steady load for the reload test (%d conns, %d s)' % (conns, self.args.duration))
        steady = run_wrk(self.base, lua, conns, self.args.duration)
        main_before = dexec('systemctl show -p MainPID --value %s.service' % SERVICE).stdout.strip()
        workers_before = set(dexec('pgrep -P %s' % main_before).stdout.split())
        layers = self.default_layers()
        layers[0]['title'] = '%s (reloaded by the harness at %d)' % (layers[0]['title'], time.time())
        log('Changing a layer title with site.yml --tags mapproxy_config under load')
        load = WrkInBackground(self.base, lua, conns)
        time.sleep(2)
        seconds, changed = self.playbook('reload', 'site.yml', dict(self.applied or {}, mapproxy_layers=layers),
                                         ['mapproxy_config'])
        # Let the new workers take over before the window closes.
        time.sleep(3)
        window = load.stop()
        main_after = dexec('systemctl show -p MainPID --value %s.service' % SERVICE).stdout.strip()
        # Old workers finish their requests for up to graceful_timeout: wait for them.
        deadline = time.monotonic() + 40
        while True:
            workers_after = set(dexec('pgrep -P %s' % main_after, check=False).stdout.split())
            if not workers_before & workers_after or time.monotonic() > deadline:
                break
            time.sleep(1)
        title = dexec('grep -c "reloaded by the harness" %s' % MAPPROXY_CONFIG, check=False).stdout.strip()
        if not changed or title != '1':
            raise BenchError('the reload run changed nothing in mapproxy.yaml')
        graceful = main_before == main_after and not (workers_before & workers_after)
        self.data['reload'] = {'steady': steady, 'window': window, 'playbook_s': seconds, 'graceful': graceful,
                               'master': [main_before, main_after],
                               'workers': [sorted(workers_before), sorted(workers_after)]}
        self.table.add(3, 'reload under load', '%s, %d conns, steady %d s' % (layout['name'], conns,
                                                                              self.args.duration),
                       '%s req/s' % fnum(steady['rps']),
                       '%s / %s / %s' % (ms(steady['p50_us']), ms(steady['p99_us']), ms(steady['max_us'])),
                       errors_text([steady]))
        self.table.add(3, 'reload under load',
                       'same, %.0f s window: site.yml changes a layer title (HUP)%s'
                       % (window['duration_us'] / 1e6,
                          '; master kept, all workers replaced' if graceful else '; NOT a graceful reload'),
                       '%s req/s' % fnum(window['rps']),
                       '%s / %s / %s' % (ms(window['p50_us']), ms(window['p99_us']), ms(window['max_us'])),
                       errors_text([window]),
                       'p99 %.1f×, max %.1f× steady' % (window['p99_us'] / max(steady['p99_us'], 1),
                                                         window['max_us'] / max(steady['max_us'], 1)))

    # -- profile -------------------------------------------------------------

    def profile(self, layout, seconds):
        """py-spy (on this machine: the container may not ptrace) records the
        Gunicorn master and its workers while wrk loads them with cached tiles."""
        pyspy = STATE.parent / 'py-spy' / 'bin' / 'py-spy'
        if not os.access(pyspy, os.X_OK):
            raise BenchError('%s is missing: run the harness with scripts/bench.sh --profile' % pyspy)
        self.apply(layout)
        conf = '--config /etc/mapproxy/gunicorn.conf.py'
        procs = [line.split(None, 2) for line in
                 run(['docker', 'top', CONTAINER, '-eo', 'pid,ppid,args']).stdout.splitlines()[1:]]
        pids = {pid for pid, _, cmd in procs if conf in cmd}
        masters = [pid for pid, ppid, cmd in procs if conf in cmd and ppid not in pids]
        if len(masters) != 1:
            raise BenchError('cannot tell the Gunicorn master of %s from `docker top`: %s' % (SERVICE, masters))
        lua = write_lua(self.state / 'cached.lua', self.cached_paths, seed=self.args.seed)
        out = self.state / 'profile.txt'
        log('Profiling the Gunicorn master %s and its workers for %d s under load' % (masters[0], seconds))
        load = WrkInBackground(self.url_of(layout), lua, max(self.args.conns))
        time.sleep(1)
        try:
            run([str(pyspy), 'record', '--pid', masters[0], '--subprocesses', '--rate', '100',
                 '--duration', str(seconds), '--format', 'raw', '--output', str(out)], timeout=seconds + 60)
        finally:
            loaded = load.stop()
        self.data['profile'] = {'load': loaded, 'file': str(out)}
        return summarise_profile(out.read_text(encoding='utf-8'), loaded)

    def default_layers(self):
        import yaml
        with open(ROOT / 'roles' / 'mapproxy' / 'defaults' / 'main.yml', encoding='utf-8') as stream:
            return yaml.safe_load(stream)['mapproxy_layers']

    # -- machine -------------------------------------------------------------

    def machine(self):
        model = cpu_model()
        host_debian = Path('/etc/debian_version').read_text(encoding='utf-8').strip()
        cont_debian = dexec('cat /etc/debian_version').stdout.strip()
        pkgs = dexec('%s/bin/python -m pip list --format=freeze 2>/dev/null' % VENV).stdout
        versions = dict(line.split('==', 1) for line in pkgs.split() if '==' in line)
        nginx = dexec('nginx -v 2>&1', check=False).stdout.strip().replace('nginx version: ', '')
        wrk_v = run(['wrk', '-v'], check=False)
        wrk_v = (wrk_v.stdout + wrk_v.stderr).split('\n')[0].split(' [')[0].replace('wrk ', '')
        return ['- Machine: %d cores (%s), kernel %s, Debian %s; the stack in a Debian %s container'
                ' (host network, systemd)' % (self.cores, model or 'unknown CPU', os.uname().release,
                                              host_debian, cont_debian),
                '- Versions: MapProxy %s, Gunicorn %s, %s (static limit), wrk %s'
                % (versions.get('MapProxy', '?'), versions.get('gunicorn', '?'), nginx or 'nginx ?', wrk_v),
                '- wrk runs on the same %d cores as everything it measures (2 threads), over loopback;'
                ' compare figures as ratios within one run' % self.cores]

    # -- the whole run -------------------------------------------------------

    def main(self):
        args = self.args
        self.cores = os.cpu_count() or 1
        started = time.monotonic()
        self.write_inventory()
        if args.reuse:
            log('Reusing the running container %s' % CONTAINER)
            self.applied = None
        else:
            self.create_container()
            self.deploy()
        if 'seed' in args.measure or not args.reuse:
            self.seeding()
        self.load_cached_paths()
        self.start_static_nginx()
        self.check_same_bytes()
        if args.upstream_delay:
            self.start_delay_proxy()
        layouts = SWEEP if args.sweep else LAYOUTS
        cached, fresh = self.tiles(layouts, uncached=(not args.sweep or bool(args.upstream_delay))
                                   and 'uncached' in args.measure)
        names = [layout['name'] for layout in layouts]
        reference = names[0]
        add_cells(self.table, 1, 'cached tiles', names, args.conns, cached, reference)
        if fresh:
            add_cells(self.table, 2, 'uncached tiles', names, args.conns, fresh, reference)
        notes = ['1. Cached tiles: %d tiles at random over levels %s (seeded by 5.) on the Leaflet URL'
                 ' `%s{z}/{x}/{y}.png`; %d s per cell after a %d s warm-up, %d interleaved round(s) of the'
                 ' layouts; the result is the median of the rounds (each round in brackets), latency the median'
                 ' p50/p99 and the largest max; the ratio is the first layout\'s median throughput divided by'
                 ' the row\'s. Every layout is applied with `site.yml --tags %s -e ...` and a restart.'
                 % (len(self.cached_paths), fmt_levels(self.cached_levels), TILE_PREFIX, args.duration,
                    args.warmup, args.rounds, ','.join(LAYOUT_TAGS))]
        if fresh:
            notes.append('2. Uncached tiles: every request a tile that no cell requested before (levels %s'
                         ' of the same area); MapProxy fetches it from the stand-in upstream (MapProxy\'s'
                         ' debug source behind Gunicorn sync × 2, on the same cores)%s.'
                         % (fmt_levels(list(UNCACHED_LEVELS)),
                            ', through a proxy that answers %d ms later, as a remote tile server would'
                            % args.upstream_delay if args.upstream_delay else ''))
        if not args.sweep and 'mixed' in args.measure:
            total, outside = self.mixed()
            notes.append('6. Mixed tiles: a Leaflet session on the runbook\'s map (centre %s, levels %s, %d × %d tiles'
                         ' around the centre at each level): %d tiles, %d (%.0f %%) outside the OSM source\'s'
                         ' coverage, which MapProxy answers without storing them; one pass over all of them, then'
                         ' %d s at random per cell; nginx answered %d requests from the answers it kept.'
                         ' The ratio is the defaults\' throughput divided by the row\'s.'
                         % (MIXED_CENTRE[::-1], fmt_levels(list(MIXED_LEVELS)), MIXED_WINDOW[0], MIXED_WINDOW[1],
                            total, outside, 100.0 * outside / total, args.duration,
                            self.data['mixed_tiles']['kept_hits']))
        if not args.sweep and 'stores' in args.measure:
            count = self.stores()
            notes.append('7. Tiles from a shared store: the %d cached tiles of 1. from an S3 cache of the same source'
                         ' (`osm_s3`, moto\'s S3 server on this machine, the bucket made by'
                         ' `mapproxy_s3_create_buckets`), stored there by one pass (the bucket\'s listing counts'
                         ' them), then %d s at random per cell, interleaved with the file cache\'s tiles; with'
                         ' nginx\'s copies (the defaults) and without them (every tile through Gunicorn and'
                         ' MapProxy to the store). The ratio is the file cache\'s throughput divided by the row\'s.'
                         % (count, args.duration))
        if not args.sweep and 'balancer' in args.measure:
            count = self.balancer()
            notes.append('9. Cached tiles through a balancer: the %d cached tiles of 1. through HAProxy (the role'
                         ' `mapproxy_lb`, deployed by `site.yml --tags mapproxy_lb` into the same container, the'
                         ' front door its one backend, tiles hashed by meta tile) and through the front door'
                         ' directly, interleaved, %d s per cell. HAProxy, nginx and wrk share the same cores:'
                         ' the ratio (direct ÷ through HAProxy) is the balancer\'s work there, more than on a host'
                         ' of its own.' % (count, args.duration))
        cleanup = None
        if not args.sweep and 'store-cleanup' in args.measure:
            cleanup = StoreCleanup(args)
            notes.append(cleanup.run(self.table))
            self.data['store_cleanup'] = cleanup.cells
        if not args.sweep and 'reload' in args.measure:
            self.reload(LAYOUTS[0])
        profiled = next(layout for layout in LAYOUTS if layout.get('profile'))
        profile = self.profile(profiled, args.profile) if args.profile else []
        if 'deploy' in self.data:
            d = self.data['deploy']
            self.table.add(4, 'deploy time', '`playbooks/demo.yml` (stand-in + `site.yml`) on a fresh Debian 13'
                           ' container', '%.0f s, %d changed' % (d['first_s'], d['first_changed']))
            self.table.add(4, 'deploy time', '`playbooks/site.yml` again, on the converged container',
                           '%.0f s, %d changed'
                           % (d['second_s'], d['second_changed']), ratio='second ÷ first: %.2f'
                           % (d['second_s'] / d['first_s']))
        # Seeding rows after the tiles: the table reads 1 to 5.
        self.table.rows.sort(key=lambda row: int(row[0]))
        out = ['# p2d2.mapproxy performance (%s)' % ('sweep' if args.sweep else 'scripts/bench.sh'),
               '', 'Command: `scripts/bench.sh %s`' % ' '.join(sys.argv[1:]), ''] + self.machine()
        out += ['- Run: %s UTC, %.0f s in all' % (time.strftime('%Y-%m-%d %H:%M', time.gmtime()),
                                                   time.monotonic() - started), '', self.table.render()]
        if 'reload' in self.data:
            notes.append('3. Reload: the same cached tiles while `site.yml --tags mapproxy_config` changes a'
                         ' layer title, which reloads Gunicorn (HUP); the window runs from 2 s before the playbook'
                         ' to 3 s after it; wrk\'s response hook counts every non-2xx answer there.')
        if 'deploy' in self.data:
            notes.append('4. Deploy: wall time of `ansible-playbook playbooks/demo.yml` against the fresh container,'
                         ' then of `playbooks/site.yml` (the run an operator repeats, nothing to change), from this'
                         ' machine (Docker connection).')
        if 'seed' in self.data:
            notes.append('5. Seeding: the same job (cache `osm_cache`, cleared before each run) with raw'
                         ' `mapproxy-seed` (`docker exec`) and with the module (an ad-hoc `ansible` command);'
                         ' tiles counted on disk.')
        notes.append('Errors: non-2xx (wrk counts status >= 400; the reload test counts every non-2xx) and socket'
                     ' errors (connect, read, write, timeout); "repeated" would mean a fresh-tile list ran out.')
        out += [''] + notes
        if profile:
            out += ['', 'Profile of "%s" at %d conns, cached tiles, %d s:' % (profiled['name'], max(args.conns),
                                                                          args.profile), ''] + profile
        text = '\n'.join(out) + '\n'
        (self.state / ('sweep.md' if args.sweep else 'result.md')).write_text(text, encoding='utf-8')
        (self.state / ('sweep.json' if args.sweep else 'result.json')).write_text(
            json.dumps(self.data, indent=1), encoding='utf-8')
        print(text)
        if cleanup:
            cleanup.check()


# ---------------------------------------------------------------------------
# 8. Cleaning a shared store: on this machine, no container

# moto's S3 server (the tool venv's) and a private redis-server, on ports the other rows do not use.
CLEANUP_S3_PORT = 18894
CLEANUP_REDIS_PORT = 18895
CLEANUP_BUCKET = 'bench-cleanup'
CLEANUP_DIRECTORY = 'tiles'
CLEANUP_PREFIX = 'bench'
CLEANUP_KEYS = ('bench', 'bench')
# The Redis cache's default_ttl, and the TTL left of its "old" half: written (3600 - 1800) s ago by the
# collection's arithmetic (now - (default_ttl - TTL left)); the age cells remove what is over 15 minutes old.
CLEANUP_TTL = 3600
CLEANUP_OLD_TTL = 1800
CLEANUP_REDIS_AGE_MINUTES = 15
# S3's LastModified cannot be set: the old half is written, then the cut-off second passes, then the new
# half, CLEANUP_GAP seconds later (more than the collection's start takes to compute its own cut-off).
CLEANUP_GAP = 8
# MapProxy's walk is stopped after this long (the cell then says so); the collection's run fails after it.
CLEANUP_WALK_CAP = 900
TOOLS_BIN = ROOT / '.venv' / 'bin'
CACHE_TOOL = ROOT / 'roles' / 'mapproxy_seeding' / 'files' / 'p2d2-mapproxy-cache'
CLEANUP_CONFIG = '''# Written by scripts/bench.py: row 8, cleaning a shared store.
services:
  tms:
layers:
  - {name: bench_s3, title: S3, sources: [bench_s3]}
  - {name: bench_redis, title: Redis, sources: [bench_redis]}
caches:
  bench_s3:
    grids: [webmercator]
    sources: [debug]
    cache: {type: s3, bucket_name: %(bucket)s, directory: %(directory)s, directory_layout: tms,
            endpoint_url: "http://127.0.0.1:%(s3_port)d", region_name: us-east-1}
  bench_redis:
    grids: [webmercator]
    sources: [debug]
    cache: {type: redis, host: 127.0.0.1, port: %(redis_port)d, prefix: %(prefix)s, default_ttl: %(ttl)d}
sources:
  debug: {type: debug}
grids:
  webmercator: {base: GLOBAL_WEBMERCATOR}
'''
_ANSI_RE = re.compile(r'\x1b\[[0-9;]*m')
_MOTO_LINE_RE = re.compile(r'"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/[0-9.]+" (\d{3}) ')


def pyramid(top):
    """(z, x, y, old) of every tile of levels 0 to ``top`` of GLOBAL_WEBMERCATOR; ``old``: the half
    (x + y even) that the age cells write before the cut-off."""
    return [(z, x, y, (x + y) % 2 == 0) for z in range(top + 1) for x in range(2 ** z) for y in range(2 ** z)]


def pyramid_keys(tiles):
    """The keys of ``tiles`` in the S3 cache (MapProxy's own tms location, as S3Cache.tile_key
    builds it) and in the Redis cache (RedisCache._key: ``<prefix>-z-x-y``)."""
    from mapproxy.cache.path import location_funcs
    from mapproxy.cache.tile import Tile
    location, _ = location_funcs(layout='tms')
    s3 = [location(Tile((x, y, z)), CLEANUP_DIRECTORY, 'png').lstrip('/') for z, x, y, _old in tiles]
    redis = ['%s-%d-%d-%d' % (CLEANUP_PREFIX, z, x, y) for z, x, y, _old in tiles]
    return s3, redis


def s3_requests(log_text):
    """{operation: count} and the answers >= 400 of moto's request log (werkzeug's lines)."""
    counts, errors = {}, 0
    for line in log_text.splitlines():
        match = _MOTO_LINE_RE.search(_ANSI_RE.sub('', line))
        if not match:
            continue
        method, target, status = match.groups()
        path, _, query = target.partition('?')
        on_bucket = '/' not in path.strip('/')
        if on_bucket:
            name = {'HEAD': 'HeadBucket', 'PUT': 'CreateBucket', 'DELETE': 'DeleteBucket'}.get(method)
            if method == 'GET':
                name = 'ListObjectsV2' if 'list-type=2' in query else 'ListObjects'
            elif method == 'POST':
                name = 'DeleteObjects' if 'delete' in query else 'PostBucket'
        else:
            name = {'GET': 'GetObject', 'HEAD': 'HeadObject', 'PUT': 'PutObject',
                    'DELETE': 'DeleteObject', 'POST': 'PostObject'}[method]
        counts[name] = counts.get(name, 0) + 1
        errors += int(status) >= 400
    return counts, errors


def redis_requests(before, after):
    """{command: calls} and failed or rejected calls between two ``INFO commandstats`` answers
    (redis-py's dict), without the INFO calls that took them."""
    counts, errors = {}, 0
    for name, stats in after.items():
        command = name[len('cmdstat_'):] if name.startswith('cmdstat_') else name
        if command == 'info':
            continue
        old = before.get(name, {})
        calls = stats.get('calls', 0) - old.get('calls', 0)
        if calls:
            counts[command.upper().replace('|', ' ')] = calls
        errors += (stats.get('failed_calls', 0) - old.get('failed_calls', 0)
                   + stats.get('rejected_calls', 0) - old.get('rejected_calls', 0))
    return counts, errors


def requests_text(counts):
    return ', '.join('%s %s' % (fnum(n), name) for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def cpu_model():
    """The processor's model name, from /proc/cpuinfo."""
    with open('/proc/cpuinfo', encoding='utf-8') as stream:
        for line in stream:
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    return ''


def local_machine(cores):
    """The machine lines of a run without the container."""
    from importlib import metadata
    model = cpu_model()
    versions = {}
    for name in ('MapProxy', 'boto3', 'redis', 'moto'):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = '?'
    server = run(['redis-server', '--version'], check=False).stdout
    server = re.search(r'v=(\S+)', server)
    return ['- Machine: %d cores (%s), kernel %s, Debian %s; no container: everything on this machine'
            % (cores, model or 'unknown CPU', os.uname().release,
               Path('/etc/debian_version').read_text(encoding='utf-8').strip()),
            '- Versions: MapProxy %s, boto3 %s, redis-py %s, moto %s (its S3 server), redis-server %s'
            % (versions['MapProxy'], versions['boto3'], versions['redis'], versions['moto'],
               server.group(1) if server else '?'),
            '- The stores, MapProxy\'s walk and the collection\'s job share the same %d cores: compare figures as'
            ' ratios within one run' % cores]


class StoreCleanup:
    """8. Cleaning a shared store: MapProxy's own cleanup (``mapproxy-seed --cleanup``, a walk over the
    tile pyramid, requests per tile) against the collection's (``p2d2-mapproxy-cache clean`` and ``limit``:
    a listing or a scan and a delete per page), on an S3 cache (moto's server) and a Redis cache (a private
    redis-server), each filled with a full pyramid straight into the store before every cell. What is
    left is read in the store and must be what the job should leave."""

    STORES = {'s3': 'S3', 'redis': 'Redis'}

    def __init__(self, args):
        self.args = args
        self.top = args.cleanup_levels
        self.tiles = pyramid(self.top)
        self.s3_keys, self.redis_keys = pyramid_keys(self.tiles)
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID=CLEANUP_KEYS[0], AWS_SECRET_ACCESS_KEY=CLEANUP_KEYS[1],
                        LC_ALL='C.UTF-8')
        self.env.pop('AWS_PROFILE', None)
        self.cells = []
        self.failures = []
        self.missing = []
        self.servers = []
        self.logs = STATE / 'logs'
        self.logs.mkdir(parents=True, exist_ok=True)
        self.body = self._png()

    @staticmethod
    def _png():
        import io
        from PIL import Image
        buf = io.BytesIO()
        Image.new('RGB', (256, 256), (120, 160, 200)).save(buf, 'PNG')
        return buf.getvalue()

    # -- the stores ----------------------------------------------------------

    def start(self, tmp):
        for port in (CLEANUP_S3_PORT, CLEANUP_REDIS_PORT):
            if run(['ss', '-ltnH', 'sport = :%d' % port], check=False).stdout.strip():
                raise BenchError('port %d is taken on this machine: row 8 needs 127.0.0.1:%d and %d'
                                 % (port, CLEANUP_S3_PORT, CLEANUP_REDIS_PORT))
        self.moto_log = tmp / 'moto.log'
        log('Starting moto\'s S3 server on 127.0.0.1:%d and redis-server on 127.0.0.1:%d'
            % (CLEANUP_S3_PORT, CLEANUP_REDIS_PORT))
        with open(self.moto_log, 'wb') as out:
            self.servers.append(subprocess.Popen([str(TOOLS_BIN / 'moto_server'), '-H', '127.0.0.1', '-p',
                                                  str(CLEANUP_S3_PORT)], stdout=out, stderr=subprocess.STDOUT))
        with open(tmp / 'redis.log', 'wb') as out:
            self.servers.append(subprocess.Popen(
                ['redis-server', '--bind', '127.0.0.1', '--port', str(CLEANUP_REDIS_PORT), '--save', '',
                 '--appendonly', 'no', '--dir', str(tmp)], stdout=out, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        for port in (CLEANUP_S3_PORT, CLEANUP_REDIS_PORT):
            while not run(['ss', '-ltnH', 'sport = :%d' % port], check=False).stdout.strip():
                if any(server.poll() is not None for server in self.servers):
                    raise BenchError('moto or redis-server ended at its start')
                if time.monotonic() > deadline:
                    raise BenchError('127.0.0.1:%d did not listen within 60 s' % port)
                time.sleep(0.3)
        import boto3
        import botocore.config
        import redis
        self.s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:%d' % CLEANUP_S3_PORT, region_name='us-east-1',
                               aws_access_key_id=CLEANUP_KEYS[0], aws_secret_access_key=CLEANUP_KEYS[1],
                               config=botocore.config.Config(max_pool_connections=16))
        self.s3.create_bucket(Bucket=CLEANUP_BUCKET)
        self.redis = redis.Redis(host='127.0.0.1', port=CLEANUP_REDIS_PORT)
        self.redis.ping()

    def stop(self):
        for server in self.servers:
            if server.poll() is None:
                server.terminate()
        for server in self.servers:
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=30)
        self.servers = []

    def fill_s3(self, keys):
        from concurrent.futures import ThreadPoolExecutor

        def put(key):
            self.s3.put_object(Bucket=CLEANUP_BUCKET, Key=key, Body=self.body, ContentType='image/png')
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, keys))

    def fill_redis(self, keys, ttl):
        pipe = self.redis.pipeline(transaction=False)
        for index, key in enumerate(keys, 1):
            pipe.set(key, self.body, ex=ttl)
            if index % 1000 == 0:
                pipe.execute()
        pipe.execute()

    def in_store(self, store):
        """The keys of the cache in the store, read there."""
        if store == 's3':
            keys = set()
            pages = self.s3.get_paginator('list_objects_v2').paginate(Bucket=CLEANUP_BUCKET,
                                                                      Prefix=CLEANUP_DIRECTORY + '/')
            for page in pages:
                keys.update(obj['Key'] for obj in page.get('Contents') or [])
            return keys
        return {key.decode() for key in self.redis.scan_iter(match=CLEANUP_PREFIX + '-*', count=1000)}

    def keys(self, store, old=None):
        """The store's keys of the pyramid; ``old`` True or False: of that half only."""
        keys = self.s3_keys if store == 's3' else self.redis_keys
        return [key for key, tile in zip(keys, self.tiles) if old is None or tile[3] == old]

    def fill(self, store, aged):
        """The whole pyramid in ``store``; ``aged``: its old half written before a cut-off, which is
        returned (S3: CLEANUP_GAP seconds pass between the halves; Redis: the old half's TTL is shorter)."""
        log('Filling the %s store with %d tiles%s'
            % (self.STORES[store], len(self.tiles), ', the old half first' if aged else ''))
        mark = None
        if store == 's3' and aged:
            self.fill_s3(self.keys(store, old=True))
            mark = math.floor(time.time()) + 2
            time.sleep(max(0.0, mark + CLEANUP_GAP - time.time()))
            self.fill_s3(self.keys(store, old=False))
        elif store == 's3':
            self.fill_s3(self.keys(store))
        else:
            self.fill_redis(self.keys(store, old=False), CLEANUP_TTL)
            self.fill_redis(self.keys(store, old=True), CLEANUP_OLD_TTL if aged else CLEANUP_TTL)
            mark = time.time() - CLEANUP_REDIS_AGE_MINUTES * 60 if aged else None
        held = self.in_store(store)
        if held != set(self.keys(store)):
            raise BenchError('the %s store holds %d keys after the fill, not the %d of the pyramid'
                             % (store, len(held), len(self.tiles)))
        return mark

    # -- one cell --------------------------------------------------------------

    def counters(self, store):
        if store == 's3':
            time.sleep(0.5)  # werkzeug logs a request after its answer
            return self.moto_log.stat().st_size
        return self.redis.info('commandstats')

    def requests(self, store, before):
        if store == 's3':
            time.sleep(0.5)
            with open(self.moto_log, 'rb') as stream:
                stream.seek(before)
                return s3_requests(stream.read().decode('utf-8', 'replace'))
        return redis_requests(before, self.redis.info('commandstats'))

    def measure(self, store, job, side, setting, argv, expected, tmp, known=None, missing=None):
        """Run ``argv`` (a whole process, timed) on the filled store and compare what is left with
        ``expected`` (a set of keys). ``known``: (keys, words), what a side is known to leave instead;
        ``missing``: the error of a job that does not exist yet (the cell is then left out)."""
        logfile = self.logs / ('cleanup-%s-%s-%s.log' % (store, job.replace(' ', '-').replace(',', ''), side))
        before = self.counters(store)
        log('%s, %s: %s' % (self.STORES[store], job, side))
        start = time.monotonic()
        with open(logfile, 'wb') as out:
            proc = subprocess.Popen(argv, cwd=tmp, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            capped = False
            try:
                proc.wait(timeout=CLEANUP_WALK_CAP)
            except subprocess.TimeoutExpired:
                capped = True
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
        seconds = time.monotonic() - start
        output = logfile.read_text(encoding='utf-8', errors='replace')
        if missing and proc.returncode != 0 and missing in output:
            log('Left out: %s' % output.strip().splitlines()[-1])
            self.missing.append('%s %s: %s' % (self.STORES[store], job, output.strip().splitlines()[-1]))
            return None
        counts, errors = self.requests(store, before)
        left = self.in_store(store)
        cell = {'store': store, 'job': job, 'side': side, 'setting': setting, 'seconds': seconds,
                'removed': len(self.tiles) - len(left), 'left': len(left), 'requests': counts,
                'error_answers': errors, 'capped': capped, 'rc': proc.returncode, 'log': str(logfile),
                'problem': '', 'known': ''}
        if capped and side == 'MapProxy':
            cell['known'] = 'stopped at the %d s cap' % CLEANUP_WALK_CAP
        elif capped:
            cell['problem'] = 'still running after %d s: stopped' % CLEANUP_WALK_CAP
        elif proc.returncode != 0:
            cell['problem'] = 'exit code %d: %s' % (proc.returncode, (output.strip().splitlines() or [''])[-1])
        elif left == expected:
            pass
        elif known and left == known[0]:
            cell['known'] = known[1]
        else:
            cell['problem'] = ('%d keys left, not the %d expected (%d of those missing, %d others)'
                               % (len(left), len(expected), len(expected - left), len(left - expected)))
        if side == 'collection' and not capped and proc.returncode == 0:
            # What the collection's job says it removed, against what the store lost.
            said = re.findall(r'^removed (\d+) (?:oldest-written )?tiles, .* in total', output, re.M)
            if not said or int(said[-1]) != cell['removed']:
                cell['problem'] += ('; ' if cell['problem'] else '') + 'the job says %s tiles removed, the store lost %d' % (
                    said[-1] if said else 'nothing about', cell['removed'])
        if cell['problem']:
            self.failures.append('%s, %s, %s: %s (log: %s)' % (self.STORES[store], job, side, cell['problem'], logfile))
            log('WRONG: %s' % self.failures[-1])
        log('%.1f s, %d removed, %d left; %s' % (seconds, cell['removed'], cell['left'], requests_text(counts)))
        self.cells.append(cell)
        return cell

    # -- the cells ---------------------------------------------------------------

    def walk(self, tmp, task, store, levels, remove):
        """mapproxy-seed's cleanup of one task on the store's cache, with its default concurrency."""
        path = tmp / ('seed-%s-%s.yaml' % (store, task))
        cleanup = {'caches': ['bench_' + store], 'grids': ['webmercator'],
                   'levels': {'from': min(levels), 'to': max(levels)}}
        cleanup.update(remove)
        path.write_text(json.dumps({'cleanups': {task: cleanup}}, indent=1), encoding='utf-8')
        return [str(TOOLS_BIN / 'mapproxy-seed'), '-f', str(tmp / 'mapproxy.yaml'), '-s', str(path),
                '--cleanup', task, '-c', '2']

    def tool(self, tmp, *args):
        return [str(TOOLS_BIN / 'python'), str(CACHE_TOOL), '--config', str(tmp / 'mapproxy.yaml')] + list(args)

    def store_cells(self, store, tmp):
        cache = 'bench_' + store
        lock = str(tmp / 'locks')
        everything = list(range(self.top + 1))
        new_half = set(self.keys(store, old=False))
        where = '%s, levels %s (%s tiles)' % (self.STORES[store], fmt_levels(everything), fnum(len(self.tiles)))

        self.fill(store, aged=False)
        self.measure(store, 'remove all', 'MapProxy', '%s, remove all: MapProxy `mapproxy-seed --cleanup`'
                     ' (`remove_all`, `-c 2`)' % where,
                     self.walk(tmp, 'all', store, everything, {'remove_all': True}), set(), tmp)
        self.fill(store, aged=False)
        self.measure(store, 'remove all', 'collection', '%s, remove all: collection `clean --remove-all`' % where,
                     self.tool(tmp, 'clean', '--caches', cache, '--remove-all', '--lock-dir', lock), set(), tmp)

        # By age. On S3 MapProxy's walk asks twice per tile (HEAD), with a new boto3 client each time:
        # there both sides clean the levels below the top one, and the collection then all of them.
        levels = everything[:-1] if store == 's3' else everything
        kept = {key for key, tile in zip(self.keys(store), self.tiles) if not tile[3] or tile[0] not in levels}
        part = '%s, by age on levels %s only, %s of the %s tiles' % (
            self.STORES[store], fmt_levels(levels), fnum(sum(1 for tile in self.tiles if tile[0] in levels)),
            fnum(len(self.tiles))) if levels != everything else '%s, by age' % where
        mark = self.fill(store, aged=True)
        if store == 's3':
            cut = '`remove_before: {time: <the cut-off>}`'
            remove = {'remove_before': {'time': time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(mark))}}
            known = None
        else:
            cut = '`remove_before: {minutes: %d}`' % CLEANUP_REDIS_AGE_MINUTES
            remove = {'remove_before': {'minutes': CLEANUP_REDIS_AGE_MINUTES}}
            # MapProxy's RedisCache.load_tile_metadata dates a tile now - default_ttl - TTL left, not
            # now - (default_ttl - TTL left): every tile looks at least default_ttl old.
            known = (set(), 'removed the new half too: MapProxy dates a Redis tile default_ttl + TTL left ago')
        self.measure(store, 'by age', 'MapProxy', '%s (the old half goes): MapProxy %s' % (part, cut),
                     self.walk(tmp, 'age', store, levels, remove), kept, tmp, known)
        runs = [('by age', part, ['--levels', '%d-%d' % (min(levels), max(levels))] if levels != everything else [],
                 kept)]
        if levels != everything:
            runs.append(('by age, all levels', '%s, by age' % where, [], new_half))
        for job, text, extra, expected in runs:
            mark = self.fill(store, aged=True)
            days = '%.10f' % ((time.time() - mark) / 86400.0)
            self.measure(store, job, 'collection', '%s (the old half goes): collection `clean --max-age-days`%s'
                         % (text, ' `%s`' % ' '.join(extra) if extra else ''),
                         self.tool(tmp, 'clean', '--caches', cache, '--max-age-days', days, '--lock-dir', lock,
                                   *extra), expected, tmp)

        # The size limit (MapProxy has none): down to the new half's bytes, so the old half must go.
        self.fill(store, aged=True)
        size = len(new_half) * len(self.body)
        self.measure(store, 'size limit', 'collection', '%s, size limit to the new half\'s bytes: collection'
                     ' `limit --max-size %d --target-percent 100`' % (where, size),
                     self.tool(tmp, 'limit', '--caches', cache, '--max-size', str(size), '--target-percent', '100'),
                     new_half, tmp, missing='size limits handle file caches only')

    # -- the rows ----------------------------------------------------------------

    def add_rows(self, table):
        sides = {(c['store'], c['job'], c['side']): c for c in self.cells}
        for store in self.STORES:
            for cell in (c for c in self.cells if c['store'] == store):
                result = '%.1f s; %s removed, %s left; %s' % (
                    cell['seconds'], fnum(cell['removed']), fnum(cell['left']), requests_text(cell['requests']))
                errors = '%d %s' % (cell['error_answers'], 'answers >= 400' if store == 's3' else 'failed calls')
                if cell['known'] or cell['problem']:
                    errors += '; ' + ('WRONG: ' + cell['problem'] if cell['problem'] else cell['known'])
                ratio = ''
                walk = sides.get((store, cell['job'], 'MapProxy'))
                if cell['side'] == 'collection' and walk:
                    ratio = 'MapProxy ÷ collection: %s%.1f' % ('> ' if walk['capped'] else '',
                                                               walk['seconds'] / cell['seconds'])
                table.add(8, 'cleaning a shared store', cell['setting'], result, errors=errors, ratio=ratio)

    def note(self):
        text = ('8. Cleaning a shared store, on this machine: an S3 cache (moto\'s server of the tool venv on 127.0.0.1:%d,'
                ' `directory_layout: tms`) and a Redis cache (a redis-server of its own on 127.0.0.1:%d, `default_ttl:'
                ' %d`), each filled straight into the store with levels %s of GLOBAL_WEBMERCATOR (%s tiles of %d bytes)'
                ' before every cell. Seconds: the wall time of the whole process (`mapproxy-seed --cleanup` or'
                ' `p2d2-mapproxy-cache`, configuration loading included); then what is left is read in the store and'
                ' checked. By age, the tiles with x + y even are the old half: on S3 written %d s before the others, the'
                ' cut-off between them; on Redis written with %d s of TTL left against %d (30 minutes old, by the TTL),'
                ' the cut-off %d minutes. On S3 MapProxy\'s walk by age covers the levels below the top one (the'
                ' collection the same with `--levels`, then all levels). Requests: S3 operations from moto\'s request log;'
                ' Redis commands from INFO commandstats (the collection\'s run in pipelines, a round trip per page of'
                ' %d keys). The ratio is MapProxy\'s seconds divided by the collection\'s on the same job.'
                % (CLEANUP_S3_PORT, CLEANUP_REDIS_PORT, CLEANUP_TTL, fmt_levels(list(range(self.top + 1))),
                   fnum(len(self.tiles)), len(self.body), CLEANUP_GAP, CLEANUP_OLD_TTL, CLEANUP_TTL,
                   CLEANUP_REDIS_AGE_MINUTES, 1000))
        if self.missing:
            text += ' Left out (not there yet): %s.' % '; '.join(self.missing)
        return text

    # -- runs --------------------------------------------------------------------

    def run(self, table):
        """Both stores, measured: the rows of 8. in ``table``; returns the note."""
        with tempfile.TemporaryDirectory(prefix='p2d2-bench-cleanup-') as tmp:
            tmp = Path(tmp)
            (tmp / 'locks').mkdir()
            (tmp / 'mapproxy.yaml').write_text(CLEANUP_CONFIG % {
                'bucket': CLEANUP_BUCKET, 'directory': CLEANUP_DIRECTORY, 's3_port': CLEANUP_S3_PORT,
                'redis_port': CLEANUP_REDIS_PORT, 'prefix': CLEANUP_PREFIX, 'ttl': CLEANUP_TTL}, encoding='utf-8')
            try:
                self.start(tmp)
                for store in ('redis', 's3'):
                    self.store_cells(store, tmp)
            finally:
                self.stop()
        self.add_rows(table)
        return self.note()

    def check(self):
        if self.failures:
            raise BenchError('row 8 found what a job should not have left:\n  ' + '\n  '.join(self.failures))

    def main(self):
        """Row 8 alone: no container; the table in .testbed/bench/store-cleanup.md (and .json)."""
        started = time.monotonic()
        table = Table()
        note = self.run(table)
        out = ['# p2d2.mapproxy performance (row 8: cleaning a shared store)', '',
               'Command: `scripts/bench.sh %s`' % ' '.join(sys.argv[1:]), ''] + local_machine(os.cpu_count() or 1)
        run_line = '- Run: %s UTC, %.0f s in all' % (time.strftime('%Y-%m-%d %H:%M', time.gmtime()),
                                                     time.monotonic() - started)
        out += [run_line, '', table.render(), '', note]
        text = '\n'.join(out) + '\n'
        (STATE / 'store-cleanup.md').write_text(text, encoding='utf-8')
        (STATE / 'store-cleanup.json').write_text(json.dumps({'store_cleanup': self.cells}, indent=1), encoding='utf-8')
        print(text)
        self.check()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='scripts/bench.sh', description=__doc__.split('\n\n')[0])
    parser.add_argument('--smoke', action='store_true',
                        help='a few seconds per cell, one round, small jobs: checks that the harness works')
    parser.add_argument('--sweep', action='store_true', help='compare the Gunicorn variants of SWEEP on cached tiles')
    parser.add_argument('--upstream-delay', type=int, default=0, metavar='MS',
                        help='MapProxy fetches uncached tiles through a proxy that answers MS later (as a remote'
                             ' tile server); with --sweep, uncached tiles are measured too')
    parser.add_argument('--keep', action='store_true', help='keep the container p2d2-bench at the end')
    parser.add_argument('--reuse', action='store_true',
                        help='measure the kept container instead of deploying a fresh one (no deploy time)')
    parser.add_argument('--duration', type=int, help='seconds per wrk cell (default 10, smoke 2)')
    parser.add_argument('--rounds', type=int, help='interleaved rounds (default 2, smoke 1)')
    parser.add_argument('--conns', type=lambda s: [int(v) for v in s.split(',')], default=[4, 32],
                        help='connection counts, comma separated (default 4,32)')
    parser.add_argument('--measure', type=lambda s: set(s.split(',')),
                        default={'uncached', 'reload', 'seed', 'mixed', 'stores', 'balancer'},
                        help='what to measure besides cached tiles: uncached,reload,seed,mixed,stores,balancer,'
                             'store-cleanup'
                             ' (default all but store-cleanup; store-cleanup alone runs on this machine, no container)')
    parser.add_argument('--cleanup-levels', type=int,
                        help='store-cleanup: the pyramid is levels 0 to N (default 7: 21,845 tiles; smoke 4)')
    parser.add_argument('--profile', type=int, default=0, metavar='SECONDS',
                        help='profile the first layout under load with py-spy for SECONDS')
    parser.add_argument('--seed-levels', type=int, help='seed levels 0 to N (default 11, smoke 9)')
    parser.add_argument('--tile-set', type=int, default=2000, help='cached tiles to request (default 2000)')
    parser.add_argument('--seed', type=int, default=42, help='random seed of the tile sets')
    parser.add_argument('--image', default=os.environ.get('P2D2_IMAGE_TRIXIE'),
                        help='the Debian 13 image (default: scripts/lib.sh\'s, P2D2_IMAGE_TRIXIE)')
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.duration = args.duration or (2 if smoke else 10)
    args.rounds = args.rounds or (1 if smoke else 2)
    args.seed_levels = args.seed_levels if args.seed_levels is not None else (9 if smoke else 11)
    args.warmup = 1 if smoke else 2
    # Enough fresh tiles for a cell: far more than MapProxy fetches from the stand-in per second
    # (with a delay, at most one tile per connection and delay).
    per_second = 600 if not args.upstream_delay else math.ceil(1.5 * max(args.conns) * 1000 / args.upstream_delay)
    args.uncached_set = min(600, per_second) * args.duration
    args.cleanup_levels = args.cleanup_levels if args.cleanup_levels is not None else (4 if smoke else 7)
    for name in args.measure:
        if name not in ('uncached', 'reload', 'seed', 'mixed', 'stores', 'balancer', 'store-cleanup'):
            parser.error('--measure takes uncached, reload, seed, mixed, stores, balancer and store-cleanup, not %r'
                         % name)
    if args.measure == {'store-cleanup'} and (args.sweep or args.profile or args.reuse):
        parser.error('--measure store-cleanup alone runs without the container: no --sweep, --profile or --reuse')
    if not 1 <= args.cleanup_levels <= 10:
        parser.error('--cleanup-levels must be between 1 and 10')
    if args.upstream_delay < 0:
        parser.error('--upstream-delay must be 0 or more milliseconds')
    if min(args.conns) < 1 or args.duration < 1 or args.rounds < 1:
        parser.error('--conns, --duration and --rounds must be at least 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.measure == {'store-cleanup'}:
        # Row 8 alone: moto and redis-server on this machine, no container to create or remove.
        try:
            StoreCleanup(args).main()
        except (BenchError, subprocess.TimeoutExpired) as ex:
            print('ERROR: %s' % ex, file=sys.stderr)
            return 1
        return 0
    bench = Bench(args)
    try:
        bench.main()
    except (BenchError, subprocess.TimeoutExpired) as ex:
        print('ERROR: %s' % ex, file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            bench.remove_container()
    return 0


if __name__ == '__main__':
    sys.exit(main())
