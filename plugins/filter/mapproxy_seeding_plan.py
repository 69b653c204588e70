# Copyright: p2d2 maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check and normalise the jobs of the role p2d2.mapproxy.mapproxy_seeding."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.p2d2.mapproxy.plugins.module_utils.mapproxy import parse_age, parse_levels as _parse_levels

DOCUMENTATION = r"""
name: mapproxy_seeding_plan
short_description: Check and normalise seeding, cleanup and cache-limit jobs
description:
  - Used by the role p2d2.mapproxy.mapproxy_seeding. Checks its job variables and returns them in one
    normalised form, or fails with a message that names the variable, the entry and what to change.
  - Levels are given as a number, a range such as C(11-14), a list such as C(3,5,7-9) or C([3, 5]),
    or a mapping C({from, to}), read by the same parser as the modules' O(levels); they are returned as
    a sorted list.
  - Durations use mapproxy-seed's format (C(90s), C(45m), C(6h), C(1d); a bare number is seconds) and
    are also returned in seconds. Sizes take binary units (C(500M), C(20G); a bare number is bytes).
  - A cleanup job's C(max_age) is read as the module p2d2.mapproxy.mapproxy_cache_clean reads it (C(30d),
    C(12h), or C(days=30) as a mapping); a bare number is days. The old key C(max_age_days) still works, with a deprecation
    warning, until 0.3.0.
  - What the filter cannot know is checked on the host by the role (schedules with
    C(systemd-analyze calendar), cache, grid and level names with MapProxy's loader).
options:
  _input:
    description: The seeding jobs (C(mapproxy_seeding_jobs)).
    type: list
    elements: dict
    required: true
  cleanup_jobs:
    description: The cleanup jobs (C(mapproxy_seeding_cleanup_jobs)).
    type: list
    elements: dict
    default: []
  cache_limits:
    description: The cache size limits (C(mapproxy_seeding_cache_limits)).
    type: list
    elements: dict
    default: []
  coverages:
    description: Named coverages that seeding jobs may use (C(mapproxy_seeding_coverages)).
    type: dict
    default: {}
  defaults:
    description: Values for keys an entry leaves out (C(schedule), C(max_duration), C(concurrency), ...).
    type: dict
    default: {}
author: p2d2 maintainers
"""

EXAMPLES = r"""
__plan: >-
  {{ mapproxy_seeding_jobs | p2d2.mapproxy.mapproxy_seeding_plan(cleanup_jobs=mapproxy_seeding_cleanup_jobs,
     cache_limits=mapproxy_seeding_cache_limits, coverages=mapproxy_seeding_coverages) }}
"""

RETURN = r"""
_value:
  description:
    - C(seeds), C(cleanups) and C(limits) (lists of normalised entries, each with its C(unit) name),
      C(coverages) (the named coverages, with one C(<job>_bbox) coverage for every seeding job that gives a
      C(bbox)) and C(seed_config) (the content of C(seed.yaml) - the coverages the jobs use and one seeding
      task per job).
  type: dict
"""

NAME_RE = re.compile(r'^[a-z0-9][a-z0-9_-]{0,62}$')
DURATION_RE = re.compile(r'^(\d*\.?\d+)([smhd]?)$')
SIZE_RE = re.compile(r'^([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)(?:iB|B)?$', re.IGNORECASE)
SIZE_UNITS = {'': 1, 'K': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3, 'T': 1024 ** 4, 'P': 1024 ** 5}
AGE_KEYS = ('weeks', 'days', 'hours', 'minutes', 'seconds')
MAX_LEVEL = 30

SEED_KEYS = {'name', 'caches', 'grids', 'bbox', 'srs', 'coverage', 'levels', 'refresh_before', 'schedule',
             'max_duration', 'concurrency', 'randomized_delay'}
CLEANUP_KEYS = {'name', 'caches', 'grids', 'levels', 'max_age', 'max_age_days', 'remove_all', 'schedule',
                'max_duration', 'randomized_delay'}
LIMIT_KEYS = {'name', 'caches', 'grids', 'max_size', 'max_filesystem_percent', 'target_percent', 'schedule',
              'max_duration', 'randomized_delay'}
DEFAULTS = {
    'schedule': 'daily',
    'limit_schedule': 'hourly',
    'max_duration': '6h',
    'limit_max_duration': '45m',
    'concurrency': 2,
    'randomized_delay': '0',
    'target_percent': 90,
}


class _Entry:
    def __init__(self, var, index, item):
        self.var = var
        self.index = index
        self.item = item
        name = item.get('name') if isinstance(item, Mapping) else None
        self.label = f"{var}[{index}]" + (f" ({name})" if isinstance(name, str) and name else '')

    def fail(self, msg):
        raise AnsibleFilterError(f"{self.label}: {msg}")


