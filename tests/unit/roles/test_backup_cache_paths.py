# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cache exclusion of the backup role: which paths the collection's probe
(plugins/module_utils/mapproxy_probe.py, shipped in roles/mapproxy_backup/files and run by the
backup script with ``--cache-paths``) reads from a MapProxy configuration with MapProxy's own
loader, checked against the files the real mapproxy-seed writes, and the rendered backup
script (mapproxy-backup) run on such a tree: no cache file, also not an sqlite, mbtiles or
geopackage cache outside the cache base, is archived."""

from __future__ import annotations

import fnmatch
import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import jinja2
import pytest

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import (
    VENV, file_cache, make_config, mapproxy_seed, needs_mapproxy, write_config,
)

ROLE = Path(__file__).resolve().parents[3] / 'roles' / 'mapproxy_backup'
PROBE = ROLE / 'files' / 'mapproxy_probe.py'
BBOX = [6.0, 50.5, 7.5, 51.5]


def run_probe(config):
    """The probe as the backup script runs it: a copy in a folder of its own (outside the
    trees the tests look at), with the venv's Python."""
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / 'mapproxy_probe.py'
        probe.write_text(PROBE.read_text())
        return subprocess.run([os.path.join(VENV, 'bin', 'python'), '-I', str(probe), '--cache-paths', str(config)],
                              capture_output=True, text=True, timeout=120, check=False)


def cache_paths(config):
    proc = run_probe(config)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def covered(path, excluded):
    return any(path == ex or path.startswith(ex + os.sep) for ex in excluded)


@needs_mapproxy
def test_relative_paths_follow_the_config_folder_and_lose_trailing_slashes(tmp_path):
    conf = make_config('/srv/cache/', caches={
        'a': file_cache(directory='tiles/a/'),
        'b': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {'type': 'mbtiles', 'filename': 'b.mbtiles'}},
        'c': {'grids': ['webmercator'], 'sources': ['dbg'],
              'cache': {'type': 'geopackage', 'filename': './gpkg/c.gpkg'}},
        'd': {'grids': ['webmercator'], 'sources': ['dbg'],
              'cache': {'type': 'mbtiles', 'directory': '/data/mb/', 'filename': 'd.mbtiles'}},
    })
    conf['globals']['cache'] = {'base_dir': '/srv/cache/', 'tile_lock_dir': '/run/locks//'}
    config = write_config(tmp_path / 'mapproxy.yaml', conf)
    assert cache_paths(config) == sorted({
        '/srv/cache',
        str(tmp_path / 'cache_data' / 'tile_locks'),  # MapProxy's default lock_dir, next to the config
        '/run/locks',
        str(tmp_path / 'tiles' / 'a'),
        '/srv/cache/b.mbtiles',
        str(tmp_path / 'gpkg' / 'c.gpkg'),
        # MapProxy reads no 'directory' for an mbtiles cache (it warns): an absolute filename only
        '/data/mb/d.mbtiles',
    })


@needs_mapproxy
def test_base_configurations_are_read(tmp_path):
    base = make_config('/base/cache', caches={
        'x': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {'type': 'sqlite', 'directory': '/x/'}}})
    del base['globals']['cache']['lock_dir']
    write_config(tmp_path / 'base.yaml', base)
    config = write_config(tmp_path / 'mapproxy.yaml', {'base': 'base.yaml', 'caches': {}})
    # the sqlite cache's level files go into a folder per grid, its tile locks beside them
    assert cache_paths(config) == ['/base/cache', str(tmp_path / 'cache_data' / 'tile_locks'),
                                   '/x/tile_locks', '/x/webmercator']


@needs_mapproxy
def test_caches_in_a_store_leave_only_their_tile_locks_and_are_not_contacted(tmp_path, closed_port):
    """s3 and redis caches keep nothing on this host but their tile locks: those are left out
    of the backup like any cache's, and the store (here a port nobody listens on, with no
    credentials) is never asked while the backup reads the configuration."""
    pytest.importorskip('boto3')
    pytest.importorskip('redis')
    endpoint = 'http://127.0.0.1:%d' % closed_port
    conf = make_config('/srv/cache', caches={
        'osm_s3': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {
            'type': 's3', 'bucket_name': 'absent', 'directory': 'osm', 'endpoint_url': endpoint,
            'region_name': 'us-east-1', 'tile_lock_dir': '/srv/cache/tile_locks/osm_s3'}},
        'hot': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {
            'type': 'redis', 'host': '127.0.0.1', 'port': closed_port, 'prefix': 'hot'}},
    })
    conf['globals']['cache'] = {'base_dir': '/srv/cache', 'lock_dir': '/srv/cache/locks'}
    config = write_config(tmp_path / 'mapproxy.yaml', conf)
    assert cache_paths(config) == ['/srv/cache', '/srv/cache/locks', '/srv/cache/tile_locks',
                                   '/srv/cache/tile_locks/osm_s3']


