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

import socket
import sys
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


@pytest.fixture
def closed_port():
    """A loopback port on which nothing listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


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
