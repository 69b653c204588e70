# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Python code that runs inside MapProxy's venv, not in the module.

The modules run under the host's system Python, which has no MapProxy. They
run this file's source with ``VENV/bin/python -I -c`` (``probe_source()`` in
module_utils/mapproxy.py reads it from the module's payload) and a JSON request
on stdin; it imports MapProxy, does what the request asks and prints one JSON
document on stdout. Everything MapProxy prints goes to stderr. Importing this
file does nothing: MapProxy is imported inside the functions that need it.

Request keys (all optional except ``config``):

- ``config``: path of mapproxy.yaml to load.
- ``content_mode``: the config is a temporary copy; warn about relative paths.
- ``config_dir``: the folder the config is going to live in: MapProxy's objects
  are built with it as their base, so relative paths, MapProxy's own relative
  defaults (``./cache_data``) included, resolve as they will there.
- ``seed``: path of a seed.yaml to check against the config.
- ``bbox``: ``{"bbox": [4 floats], "srs": "EPSG:4326", "grids": [...] or
  "caches": [...], "levels": {grid: [levels]}}``: validate the bbox and
  compute, per grid (given, or all grids of the caches) and level, the range
  of internal tile coordinates it touches.
- ``coverages_from``: path of a seed.yaml whose ``coverages`` to return.
- ``coverages``: ``{name: coverage}``: load these coverages (or those of
  ``coverages_from``) to check them; only ``coverage`` if that name is given.
