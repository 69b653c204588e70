# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Documentation shared by the p2d2.mapproxy modules."""

from __future__ import annotations


class ModuleDocFragment:

    # The venv option, and the descriptions of the attributes; each module states its support.
    DOCUMENTATION = r"""
options:
  venv:
    description:
      - The virtualenv on the managed host that holds MapProxy (the p2d2.mapproxy.mapproxy_venv
        role creates it). The module runs its C(bin/python) and C(bin/mapproxy-seed).
    type: path
    default: /opt/mapproxy/venv
  store_env_file:
    description:
      - The credentials of the caches in a shared store (C(s3), C(redis)), as the role
        p2d2.mapproxy.mapproxy writes them (C(mapproxy_store_env_file)). When the file exists,
        every command the module runs in the venv (MapProxy's loader, C(mapproxy-seed)) reads
        its variables, as the MapProxy service does; the values never reach a command line.
      - The module must be able to read it (root, or the group C(mapproxy)). V("") reads none.
    type: path
    default: /etc/mapproxy/stores.env
attributes:
  check_mode:
    description: Can run in check mode and return the changed status it predicts without changing the target.
  diff_mode:
    description: Would return details of the change in diff mode.
"""

    # The config option of the modules that work on the caches of a configuration.
    CONFIG = r"""
options:
  config:
    description:
      - Path of the MapProxy configuration on the managed host.
    type: path
    default: /etc/mapproxy/mapproxy.yaml
"""
