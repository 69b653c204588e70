# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared code of the p2d2.mapproxy modules.

The modules run under the managed host's system Python, which does not have
MapProxy. MapProxy lives in a venv on the host; everything that needs it runs
as a separate process: small probe scripts in the venv's Python (see
``mapproxy_probe``) and the venv's ``mapproxy-seed``.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import json
import os
import pwd
import re
import selectors
import shutil
import subprocess
import tempfile
import threading

from ansible_collections.p2d2.mapproxy.plugins.module_utils import mapproxy_probe
from ansible_collections.p2d2.mapproxy.plugins.module_utils.mapproxy_run import run_watched as _run_watched
from ansible_collections.p2d2.mapproxy.plugins.module_utils.mapproxy_tiles import levels_from_text

DEFAULT_VENV = '/opt/mapproxy/venv'
DEFAULT_CONFIG = '/etc/mapproxy/mapproxy.yaml'
# The credentials of caches in a shared store (s3, redis), as the role mapproxy writes
# them (mapproxy_common's mapproxy_store_env_file): systemd's EnvironmentFile syntax in
# the subset that sh reads alike (NAME="value", with \ " ` $ escaped).
DEFAULT_STORE_ENV_FILE = '/etc/mapproxy/stores.env'
# Runs the rest of its command line with the variables of the file ($0) exported, as the
# units do (mapproxy_common's mapproxy_common_with_store_env is the same for the roles'
# checks): the values never reach a command line or the module's arguments.
STORE_ENV_SCRIPT = 'set -a; . "$0"; set +a; exec "$@"'


def venv_options():
    """The options every module has: the venv, and the store credentials it reads."""
    return dict(venv=dict(type='path', default=DEFAULT_VENV),
                store_env_file=dict(type='path', default=DEFAULT_STORE_ENV_FILE))


# Every command runs with this environment on top of the module's.
COMMAND_ENV = {'LC_ALL': 'C', 'PYTHONUTF8': '1'}

# Time limit of a probe (loading a config takes well under a second).
PROBE_TIMEOUT = 300

VENV_FIX = ('run the p2d2.mapproxy.mapproxy_venv role first, or set the venv option '
            'to the virtualenv that holds MapProxy')

# The warning MapProxy logs (to stdout) for a failed source request, and the
# last line of the traceback after it, which holds the reason.
SOURCE_ERROR_RE = re.compile(r'(could not retrieve .*)')
REASON_RE = re.compile(r'^(?:[A-Za-z_][\w.]*\.)?(\w*(?:Error|Exception|timeout)): (.+)$')

AGE_UNITS = ('weeks', 'days', 'hours', 'minutes', 'seconds')
_UNIT_SECONDS = {'weeks': 604800, 'days': 86400, 'hours': 3600, 'minutes': 60, 'seconds': 1}
_SHORT_UNITS = {'w': 'weeks', 'd': 'days', 'h': 'hours', 'm': 'minutes', 's': 'seconds'}
_AGE_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([wdhms])\s*$')

# What a check mode run or a cleanup lists at most.
PATH_LIST_LIMIT = 100


def mask_secrets(text):
    """Hide credentials in URLs (``http://user:pass@host``) and in OGR/PostGIS
    connection strings (``password=...``); walks lists and dicts."""
    if isinstance(text, dict):
        return dict((key, mask_secrets(value)) for key, value in text.items())
    if isinstance(text, list):
        return [mask_secrets(value) for value in text]
    if not isinstance(text, str):
        return text
    text = re.sub(r'(://)[^/\s\'"]*@', r'\1***@', text)
    return re.sub(r'(?i)(password\s*=\s*)(\'[^\']*\'|"[^"]*"|[^\s\'"]+)', r'\1***', text)


class ToolUser:
    """The user that MapProxy's tools run as when the module runs as root."""

    def __init__(self, name, uid, gid, home):
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
        try:
            self.groups = os.getgrouplist(name, gid)
        except (KeyError, OSError):
            self.groups = [gid]

    def popen_args(self):
        return dict(user=self.uid, group=self.gid, extra_groups=self.groups)

    def give(self, path):
        """Hand a file or folder that the module (root) created to this user."""
        os.chown(path, self.uid, self.gid)


