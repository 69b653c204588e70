# Copyright: p2d2 maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for building MapProxy configurations."""

from __future__ import annotations

import copy
import re
from urllib.parse import urlsplit, urlunsplit

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: mapproxy_source_credentials
short_description: Put basic-auth credentials into the URLs of MapProxy sources
description:
  - Returns a copy of a MapProxy C(sources) mapping in which the URL of every source named in
    O(credentials) carries C(user:password@), the form MapProxy turns into HTTP basic authentication.
  - Works for C(tile) sources (C(url)) and C(wms), C(arcgis) and C(mapserver)-style sources (C(req.url)).
  - MapProxy takes the user name and password from the URL as they are, without decoding them, so they
    are written unencoded. The password may contain C(:) and C(@); neither may contain C(/) or white
    space, and the user name no C(:) and no C(@).
options:
  _input:
    description: The C(sources) section of a MapProxy configuration.
    type: dict
    required: true
  credentials:
    description: Source name to a dict with C(username) and C(password).
    type: dict
    required: true
author: p2d2 maintainers
"""

EXAMPLES = r"""
sources: "{{ mapproxy_sources | p2d2.mapproxy.mapproxy_source_credentials({'geoserver_wms': {'username': 'u', 'password': 'p'}}) }}"
"""

RETURN = r"""
_value:
  description: The sources with credentials in their URLs.
  type: dict
"""


def _with_userinfo(url, username, password, name):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AnsibleFilterError(f"mapproxy_source_credentials: the URL of source '{name}' is not an http(s) URL with a host")
    # MapProxy splits user and password at the first ':' and the host at the last '@'
    # before the path, and decodes neither: these are the characters it cannot carry.
    if re.search(r"[:@/\s]", str(username)) or not str(username):
        raise AnsibleFilterError(
            f"mapproxy_source_credentials: the username for '{name}' must be non-empty, without ':', '@', '/' or spaces")
    if re.search(r"[/\s]", str(password)):
        raise AnsibleFilterError(
            f"mapproxy_source_credentials: the password for '{name}' must not contain '/' or spaces "
            "(MapProxy reads credentials from the URL without decoding them)")
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{username}:{password}@{host}", parts.path, parts.query, parts.fragment))


def mapproxy_source_credentials(sources, credentials):
    if not isinstance(sources, dict):
        raise AnsibleFilterError("mapproxy_source_credentials: the input must be the sources mapping")
    if not credentials:
        return sources
    if not isinstance(credentials, dict):
        raise AnsibleFilterError("mapproxy_source_credentials: credentials must map source names to {username, password}")
    result = copy.deepcopy(sources)
    for name, cred in credentials.items():
        if name not in result:
            raise AnsibleFilterError(
                f"mapproxy_source_credentials: '{name}' is not a source; known sources: {', '.join(sorted(result))}")
        if not isinstance(cred, dict) or not cred.get("username") or "password" not in cred:
            raise AnsibleFilterError(
                f"mapproxy_source_credentials: the entry for '{name}' needs 'username' and 'password'")
        source = result[name]
        if isinstance(source.get("req"), dict) and "url" in source["req"]:
            source["req"]["url"] = _with_userinfo(source["req"]["url"], cred["username"], cred["password"], name)
        elif "url" in source:
            source["url"] = _with_userinfo(source["url"], cred["username"], cred["password"], name)
        else:
            raise AnsibleFilterError(f"mapproxy_source_credentials: source '{name}' has no url or req.url")
    return result


class FilterModule:
    def filters(self):
        return {"mapproxy_source_credentials": mapproxy_source_credentials}
