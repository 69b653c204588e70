# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Walk the tiles of a MapProxy file cache on disk.

Only the Python standard library is used: this code runs under the managed
host's system Python, which does not have MapProxy.

The directory layouts follow ``mapproxy/cache/path.py`` of MapProxy 7.0.0
(internal tile coordinates x, y, level z; ``ext`` is the file extension):

=========== ==============================================================
layout      path below the cache directory
=========== ==============================================================
tc          ``%02d(z)/xxx/xxx/xxx/yyy/yyy/yyy.ext`` (x and y in groups of 3 digits)
mp          ``%02d(z)/xxxx/xxxx/yyyy/yyyy.ext`` (groups of 4 digits)
tms         ``z/x/y.ext`` (no padding)
reverse_tms ``y/x/z.ext``
quadkey     ``QUADKEY.ext`` (all levels in one folder; level 0 is ``.ext``)
arcgis      ``L%02d(z)/R%08x(y)/C%08x(x).ext``
=========== ==============================================================

Entries that do not fit the layout are skipped: MapProxy's ``tile_locks``
and ``single_color_tiles`` folders, temporary files of tiles being written
(``y.png.tmp-1234``), and dimension sub-folders.
"""

from __future__ import annotations

import errno
import os
import re

LAYOUTS = ('tc', 'mp', 'tms', 'reverse_tms', 'quadkey', 'arcgis')


_LEVEL_PART_RE = re.compile(r'^\s*([0-9]+)\s*(?:-\s*([0-9]+))?\s*$')


def levels_from_text(text):
    """The levels of text such as ``5``, ``11-14`` or ``3,5,7-9``, sorted. The one reading
    of level text: the modules (module_utils/mapproxy.py parse_levels, which also takes
    lists and {from, to}), the seeding role's filter and its timer tool. Raises ValueError
    with what is wrong."""
    levels = set()
    for part in str(text).split(','):
        match = _LEVEL_PART_RE.match(part)
        if not match:
            raise ValueError('%r is not a level, a range such as 11-14 or a list such as 3,5,7-9' % (text,))
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ValueError('the range %s runs backwards (give the lower level first)' % (part.strip(),))
        levels.update(range(first, last + 1))
    return sorted(levels)


def _dec(name):
    if name.isdigit() and name.isascii():
        return int(name)
    return None


def _fixed_dec(width):
    def parse(name):
        if len(name) == width and name.isdigit() and name.isascii():
            return int(name)
        return None
    return parse


def _prefixed_hex(prefix, width):
    def parse(name):
        if len(name) != width + 1 or name[0] != prefix:
            return None
        digits = name[1:]
        if not digits.isascii() or not digits.isalnum():
            return None
        try:
            return int(digits, 16)
        except ValueError:
            return None
    return parse


def _arcgis_level(name):
    if len(name) >= 3 and name[0] == 'L':
        return _dec(name[1:])
    return None


# For every layout: one (coordinate, weight, parser) entry per path component.
# The value of a coordinate is the sum of parsed component * weight.
_SPECS = {
    'tms': (('z', 1, _dec), ('x', 1, _dec), ('y', 1, _dec)),
    'reverse_tms': (('y', 1, _dec), ('x', 1, _dec), ('z', 1, _dec)),
    'tc': (('z', 1, _dec),
           ('x', 1000000, _fixed_dec(3)), ('x', 1000, _fixed_dec(3)), ('x', 1, _fixed_dec(3)),
           ('y', 1000000, _fixed_dec(3)), ('y', 1000, _fixed_dec(3)), ('y', 1, _fixed_dec(3))),
    'mp': (('z', 1, _dec),
           ('x', 10000, _fixed_dec(4)), ('x', 1, _fixed_dec(4)),
           ('y', 10000, _fixed_dec(4)), ('y', 1, _fixed_dec(4))),
    'arcgis': (('z', 1, _arcgis_level), ('y', 1, _prefixed_hex('R', 8)), ('x', 1, _prefixed_hex('C', 8))),
}


def _split_ext(name):
    """Return the stem of a tile file name, or None if it has no plain extension."""
    stem, dot, ext = name.rpartition('.')
    if not dot or not ext or not ext.isascii() or not ext.isalnum():
        return None
    return stem


def _quadkey_coord(stem):
    """Return (x, y, z) of a quadkey, or None."""
    x = y = 0
    for char in stem:
        if char not in '0123':
            return None
        digit = ord(char) - 48
        x = (x << 1) | (digit & 1)
        y = (y << 1) | (digit >> 1)
    return x, y, len(stem)


class TileFilter:
    """Which tiles to select: a set of levels and, per level, an inclusive range
    ``(x0, y0, x1, y1)`` of internal tile coordinates. None means no limit."""

    def __init__(self, levels=None, ranges=None):
        self.levels = None if levels is None else frozenset(levels)
        self.ranges = ranges or None
        if self.ranges is not None:
            limit = frozenset(self.ranges)
            self.levels = limit if self.levels is None else self.levels & limit

    def level_ok(self, z):
        return self.levels is None or z in self.levels

    def x_ok(self, z, x):
        if self.ranges is None:
            return True
        r = self.ranges.get(z)
        return r is not None and r[0] <= x <= r[2]

    def tile_ok(self, x, y, z):
        if self.levels is not None and z not in self.levels:
            return False
        if self.ranges is None:
            return True
        r = self.ranges.get(z)
        return r is not None and r[0] <= x <= r[2] and r[1] <= y <= r[3]


def _scandir(path):
    try:
        return list(os.scandir(path))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        return []


def iter_tiles(directory, layout, tile_filter=None):
    """Yield ``(z, x, y, path, stat_result)`` for every tile file of a file cache.

    ``stat_result`` is from ``lstat``: tiles that MapProxy stored as links to a
    single-colour tile (``link_single_color_images``) count as the link itself.
    """
    if layout not in LAYOUTS:
        raise ValueError('unknown directory_layout %r' % (layout,))
    tile_filter = tile_filter or TileFilter()
    if layout == 'quadkey':
        return _iter_quadkey(directory, tile_filter)
    return _iter_spec(directory, _SPECS[layout], tile_filter)


def _iter_quadkey(directory, tile_filter):
    for entry in _scandir(directory):
        stem = _split_ext(entry.name)
        if stem is None or entry.is_dir(follow_symlinks=False):
            continue
        coord = _quadkey_coord(stem)
        if coord is None or not tile_filter.tile_ok(*coord):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        yield coord[2], coord[0], coord[1], entry.path, st


def _iter_spec(directory, spec, tile_filter):
    last = len(spec) - 1
    # The depth after which the level and the x coordinate are complete, to
    # skip whole folders early.
    z_depth = [i for i, part in enumerate(spec) if part[0] == 'z'][0]
    x_depths = [i for i, part in enumerate(spec) if part[0] == 'x']
    x_depth = x_depths[-1] if z_depth < x_depths[0] else None

    def walk(path, depth, values):
        name_parser = spec[depth]
        coord_name, weight, parse = name_parser
        for entry in _scandir(path):
            name = entry.name
            if depth == last:
                stem = _split_ext(name)
                if stem is None:
                    continue
                part = parse(stem)
                if part is None or entry.is_dir(follow_symlinks=False):
                    continue
                vals = dict(values)
                vals[coord_name] = vals.get(coord_name, 0) + part * weight
                x, y, z = vals['x'], vals['y'], vals['z']
                if not tile_filter.tile_ok(x, y, z):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                yield z, x, y, entry.path, st
            else:
                part = parse(name)
                if part is None or not entry.is_dir(follow_symlinks=False):
                    continue
                vals = dict(values)
                vals[coord_name] = vals.get(coord_name, 0) + part * weight
                if depth == z_depth and not tile_filter.level_ok(vals['z']):
                    continue
                if depth == x_depth and not tile_filter.x_ok(vals['z'], vals['x']):
                    continue
                yield from walk(entry.path, depth + 1, vals)

    return walk(directory, 0, {})


class LevelStats:
    __slots__ = ('tiles', 'bytes', 'disk_bytes', 'oldest', 'newest')

    def __init__(self):
        self.tiles = 0
        self.bytes = 0
        self.disk_bytes = 0
        self.oldest = None
        self.newest = None

    def add(self, st):
        self.tiles += 1
        self.bytes += st.st_size
        self.disk_bytes += getattr(st, 'st_blocks', 0) * 512
        mtime = st.st_mtime
        if self.oldest is None or mtime < self.oldest:
            self.oldest = mtime
        if self.newest is None or mtime > self.newest:
            self.newest = mtime

    def merge(self, other):
        self.tiles += other.tiles
        self.bytes += other.bytes
        self.disk_bytes += other.disk_bytes
        for value in (other.oldest, other.newest):
            if value is None:
                continue
            if self.oldest is None or value < self.oldest:
                self.oldest = value
            if self.newest is None or value > self.newest:
                self.newest = value


def collect_stats(directory, layout, tile_filter=None):
    """Return ``{level: LevelStats}`` for the tiles of one cache directory."""
    levels = {}
    for z, _x, _y, _path, st in iter_tiles(directory, layout, tile_filter):
        stats = levels.get(z)
        if stats is None:
            stats = levels[z] = LevelStats()
        stats.add(st)
    return levels


def count_written_since(directory, layout, since_ns, tile_filter=None):
    """Count tiles whose mtime is at or after ``since_ns`` (nanoseconds)."""
    count = 0
    for _z, _x, _y, _path, st in iter_tiles(directory, layout, tile_filter):
        if st.st_mtime_ns >= since_ns:
            count += 1
    return count


def remove_tiles(directory, layout, tile_filter=None, before=None, dry_run=False, on_remove=None):
    """Remove tiles (all, or those with an mtime before ``before`` seconds).

    Returns ``{level: LevelStats}`` of what was (or, with ``dry_run``, would be)
    removed. ``on_remove(path, stat)`` is called for each such tile. Folders
    that become empty are removed as MapProxy's own cleanup does, but never
    ``directory`` itself.
    """
    removed = {}
    touched_dirs = set()
    for z, _x, _y, path, st in iter_tiles(directory, layout, tile_filter):
        if before is not None and not st.st_mtime < before:
            continue
        if not dry_run:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            touched_dirs.add(os.path.dirname(path))
        stats = removed.get(z)
        if stats is None:
            stats = removed[z] = LevelStats()
        stats.add(st)
        if on_remove is not None:
            on_remove(path, st)
    if touched_dirs:
        remove_empty_dirs(directory, touched_dirs)
    return removed


def remove_empty_dirs(root, dirs):
    root = os.path.normpath(root)
    pending = set(os.path.normpath(d) for d in dirs)
    # Deepest first, so that parents become empty before they are tried.
    while pending:
        path = max(pending, key=lambda p: p.count(os.sep))
        pending.discard(path)
        if path == root or not path.startswith(root + os.sep):
            continue
        try:
            os.rmdir(path)
        except OSError as ex:
            # Not empty (MapProxy may just have written a tile) or gone.
            if ex.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                raise
            continue
        pending.add(os.path.dirname(path))


def filesystem_usage(path):
    """Return ``(free_bytes, total_bytes)`` of the file system holding ``path``
    (or its nearest existing parent)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    try:
        vfs = os.statvfs(probe)
    except OSError:
        return None, None
    return vfs.f_bavail * vfs.f_frsize, vfs.f_blocks * vfs.f_frsize