@needs_mapproxy
def test_an_unreadable_configuration_fails_naming_it(tmp_path):
    config = tmp_path / 'mapproxy.yaml'
    config.write_text('caches: [unclosed\n')
    proc = run_probe(config)
    assert proc.returncode == 1 and proc.stdout == ''
    assert 'cannot read the caches of ' + str(config) in proc.stderr


def seeded_tree(root):
    """An /etc/mapproxy + /opt/mapproxy tree under root whose caches mapproxy-seed filled:
    a file cache, an sqlite cache and an mbtiles cache outside the base directory (under
    /opt/mapproxy, which is archived), and a geopackage cache beside the config."""
    etc = root / 'etc' / 'mapproxy'
    opt = root / 'opt' / 'mapproxy'
    etc.mkdir(parents=True)
    (opt / 'static').mkdir(parents=True)
    (opt / 'static' / 'keep.txt').write_text('kept\n')
    caches = {
        'tiles': file_cache(directory=f'{opt}/cache/tiles/'),
        'lite': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {'type': 'sqlite', 'directory': f'{opt}/sqlite/'}},
        'mb': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {'type': 'mbtiles', 'filename': f'{opt}/mb.mbtiles'}},
        'gp': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {'type': 'geopackage', 'filename': './gp.gpkg'}},
    }
    config = write_config(etc / 'mapproxy.yaml', make_config(root / 'cache', caches=caches))
    mapproxy_seed(config, list(caches), BBOX, [0, 1, 2], etc)
    return config, etc, opt


@needs_mapproxy
def test_every_file_mapproxy_seed_writes_is_excluded(tmp_path):
    config, etc, opt = seeded_tree(tmp_path)
    excluded = cache_paths(config)
    written = {str(p) for p in tmp_path.rglob('*') if p.is_file()} - {config, str(opt / 'static' / 'keep.txt')}
    # The single-file caches, and the sqlite cache's level files (named *.mbtiles too).
    assert {str(opt / 'mb.mbtiles'), str(etc / 'gp.gpkg')} <= written
    assert any(p.startswith(str(opt / 'sqlite') + os.sep) for p in written)
    assert written and all(covered(p, excluded) for p in written), (sorted(written), excluded)
    assert not covered(config, excluded) and not covered(str(opt / 'static' / 'keep.txt'), excluded)


