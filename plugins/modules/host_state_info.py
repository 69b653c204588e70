#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: host_state_info
short_description: Read the files, units, packages, users and groups a role manages, in one call
version_added: 0.1.0
description:
  - Reads, in one module call, what a role would otherwise read with one module call per item
    (C(ansible.builtin.stat) per file, the C(stat) and C(file) calls inside an unchanged
    C(ansible.builtin.template), C(systemctl is-active), C(dpkg-query), C(getent)).
  - The roles of this collection read their state with it first and run a writing task only
    for what differs, so that a run that has nothing to change costs one module call per role.
  - Every file and path gets a C(key) in RV(files), in the form that a role can compare with what
    it would write, for example C(<sha1> 0644 root root) for a file and C(directory 0755 root root)
    for a folder.
  - Symbolic links are not followed; they are reported as C(link).
author:
  - p2d2 maintainers (@p2d2)
attributes:
  check_mode:
    description: Can run in check mode and return the changed status it predicts without changing the target.
    support: full
    details: The module never changes anything.
  diff_mode:
    description: Would return details of the change in diff mode.
    support: none
options:
  files:
    description:
      - Paths whose type, mode, owner, group and, for regular files, SHA-1 checksum are read.
    type: list
    elements: path
    default: []
  paths:
    description:
      - Paths whose type, mode, owner and group are read, without a checksum (folders, logs).
    type: list
    elements: path
    default: []
  units:
    description:
      - systemd units whose load, unit file and active state are read with one C(systemctl show).
    type: list
    elements: str
    default: []
  packages:
    description:
      - Debian packages whose installed version is read with one C(dpkg-query).
    type: list
    elements: str
    default: []
  users:
    description:
      - Accounts to look up in the password database.
    type: list
    elements: str
    default: []
  groups:
    description:
      - Groups to look up in the group database, with their members.
    type: list
    elements: str
    default: []
notes:
  - Units are read with C(systemctl show), so a host without systemd fails when O(units) is set.
"""

EXAMPLES = r"""
- name: Read the role's files, unit and package on the host
  p2d2.mapproxy.host_state_info:
    files: [/etc/nginx/nginx.conf]
    paths: [/var/log/mapproxy]
    units: [nginx.service]
    packages: [nginx, logrotate]
    groups: [mapproxy]
  register: __state

- name: Install nginx.conf only where it differs from what is on the host
  ansible.builtin.template:
    src: nginx.conf.j2
    dest: /etc/nginx/nginx.conf
    owner: root
    group: root
    mode: "0644"
  when: >-
    __state.files['/etc/nginx/nginx.conf'].key
    != (lookup('ansible.builtin.template', 'nginx.conf.j2') | hash('sha1')) ~ ' 0644 root root'

- name: Enable and start nginx where it does not run
  ansible.builtin.systemd_service:
    name: nginx.service
    enabled: true
    state: started
  when: __state.units['nginx.service'].active_state != 'active'
"""

RETURN = r"""
files:
  description: Per path of O(files) and O(paths), what is there.
  returned: always
  type: dict
  sample:
    /etc/nginx/nginx.conf:
      state: file
      mode: "0644"
      owner: root
      group: root
      checksum: 5f1c3a0bd3e0b7e3cfd4c8e3b1ee5e4a5cc7e2a1
      link_target: null
      key: 5f1c3a0bd3e0b7e3cfd4c8e3b1ee5e4a5cc7e2a1 0644 root root
    /var/log/mapproxy:
      state: directory
      mode: "0755"
      owner: mapproxy
      group: mapproxy
      checksum: null
      link_target: null
      key: directory 0755 mapproxy mapproxy
  contains:
    state:
      description: C(file), C(directory), C(link), C(other) or C(absent).
      type: str
    mode:
      description: The permission bits in octal, as C(ansible.builtin.file) takes them; null when absent.
      type: str
    owner:
      description: The owner's name, or the uid where it has none; null when absent.
      type: str
    group:
      description: The group's name, or the gid where it has none; null when absent.
      type: str
    checksum:
      description: SHA-1 of a regular file of O(files), else null.
      type: str
    link_target:
      description: For a link, the absolute path it resolves to, else null.
      type: str
    key:
      description:
        - One string to compare with what a role would write, C(absent) when nothing is there.
        - For a regular file of O(files) C(<checksum> <mode> <owner> <group>); for one of O(paths)
          C(file <mode> <owner> <group>); else C(<state> <mode> <owner> <group>).
      type: str
units:
  description: Per unit of O(units), as C(systemctl show) reports it.
  returned: always
  type: dict
  sample:
    nginx.service: {load_state: loaded, unit_file_state: enabled, active_state: active}
    mapproxy-backup.timer: {load_state: not-found, unit_file_state: "", active_state: inactive}
  contains:
    load_state:
      description: C(LoadState), for example C(loaded) or C(not-found).
      type: str
    unit_file_state:
      description: C(UnitFileState), for example C(enabled), C(disabled), or empty for a unit without a file.
      type: str
    active_state:
      description: C(ActiveState), for example C(active), C(inactive) or C(failed).
      type: str
packages:
  description: Per package of O(packages), its installed version, or null when it is not installed.
  returned: always
  type: dict
  sample: {nginx: 1.26.3-3+deb13u1, logrotate: null}