class _Reporter:
    """The parsers of module_utils report through a module's fail_json: here, through the entry."""

    def __init__(self, entry):
        self.entry = entry

    def fail_json(self, msg):
        self.entry.fail(msg)


def _is_list(value):
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _names(entry, key, required):
    value = entry.item.get(key)
    if value is None:
        if required:
            entry.fail(f"'{key}' is missing: give a list of names")
        return []
    if isinstance(value, str):
        value = [value]
    if not _is_list(value) or not value or not all(isinstance(v, str) and v for v in value):
        entry.fail(f"'{key}' must be a non-empty list of names, not {value!r}")
    if len(set(value)) != len(value):
        entry.fail(f"'{key}' names an entry twice: {value!r}")
    return list(value)


def parse_levels(value, entry, key='levels'):
    """The levels of an entry, read by the parser of the modules (module_utils)."""
    if value is None:
        entry.fail(f"'{key}' is empty: give a level, a range such as 11-14, a list, or {{from: N, to: M}}")
    levels = _parse_levels(_Reporter(entry), value, repr(key))
    bad = [level for level in levels if level > MAX_LEVEL]
    if bad:
        entry.fail(f"'{key}' has levels outside 0-{MAX_LEVEL}: {bad}")
    return levels


def parse_duration(value, entry, key):
    text = str(value).strip() if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ''
    match = DURATION_RE.match(text)
    if not match:
        entry.fail(f"'{key}' is {value!r}: give a duration such as 90s, 45m, 6h or 1d")
    seconds = float(match.group(1)) * {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400}[match.group(2)]
    if seconds < 1:
        entry.fail(f"'{key}' is {value!r}: give at least one second")
    return text, int(seconds)


def parse_size(value, entry, key):
    if _is_int(value) and value > 0:
        return value
    match = SIZE_RE.match(str(value).strip()) if isinstance(value, str) else None
    if not match:
        entry.fail(f"'{key}' is {value!r}: give a size such as 500M, 20G or 1.5T (binary units), or bytes")
    size = int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])
    if size <= 0:
        entry.fail(f"'{key}' is {value!r}: give more than 0")
    return size


def _percent(entry, key, value, low, high):
    if not _is_int(value) or not low <= value <= high:
        entry.fail(f"'{key}' is {value!r}: give a whole number from {low} to {high}")
    return value


def _refresh_before(entry, value):
    if not isinstance(value, Mapping) or len(value) != 1:
        entry.fail("'refresh_before' must have one key: weeks, days, hours, minutes, seconds, time or mtime "
                   f"(not {value!r})")
    key, amount = next(iter(value.items()))
    if key in AGE_KEYS:
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            entry.fail(f"'refresh_before.{key}' must be a number of 0 or more, not {amount!r}")
    elif key == 'time':
        if not isinstance(amount, str) or not re.match(r'^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?$', amount):
            entry.fail(f"'refresh_before.time' must be an ISO 8601 time such as 2026-01-31T12:00:00, not {amount!r}")
    elif key == 'mtime':
        if not isinstance(amount, str) or not amount.startswith('/'):
            entry.fail(f"'refresh_before.mtime' must be an absolute path, not {amount!r}")
    else:
        entry.fail(f"'refresh_before' has the key {key!r}: use weeks, days, hours, minutes, seconds, time or mtime")
    return {key: amount}


def _bbox(entry, value):
    if not _is_list(value) or len(value) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        entry.fail(f"'bbox' must be four numbers [minx, miny, maxx, maxy], not {value!r}")
    if not (value[0] < value[2] and value[1] < value[3]):
        entry.fail(f"'bbox' {list(value)!r} is empty or reversed: give [minx, miny, maxx, maxy]")
    return [float(v) for v in value]


def _common(entry, keys, defaults, schedule_key='schedule', duration_key='max_duration'):
    item = entry.item
    if not isinstance(item, Mapping):
        entry.fail(f"each entry must be a mapping, not {item!r}")
    unknown = sorted(set(item) - keys)
    if unknown:
        entry.fail(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(keys))}")
    name = item.get('name')
    if not isinstance(name, str) or not NAME_RE.match(name):
        entry.fail(f"'name' is {name!r}: give lower-case letters, digits, '_' or '-' (it names the systemd units)")
    schedule = item.get('schedule', defaults.get(schedule_key, DEFAULTS[schedule_key]))
    if not isinstance(schedule, str) or not schedule.strip() or '\n' in schedule:
        entry.fail(f"'schedule' is {schedule!r}: give a systemd calendar expression such as daily or *-*-* 03:00:00")
    max_duration, max_seconds = parse_duration(
        item.get('max_duration', defaults.get(duration_key, DEFAULTS[duration_key])), entry, 'max_duration')
    delay_seconds = 0
    raw_delay = item.get('randomized_delay', defaults.get('randomized_delay', DEFAULTS['randomized_delay']))
    if str(raw_delay).strip() not in ('0', ''):
        delay_seconds = parse_duration(raw_delay, entry, 'randomized_delay')[1]
    return {
        'name': name,
        'caches': _names(entry, 'caches', True),
        'grids': _names(entry, 'grids', False),
        'schedule': schedule.strip(),
        'max_duration': max_duration,
        'max_seconds': max_seconds,
        'randomized_delay': delay_seconds,
    }


