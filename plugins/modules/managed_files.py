#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: managed_files
short_description: Write several small text files in one call, each atomically
version_added: 0.1.0
description:
  - Writes the content, mode, owner and group of each file of O(files) where the host differs, in
    one module call, where C(ansible.builtin.copy) or C(ansible.builtin.template) take three
    round trips to the host per file (a C(stat), the transfer, and the C(copy) module).
  - The roles of this collection write their systemd units and helper scripts with it, rendered
    on the controller with the C(ansible.builtin.template) lookup. On a fresh host a role writes
    all of them in one call, and a run that has nothing to change does not call it at all
    (the role compares with what C(p2d2.mapproxy.host_state_info) read first).
  - Everything is checked before the first file is written. A missing folder, a path that is a
    folder, an unknown owner or group, or a path given twice fails the task with nothing changed.
    In check mode a missing folder, owner or group is taken for one that an earlier task would
    create, and its files are reported as changed.
  - Each changed file is first written to a hidden temporary file in its folder (its name ends in
    C(~), which systemd, logrotate and run-parts skip), with its mode, owner and group, and
    checked with its O(files[].validate) command. Only when every one passed are they
    renamed over the old files, so that a file a check rejects leaves all files as they were, and
    a reader sees either the old or the new file, never a part of one. A file whose content is
    already right only gets its mode, owner and group set.
  - A symbolic link at a path is replaced by the file, as C(ansible.builtin.copy) does by default.
author:
  - p2d2 maintainers (@p2d2)
attributes:
  check_mode:
    description: Can run in check mode and return the changed status it predicts without changing the target.
    support: full
  diff_mode:
    description: Returns the old and new content of each file it changes.
    support: full
    details: Set the task keyword C(diff) to false for files that hold secrets.
options:
  files:
    description:
      - The files to write.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: The absolute path of the file. Its folder must exist.
        type: path
        required: true
      content:
        description: The whole text of the file, written as UTF-8.
        type: str
        required: true
      mode:
        description: The permission bits, as an octal string such as C("0644").
        type: str
        required: true
      owner:
        description: The owner's name.
        type: str
        default: root
      group:
        description: The group's name.
        type: str
        default: root
      validate:
        description:
          - A command that checks the new file before it goes live, with C(%s) where the path of the
            temporary file goes, as in C(ansible.builtin.copy). Split like a shell would, but not run by one.
          - Not run in check mode, where nothing is written.
        type: str
"""

EXAMPLES = r"""
- name: Install the units of the seeding jobs
  p2d2.mapproxy.managed_files:
    files:
      - path: /etc/systemd/system/mapproxy-seed-osm.service
        content: "{{ lookup('ansible.builtin.template', 'seed.service.j2') }}"
        mode: "0644"
      - path: /etc/systemd/system/mapproxy-seed-osm.timer
        content: "{{ lookup('ansible.builtin.template', 'job.timer.j2') }}"
        mode: "0644"
      - path: /etc/logrotate.d/mapproxy
        content: "{{ lookup('ansible.builtin.template', 'logrotate.j2') }}"
        mode: "0644"
        validate: logrotate --debug %s
  register: __units

- name: Reload systemd when a unit changed
  ansible.builtin.systemd_service:
    daemon_reload: true
  when: __units is changed
"""

RETURN = r"""
changed_files:
  description: The paths of O(files) that were written or got another mode, owner or group (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/systemd/system/mapproxy-seed-osm.timer]
"""

import grp
import os
import pwd
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text


class Refused(Exception):
    """A file of the request that cannot be written; raised before anything is written."""


def _current(path):
    """(lstat result or None, content bytes or None) of what is at path."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, None
    if stat.S_ISDIR(st.st_mode):
        raise Refused('%s is a folder, not a file' % path)
    if stat.S_ISREG(st.st_mode):
        with open(path, 'rb') as handle:
            return st, handle.read()
    return st, None


def _lookup(getter, name, what, path, check_mode):
    """The id of an account or group; in check mode None for one an earlier task would create."""
    try:
        entry = getter(name)
    except KeyError:
        if check_mode:
            return None
        raise Refused('%s %s of %s does not exist on the host' % (what, name, path)) from None
    return entry[2]


