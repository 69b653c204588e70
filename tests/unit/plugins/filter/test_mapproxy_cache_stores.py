# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared-store filter: credentials out of mapproxy.yaml, MapProxy reads them back."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.p2d2.mapproxy.plugins.filter.mapproxy_cache_stores import mapproxy_cache_stores
from mapproxy.util.yaml import load_yaml

CACHES = {
    "osm_s3": {"grids": ["webmercator"], "sources": ["osm"],
               "cache": {"type": "s3", "bucket_name": "tiles", "directory": "osm", "endpoint_url": "http://s3.lan:9000"}},
    "hot": {"grids": ["webmercator"], "sources": ["osm"], "cache": {"type": "redis", "host": "redis.lan", "db": 3}},
    "osm_cache": {"grids": ["webmercator"], "sources": ["osm"], "cache": {"type": "file", "directory": "/cache/osm"}},
}


def test_redis_password_is_a_placeholder_that_mapproxy_fills_from_the_environment(monkeypatch):
    password = 'a "quoted" $pass`word\\ with spaces'
    result = mapproxy_cache_stores(CACHES, "/cache", {}, {"hot": {"username": "tiles", "password": password}})
    block = result["caches"]["hot"]["cache"]
    assert block["password"] == "${MAPPROXY_REDIS_PASSWORD_HOT}"
    assert block["username"] == "tiles"
    assert result["environment"] == {"MAPPROXY_REDIS_PASSWORD_HOT": password}
    # MapProxy's own YAML loader substitutes the variable.
    monkeypatch.setenv("MAPPROXY_REDIS_PASSWORD_HOT", password)
    import yaml
    loaded = load_yaml(yaml.safe_dump({"caches": result["caches"]}))
    assert loaded["caches"]["hot"]["cache"]["password"] == password
    assert "password" not in CACHES["hot"]["cache"], "the input must not change"


def test_s3_credentials_become_the_environment_boto3_reads():
    result = mapproxy_cache_stores(CACHES, "/cache", {"access_key_id": "AK", "secret_access_key": "SK"}, {})
    assert result["environment"] == {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}
    assert "AK" not in repr(result["caches"])


def test_s3_caches_get_local_tile_lock_dirs_and_file_caches_stay_as_they_are():
    result = mapproxy_cache_stores(CACHES, "/cache/", {}, {})
    assert result["caches"]["osm_s3"]["cache"]["tile_lock_dir"] == "/cache/tile_locks/osm_s3"
    assert result["caches"]["osm_cache"] == CACHES["osm_cache"]
    assert result["caches"]["hot"] == CACHES["hot"]
    assert result["environment"] == {}
    own = {"osm_s3": {"cache": dict(CACHES["osm_s3"]["cache"], tile_lock_dir="/var/lock/osm")}}
    assert mapproxy_cache_stores(own, "/cache")["caches"]["osm_s3"]["cache"]["tile_lock_dir"] == "/var/lock/osm"


@pytest.mark.parametrize("s3, redis, message", [
    ({}, {"absent": {"password": "x"}}, "mapproxy_redis_credentials names 'absent', which is not in mapproxy_caches"),
    ({}, {"osm_s3": {"password": "x"}}, "names 'osm_s3', a cache of type s3, not redis"),
    ({}, {"hot": {"pass": "x"}}, "mapproxy_redis_credentials.hot must be {password} or {username, password}"),
    ({}, {"hot": {"password": ""}}, "mapproxy_redis_credentials.hot.password must be a non-empty string"),
    ({}, {"hot": {"password": "two\nlines"}}, "mapproxy_redis_credentials.hot.password must be one line"),
    ({"access_key_id": "AK"}, {}, "mapproxy_s3_credentials.secret_access_key must be a non-empty string"),
    ({"access_key": "AK", "secret_access_key": "SK"}, {}, "takes access_key_id, secret_access_key and session_token, not access_key"),
    ("AK:SK", {}, "mapproxy_s3_credentials must be a mapping"),
])
def test_bad_credentials_name_the_variable(s3, redis, message):
    with pytest.raises(AnsibleFilterError) as err:
        mapproxy_cache_stores(CACHES, "/cache", s3, redis)
    assert message in str(err.value)


