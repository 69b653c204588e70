#!/usr/bin/env python3
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Requests paths, each on a new connection, as the uri module does.

    fetch.py [--parallel] BASE_URL PATH...

One task in place of a loop of uri tasks (each of which costs the controller a module run
on a host): one after another, or with --parallel all at once (one thread per path,
started together, as map clients ask for the tiles of a view). Prints one line per path,
in the order given, "STATUS CONTENT-TYPE PATH" ("000 - PATH" when no answer came), and
exits 0; the play checks the lines."""

import http.client
import sys
import threading
from urllib.parse import urlsplit


def fetch(parts, path):
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
    try:
        conn.request('GET', path)
        resp = conn.getresponse()
        resp.read()
        return '%03d %s %s' % (resp.status, resp.getheader('Content-Type', '-'), path)
    except (OSError, http.client.HTTPException):
        return '000 - %s' % path
    finally:
        conn.close()


def main():
    args = sys.argv[1:]
    parallel = args[:1] == ['--parallel']
    if parallel:
        args = args[1:]
    parts, paths = urlsplit(args[0]), args[1:]
    lines = [None] * len(paths)
    if parallel:
        start = threading.Barrier(len(paths))

        def run(i):
            start.wait()
            lines[i] = fetch(parts, paths[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(paths))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        lines = [fetch(parts, path) for path in paths]
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
