# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of the shared code that need no MapProxy."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
import time

import pytest

from ansible_collections.p2d2.mapproxy.plugins.module_utils import mapproxy as mp
from ansible_collections.p2d2.mapproxy.plugins.module_utils.mapproxy_run import RetryWatch
from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import HAVE_MAPPROXY, VENV
from ansible_collections.p2d2.mapproxy.plugins.module_utils.mapproxy_tiles import (
    TileFilter,
    collect_stats,
    iter_tiles,
    remove_tiles,
)


class FailJson(Exception):
    pass


class FakeModule:
    params = {}

    def fail_json(self, msg, **kwargs):
        raise FailJson(msg)


def touch(path, data=b'png'):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as handle:
        handle.write(data)


# Paths as MapProxy 7 builds them for tile (x=1234567, y=7654321, z=9) and (3, 4, 2),
# see the doctests of mapproxy/cache/path.py.
@pytest.mark.parametrize('layout, paths', [
    ('tc', {(1234567, 7654321, 9): '09/001/234/567/007/654/321.png', (3, 4, 2): '02/000/000/003/000/000/004.png'}),
    ('mp', {(1234567, 7654321, 9): '09/0123/4567/0765/4321.png', (3, 4, 2): '02/0000/0003/0000/0004.png'}),
    ('tms', {(1234567, 7654321, 9): '9/1234567/7654321.png', (3, 4, 2): '2/3/4.png'}),
    ('reverse_tms', {(1234567, 7654321, 9): '7654321/1234567/9.png', (3, 4, 2): '4/3/2.png'}),
    ('arcgis', {(1234567, 87654321, 9): 'L09/R05397fb1/C0012d687.png', (3, 4, 2): 'L02/R00000004/C00000003.png'}),
    ('quadkey', {(3, 2, 2): '31.png', (0, 0, 0): '.png', (5, 2, 3): '121.png'}),
])
def test_layouts_decode_mapproxy_paths(tmp_path, layout, paths):
    for rel in paths.values():
        touch(tmp_path / rel)
    # not tiles: temporary files, lock and single-colour folders
    touch(tmp_path / 'tile_locks' / 'x-1-2-3.lck')
    touch(tmp_path / 'single_color_tiles' / 'fe0004.png')
    touch(str(tmp_path / list(paths.values())[0]) + '.tmp-1234')
    found = {(x, y, z): os.path.relpath(path, tmp_path) for z, x, y, path, _st in iter_tiles(str(tmp_path), layout)}
    assert found == paths


def test_filter_by_level_and_range(tmp_path):
    for x in range(4):
        for y in range(4):
            touch(tmp_path / '2' / str(x) / ('%d.png' % y))
    touch(tmp_path / '1' / '0' / '0.png')
    tiles = TileFilter(levels=[2], ranges={2: (1, 2, 2, 3)})
    found = sorted((x, y, z) for z, x, y, _p, _st in iter_tiles(str(tmp_path), 'tms', tiles))
    assert found == [(1, 2, 2), (1, 3, 2), (2, 2, 2), (2, 3, 2)]
    assert sorted(collect_stats(str(tmp_path), 'tms')) == [1, 2]
    assert collect_stats(str(tmp_path), 'tms')[2].tiles == 16


def test_remove_tiles_by_age_and_empty_folders(tmp_path):
    now = time.time()
    touch(tmp_path / '12' / '5' / '7.png')
    touch(tmp_path / '12' / '5' / '8.png')
    touch(tmp_path / '3' / '1' / '1.png')
    os.utime(tmp_path / '12' / '5' / '7.png', (now - 100, now - 100))
    os.utime(tmp_path / '3' / '1' / '1.png', (now - 100, now - 100))
    removed = remove_tiles(str(tmp_path), 'tms', before=now - 50)
    assert sorted(removed) == [3, 12]
    assert sorted(os.listdir(tmp_path)) == ['12']
    assert os.listdir(tmp_path / '12' / '5') == ['8.png']
    # the cache folder itself stays even when empty
    remove_tiles(str(tmp_path), 'tms')
    assert os.listdir(tmp_path) == []


def test_remove_tiles_dry_run_keeps_files(tmp_path):
    touch(tmp_path / '0' / '0' / '0.png')
    seen = []
    removed = remove_tiles(str(tmp_path), 'tms', dry_run=True, on_remove=lambda p, st: seen.append(p))
    assert removed[0].tiles == 1
    assert seen == [str(tmp_path / '0' / '0' / '0.png')]
    assert (tmp_path / '0' / '0' / '0.png').exists()


def test_missing_folder_has_no_tiles(tmp_path):
    assert list(iter_tiles(str(tmp_path / 'nope'), 'tc')) == []


