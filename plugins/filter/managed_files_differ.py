# Copyright: p2d2 maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files of a p2d2.mapproxy.managed_files list that differ from what host_state_info read."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: managed_files_differ
short_description: Keep the files that differ from what p2d2.mapproxy.host_state_info read
description:
  - Takes the files a role would write with M(p2d2.mapproxy.managed_files) and returns those whose
    content, mode, owner or group differ from the host, as the C(files) of M(p2d2.mapproxy.host_state_info)
    report them. A role calls the module only when the list is not empty, so that a run with nothing to
    change does not call it.
  - A file that the host state does not list counts as different.
options:
  _input:
    description: The files, each with C(path), C(content), C(mode) and optionally C(owner) and C(group) (default C(root)).
    type: list
    elements: dict
    required: true
  host_files:
    description: The C(files) result of M(p2d2.mapproxy.host_state_info), read with the paths of the files in its O(files) option.
    type: dict
    required: true
author: p2d2 maintainers
"""

EXAMPLES = r"""
to_write: "{{ wanted | p2d2.mapproxy.managed_files_differ(__state.files) }}"
"""

RETURN = r"""
_value:
  description: The files of the input that differ, in their order.
  type: list
  elements: dict
"""


def file_key(spec):
    """The key host_state_info gives a regular file with this content and these attributes."""
    content = spec['content']
    if not isinstance(content, str):
        raise AnsibleFilterError(f"the content of {spec['path']} is {type(content).__name__}, not text")
    digest = hashlib.sha1(content.encode('utf-8', 'surrogateescape')).hexdigest()
    return ' '.join((digest, str(spec['mode']), spec.get('owner') or 'root', spec.get('group') or 'root'))


def managed_files_differ(wanted, host_files):
    if not isinstance(host_files, Mapping):
        raise AnsibleFilterError('host_files must be the files of host_state_info, a mapping of path to state')
    differ = []
    for spec in wanted:
        if not isinstance(spec, Mapping) or 'path' not in spec or 'content' not in spec or 'mode' not in spec:
            raise AnsibleFilterError(f'each file needs path, content and mode: {spec!r}')
        state = host_files.get(spec['path']) or {}
        if state.get('key') != file_key(spec):
            differ.append(spec)
    return differ


class FilterModule:
    """The files of a role that differ from the host."""

    def filters(self):
        return {'managed_files_differ': managed_files_differ}
