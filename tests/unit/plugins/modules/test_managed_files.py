# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""managed_files writes real files here; owners other than the caller need root, which
the test command runs as (the tests that need it are skipped otherwise)."""

from __future__ import annotations

import grp
import os
import pwd
import stat

import pytest

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import run_module

from ansible_collections.p2d2.mapproxy.plugins.modules import managed_files

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason='changing a file owner needs root')


def _me():
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def _attrs(path):
    st = os.lstat(path)
    return '%04o %s %s' % (stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name)


def _spec(path, content, mode='0644', **kw):
    owner, group = _me()
    spec = {'path': str(path), 'content': content, 'mode': mode, 'owner': owner, 'group': group}
    spec.update(kw)
    return spec


def test_writes_new_files_then_changes_nothing(tmp_path):
    owner, group = _me()
    files = [_spec(tmp_path / 'a.service', '[Unit]\nDescription=ä\n'),
             _spec(tmp_path / 'tool', '#!/bin/sh\nexit 0\n', mode='0755')]

    result = run_module(managed_files, {'files': files})

    assert not result['failed'], result['msg']
    assert result['changed'] is True
    assert result['changed_files'] == [str(tmp_path / 'a.service'), str(tmp_path / 'tool')]
    assert (tmp_path / 'a.service').read_bytes() == '[Unit]\nDescription=ä\n'.encode('utf-8')
    assert _attrs(tmp_path / 'a.service') == '0644 %s %s' % (owner, group)
    assert _attrs(tmp_path / 'tool') == '0755 %s %s' % (owner, group)
    # No temporary file is left beside them.
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.service', 'tool']

    again = run_module(managed_files, {'files': files})
    assert again['changed'] is False and again['changed_files'] == []


def test_a_changed_file_is_replaced_by_a_rename_and_a_reader_keeps_the_old_one(tmp_path):
    path = tmp_path / 'nginx.conf'
    path.write_text('old\n')
    path.chmod(0o644)
    inode = path.stat().st_ino

    with open(path) as reader:
        result = run_module(managed_files, {'files': [_spec(path, 'new\n')]})
        # An open handle still reads the whole old file: the new one is another inode.
        assert reader.read() == 'old\n'

    assert result['changed'] is True
    assert path.read_text() == 'new\n'
    assert path.stat().st_ino != inode


def test_only_the_mode_is_set_where_the_content_is_right(tmp_path):
    path = tmp_path / 'unit.timer'
    path.write_text('same\n')
    path.chmod(0o600)
    inode = path.stat().st_ino

    result = run_module(managed_files, {'files': [_spec(path, 'same\n')]})

    assert result['changed'] is True and result['changed_files'] == [str(path)]
    assert _attrs(path).startswith('0644 ')
    assert path.stat().st_ino == inode


@needs_root
def test_owner_and_group_are_set_by_name(tmp_path):
    path = tmp_path / 'gunicorn.conf.py'
    spec = {'path': str(path), 'content': 'x = 1\n', 'mode': '0640', 'owner': 'root', 'group': 'nogroup'}
    result = run_module(managed_files, {'files': [spec]})
    assert not result['failed'], result['msg']
    assert _attrs(path) == '0640 root nogroup'
    # Group only: the content is not written again.
    inode = path.stat().st_ino
    result = run_module(managed_files, {'files': [dict(spec, group='root')]})
    assert result['changed'] is True
    assert _attrs(path) == '0640 root root' and path.stat().st_ino == inode


def test_check_mode_reports_and_writes_nothing(tmp_path):
    kept = tmp_path / 'kept'
    kept.write_text('old\n')
    kept.chmod(0o644)
    files = [_spec(kept, 'new\n'), _spec(tmp_path / 'new', 'x\n')]

    result = run_module(managed_files, {'files': files, '_ansible_diff': True}, check_mode=True)

    assert result['changed'] is True
    assert result['changed_files'] == [str(kept), str(tmp_path / 'new')]
    assert kept.read_text() == 'old\n' and not (tmp_path / 'new').exists()
    assert result['diff'][0] == {'before_header': str(kept), 'after_header': str(kept), 'before': 'old\n', 'after': 'new\n'}
    assert result['diff'][1]['before'] == '' and result['diff'][1]['after'] == 'x\n'


def test_no_diff_unless_asked(tmp_path):
    result = run_module(managed_files, {'files': [_spec(tmp_path / 'a', 'secret\n')]})
    assert result['changed'] is True and 'diff' not in result


def test_a_link_is_replaced_by_the_file(tmp_path):
    target = tmp_path / 'target'
    target.write_text('target\n')
    link = tmp_path / 'link'
    link.symlink_to(target)

    result = run_module(managed_files, {'files': [_spec(link, 'file\n')]})

    assert result['changed'] is True
    assert not link.is_symlink() and link.read_text() == 'file\n'
    assert target.read_text() == 'target\n'


@pytest.mark.parametrize('bad, message', [
    ({'path': 'relative/file'}, 'path relative/file is not absolute'),
    ({'path': '{tmp}/missing/file'}, 'the folder of {tmp}/missing/file does not exist'),
    ({'path': '{tmp}/folder'}, '{tmp}/folder is a folder, not a file'),
    ({'mode': 'rw-r--r--'}, "mode 'rw-r--r--' of {tmp}/bad is not an octal number"),
    ({'mode': '77777'}, "mode '77777' of {tmp}/bad is out of range"),
    ({'owner': 'no-such-user-p2d2'}, 'owner no-such-user-p2d2 of {tmp}/bad does not exist on the host'),
    ({'group': 'no-such-group-p2d2'}, 'group no-such-group-p2d2 of {tmp}/bad does not exist on the host'),
    ({'path': '{tmp}/first'}, '{tmp}/first is given twice'),
])
def test_bad_input_fails_before_any_file_is_written(tmp_path, bad, message):
    (tmp_path / 'folder').mkdir()
    first = _spec(tmp_path / 'first', 'first\n')
    spec = _spec(tmp_path / 'bad', 'bad\n')
    spec.update((key, value.format(tmp=tmp_path)) for key, value in bad.items())

    result = run_module(managed_files, {'files': [first, spec]})

    assert result['failed'] is True
    assert result['msg'].startswith('Nothing was written: ')
    assert message.format(tmp=tmp_path) in result['msg']
    # The valid file before the bad one was not written either.
    assert not (tmp_path / 'first').exists()
    assert result['changed_files'] == []


def test_a_check_that_fails_leaves_every_file_as_it_was(tmp_path):
    first = tmp_path / 'first.conf'
    first.write_text('old first\n')
    first.chmod(0o644)
    second = tmp_path / 'second.conf'
    second.write_text('old second\n')
    second.chmod(0o644)
    files = [_spec(first, 'good first\n', validate='grep -q good %s'),
             _spec(second, 'bad second\n', validate='grep -q good %s')]

    result = run_module(managed_files, {'files': files})

    assert result['failed'] is True
    assert result['msg'].startswith('Nothing was written: the check of %s (grep -q good %%s) failed with exit code 1' % second)
    # The first file passed its check but was not put in place, and no staged file is left.
    assert first.read_text() == 'old first\n' and second.read_text() == 'old second\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['first.conf', 'second.conf']


def test_the_check_reads_the_new_content_before_it_goes_live(tmp_path):
    path = tmp_path / 'nginx.conf'
    path.write_text('old\n')
    path.chmod(0o644)
    seen = tmp_path / 'seen'

    result = run_module(managed_files, {'files': [_spec(path, 'new\n', validate='cp %%s %s' % seen)]})

    assert not result['failed'], result['msg']
    assert seen.read_text() == 'new\n' and path.read_text() == 'new\n'


def test_check_mode_runs_no_check(tmp_path):
    marker = tmp_path / 'ran'
    result = run_module(managed_files, {'files': [_spec(tmp_path / 'a', 'x\n', validate='touch %s %s' % (marker, '%s'))]},
                        check_mode=True)
    assert result['changed'] is True and not marker.exists() and not (tmp_path / 'a').exists()


def test_a_check_without_the_placeholder_is_refused(tmp_path):
    result = run_module(managed_files, {'files': [_spec(tmp_path / 'a', 'x\n', validate='nginx -t')]})
    assert result['failed'] is True
    assert 'validate of %s must contain %%s' % (tmp_path / 'a') in result['msg']
    assert not (tmp_path / 'a').exists()


def test_check_mode_reports_files_in_a_folder_an_earlier_task_would_create(tmp_path):
    result = run_module(managed_files, {'files': [_spec(tmp_path / 'venv' / 'marker', 'x\n')]}, check_mode=True)
    assert not result['failed'], result['msg']
    assert result['changed'] is True and result['changed_files'] == [str(tmp_path / 'venv' / 'marker')]
    assert not (tmp_path / 'venv').exists()


def test_check_mode_reports_files_of_an_owner_an_earlier_task_would_create(tmp_path):
    path = tmp_path / 'mapproxy.yaml'
    path.write_text('x\n')
    result = run_module(managed_files, {'files': [_spec(path, 'x\n', group='no-such-group-p2d2')]}, check_mode=True)
    assert not result['failed'], result['msg']
    assert result['changed'] is True
