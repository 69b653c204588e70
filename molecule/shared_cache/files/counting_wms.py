#!/usr/bin/env python3
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A WMS upstream that counts: the operator's tile server, stood in for beside the hosts.

    counting_wms.py PORT LOG DELAY

Answers every GetMap with a plain PNG of the asked WIDTH x HEIGHT, DELAY seconds later (a
remote server's latency: requests that reach it at the same time overlap), and appends
one line per GetMap to LOG ("GetMap BBOX WIDTH HEIGHT"), so that a test counts what
reached the upstream. Anything else gets 400. Standard library only: the stores'
container has Python and nothing else of it."""

import struct
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

LOCK = threading.Lock()


def png(width, height):
    row = b'\x00' + b'\xc8\xdc\xf0' * width
    data = zlib.compress(row * height, 6)

    def chunk(kind, body):
        return (struct.pack('>I', len(body)) + kind + body
                + struct.pack('>I', zlib.crc32(kind + body) & 0xffffffff))

    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', data) + chunk(b'IEND', b''))


class Handler(BaseHTTPRequestHandler):
    log_file = None
    delay = 0.0

    def do_GET(self):
        query = {key.upper(): value for key, value in parse_qsl(urlsplit(self.path).query)}
        if query.get('REQUEST', '').lower() != 'getmap':
            self.send_error(400, 'only GetMap')
            return
        try:
            width, height = int(query['WIDTH']), int(query['HEIGHT'])
        except (KeyError, ValueError):
            self.send_error(400, 'WIDTH and HEIGHT')
            return
        with LOCK, open(self.log_file, 'a', encoding='ascii') as log:
            log.write('GetMap %s %d %d\n' % (query.get('BBOX', '-'), width, height))
        time.sleep(self.delay)
        body = png(width, height)
        self.send_response(200)
        self.send_header('Content-Type', 'image/png')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    Handler.log_file = sys.argv[2]
    Handler.delay = float(sys.argv[3])
    open(Handler.log_file, 'a', encoding='ascii').close()
    ThreadingHTTPServer(('0.0.0.0', int(sys.argv[1])), Handler).serve_forever()


if __name__ == '__main__':
    main()
