# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures for the module tests (helpers are in ``mapproxy_testing.py``).

The tests run the real MapProxy of the venv that runs pytest (its ``debug``
source needs no network; upstream tile servers are started on 127.0.0.1).
Modules are called in-process through ``main()`` with patched
``exit_json``/``fail_json``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _add_collection_to_path():
    """Make ``ansible_collections.p2d2.mapproxy`` importable without installing."""
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / 'collections']
    # inside an installed tree: .../ansible_collections/p2d2/mapproxy/tests/unit
    for parent in here.parents:
        if parent.name == 'ansible_collections':
            candidates.append(parent.parent)
            break
    for candidate in candidates:
        if (candidate / 'ansible_collections' / 'p2d2' / 'mapproxy').is_dir():
            if str(candidate) not in sys.path:
                sys.path.insert(0, str(candidate))
            return


_add_collection_to_path()

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import TileServer  # noqa: E402


@pytest.fixture
def tile_server():
    server = TileServer()
    yield server
    server.close()


def _free_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def closed_port():
    """A loopback port on which nothing listens."""
    return _free_port()


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections (backlog) but never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(autouse=True)
def _module_side(monkeypatch):
    """Run every test as the managed host runs a module: without controller code.

    Once controller code is imported into the test process (the filter tests import
    ``ansible.errors``), ansible-core routes ``module.warn()`` to the controller's display
    instead of the module result, and the warnings the tests look for vanish from it.
    """
    from ansible.module_utils import _internal

    monkeypatch.setattr(_internal, 'is_controller', False)


@pytest.fixture
def s3_store(monkeypatch):
    """moto's S3 server on a loopback port (the stand-in MapProxy's own tests use), with
    credentials in the environment the probe inherits; yields its endpoint URL."""
    moto_server = pytest.importorskip('moto.server')
    server = moto_server.ThreadedMotoServer(ip_address='127.0.0.1', port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto keeps its buckets in the process, across servers: each test starts empty.
    urllib.request.urlopen(urllib.request.Request('http://%s:%d/moto-api/reset' % (host, port), method='POST'),
                           timeout=10).close()
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'p2d2-test-key')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'p2d2-test-secret')
    monkeypatch.delenv('AWS_PROFILE', raising=False)
    yield 'http://%s:%d' % (host, port)
    server.stop()


@pytest.fixture
def redis_store(tmp_path):
    """Debian's redis-server on a loopback port, with a password; yields (port, password)."""
    binary = shutil.which('redis-server')
    if not binary:
        pytest.skip('redis-server is not installed (scripts/test.sh installs it)')
    port, password = _free_port(), 'p2d2 redis:secret'
    proc = subprocess.Popen([binary, '--port', str(port), '--bind', '127.0.0.1', '--save', '',
                             '--appendonly', 'no', '--dir', str(tmp_path), '--requirepass', password],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _attempt in range(100):
            try:
                socket.create_connection(('127.0.0.1', port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port, password
    finally:
        proc.terminate()
        proc.wait(timeout=10)