- ``cache_paths``: true: every path the caches of ``config`` write, as
  ``cache_paths()`` below works it out (the backup role's cache exclusion), and
  ``config_files``, the files MapProxy read for it.
- ``env``: ``{name: value}`` to set in the environment before MapProxy loads
  (credentials of stores): on stdin, never on a command line.
- ``store_stats``: cache names, or true for all: per ``s3`` and ``redis`` cache and
  grid, its tiles, bytes, oldest and newest write per level, read in its store (an
  object listing, a key scan: ``store_stats()`` below), with the timeouts of
  ``STORE_TIMEOUTS``.
- ``store_clean``: ``{caches: {cache: [grid, ...]}, levels, before, dry_run}``: remove
  tiles of ``s3`` and ``redis`` caches in their store (``store_clean()`` below), listing
  or scanning as ``store_stats`` does and deleting page by page.
- ``check_stores``: true: connect to the store of every ``s3`` and ``redis``
  cache, as the service will (credentials from the environment), and write, read
  back and delete one object there (``check_stores()`` below), with the bounded
  timeouts of ``STORE_TIMEOUTS``. Without it, the S3 caches are built without a
  connection (MapProxy's S3 cache asks for its bucket when it is built): a
  backup, a timer or the front door's plan never waits for a store.
- ``lock``: ``{"dir": lock folder, "caches": [...], "timeout": seconds, "test":
  bool}``: take mapproxy-seed's cache lock of each cache with MapProxy's own
  ``CacheLocker`` (``cache_locks()`` below, which the timers' tool uses too),
  answer ``{"locked": true}`` and hold the locks until stdin closes; or answer
  ``{"locked": false, "cache": name}`` when one was not free in time. With
  ``"store": {"config": path, "caches": [...], "what": text}``, first take the
  lock in the shared store of each s3 and redis cache of those (``store_locks()``
  below), which other hosts see; a busy one is answered with its ``store`` and
  ``holder`` too. ``dir`` may then be null (no file lock). With ``test``, answer
  at once which caches are locked on this host (``{"busy": [...]}``) and hold
  nothing. No other key is read with ``lock``.

A valid ``config`` is also answered with ``write_dirs`` (``write_dirs()``: the
directories MapProxy writes) and ``served`` (``served()``: the services, layers and
tile headers nginx's fast path follows), besides its layers, caches and grids.

The request is the first line of stdin (or all of it, without a newline).
``python mapproxy_probe.py --cache-paths CONFIG [SOURCES]`` prints those paths, one a
line (exit 1 and a message on stderr when MapProxy cannot load CONFIG), and writes
the files MapProxy read (CONFIG and those its ``base:`` names) to SOURCES, one a line.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import re
import sys
import time
import warnings

# Set by run(): what the module asked, and the answer it reads back.
REQUEST = {}
RESULT = {'errors': [], 'warnings': []}


class Capture(logging.Handler):
    """Keeps what MapProxy logs at WARNING and above, to report it with the check."""

    def __init__(self):
        logging.Handler.__init__(self, logging.WARNING)
        self.messages = []

    def emit(self, record):
        try:
            msg = record.getMessage()
        except Exception:
            msg = str(record.msg)
        self.messages.append(msg)

    def take(self):
        msgs, self.messages = self.messages, []
        return msgs


CAPTURE = Capture()


def add_unique(target, messages):
    for msg in messages:
        if msg not in target:
            target.append(msg)


def in_words(ex):
    """Describe an exception so that a person can act on it."""
    from mapproxy.config.configuration.base import ConfigurationError
    name = type(ex).__name__
    if isinstance(ex, KeyError):
        key = ex.args[0] if ex.args else ex
        return "refers to '%s', which is not defined in the configuration" % (key,)
    if name == 'CRSError':
        return 'invalid or unknown SRS: %s' % (ex,)
    if isinstance(ex, ConfigurationError):
        text = str(ex)
        if text.startswith('YAMLError('):
            text = text[len('YAMLError('):].rstrip(')')
        return text
    if isinstance(ex, (ValueError, TypeError)):
        return '%s (%s)' % (ex, name)
    if isinstance(ex, OSError):
        return '%s: %s' % (name, ex)
    text = str(ex)
    return '%s: %s' % (name, text) if text else name


def disable_file_creation():
    """Loading caches of type mbtiles/geopackage creates their files: a check
    must not write anything."""
    try:
        from mapproxy.cache.mbtiles import MBTilesCache
        MBTilesCache.ensure_mbtile = lambda self: None
    except Exception:
        pass
    try:
        from mapproxy.cache.geopackage import GeopackageCache
        GeopackageCache.ensure_gpkg = lambda self: None
    except Exception:
        pass


def mask_url(url):
    if not isinstance(url, str):
        return url
    import re
    return re.sub(r'(://)[^/\s]*@', r'\1***@', url)


def layer_names(layers_conf, names):
    if isinstance(layers_conf, dict):
        # legacy {name: conf} style or a single root layer
        if 'name' in layers_conf or 'layers' in layers_conf or 'sources' in layers_conf:
            if layers_conf.get('name'):
                names.append(layers_conf['name'])
            layer_names(layers_conf.get('layers'), names)
        else:
            for key, value in layers_conf.items():
                names.append(key)
                if isinstance(value, dict):
                    layer_names(value.get('layers'), names)
    elif isinstance(layers_conf, list):
        for layer in layers_conf:
            layer_names(layer, names)
    return names


def relative_path_warnings(conf_dict):
    found = []
    globals_ = conf_dict.get('globals') or {}
    cache_globals = globals_.get('cache') or {}
    for key in ('base_dir', 'lock_dir', 'tile_lock_dir'):
        value = cache_globals.get(key)
        if isinstance(value, str) and not os.path.isabs(value):
            found.append('globals.cache.%s' % key)
    for name, cache in (conf_dict.get('caches') or {}).items():
        if not isinstance(cache, dict):
            continue
        for key, value in (('cache_dir', cache.get('cache_dir')),
                           ('cache.directory', (cache.get('cache') or {}).get('directory')),
                           ('cache.filename', (cache.get('cache') or {}).get('filename'))):
            if isinstance(value, str) and not os.path.isabs(value):
                found.append('caches.%s.%s' % (name, key))
    return ['%s is a relative path: with content it is resolved against a temporary '
            'directory, not against the directory of the live config; use an absolute path' % key
            for key in found]


def inspect_config(path):
    from mapproxy.config.loader import load_configuration, load_configuration_file
    from mapproxy.config.spec import validate_options
    errors, warns = RESULT['errors'], RESULT['warnings']
    base_dir = os.path.abspath(os.path.dirname(path))
    try:
        conf_dict = load_configuration_file([os.path.basename(path)], base_dir)
    except Exception as ex:
        errors.append('cannot load %s: %s' % (path, in_words(ex)))
        return None
    if not isinstance(conf_dict, dict):
        errors.append('%s does not hold a YAML mapping' % path)
        return None
    if REQUEST.get('content_mode'):
        add_unique(warns, relative_path_warnings(conf_dict))

    # Step 2 of MapProxy's loader: the option spec. Unknown keys are
    # informational only, everything else is an error.
    try:
        spec_msgs, _informal_only = validate_options(dict(conf_dict))
    except Exception as ex:
        spec_msgs = ['option check failed: %s' % in_words(ex)]
    spec_errors = [m for m in spec_msgs if not m.startswith("unknown '")]
    spec_warnings = [m for m in spec_msgs if m.startswith("unknown '")]
    # Step 3: references (logged as warnings by MapProxy).
    try:
        from mapproxy.config.validator import validate as validate_references
        ref_msgs = list(validate_references(dict(conf_dict)))
    except Exception as ex:
        ref_msgs = ['reference check failed: %s' % in_words(ex)]
    CAPTURE.take()

    add_unique(errors, spec_errors)
    add_unique(warns, spec_warnings)

    failed = bool(spec_errors)
    conf = None
    if not failed:
        with warnings.catch_warnings(record=True) as py_warnings:
            warnings.simplefilter('always')
            try:
                conf = load_configuration(path)
                if REQUEST.get('config_dir'):
                    from mapproxy.config.loader import ProxyConfiguration
                    conf = ProxyConfiguration(copy.deepcopy(conf_dict), conf_base_dir=REQUEST['config_dir'])
            except Exception as ex:
                failed = True
                text = in_words(ex)
                if text != 'invalid configuration':
                    errors.append(text)
            logged = CAPTURE.take()
            if conf is not None:
                failed = not check_objects(conf) or failed
                logged += CAPTURE.take()
        known = set(spec_msgs) | set(ref_msgs)
        add_unique(warns, [m for m in logged if m not in known])
        add_unique(warns, ['%s' % w.message for w in py_warnings])
    if failed:
        # The reference messages explain most errors of the later steps: put
        # them after the option errors and before the exceptions.
        later = errors[len(spec_errors):]
        del errors[len(spec_errors):]
        add_unique(errors, ref_msgs)
        add_unique(errors, later)
    else:
        add_unique(warns, ref_msgs)
    describe(conf_dict, conf)
    return conf


def check_objects(conf):
    """Build every grid, cache and service, as MapProxy does on its first
    request, and report failures with the name of the object."""
    ok = True
    errors = RESULT['errors']
    with conf:
        for name, grid_conf in conf.grids.items():
            try:
                grid_conf.tile_grid()
            except Exception as ex:
                ok = False
                errors.append("grid '%s': %s" % (name, in_words(ex)))
        for name, cache_conf in conf.caches.items():
            try:
                cache_conf.caches()
            except Exception as ex:
                ok = False
                if isinstance(ex, KeyError) and ex.args and ex.args[0] not in conf.grids:
                    errors.append("cache '%s': grid '%s' is not defined in grids" % (name, ex.args[0]))
                else:
                    block = cache_conf.conf.get('cache') or {}
                    where = ' (store %s)' % store_of(block) if block.get('type') in STORE_TYPES else ''
                    errors.append("cache '%s'%s: %s" % (name, where, in_words(ex)))
    if ok:
        try:
            conf.configured_services()
        except Exception as ex:
            ok = False
            errors.append('services/layers: %s' % in_words(ex))
    return ok


# Shared stores: the caches whose tiles live in an object store or a key-value store,
# not on this host's disk (MapProxy's cache types).
STORE_TYPES = ('s3', 'redis')
# Connect and read timeouts (seconds) and attempts of a store check: a store that is
# down or hangs is reported in seconds, not after the client libraries' minutes.
STORE_TIMEOUTS = {'connect': 3, 'read': 5, 'attempts': 2}
# The key a store check writes, reads back and deletes, under the cache's prefix, with the
# host's name and a random part: hosts that share the store check it at the same time
# (site.yml on several hosts), and one's delete must not take another's object.
STORE_CHECK_KEY = 'p2d2-store-check'


def _store_check_key():
    return '%s-%s-%s' % (STORE_CHECK_KEY, re.sub(r'[^A-Za-z0-9.-]', '_', os.uname()[1]), os.urandom(4).hex())


class _OfflineS3Client(object):
    """Stands in for the boto3 client while MapProxy builds an S3 cache that no
    request is going to use: the bucket is not asked for."""

    def head_bucket(self, **_kwargs):
        return {}


def offline_stores():
    """Build S3 caches without asking the store for their bucket (see check_stores)."""
    try:
        from mapproxy.cache import s3
    except Exception:
        return

    def conn(self):
        if s3.boto3 is None:
            raise ImportError("S3 Cache requires 'boto3' package.")
        return _OfflineS3Client()
    s3.S3Cache.conn = conn


def bounded_stores(timeouts=None):
    """Give the S3 client of MapProxy's caches the timeouts of ``timeouts`` (connect and
    read seconds, attempts in all; STORE_TIMEOUTS by default). MapProxy's application
    (mapproxy_gunicorn's p2d2_mapproxy_app.py) calls it with the service's timeouts."""
    timeouts = timeouts or STORE_TIMEOUTS
    try:
        from mapproxy.cache import s3
        import botocore.config
    except Exception:
        return
    config = botocore.config.Config(
        connect_timeout=timeouts['connect'], read_timeout=timeouts['read'],
        retries={'total_max_attempts': timeouts['attempts'], 'mode': 'standard'})

    def conn(self):
        if s3.boto3 is None:
            raise ImportError("S3 Cache requires 'boto3' package.")
        try:
            return s3.s3_session(self.profile_name).client(
                's3', region_name=self.region_name, endpoint_url=self.endpoint_url, config=config)
        except Exception as ex:
            raise s3.S3ConnectionError('Error during connection %s' % ex)
    s3.S3Cache.conn = conn


def store_of(block):
    """Where a cache block of type s3 or redis keeps its tiles, in words (no secrets)."""
    if block.get('type') == 's3':
        return 's3://%s at %s' % (block.get('bucket_name'), block.get('endpoint_url') or 'AWS')
    return 'redis://%s:%s/%s' % (block.get('host', '127.0.0.1'), block.get('port', 6379), block.get('db', 0))


def _check_s3(tile_cache):
    client = tile_cache.conn()
    key = _key_prefix('s3', tile_cache) + _store_check_key()
    body = ('written by p2d2.mapproxy at %d' % time.time()).encode()
    client.put_object(Bucket=tile_cache.bucket_name, Key=key, Body=body)
    try:
        read = client.get_object(Bucket=tile_cache.bucket_name, Key=key)['Body'].read()
        conditional = _s3_refuses_overwrite(client, tile_cache.bucket_name, key)
    finally:
        client.delete_object(Bucket=tile_cache.bucket_name, Key=key)
    if not conditional:
        return 'ignores conditional writes (If-None-Match)' if read == body else False
    return read == body


def _s3_refuses_overwrite(client, bucket, key):
    """Whether a store refuses a write with If-None-Match: * over an object that exists, as
    the lock of a shared cache (store_locks below) needs."""
    from botocore.exceptions import ClientError
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b'overwritten', IfNoneMatch='*')
    except ClientError as ex:
        return _s3_lost_race(ex)
    return False


def _bounded_redis(tile_cache, timeouts=None):
    """A client of the Redis cache's server and db, with its credentials and TLS, and
    the timeouts of ``timeouts`` (STORE_TIMEOUTS by default; MapProxy's own client has none)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    timeouts = timeouts or STORE_TIMEOUTS
    pool = tile_cache.r.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs.update(socket_timeout=timeouts['read'], socket_connect_timeout=timeouts['connect'],
                  retry=Retry(NoBackoff(), timeouts['attempts'] - 1))
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))


def bounded_redis_caches(timeouts):
    """Give every Redis cache MapProxy builds from now on a client with ``timeouts``
    (``_bounded_redis``) in place of its own. For MapProxy's application."""
    try:
        from mapproxy.cache import redis as redis_cache
    except Exception:
        return
    # MapProxy's own __init__, also when called again with other timeouts.
    built = getattr(redis_cache.RedisCache.__init__, 'p2d2_built', redis_cache.RedisCache.__init__)

    def __init__(self, *args, **kwargs):
        built(self, *args, **kwargs)
        self.r = _bounded_redis(self, timeouts)
    __init__.p2d2_built = built
    redis_cache.RedisCache.__init__ = __init__


def _check_redis(tile_cache):
    client = _bounded_redis(tile_cache)
    key = _key_prefix('redis', tile_cache) + _store_check_key()
    body = ('written by p2d2.mapproxy at %d' % time.time()).encode()
    try:
        client.set(key, body, ex=60)
        try:
            read = client.get(key)
        finally:
            client.delete(key)
    finally:
        client.close()
    return read == body


def check_stores(conf):
    """Write, read back and delete one object in the store of every s3 and redis
    cache, through the client MapProxy builds for it (its endpoint, bucket or db, and
    credentials). Reports ``stores`` ({cache: store in words}) and an error per
    cache whose store does not answer."""
    stores = {}
    for name, cache_conf in sorted(conf.caches.items()):
        block = cache_conf.conf.get('cache') or {}
        if block.get('type') not in STORE_TYPES:
            continue
        where = store_of(block)
        stores[name] = where
        try:
            with conf:
                for _tile_grid, _extent, manager in cache_conf.caches():
                    check = _check_s3 if block['type'] == 's3' else _check_redis
                    answer = check(manager.cache)
                    if not answer:
                        raise ValueError('the object read back differs from the one written')
                    if answer is not True:
                        add_unique(RESULT['warnings'], [
                            "cache '%s': the store %s %s, so the lock of the cache in the store does not keep "
                            "two hosts from seeding or cleaning it at once: seed and clean it from one host "
                            "only" % (name, where, answer)])
        except Exception as ex:
            RESULT['errors'].append("cache '%s': the store %s cannot be written and read: %s"
                                    % (name, where, in_words(ex)))
    RESULT['stores'] = stores


# The level of a tile's key below an S3 cache's prefix, per directory layout (MapProxy's
# mapproxy/cache/path.py writes them); ``{ext}`` is the cache's file extension. quadkey:
# the level is the key's length. Another object under the prefix matches none.
S3_LEVEL_KEYS = {
    'tms': r'(\d+)/\d+/\d+\.{ext}',
    'reverse_tms': r'\d+/\d+/(\d+)\.{ext}',
    'tc': r'(\d+)/\d{{3}}/\d{{3}}/\d{{3}}/\d{{3}}/\d{{3}}/\d{{3}}\.{ext}',
    'mp': r'(\d+)/\d{{4}}/\d{{4}}/\d{{4}}/\d{{4}}\.{ext}',
    'arcgis': r'L(\d+)/R[0-9a-f]{{8}}/C[0-9a-f]{{8}}\.{ext}',
    'quadkey': r'([0-3]*)\.{ext}',
}
# Keys read per request of a listing or a scan.
STORE_PAGE = 1000


class _Levels(object):
    """Tiles, bytes, oldest and newest write per level (seconds since the epoch)."""

    def __init__(self):
        self.levels = {}
        self.other = 0

    def add(self, level, size, written):
        entry = self.levels.setdefault(level, [0, 0, None, None])
        entry[0] += 1
        entry[1] += size
        if written is not None:
            entry[2] = written if entry[2] is None else min(entry[2], written)
            entry[3] = written if entry[3] is None else max(entry[3], written)

    def answer(self):
        return {'levels': dict((str(level), entry) for level, entry in sorted(self.levels.items())),
                'other_keys': self.other}


class _Removal(object):
    """What a store cleanup removes: tiles on ``levels`` (None: all) written before
    ``before`` (seconds since the epoch; None: any age). Tiles of unknown write time are
    kept when ``before`` is set and counted in ``unknown_age``. ``dry_run`` removes nothing.
    Collects the stats of what goes and the first STORE_KEY_SAMPLE keys."""

    def __init__(self, levels=None, before=None, dry_run=False):
        self.levels = None if levels is None else set(levels)
        self.before = before
        self.dry_run = dry_run
        self.removed = _Levels()
        self.keys = []
        self.unknown_age = 0

    def wants(self, level, written, size):
        if self.levels is not None and level not in self.levels:
            return False
        if self.before is None:
            return True
        if written is None:
            self.unknown_age += 1
            return False
        return written < self.before

    def took(self, key, level, size, written):
        self.removed.add(level, size, written)
        if len(self.keys) < STORE_KEY_SAMPLE:
            self.keys.append(key)


# Removed keys a cleanup names in its answer.
STORE_KEY_SAMPLE = 100


def _key_prefix(cache_type, tile_cache):
    """The prefix of every key of a store cache's grid: ``<directory>/`` of an S3 cache
    (its base path), ``<prefix>-`` of a Redis cache."""
    if cache_type == 's3':
        prefix = tile_cache.base_path.strip('/')
        return prefix + '/' if prefix else ''
    return tile_cache.prefix + '-'


def _s3_stats(tile_cache, layout, removal=None):
    """List the objects under an S3 cache's prefix (one request per STORE_PAGE keys).
    With ``removal``, delete those it wants, one DeleteObjects request per page (after the
    page is read: the listing goes on from its last key). Returns the stats and the prefix."""
    prefix = _key_prefix('s3', tile_cache)
    pattern = re.compile('^%s$' % S3_LEVEL_KEYS.get(layout, S3_LEVEL_KEYS['tms']).format(
        ext=re.escape(tile_cache.file_ext)))
    stats = _Levels()
    client = tile_cache.conn()
    pages = client.get_paginator('list_objects_v2').paginate(
        Bucket=tile_cache.bucket_name, Prefix=prefix, PaginationConfig={'PageSize': STORE_PAGE})
    for page in pages:
        doomed = []
        for obj in page.get('Contents') or []:
            match = pattern.match(obj['Key'][len(prefix):])
            if not match:
                stats.other += 1
                continue
            level = len(match.group(1)) if layout == 'quadkey' else int(match.group(1))
            size, written = int(obj.get('Size') or 0), obj['LastModified'].timestamp()
            stats.add(level, size, written)
            if removal is not None and removal.wants(level, written, size):
                removal.took('s3://%s/%s' % (tile_cache.bucket_name, obj['Key']), level, size, written)
                doomed.append({'Key': obj['Key']})
        if doomed and not removal.dry_run:
            answer = client.delete_objects(Bucket=tile_cache.bucket_name, Delete={'Objects': doomed, 'Quiet': True})
            if answer.get('Errors'):
                error = answer['Errors'][0]
                raise RuntimeError('%d objects were not deleted, the first %s: %s %s' % (
                    len(answer['Errors']), error.get('Key'), error.get('Code'), error.get('Message')))
    return stats, prefix


def _redis_stats(tile_cache, removal=None):
    """SCAN the keys of a Redis cache's prefix (``<prefix>-z-x-y``), with their sizes and
    TTLs in one pipeline per page. The write time is known from the TTL only: now minus
    what of the cache's default_ttl has passed. With ``removal``, UNLINK those it wants,
    one pipeline per page."""
    client = _bounded_redis(tile_cache)
    pattern = re.compile('^%s-(\\d+)-\\d+-\\d+$' % re.escape(tile_cache.prefix))
    glob = re.sub(r'([\\*?\[\]])', r'\\\1', tile_cache.prefix) + '-*'
    stats = _Levels()
    ttl = tile_cache.ttl or 0
    try:
        cursor = 0
        while True:
            cursor, keys = client.scan(cursor=cursor, match=glob, count=STORE_PAGE)
            tiles = []
            for key in keys:
                match = pattern.match(key.decode('utf-8', 'replace'))
                if match:
                    tiles.append((key, int(match.group(1))))
                else:
                    stats.other += 1
            doomed = []
            if tiles:
                pipe = client.pipeline(transaction=False)
                # The server's clock with the TTLs, in the same pipeline: a write time worked
                # out from them does not move between two scans (a size limit's two passes).
                pipe.time()
                for key, _level in tiles:
                    pipe.strlen(key)
                    pipe.pttl(key)
                answers = pipe.execute()
                now = answers[0][0] + answers[0][1] / 1e6
                answers = answers[1:]
                for index, (key, level) in enumerate(tiles):
                    size, left = int(answers[2 * index] or 0), answers[2 * index + 1]
                    if left is None or left == -2:
                        continue  # expired between the scan and the pipeline
                    written = now - (ttl - left / 1000.0) if ttl and left >= 0 else None
                    stats.add(level, size, written)
                    if removal is not None and removal.wants(level, written, size):
                        removal.took(key.decode('utf-8', 'replace'), level, size, written)
                        doomed.append(key)
            if doomed and not removal.dry_run:
                pipe = client.pipeline(transaction=False)
                for key in doomed:
                    pipe.unlink(key)
                pipe.execute()
            if not cursor:
                break
    finally:
        client.close()
    return stats


def store_stats(conf, names):
    """Per s3 or redis cache of ``names`` (True: all) and grid: its store in words, the key prefix,
    and tiles, bytes, oldest and newest write per level, read in the store. A cache whose
    store cannot be read gets an error."""
    out = {}
    for name in (sorted(conf.caches) if names is True else names):
        cache_conf = conf.caches.get(name)
        block = (cache_conf.conf.get('cache') or {}) if cache_conf is not None else {}
        if block.get('type') not in STORE_TYPES:
            continue
        grids = out.setdefault(name, {})
        try:
            with conf:
                for grid_name, _path, tile_cache in cache_storage(cache_conf):
                    if type(tile_cache).__name__ == 'DummyCache':
                        continue  # disable_storage: nothing stored
                    if block['type'] == 's3':
                        stats, key_prefix = _s3_stats(tile_cache, block.get('directory_layout') or 'tms')
                    else:
                        stats, key_prefix = _redis_stats(tile_cache), _key_prefix('redis', tile_cache)
                    entry = stats.answer()
                    entry.update(store=store_of(block), key_prefix=key_prefix)
                    grids[grid_name] = entry
        except Exception as ex:
            RESULT['errors'].append("cache '%s': the store %s cannot be read: %s" % (name, store_of(block), in_words(ex)))
    RESULT['store_stats'] = out


def _store_prefixes(conf, caches, verb):
    """The key prefixes of the s3 and redis caches of ``caches`` ({cache: [grid, ...]}): per
    cache, a list of (grids, block, prefix, tile_cache). Grids whose tiles share one key
    prefix are listed once, and only when all of them are selected (else an error names
    them: their tiles cannot be told apart). A cache that is not in a store, or whose
    store cannot be reached, gets an error that says what could not be ``verb``."""
    out = {}
    for name, selected in sorted(caches.items()):
        cache_conf = conf.caches.get(name)
        block = (cache_conf.conf.get('cache') or {}) if cache_conf is not None else {}
        if block.get('type') not in STORE_TYPES:
            RESULT['errors'].append("cache '%s': not a cache in a store (%s)" % (name, ', '.join(STORE_TYPES)))
            continue
        units = out.setdefault(name, [])
        try:
            with conf:
                by_prefix = {}
                for grid_name, _path, tile_cache in cache_storage(cache_conf):
                    if type(tile_cache).__name__ == 'DummyCache':
                        continue
                    by_prefix.setdefault(_key_prefix(block['type'], tile_cache), []).append((grid_name, tile_cache))
        except Exception as ex:
            RESULT['errors'].append("cache '%s': the store %s cannot be %s: %s" % (name, store_of(block), verb, in_words(ex)))
            continue
        for prefix, grids in sorted(by_prefix.items()):
            names = [grid_name for grid_name, _tile_cache in grids]
            chosen = [grid_name for grid_name in names if grid_name in selected]
            if not chosen:
                continue
            if len(chosen) != len(names):
                RESULT['errors'].append(
                    "cache '%s': grids %s share the key prefix %s in the store %s, so their tiles cannot "
                    "be told apart: select all of them" % (name, ', '.join(names), prefix, store_of(block)))
                continue
            units.append((names, block, prefix, grids[0][1]))
    return out


def _walk_store(block, tile_cache, removal):
    """One key prefix of a store cache, listed or scanned, with ``removal`` deciding what goes."""
    if block['type'] == 's3':
        _s3_stats(tile_cache, block.get('directory_layout') or 'tms', removal)
    else:
        _redis_stats(tile_cache, removal)


def _walk_or_say(conf, name, block, tile_cache, removal, verb):
    """_walk_store in the configuration's context: False, and an error that names the cache,
    the store and what it cannot be (``verb``), when the store fails."""
    try:
        with conf:
            _walk_store(block, tile_cache, removal)
        return True
    except Exception as ex:
        RESULT['errors'].append("cache '%s': the store %s cannot be %s: %s" % (name, store_of(block), verb, in_words(ex)))
        return False


def _removal_entry(names, block, prefix, removal):
    return {'grids': names, 'store': store_of(block), 'key_prefix': prefix,
            'removed': removal.removed.answer()['levels'], 'keys': removal.keys,
            'unknown_age': removal.unknown_age}


def store_clean(conf, request):
    """Remove tiles of s3 and redis caches in their store: ``request`` has ``caches``
    ({cache: [grid, ...]}), ``levels`` (None: all), ``before`` (seconds since the epoch;
    None: any age) and ``dry_run``. Per cache and key prefix (_store_prefixes): the grids,
    the store, what was removed per level, the tiles kept for an unknown age, and the first keys."""
    out = {}
    for name, units in _store_prefixes(conf, request['caches'], 'cleaned').items():
        entries = out.setdefault(name, [])
        for names, block, prefix, tile_cache in units:
            removal = _Removal(request.get('levels'), request.get('before'), request.get('dry_run'))
            if not _walk_or_say(conf, name, block, tile_cache, removal, 'cleaned'):
                break
            entries.append(_removal_entry(names, block, prefix, removal))
    RESULT['store_clean'] = out


class _Survey(_Removal):
    """The first pass of a size limit: takes nothing, adds up the bytes of the tiles per
    second of their write time, and those whose write time is unknown."""

    def __init__(self):
        super(_Survey, self).__init__()
        self.histogram = {}
        self.total = 0
        self.unknown_bytes = 0

    def wants(self, level, written, size):
        self.total += size
        if written is None:
            self.unknown_age += 1
            self.unknown_bytes += size
        else:
            second = int(written)
            self.histogram[second] = self.histogram.get(second, 0) + size
        return False


class _OldestFirst(_Removal):
    """The second pass of a size limit: every tile written before the second ``last``, and
    of that second only ``budget`` bytes, whatever order the listing meets them in."""

    def __init__(self, last, budget, dry_run):
        super(_OldestFirst, self).__init__(dry_run=dry_run)
        self.last = last
        self.budget = budget

    def wants(self, level, written, size):
        if written is None:
            self.unknown_age += 1
            return False
        second = int(written)
        if second < self.last:
            return True
        if second == self.last and self.budget > 0:
            self.budget -= size
            return True
        return False


def store_limit(conf, request):
    """Keep s3 and redis caches under a size, the oldest-written tiles first (a store
    records no reads: S3's LastModified, Redis's write time from the TTL). ``request`` has
    ``caches`` ({cache: [grid, ...]}), ``max_size`` and ``target`` (bytes: over max_size,
    tiles go until target is reached) and ``dry_run``. Two passes over the keys: the first
    adds up the bytes per second of write time, the second removes up to the cut-off second.
    Tiles of unknown write time (Redis without default_ttl) count, but stay. Reports the
    total, what had to go, and per cache and key prefix what went."""
    units = _store_prefixes(conf, request['caches'], 'limited')
    if RESULT['errors']:
        return
    surveys = []
    for name, entries in sorted(units.items()):
        for _names, block, _prefix, tile_cache in entries:
            survey = _Survey()
            if not _walk_or_say(conf, name, block, tile_cache, survey, 'read'):
                return
            surveys.append(survey)
    total = sum(survey.total for survey in surveys)
    histogram = {}
    for survey in surveys:
        for second, size in survey.histogram.items():
            histogram[second] = histogram.get(second, 0) + size
    to_free = total - request['target'] if total > request['max_size'] else 0
    answer = {'total_bytes': total, 'to_free': max(to_free, 0), 'caches': {}, 'newest_removed': None,
              'unknown_age_bytes': sum(survey.unknown_bytes for survey in surveys)}
    RESULT['store_limit'] = answer
    if to_free <= 0:
        return
    freed, last = 0, None
    for second in sorted(histogram):
        freed += histogram[second]
        last = second
        if freed >= to_free:
            break
    if last is None:
        return
    budget = to_free - sum(size for second, size in histogram.items() if second < last)
    for name, entries in sorted(units.items()):
        out = answer['caches'].setdefault(name, [])
        for names, block, prefix, tile_cache in entries:
            removal = _OldestFirst(last, budget, request.get('dry_run'))
            if not _walk_or_say(conf, name, block, tile_cache, removal, 'limited'):
                return
            budget = removal.budget
            newest = [entry[3] for entry in removal.removed.levels.values() if entry[3] is not None]
            if newest:
                answer['newest_removed'] = max(newest + [answer['newest_removed'] or 0])
            out.append(_removal_entry(names, block, prefix, removal))


STORAGE_FILES = ('mbtile_file', 'geopackage_file')


def cache_storage(cache_conf):
    """Where one cache of a loaded configuration keeps its tiles, grid by grid, as
    MapProxy itself resolves it (base_dir, cache_dir, directory, filename):
    ``[(grid name, absolute path or None, MapProxy's tile cache object)]``. The path
    is a file cache's directory, an mbtiles or GeoPackage cache's file, or None for
    a cache that stores nothing on disk. Call it inside ``with conf:``. The
    modules (through describe) and the seeding role's timer tool both read this."""
    grid_names = [grid_name for grid_name, _grid_conf in cache_conf.grid_confs()]
    storage = []
    for grid_name, (_tile_grid, _extent, manager) in zip(grid_names, cache_conf.caches()):
        tile_cache = manager.cache
        path = None
        if type(tile_cache).__name__ != 'DummyCache':
            for attr in ('cache_dir',) + STORAGE_FILES + ('lock_dir',):
                value = getattr(tile_cache, attr, None)
                if isinstance(value, str):
                    path = os.path.abspath(value)
                    break
        storage.append((grid_name, path, tile_cache))
    return storage


def _cache_locations(conf, config_file):
    """``{path: is a file}`` for every path the caches of a loaded configuration
    write (see cache_paths), normalised, without those that hold the config's folder."""
    config_dir = os.path.dirname(os.path.abspath(config_file))
    found = {}
    for key in ('cache.base_dir', 'cache.lock_dir', 'cache.tile_lock_dir'):
        value = conf.globals.get_path(key, {})
        if value:
            found[value] = False
    for cache_conf in conf.caches.values():
        for _grid, path, tile_cache in cache_storage(cache_conf):
            if path:
                found[path] = any(getattr(tile_cache, attr, None) == path for attr in STORAGE_FILES)
        for _tile_grid, _extent, manager in cache_conf.caches():
            lock_dir = getattr(getattr(manager, 'locker', None), 'lock_dir', None)
            if isinstance(lock_dir, str):
                found[lock_dir] = False
    found = dict((os.path.normpath(os.path.join(config_dir, path)), is_file) for path, is_file in found.items())
    return dict((path, is_file) for path, is_file in found.items()
                if not (config_dir == path or config_dir.startswith(path.rstrip(os.sep) + os.sep)))


def cache_paths(conf, config_file):
    """Every path the caches of a loaded configuration write, as MapProxy resolves
    them: the cache base directory, the lock directories, each cache's storage grid by
    grid (a file or sqlite cache's directory, an mbtiles or GeoPackage file) and its
    tile lock directory. Normalised and sorted. A path that holds the configuration's
    folder (a cache base of ``.``, say) is left out: the backup would lose the
    configuration; the caches' own paths inside it are still there. Call it inside
    ``with conf:``."""
    return sorted(_cache_locations(conf, config_file))


def write_dirs(conf, config_file):
    """The directories MapProxy writes to: cache_paths with an mbtiles or GeoPackage
    file replaced by its folder (SQLite writes its journal next to it). The mapproxy
    role creates them; the units of Gunicorn and the timers may write only there."""
    return sorted(set(os.path.dirname(path) if is_file else path
                      for path, is_file in _cache_locations(conf, config_file).items()))


def config_generation(config_files):
    """One name for the configuration MapProxy serves: the SHA-1 of the names and contents
    of the files it read (``config_files``: ``{path: mtime}`` as MapProxy's ``config_files()``
    records them). None when a file is gone or changed since MapProxy read it (its time
    differs), so a generation never names a configuration that MapProxy did not load.
    nginx's store of answers MapProxy does not keep (``served()``) and the WSGI app that
    Gunicorn serves (roles/mapproxy_gunicorn/files/p2d2_mapproxy_app.py) both use it: nginx
    keeps such an answer only when both name the same generation. MapProxy's version is not
    part of it: an upgrade keeps the answers kept (docs/fast-path.md)."""
    import hashlib
    digest = hashlib.sha1(b'p2d2-mapproxy-generation 1\n')
    if not config_files:
        return None
    for path in sorted(config_files):
        try:
            with open(path, 'rb') as stream:
                content = stream.read()
                mtime = os.fstat(stream.fileno()).st_mtime
        except OSError:
            return None
        if config_files[path] is not None and mtime != config_files[path]:
            return None
        digest.update(('%d %s\n' % (len(content), path)).encode('utf-8'))
        digest.update(content)
    return digest.hexdigest()


def served(conf_dict, conf):
    """What nginx's fast path needs besides the caches: the services and layers as
    MapProxy reads them (``base:`` included), the headers MapProxy gives a tile, and
    the configuration's generation (``config_generation()``)."""
    services = conf_dict.get('services')
    layers = conf_dict.get('layers')
    files = conf.config_files() if hasattr(conf, 'config_files') else {}
    return {
        'services': services if isinstance(services, dict) else {},
        'layers': layers if isinstance(layers, list) else [],
        'expires_hours': conf.globals.get_value('tiles.expires_hours', {}),
        'access_control_allow_origin': conf.globals.get_value('http.access_control_allow_origin', {}),
        'generation': config_generation(files),
    }


def describe(conf_dict, conf):
    services = conf_dict.get('services') or {}
    RESULT['services'] = sorted(services) if isinstance(services, dict) else []
    RESULT['layers'] = layer_names(conf_dict.get('layers'), [])
    sources = {}
    for name, src in (conf_dict.get('sources') or {}).items():
        if not isinstance(src, dict):
            continue
        info = {'type': src.get('type')}
        url = src.get('url')
        req = src.get('req')
        if not url and isinstance(req, dict):
            url = req.get('url')
        if url:
            info['url'] = mask_url(url)
        sources[name] = info
    RESULT['sources'] = sources
    grids = {}
    if conf is not None:
        for name, grid_conf in conf.grids.items():
            try:
                grid = grid_conf.tile_grid()
            except Exception:
                continue
            grids[name] = {
                'srs': grid.srs.srs_code,
                'levels': grid.levels,
                'origin': grid.origin,
                'bbox': list(grid.bbox),
                'tile_size': list(grid.tile_size),
                'configured': name in (conf_dict.get('grids') or {}),
            }
    RESULT['grids'] = grids
    RESULT['base_dir'] = None
    if conf is not None:
        try:
            RESULT['base_dir'] = conf.globals.get_path('cache.base_dir', {})
        except Exception:
            pass
    caches = {}
    for name, cache in (conf_dict.get('caches') or {}).items():
        if not isinstance(cache, dict):
            continue
        block = cache.get('cache') or {}
        ctype = block.get('type', 'file')
        srcs = cache.get('sources') or []
        info = {
            'type': ctype,
            'grids': list(cache.get('grids') or []),
            'sources': list(srcs.keys()) if isinstance(srcs, dict) else list(srcs),
            'format': cache.get('format', 'image/png'),
            'disable_storage': bool(cache.get('disable_storage', False)),
            'refresh_before': bool(cache.get('refresh_before')),
            # Tiles MapProxy renders from a source or from other levels on every request
            # without storing them: nginx must not keep those answers.
            'renders_unstored': bool(
                cache.get('use_direct_from_level') is not None
                or cache.get('use_direct_from_res') is not None
                or ((cache.get('upscale_tiles') or cache.get('downscale_tiles'))
                    and not cache.get('cache_rescaled_tiles'))),
            'directory_layout': block.get('directory_layout', 'tc') if ctype == 'file' else block.get('directory_layout'),
            'directory': None,
            'directories': {},
            'link_single_color_images': None,
            'timestamps': None,
            'meta_size': None,
        }
        if conf is not None and name in conf.caches:
            cache_conf = conf.caches[name]
            # As MapProxy's loader reads it: the cache's own, else globals.cache.meta_size, else (4, 4).
            try:
                info['meta_size'] = [int(v) for v in conf.globals.get_value(
                    'meta_size', cache_conf.conf, global_key='cache.meta_size')]
            except Exception:
                pass
            try:
                with conf:
                    storage = cache_storage(cache_conf)
                    info['format'] = str(cache_conf.image_opts().format)
            except Exception:
                storage = []
            if not info['grids']:
                info['grids'] = [grid_name for grid_name, _path, _tile_cache in storage]
            for grid_name, path, tile_cache in storage:
                info['directories'][grid_name] = path
                info['timestamps'] = bool(getattr(tile_cache, 'supports_timestamp', True))
                if ctype == 'file' and path:
                    info['file_ext'] = getattr(tile_cache, 'file_ext', None)
                    info['link_single_color_images'] = bool(getattr(tile_cache, 'link_single_color_images', False))
            dirs = list(info['directories'].values())
            if len(dirs) == 1:
                info['directory'] = dirs[0]
        caches[name] = info
    RESULT['caches'] = caches
    if conf is not None and not RESULT['errors']:
        RESULT['served'] = served(conf_dict, conf)


def check_seed(conf, seed_path):
    seed = {'errors': [], 'warnings': [], 'seeds': [], 'cleanups': []}
    RESULT['seed'] = seed
    from mapproxy.seed.config import load_seed_tasks_conf
    from mapproxy.seed.spec import validate_seed_conf
    from mapproxy.util.yaml import load_yaml_file
    try:
        raw = load_yaml_file(seed_path)
    except Exception as ex:
        seed['errors'].append('cannot load %s: %s' % (seed_path, in_words(ex)))
        return
    if not isinstance(raw, dict):
        seed['errors'].append('%s does not hold a YAML mapping' % seed_path)
        return
    msgs, _informal = validate_seed_conf(raw)
    # Unknown keys in a seed config are errors here: mapproxy-seed only
    # warns, and "level:" instead of "levels:" seeds the whole world.
    seed['errors'].extend(msgs)
    seed['seeds'] = sorted((raw.get('seeds') or {}).keys()) if isinstance(raw.get('seeds'), dict) else []
    seed['cleanups'] = sorted((raw.get('cleanups') or {}).keys()) if isinstance(raw.get('cleanups'), dict) else []
    if msgs:
        return
    CAPTURE.take()
    try:
        with conf:
            seed_conf = load_seed_tasks_conf(seed_path, conf)
            seed_conf.seeds()
            seed_conf.cleanups()
    except Exception as ex:
        seed['errors'].append(in_words(ex))
    logged = CAPTURE.take()
    add_unique(seed['warnings'], [m for m in logged if m not in msgs])


def srs_area_check(srs, bbox):
    """Return an error text if bbox is outside the area where srs is defined."""
    minx, miny, maxx, maxy = bbox
    if srs.is_latlong:
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            return ('bbox %s lies outside the valid area of %s (-180, -90, 180, 90): '
                    'expected [min lon, min lat, max lon, max lat]' % (list(bbox), srs.srs_code))
        return None
    try:
        import pyproj
        crs = pyproj.CRS.from_user_input(srs.srs_code)
        transformer = pyproj.Transformer.from_crs(crs, 'EPSG:4326', always_xy=True)
        points = [(minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy),
                  ((minx + maxx) / 2.0, (miny + maxy) / 2.0)]
        for x, y in points:
            lon, lat = transformer.transform(x, y, errcheck=True)
            if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lat) > 90 or abs(lon) > 540:
                raise ValueError('point %s, %s' % (x, y))
    except Exception:
        return 'bbox %s lies outside the area where %s is defined' % (list(bbox), srs.srs_code)
    if srs.srs_code in ('EPSG:3857', 'EPSG:900913', 'EPSG:102100', 'EPSG:102113'):
        limit = 20037508.342789244 * 1.000001
        if max(abs(minx), abs(maxx), abs(miny), abs(maxy)) > limit:
            return ('bbox %s lies outside the valid area of %s (+-20037508.34 m)' % (list(bbox), srs.srs_code))
    return None


def plan_bbox(conf, request):
    from mapproxy.srs import SRS
    from mapproxy.util.bbox import TransformationError
    out = {'errors': [], 'grids': {}}
    RESULT['bbox'] = out
    bbox = [float(v) for v in request['bbox']]
    if not (bbox[0] < bbox[2] and bbox[1] < bbox[3]):
        out['errors'].append('bbox %s must be [minx, miny, maxx, maxy] with minx < maxx and miny < maxy' % bbox)
        return
    try:
        srs = SRS(request['srs'])
    except Exception as ex:
        out['errors'].append("srs '%s': %s" % (request['srs'], in_words(ex)))
        return
    area_error = srs_area_check(srs, bbox)
    if area_error:
        out['errors'].append(area_error)
        return
    levels_by_grid = request.get('levels') or {}
    grid_names = list(request.get('grids') or [])
    if not grid_names:
        for cache_name in request.get('caches') or []:
            if cache_name in conf.caches:
                for grid_name, _grid_conf in conf.caches[cache_name].grid_confs():
                    if grid_name not in grid_names:
                        grid_names.append(grid_name)
    for grid_name in grid_names:
        if grid_name not in conf.grids:
            continue
        grid = conf.grids[grid_name].tile_grid()
        try:
            gbbox = srs.transform_bbox_to(grid.srs, bbox) if srs != grid.srs else bbox
        except (TransformationError, Exception):
            out['errors'].append("bbox %s cannot be transformed to %s of grid '%s'"
                                 % (bbox, grid.srs.srs_code, grid_name))
            continue
        g = grid.bbox
        if not (gbbox[0] < g[2] and gbbox[2] > g[0] and gbbox[1] < g[3] and gbbox[3] > g[1]):
            out['errors'].append("bbox %s (%s) does not overlap grid '%s' (%s in %s)"
                                 % (bbox, srs.srs_code, grid_name, list(g), grid.srs.srs_code))
            continue
        ranges = {}
        levels = levels_by_grid.get(grid_name)
        if levels is None:
            levels = list(range(grid.levels))
        for level in levels:
            if level < 0 or level >= grid.levels:
                continue
            # as TileGrid.get_affected_level_tiles: ignore tiles only touched
            delta = grid.resolution(level) / 10.0
            x0, y0, _z0 = grid.tile_coord_for_point(gbbox[0] + delta, gbbox[1] + delta, level)
            x1, y1, _z1 = grid.tile_coord_for_point(gbbox[2] - delta, gbbox[3] - delta, level)
            w, h = grid.grid_sizes[level]
            xa, xb = sorted((x0, x1))
            ya, yb = sorted((y0, y1))
            xa, ya = max(xa, 0), max(ya, 0)
            xb, yb = min(xb, w - 1), min(yb, h - 1)
            if xa > xb or ya > yb:
                continue
            ranges[str(level)] = [xa, ya, xb, yb]
        out['grids'][grid_name] = {'bbox': list(gbbox), 'srs': grid.srs.srs_code, 'ranges': ranges}


def check_coverages(coverages):
    from mapproxy.config.coverage import load_coverage
    from mapproxy.config.spec import coverage as coverage_spec
    from mapproxy.util.ext.dictspec.validator import validate, ValidationError
    out = {}
    RESULT['coverages'] = out
    for name, cov in coverages.items():
        errs = []
        try:
            validate(coverage_spec, cov)
        except ValidationError as ex:
            errs.extend(ex.errors)
        except Exception as ex:
            errs.append(in_words(ex))
        if not errs:
            try:
                loaded = load_coverage(cov)
                if not loaded.extent.llbbox:
                    errs.append('coverage is empty')
            except Exception as ex:
                errs.append(in_words(ex))
        out[name] = errs


# ---------------------------------------------------------------------------
# mapproxy-seed's cache lock

LOCK_FILE = '.mapproxy_seed.lck'


class LockTimeout(Exception):
    """A cache's lock was not free in time; ``cache`` names it."""

    def __init__(self, cache, timeout):
        Exception.__init__(self, 'the lock of cache %s was not free within %d s' % (cache, timeout))
        self.cache = cache


@contextlib.contextmanager
def cache_locks(lock_dir, cache_names, timeout, on_wait=None, poll=1.0):
    """Hold mapproxy-seed's lock (``--use-cache-lock``) of every cache, taken
    with MapProxy's own CacheLocker in ``lock_dir``/.mapproxy_seed.lck, in line
    with waiting mapproxy-seed processes. ``timeout`` None waits as long as it
    takes; ``on_wait(name)`` is called once when a cache is locked by another.
    A lock file that root creates gets the folder's owner, so that MapProxy's
    own user can still take it."""
    from mapproxy.seed.cachelock import CacheLockedError, CacheLocker

    path = os.path.join(lock_dir, LOCK_FILE)
    if not os.path.isdir(lock_dir):
        raise OSError('the lock folder %s does not exist' % lock_dir)
    created = not os.path.exists(path)
    locker = CacheLocker(path)
    if created and os.geteuid() == 0:
        folder = os.stat(lock_dir)
        os.chown(path, folder.st_uid, folder.st_gid)
    deadline = None if timeout is None else time.monotonic() + timeout
    with contextlib.ExitStack() as stack:
        for name in sorted(set(cache_names)):
            waited = False
            while True:
                try:
                    stack.enter_context(locker.lock(name, no_block=True))
                    break
                except CacheLockedError:
                    if not waited and on_wait is not None:
                        on_wait(name)
                    waited = True
                    if deadline is not None and time.monotonic() >= deadline:
                        raise LockTimeout(name, timeout)
                    time.sleep(poll)
        yield


def hold_locks(request, out, wait_for_close):
    """The ``lock`` request: answer once the locks are held, keep them until
    ``wait_for_close()`` returns (stdin closed by the module)."""
    spec = request['lock']
    caches = list(spec.get('caches') or [])
    if spec.get('test'):
        busy = []
        for name in caches:
            try:
                with cache_locks(spec['dir'], [name], 0, poll=0):
                    pass
            except LockTimeout:
                busy.append(name)
        out.write(json.dumps({'busy': busy}) + '\n')
        out.flush()
        return
    timeout = spec.get('timeout')
    started = time.monotonic()
    store = spec.get('store')
    try:
        with contextlib.ExitStack() as stack:
            if store:
                # First the lock in the shared store, which other hosts see, then this host's.
                try:
                    conf = load_for_jobs(store['config'])
                except Exception as ex:
                    raise StoreLockError(None, None, 'MapProxy cannot load %s to find the stores of %s: %s' % (
                        store['config'], ', '.join(store['caches']), in_words(ex)))
                stack.enter_context(store_locks(conf, store['caches'], timeout, store.get('what') or 'a job',
                                                poll=spec.get('poll', 0.5)))
            if spec.get('dir'):
                left = timeout if timeout is None or not store else max(0, timeout - (time.monotonic() - started))
                stack.enter_context(cache_locks(spec['dir'], caches, left, poll=spec.get('poll', 0.5)))
            out.write(json.dumps({'locked': True}) + '\n')
            out.flush()
            wait_for_close()
    except LockTimeout as ex:
        out.write(json.dumps({'locked': False, 'cache': ex.cache, 'error': str(ex)}) + '\n')
        out.flush()
    except StoreLockError as ex:
        out.write(json.dumps({'locked': False, 'cache': ex.cache, 'store': ex.store, 'holder': ex.holder,
                              'error': str(ex)}) + '\n')
        out.flush()


# ---------------------------------------------------------------------------
# The lock of a cache in a shared store

# mapproxy-seed's lock is a file on one host; a cache in a shared store is seeded and
# cleaned from several. Its lock is a lease beside its tiles in the store: an object
# (S3, taken with a conditional write) or a key (Redis, SET NX) per key prefix, that
# names its holder, lives STORE_LOCK_TTL seconds unless renewed (a holder that dies
# frees it) and is renewed every STORE_LOCK_RENEW seconds while the work runs.
STORE_LOCK_KEY = 'p2d2-lock'
STORE_LOCK_TTL = 60
STORE_LOCK_RENEW = 15


class StoreLockError(Exception):
    """The lock of ``cache`` in ``store`` could not be taken; ``holder`` is the record of
    whoever holds it, None when the store failed."""

    def __init__(self, cache, store, message, holder=None):
        Exception.__init__(self, message)
        self.cache, self.store, self.holder = cache, store, holder


def lock_holder(what):
    """The record a lease carries: what holds it, on which host, since when, and a token."""
    return {'what': what, 'host': os.uname()[1], 'pid': os.getpid(), 'since': int(time.time()),
            'token': os.urandom(8).hex()}


def describe_holder(holder):
    """A lease's record in words: 'seeding task x on host h (pid 1) since 2026-...Z'."""
    if not isinstance(holder, dict) or not holder:
        return 'a holder that left no record'
    since = holder.get('since')
    when = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since)) if isinstance(since, (int, float)) else '?'
    return '%s on host %s (pid %s) since %s' % (
        holder.get('what') or 'a job', holder.get('host') or '?', holder.get('pid') or '?', when)


