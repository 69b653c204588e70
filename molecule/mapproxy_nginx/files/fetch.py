#!/usr/bin/env python3
"""Fetch the same paths from nginx (TCP) and from MapProxy (Gunicorn's UNIX socket), with the
same request headers, and print both answers as JSON: status, headers (lower-case names), body sha256 and size.

usage: fetch.py PORT SOCKET JSON  (JSON: a list of paths or {"path": ..., "headers": {...}})"""

import hashlib
import http.client
import json
import socket
import sys


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__('localhost')
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def fetch(conn, path, headers):
    conn.request('GET', path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    merged = {}
    for name, value in resp.getheaders():
        name = name.lower()
        merged[name] = merged[name] + ', ' + value if name in merged else value
    return {'status': resp.status, 'headers': merged,
            'sha256': hashlib.sha256(body).hexdigest(), 'size': len(body)}


def main():
    port, sock, requests = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    results = []
    for req in requests:
        req = {'path': req} if isinstance(req, str) else req
        # The Host a client of nginx sends, on both ways, so that MapProxy sees the same request.
        headers = dict({'Host': f'127.0.0.1:{port}'}, **req.get('headers', {}))
        results.append({'path': req['path'],
                        'nginx': fetch(http.client.HTTPConnection('127.0.0.1', port, timeout=30), req['path'], headers),
                        'mapproxy': fetch(UnixConnection(sock), req['path'], headers)})
    json.dump(results, sys.stdout)


main()
