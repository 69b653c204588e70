#!/usr/bin/env python3
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Requests paths one after another, each on a new connection, as the uri module does.

    fetch.py BASE_URL PATH...

One task in place of a loop of uri tasks (each of which costs the controller a module run
on a host): prints one line per path, "STATUS CONTENT-TYPE PATH" ("000 - PATH" when no
answer came), and exits 0; the play checks the lines."""

import http.client
import sys
from urllib.parse import urlsplit


def main():
    parts = urlsplit(sys.argv[1])
    for path in sys.argv[2:]:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
        try:
            conn.request('GET', path)
            resp = conn.getresponse()
            resp.read()
            print('%03d %s %s' % (resp.status, resp.getheader('Content-Type', '-'), path))
        except (OSError, http.client.HTTPException):
            print('000 - %s' % path)
        finally:
            conn.close()


if __name__ == '__main__':
    main()
