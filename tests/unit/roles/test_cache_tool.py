# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cleanup and size-limit tool that the seeding role installs on the host
(roles/mapproxy_seeding/files/p2d2-mapproxy-cache), run against real MapProxy
configurations and caches written by the real mapproxy-seed."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import (
    VENV, file_cache, make_config, mapproxy_seed, needs_mapproxy, seed_lock_held, tms_tile_files, write_config,
)

COLLECTION = Path(__file__).resolve().parents[3]
TOOL = COLLECTION / 'roles' / 'mapproxy_seeding' / 'files' / 'p2d2-mapproxy-cache'
TILES = COLLECTION / 'plugins' / 'module_utils' / 'mapproxy_tiles.py'
RUN = COLLECTION / 'plugins' / 'module_utils' / 'mapproxy_run.py'
PROBE = COLLECTION / 'plugins' / 'module_utils' / 'mapproxy_probe.py'
BBOX = [6.0, 50.5, 7.5, 51.5]

pytestmark = needs_mapproxy


def load_tool():
    # On the host the tile walker and the probe lie beside the tool, as top-level modules.
    sys.path.insert(0, str(TILES.parent))
    try:
        loader = importlib.machinery.SourceFileLoader('p2d2_mapproxy_cache', str(TOOL))
        spec = importlib.util.spec_from_loader('p2d2_mapproxy_cache', loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(TILES.parent))


tool = load_tool()


@pytest.fixture(scope='module')
def seeded(tmp_path_factory):
    """A tms cache (the runbook's layout) seeded at levels 0-11 by mapproxy-seed, once."""
    root = tmp_path_factory.mktemp('seeded')
    base = root / 'cache'
    base.mkdir()
    conf = make_config(base, caches={'osm_cache': file_cache(base / 'osm'),
                                     'other_cache': file_cache(base / 'other'),
                                     'sqlite_cache': {'grids': ['webmercator'], 'sources': ['dbg'],
                                                      'cache': {'type': 'sqlite'}}})
    mapproxy_seed(write_config(root / 'mapproxy.yaml', conf), ['osm_cache', 'other_cache'], BBOX, range(0, 12), root)
    return {'base': base, 'conf': conf}


@pytest.fixture
def cache(seeded, tmp_path):
    """A copy of the seeded caches for one test, with its own config."""
    base = tmp_path / 'cache'
    shutil.copytree(seeded['base'], base, symlinks=True)
    conf = make_config(base, caches={'osm_cache': file_cache(base / 'osm'),
                                     'other_cache': file_cache(base / 'other'),
                                     'sqlite_cache': seeded['conf']['caches']['sqlite_cache']})
    config = write_config(tmp_path / 'mapproxy.yaml', conf)
    return {'config': config, 'base': base, 'osm': base / 'osm', 'other': base / 'other'}


def set_times(path, atime, mtime):
    os.utime(path, (atime, mtime))


def disk_use(directory):
    return sum(os.lstat(os.path.join(root, f)).st_blocks * 512
               for root, _d, files in os.walk(directory) for f in files if f.endswith('.png'))


def test_clean_removes_aged_tiles_at_every_level_of_a_tms_cache(cache, capsys):
    tiles = tms_tile_files(cache['osm'])
    assert {z for _x, _y, z in tiles} == set(range(12))
    old = time.time() - 40 * 86400
    aged = {t for t in tiles if t[2] in (0, 3, 9, 11)}
    for x, y, z in aged:
        path = cache['osm'] / str(z) / str(x) / f'{y}.png'
        set_times(path, old, old)
    other_before = tms_tile_files(cache['other'])
    rc = tool.main(['--config', cache['config'], 'clean', '--caches', 'osm_cache', '--max-age-days', '30',
                    '--lock-dir', str(cache['base'])])
    assert rc == 0
    assert tms_tile_files(cache['osm']) == tiles - aged
    assert tms_tile_files(cache['other']) == other_before
    # Emptied folders go, as MapProxy's own cleanup removes them.
    assert not (cache['osm'] / '0').exists()
    out = capsys.readouterr().out
    assert f'removed {len(aged)} tiles' in out