def tool_user(module, user, owner_of=None, option='user'):
    """Whom MapProxy's tools (``mapproxy-seed``) run as: ``user`` when given, else, when the
    module runs as root, the owner of the folder ``owner_of`` (the cache base folder, which
    belongs to the service user), so that what they write belongs to the service, as with
    ``become_user`` but without sudo or su. None: they run as the module runs."""
    if os.geteuid() != 0:
        if user and user != pwd.getpwuid(os.geteuid()).pw_name:
            module.fail_json(msg='Option %s: the module runs as uid %d and cannot run MapProxy as %s. Run the '
                                 'task as root (become: true), or leave %s unset.' % (option, os.geteuid(), user, option))
        return None
    if user:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            module.fail_json(msg='Option %s: there is no user %s on the host. Run the p2d2.mapproxy.mapproxy_venv '
                                 'role first, or name the user MapProxy runs as.' % (option, user))
        if entry.pw_uid == 0:
            return None
        return ToolUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
    if not owner_of or not os.path.isdir(owner_of):
        return None
    st = os.stat(owner_of)
    if st.st_uid == 0:
        return None
    try:
        entry = pwd.getpwuid(st.st_uid)
    except KeyError:
        module.fail_json(msg='The folder %s belongs to uid %d, which has no user entry: set option %s to the user '
                             'MapProxy runs as.' % (owner_of, st.st_uid, option))
    return ToolUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def probe_source():
    """The source of module_utils/mapproxy_probe.py, which the probe runs in the venv's Python.
    Read through its loader: in a module's payload it is a member of a zip, not a file."""
    loader = getattr(mapproxy_probe, '__loader__', None)
    source = loader.get_source(mapproxy_probe.__name__) if hasattr(loader, 'get_source') else None
    if not source:
        with open(mapproxy_probe.__file__) as handle:
            source = handle.read()
    return source


def iso_time(timestamp):
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec='seconds')


