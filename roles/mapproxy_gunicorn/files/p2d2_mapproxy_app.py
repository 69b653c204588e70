# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The WSGI application Gunicorn serves: MapProxy's own, and one answer to nginx.

Installed by the role mapproxy_gunicorn beside mapproxy_probe.py; gunicorn.conf.py names
``p2d2_mapproxy_app:make_app(CONFIG)``. MapProxy answers every request unchanged.

nginx's tile fast path (role mapproxy_nginx) sends a tile URL to MapProxy when the tile's
file is not on disk, with two request headers: ``X-P2D2-Tile-Path``, the file it looked
for, and ``X-P2D2-Generation``, the configuration generation under which it would keep the
answer (``mapproxy_probe.config_generation()``, which the role mapproxy_nginx reads from
MapProxy's loader and points a link at). When MapProxy answers such a
request with a ``200`` image that clients may cache, the file is still not there after
MapProxy answered (MapProxy did not store the tile: it lies outside its source's coverage,
or the source is only seeded), and this application serves that same generation, the answer
carries ``X-P2D2-Unstored: 1``. nginx keeps only answers so marked, for the next request of
that URL, under a key with the generation, and hides the header from the client. Everything
else (a stored tile, an error, ``Cache-Control: no-cache``, another configuration) is not
marked, and nginx does not keep it. The standard library and MapProxy only.
"""

from __future__ import annotations

import os

import mapproxy_probe

TILE_PATH = 'HTTP_X_P2D2_TILE_PATH'
GENERATION = 'HTTP_X_P2D2_GENERATION'
MARK = ('X-P2D2-Unstored', '1')


def make_app(config_file, store_timeouts=None):
    """MapProxy's application for config_file, wrapped by ``UnstoredMark``. With
    store_timeouts (``{connect, read, attempts}``: seconds, and attempts in all), the
    clients of its s3 and redis caches get them in place of the client libraries'
    defaults (botocore: 60 s and retries; redis-py: no timeout)."""
    from mapproxy.wsgiapp import make_wsgi_app

    if store_timeouts:
        mapproxy_probe.bounded_stores(store_timeouts)
        mapproxy_probe.bounded_redis_caches(store_timeouts)

    app = make_wsgi_app(config_file)
    return UnstoredMark(app, mapproxy_probe.config_generation(getattr(app, 'config_files', None) or {}))


def unstored(status, headers, tile_path):
    """True when an answer with status and headers is a tile that MapProxy did not store at tile_path."""
    if not status.startswith('200 '):
        return False
    values = {name.lower(): value for name, value in headers}
    if not values.get('content-type', '').startswith('image/'):
        return False
    if any(word in values.get('cache-control', '').lower() for word in ('no-cache', 'no-store', 'private')):
        return False
    return not os.path.lexists(tile_path)


class UnstoredMark:
    """Marks the answers nginx may keep (see the module's docstring)."""

    def __init__(self, app, generation):
        self.app = app
        self.generation = generation
        # MapProxy's reloader reads it, as on MapProxy's own application.
        self.config_files = getattr(app, 'config_files', None)

    def __call__(self, environ, start_response):
        tile_path = environ.get(TILE_PATH, '')
        if (not tile_path or not os.path.isabs(tile_path) or not self.generation
                or environ.get(GENERATION) != self.generation):
            return self.app(environ, start_response)

        def mark(status, headers, exc_info=None):
            if unstored(status, headers, tile_path):
                headers = list(headers) + [MARK]
            return start_response(status, headers, exc_info)

        return self.app(environ, mark)