def _lease_record(raw):
    try:
        record = json.loads(raw.decode('utf-8', 'replace') if isinstance(raw, bytes) else raw)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _s3_code(ex):
    response = getattr(ex, 'response', None) or {}
    return (response.get('Error') or {}).get('Code'), (response.get('ResponseMetadata') or {}).get('HTTPStatusCode')


def _s3_lost_race(ex):
    """A conditional write or delete that another writer got to first."""
    code, status = _s3_code(ex)
    return code in ('PreconditionFailed', 'ConditionalRequestConflict') or status in (409, 412)


class _S3Lease(object):
    """The lease object of an S3 cache's prefix. Taken with If-None-Match: * (only one
    writer creates it), renewed and released with If-Match on its ETag; one that was not
    renewed for ``ttl`` seconds by the store's own clock (its Date against the object's
    LastModified, against the ``ttl`` its record gives) is taken over with If-Match, so
    two hosts cannot both take it."""

    def __init__(self, tile_cache, key, body, _ttl, _timeouts=None):
        # The client MapProxy's cache builds: bounded_stores() gave it its timeouts.
        self.client = tile_cache.conn()
        self.bucket, self.key, self.body = tile_cache.bucket_name, key, body
        self.etag = None

    def _put(self, **condition):
        self.etag = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=self.body,
                                           ContentType='application/json', **condition)['ETag']

    def take(self):
        """None when taken, else the holder's record ({} when it went meanwhile)."""
        from botocore.exceptions import ClientError
        try:
            self._put(IfNoneMatch='*')
            return None
        except ClientError as ex:
            if not _s3_lost_race(ex):
                raise
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as ex:
            if _s3_code(ex)[0] in ('NoSuchKey', '404'):
                return {}
            raise
        record = _lease_record(answer['Body'].read())
        import email.utils
        date = (answer.get('ResponseMetadata') or {}).get('HTTPHeaders', {}).get('date')
        now = email.utils.parsedate_to_datetime(date).timestamp() if date else time.time()
        life = record.get('ttl') if isinstance(record.get('ttl'), (int, float)) else STORE_LOCK_TTL
        if now - answer['LastModified'].timestamp() > life:
            try:
                self._put(IfMatch=answer['ETag'])
                return None
            except ClientError as ex:
                if not _s3_lost_race(ex):
                    raise
        return record

    def renew(self):
        from botocore.exceptions import ClientError
        try:
            self._put(IfMatch=self.etag)
            return True
        except ClientError as ex:
            if _s3_lost_race(ex) or _s3_code(ex)[0] == 'NoSuchKey':
                return False
            raise

    def release(self):
        from botocore.exceptions import ClientError
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag)
        except ClientError as ex:
            if not (_s3_lost_race(ex) or _s3_code(ex)[0] == 'NoSuchKey'):
                raise