def _seed(entry, coverages, defaults):
    item = entry.item
    out = _common(entry, SEED_KEYS, defaults)
    if 'levels' not in item:
        entry.fail("'levels' is missing: without it mapproxy-seed seeds all 20 levels (give a range such as 11-14)")
    out['levels'] = parse_levels(item['levels'], entry)
    if 'bbox' in item and 'coverage' in item:
        entry.fail("give either 'bbox' (with 'srs') or 'coverage', not both")
    if 'srs' in item and 'bbox' not in item:
        entry.fail("'srs' belongs to 'bbox'; a named coverage has its own srs")
    out['coverage'] = None
    out['coverage_def'] = None
    if 'bbox' in item:
        srs = item.get('srs', 'EPSG:4326')
        if not isinstance(srs, str) or not re.match(r'^EPSG:[0-9]+$', srs):
            entry.fail(f"'srs' is {srs!r}: give an EPSG code such as EPSG:4326")
        out['coverage'] = f"{out['name']}_bbox"
        out['coverage_def'] = {'bbox': _bbox(entry, item['bbox']), 'srs': srs}
    elif 'coverage' in item:
        if item['coverage'] not in coverages:
            entry.fail(f"'coverage' {item['coverage']!r} is not in mapproxy_seeding_coverages "
                       f"(defined: {', '.join(sorted(coverages)) or 'none'})")
        out['coverage'] = item['coverage']
    out['refresh_before'] = _refresh_before(entry, item['refresh_before']) if 'refresh_before' in item else None
    concurrency = item.get('concurrency', defaults.get('concurrency', DEFAULTS['concurrency']))
    if not _is_int(concurrency) or not 1 <= concurrency <= 64:
        entry.fail(f"'concurrency' is {concurrency!r}: give the number of seeding processes, 1 to 64")
    out['concurrency'] = concurrency
    out['unit'] = f"mapproxy-seed-{out['name']}"
    return out


def _max_age_seconds(entry):
    """The age of a cleanup job in seconds: max_age as the module mapproxy_cache_clean reads it
    (30d, 12h, {days: 30}; a bare number is days), or the deprecated max_age_days."""
    item = entry.item
    if 'max_age_days' in item:
        if 'max_age' in item:
            entry.fail("give 'max_age' only; 'max_age_days' is its old name")
        Display().deprecated(f"{entry.label}: 'max_age_days' is now 'max_age' (a bare number is still days, "
                             "and 12h or 2w work too)", version='0.3.0', collection_name='p2d2.mapproxy')
        key, value = 'max_age_days', item['max_age_days']
    else:
        key, value = 'max_age', item['max_age']
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Mapping)):
        entry.fail(f"'{key}' is {value!r}: give an age such as 30d, 12h or {{days: 30}} (a bare number is days)")
    seconds = value * 86400 if isinstance(value, (int, float)) else parse_age(_Reporter(entry), value, repr(key))
    if seconds <= 0:
        entry.fail(f"'{key}' is {value!r}: give an age above 0, such as 30d")
    return seconds


def _age_text(seconds):
    for unit, size in (('days', 86400), ('hours', 3600), ('minutes', 60)):
        if seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} seconds"


def _cleanup(entry, defaults):
    item = entry.item
    out = _common(entry, CLEANUP_KEYS, defaults)
    has_age = 'max_age' in item or 'max_age_days' in item
    remove_all = item.get('remove_all', False)
    if not isinstance(remove_all, bool):
        entry.fail(f"'remove_all' is {remove_all!r}: give true or false")
    if has_age == remove_all:
        entry.fail("give exactly one of 'max_age' (remove tiles older than that, such as 30d) and 'remove_all: true'")
    if has_age:
        seconds = _max_age_seconds(entry)
        days = seconds / 86400
        # p2d2-mapproxy-cache --max-age-days: a whole number stays one (the unit stays the same).
        out['max_age_days'] = int(days) if days == int(days) else round(days, 6)
        out['max_age_text'] = _age_text(seconds)
    else:
        out['max_age_days'] = None
        out['max_age_text'] = None
    out['remove_all'] = remove_all
    out['levels'] = parse_levels(item['levels'], entry) if 'levels' in item else []
    out['unit'] = f"mapproxy-cleanup-{out['name']}"
    return out


