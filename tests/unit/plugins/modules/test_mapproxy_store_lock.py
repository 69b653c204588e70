# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lock of a cache in a shared store (mapproxy_probe.store_locks), against moto's S3
server and Debian's redis-server: while one holder (another host's seeding, here held in
this process) has it, the modules and the timers' tool wait and then refuse, naming the
holder, and change nothing; a lease whose holder died is taken over once; a released or
taken-over lease never removes another holder's."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import (
    VENV,
    make_config,
    needs_mapproxy,
    run_module,
    write_config,
)
from ansible_collections.p2d2.mapproxy.tests.unit.plugins.modules.test_mapproxy_store_caches import (
    S3_KEYS,
    env_file,
)
from ansible_collections.p2d2.mapproxy.plugins.module_utils import mapproxy_probe
from ansible_collections.p2d2.mapproxy.plugins.modules import mapproxy_cache_clean, mapproxy_seed

pytestmark = needs_mapproxy

boto3 = pytest.importorskip('boto3')
redis = pytest.importorskip('redis')

HOST = os.uname()[1]


def load(config):
    from mapproxy.config.loader import load_configuration
    mapproxy_probe.bounded_stores()
    return load_configuration(config, seed=True)


@pytest.fixture
def s3_cache(tmp_path, s3_store):
    client = boto3.client('s3', endpoint_url=s3_store, region_name='us-east-1')
    client.create_bucket(Bucket='tiles')
    caches = {'osm_s3': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {
        'type': 's3', 'bucket_name': 'tiles', 'directory': 'osm', 'endpoint_url': s3_store,
        'region_name': 'us-east-1'}}}
    config = write_config(tmp_path / 'mapproxy.yaml', make_config(tmp_path / 'cache', caches=caches))
    (tmp_path / 'cache').mkdir()
    return config, client, env_file(tmp_path, S3_KEYS)


@pytest.fixture
def redis_cache(tmp_path, redis_store, monkeypatch):
    port, password = redis_store
    monkeypatch.setenv('P2D2_TEST_REDIS_PASSWORD', password)
    caches = {'hot': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {
        'type': 'redis', 'host': '127.0.0.1', 'port': port, 'db': 5, 'prefix': 'hot', 'default_ttl': 600,
        'password': '${P2D2_TEST_REDIS_PASSWORD}'}}}
    config = write_config(tmp_path / 'mapproxy.yaml', make_config(tmp_path / 'cache', caches=caches))
    (tmp_path / 'cache').mkdir()
    client = redis.Redis(host='127.0.0.1', port=port, db=5, password=password)
    yield config, client, env_file(tmp_path, {'P2D2_TEST_REDIS_PASSWORD': password})
    client.close()


def clean(config, env, **options):
    args = dict(config=config, caches=['osm_s3'], venv=VENV, store_env_file=env, remove_all=True,
                lock_timeout=2)
    args.update(options)
    return run_module(mapproxy_cache_clean, args)


def keys(client):
    return sorted(obj['Key'] for obj in client.list_objects_v2(Bucket='tiles').get('Contents') or [])


def test_s3_seeding_and_cleanup_wait_then_refuse_naming_the_holder_and_change_nothing(s3_cache, tmp_path):
    config, client, env = s3_cache
    client.put_object(Bucket='tiles', Key='osm/3/1/1.png', Body=b'tile')
    with mapproxy_probe.store_locks(load(config), ['osm_s3'], 0, 'seeding task daily (test)') as held:
        assert held == ['s3://tiles at %s osm/p2d2-lock' % client.meta.endpoint_url]
        record = json.loads(client.get_object(Bucket='tiles', Key='osm/p2d2-lock')['Body'].read())
        assert (record['what'], record['host'], record['pid']) == ('seeding task daily (test)', HOST, os.getpid())

        start = time.monotonic()
        refused = clean(config, env)
        waited = time.monotonic() - start
        assert refused['failed']
        assert refused['msg'].startswith("Cache 'osm_s3' is locked in its store s3://tiles at ")
        assert 'by seeding task daily (test) on host %s (pid %d) since ' % (HOST, os.getpid()) in refused['msg']
        assert 'waited 2 s (option lock_timeout)' in refused['msg']
        assert refused['holder']['token'] == record['token']
        assert waited >= 2
        assert keys(client) == ['osm/3/1/1.png', 'osm/p2d2-lock']

        seeding = run_module(mapproxy_seed, dict(config=config, caches=['osm_s3'], levels=[0], venv=VENV,
                                                 store_env_file=env, lock_timeout=0, concurrency=1,
                                                 timeout=120))
        assert seeding['failed']
        assert 'by seeding task daily (test) on host %s' % HOST in seeding['msg']
        assert seeding['store'].startswith('s3://tiles at ')
        assert keys(client) == ['osm/3/1/1.png', 'osm/p2d2-lock']

    # Released: the lease is gone, and the same cleanup runs, holding its own lease meanwhile.
    assert keys(client) == ['osm/3/1/1.png']
    done = clean(config, env)
    assert not done['failed'], done['msg']
    assert done['tiles_removed'] == 1 and keys(client) == []


