# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deprecated role variables: a warning each, their values under the new names, and
through the role mapproxy_common in a real play, the new names set for every role."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.p2d2.mapproxy.plugins.filter.mapproxy_deprecated import mapproxy_deprecated
from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import VENV, dump_yaml
from ansible_collections.p2d2.mapproxy.tests.unit.roles.test_preflight_messages import CHECKOUT, ansible_env

TABLE = yaml.safe_load((CHECKOUT / 'roles/mapproxy_common/vars/main.yml').read_text())['__mapproxy_common_deprecated']
PLAYBOOK = os.path.join(VENV, 'bin', 'ansible-playbook')


def test_old_names_give_their_values_to_the_new_ones(capfd):
    new = mapproxy_deprecated({'mapproxy_gunicorn_tcp_binds': ['127.0.0.1:8080'], 'mapproxy_nginx_enabled': 'no'},
                              TABLE)
    assert new == {'mapproxy_nginx_listen': ['127.0.0.1:8080'], 'mapproxy_nginx_fast_path': False}
    err = ' '.join(capfd.readouterr().err.split())
    for name in ('mapproxy_gunicorn_tcp_binds', 'mapproxy_nginx_enabled'):
        assert '%s is deprecated' % name in err, err
    assert 'version 0.3.0' in err, err


def test_a_variable_without_a_new_name_only_warns(capfd):
    assert mapproxy_deprecated({'mapproxy_gunicorn_behind_nginx': True}, TABLE) == {}
    assert 'mapproxy_gunicorn_behind_nginx is deprecated: Gunicorn is always behind nginx' in \
        ' '.join(capfd.readouterr().err.split())


@pytest.mark.parametrize('found, message', [
    ({'mapproxy_nginx_enabled': 'maybe'}, "mapproxy_nginx_enabled is 'maybe': give true or false"),
    ({'mapproxy_gunicorn_tcp_binds': '0.0.0.0:8080'}, "give a list, as mapproxy_nginx_listen takes it"),
    ({'mapproxy_unknown': 1}, 'mapproxy_unknown is not in the table'),
])
def test_bad_values_name_the_variable(found, message):
    with pytest.raises(AnsibleFilterError, match=message):
        mapproxy_deprecated(found, TABLE)


@pytest.mark.skipif(not os.access(PLAYBOOK, os.X_OK), reason='no ansible-playbook in the venv')
def test_every_role_reads_the_new_names(tmp_path):
    """Inventory values under the old names reach a role's tasks under the new ones, above
    the role's defaults and the inventory's values of the new names."""
    inventory = {'all': {'hosts': {'h': {
        'ansible_connection': 'local', 'ansible_python_interpreter': os.path.join(sys.base_prefix, 'bin', 'python3'),
        'mapproxy_gunicorn_tcp_binds': ['127.0.0.1:18080'], 'mapproxy_nginx_enabled': False,
        'mapproxy_nginx_listen': ['0.0.0.0:8080']}}}}
    (tmp_path / 'inventory.json').write_text(json.dumps(inventory))
    (tmp_path / 'play.yml').write_text(dump_yaml([{
        'name': 'Read the public binds as healthcheck.yml does',
        'hosts': 'all',
        'gather_facts': False,
        'tasks': [
            # A play's own variables with short names, as a registered result: the roles'
            # internal names must not meet them (a play that registered __old broke it once).
            {'name': 'Set variables with short names', 'ansible.builtin.set_fact': {
                '__old': {'changed': False}, '__new': 'x', '__found': 1, '__errors': 'none', '__list': 1,
                '__bad': 1, '__port': 1}},
            {'name': 'Read the public binds',
             'ansible.builtin.include_role': {'name': 'p2d2.mapproxy.mapproxy_nginx', 'tasks_from': 'listen',
                                              'public': True}},
            {'name': 'Show them',
             'ansible.builtin.debug': {'msg': 'P2D2 {{ {"listen": mapproxy_nginx_listen,'
                                              ' "fast_path": mapproxy_nginx_fast_path} | to_json }}'}},
        ],
    }]))
    proc = subprocess.run([PLAYBOOK, '-i', str(tmp_path / 'inventory.json'), str(tmp_path / 'play.yml')],
                          capture_output=True, text=True, env=ansible_env(tmp_path), cwd=str(tmp_path),
                          timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    shown = json.loads(re.search(r"P2D2 (\{[^}]*\})", out).group(1).replace('\\"', '"'))
    assert shown == {'listen': ['127.0.0.1:18080'], 'fast_path': False}, out[-4000:]
    flat = ' '.join(out.split())
    assert 'mapproxy_gunicorn_tcp_binds is deprecated' in flat and 'mapproxy_nginx_enabled is deprecated' in flat
