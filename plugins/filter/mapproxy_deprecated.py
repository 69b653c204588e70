# Copyright: p2d2 maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Warn about deprecated role variables and give their values under the new names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

DOCUMENTATION = r"""
name: mapproxy_deprecated
short_description: Warn about deprecated role variables and give their values under the new names
description:
  - Used by the role p2d2.mapproxy.mapproxy_common, which every role of the collection depends on. For each
    deprecated variable that is set, prints Ansible's deprecation warning (once per run) and returns the new
    variable that takes its value, so that the role can set it for the rest of the play.
  - A deprecated variable without a new name has no effect any more; it only gets the warning.
options:
  _input:
    description: The deprecated variables that are set, name to value.
    type: dict
    required: true
  table:
    description:
      - Every deprecated variable, name to a mapping with C(msg) (what to do instead) and optionally C(use)
        (the new variable that takes its value; a list, or with C(bool=true) a boolean). All of them go in
        release 0.3.0.
    type: dict
    required: true
author: p2d2 maintainers
"""

EXAMPLES = r"""
new_values: "{{ {'mapproxy_nginx_enabled': false} | p2d2.mapproxy.mapproxy_deprecated(__mapproxy_common_deprecated) }}"
# {'mapproxy_nginx_fast_path': false}, and the warning
# "mapproxy_nginx_enabled is deprecated: ... This feature will be removed from p2d2.mapproxy in version 0.3.0."
"""

RETURN = r"""
_value:
  description: The new variables and their values, name to value.
  type: dict
"""


def mapproxy_deprecated(found, table):
    """Warn about each variable of `found` (name to value) that `table` describes, and return the
    new variables that take their values."""
    if not isinstance(found, Mapping) or not isinstance(table, Mapping):
        raise AnsibleFilterError('mapproxy_deprecated takes two mappings: the variables that are set and the table')
    new = {}
    for name in sorted(found):
        entry = table.get(name)
        if not isinstance(entry, Mapping) or not isinstance(entry.get('msg'), str):
            raise AnsibleFilterError(f'{name} is not in the table of deprecated variables (or has no msg)')
        # One release for all of them: ansible-test wants the version as a literal.
        Display().deprecated(f"{name} is deprecated: {entry['msg']}", version='0.3.0', collection_name='p2d2.mapproxy')
        use = entry.get('use')
        if use:
            value = found[name]
            if entry.get('bool'):
                value = _boolean(name, value)
            elif isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise AnsibleFilterError(f"{name} is {value!r}: give a list, as {use} takes it")
            new[use] = value
    return new


def _boolean(name, value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ('true', 'yes', 'on', '1'):
        return True
    if text in ('false', 'no', 'off', '0'):
        return False
    raise AnsibleFilterError(f'{name} is {value!r}: give true or false')


class FilterModule:
    """The deprecated variables of the collection's roles."""

    def filters(self):
        return {'mapproxy_deprecated': mapproxy_deprecated}