def test_clean_remove_all_with_levels_and_dry_run(cache, capsys):
    tiles = tms_tile_files(cache['osm'])
    args = ['--config', cache['config'], 'clean', '--caches', 'osm_cache', '--remove-all', '--levels', '0-2,5',
            '--lock-dir', str(cache['base'])]
    assert tool.main(args + ['--dry-run']) == 0
    assert tms_tile_files(cache['osm']) == tiles
    assert tool.main(args) == 0
    assert tms_tile_files(cache['osm']) == {t for t in tiles if t[2] not in (0, 1, 2, 5)}


def test_clean_waits_for_the_seed_lock_and_gives_up_at_the_timeout(cache, capsys):
    tiles = tms_tile_files(cache['osm'])
    with seed_lock_held(cache['base'], 'osm_cache'):
        start = time.monotonic()
        rc = tool.main(['--config', cache['config'], 'clean', '--caches', 'osm_cache', '--remove-all',
                        '--lock-dir', str(cache['base']), '--lock-timeout', '2'])
        waited = time.monotonic() - start
    assert rc == tool.EX_TEMPFAIL
    assert waited >= 2
    assert tms_tile_files(cache['osm']) == tiles
    assert 'the lock of cache osm_cache was not free within 2 s' in capsys.readouterr().err
    # Once the seeder is gone the lock is free again.
    assert tool.main(['--config', cache['config'], 'clean', '--caches', 'osm_cache', '--remove-all',
                      '--lock-dir', str(cache['base']), '--lock-timeout', '5']) == 0
    assert tms_tile_files(cache['osm']) == set()


def test_limit_removes_the_least_recently_used_tiles_first(cache, capsys):
    paths = sorted(p for p in cache['osm'].rglob('*.png'))
    now = time.time()
    # Every tile written 20 days ago; a third read yesterday (atime), the rest read
    # at different older times; two written (not read) an hour ago.
    recent_reads = set(paths[::3])
    fresh_writes = set(paths[1:5:3])
    for i, path in enumerate(paths):
        written = now - 20 * 86400
        read = now - 86400 if path in recent_reads else now - 19 * 86400 + i * 60
        if path in fresh_writes:
            written = read = now - 3600
        set_times(path, read, written)
    total = disk_use(cache['osm'])
    limit = total // 2
    rc = tool.main(['--config', cache['config'], 'limit', '--caches', 'osm_cache', '--max-size', str(limit)])
    assert rc == 0
    left = set(cache['osm'].rglob('*.png'))
    assert disk_use(cache['osm']) <= limit * 0.9
    assert recent_reads | fresh_writes <= left
    # What went is exactly an oldest-use prefix: nothing left was used before anything removed.
    removed = set(paths) - left
    assert removed
    last_use = {p: (now - 19 * 86400 + i * 60) for i, p in enumerate(paths) if p not in recent_reads | fresh_writes}
    assert max(last_use[p] for p in removed) <= min(last_use[p] for p in left if p in last_use)
    out = capsys.readouterr().out
    assert 'least recently used tiles' in out
    # Under the limit: nothing more to do.
    assert tool.main(['--config', cache['config'], 'limit', '--caches', 'osm_cache', '--max-size', str(limit)]) == 0
    assert set(cache['osm'].rglob('*.png')) == left
    assert 'under the limit: nothing to remove' in capsys.readouterr().out


def test_limit_removes_only_what_is_missing_from_the_cutoff_minute(cache):
    """Many tiles last used in one minute: only as many of them go as the limit
    needs, wherever the walk meets them, not the whole minute."""
    paths = sorted(cache['osm'].rglob('*.png'))
    now = time.time()
    crowded = now - 5 * 86400
    for i, path in enumerate(paths):
        # Every other tile in one minute (the walk meets them first and last); the rest
        # spread over older minutes, one each.
        used = crowded + (i % 50) / 10.0 if i % 2 == 0 else now - 10 * 86400 + i * 60
        set_times(path, used, used)
    older = [p for i, p in enumerate(paths) if i % 2]
    in_minute = [p for i, p in enumerate(paths) if not i % 2]
    block = os.lstat(paths[0]).st_blocks * 512
    older_bytes = sum(os.lstat(p).st_blocks * 512 for p in older)
    total = disk_use(cache['osm'])
    # The limit needs all older tiles and five tiles' worth of the crowded minute gone.
    limit = total - older_bytes - 5 * block
    assert tool.main(['--config', cache['config'], 'limit', '--caches', 'osm_cache', '--max-size', str(limit),
                      '--target-percent', '100']) == 0
    left = set(cache['osm'].rglob('*.png'))
    assert not left & set(older)
    gone_in_minute = [p for p in in_minute if p not in left]
    assert disk_use(cache['osm']) <= limit
    assert 5 <= len(gone_in_minute) <= 7, len(gone_in_minute)


