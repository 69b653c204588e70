# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The day-2 modules on caches in a shared store: mapproxy_seed writes into moto's S3
server and Debian's redis-server (conftest.py starts them) with the credentials of an
environment file only, and mapproxy_cache_info counts what the store holds, checked
against the store's own listing."""

from __future__ import annotations

import datetime
import time

import pytest

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import (
    VENV,
    make_config,
    needs_mapproxy,
    run_module,
    write_config,
)

from ansible_collections.p2d2.mapproxy.plugins.modules import mapproxy_cache_info, mapproxy_seed

pytestmark = needs_mapproxy

boto3 = pytest.importorskip('boto3')
redis = pytest.importorskip('redis')

WORLD = [-180.0, -85.0, 180.0, 85.0]
# Tiles per level of the whole world on the webmercator grid.
PER_LEVEL = {0: 1, 1: 4, 2: 16, 3: 64}
S3_KEYS = {'AWS_ACCESS_KEY_ID': 'p2d2-test-key', 'AWS_SECRET_ACCESS_KEY': 'p2d2-test-secret'}


def env_file(tmp_path, variables):
    """An environment file as the role mapproxy writes it (systemd's and sh's syntax)."""
    path = tmp_path / 'stores.env'

    def quoted(value):
        for char in '\\"$`':
            value = value.replace(char, '\\' + char)
        return '"%s"' % value
    path.write_text(''.join('%s=%s\n' % (name, quoted(value)) for name, value in variables.items()))
    path.chmod(0o640)
    return str(path)


def seed(config, caches, levels, store_env_file, tmp_path):
    return run_module(mapproxy_seed, dict(config=config, caches=caches, bbox=WORLD, levels=levels, venv=VENV,
                                          concurrency=1, timeout=120, lock_dir=str(tmp_path / 'cache'),
                                          store_env_file=store_env_file))


def info(config, store_env_file, caches=None):
    return run_module(mapproxy_cache_info, dict(config=config, caches=caches or [], venv=VENV,
                                                store_env_file=store_env_file))


@pytest.fixture
def s3(s3_store, monkeypatch):
    """The S3 stand-in with a bucket 'tiles'; the credentials are then only in the
    environment file the tests write (the modules must read them from there)."""
    client = boto3.client('s3', endpoint_url=s3_store, region_name='us-east-1',
                          aws_access_key_id=S3_KEYS['AWS_ACCESS_KEY_ID'],
                          aws_secret_access_key=S3_KEYS['AWS_SECRET_ACCESS_KEY'])
    client.create_bucket(Bucket='tiles')
    for name in S3_KEYS:
        monkeypatch.delenv(name)
    return s3_store, client


def s3_config(tmp_path, endpoint):
    caches = {'osm_s3': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {
        'type': 's3', 'bucket_name': 'tiles', 'directory': 'osm', 'endpoint_url': endpoint,
        'region_name': 'us-east-1', 'tile_lock_dir': str(tmp_path / 'locks' / 'osm_s3')}}}
    return write_config(tmp_path / 'mapproxy.yaml', make_config(tmp_path / 'cache', caches=caches))


def listing(client):
    pages = client.get_paginator('list_objects_v2').paginate(Bucket='tiles')
    return [obj for page in pages for obj in page.get('Contents') or []]


def test_seed_into_s3_with_the_env_file_and_count_what_the_bucket_holds(tmp_path, s3):
    endpoint, client = s3
    config = s3_config(tmp_path, endpoint)
    env = env_file(tmp_path, S3_KEYS)
    before = time.time()
    result = seed(config, ['osm_s3'], [0, 1, 2, 3], env, tmp_path)
    assert not result['failed'], result['msg']
    assert result['changed'] is True
    # Not a tile of the layout under the prefix, and a tile under another prefix.
    client.put_object(Bucket='tiles', Key='osm/README.txt', Body=b'not a tile')
    client.put_object(Bucket='tiles', Key='other/0/0/0.png', Body=b'another cache')
    objects = listing(client)
    tiles = [obj for obj in objects if obj['Key'].startswith('osm/') and obj['Key'].endswith('.png')]
    assert len(tiles) == sum(PER_LEVEL.values())

    stats = info(config, env)
    assert not stats['failed'], stats['msg']
    osm = stats['caches']['osm_s3']
    assert osm['type'] == 's3'
    assert osm['directory_layout'] == 'tms'
    assert osm['tiles'] == len(tiles) == stats['total_tiles']
    assert osm['bytes'] == sum(obj['Size'] for obj in tiles) == stats['total_bytes']
    grid = osm['grids']['webmercator']
    assert grid['store'] == 's3://tiles at %s' % endpoint
    assert grid['key_prefix'] == 'osm/'
    assert grid['other_keys'] == 1
    assert dict((lv['level'], lv['tiles']) for lv in grid['levels']) == PER_LEVEL
    assert 'filesystem' not in grid and 'disk_bytes' not in osm
    oldest = datetime.datetime.fromisoformat(osm['oldest']).timestamp()
    assert before - 2 <= oldest <= time.time() + 2