def test_s3_lease_of_a_dead_holder_is_taken_over_and_its_late_release_spares_the_new_one(s3_cache):
    config, client, _env = s3_cache
    conf = load(config)
    lost = []
    # A holder that stops renewing (a host that died) for longer than the lease lives.
    first = mapproxy_probe.store_locks(conf, ['osm_s3'], 0, 'dead host', ttl=1, renew_every=3600,
                                       on_lost=lambda cache, store: lost.append(cache))
    first.__enter__()
    with pytest.raises(mapproxy_probe.StoreLockError) as busy:
        with mapproxy_probe.store_locks(conf, ['osm_s3'], 0, 'second'):
            pass
    assert busy.value.holder['what'] == 'dead host'
    time.sleep(2.5)
    with mapproxy_probe.store_locks(conf, ['osm_s3'], 0, 'second'):
        record = json.loads(client.get_object(Bucket='tiles', Key='osm/p2d2-lock')['Body'].read())
        assert record['what'] == 'second'
        # The first holder comes back and lets go: its conditional delete must not take the second's lease.
        first.__exit__(None, None, None)
        record = json.loads(client.get_object(Bucket='tiles', Key='osm/p2d2-lock')['Body'].read())
        assert record['what'] == 'second'
    assert keys(client) == []


def test_redis_lease_is_renewed_while_held_and_expires_when_its_holder_dies(redis_cache):
    config, client, env = redis_cache
    conf = load(config)
    with mapproxy_probe.store_locks(conf, ['hot'], 0, 'seeding task hot', ttl=1, renew_every=0.2):
        time.sleep(2.5)  # more than twice the lease's life: only renewals keep it
        assert 0 < client.pttl('hot-p2d2-lock') <= 1000
        refused = clean(config, env, caches=['hot'], lock_timeout=0)
        assert refused['failed'] and 'by seeding task hot on host %s' % HOST in refused['msg'], refused['msg']
        assert refused['store'] == 'redis://127.0.0.1:%d/5' % client.connection_pool.connection_kwargs['port']
    assert client.exists('hot-p2d2-lock') == 0

    dead = mapproxy_probe.store_locks(conf, ['hot'], 0, 'dead host', ttl=1, renew_every=3600)
    dead.__enter__()
    client.set('hot-3-1-1', b'tile', px=600000)
    start = time.monotonic()
    done = clean(config, env, caches=['hot'], lock_timeout=10)
    assert not done['failed'], done['msg']
    assert done['tiles_removed'] == 1
    # It waited for the dead holder's lease to expire, not for its own timeout.
    assert time.monotonic() - start < 8
    dead.__exit__(None, None, None)
    assert client.keys('*') == []


def test_the_timers_seed_waits_for_the_lease_and_logs_its_holder(s3_cache, tmp_path, capsys):
    """The seeding role's tool (a timer on the leader) waits as long as it takes, in the log."""
    from ansible_collections.p2d2.mapproxy.tests.unit.roles.test_cache_tool import tool
    config, client, _env = s3_cache
    seed_conf = tmp_path / 'seed.yaml'
    seed_conf.write_text('seeds: {daily: {caches: [osm_s3], levels: [0, 1]}}\n')
    holder = mapproxy_probe.store_locks(load(config), ['osm_s3'], 0, 'mapproxy_cache_clean of osm_s3')
    holder.__enter__()
    timer = threading.Timer(3, holder.__exit__, (None, None, None))
    timer.start()
    try:
        start = time.monotonic()
        assert tool.main(['--config', config, 'seed', '--seed-config', str(seed_conf), '--task', 'daily',
                          '--lock-dir', str(tmp_path / 'cache'), '--progress-file', str(tmp_path / 'daily.progress'),
                          '--concurrency', '1']) == 0
        assert time.monotonic() - start >= 3
    finally:
        timer.join()
    out = capsys.readouterr().out
    assert ('cache osm_s3 is locked in its store s3://tiles at %s by mapproxy_cache_clean of osm_s3 on host %s'
            % (client.meta.endpoint_url, HOST)) in out
    assert 'seeding task daily done' in out
    assert len([key for key in keys(client) if key.endswith('.png')]) == 1 + 4
    assert 'osm/p2d2-lock' not in keys(client)


class _IgnoresConditions(object):
    """A client of a store that ignores If-None-Match (as some S3 stores did before 2024)."""

    def __init__(self, client):
        self.client = client

    def put_object(self, **kwargs):
        kwargs.pop('IfNoneMatch', None)
        return self.client.put_object(**kwargs)


def test_the_store_check_tells_a_store_that_ignores_conditional_writes(s3_cache):
    _config, client, _env = s3_cache
    client.put_object(Bucket='tiles', Key='osm/check', Body=b'x')
    assert mapproxy_probe._s3_refuses_overwrite(client, 'tiles', 'osm/check') is True
    assert mapproxy_probe._s3_refuses_overwrite(_IgnoresConditions(client), 'tiles', 'osm/check') is False
