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
"""

EXAMPLES = r"""
__stores: "{{ mapproxy_caches | p2d2.mapproxy.mapproxy_cache_stores('/cache', {}, {'hot': {'password': 'x'}}) }}"
# __stores.caches.hot.cache.password == '${MAPPROXY_REDIS_PASSWORD_HOT}'
# __stores.environment == {'MAPPROXY_REDIS_PASSWORD_HOT': 'x'}
"""

RETURN = r"""
_value:
  description: C(caches), the caches with the settings above, and C(environment), the variables they need.
  type: dict
"""

NAME = "mapproxy_cache_stores"


def redis_password_variable(cache_name):
    """The environment variable that carries the password of a redis cache."""
    return "MAPPROXY_REDIS_PASSWORD_" + re.sub(r"[^A-Z0-9]", "_", cache_name.upper())


def _secret(value, what):
    if not isinstance(value, str) or not value:
        raise AnsibleFilterError(f"{NAME}: {what} must be a non-empty string")
    if "\n" in value or "\r" in value or "\0" in value:
        raise AnsibleFilterError(f"{NAME}: {what} must be one line (the environment file holds one variable a line)")
    return value


def mapproxy_cache_stores(caches, base_dir, s3_credentials=None, redis_credentials=None):
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
    return {"caches": result, "environment": environment}


class FilterModule:
    def filters(self):
        return {NAME: mapproxy_cache_stores}
