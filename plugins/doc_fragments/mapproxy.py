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