class MapProxyVenv:
    """The MapProxy virtualenv on the host."""

    def __init__(self, module, path):
        self.module = module
        self.path = path
        self.bin_dir = os.path.join(path, 'bin')
        self.python = os.path.join(self.bin_dir, 'python')
        self.seed = os.path.join(self.bin_dir, 'mapproxy-seed')
        self.util = os.path.join(self.bin_dir, 'mapproxy-util')
        if not os.path.isdir(path):
            module.fail_json(msg='The MapProxy venv %s does not exist (option venv): %s.' % (path, VENV_FIX))
        if not os.access(self.python, os.X_OK):
            module.fail_json(msg='The venv %s has no executable bin/python (option venv): %s.' % (path, VENV_FIX))
        # Every command in the venv runs with the store credentials, when there are any.
        self.prefix = []
        env_file = module.params.get('store_env_file')
        if env_file and os.path.exists(env_file):
            if not os.access(env_file, os.R_OK):
                module.fail_json(msg='The store credentials %s cannot be read by uid %d (option store_env_file): '
                                     'run the task as root (become: true).' % (env_file, os.geteuid()))
            self.prefix = ['/bin/sh', '-c', STORE_ENV_SCRIPT, env_file]

    def command(self, argv):
        """``argv`` of a command of the venv, run with the store credentials."""
        return self.prefix + list(argv)

    def require(self, tool):
        path = os.path.join(self.bin_dir, tool)
        if not os.access(path, os.X_OK):
            self.module.fail_json(
                msg='The venv %s has no executable bin/%s: MapProxy is not installed there '
                    '(option venv): %s.' % (self.path, tool, VENV_FIX))
        return path

    @contextlib.contextmanager
    def cache_locks(self, lock_dir, caches, timeout, store=None):
        """Hold mapproxy-seed's cache lock of each cache (``--use-cache-lock``) while the
        block runs. The lock is MapProxy's own CacheLocker, held by the probe in the venv's
        Python (``mapproxy_probe.cache_locks``, the code the timers' tool runs) until its
        stdin closes; ``lock_dir`` None takes none. With ``store`` ({config, caches, what}),
        the lock of those caches in their shared store first (``mapproxy_probe.store_locks``),
        which the other hosts see. Returns the probe's answer when a lock was not free within
        ``timeout`` seconds (``cache``, ``error``; ``store`` and ``holder`` for a store lock)
        instead of entering the block: ``with venv.cache_locks(...) as busy``."""
        request = {'lock': {'dir': lock_dir, 'caches': sorted(caches), 'timeout': timeout}}
        if store:
            request['lock']['store'] = store
        answer, proc, err = self._probe_start(request, timeout + PROBE_TIMEOUT)
        try:
            yield None if answer.get('locked') else answer
        finally:
            proc.stdin.close()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            err.close()

    def busy_caches(self, lock_dir, caches):
        """The caches whose mapproxy-seed lock another process holds or waits for now."""
        answer, proc, err = self._probe_start({'lock': {'dir': lock_dir, 'caches': sorted(caches), 'test': True}},
                                              PROBE_TIMEOUT)
        proc.stdin.close()
        proc.wait()
        err.close()
        return answer.get('busy', [])

    def _probe_start(self, request, timeout):
        """Start the probe with a request and read its first answer line; it keeps running
        (a lock request holds its locks until stdin closes)."""
        shown_cmd = '%s -I -c <p2d2.mapproxy module_utils/mapproxy_probe.py>' % self.python
        err = tempfile.TemporaryFile(mode='w+')
        proc = subprocess.Popen(self.command([self.python, '-I', '-c', probe_source()]), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, cwd='/', text=True)
        proc.stdin.write(json.dumps(request) + '\n')
        proc.stdin.flush()
        line = ''
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            if selector.select(timeout):
                line = proc.stdout.readline()
        try:
            answer = json.loads(line) if line.strip() else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            proc.kill()
            proc.wait()
            err.seek(0)
            stderr = err.read()
            err.close()
            self.module.fail_json(msg='Taking the cache lock with the Python of the MapProxy venv %s failed: %s.'
                                  % (self.path, (stderr.strip().splitlines() or ['no answer within %d s' % timeout])[-1]),
                                  cmd=shown_cmd, stderr=stderr)
        return answer, proc, err

    def probe(self, request, timeout=PROBE_TIMEOUT, cwd=None):
        """Run the probe script in the venv's Python and return its JSON answer."""
        argv = self.command([self.python, '-I', '-c', probe_source()])
        shown_cmd = '%s -I -c <p2d2.mapproxy module_utils/mapproxy_probe.py>' % self.python
        rc, out, err, timed_out = run_limited(self.module, argv, timeout, data=json.dumps(request),
                                              cwd=cwd or '/')
        if timed_out:
            self.module.fail_json(msg='Loading the MapProxy configuration with %s did not finish within %d seconds.'
                                  % (self.python, timeout), cmd=shown_cmd, rc=rc, stdout=out, stderr=err)
        answer = None
        lines = out.strip().splitlines()
        if lines:
            try:
                answer = json.loads(lines[-1])
            except ValueError:
                answer = None
        if rc != 0 or not isinstance(answer, dict):
            self.module.fail_json(
                msg='Running Python of the MapProxy venv %s failed (rc=%s): %s.' % (self.path, rc, VENV_FIX),
                cmd=shown_cmd, rc=rc, stdout=out, stderr=err)
        if answer.get('import_error'):
            self.module.fail_json(
                msg='MapProxy cannot be imported in the venv %s (%s): %s.' % (self.path, answer['import_error'], VENV_FIX),
                cmd=shown_cmd, rc=rc, stdout=out, stderr=err)
        if answer.get('internal_error'):
            self.module.fail_json(msg='Checking the MapProxy configuration failed unexpectedly: %s'
                                  % answer['internal_error'], cmd=shown_cmd, rc=rc, stdout=out, stderr=err)
        return answer


