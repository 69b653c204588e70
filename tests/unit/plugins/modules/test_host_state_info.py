# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""host_state_info reads what the roles compare with what they would write: files on
disk, dpkg's database, the account databases (all real on the test machine), and the
output of systemctl show, which needs systemd as PID 1 (the Molecule scenarios run it)."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import subprocess

import pytest

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import run_module

from ansible_collections.p2d2.mapproxy.plugins.modules import host_state_info


def _me():
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def test_files_and_paths_give_the_key_a_role_compares_with(tmp_path):
    conf = tmp_path / 'app.conf'
    conf.write_text('listen 8080;\n')
    conf.chmod(0o640)
    folder = tmp_path / 'logs'
    folder.mkdir(mode=0o755)
    folder.chmod(0o750)
    log = folder / 'access.log'
    log.write_text('a line\n')
    log.chmod(0o644)
    link = tmp_path / 'current'
    link.symlink_to(conf)
    owner, group = _me()

    result = run_module(host_state_info, {
        'files': [str(conf), str(link), str(tmp_path / 'missing.conf')],
        'paths': [str(folder), str(log)],
    })

    assert not result['failed'], result['msg']
    assert result['changed'] is False
    files = result['files']
    sha1 = hashlib.sha1(b'listen 8080;\n').hexdigest()
    assert files[str(conf)] == {'state': 'file', 'mode': '0640', 'owner': owner, 'group': group,
                                'checksum': sha1, 'link_target': None, 'key': '%s 0640 %s %s' % (sha1, owner, group)}
    # A link is reported as one, not as what it points to.
    assert files[str(link)]['state'] == 'link' and files[str(link)]['checksum'] is None
    assert files[str(link)]['link_target'] == str(conf.resolve())
    assert files[str(tmp_path / 'missing.conf')]['key'] == 'absent'
    assert files[str(folder)]['key'] == 'directory 0750 %s %s' % (owner, group)
    # Paths get no checksum: a log is compared by its attributes only.
    assert files[str(log)]['checksum'] is None
    assert files[str(log)]['key'] == 'file 0644 %s %s' % (owner, group)


def test_a_changed_byte_or_mode_changes_the_key(tmp_path):
    conf = tmp_path / 'app.conf'
    conf.write_text('listen 8080;\n')
    conf.chmod(0o644)
    before = run_module(host_state_info, {'files': [str(conf)]})['files'][str(conf)]['key']
    conf.write_text('listen 8081;\n')
    content = run_module(host_state_info, {'files': [str(conf)]})['files'][str(conf)]['key']
    conf.chmod(0o600)
    mode = run_module(host_state_info, {'files': [str(conf)]})['files'][str(conf)]['key']
    assert len({before, content, mode}) == 3


@pytest.mark.skipif(shutil.which('dpkg-query') is None, reason='needs dpkg (Debian)')
def test_packages_come_from_dpkg():
    installed = subprocess.run(['dpkg-query', '--show', '--showformat=${Version}', 'dpkg'],
                               capture_output=True, text=True, check=True).stdout
    result = run_module(host_state_info, {'packages': ['dpkg', 'p2d2-no-such-package']})
    assert not result['failed'], result['msg']
    assert result['packages'] == {'dpkg': installed, 'p2d2-no-such-package': None}


def test_users_and_groups_come_from_the_account_databases():
    root_group = grp.getgrgid(0)
    result = run_module(host_state_info, {'users': ['root', 'p2d2-no-such-user'],
                                          'groups': [root_group.gr_name, 'p2d2-no-such-group']})
    assert not result['failed'], result['msg']
    root = pwd.getpwnam('root')
    assert result['users'] == {'root': {'uid': 0, 'group': root_group.gr_name, 'home': root.pw_dir, 'shell': root.pw_shell,
                                        'comment': root.pw_gecos},
                               'p2d2-no-such-user': None}
    assert result['groups'] == {root_group.gr_name: {'gid': 0, 'members': list(root_group.gr_mem)},
                                'p2d2-no-such-group': None}


def test_systemctl_show_blocks_map_to_the_units_in_order():
    text = ('LoadState=loaded\nUnitFileState=enabled\nActiveState=active\n\n'
            'LoadState=not-found\nUnitFileState=\nActiveState=inactive\n')
    assert host_state_info.parse_units(['nginx.service', 'gone.timer'], text) == {
        'nginx.service': {'load_state': 'loaded', 'unit_file_state': 'enabled', 'active_state': 'active'},
        'gone.timer': {'load_state': 'not-found', 'unit_file_state': '', 'active_state': 'inactive'},
    }
    with pytest.raises(ValueError):
        host_state_info.parse_units(['a.service', 'b.service'], 'LoadState=loaded\n')


def test_units_without_systemd_fail_with_systemctls_message(tmp_path, monkeypatch):
    """On a host without systemd as PID 1 (like the machine that runs pytest), systemctl
    show fails; the module says so instead of returning units it did not read."""
    if shutil.which('systemctl') is None:
        fake = tmp_path / 'systemctl'
        fake.write_text('#!/bin/sh\necho "System has not been booted with systemd" >&2\nexit 1\n')
        fake.chmod(0o755)
        monkeypatch.setenv('PATH', '%s:%s' % (tmp_path, os.environ['PATH']))
    elif os.path.isdir('/run/systemd/system'):
        pytest.skip('systemd runs here: the Molecule scenarios read real units')
    result = run_module(host_state_info, {'units': ['nginx.service']})
    assert result['failed']
    assert result['msg'].startswith('systemctl show could not read the units')
    assert 'systemd' in result['msg']
