# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print the paths a MapProxy configuration writes its caches to, one per line.

Run by the backup script (mapproxy-backup) with the venv's Python at backup time, so
that the exclusion follows the configuration on the host: the cache base directory,
the lock directories, each cache's directory, and each sqlite, mbtiles or geopackage
cache's file (``filename``), also outside the base directory. Relative paths are
resolved against the configuration's folder, as MapProxy does; configurations named
in ``base`` are read too. Paths are normalised (no trailing slash, no ``..``).
A path that holds a configuration file (a cache base directory that is the
configuration's folder, say) is never printed: in its place come the folders and files
MapProxy names after the caches there (``NAME_*``, a pattern as find -path reads it).
Exits 1 with a message when the configuration cannot be read.
"""

import os
import sys

import yaml

# MapProxy's defaults for the cache base directory and the lock directory.
DEFAULT_BASE_DIR = './cache_data'
DEFAULT_LOCK_DIR = './cache_data/tile_locks'


def _load(path, seen):
    path = os.path.abspath(path)
    if path in seen:
        return []
    seen.add(path)
    with open(path, encoding='utf-8') as stream:
        conf = yaml.safe_load(stream) or {}
    if not isinstance(conf, dict):
        raise ValueError(f'{path}: not a mapping')
    confs = []
    bases = conf.get('base') or []
    if isinstance(bases, str):
        bases = [bases]
    for base in bases:
        confs.extend(_load(os.path.join(os.path.dirname(path), base), seen))
    confs.append((path, conf))
    return confs


def _mapping(value):
    return value if isinstance(value, dict) else {}


def cache_paths(config_file):
    """The normalised, absolute paths the caches of config_file write to, sorted."""
    config_dir = os.path.dirname(os.path.abspath(config_file))
    confs = _load(config_file, set())

    def absolute(value):
        return os.path.normpath(os.path.join(config_dir, os.path.expanduser(str(value))))

    paths = set()
    # Caches that write below the base directory, into NAME_GRID (or NAME_GRID.mbtiles ...).
    in_base = set()
    cache_globals = {}
    for _path, conf in confs:
        cache_globals.update(_mapping(_mapping(conf.get('globals')).get('cache')))
    base_dir = absolute(cache_globals.get('base_dir') or DEFAULT_BASE_DIR)
    paths.add(base_dir)
    paths.add(absolute(cache_globals.get('lock_dir') or DEFAULT_LOCK_DIR))
    if cache_globals.get('tile_lock_dir'):
        paths.add(absolute(cache_globals['tile_lock_dir']))
    for _path, conf in confs:
        for name, cache in _mapping(conf.get('caches')).items():
            cache = _mapping(cache)
            backend = _mapping(cache.get('cache'))
            # As MapProxy's cache_dir(): the cache's directory, its cache_dir, or the base directory.
            own_dir = backend.get('directory') or cache.get('cache_dir')
            cache_dir = absolute(own_dir) if own_dir else base_dir
            paths.add(cache_dir)
            if not own_dir:
                in_base.add(str(name))
            if backend.get('tile_lock_dir'):
                paths.add(absolute(backend['tile_lock_dir']))
            filename = backend.get('filename')
            if filename:
                # MapProxy: ./name is relative to the configuration, other names to the cache's directory.
                filename = str(filename)
                paths.add(absolute(filename) if filename.startswith('./')
                          else os.path.normpath(os.path.join(cache_dir, filename)))
    # Never a path that holds a configuration file: the backup would lose it.
    config_files = [path for path, _conf in confs]
    holding = {path for path in paths
               if any(conf == path or conf.startswith(path.rstrip(os.sep) + os.sep) for conf in config_files)}
    paths -= holding
    for path in holding:
        paths.update(os.path.join(path, name + '_*') for name in in_base)
    return sorted(paths)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write('usage: cache_paths.py MAPPROXY_YAML\n')
        return 2
    try:
        paths = cache_paths(argv[1])
    except (OSError, ValueError, yaml.YAMLError) as error:
        sys.stderr.write(f'cannot read the caches of {argv[1]}: {error}\n')
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
