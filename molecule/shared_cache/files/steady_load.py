#!/usr/bin/env python3
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Steady requests through the balancer while the hosts behind it change, bounded in time.

    steady_load.py BASE_URL STOP_FILE MAX_SECONDS PATH...

Four clients with kept-alive connections ask for the paths in turn, each at most 25 times
a second (steady, not a flood: the hosts' change runs on the same two cores), until
STOP_FILE exists or MAX_SECONDS have passed, then print one JSON line: the requests, the
failed ones (no answer, or a status other than 200) and the first few failures."""

import http.client
import json
import os
import sys
import threading
import time
from urllib.parse import urlsplit


def client(base, paths, stop_file, deadline, counts, lock, offset):
    parts = urlsplit(base)
    conn = None
    i = offset
    while time.time() < deadline and not os.path.exists(stop_file):
        path = paths[i % len(paths)]
        i += 1
        try:
            if conn is None:
                conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=20)
            conn.request('GET', path)
            resp = conn.getresponse()
            resp.read()
            failed = None if resp.status == 200 else '%s: %d' % (path, resp.status)
        except (OSError, http.client.HTTPException) as exc:
            failed = '%s: %s' % (path, exc.__class__.__name__)
            conn = None
        with lock:
            counts['requests'] += 1
            if failed:
                counts['failed'] += 1
                if len(counts['failures']) < 5:
                    counts['failures'].append(failed)
        time.sleep(0.04)


def main():
    base, stop_file, max_seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    paths = sys.argv[4:]
    counts = {'requests': 0, 'failed': 0, 'failures': []}
    lock = threading.Lock()
    deadline = time.time() + max_seconds
    start = time.time()
    threads = [threading.Thread(target=client, args=(base, paths, stop_file, deadline, counts, lock, n * 7))
               for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts['seconds'] = round(time.time() - start, 1)
    counts['stopped_by'] = 'stop file' if os.path.exists(stop_file) else 'time limit'
    print(json.dumps(counts))


if __name__ == '__main__':
    main()