@pytest.mark.parametrize('value, seconds', [
    ({'days': 30}, 30 * 86400),
    ({'weeks': 1, 'hours': 2}, 7 * 86400 + 7200),
    ('30d', 30 * 86400),
    ('1.5h', 5400),
    ('90m', 5400),
    ({'seconds': '10'}, 10),
])
def test_parse_age(value, seconds):
    assert mp.parse_age(FakeModule(), value, 'max_age') == seconds


@pytest.mark.parametrize('value, message', [
    ({'days': -1}, 'days must be a number of 0 or more'),
    ({'day': 1}, 'Unknown key day in option max_age'),
    ({}, 'must be an age'),
    ('thirty days', 'is not an age'),
    ({'days': True}, 'days must be a number'),
])
def test_parse_age_errors(value, message):
    with pytest.raises(FailJson, match=re.escape(message)):
        mp.parse_age(FakeModule(), value, 'max_age')


def test_parse_levels():
    module = FakeModule()
    assert mp.parse_levels(module, {'from': 2, 'to': 4}) == [2, 3, 4]
    assert mp.parse_levels(module, [3, 1, 1, '2']) == [1, 2, 3]
    assert mp.parse_levels(module, None) is None
    # the text forms of the seeding role and the playbooks
    assert mp.parse_levels(module, 5) == [5]
    assert mp.parse_levels(module, '11-14') == [11, 12, 13, 14]
    assert mp.parse_levels(module, ' 3, 5,7 - 9') == [3, 5, 7, 8, 9]
    assert mp.parse_levels(module, '0') == [0]


@pytest.mark.parametrize('value, message', [
    ({'from': 4, 'to': 2}, 'from (4) is greater than to (2)'),
    ([], 'is an empty list'),
    ('all', "'all' is not a level, a range such as 11-14"),
    ('3,,5', "'3,,5' is not a level"),
    ('10-0', 'the range 10-0 runs backwards'),
    ([True], 'is not a level number'),
    (True, 'must be a level, a range such as 11-14'),
    ({'from': 0}, 'needs both from and to'),
    ([-1], 'is not a level number (0 or more)'),
    (-1, 'is not a level number (0 or more)'),
])
def test_parse_levels_errors(value, message):
    with pytest.raises(FailJson, match=re.escape(message)):
        mp.parse_levels(FakeModule(), value)


def test_parse_time_spec(tmp_path):
    module = FakeModule()
    assert mp.parse_time_spec(module, {'time': '2026-01-02T03:04:05'}, 'r') == {'time': '2026-01-02T03:04:05'}
    assert mp.parse_time_spec(module, '7d', 'r') == {'seconds': 7 * 86400}
    marker = tmp_path / 'marker'
    marker.write_text('')
    assert mp.parse_time_spec(module, {'mtime': str(marker)}, 'r') == {'mtime': str(marker)}
    with pytest.raises(FailJson, match='not of the form'):
        mp.parse_time_spec(module, {'time': 'yesterday'}, 'r')
    with pytest.raises(FailJson, match='absolute path of an existing file'):
        mp.parse_time_spec(module, {'mtime': str(tmp_path / 'nope')}, 'r')


def test_mask_secrets():
    assert mp.mask_secrets("url 'http://user:secret@host/wms' x") == "url 'http://***@host/wms' x"
    assert mp.mask_secrets('http://host/wms') == 'http://host/wms'
    assert mp.mask_secrets({'c': {'datasource': "PG: dbname='osm' password='s3 cret' host=db"}}) == {
        'c': {'datasource': "PG: dbname='osm' password=*** host=db"}}
    assert mp.mask_secrets(['PG: password=abc user=x', 3]) == ['PG: password=*** user=x', 3]


CHILD_SCRIPT = (
    'import os, subprocess, sys, time\n'
    'child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])\n'
    'print("child", child.pid, flush=True)\n'
    'sys.stderr.write("working\\n"); sys.stderr.flush()\n'
    'time.sleep(%s)\n'
    'sys.stderr.write("An error occured. Retry in 2 seconds: boom. Retries left: 100\\n"); sys.stderr.flush()\n'
    'time.sleep(60)\n'
)


def _child_pid(run):
    return int(re.search(r'child (\d+)', run.stdout).group(1))