def test_limit_by_filesystem_share(cache, capsys):
    """Below the share nothing goes; above it the tiles go (here all of them: a
    point of the file system is far more than these few tiles)."""
    vfs = os.statvfs(cache['osm'])
    percent = 100.0 * (vfs.f_blocks - vfs.f_bfree) / (vfs.f_blocks - vfs.f_bfree + vfs.f_bavail)  # as df
    if not 3 <= percent <= 96:
        pytest.skip('the file system of the test is %.1f %% full: too close to an end for this test' % percent)
    before = tms_tile_files(cache['osm'])
    args = ['--config', cache['config'], 'limit', '--caches', 'osm_cache', '--target-percent', '100']
    assert tool.main(args + ['--max-filesystem-percent', str(int(percent) + 2)]) == 0
    assert tms_tile_files(cache['osm']) == before
    assert 'nothing to remove' in capsys.readouterr().out
    assert tool.main(args + ['--max-filesystem-percent', str(int(percent) - 1)]) == 0
    assert tms_tile_files(cache['osm']) == set()
    out = capsys.readouterr().out
    assert 'the file system is' in out and 'removed %d least recently used tiles' % len(before) in out


@pytest.mark.parametrize('args, message', [
    (['clean', '--caches', 'nope', '--remove-all'], "cache 'nope' is not in"),
    (['clean', '--caches', 'sqlite_cache', '--remove-all'], "cache 'sqlite_cache' is a sqlite cache"),
    (['limit', '--caches', 'osm_cache', '--grids', 'nogrid', '--max-size', '1G'], 'grid(s) nogrid not used'),
])
def test_errors_name_the_cache(cache, capsys, args, message):
    if args[0] == 'clean':
        args = args + ['--lock-dir', str(cache['base'])]
    assert tool.main(['--config', cache['config']] + args) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize('args', [
    ['limit', '--caches', 'osm_cache', '--max-size', '20 gigs'],
    ['limit', '--caches', 'osm_cache', '--max-filesystem-percent', '100'],
    ['clean', '--caches', 'osm_cache', '--max-age-days', '0', '--lock-dir', '/'],
    ['clean', '--caches', 'osm_cache', '--lock-dir', '/'],
])
def test_bad_arguments_exit_2(cache, args):
    with pytest.raises(SystemExit) as exc:
        tool.main(['--config', cache['config']] + args)
    assert exc.value.code == 2


