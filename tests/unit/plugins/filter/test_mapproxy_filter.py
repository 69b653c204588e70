# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The credentials filter, checked against MapProxy's own parser of URLs with credentials."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.p2d2.mapproxy.plugins.filter.mapproxy import mapproxy_source_credentials
from mapproxy.client import http  # the parser MapProxy uses for credentials in URLs

SOURCES = {
    "osm_tiles": {"type": "tile", "url": "http://osm-tiler.lan:8080/tiles/%(tms_path)s.png"},
    "geoserver_wms": {"type": "wms", "req": {"url": "https://geoserver.lan/geoserver/wms", "layers": "a,b"}},
}


@pytest.mark.parametrize("password", ["plain", "s3cret:with@odd#chars", "p%40ss", "a;b$c!d&e"])
def test_mapproxy_reads_back_the_credentials(password):
    result = mapproxy_source_credentials(SOURCES, {"geoserver_wms": {"username": "mapper", "password": password},
                                                   "osm_tiles": {"username": "tiler", "password": password}})
    url, auth = http.auth_data_from_url(result["geoserver_wms"]["req"]["url"])
    assert url == "https://geoserver.lan/geoserver/wms"
    assert auth == ("mapper", password)
    url, auth = http.auth_data_from_url(result["osm_tiles"]["url"])
    assert url == "http://osm-tiler.lan:8080/tiles/%(tms_path)s.png"
    assert auth == ("tiler", password)
    assert "@" not in SOURCES["geoserver_wms"]["req"]["url"], "the input must not change"


def test_without_credentials_the_sources_stay_as_they_are():
    assert mapproxy_source_credentials(SOURCES, {}) is SOURCES


@pytest.mark.parametrize("cred, message", [
    ({"no_such_source": {"username": "u", "password": "p"}}, "'no_such_source' is not a source; known sources: geoserver_wms, osm_tiles"),
    ({"geoserver_wms": {"username": "u:x", "password": "p"}}, "username for 'geoserver_wms'"),
    ({"geoserver_wms": {"username": "", "password": "p"}}, "needs 'username' and 'password'"),
    ({"geoserver_wms": {"username": "u", "password": "a/b"}}, "password for 'geoserver_wms' must not contain '/'"),
    ({"geoserver_wms": {"username": "u"}}, "needs 'username' and 'password'"),
])
def test_bad_credentials_fail_naming_the_source(cred, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("(", r"\(")):
        mapproxy_source_credentials(SOURCES, cred)


def test_password_is_not_in_the_error():
    with pytest.raises(AnsibleFilterError) as err:
        mapproxy_source_credentials(SOURCES, {"geoserver_wms": {"username": "u", "password": "top/secret"}})
    assert "top/secret" not in str(err.value)