# Renew or delete a Redis lease only while it is still ours.
_REDIS_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_REDIS_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class _RedisLease(object):
    """The lease key of a Redis cache's prefix: SET NX with an expiry, renewed and
    deleted by a script that first checks that it is still ours."""

    def __init__(self, tile_cache, key, body, ttl, timeouts=None):
        self.client = _bounded_redis(tile_cache, timeouts)
        self.key, self.body, self.ttl_ms = key, body, int(ttl * 1000)

    def take(self):
        if self.client.set(self.key, self.body, nx=True, px=self.ttl_ms):
            return None
        current = self.client.get(self.key)
        return {} if current is None else _lease_record(current)

    def renew(self):
        return bool(self.client.eval(_REDIS_RENEW, 1, self.key, self.body, self.ttl_ms))

    def release(self):
        try:
            self.client.eval(_REDIS_RELEASE, 1, self.key, self.body)
        finally:
            self.client.close()


def _store_lock_units(conf, cache_names):
    """(store in words, lease key, cache, type, tile cache) of every key prefix of the s3
    and redis caches of ``cache_names``, once per store and key, in a fixed order (two
    holders that take several never wait for each other crosswise)."""
    units = {}
    with conf:
        for name in sorted(set(cache_names)):
            cache_conf = conf.caches.get(name)
            block = (cache_conf.conf.get('cache') or {}) if cache_conf is not None else {}
            if block.get('type') not in STORE_TYPES:
                continue
            try:
                storage = cache_storage(cache_conf)
            except Exception as ex:
                raise StoreLockError(name, store_of(block), "cache '%s': the store %s cannot be locked: %s"
                                     % (name, store_of(block), in_words(ex)))
            for _grid, _path, tile_cache in storage:
                if type(tile_cache).__name__ == 'DummyCache':
                    continue
                key = _key_prefix(block['type'], tile_cache) + STORE_LOCK_KEY
                units.setdefault((store_of(block), key), (name, block['type'], tile_cache))
    return [(store, key) + unit for (store, key), unit in sorted(units.items())]