def test_runs_as_installed_beside_the_tile_walker(cache, tmp_path):
    """The role's layout: both files in one folder, run by the venv's Python."""
    installed = tmp_path / 'lib'
    installed.mkdir()
    shutil.copy(TOOL, installed / 'p2d2-mapproxy-cache')
    shutil.copy(TILES, installed / 'mapproxy_tiles.py')
    shutil.copy(PROBE, installed / 'mapproxy_probe.py')
    shutil.copy(RUN, installed / 'mapproxy_run.py')
    proc = subprocess.run([os.path.join(VENV, 'bin', 'python'), str(installed / 'p2d2-mapproxy-cache'),
                           '--config', cache['config'], 'clean', '--caches', 'other_cache', '--remove-all',
                           '--lock-dir', str(cache['base'])],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert tms_tile_files(cache['other']) == set()
    assert 'removed' in proc.stdout


def _seed_setup(tmp_path, source):
    base = tmp_path / 'cache'
    base.mkdir()
    conf = make_config(base, caches={'osm_cache': file_cache(base / 'osm', sources=('up',))},
                       sources={'up': source})
    config = write_config(tmp_path / 'mapproxy.yaml', conf)
    seed_conf = tmp_path / 'seed.yaml'
    seed_conf.write_text(
        'coverages: {area: {bbox: [6.0, 50.5, 7.5, 51.5], srs: "EPSG:4326"}}\n'
        'seeds: {daily: {caches: [osm_cache], coverages: [area], levels: [5, 6, 7]}}\n')
    return config, seed_conf, base


def _run_seed(config, seed_conf, base, tmp_path, *extra):
    # As the unit runs it: the venv's Python, the tool beside the tile walker.
    installed = tmp_path / 'lib'
    installed.mkdir(exist_ok=True)
    shutil.copy(TOOL, installed / 'p2d2-mapproxy-cache')
    shutil.copy(TILES, installed / 'mapproxy_tiles.py')
    shutil.copy(PROBE, installed / 'mapproxy_probe.py')
    shutil.copy(RUN, installed / 'mapproxy_run.py')
    return subprocess.run([os.path.join(VENV, 'bin', 'python'), str(installed / 'p2d2-mapproxy-cache'),
                           '--config', config, 'seed', '--seed-config', str(seed_conf), '--task', 'daily',
                           '--lock-dir', str(base), '--progress-file', str(tmp_path / 'daily.progress'),
                           '--concurrency', '1'] + list(extra or ['--duration', '2m']),
                          capture_output=True, text=True, check=False, timeout=150)


def test_seed_writes_the_task_tiles_with_the_lock_and_leaves_no_progress(tmp_path):
    config, seed_conf, base = _seed_setup(tmp_path, {'type': 'debug'})
    proc = _run_seed(config, seed_conf, base, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert tms_tile_files(base / 'osm') == {(16, 10, 5), (33, 21, 6), (66, 42, 7), (66, 43, 7)}
    assert '--use-cache-lock --continue' in proc.stdout and 'seeding task daily done' in proc.stdout
    # The lock lives where the modules look for it; a finished run leaves no progress file.
    assert (base / '.mapproxy_seed.lck').exists()
    assert not (tmp_path / 'daily.progress').exists()


def test_seed_into_a_hung_store_costs_bounded_time_with_store_timeouts(tmp_path, silent_port):
    """redis-py has no timeout of its own: without bounds a seeding waits for a hung Redis
    until the unit's max_duration. With --store-timeouts the first ask of the store (its
    lock, before mapproxy-seed starts) fails after the read timeout, naming the store."""
    pytest.importorskip('redis')
    base = tmp_path / 'cache'
    base.mkdir()
    conf = make_config(base, caches={'hot': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {
        'type': 'redis', 'host': '127.0.0.1', 'port': silent_port, 'prefix': 'hot'}}})
    config = write_config(tmp_path / 'mapproxy.yaml', conf)
    seed_conf = tmp_path / 'seed.yaml'
    seed_conf.write_text('seeds: {daily: {caches: [hot], levels: [0, 1]}}\n')  # 5 tiles
    start = time.monotonic()
    proc = _run_seed(config, str(seed_conf), base, tmp_path, '--duration', '2m', '--store-timeouts', '1,1,1')
    took = time.monotonic() - start
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'store clients: connect 1s, read 1s, 1 attempts' in proc.stdout
    assert ("p2d2-mapproxy-cache: cache 'hot': its lock hot-p2d2-lock cannot be taken in the store "
            "redis://127.0.0.1:%d/0: TimeoutError" % silent_port) in proc.stderr
    assert not list(base.glob('*.lck')), 'mapproxy-seed ran'
    # One ask of one second, and MapProxy's start.
    assert took < 1 + 30, took


def test_seed_into_a_hung_s3_endpoint_fails_within_the_store_timeouts(tmp_path, silent_port, monkeypatch):
    """MapProxy asks for an S3 cache's bucket when it builds the cache: with bounds a hung
    endpoint fails the job then (finding the cache's lock), instead of after botocore's 60 s
    and retries."""
    pytest.importorskip('boto3')
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'p2d2-test-key')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'p2d2-test-secret')
    base = tmp_path / 'cache'
    base.mkdir()
    conf = make_config(base, caches={'osm_s3': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {
        'type': 's3', 'bucket_name': 'tiles', 'region_name': 'us-east-1',
        'endpoint_url': 'http://127.0.0.1:%d' % silent_port}}})
    config = write_config(tmp_path / 'mapproxy.yaml', conf)
    seed_conf = tmp_path / 'seed.yaml'
    seed_conf.write_text('seeds: {daily: {caches: [osm_s3], levels: [0, 1]}}\n')
    start = time.monotonic()
    proc = _run_seed(config, str(seed_conf), base, tmp_path, '--duration', '2m', '--store-timeouts', '1,1,2')
    took = time.monotonic() - start
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("p2d2-mapproxy-cache: cache 'osm_s3': the store s3://tiles at http://127.0.0.1:%d cannot be locked: "
            "ReadTimeoutError: Read timeout on endpoint URL" % silent_port) in proc.stderr
    assert took < 2 * 1 + 30, took


