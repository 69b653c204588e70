# Copyright: p2d2 maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The settings of caches in a shared store (s3, redis) that the collection owns."""

from __future__ import annotations

import copy
import re

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: mapproxy_cache_stores
short_description: Keep the credentials of caches in a shared store out of mapproxy.yaml
version_added: 0.2.0
author: p2d2 maintainers (@p2d2)
description:
  - Takes the caches section of a MapProxy configuration and returns it with what the collection
    adds to caches of type C(s3) and C(redis), together with the environment the service, the
    timers and the checks need for them.
  - Every C(redis) cache named in O(redis_credentials) gets the C(password) C(${MAPPROXY_REDIS_PASSWORD_<CACHE>})
    (and its C(username)). MapProxy fills the placeholder from the environment, so the password is in
    the environment file only, never in C(mapproxy.yaml).
  - O(s3_credentials) becomes C(AWS_ACCESS_KEY_ID) and C(AWS_SECRET_ACCESS_KEY) (and C(AWS_SESSION_TOKEN)),
    which boto3 reads for every C(s3) cache without a C(profile_name). MapProxy's S3 cache has no
    credential options.
  - Every C(s3) cache without a C(tile_lock_dir) gets O(base_dir)C(/tile_locks/<cache>). Tile locks are
    files on each host, and MapProxy would otherwise put them below the cache's key prefix, relative to
    the configuration's folder.
  - O(limits) (C(mapproxy_store_limits)) are checked and resolved into what the stores' own tools need -
    an S3 lifecycle rule per C(s3) cache (its bucket, endpoint and key prefix) and the C(maxmemory) and
    C(maxmemory-policy) of each Redis server (its address, TLS files and the credentials of a cache on it).
positional: base_dir, s3_credentials, redis_credentials
options:
  _input:
    description: The caches, as in C(mapproxy_caches).
    type: dict
    required: true
  base_dir:
    description: The cache base directory (C(mapproxy_cache_base_dir)).
    type: path
    required: true
  s3_credentials:
    description: C({access_key_id, secret_access_key}), optionally C(session_token); empty for none.
    type: dict
    default: {}
  redis_credentials:
    description: Per C(redis) cache name, C({password}) and optionally C(username).
    type: dict
    default: {}
  limits:
    description:
      - Per C(s3) cache C({expire_days}), per C(redis) cache C({maxmemory}) and optionally C(maxmemory_policy)
        (default C(volatile-ttl)). Caches on one Redis server must agree.
    type: dict
    default: {}
  globals_conf:
    description: The C(globals) of the configuration (C(mapproxy_globals)), for C(cache.s3.*) defaults.
    type: dict
    default: {}