def test_a_password_in_the_cache_and_in_the_credentials_is_refused():
    caches = {"hot": {"cache": {"type": "redis", "password": "x"}}}
    with pytest.raises(AnsibleFilterError, match="keep it in mapproxy_redis_credentials only"):
        mapproxy_cache_stores(caches, "/cache", {}, {"hot": {"password": "y"}})


def test_every_s3_cache_is_resolved_as_mapproxy_loads_it():
    caches = dict(CACHES, plain={"grids": ["webmercator"], "sources": ["osm"], "cache": {"type": "s3"}})
    globals_conf = {"cache": {"s3": {"bucket_name": "shared", "region_name": "eu-central-1"}}}
    result = mapproxy_cache_stores(caches, "/cache", globals_conf=globals_conf)
    assert result["s3_caches"] == [
        {"cache": "osm_s3", "rule_id": "p2d2-mapproxy-osm_s3", "expire_days": None, "bucket": "tiles", "prefix": "osm/",
         "endpoint_url": "http://s3.lan:9000", "region": "eu-central-1", "profile": None},
        # Without a directory MapProxy writes below <cache>/<grid>.
        {"cache": "plain", "rule_id": "p2d2-mapproxy-plain", "expire_days": None, "bucket": "shared", "prefix": "plain/",
         "endpoint_url": None, "region": "eu-central-1", "profile": None},
    ]
    assert result["redis_servers"] == []


def test_store_limits_become_a_lifecycle_rule_and_the_redis_servers_settings():
    caches = dict(CACHES, warm={"grids": ["webmercator"], "sources": ["osm"],
                                "cache": {"type": "redis", "host": "redis.lan", "db": 4}})
    result = mapproxy_cache_stores(caches, "/cache", {}, {"warm": {"password": "secret"}},
                                   limits={"osm_s3": {"expire_days": 30}, "hot": {"maxmemory": "512MB"},
                                           "warm": {"maxmemory": "512mb", "maxmemory_policy": "volatile-ttl"}})
    assert [(c["cache"], c["expire_days"]) for c in result["s3_caches"]] == [("osm_s3", 30)]
    [server] = result["redis_servers"]
    assert (server["host"], server["port"], server["caches"], server["credentials"]) == ("redis.lan", 6379, ["hot", "warm"], "warm")
    assert server["settings"] == [{"name": "maxmemory", "value": "512mb"}, {"name": "maxmemory-policy", "value": "volatile-ttl"}]
    assert server["tls"] is False
    assert "secret" not in repr(result["redis_servers"])


@pytest.mark.parametrize("limits, message", [
    ({"absent": {"expire_days": 3}}, "mapproxy_store_limits names 'absent', which is not in mapproxy_caches"),
    ({"osm_cache": {"expire_days": 3}}, "a cache of type file: only caches in a store (s3, redis)"),
    ({"osm_s3": {"maxmemory": "1gb"}}, "mapproxy_store_limits.osm_s3 must be a mapping of expire_days (a s3 cache)"),
    ({"osm_s3": {"expire_days": "30d"}}, "mapproxy_store_limits.osm_s3.expire_days must be a whole number of days"),
    ({"osm_s3": {"expire_days": 0}}, "mapproxy_store_limits.osm_s3.expire_days must be a whole number of days"),
    ({"hot": {"expire_days": 3}}, "mapproxy_store_limits.hot must be a mapping of maxmemory, maxmemory_policy"),
    ({"hot": {"maxmemory": "1 GiB"}}, "mapproxy_store_limits.hot.maxmemory must be a size as Redis takes it"),
    ({"hot": {"maxmemory": "1gb", "maxmemory_policy": "lru"}}, "mapproxy_store_limits.hot.maxmemory_policy must be one of"),
    ("30d", "mapproxy_store_limits must map cache names"),
])
def test_bad_store_limits_name_the_variable(limits, message):
    with pytest.raises(AnsibleFilterError) as err:
        mapproxy_cache_stores(CACHES, "/cache", limits=limits)
    assert message in str(err.value)


def test_caches_on_one_redis_server_must_agree_on_its_limits():
    caches = dict(CACHES, warm={"cache": {"type": "redis", "host": "redis.lan", "db": 4}})
    with pytest.raises(AnsibleFilterError, match="gives hot and warm, caches on the Redis server redis.lan:6379, different limits"):
        mapproxy_cache_stores(caches, "/cache", limits={"hot": {"maxmemory": "1gb"}, "warm": {"maxmemory": "2gb"}})