def test_s3_listing_reads_page_after_page(tmp_path, s3):
    endpoint, client = s3
    config = s3_config(tmp_path, endpoint)
    # 1,001 tiles at level 12: two pages of the listing (1000 keys each).
    for index in range(1001):
        client.put_object(Bucket='tiles', Key='osm/12/%d/%d.png' % (index // 64, index % 64), Body=b'x' * 7)
    stats = info(config, env_file(tmp_path, S3_KEYS))
    assert not stats['failed'], stats['msg']
    assert stats['caches']['osm_s3']['grids']['webmercator']['levels'] == [dict(
        level=12, tiles=1001, bytes=1001 * 7, oldest=stats['caches']['osm_s3']['oldest'],
        newest=stats['caches']['osm_s3']['newest'])]


def test_s3_without_credentials_names_the_cache_and_the_store(tmp_path, s3, monkeypatch):
    endpoint, _client = s3
    # botocore finds no credentials at all (no file, no variables, no instance metadata).
    monkeypatch.setenv('AWS_CONFIG_FILE', str(tmp_path / 'none'))
    monkeypatch.setenv('AWS_SHARED_CREDENTIALS_FILE', str(tmp_path / 'none'))
    monkeypatch.setenv('AWS_EC2_METADATA_DISABLED', 'true')
    result = info(s3_config(tmp_path, endpoint), '')
    assert result['failed']
    assert 'names a store that cannot be used' in result['msg']
    assert "cache 'osm_s3' (store s3://tiles at %s)" % endpoint in result['msg']


@pytest.fixture
def redis_config(tmp_path, redis_store):
    port, password = redis_store
    caches = {'hot': {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': {
        'type': 'redis', 'host': '127.0.0.1', 'port': port, 'db': 2, 'prefix': 'hot', 'default_ttl': 600,
        'password': '${P2D2_TEST_REDIS_PASSWORD}'}}}
    config = write_config(tmp_path / 'mapproxy.yaml', make_config(tmp_path / 'cache', caches=caches))
    client = redis.Redis(host='127.0.0.1', port=port, db=2, password=password)
    yield config, client, env_file(tmp_path, {'P2D2_TEST_REDIS_PASSWORD': password})
    client.close()


def test_seed_into_redis_with_the_env_file_and_count_what_the_db_holds(tmp_path, redis_config):
    config, client, env = redis_config
    before = time.time()
    result = seed(config, ['hot'], [0, 1, 2], env, tmp_path)
    assert not result['failed'], result['msg']
    # A key under the prefix that is no tile, and one of another prefix that starts alike.
    client.set('hot-readme', b'not a tile')
    client.set('hotter-0-0-0', b'another cache')
    tiles = sorted(key for key in client.keys('hot-*') if key != b'hot-readme')
    assert len(tiles) == 1 + 4 + 16

    stats = info(config, env)
    assert not stats['failed'], stats['msg']
    hot = stats['caches']['hot']
    assert hot['type'] == 'redis'
    assert hot['tiles'] == len(tiles)
    assert hot['bytes'] == sum(client.strlen(key) for key in tiles)
    grid = hot['grids']['webmercator']
    assert grid['store'] == 'redis://127.0.0.1:%s/2' % client.connection_pool.connection_kwargs['port']
    assert grid['key_prefix'] == 'hot-'
    assert grid['other_keys'] == 1
    assert dict((lv['level'], lv['tiles']) for lv in grid['levels']) == {0: 1, 1: 4, 2: 16}
    # The write time comes from the TTL MapProxy set (default_ttl 600): just now, not 600 s ago.
    for moment in (hot['oldest'], hot['newest']):
        assert before - 2 <= datetime.datetime.fromisoformat(moment).timestamp() <= time.time() + 2


def test_redis_scan_counts_ten_thousand_tiles(tmp_path, redis_config):
    config, client, env = redis_config
    pipe = client.pipeline(transaction=False)
    for index in range(10000):
        pipe.set('hot-14-%d-%d' % (index // 100, index % 100), b'tile', px=600000)
    pipe.execute()
    stats = info(config, env)
    assert not stats['failed'], stats['msg']
    assert stats['caches']['hot']['tiles'] == 10000
    assert stats['caches']['hot']['bytes'] == 40000


def test_redis_without_the_env_file_is_refused_by_name(tmp_path, redis_config):
    config, _client, _env = redis_config
    result = info(config, '')
    assert result['failed']
    assert 'names a store that cannot be used' in result['msg']
    assert "cache 'hot'" in result['msg'] and 'redis://127.0.0.1:' in result['msg']