def _limit(entry, defaults):
    item = entry.item
    out = _common(entry, LIMIT_KEYS, defaults, schedule_key='limit_schedule', duration_key='limit_max_duration')
    has_size = 'max_size' in item
    has_percent = 'max_filesystem_percent' in item
    if has_size == has_percent:
        entry.fail("give exactly one of 'max_size' (such as 20G) and 'max_filesystem_percent' (such as 85)")
    out['max_size'] = parse_size(item['max_size'], entry, 'max_size') if has_size else None
    out['max_filesystem_percent'] = (
        _percent(entry, 'max_filesystem_percent', item['max_filesystem_percent'], 1, 99) if has_percent else None)
    out['target_percent'] = _percent(
        entry, 'target_percent', item.get('target_percent', defaults.get('target_percent', DEFAULTS['target_percent'])),
        1, 100)
    out['unit'] = f"mapproxy-cache-limit-{out['name']}"
    return out


def _entries(value, var):
    if value is None:
        return []
    if not _is_list(value):
        raise AnsibleFilterError(f"{var} must be a list of jobs, not {value!r}")
    return [_Entry(var, i, item) for i, item in enumerate(value)]


def _unique(entries, var):
    seen = set()
    for entry in entries:
        if entry['name'] in seen:
            raise AnsibleFilterError(f"{var}: the name {entry['name']!r} is used twice (it names the systemd units)")
        seen.add(entry['name'])


def mapproxy_seeding_plan(jobs, cleanup_jobs=None, cache_limits=None, coverages=None, defaults=None):
    coverages = coverages or {}
    defaults = defaults or {}
    if not isinstance(coverages, Mapping):
        raise AnsibleFilterError(f"mapproxy_seeding_coverages must map names to coverages, not {coverages!r}")
    for name, cov in coverages.items():
        if not isinstance(name, str) or not NAME_RE.match(name) or not isinstance(cov, Mapping) or not cov:
            raise AnsibleFilterError(
                f"mapproxy_seeding_coverages: {name!r} must be a name mapping to a MapProxy coverage "
                "(bbox + srs, datasource + srs, or union/intersection/difference)")
    seeds = [_seed(e, coverages, defaults) for e in _entries(jobs, 'mapproxy_seeding_jobs')]
    cleanups = [_cleanup(e, defaults) for e in _entries(cleanup_jobs, 'mapproxy_seeding_cleanup_jobs')]
    limits = [_limit(e, defaults) for e in _entries(cache_limits, 'mapproxy_seeding_cache_limits')]
    _unique(seeds, 'mapproxy_seeding_jobs')
    _unique(cleanups, 'mapproxy_seeding_cleanup_jobs')
    _unique(limits, 'mapproxy_seeding_cache_limits')
    all_coverages = dict(coverages)
    for seed in seeds:
        if seed['coverage_def'] is not None:
            if seed['coverage'] in all_coverages:
                raise AnsibleFilterError(
                    f"mapproxy_seeding_coverages: {seed['coverage']!r} clashes with the bbox coverage of the "
                    f"seeding job {seed['name']!r}; rename the coverage")
            all_coverages[seed['coverage']] = seed['coverage_def']
    tasks = {}
    for seed in seeds:
        task = {'caches': seed['caches']}
        if seed['grids']:
            task['grids'] = seed['grids']
        if seed['coverage']:
            task['coverages'] = [seed['coverage']]
        task['levels'] = seed['levels']
        if seed['refresh_before']:
            task['refresh_before'] = seed['refresh_before']
        tasks[seed['name']] = task
        # mapproxy-seed --continue resumes at a position in the task: a changed task
        # must not resume an old position, so its progress file carries the task's hash.
        digest = hashlib.sha256(json.dumps([task, seed['coverage_def'] or all_coverages.get(seed['coverage'])],
                                           sort_keys=True).encode()).hexdigest()[:12]
        seed['progress_file'] = f"{seed['name']}-{digest}.progress"
    used = sorted(set(seed['coverage'] for seed in seeds if seed['coverage']))
    seed_config = {'coverages': {name: all_coverages[name] for name in used}} if used else {}
    seed_config['seeds'] = tasks
    return {'seeds': seeds, 'cleanups': cleanups, 'limits': limits, 'coverages': all_coverages,
            'seed_config': seed_config}


class FilterModule:
    def filters(self):
        return {'mapproxy_seeding_plan': mapproxy_seeding_plan}