def run_limited(module, argv, timeout, data=None, cwd=None):
    """``module.run_command`` with a time limit. Returns (rc, out, err, timed_out).

    For commands that start no children: the process itself is killed."""
    state = {'timed_out': False}

    def kill(proc):
        if proc.poll() is None:
            state['timed_out'] = True
            proc.kill()

    def arm(proc):
        timer = threading.Timer(timeout, kill, (proc,))
        timer.daemon = True
        timer.start()
        state['timer'] = timer

    try:
        rc, out, err = module.run_command(argv, data=data, cwd=cwd, environ_update=COMMAND_ENV,
                                          expand_user_and_vars=False, before_communicate_callback=arm)
    finally:
        if state.get('timer') is not None:
            state['timer'].cancel()
    return rc, out, err, state['timed_out']


def run_watched(argv, timeout, cwd=None, watch=None, on_line=None, user=None):
    """mapproxy-seed (or another command that starts children) run by the collection's one
    runner (``mapproxy_run.run_watched``: its own session, output read line by line, the
    whole process group stopped when ``timeout`` seconds have passed or ``watch``, a
    ``RetryWatch``, says so), with the modules' environment, as ``user`` (a ``ToolUser``)
    when given, and credentials masked in the output it keeps."""
    env = dict(os.environ)
    env.update(COMMAND_ENV)
    popen_args = None
    if user is not None:
        env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
        popen_args = user.popen_args()
    run = _run_watched(argv, timeout, cwd=cwd, env=env, watch=watch, on_line=on_line, popen_args=popen_args)
    run.stdout = mask_secrets(run.stdout)
    run.stderr = mask_secrets(run.stderr)
    return run


# ---------------------------------------------------------------------------
# Configuration


# The errors of a cache whose store does not answer or cannot be read (module_utils/
# mapproxy_probe.py words them): the configuration is fine, the store is not.
STORE_ERROR_RE = re.compile(r"^cache '[^']*'( \(store [^)]*\):|: the store )")


def store_lock_failure(busy, caches):
    """What a module fails with when ``MapProxyVenv.cache_locks`` answered ``busy`` for the
    lock of ``caches`` in their shared store: (message, return values); None when the answer
    is about mapproxy-seed's file lock on this host."""
    if not busy or not (busy.get('holder') is not None or busy.get('store') or busy.get('cache') is None):
        return None
    error = busy.get('error') or 'no answer'
    if busy.get('holder') is not None:
        return ('%s%s (option lock_timeout). Try again when that is done.' % (error[:1].upper(), error[1:]),
                dict(holder=busy['holder'], store=busy.get('store')))
    return 'Taking the lock of %s in its store failed: %s.' % (', '.join(caches), error), {}


def store_errors_only(errors):
    """Whether every error of a probe is one of a cache's store."""
    return bool(errors) and all(STORE_ERROR_RE.match(error) for error in errors)


def load_config(module, venv, config_path, require_valid=True, **request):
    """Load a mapproxy.yaml through the probe; fail unless it is valid."""
    config_path = os.path.abspath(config_path)
    if not os.path.isfile(config_path):
        module.fail_json(msg='The MapProxy configuration %s does not exist (option config).' % config_path)
    req = dict(config=config_path)
    req.update(request)
    info = venv.probe(req)
    if require_valid and info.get('errors'):
        if store_errors_only(info['errors']):
            module.fail_json(msg='The MapProxy configuration %s names a store that cannot be used: %s'
                             % (config_path, '; '.join(info['errors'])), errors=info['errors'])
        module.fail_json(msg='The MapProxy configuration %s is invalid: %s'
                         % (config_path, '; '.join(info['errors'])), errors=info['errors'])
    return info


# MapProxy's cache types whose tiles live in a store several hosts share (the probe's).
STORE_TYPES = mapproxy_probe.STORE_TYPES