def render_script(tmp_path, root, config, venv=VENV):
    """The role's backup script, rendered with the role's defaults for paths under root."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / 'templates')), keep_trailing_newline=True)
    env.filters['comment'] = lambda text: '# ' + text
    env.filters['quote'] = lambda text: shlex.quote(str(text))
    env.filters['regex_replace'] = lambda text, pattern, repl: __import__('re').sub(pattern, repl, text)
    env.filters['unique'] = lambda items: list(dict.fromkeys(items))
    env.globals['lookup'] = lambda _kind, name: (ROLE / 'files' / name).read_text().rstrip('\n')
    script = tmp_path / 'mapproxy-backup'
    script.write_text(env.get_template('mapproxy-backup.sh.j2').render(
        ansible_managed='test', mapproxy_backup_script=str(script),
        mapproxy_backup_dir=str(tmp_path / 'backup'), mapproxy_backup_prefix='mapproxy-config_',
        mapproxy_backup_retention_days=90, mapproxy_config_file=config,
        mapproxy_venv_path=venv, mapproxy_backup_include_venv=False,
        mapproxy_backup_paths=[str(root / 'etc' / 'mapproxy'), str(root / 'opt' / 'mapproxy')],
        mapproxy_backup_exclude_paths=[]))
    script.chmod(0o755)
    return script


@needs_mapproxy
@pytest.mark.skipif(shutil.which('flock') is None or shutil.which('sha256sum') is None, reason='needs util-linux and coreutils')
def test_the_backup_script_archives_no_cache_file(tmp_path):
    root = tmp_path / 'root'
    config, _etc, _opt = seeded_tree(root)
    script = render_script(tmp_path, root, config)
    proc = subprocess.run([str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'warning' not in proc.stderr
    archive = proc.stdout.split('written: ', 1)[1].split()[0]
    with tarfile.open(archive) as tar:
        members = {'/' + m.name for m in tar.getmembers() if m.isfile()}
    written = {str(p) for p in root.rglob('*') if p.is_file()}
    assert {config, str(root / 'opt' / 'mapproxy' / 'static' / 'keep.txt')} <= members
    assert members & written == {config, str(root / 'opt' / 'mapproxy' / 'static' / 'keep.txt')}, sorted(members & written)
    assert not any(m.endswith(('.mbtiles', '.gpkg', '.png', '.sqlite')) for m in members), sorted(members)


@needs_mapproxy
def test_a_cache_base_in_the_config_folder_never_excludes_the_config(tmp_path):
    # base_dir '.': the caches without a directory of their own write beside mapproxy.yaml.
    caches = {'beside': file_cache(), 'own': file_cache(directory=str(tmp_path / 'own'))}
    config = write_config(tmp_path / 'mapproxy.yaml', make_config('.', caches=caches))
    mapproxy_seed(config, list(caches), BBOX, [0, 1], tmp_path)
    excluded = cache_paths(config)
    # the caches' own folders in it, as MapProxy names them (NAME_GRID), not the folder itself
    assert str(tmp_path) not in excluded and str(tmp_path / 'beside_EPSG3857') in excluded, excluded
    written = {str(p) for p in tmp_path.rglob('*') if p.is_file()} - {config}
    assert any('/beside_' in p for p in written) and any('/own/' in p for p in written), sorted(written)

    def pruned(path):
        # As find -path PATTERN -prune: a pattern matches the path or one of its folders.
        parts = Path(path).parts
        return any(fnmatch.fnmatchcase(str(Path(*parts[:i])), pattern)
                   for pattern in excluded for i in range(2, len(parts) + 1))
    assert all(pruned(p) for p in written), sorted(p for p in written if not pruned(p))
    assert not pruned(config)


@pytest.mark.skipif(shutil.which('flock') is None or shutil.which('sha256sum') is None, reason='needs util-linux and coreutils')
def test_an_unreadable_config_still_leaves_out_the_default_cache_folder(tmp_path):
    root = tmp_path / 'root'
    etc = root / 'etc' / 'mapproxy'
    (etc / 'cache_data' / 'osm_EPSG3857').mkdir(parents=True)
    (etc / 'cache_data' / 'osm_EPSG3857' / 'tile.png').write_bytes(b'png')
    (root / 'opt' / 'mapproxy').mkdir(parents=True)
    config = etc / 'mapproxy.yaml'
    config.write_text('caches: [unclosed\n')
    script = render_script(tmp_path, root, str(config))
    proc = subprocess.run([str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'cannot read the cache paths of ' + str(config) in proc.stderr
    archive = proc.stdout.split('written: ', 1)[1].split()[0]
    with tarfile.open(archive) as tar:
        members = {'/' + m.name for m in tar.getmembers()}
    assert str(config) in members and not any('cache_data' in m for m in members), sorted(members)


@needs_mapproxy
@pytest.mark.skipif(shutil.which('flock') is None or shutil.which('sha256sum') is None, reason='needs util-linux and coreutils')
def test_the_backup_script_starts_the_venvs_python_only_after_a_change(tmp_path):
    """pip freeze and the probe are kept with what they were computed from: the venv's
    site-packages (which an install changes) and the files MapProxy read, the configuration
    and a base: file outside the archived trees."""
    root = tmp_path / 'root'
    config, _etc, _opt = seeded_tree(root)
    base = tmp_path / 'elsewhere' / 'base.yaml'
    base.parent.mkdir()
    base.write_text('globals: {}\n')
    with open(config, 'a', encoding='utf-8') as handle:
        handle.write('base: %s\n' % base)
    # A venv whose Python logs each start and runs the test venv's Python.
    venv = tmp_path / 'venv'
    site = venv / 'lib' / 'python3.99' / 'site-packages'
    site.mkdir(parents=True)
    (venv / 'bin').mkdir()
    starts = tmp_path / 'starts.log'
    python = venv / 'bin' / 'python'
    python.write_text('#!/bin/sh\necho "$*" >> %s\nexec %s "$@"\n'
                      % (shlex.quote(str(starts)), shlex.quote(os.path.join(VENV, 'bin', 'python'))))
    python.chmod(0o755)
    script = render_script(tmp_path, root, config, venv=str(venv))

    def run():
        proc = subprocess.run([str(script), '--if-changed'], capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert 'warning' not in proc.stderr, proc.stderr
        lines = starts.read_text().splitlines() if starts.exists() else []
        return proc.stdout.split(':', 1)[0], lines

    first, started = run()
    assert first == 'written' and len(started) == 2, started  # the probe and pip freeze
    again, started_again = run()
    assert again == 'unchanged' and started_again == started, started_again

    # An install changes site-packages: pip freeze and the probe run again.
    (site / 'newpackage').mkdir()
    after_install, started_install = run()
    assert after_install == 'unchanged', 'the same package list gives the same archive'
    assert len(started_install) == 4, started_install

    # A changed configuration: the probe runs again, and the change is archived.
    with open(config, 'a', encoding='utf-8') as handle:
        handle.write('# changed\n')
    changed, started_changed = run()
    assert changed == 'written'
    assert len(started_changed) == 5 and '--cache-paths' in started_changed[-1], started_changed

    # The base file alone: read again by the probe; not archived, so the archive stays.
    base.write_text('globals: {}\n# changed\n')
    after_base, started_base = run()
    assert after_base == 'unchanged'
    assert len(started_base) == 6 and '--cache-paths' in started_base[-1], started_base
