# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles' meta/argument_specs.yml as Ansible applies them when a role starts (the
validate_argument_spec action uses ArgumentSpecValidator): the nested options of jobs,
limits and rules reject a wrong key or type before any task runs, and every role's
defaults pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

ROLES = Path(__file__).resolve().parents[3] / 'roles'


def _spec(role):
    with open(ROLES / role / 'meta' / 'argument_specs.yml', encoding='utf-8') as stream:
        return yaml.safe_load(stream)['argument_specs']['main']['options']


def _errors(role, arguments):
    result = ArgumentSpecValidator(_spec(role)).validate(arguments)
    return ' | '.join(result.error_messages)


@pytest.mark.parametrize('role', sorted(p.name for p in ROLES.iterdir() if (p / 'meta' / 'argument_specs.yml').exists()))
def test_the_defaults_pass(role):
    with open(ROLES / role / 'defaults' / 'main.yml', encoding='utf-8') as stream:
        defaults = yaml.safe_load(stream) or {}
    assert _errors(role, defaults) == ''


JOB = {'name': 'osm', 'caches': ['osm_cache'], 'levels': '0-5'}
CLEANUP = {'name': 'old', 'caches': ['osm_cache'], 'max_age': '30d'}
LIMIT = {'name': 'osm', 'caches': ['osm_cache'], 'max_size': '20G'}

# role, arguments, parts of the message
CASES = {
    'job_unknown_key': ('mapproxy_seeding', {'mapproxy_seeding_jobs': [dict(JOB, level='0-5')]},
                        ['level', 'mapproxy_seeding_jobs']),
    'job_no_levels': ('mapproxy_seeding', {'mapproxy_seeding_jobs': [{'name': 'osm', 'caches': ['osm_cache']}]},
                      ['missing required arguments: levels', 'mapproxy_seeding_jobs']),
    'job_bbox_and_coverage': ('mapproxy_seeding', {'mapproxy_seeding_jobs': [dict(JOB, bbox=[0, 0, 1, 1], coverage='de')]},
                              ['mutually exclusive: bbox|coverage', 'mapproxy_seeding_jobs']),
    'job_bbox_words': ('mapproxy_seeding', {'mapproxy_seeding_jobs': [dict(JOB, bbox=['Cologne', 0, 1, 1])]},
                       ['bbox', 'float']),
    'job_concurrency': ('mapproxy_seeding', {'mapproxy_seeding_jobs': [dict(JOB, concurrency='many')]},
                        ['concurrency', 'int']),
    'job_refresh': ('mapproxy_seeding', {'mapproxy_seeding_jobs': [dict(JOB, refresh_before='7 days')]},
                    ['refresh_before', 'dict']),
    'cleanup_unknown_key': ('mapproxy_seeding', {'mapproxy_seeding_cleanup_jobs': [dict(CLEANUP, max_days=30)]},
                            ['max_days', 'mapproxy_seeding_cleanup_jobs']),
    'cleanup_neither': ('mapproxy_seeding', {'mapproxy_seeding_cleanup_jobs': [{'name': 'old', 'caches': ['x']}]},
                        ['one of the following is required: max_age, max_age_days, remove_all']),
    'cleanup_all': ('mapproxy_seeding', {'mapproxy_seeding_cleanup_jobs': [dict(CLEANUP, remove_all='sometimes')]},
                    ['remove_all', 'bool']),
    'limit_both': ('mapproxy_seeding', {'mapproxy_seeding_cache_limits': [dict(LIMIT, max_filesystem_percent=80)]},
                   ['mutually exclusive: max_size|max_filesystem_percent', 'mapproxy_seeding_cache_limits']),
    'limit_neither': ('mapproxy_seeding', {'mapproxy_seeding_cache_limits': [{'name': 'osm', 'caches': ['x']}]},
                      ['one of the following is required: max_size, max_filesystem_percent']),
    'limit_no_caches': ('mapproxy_seeding', {'mapproxy_seeding_cache_limits': [{'name': 'osm', 'max_size': '1G'}]},
                        ['missing required arguments: caches']),
    'egress_unknown_key': ('mapproxy_firewall', {'mapproxy_firewall_egress_rules': [{'to': ['10.0.0.1'], 'port': 443}]},
                           ['port', 'mapproxy_firewall_egress_rules']),
    'egress_port_name': ('mapproxy_firewall', {'mapproxy_firewall_egress_rules': [{'tcp_ports': ['https']}]},
                         ['tcp_ports', 'int']),
    'egress_nothing': ('mapproxy_firewall', {'mapproxy_firewall_egress_rules': [{'comment': 'all'}]},
                       ['one of the following is required: to, tcp_ports, udp_ports']),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_a_wrong_nested_option_is_rejected(case):
    role, arguments, expected = CASES[case]
    message = _errors(role, arguments)
    assert message, '%s: the spec accepted %r' % (case, arguments)
    for part in expected:
        assert part in message, '%s: %r' % (case, message)


def test_the_documented_forms_pass():
    """What the role's docs and filters accept, the spec accepts too."""
    assert _errors('mapproxy_seeding', {
        'mapproxy_seeding_jobs': [
            dict(JOB, levels=[3, 5], bbox=[6.0, 50.5, 7.5, 51.5], srs='EPSG:4326', refresh_before={'days': 7},
                 schedule='*-*-* 03:00:00', max_duration='2h', concurrency=4, randomized_delay='30m'),
            dict(JOB, levels={'from': 0, 'to': 5}, coverage='germany', grids=['webmercator']),
        ],
        'mapproxy_seeding_cleanup_jobs': [dict(CLEANUP, levels='0-5'), {'name': 'all', 'caches': ['x'], 'remove_all': True},
                                          dict(CLEANUP, remove_all=False), dict(CLEANUP, max_age={'days': 30}),
                                          {'name': 'old', 'caches': ['x'], 'max_age_days': 30}],
        'mapproxy_seeding_cache_limits': [LIMIT, {'name': 'fs', 'caches': ['x'], 'max_filesystem_percent': 85,
                                                  'target_percent': 80}],
    }) == ''
    assert _errors('mapproxy_firewall', {'mapproxy_firewall_egress_rules': [
        {'comment': 'mirrors', 'tcp_ports': [80, 443]}, {'to': ['192.0.2.0/24', 'fd00::1'], 'udp_ports': [53]},
        {'to': ['192.0.2.1']}]}) == ''