def test_seed_stops_and_fails_when_the_upstream_keeps_failing(tmp_path):
    with socket_closed_port() as port:
        config, seed_conf, base = _seed_setup(
            tmp_path, {'type': 'tile', 'url': 'http://127.0.0.1:%d/tiles/%%(tms_path)s.png' % port,
                       'grid': 'webmercator'})
        start = time.monotonic()
        proc = _run_seed(config, seed_conf, base, tmp_path, '--max-retries', '2')
        took = time.monotonic() - start
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'the upstream failed 2 times in a row for one tile' in proc.stderr
    assert 'Retries left' in proc.stderr
    # mapproxy-seed alone would go on for 100 retries per tile; after the first retry
    # (2 s) the second failure stops it.
    assert took < 60
    assert tms_tile_files(base / 'osm') == set()


class socket_closed_port:
    """A loopback port on which nothing listens."""

    def __enter__(self):
        import socket
        sock = socket.socket()
        sock.bind(('127.0.0.1', 0))
        self.port = sock.getsockname()[1]
        sock.close()
        return self.port

    def __exit__(self, *args):
        return False


def test_seed_continues_an_interrupted_run_from_its_progress_file(tmp_path):
    """--duration stops a long run and keeps its progress; the next run goes on from
    there instead of starting again: it does not write the first run's tiles again.
    Without a terminal mapproxy-seed saves its position every 30 s, so the first run
    must last longer than that."""
    config, seed_conf, base = _seed_setup(tmp_path, {'type': 'debug'})
    seed_conf.write_text('seeds: {daily: {caches: [osm_cache], levels: {from: 0, to: 9}}}\n')
    first = _run_seed(config, seed_conf, base, tmp_path, '--duration', '35s')
    assert first.returncode == 0, first.stdout + first.stderr
    progress = tmp_path / 'daily.progress'
    assert progress.exists() and progress.stat().st_size > 0
    written = tms_tile_files(base / 'osm')
    assert written and len(written) < sum(4 ** z for z in range(10))
    first_written = sorted(base.joinpath('osm').rglob('*.png'), key=lambda p: p.stat().st_mtime)
    oldest = {tuple(int(part) for part in (p.parent.name, p.stem, p.parent.parent.name))
              for p in first_written[:len(first_written) // 10]}
    shutil.rmtree(base / 'osm')
    second = _run_seed(config, seed_conf, base, tmp_path, '--duration', '15s')
    assert second.returncode == 0, second.stdout + second.stderr
    again = tms_tile_files(base / 'osm')
    # A restart would write the first run's tiles again, the oldest first. Resumed,
    # the run repeats at most the work after the last save (every 30 s), then goes
    # beyond where the first run stopped.
    assert not again & oldest, 'the second run started again from the beginning'
    assert again - written, 'the second run did not get beyond the first'


def test_seed_stops_what_mapproxy_seed_left_running(tmp_path):
    """mapproxy-seed --duration signals only the seeding process it started; workers
    of that one can outlive it, keep the output pipes open and seed on. The tool must
    stop them and return, not wait for them. A stand-in mapproxy-seed leaves a process
    behind that holds its output, as such a worker does."""
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True, timeout=120)
    leftover = tmp_path / 'leftover.pid'
    fake = venv / 'bin' / 'mapproxy-seed'
    fake.write_text('#!/bin/sh\nsleep 600 &\necho $! > %s\necho "seeding (stand-in)"\nexit 0\n' % leftover)
    fake.chmod(0o755)
    installed = tmp_path / 'lib'
    installed.mkdir()
    shutil.copy(TOOL, installed / 'p2d2-mapproxy-cache')
    shutil.copy(TILES, installed / 'mapproxy_tiles.py')
    shutil.copy(PROBE, installed / 'mapproxy_probe.py')
    shutil.copy(RUN, installed / 'mapproxy_run.py')
    (tmp_path / 'cache').mkdir()
    started = time.monotonic()
    proc = subprocess.run([str(venv / 'bin' / 'python'), str(installed / 'p2d2-mapproxy-cache'),
                           '--config', str(tmp_path / 'mapproxy.yaml'), 'seed', '--seed-config', str(tmp_path / 'seed.yaml'),
                           '--task', 'daily', '--lock-dir', str(tmp_path / 'cache'),
                           '--progress-file', str(tmp_path / 'daily.progress'), '--concurrency', '1'],
                          capture_output=True, text=True, check=False, timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'processes it started still run; stopping them' in proc.stderr + proc.stdout
    pid = int(leftover.read_text())
    assert not Path('/proc/%d' % pid).exists() or 'zombie' in Path('/proc/%d/status' % pid).read_text().lower(), pid
    assert took < 60, took


@pytest.fixture
def redis_cache(tmp_path, redis_store, monkeypatch):
    """A redis cache whose password MapProxy reads from the environment, as the timers' units
    give it (their environment file); yields the config, the lock folder and a client."""
    redis = pytest.importorskip('redis')
    port, password = redis_store
    monkeypatch.setenv('P2D2_TEST_REDIS_PASSWORD', password)
    base = tmp_path / 'cache'
    base.mkdir()
    conf = make_config(base, caches={'hot': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {
        'type': 'redis', 'host': '127.0.0.1', 'port': port, 'db': 4, 'prefix': 'hot', 'default_ttl': 600,
        'password': '${P2D2_TEST_REDIS_PASSWORD}'}}})
    client = redis.Redis(host='127.0.0.1', port=port, db=4, password=password)
    yield {'config': write_config(tmp_path / 'mapproxy.yaml', conf), 'base': base, 'client': client}
    client.close()


def test_clean_removes_old_tiles_of_a_redis_cache_in_the_store(redis_cache, capsys):
    """A cleanup timer on a cache in a shared store: the write time comes from the TTL
    (default_ttl 600: 300 s left is written 300 s ago), the keys go in the store."""
    client = redis_cache['client']
    for index in range(100):
        client.set('hot-7-%d-%d' % (index, index), b'tile', px=300000 if index % 2 else 600000)
    client.set('hot-readme', b'not a tile')
    args = ['--config', redis_cache['config'], 'clean', '--caches', 'hot', '--lock-dir', str(redis_cache['base'])]
    assert tool.main(args + ['--max-age-days', str(200 / 86400.0), '--dry-run']) == 0
    assert client.dbsize() == 101
    assert tool.main(args + ['--max-age-days', str(200 / 86400.0)]) == 0
    assert sorted(client.keys('hot-7-*')) == sorted(b'hot-7-%d-%d' % (i, i) for i in range(0, 100, 2))
    out = capsys.readouterr().out
    assert 'would remove hot/webmercator (redis://127.0.0.1:' in out and 'removed 50 tiles' in out
    assert tool.main(args + ['--remove-all', '--levels', '7']) == 0
    assert client.keys('*') == [b'hot-readme']


def test_limit_removes_the_oldest_written_tiles_of_a_redis_cache(redis_cache, capsys):
    """10,000 tiles of 100 bytes in 250 groups written 0, 2, ... 498 s ago (TTL left of
    default_ttl 600): 1,000,000 bytes against max_size 800,000, down to 90 % = 720,000. The
    280,000 bytes that go are exactly the 70 oldest groups (written 360 s ago and before)."""
    client = redis_cache['client']
    pipe = client.pipeline(transaction=False)
    for index in range(10000):
        age = 2 * (index // 40)
        pipe.set('hot-14-%d-%d' % (index // 100, index % 100), b'x' * 100, px=(600 - age) * 1000)
    pipe.set('hot-readme', b'not a tile')
    pipe.execute()
    args = ['--config', redis_cache['config'], 'limit', '--caches', 'hot', '--max-size', '800000']

    assert tool.main(args + ['--dry-run']) == 0
    assert client.dbsize() == 10001
    assert tool.main(args) == 0
    out = capsys.readouterr().out
    assert 'the oldest-written tiles go first' in out
    assert 'removed hot/webmercator (redis://127.0.0.1:' in out and ': 2800 tiles, 273.4 KiB' in out
    left = client.keys('hot-14-*')
    assert len(left) == 7200
    ages = set(2 * ((int(key.split(b'-')[2]) * 100 + int(key.split(b'-')[3])) // 40) for key in left)
    assert ages == set(range(0, 360, 2))
    assert client.exists('hot-readme')
    # Under the limit now: nothing more goes.
    assert tool.main(args) == 0
    assert 'under the limit: nothing to remove' in capsys.readouterr().out
    assert client.dbsize() == 7201


def test_limit_keeps_redis_tiles_without_a_write_time(redis_cache, capsys):
    client = redis_cache['client']
    for index in range(10):
        client.set('hot-3-0-%d' % index, b'x' * 100)  # no TTL: default_ttl 0, or written by hand
    assert tool.main(['--config', redis_cache['config'], 'limit', '--caches', 'hot', '--max-size', '500']) == 0
    out = capsys.readouterr().out
    assert '1000 B of them have no known write time' in out and 'the limit is not reached' in out
    assert client.dbsize() == 10


def test_limit_removes_the_oldest_objects_of_an_s3_cache_by_last_modified(tmp_path, s3_store, capsys):
    boto3 = pytest.importorskip('boto3')
    client = boto3.client('s3', endpoint_url=s3_store, region_name='us-east-1')
    client.create_bucket(Bucket='tiles')
    base = tmp_path / 'cache'
    base.mkdir()
    conf = make_config(base, caches={
        'osm_s3': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {
            'type': 's3', 'bucket_name': 'tiles', 'directory': 'osm', 'endpoint_url': s3_store,
            'region_name': 'us-east-1'}},
        'osm_cache': file_cache(base / 'osm')})
    config = write_config(tmp_path / 'mapproxy.yaml', conf)
    for level in (5, 6):
        for index in range(30):
            client.put_object(Bucket='tiles', Key='osm/%d/0/%d.png' % (level, index), Body=b'x' * 100)
        time.sleep(2.1)  # LastModified has whole seconds
    client.put_object(Bucket='tiles', Key='osm/README.txt', Body=b'not a tile' * 100)
    args = ['--config', config, 'limit', '--caches', 'osm_s3']

    assert tool.main(args + ['--max-filesystem-percent', '80']) == 1
    assert 'are in a store, which has no file system to fill: give the job max_size' in capsys.readouterr().err
    assert tool.main(['--config', config, 'limit', '--caches', 'osm_s3,osm_cache', '--max-size', '1M']) == 1
    assert 'give each kind a size-limit job of its own' in capsys.readouterr().err

    # 6,000 bytes of tiles (not the README) against 5,000, down to 4,500: 15 of the older 30 go.
    assert tool.main(args + ['--max-size', '5000']) == 0
    assert 'removed osm_s3/webmercator (s3://tiles at %s, keys osm/*): 15 tiles' % s3_store in capsys.readouterr().out
    keys = [obj['Key'] for page in client.get_paginator('list_objects_v2').paginate(Bucket='tiles')
            for obj in page.get('Contents') or []]
    assert len([key for key in keys if key.startswith('osm/5/')]) == 15
    assert len([key for key in keys if key.startswith('osm/6/')]) == 30
    assert 'osm/README.txt' in keys