def select_caches(module, info, names, option='caches', types=('file',)):
    """Check cache names against the config; return them (all caches of ``types`` that
    store tiles if ``names`` is empty). ``types`` None: any type."""
    caches = info.get('caches') or {}
    known = sorted(caches)
    if not names:
        return [name for name in known
                if (types is None or caches[name]['type'] in types) and not caches[name]['disable_storage']]
    unknown = [name for name in names if name not in caches]
    if unknown:
        module.fail_json(msg='Unknown cache%s in option %s: %s. Caches in the configuration: %s.'
                         % ('s' if len(unknown) > 1 else '', option, ', '.join(unknown),
                            ', '.join(known) or 'none'))
    for name in names:
        if types is not None and caches[name]['type'] not in types:
            module.fail_json(msg="Cache %s (option %s) has type %s: this module handles only caches of "
                                 "type %s." % (name, option, caches[name]['type'], ' or '.join(types)))
        if caches[name]['disable_storage']:
            module.fail_json(msg="Cache %s (option %s) has disable_storage: true and stores no tiles."
                             % (name, option))
    return list(dict.fromkeys(names))


def select_grids(module, info, cache_names, grids, option='grids'):
    """Return ``{cache: [grid, ...]}``; every grid in ``grids`` must belong to every cache."""
    result = {}
    for name in cache_names:
        cache_grids = info['caches'][name]['grids']
        if grids:
            missing = [g for g in grids if g not in cache_grids]
            if missing:
                module.fail_json(msg='Grid%s %s (option %s) not used by cache %s, whose grids are: %s.'
                                 % ('s' if len(missing) > 1 else '', ', '.join(missing), option, name,
                                    ', '.join(cache_grids)))
            result[name] = list(dict.fromkeys(grids))
        else:
            result[name] = list(cache_grids)
    return result


def grid_directories(module, info, cache_grids, require_complete=True):
    """Return ``[(cache, [grids], directory, layout)]``, one entry per directory.

    MapProxy names a file cache's folder after the grid's SRS
    (``base_dir/CACHE_EPSG3857``), so two grids of one cache in the same SRS
    share a folder unless ``use_grid_names`` is set."""
    entries = []
    for cache_name, grids in cache_grids.items():
        cache = info['caches'][cache_name]
        by_dir = collections.OrderedDict()
        for grid in cache['grids']:
            directory = cache['directories'].get(grid)
            if directory:
                by_dir.setdefault(directory, []).append(grid)
        for directory, dir_grids in by_dir.items():
            selected = [g for g in dir_grids if g in grids]
            if not selected:
                continue
            if require_complete and len(selected) != len(dir_grids):
                module.fail_json(
                    msg='Grids %s of cache %s share the folder %s (MapProxy names it after the SRS); '
                        'their tiles cannot be told apart: select all of them in option grids.'
                        % (', '.join(dir_grids), cache_name, directory))
            entries.append((cache_name, dir_grids, directory, cache['directory_layout']))
    return entries


# ---------------------------------------------------------------------------
# Options


def parse_levels(module, value, option='levels'):
    """The one level syntax of the modules, the roles and the playbooks: a level (``5``), text
    with levels and ranges (``11-14``, ``3,5,7-9``), a list (``[3, 5]``) or ``{from: 0, to: 10}``.
    Returns a sorted list of ints (None for None); ``module.fail_json`` names ``option``."""
    if value is None:
        return None
    if isinstance(value, dict):
        unknown = sorted(set(value) - {'from', 'to'})
        if unknown:
            module.fail_json(msg='Unknown key%s %s in option %s: use from and to.'
                             % ('s' if len(unknown) > 1 else '', ', '.join(map(str, unknown)), option))
        if 'from' not in value or 'to' not in value:
            module.fail_json(msg='Option %s needs both from and to, for example {from: 0, to: 10}.' % option)
        start = _as_level(module, value['from'], option)
        stop = _as_level(module, value['to'], option)
        if start > stop:
            module.fail_json(msg='Option %s: from (%d) is greater than to (%d).' % (option, start, stop))
        return list(range(start, stop + 1))
    if isinstance(value, str):
        try:
            return levels_from_text(value)
        except ValueError as ex:
            module.fail_json(msg='Option %s: %s.' % (option, ex))
    if isinstance(value, (list, tuple)):
        if not value:
            module.fail_json(msg='Option %s is an empty list.' % option)
        return sorted(set(_as_level(module, v, option) for v in value))
    if isinstance(value, int) and not isinstance(value, bool):
        return [_as_level(module, value, option)]
    module.fail_json(msg='Option %s must be a level, a range such as 11-14, a list of levels or {from: N, to: M}, not %r.'
                     % (option, value))


