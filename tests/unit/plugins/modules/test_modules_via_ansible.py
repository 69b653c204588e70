# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One pass through ansible-playbook: the modules as Ansible ships them
(AnsiballZ, module_utils included), run by a Python that has no MapProxy,
against the MapProxy of the venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import (
    VENV,
    dump_yaml,
    file_cache,
    make_config,
    needs_mapproxy,
    write_config,
)

from ansible_collections.p2d2.mapproxy.plugins.modules import mapproxy_seed

PLAYBOOK = os.path.join(VENV, 'bin', 'ansible-playbook')
BASE_PYTHON = os.path.join(sys.base_prefix, 'bin', 'python3')

pytestmark = [
    needs_mapproxy,
    pytest.mark.skipif(not os.access(PLAYBOOK, os.X_OK), reason='no ansible-playbook in the venv'),
    pytest.mark.skipif(not os.access(BASE_PYTHON, os.X_OK), reason='no base Python to run the modules with'),
]


def test_playbook_with_a_python_without_mapproxy(tmp_path):
    probe = subprocess.run([BASE_PYTHON, '-c', 'import mapproxy'], capture_output=True, check=False)
    if probe.returncode == 0:
        pytest.skip('the base Python has MapProxy, the test would prove nothing')
    cache_dir = tmp_path / 'cache' / 'osm'
    config = write_config(tmp_path / 'mapproxy.yaml', make_config(
        tmp_path / 'cache', caches={'osm_cache': file_cache(directory=cache_dir)}))
    common = {'config': config, 'venv': VENV}
    tasks = [
        {'name': 'Check the configuration',
         'p2d2.mapproxy.mapproxy_config_info': {'path': config, 'venv': VENV},
         'register': 'cfg'},
        {'name': 'Seed',
         'p2d2.mapproxy.mapproxy_seed': dict(common, caches=['osm_cache'], levels=[0, 1, 2], bbox=[5.8, 50.2, 9.0, 52.5]),
         'register': 'seeded'},
        {'name': 'Count',
         'p2d2.mapproxy.mapproxy_cache_info': common, 'register': 'counted'},
        {'name': 'Remove all',
         'p2d2.mapproxy.mapproxy_cache_clean': dict(common, caches=['osm_cache'], all=True), 'register': 'cleaned'},
        {'name': 'Check the results',
         'ansible.builtin.assert': {'that': [
             'cfg.valid', "cfg.caches.osm_cache.directory_layout == 'tms'",
             'seeded is changed', 'seeded.tiles_to_seed == 3', 'seeded.tiles_written == 3',
             'counted.total_tiles == 3', 'counted is not changed',
             'cleaned is changed', 'cleaned.tiles_removed == 3']}},
    ]
    playbook = tmp_path / 'play.yml'
    playbook.write_text(dump_yaml([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]))
    collections = Path(mapproxy_seed.__file__).parents[5]
    (tmp_path / 'ansible.cfg').write_text('[defaults]\nretry_files_enabled = false\n')
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_HOME=str(tmp_path / 'ansible-home'),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'), ANSIBLE_NOCOLOR='1', ANSIBLE_CONFIG=str(tmp_path / 'ansible.cfg'))
    proc = subprocess.run([PLAYBOOK, '-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=' + BASE_PYTHON,
                           str(playbook)], capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert 'failed=0' in proc.stdout