def load_for_jobs(config_path, timeouts=None):
    """MapProxy's configuration as mapproxy-seed loads it, with the store clients bounded by
    ``timeouts`` (bounded_stores): for the locks in the stores and the timers' jobs."""
    from mapproxy.config.loader import load_configuration
    bounded_stores(timeouts)
    return load_configuration(config_path, seed=True)


@contextlib.contextmanager
def store_locks(conf, cache_names, timeout, what, on_wait=None, on_lost=None, poll=1.0,
                ttl=STORE_LOCK_TTL, renew_every=STORE_LOCK_RENEW, timeouts=None):
    """Hold the store lock of every s3 and redis cache of ``cache_names`` (file caches
    have none: their lock is mapproxy-seed's, cache_locks above) while the block runs,
    renewing the leases in a thread. ``timeout`` None waits as long as it takes; else
    StoreLockError names the cache, the store and the holder. ``on_wait(cache, store,
    holder)`` is called once per busy cache, ``on_lost(cache, store)`` when a renewal
    finds that a lease is no longer ours. The store clients have the bounds of ``timeouts``
    (STORE_TIMEOUTS by default; an S3 cache's are those bounded_stores() gave when ``conf``
    was loaded). Yields the keys held, as 'store key'."""
    import threading
    holder = lock_holder(what)
    holder['ttl'] = ttl  # how long the lease lives unrenewed, for whoever finds it
    body = json.dumps(holder, sort_keys=True).encode()
    units = _store_lock_units(conf, cache_names)
    deadline = None if timeout is None else time.monotonic() + timeout
    held = []
    stop = threading.Event()
    renewer = None
    try:
        for store, key, name, cache_type, tile_cache in units:
            waited = False
            lease = None
            while True:
                try:
                    if lease is None:
                        kind = _S3Lease if cache_type == 's3' else _RedisLease
                        with conf:
                            lease = kind(tile_cache, key, body, ttl, timeouts)
                    current = lease.take()
                except Exception as ex:
                    raise StoreLockError(name, store, "cache '%s': its lock %s cannot be taken in the store %s: %s"
                                         % (name, key, store, in_words(ex)))
                if current is None:
                    held.append((lease, key, name, store))
                    break
                if not waited and on_wait is not None:
                    on_wait(name, store, current)
                waited = True
                if deadline is not None and time.monotonic() >= deadline:
                    raise StoreLockError(name, store, "cache '%s' is locked in its store %s by %s%s" % (
                        name, store, describe_holder(current),
                        '' if not timeout else '; waited %d s' % timeout), holder=current)
                time.sleep(poll)

        def renew():
            while not stop.wait(renew_every):
                for lease, key, name, store in held:
                    try:
                        kept = lease.renew()
                    except Exception:
                        kept = True  # the store did not answer: try again at the next turn
                    if not kept and on_lost is not None:
                        on_lost(name, store)
        if held:
            renewer = threading.Thread(target=renew, name='p2d2-store-lock', daemon=True)
            renewer.start()
        yield ['%s %s' % (store, key) for _lease, key, _name, store in held]
    finally:
        stop.set()
        if renewer is not None:
            renewer.join(timeout=renew_every + 10)
        for lease, _key, _name, _store in reversed(held):
            try:
                lease.release()
            except Exception:
                pass  # it expires on its own after ttl seconds