def _as_level(module, value, option):
    if isinstance(value, bool):
        module.fail_json(msg='Option %s: %r is not a level number.' % (option, value))
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value < 0:
        module.fail_json(msg='Option %s: %r is not a level number (0 or more).' % (option, value))
    return value


def check_levels_in_grids(module, levels, info, grids, option='levels'):
    if levels is None:
        return
    for grid in grids:
        count = info['grids'][grid]['levels']
        bad = [level for level in levels if level >= count]
        if bad:
            module.fail_json(msg="Option %s: grid %s has levels 0 to %d only, not %s."
                             % (option, grid, count - 1, ', '.join(map(str, bad))))


def parse_age(module, value, option):
    """An age as ``{days: 30}`` (weeks/days/hours/minutes/seconds, summed) or
    ``30d``/``12h``/``90m``/``3600s``/``2w``. Returns seconds."""
    if isinstance(value, str):
        match = _AGE_RE.match(value)
        if not match:
            module.fail_json(msg='Option %s: %r is not an age such as 30d, 12h, 90m, 3600s or 2w.'
                             % (option, value))
        return float(match.group(1)) * _UNIT_SECONDS[_SHORT_UNITS[match.group(2)]]
    if not isinstance(value, dict) or not value:
        module.fail_json(msg='Option %s must be an age such as {days: 30} or 30d, not %r.' % (option, value))
    unknown = sorted(set(value) - set(AGE_UNITS))
    if unknown:
        module.fail_json(msg='Unknown key%s %s in option %s: use %s.'
                         % ('s' if len(unknown) > 1 else '', ', '.join(map(str, unknown)), option,
                            ', '.join(AGE_UNITS)))
    total = 0.0
    for unit, amount in value.items():
        if isinstance(amount, str):
            try:
                amount = float(amount)
            except ValueError:
                amount = None
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            module.fail_json(msg='Option %s: %s must be a number of 0 or more, not %r.' % (option, unit, amount))
        total += amount * _UNIT_SECONDS[unit]
    return total


def parse_time_spec(module, value, option):
    """MapProxy's time spec for refresh_before: an age (see parse_age),
    ``{time: 'YYYY-MM-DDTHH:MM:SS'}`` or ``{mtime: PATH}``. Returns the spec
    to write into a seed config."""
    if isinstance(value, dict) and ('time' in value or 'mtime' in value):
        if len(value) != 1:
            module.fail_json(msg='Option %s: time and mtime cannot be combined with other keys.' % option)
        if 'time' in value:
            text = value['time']
            if isinstance(text, datetime.datetime):
                text = text.strftime('%Y-%m-%dT%H:%M:%S')
            try:
                datetime.datetime.strptime(str(text), '%Y-%m-%dT%H:%M:%S')
            except ValueError:
                module.fail_json(msg='Option %s: time %r is not of the form YYYY-MM-DDTHH:MM:SS (local time).'
                                 % (option, text))
            return {'time': str(text)}
        path = value['mtime']
        if not isinstance(path, str) or not os.path.isabs(path) or not os.path.exists(path):
            module.fail_json(msg='Option %s: mtime must be the absolute path of an existing file, not %r.'
                             % (option, path))
        return {'mtime': path}
    return {'seconds': parse_age(module, value, option)}


class TempDir:
    """A private (0700) temporary folder, removed on exit; with ``owner`` (a ``ToolUser``)
    it and the files written into it belong to that user."""

    def __init__(self, prefix='p2d2-mapproxy-', owner=None):
        self.path = tempfile.mkdtemp(prefix=prefix)
        self.owner = owner
        if owner is not None:
            owner.give(self.path)

    def write(self, name, text):
        path = os.path.join(self.path, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(text)
        if self.owner is not None:
            self.owner.give(path)
        return path

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.cleanup()
        return False