def plan(files, check_mode=False):
    """Each file with what it needs: its uid, gid, mode, bytes, and whether content or attributes differ.

    In check mode a missing folder, owner or group is one that an earlier task would have
    created: its files are reported as changed."""
    seen = set()
    planned = []
    for spec in files:
        path = spec['path']
        if not os.path.isabs(path):
            raise Refused('path %s is not absolute' % path)
        if path in seen:
            raise Refused('%s is given twice' % path)
        seen.add(path)
        folder_exists = os.path.isdir(os.path.dirname(path))
        if not folder_exists and not check_mode:
            raise Refused('the folder of %s does not exist' % path)
        try:
            mode = int(spec['mode'], 8)
        except (TypeError, ValueError):
            raise Refused('mode %r of %s is not an octal number such as "0644"' % (spec['mode'], path)) from None
        if mode < 0 or mode > 0o7777:
            raise Refused('mode %r of %s is out of range' % (spec['mode'], path))
        uid = _lookup(pwd.getpwnam, spec['owner'], 'owner', path, check_mode)
        gid = _lookup(grp.getgrnam, spec['group'], 'group', path, check_mode)
        data = to_bytes(spec['content'], errors='surrogate_or_strict')
        st, old = _current(path) if folder_exists else (None, None)
        content_differs = old != data or not stat.S_ISREG(st.st_mode)
        attrs_differ = content_differs or (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) != (mode, uid, gid)
        validate = spec.get('validate')
        if validate and '%s' not in validate:
            raise Refused('validate of %s must contain %%s, where the path of the file to check goes' % path)
        planned.append({'path': path, 'data': data, 'old': old, 'mode': mode, 'uid': uid, 'gid': gid,
                        'validate': validate, 'content_differs': content_differs, 'attrs_differ': attrs_differ})
    return planned


def stage(module, item):
    """Write a changed file's content to a temporary file in its folder and check it; returns its path."""
    path = item['path']
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.%s.' % os.path.basename(path), suffix='~')
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(item['data'])
            handle.flush()
            os.fchown(handle.fileno(), item['uid'], item['gid'])
            # After fchown, which clears the setuid and setgid bits.
            os.fchmod(handle.fileno(), item['mode'])
        if item['validate']:
            rc, out, err = module.run_command(item['validate'] % tmp)
            if rc != 0:
                raise Refused('the check of %s (%s) failed with exit code %d: %s'
                              % (path, item['validate'], rc, (err.strip() or out.strip())[-2000:]))
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def commit(item, tmp):
    """Put one planned file in place: the staged file renamed over it, or its attributes set."""
    if tmp is None:
        os.chown(item['path'], item['uid'], item['gid'])
        os.chmod(item['path'], item['mode'])
    else:
        os.rename(tmp, item['path'])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type='list', elements='dict', required=True, options=dict(
                path=dict(type='path', required=True),
                content=dict(type='str', required=True),
                mode=dict(type='str', required=True),
                owner=dict(type='str', default='root'),
                group=dict(type='str', default='root'),
                validate=dict(type='str'),
            )),
        ),
        supports_check_mode=True,
    )
    try:
        planned = plan(module.params['files'], module.check_mode)
    except (Refused, OSError) as exc:
        module.fail_json(msg='Nothing was written: %s.' % exc, changed_files=[])

    changing = [item for item in planned if item['attrs_differ']]
    diffs = []
    if module._diff:
        for item in changing:
            if item['content_differs']:
                diffs.append({'before_header': item['path'], 'after_header': item['path'],
                              'before': to_text(item['old'] or b'', errors='surrogate_or_strict'),
                              'after': to_text(item['data'], errors='surrogate_or_strict')})
    if not module.check_mode and changing:
        staged = []
        try:
            for item in changing:
                staged.append(stage(module, item) if item['content_differs'] else None)
        except (Refused, OSError) as exc:
            for tmp in staged:
                if tmp:
                    _remove(tmp)
            module.fail_json(msg='Nothing was written: %s.' % exc, changed_files=[])
        written = []
        for item, tmp in zip(changing, staged):
            try:
                commit(item, tmp)
            except OSError as exc:
                for rest in staged[len(written):]:
                    if rest:
                        _remove(rest)
                module.fail_json(msg='Writing %s failed: %s. Written before it: %s.'
                                     % (item['path'], exc, ', '.join(written) or 'nothing'),
                                 changed=bool(written), changed_files=written)
            written.append(item['path'])
    result = {'changed': bool(changing), 'changed_files': [item['path'] for item in changing]}
    if diffs:
        result['diff'] = diffs
    module.exit_json(**result)


if __name__ == '__main__':
    main()