"""

EXAMPLES = r"""
__stores: "{{ mapproxy_caches | p2d2.mapproxy.mapproxy_cache_stores('/cache', {}, {'hot': {'password': 'x'}}) }}"
# __stores.caches.hot.cache.password == '${MAPPROXY_REDIS_PASSWORD_HOT}'
# __stores.environment == {'MAPPROXY_REDIS_PASSWORD_HOT': 'x'}
"""

RETURN = r"""
_value:
  description:
    - C(caches), the caches with the settings above, and C(environment), the variables they need.
    - C(s3_caches), one entry per C(s3) cache (C(cache), C(bucket), C(prefix), C(endpoint_url), C(region),
      C(profile), and its lifecycle rule C(rule_id) and C(expire_days), None without one), and
      C(redis_servers), one entry per Redis server with limits (C(caches), C(host), C(port), C(settings)
      (C(maxmemory) and C(maxmemory-policy) as Redis's C(CONFIG SET) names them), C(tls), C(ca_certs),
      C(client_cert_file), C(client_key_file), and C(credentials), the cache whose O(redis_credentials) log in
      (None without), so that no secret is in a loop item).
  type: dict
"""

NAME = "mapproxy_cache_stores"
# Redis's eviction policies (redis.conf); volatile-ttl is what MapProxy's documentation advises.
REDIS_POLICIES = ("volatile-ttl", "volatile-lru", "volatile-lfu", "volatile-random",
                  "allkeys-lru", "allkeys-lfu", "allkeys-random", "noeviction")
# A memory size as Redis's maxmemory takes it: bytes, or with k, kb, m, mb, g, gb.
_REDIS_SIZE = re.compile(r"^[0-9]+ *(k|kb|m|mb|g|gb)?$", re.IGNORECASE)


def redis_password_variable(cache_name):
    """The environment variable that carries the password of a redis cache."""
    return "MAPPROXY_REDIS_PASSWORD_" + re.sub(r"[^A-Z0-9]", "_", cache_name.upper())


def _secret(value, what):
    if not isinstance(value, str) or not value:
        raise AnsibleFilterError(f"{NAME}: {what} must be a non-empty string")
    if "\n" in value or "\r" in value or "\0" in value:
        raise AnsibleFilterError(f"{NAME}: {what} must be one line (the environment file holds one variable a line)")
    return value


def _store_limits(result, limits, redis_credentials, globals_):
    """Resolve every s3 cache's store, and check mapproxy_store_limits against the caches."""
    if not isinstance(limits, dict):
        raise AnsibleFilterError(f"{NAME}: mapproxy_store_limits must map cache names to their store's limits")
    s3_globals = ((globals_ or {}).get("cache") or {}).get("s3") or {}
    # Every s3 cache's bucket, endpoint and key prefix, as MapProxy's loader takes them (the
    # cache's own keys, else the globals' cache.s3.*; the prefix is the directory, else
    # <cache>/<grid>), for creating buckets and lifecycle rules.
    s3_caches = {}
    for name in sorted(result):
        block = (result[name] or {}).get("cache") or {}
        if block.get("type") != "s3":
            continue
        directory = str(block.get("directory") or name).strip("/")
        s3_caches[name] = {
            "cache": name, "rule_id": "p2d2-mapproxy-" + name, "expire_days": None,
            "bucket": block.get("bucket_name") or s3_globals.get("bucket_name"),
            "prefix": directory + "/" if directory else "",
            "endpoint_url": block.get("endpoint_url") or s3_globals.get("endpoint_url"),
            "region": block.get("region_name") or s3_globals.get("region_name"),
            "profile": block.get("profile_name") or s3_globals.get("profile_name")}
    servers = {}
    for name, limit in sorted(limits.items()):
        what = f"mapproxy_store_limits.{name}"
        if name not in result:
            raise AnsibleFilterError(f"{NAME}: mapproxy_store_limits names '{name}', which is not in mapproxy_caches")
        block = (result[name] or {}).get("cache") or {}
        kind = block.get("type", "file")
        if kind not in ("s3", "redis"):
            raise AnsibleFilterError(
                f"{NAME}: mapproxy_store_limits names '{name}', a cache of type {kind}: only caches in a store (s3, redis) "
                "have limits of their store; file caches have the size-limit jobs of mapproxy_seeding")
        keys = {"expire_days"} if kind == "s3" else {"maxmemory", "maxmemory_policy"}
        if not isinstance(limit, dict) or not limit or set(limit) - keys:
            raise AnsibleFilterError(f"{NAME}: {what} must be a mapping of {', '.join(sorted(keys))} (a {kind} cache)")
        if kind == "s3":
            days = limit.get("expire_days")
            if isinstance(days, bool) or not isinstance(days, int) or days < 1:
                raise AnsibleFilterError(f"{NAME}: {what}.expire_days must be a whole number of days, 1 or more (is {days!r})")
            s3_caches[name]["expire_days"] = days
            continue
        size = str(limit.get("maxmemory", ""))
        if not _REDIS_SIZE.match(size) or isinstance(limit.get("maxmemory"), bool):
            raise AnsibleFilterError(
                f"{NAME}: {what}.maxmemory must be a size as Redis takes it, such as 512mb or 2gb (is {limit.get('maxmemory')!r})")
        policy = limit.get("maxmemory_policy", "volatile-ttl")
        if policy not in REDIS_POLICIES:
            raise AnsibleFilterError(f"{NAME}: {what}.maxmemory_policy must be one of {', '.join(REDIS_POLICIES)} (is {policy!r})")
        host, port = str(block.get("host", "127.0.0.1")), int(block.get("port", 6379))
        tls = bool(block.get("ssl_certfile") and block.get("ssl_keyfile"))
        cred = redis_credentials.get(name)
        server = servers.get((host, port))
        settings = [{"name": "maxmemory", "value": size.replace(" ", "").lower()}, {"name": "maxmemory-policy", "value": policy}]
        if server is not None:
            if server["settings"] != settings:
                raise AnsibleFilterError(
                    f"{NAME}: mapproxy_store_limits gives {', '.join(server['caches'])} and {name}, caches on the Redis server "
                    f"{host}:{port}, different limits; maxmemory and its policy are the server's: give them the same values")
            server["caches"].append(name)
            server["credentials"] = server["credentials"] or (name if cred else None)
            continue
        servers[(host, port)] = dict(
            caches=[name], host=host, port=port, tls=tls, settings=settings,
            ca_certs=block.get("ssl_ca_certs") if tls else None,
            client_cert_file=block.get("ssl_certfile") if tls else None,
            client_key_file=block.get("ssl_keyfile") if tls else None,
            credentials=name if cred else None)
    return [s3_caches[name] for name in sorted(s3_caches)], [servers[key] for key in sorted(servers)]


def mapproxy_cache_stores(caches, base_dir, s3_credentials=None, redis_credentials=None, limits=None, globals_conf=None):
    if not isinstance(caches, dict):
        raise AnsibleFilterError(f"{NAME}: the input must be the caches mapping (mapproxy_caches)")
    s3_credentials = s3_credentials or {}
    redis_credentials = redis_credentials or {}
    if not isinstance(s3_credentials, dict):
        raise AnsibleFilterError(f"{NAME}: mapproxy_s3_credentials must be a mapping {{access_key_id, secret_access_key}}")
    if not isinstance(redis_credentials, dict):
        raise AnsibleFilterError(f"{NAME}: mapproxy_redis_credentials must map redis cache names to {{password}}")
    result = copy.deepcopy(caches)
    environment = {}

    def block(name):
        cache = result[name]
        value = cache.get("cache") if isinstance(cache, dict) else None
        return value if isinstance(value, dict) else {}

    if s3_credentials:
        unknown = sorted(set(s3_credentials) - {"access_key_id", "secret_access_key", "session_token"})
        if unknown:
            raise AnsibleFilterError(
                f"{NAME}: mapproxy_s3_credentials takes access_key_id, secret_access_key and session_token, not {', '.join(unknown)}")
        environment["AWS_ACCESS_KEY_ID"] = _secret(s3_credentials.get("access_key_id"), "mapproxy_s3_credentials.access_key_id")
        environment["AWS_SECRET_ACCESS_KEY"] = _secret(
            s3_credentials.get("secret_access_key"), "mapproxy_s3_credentials.secret_access_key")
        if s3_credentials.get("session_token") is not None:
            environment["AWS_SESSION_TOKEN"] = _secret(s3_credentials["session_token"], "mapproxy_s3_credentials.session_token")

    for name, cred in redis_credentials.items():
        if name not in result:
            raise AnsibleFilterError(
                f"{NAME}: mapproxy_redis_credentials names '{name}', which is not in mapproxy_caches")
        cache_block = block(name)
        if cache_block.get("type") != "redis":
            raise AnsibleFilterError(
                f"{NAME}: mapproxy_redis_credentials names '{name}', a cache of type {cache_block.get('type', 'file')}, not redis")
        if "password" in cache_block:
            raise AnsibleFilterError(
                f"{NAME}: cache '{name}' sets password in mapproxy_caches and in mapproxy_redis_credentials: "
                "keep it in mapproxy_redis_credentials only (it stays out of mapproxy.yaml there)")
        if not isinstance(cred, dict) or set(cred) - {"username", "password"}:
            raise AnsibleFilterError(f"{NAME}: mapproxy_redis_credentials.{name} must be {{password}} or {{username, password}}")
        variable = redis_password_variable(name)
        environment[variable] = _secret(cred.get("password"), f"mapproxy_redis_credentials.{name}.password")
        cache_block["password"] = "${%s}" % variable
        if cred.get("username") is not None:
            cache_block["username"] = _secret(cred["username"], f"mapproxy_redis_credentials.{name}.username")

    for name in result:
        cache_block = block(name)
        if cache_block.get("type") == "s3" and not cache_block.get("tile_lock_dir"):
            cache_block["tile_lock_dir"] = f"{str(base_dir).rstrip('/')}/tile_locks/{name}"
    s3_caches, redis_servers = _store_limits(result, limits or {}, redis_credentials, globals_conf)
    return {"caches": result, "environment": environment, "s3_caches": s3_caches, "redis_servers": redis_servers}


class FilterModule:
    def filters(self):
        return {NAME: mapproxy_cache_stores}
