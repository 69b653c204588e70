# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""mapproxy_cache_clean on caches in a shared store, against moto's S3 server and Debian's
redis-server (conftest.py starts them), with the credentials of an environment file only:
what goes and what stays is read in the store itself."""

from __future__ import annotations

import math
import time

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import VENV, needs_mapproxy, run_module
from ansible_collections.p2d2.mapproxy.tests.unit.plugins.modules.test_mapproxy_store_caches import (
    S3_KEYS,
    env_file,
    listing,
    s3_config,
)
from ansible_collections.p2d2.mapproxy.plugins.modules import mapproxy_cache_clean

# The fixtures s3 and redis_config, shared with the seeding and statistics tests.
from ansible_collections.p2d2.mapproxy.tests.unit.plugins.modules.test_mapproxy_store_caches import (  # noqa: F401 pylint: disable=unused-import
    redis_config,
    s3,
)

pytestmark = needs_mapproxy


def clean(config, env, check_mode=False, **options):
    args = dict(config=config, caches=options.pop('caches', None) or ['osm_s3'], venv=VENV, store_env_file=env,
                lock_dir=None, use_cache_lock=False)
    args.update(options)
    return run_module(mapproxy_cache_clean, args, check_mode=check_mode)


def put_tiles(client, level, count, body=b'x' * 5):
    for index in range(count):
        client.put_object(Bucket='tiles', Key='osm/%d/%d/%d.png' % (level, index // 100, index % 100), Body=body)


def test_s3_remove_all_deletes_every_tile_page_by_page_and_nothing_else(tmp_path, s3):
    endpoint, client = s3
    config = s3_config(tmp_path, endpoint)
    env = env_file(tmp_path, S3_KEYS)
    put_tiles(client, 12, 1001)  # two pages of the listing and of DeleteObjects
    put_tiles(client, 3, 3)
    client.put_object(Bucket='tiles', Key='osm/README.txt', Body=b'not a tile')
    client.put_object(Bucket='tiles', Key='other/0/0/0.png', Body=b'another cache')

    dry = clean(config, env, check_mode=True, remove_all=True)
    assert not dry['failed'], dry['msg']
    assert dry['tiles_removed'] == 1004 and len(listing(client)) == 1006

    result = clean(config, env, remove_all=True, levels='12')
    assert not result['failed'], result['msg']
    assert result['changed'] is True
    assert result['store_caches'] == ['osm_s3']
    assert (result['tiles_removed'], result['bytes_removed']) == (1001, 5005)
    grid = result['caches']['osm_s3']['grids']['webmercator']
    assert (grid['store'], grid['key_prefix']) == ('s3://tiles at %s' % endpoint, 'osm/')
    assert grid['levels'] == [dict(level=12, tiles=1001, bytes=5005)]
    assert len(result['paths']) == 100 and result['paths_truncated']
    assert result['paths'][0].startswith('s3://tiles/osm/12/')
    assert sorted(obj['Key'] for obj in listing(client)) == [
        'osm/3/0/0.png', 'osm/3/0/1.png', 'osm/3/0/2.png', 'osm/README.txt', 'other/0/0/0.png']

    again = clean(config, env, remove_all=True)
    assert again['tiles_removed'] == 3
    assert sorted(obj['Key'] for obj in listing(client)) == ['osm/README.txt', 'other/0/0/0.png']
    assert clean(config, env, remove_all=True)['changed'] is False


def test_s3_max_age_compares_last_modified(tmp_path, s3):
    endpoint, client = s3
    config = s3_config(tmp_path, endpoint)
    env = env_file(tmp_path, S3_KEYS)
    put_tiles(client, 5, 4)
    time.sleep(1.2)
    mark = time.time()
    # The module's cut-off is the mark plus the seconds it takes to start (on a busy
    # machine, several); LastModified has whole seconds.
    time.sleep(5)
    put_tiles(client, 6, 2)
    # Older than the mark: the level 5 tiles.
    result = clean(config, env, max_age='%ds' % math.ceil(time.time() - mark))
    assert not result['failed'], result['msg']
    assert result['tiles_removed'] == 4
    assert sorted(obj['Key'] for obj in listing(client)) == ['osm/6/0/0.png', 'osm/6/0/1.png']


def test_bbox_is_refused_on_a_store_cache_before_anything_goes(tmp_path, s3):
    endpoint, client = s3
    put_tiles(client, 4, 2)
    result = clean(s3_config(tmp_path, endpoint), env_file(tmp_path, S3_KEYS), remove_all=True,
                   bbox=[6.0, 50.0, 7.0, 51.0])
    assert result['failed']
    assert 'Option bbox works on file caches only; osm_s3 is in a store (type s3)' in result['msg']
    assert len(listing(client)) == 2


def test_redis_max_age_reads_the_write_time_from_the_ttl(redis_config):
    config, client, env = redis_config
    pipe = client.pipeline(transaction=False)
    # default_ttl is 600: a TTL of 600 s left means written now, 300 s left written 300 s ago.
    for index in range(10000):
        pipe.set('hot-14-%d-%d' % (index // 100, index % 100), b'tile', px=600000 if index % 2 else 300000)
    pipe.set('hot-readme', b'not a tile')
    pipe.set('hotter-14-0-0', b'another cache', px=300000)
    pipe.execute()

    result = clean(config, env, caches=['hot'], max_age='200s')
    assert not result['failed'], result['msg']
    assert (result['tiles_removed'], result['bytes_removed']) == (5000, 20000)
    assert result['caches']['hot']['grids']['webmercator']['key_prefix'] == 'hot-'
    assert client.dbsize() == 5000 + 2
    assert all(int(key.split(b'-')[3]) % 2 for key in client.keys('hot-14-*'))

    result = clean(config, env, caches=['hot'], remove_all=True)
    assert result['tiles_removed'] == 5000
    assert sorted(client.keys('*')) == [b'hot-readme', b'hotter-14-0-0']


def test_redis_tiles_without_ttl_have_no_age_and_stay(redis_config):
    config, client, env = redis_config
    client.set('hot-3-1-1', b'tile')  # no TTL: default_ttl 0, or written by hand
    result = clean(config, env, caches=['hot'], max_age='1s')
    assert not result['failed'], result['msg']
    assert result['tiles_removed'] == 0
    assert result['caches']['hot']['grids']['webmercator']['unknown_age'] == 1
    assert client.exists('hot-3-1-1')