users:
  description: Per account of O(users), its entry, or null when there is none.
  returned: always
  type: dict
  sample:
    mapproxy: {uid: 999, group: mapproxy, home: /opt/mapproxy, shell: /usr/sbin/nologin, comment: MapProxy service}
  contains:
    uid:
      description: The user id.
      type: int
    group:
      description: The name of the primary group, or its gid where it has none.
      type: str
    home:
      description: The home directory.
      type: str
    shell:
      description: The login shell.
      type: str
    comment:
      description: The comment (GECOS) field.
      type: str
groups:
  description: Per group of O(groups), its entry, or null when there is none.
  returned: always
  type: dict
  sample:
    mapproxy: {gid: 999, members: [www-data]}
  contains:
    gid:
      description: The group id.
      type: int
    members:
      description: The accounts that have the group as a supplementary group.
      type: list
      elements: str
"""

import grp
import hashlib
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule

# systemctl show's properties, in the order the module reads them, and their names in the result.
UNIT_PROPERTIES = (('LoadState', 'load_state'), ('UnitFileState', 'unit_file_state'), ('ActiveState', 'active_state'))


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def path_state(path, checksum):
    """What is at path, not following a link, and the key a role compares with."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {'state': 'absent', 'mode': None, 'owner': None, 'group': None, 'checksum': None,
                'link_target': None, 'key': 'absent'}
    if stat.S_ISREG(st.st_mode):
        kind = 'file'
    elif stat.S_ISDIR(st.st_mode):
        kind = 'directory'
    elif stat.S_ISLNK(st.st_mode):
        kind = 'link'
    else:
        kind = 'other'
    mode = '%04o' % stat.S_IMODE(st.st_mode)
    owner = _user_name(st.st_uid)
    group = _group_name(st.st_gid)
    digest = None
    if checksum and kind == 'file':
        sha1 = hashlib.sha1()
        with open(path, 'rb') as handle:
            for block in iter(lambda: handle.read(1 << 16), b''):
                sha1.update(block)
        digest = sha1.hexdigest()
    return {'state': kind, 'mode': mode, 'owner': owner, 'group': group, 'checksum': digest,
            'link_target': os.path.realpath(path) if kind == 'link' else None,
            'key': ' '.join((digest or kind, mode, owner, group))}


def parse_units(names, text):
    """systemctl show prints one block per unit, in the order of its arguments."""
    blocks = text.strip('\n').split('\n\n') if text.strip() else []
    if len(blocks) != len(names):
        raise ValueError('systemctl show printed %d blocks for %d units' % (len(blocks), len(names)))
    units = {}
    for name, block in zip(names, blocks):
        props = dict(line.split('=', 1) for line in block.splitlines() if '=' in line)
        units[name] = dict((key, props.get(prop, '')) for prop, key in UNIT_PROPERTIES)
    return units


def parse_packages(names, text):
    """dpkg-query's lines of Package, Status-Status and Version; a name it does not know has none."""
    installed = {}
    for line in text.splitlines():
        fields = line.split('\t')
        if len(fields) == 3 and fields[1] == 'installed':
            installed[fields[0]] = fields[2]
    return {name: installed.get(name) for name in names}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type='list', elements='path', default=[]),
            paths=dict(type='list', elements='path', default=[]),
            units=dict(type='list', elements='str', default=[]),
            packages=dict(type='list', elements='str', default=[]),
            users=dict(type='list', elements='str', default=[]),
            groups=dict(type='list', elements='str', default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    files = {path: path_state(path, True) for path in params['files']}
    files.update((path, path_state(path, False)) for path in params['paths'] if path not in files)

    env = {'LC_ALL': 'C', 'SYSTEMD_PAGER': ''}
    units = {}
    if params['units']:
        names = list(dict.fromkeys(params['units']))
        cmd = [module.get_bin_path('systemctl', required=True), 'show', '--no-pager',
               '--property=' + ','.join(prop for prop, dummy in UNIT_PROPERTIES), '--'] + names
        rc, out, err = module.run_command(cmd, environ_update=env)
        try:
            if rc != 0:
                raise ValueError('exit code %d' % rc)
            units = parse_units(names, out)
        except ValueError as exc:
            module.fail_json(msg='systemctl show could not read the units (%s): %s' % (exc, err.strip() or out.strip()),
                             cmd=cmd, rc=rc, stdout=out, stderr=err)

    packages = {}
    if params['packages']:
        names = list(dict.fromkeys(params['packages']))
        cmd = [module.get_bin_path('dpkg-query', required=True), '--show',
               '--showformat=${Package}\t${db:Status-Status}\t${Version}\n', '--'] + names
        # Exit code 1 names packages that dpkg does not know: not installed.
        rc, out, err = module.run_command(cmd, environ_update=env)
        if rc not in (0, 1):
            module.fail_json(msg='dpkg-query could not read the packages: %s' % (err.strip() or out.strip()),
                             cmd=cmd, rc=rc, stdout=out, stderr=err)
        packages = parse_packages(names, out)

    users = {}
    for name in params['users']:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            users[name] = None
            continue
        users[name] = {'uid': entry.pw_uid, 'group': _group_name(entry.pw_gid),
                       'home': entry.pw_dir, 'shell': entry.pw_shell, 'comment': entry.pw_gecos}

    groups = {}
    for name in params['groups']:
        try:
            entry = grp.getgrnam(name)
        except KeyError:
            groups[name] = None
            continue
        groups[name] = {'gid': entry.gr_gid, 'members': list(entry.gr_mem)}

    module.exit_json(changed=False, files=files, units=units, packages=packages, users=users, groups=groups)


if __name__ == '__main__':
    main()