def _gone(pid, wait=3.0):
    """Whether a process has ended (a zombie counts) within ``wait`` seconds:
    its pipes close a moment before the kernel marks it as ended."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with open('/proc/%d/stat' % pid) as handle:
                if handle.read().split(') ')[1].startswith(('Z', 'X')):
                    return True
        except OSError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_run_watched_kills_the_process_group_on_timeout():
    start = time.monotonic()
    run = mp.run_watched([sys.executable, '-c', CHILD_SCRIPT % 30], timeout=1.5)
    assert run.timed_out
    assert run.abort_line is None
    assert time.monotonic() - start < 10
    assert 'working' in run.stderr
    assert _gone(_child_pid(run))


def test_run_watched_aborts_on_a_matching_stderr_line():
    lines = []
    start = time.monotonic()
    run = mp.run_watched([sys.executable, '-c', CHILD_SCRIPT % 0.2], timeout=30, watch=RetryWatch(1),
                         on_line=lambda stream, line: lines.append((stream, line)))
    assert not run.timed_out
    assert run.abort_line.startswith('An error occured')
    assert time.monotonic() - start < 10
    assert ('stderr', 'working') in lines
    assert _gone(_child_pid(run))


def test_run_watched_returns_rc_and_output():
    run = mp.run_watched([sys.executable, '-c', 'import os, sys; print(os.environ["LC_ALL"]); sys.exit(3)'], timeout=30)
    assert run.rc == 3
    assert run.stdout == 'C'
    assert not run.timed_out


@pytest.mark.skipif(not HAVE_MAPPROXY, reason='no MapProxy in the venv')
def test_cache_locks_are_mapproxys_own_exclusive_and_released(tmp_path):
    venv = mp.MapProxyVenv(FakeModule(), VENV)
    with venv.cache_locks(str(tmp_path), ['osm_cache', 'other'], 5) as busy:
        assert busy is None
        assert venv.busy_caches(str(tmp_path), ['osm_cache', 'other', 'third']) == ['osm_cache', 'other']
        with venv.cache_locks(str(tmp_path), ['other'], 1) as second:
            assert second['cache'] == 'other' and 'not free within 1 s' in second['error']
        # mapproxy-seed's own lock, MapProxy's CacheLocker in another process, is held out too
        probe = subprocess.run(
            [os.path.join(VENV, 'bin', 'python'), '-c',
             'from mapproxy.seed.cachelock import CacheLocker, CacheLockedError\n'
             'try:\n'
             '    with CacheLocker(".mapproxy_seed.lck").lock("osm_cache", no_block=True): print("free")\n'
             'except CacheLockedError: print("locked")\n'],
            cwd=str(tmp_path), capture_output=True, text=True, check=True)
        assert probe.stdout.strip() == 'locked'
    assert venv.busy_caches(str(tmp_path), ['osm_cache', 'other']) == []
    assert (tmp_path / '.mapproxy_seed.lck').is_file()


# -- whom mapproxy-seed runs as (root without sudo: the owner of the cache base folder)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='running a tool as another user needs root')


@needs_root
def test_tool_user_is_the_owner_of_the_cache_base(tmp_path):
    nobody = pwd.getpwnam('nobody')
    base = tmp_path / 'cache'
    base.mkdir()
    assert mp.tool_user(FakeModule(), None, str(base)) is None  # root's folder: root
    os.chown(base, nobody.pw_uid, nobody.pw_gid)
    user = mp.tool_user(FakeModule(), None, str(base))
    assert (user.name, user.uid, user.gid) == ('nobody', nobody.pw_uid, nobody.pw_gid)
    assert mp.tool_user(FakeModule(), None, str(tmp_path / 'missing')) is None
    # an explicit user wins over the folder's owner, root means no switch
    assert mp.tool_user(FakeModule(), 'root', str(base)) is None
    assert mp.tool_user(FakeModule(), 'nobody', None).uid == nobody.pw_uid


@needs_root
def test_tool_user_names_a_missing_user():
    with pytest.raises(FailJson, match='Option user: there is no user p2d2-no-such-user on the host'):
        mp.tool_user(FakeModule(), 'p2d2-no-such-user')


@needs_root
def test_tool_user_names_a_folder_owner_without_user_entry(tmp_path):
    base = tmp_path / 'cache'
    base.mkdir()
    uid = 4242
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            break
        uid += 1
    os.chown(base, uid, uid)
    with pytest.raises(FailJson, match='belongs to uid %d, which has no user entry: set option user' % uid):
        mp.tool_user(FakeModule(), None, str(base))


@needs_root
def test_run_watched_and_temp_dir_as_the_tool_user(tmp_path):
    """The real switch: a system tool run as nobody reports nobody's ids and reads a file
    that the module (root) wrote into its private temporary folder."""
    nobody = pwd.getpwnam('nobody')
    user = mp.tool_user(FakeModule(), 'nobody')
    with mp.TempDir(owner=user) as tmp:
        path = tmp.write('seed.yaml', 'seeds: {}\n')
        assert (os.stat(tmp.path).st_uid, os.stat(path).st_uid) == (nobody.pw_uid, nobody.pw_uid)
        assert oct(os.stat(tmp.path).st_mode & 0o777) == '0o700'
        run = mp.run_watched(['/bin/sh', '-c', 'id -u; id -g; cat seed.yaml; echo "$HOME"'], 30,
                             cwd=tmp.path, user=user)
    assert run.rc == 0, run.stderr
    assert run.stdout.split('\n') == [str(nobody.pw_uid), str(nobody.pw_gid), 'seeds: {}', nobody.pw_dir]
