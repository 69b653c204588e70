# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The filter's keys must be host_state_info's, which the module reads from real files here."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import run_module

from ansible_collections.p2d2.mapproxy.plugins.filter.managed_files_differ import managed_files_differ
from ansible_collections.p2d2.mapproxy.plugins.modules import host_state_info, managed_files


def test_only_files_that_differ_from_what_host_state_info_read(tmp_path):
    owner = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    wanted = [{'path': str(tmp_path / name), 'content': 'Description=é %s\n' % name, 'mode': '0644',
               'owner': owner, 'group': group} for name in ('same', 'content', 'mode', 'absent')]
    written = run_module(managed_files, {'files': wanted[:3]})
    assert not written['failed'], written['msg']
    (tmp_path / 'content').write_text('something else\n')
    (tmp_path / 'mode').chmod(0o600)

    state = run_module(host_state_info, {'files': [spec['path'] for spec in wanted]})

    assert managed_files_differ(wanted, state['files']) == wanted[1:]


def test_owner_and_group_default_to_root():
    spec = {'path': '/etc/x', 'content': 'x\n', 'mode': '0644'}
    digest = hashlib.sha1(b'x\n').hexdigest()
    assert managed_files_differ([spec], {'/etc/x': {'key': '%s 0644 root root' % digest}}) == []
    assert managed_files_differ([spec], {'/etc/x': {'key': '%s 0644 root adm' % digest}}) == [spec]
    assert managed_files_differ([spec], {}) == [spec]


@pytest.mark.parametrize('wanted, host_files, message', [
    ([{'path': '/x', 'content': 'x'}], {}, 'each file needs path, content and mode'),
    ([{'path': '/x', 'content': 1, 'mode': '0644'}], {}, 'the content of /x is int, not text'),
    ([], ['/x'], 'host_files must be the files of host_state_info'),
])
def test_bad_input_names_what_is_wrong(wanted, host_files, message):
    with pytest.raises(AnsibleFilterError, match=message):
        managed_files_differ(wanted, host_files)