def main():
    disable_file_creation()
    if REQUEST.get('check_stores') or REQUEST.get('store_stats') or REQUEST.get('store_clean'):
        bounded_stores()
    else:
        offline_stores()
    conf = None
    if REQUEST.get('coverages_from'):
        from mapproxy.util.yaml import load_yaml_file
        try:
            raw = load_yaml_file(REQUEST['coverages_from'])
            covs = raw.get('coverages') if isinstance(raw, dict) else None
            RESULT['coverages_from'] = covs if isinstance(covs, dict) else {}
        except Exception as ex:
            RESULT['coverages_from_error'] = in_words(ex)
    if REQUEST.get('config'):
        conf = inspect_config(REQUEST['config'])
    ok = conf is not None and not RESULT['errors']
    if ok and REQUEST.get('check_stores'):
        check_stores(conf)
        ok = not RESULT['errors']
    if ok and REQUEST.get('store_stats'):
        store_stats(conf, REQUEST['store_stats'])
    if ok and REQUEST.get('store_clean'):
        store_clean(conf, REQUEST['store_clean'])
    if ok and REQUEST.get('seed'):
        check_seed(conf, REQUEST['seed'])
    if ok:
        config_file = REQUEST['config']
        if REQUEST.get('config_dir'):
            config_file = os.path.join(REQUEST['config_dir'], os.path.basename(config_file))
        with conf:
            RESULT['write_dirs'] = write_dirs(conf, config_file)
            if REQUEST.get('cache_paths'):
                RESULT['cache_paths'] = cache_paths(conf, config_file)
                # The files MapProxy read: the config and those its base: names, as its own
                # reloader knows them.
                files = conf.config_files() if hasattr(conf, 'config_files') else {}
                RESULT['config_files'] = sorted(files) or [os.path.abspath(REQUEST['config'])]
    if ok and REQUEST.get('bbox'):
        with conf:
            plan_bbox(conf, REQUEST['bbox'])
    coverages = REQUEST.get('coverages') or {}
    if REQUEST.get('coverages_from'):
        coverages = RESULT.get('coverages_from') or {}
    name = REQUEST.get('coverage')
    if name:
        coverages = {name: coverages[name]} if name in coverages else {}
    if coverages and (conf is not None or not REQUEST.get('config')):
        # inside the config, so that relative paths resolve as mapproxy-seed resolves them
        with (conf if conf is not None else _Null()):
            check_coverages(coverages)


