# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""mapproxy_config_info on caches in a shared store: moto's S3 server and Debian's
redis-server stand in for the operator's store (conftest.py starts them)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import (
    VENV,
    make_config,
    needs_mapproxy,
    run_module,
    write_config,
)

from ansible_collections.p2d2.mapproxy.plugins.modules import mapproxy_config_info

pytestmark = needs_mapproxy

boto3 = pytest.importorskip('boto3')
redis = pytest.importorskip('redis')


def check(**args):
    args.setdefault('venv', VENV)
    return run_module(mapproxy_config_info, args)


def s3_cache(endpoint, bucket='tiles', directory='osm', **extra):
    block = dict(type='s3', bucket_name=bucket, directory=directory, endpoint_url=endpoint,
                 region_name='us-east-1', **extra)
    return {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': block}


def redis_cache(port, **extra):
    block = dict(type='redis', host='127.0.0.1', port=port, db=2, prefix='hot', **extra)
    return {'grids': ['webmercator'], 'sources': ['dbg'], 'cache': block}


def s3_client(endpoint):
    return boto3.client('s3', endpoint_url=endpoint, region_name='us-east-1')


def keys(endpoint, bucket):
    return [obj['Key'] for obj in s3_client(endpoint).list_objects_v2(Bucket=bucket).get('Contents', [])]


def test_s3_store_is_written_read_and_left_clean(tmp_path, s3_store):
    s3_client(s3_store).create_bucket(Bucket='tiles')
    conf = make_config(tmp_path / 'cache', caches={'osm_s3': s3_cache(s3_store)})
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', conf), check_stores=True)
    assert not result['failed'], result['msg']
    assert result['stores'] == {'osm_s3': 's3://tiles at %s' % s3_store}
    # The check object was written under the cache's prefix and deleted again.
    assert keys(s3_store, 'tiles') == []
    osm = result['caches']['osm_s3']
    assert osm['type'] == 's3'
    # Nothing of it is on this host's disk but its tile locks.
    assert osm['directory'] is None
    assert str(tmp_path / 'osm' / 'tile_locks') in result['write_dirs']


def test_missing_bucket_names_cache_store_and_cause(tmp_path, s3_store):
    conf = make_config(tmp_path / 'cache', caches={'osm_s3': s3_cache(s3_store, bucket='absent')})
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', conf), check_stores=True)
    assert result['failed']
    assert result['valid'] is False
    # The configuration itself is fine: the message says that the store is what fails.
    assert 'names a store that cannot be used' in result['msg']
    assert 'not a valid MapProxy configuration' not in result['msg']
    assert "cache 'osm_s3' (store s3://absent at %s)" % s3_store in result['msg']
    assert 'No such bucket: absent' in result['msg']


def test_without_check_stores_no_store_is_contacted(tmp_path, closed_port):
    """A backup, a timer or nginx's plan reads the configuration while the store is down."""
    endpoint = 'http://127.0.0.1:%d' % closed_port
    conf = make_config(tmp_path / 'cache', caches={
        'osm_s3': s3_cache(endpoint), 'hot': redis_cache(closed_port)})
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', conf))
    assert not result['failed'], result['msg']
    assert 'stores' not in result
    assert sorted(result['caches']) == ['hot', 'osm_s3']


def test_unreachable_s3_endpoint_is_refused(tmp_path, closed_port, monkeypatch):
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'k')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 's')
    endpoint = 'http://127.0.0.1:%d' % closed_port
    conf = make_config(tmp_path / 'cache', caches={'osm_s3': s3_cache(endpoint)})
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', conf), check_stores=True)
    assert result['failed']
    assert "cache 'osm_s3' (store s3://tiles at %s)" % endpoint in result['msg']
    assert 'Could not connect to the endpoint URL' in result['msg']


def test_missing_s3_credentials_are_refused(tmp_path, s3_store, monkeypatch):
    s3_client(s3_store).create_bucket(Bucket='tiles')
    for name in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'):
        monkeypatch.delenv(name)
    monkeypatch.setenv('AWS_SHARED_CREDENTIALS_FILE', str(tmp_path / 'none'))
    monkeypatch.setenv('AWS_CONFIG_FILE', str(tmp_path / 'none'))
    monkeypatch.setenv('AWS_EC2_METADATA_DISABLED', 'true')
    conf = make_config(tmp_path / 'cache', caches={'osm_s3': s3_cache(s3_store)})
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', conf), check_stores=True)
    assert result['failed']
    assert "cache 'osm_s3'" in result['msg']
    assert 'Unable to locate credentials' in result['msg']