class _Null(object):
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def run(request, out):
    """Answer one request: load MapProxy, do what it asks, write one JSON line to out."""
    REQUEST.clear()
    REQUEST.update(request)
    os.environ.update(REQUEST.get('env') or {})
    mplog = logging.getLogger('mapproxy')
    mplog.addHandler(CAPTURE)
    mplog.setLevel(logging.WARNING)
    mplog.propagate = False
    try:
        from mapproxy.version import version
        RESULT['mapproxy_version'] = version
    except Exception as ex:  # ImportError and anything a broken install raises
        RESULT['import_error'] = '%s: %s' % (type(ex).__name__, ex)
    else:
        try:
            main()
        except Exception as ex:
            import traceback
            RESULT['internal_error'] = '%s\n%s' % (in_words(ex), traceback.format_exc())
    out.write(json.dumps(RESULT, default=str) + '\n')
    out.flush()


if __name__ == '__main__':
    # Everything MapProxy prints goes to stderr: stdout carries the answer only.
    ANSWER_OUT = sys.stdout
    sys.stdout = sys.stderr
    if sys.argv[1:2] == ['--cache-paths'] and len(sys.argv) in (3, 4):
        import io
        ANSWER = io.StringIO()
        run({'config': sys.argv[2], 'cache_paths': True}, ANSWER)
        ANSWER_DICT = json.loads(ANSWER.getvalue())
        if ANSWER_DICT.get('cache_paths') is None:
            sys.stderr.write('cannot read the caches of %s: %s\n' % (sys.argv[2], '; '.join(
                ANSWER_DICT.get('errors') or [ANSWER_DICT.get('import_error') or ANSWER_DICT.get('internal_error')
                                              or 'unknown error'])))
            raise SystemExit(1)
        ANSWER_OUT.write(''.join(path + '\n' for path in ANSWER_DICT['cache_paths']))
        ANSWER_OUT.flush()
        if len(sys.argv) == 4:
            with open(sys.argv[3], 'w', encoding='utf-8') as sources:
                sources.write(''.join(path + '\n' for path in ANSWER_DICT['config_files']))
    else:
        REQUEST_IN = json.loads(sys.stdin.readline())
        if 'lock' in REQUEST_IN:
            hold_locks(REQUEST_IN, ANSWER_OUT, sys.stdin.read)
        else:
            run(REQUEST_IN, ANSWER_OUT)