def test_redis_store_with_password_from_the_environment(tmp_path, redis_store, monkeypatch):
    port, password = redis_store
    monkeypatch.setenv('MAPPROXY_REDIS_PASSWORD_HOT', password)
    conf = make_config(tmp_path / 'cache', caches={
        'hot': redis_cache(port, password='${MAPPROXY_REDIS_PASSWORD_HOT}')})
    path = write_config(tmp_path / 'mapproxy.yaml', conf)
    result = check(path=path, check_stores=True)
    assert not result['failed'], result['msg']
    assert result['stores'] == {'hot': 'redis://127.0.0.1:%d/2' % port}
    client = redis.Redis(port=port, password=password, db=2)
    assert client.keys('*') == []
    # The password is in no answer.
    assert password not in repr(result)
    # A wrong password is refused, naming the cache and the store.
    monkeypatch.setenv('MAPPROXY_REDIS_PASSWORD_HOT', 'wrong')
    result = check(path=path, check_stores=True)
    assert result['failed']
    assert "cache 'hot': the store redis://127.0.0.1:%d/2 cannot be written and read" % port in result['msg']
    assert 'invalid username-password pair' in result['msg']


def test_stopped_redis_is_refused(tmp_path, closed_port):
    conf = make_config(tmp_path / 'cache', caches={'hot': redis_cache(closed_port)})
    result = check(path=write_config(tmp_path / 'mapproxy.yaml', conf), check_stores=True)
    assert result['failed']
    assert "cache 'hot': the store redis://127.0.0.1:%d/2 cannot be written and read" % closed_port in result['msg']
    assert 'Connection refused' in result['msg']


def test_wrong_s3_key_is_refused_by_name(tmp_path, s3_store, monkeypatch):
    """moto accepts any key unless its IAM emulation is on: with it, only the key of an IAM
    user is good, and a wrong secret or key id is refused, naming the cache and the store."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    iam = boto3.client('iam', endpoint_url=s3_store, region_name='us-east-1')
    iam.create_user(UserName='tiles')
    iam.put_user_policy(UserName='tiles', PolicyName='s3', PolicyDocument=json.dumps({
        'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 's3:*', 'Resource': '*'}]}))
    key = iam.create_access_key(UserName='tiles')['AccessKey']
    s3_client(s3_store).create_bucket(Bucket='tiles')
    # From here on, every request must be signed with an IAM user's key.
    monkeypatch.setattr(settings, 'INITIAL_NO_AUTH_ACTION_COUNT', 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, 'request_count', 0)
    path = write_config(tmp_path / 'mapproxy.yaml',
                        make_config(tmp_path / 'cache', caches={'osm_s3': s3_cache(s3_store)}))

    monkeypatch.setenv('AWS_ACCESS_KEY_ID', key['AccessKeyId'])
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', key['SecretAccessKey'])
    good = check(path=path, check_stores=True)
    assert not good['failed'], good['msg']

    # MapProxy asks for the bucket first (HEAD, which carries no error code): a 403 either way.
    for key_id, secret in ((key['AccessKeyId'], 'not-the-secret'), ('AKIANOTAKEYOFMOTO000', key['SecretAccessKey'])):
        monkeypatch.setenv('AWS_ACCESS_KEY_ID', key_id)
        monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', secret)
        result = check(path=path, check_stores=True)
        assert result['failed']
        assert ("cache 'osm_s3' (store s3://tiles at %s): S3ConnectionError: Access denied. Check your credentials"
                % s3_store) in result['msg']


def test_each_store_check_writes_an_object_of_its_own():
    # Several hosts that share a store check it at the same time (site.yml on a cluster):
    # one check's delete must never take the object another is about to read back.
    import os
    import re
    from ansible_collections.p2d2.mapproxy.plugins.module_utils import mapproxy_probe
    keys = {mapproxy_probe._store_check_key() for dummy in range(50)}
    assert len(keys) == 50
    prefix = 'p2d2-store-check-%s-' % re.sub(r'[^A-Za-z0-9.-]', '_', os.uname()[1])
    assert all(key.startswith(prefix) for key in keys), sorted(keys)[:3]
