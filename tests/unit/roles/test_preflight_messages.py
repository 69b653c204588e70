# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every failure branch of the roles' preflights, with the input that triggers it: the
message a person reads names the variable and what to do, and never is a template
error of its own. One ansible-playbook run: each case is an inventory host (reached
with the local connection) that runs one role's preflight.yml with its bad value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import VENV, dump_yaml

PLAYBOOK = os.path.join(VENV, 'bin', 'ansible-playbook')
BASE_PYTHON = os.path.join(sys.base_prefix, 'bin', 'python3')
CHECKOUT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(not os.access(PLAYBOOK, os.X_OK), reason='no ansible-playbook in the venv')

# role, variables, a part of the message it must fail with
CASES = {
    # mapproxy_venv
    'venv_version': ('mapproxy_venv', {'mapproxy_venv_mapproxy_version': '>=7'},
                     "mapproxy_venv_mapproxy_version is '>=7': give an exact release"),
    'venv_path': ('mapproxy_venv', {'mapproxy_venv_path': 'opt/venv'},
                  "mapproxy_venv_path is 'opt/venv': give an absolute path"),
    'venv_index': ('mapproxy_venv', {'mapproxy_venv_pip_index_url': 'ftp://mirror'},
                   "'ftp://mirror' is not an http(s):// or file:// URL"),
    'venv_extra': ('mapproxy_venv', {'mapproxy_venv_extra_packages': ['redis; rm -rf']},
                   "mapproxy_venv_extra_packages: 'redis; rm -rf' is not a pip requirement"),
    'venv_extra_pin': ('mapproxy_venv', {'mapproxy_venv_extra_packages': ['MapProxy==6.0.1']},
                       'mapproxy_venv_extra_packages names MapProxy or Gunicorn'),
    # mapproxy
    # mapproxy_common, through the dependency of a role on it
    'shared_path': ('mapproxy', {'mapproxy_config_file': 'etc/mapproxy.yaml'},
                    "mapproxy_config_file is 'etc/mapproxy.yaml': give an absolute path"),
    'shared_name': ('mapproxy_gunicorn', {'mapproxy_service_name': 'MapProxy.service'},
                    "mapproxy_service_name is 'MapProxy.service': give a name of lower-case letters"),
    'replaced': ('mapproxy_seeding', {'mapproxy_seeding_venv_path': '/srv/venv', 'mapproxy_gunicorn_socket': '/run/x'},
                 'mapproxy_gunicorn_socket is set, mapproxy_seeding_venv_path is set, but the collection no longer'
                 ' reads them: set mapproxy_socket, mapproxy_venv_path instead'),
    'shared_type': ('mapproxy_backup', {'mapproxy_venv_path': ['/opt/venv']},
                    "mapproxy_venv_path is '['/opt/venv']': give an absolute path"),
    'cache_dir': ('mapproxy', {'mapproxy_globals': {'cache': {'lock_dir': 'locks'}}},
                  "A cache or lock directory in mapproxy_globals.cache or mapproxy_caches is 'locks'"),
    'base_dir': ('mapproxy', {'mapproxy_globals': {'cache': {'base_dir': '/srv/cache'}}},
                 "mapproxy_globals.cache.base_dir is '/srv/cache' but mapproxy_cache_base_dir is '/cache'"),
    'layer': ('mapproxy', {'mapproxy_layers': [{'title': 'no name'}]},
              "mapproxy_layers[0] needs a 'name' and 'sources'"),
    # mapproxy_gunicorn
    'store_timeouts': ('mapproxy_gunicorn', {'mapproxy_gunicorn_store_timeouts': {'connect': 2, 'read': 10, 'attempts': 1}},
                       'with 4 x attempts x read below mapproxy_gunicorn_timeout (30 s)'),
    'workers': ('mapproxy_gunicorn', {'mapproxy_gunicorn_workers': 'many'},
                "mapproxy_gunicorn_workers is 'many': give 'auto' or a whole number"),
    'socket': ('mapproxy_gunicorn', {'mapproxy_socket': '/tmp/mapproxy.sock'},
               "mapproxy_socket is '/tmp/mapproxy.sock': it must lie directly in the unit's"),
    'bind': ('mapproxy_gunicorn', {'mapproxy_gunicorn_backend_binds': ['8081']},
             "mapproxy_gunicorn_backend_binds has '8081': give HOST:PORT"),
    'no_bind': ('mapproxy_gunicorn', {'mapproxy_socket': ''},
                'mapproxy_socket and mapproxy_gunicorn_backend_binds are both empty'),
    'gunicorn_path': ('mapproxy_gunicorn', {'mapproxy_gunicorn_log_dir': 'log'},
                      "mapproxy_gunicorn_log_dir is 'log': give an absolute path"),
    'write_path': ('mapproxy_gunicorn', {'mapproxy_gunicorn_write_paths': ['cache']},
                   "mapproxy_gunicorn_write_paths has 'cache': give absolute paths"),
    # mapproxy_nginx
    'listen': ('mapproxy_nginx', {'mapproxy_nginx_listen': ['localhost', '0.0.0.0:8080']},
               "mapproxy_nginx_listen is [\"localhost\", \"0.0.0.0:8080\"]: give a list of HOST:PORT,"
               " for example ['0.0.0.0:8080'] or ['[::]:8080'] (not localhost)."),
    'no_listen': ('mapproxy_nginx', {'mapproxy_nginx_listen': []},
                  'mapproxy_nginx_listen is []: give a list of HOST:PORT'),
    'listen_port': ('mapproxy_nginx', {'mapproxy_nginx_listen': ['0.0.0.0:65536']},
                    '(not 0.0.0.0:65536)'),
    # a deprecated name is read as the new one, and checked as it
    'listen_old': ('mapproxy_nginx', {'mapproxy_gunicorn_tcp_binds': ['8080']},
                   'mapproxy_nginx_listen is ["8080"]: give a list of HOST:PORT'),
    'nginx_path': ('mapproxy_nginx', {'mapproxy_nginx_log_dir': '/var/log/my logs'},
                   "mapproxy_nginx_log_dir is '/var/log/my logs': give an absolute path (letters"),
    'unstored_ttl': ('mapproxy_nginx', {'mapproxy_nginx_unstored_cache_seconds': 0},
                     "mapproxy_nginx_unstored_cache_seconds is '0' and mapproxy_nginx_unstored_cache_max_size is '256m':"
                     " give whole seconds"),
    'unstored_size': ('mapproxy_nginx', {'mapproxy_nginx_unstored_cache_max_size': '1 GB'},
                      "mapproxy_nginx_unstored_cache_max_size is '1 GB': give whole seconds"),
    'unstored_dir': ('mapproxy_nginx', {'mapproxy_nginx_unstored_cache_dir': 'cache'},
                     "mapproxy_nginx_unstored_cache_dir is 'cache': give an absolute path"),
    'proxies': ('mapproxy_nginx', {'mapproxy_nginx_trusted_proxies': ['proxy.lan']},
                'mapproxy_nginx_trusted_proxies has entries that are not IPv4 or IPv6 addresses or networks:'),
    'server_config': ('mapproxy_nginx', {'mapproxy_nginx_extra_server_config': 'gzip on;'},
                      'mapproxy_nginx_extra_server_config must be a list of lines'),
    # the fast path reads the host's mapproxy.yaml with MapProxy (the venv running pytest)
    'fast_path_venv': ('mapproxy_nginx', {'mapproxy_venv_path': '/nonexistent/venv'},
                       'mapproxy_nginx_fast_path answers tiles from the caches MapProxy\'s configuration names, and'
                       ' MapProxy could not read it: The MapProxy venv /nonexistent/venv does not exist (option venv)'),
    'fast_path_config': ('mapproxy_nginx', {'mapproxy_venv_path': VENV,
                                            'mapproxy_config_file': '{{ p2d2_case_dir }}/invalid.yaml'},
                         'could not read it: {{ p2d2_case_dir }}/invalid.yaml is not a valid MapProxy configuration:'
                         " 'yes' in services.tms not of type dict"),
    # mapproxy_firewall
    'sources': ('mapproxy_firewall', {'mapproxy_firewall_mapproxy_sources': ['192.0.2.300']},
                'mapproxy_firewall_mapproxy_sources has entries that are not IPv4 or IPv6 addresses or networks'),
    'ports': ('mapproxy_firewall', {'mapproxy_firewall_mapproxy_ports': [0]},
              "mapproxy_firewall_mapproxy_ports has '0': give TCP ports from 1 to 65535"),
    'ssh_port': ('mapproxy_firewall', {'mapproxy_firewall_ssh_port': 'ssh'},
                 "mapproxy_firewall_ssh_port is 'ssh': give a TCP port"),
    'rate': ('mapproxy_firewall', {'mapproxy_firewall_rate_limit': 10, 'mapproxy_firewall_rate_limit_burst': 0},
             'mapproxy_firewall_rate_limit is 10 and mapproxy_firewall_rate_limit_burst 0: give new connections'),
    'rollback': ('mapproxy_firewall', {'mapproxy_firewall_rollback_timeout': 5},
                 'mapproxy_firewall_rollback_timeout is 5: give 0 (no safety net) or at least 30 seconds'),
    'egress': ('mapproxy_firewall', {'mapproxy_firewall_egress_rules': [{'to': ['nowhere'], 'tcp_ports': [443]}]},
               'mapproxy_firewall_egress_rules entry 1'),
    'egress_type': ('mapproxy_firewall', {'mapproxy_firewall_egress_rules': ['10.0.0.1']},
                    "mapproxy_firewall_egress_rules entry 1 (10.0.0.1) is not valid"),
    # mapproxy_backup
    'backup_dir': ('mapproxy_backup', {'mapproxy_backup_dir': '/backup/$(id)'},
                   "mapproxy_backup_dir is '/backup/$(id)': give an absolute path"),
    'backup_paths': ('mapproxy_backup', {'mapproxy_backup_paths': ['/backup']},
                     "mapproxy_backup_paths has '/backup': give absolute paths"),
    'backup_exclude': ('mapproxy_backup', {'mapproxy_backup_exclude_paths': ['cache']},
                       "mapproxy_backup_exclude_paths has 'cache': give absolute paths"),
    'backup_empty': ('mapproxy_backup', {'mapproxy_backup_paths': []},
                     'mapproxy_backup_paths is empty; list what to archive'),
    'backup_prefix': ('mapproxy_backup', {'mapproxy_backup_prefix': 'my backup'},
                      "mapproxy_backup_prefix is 'my backup': give letters"),
    'backup_unit': ('mapproxy_backup', {'mapproxy_backup_unit_name': 'my backup'},
                    "mapproxy_backup_unit_name is 'my backup': give a systemd unit name"),
    'retention': ('mapproxy_backup', {'mapproxy_backup_retention_days': 0},
                  "mapproxy_backup_retention_days is '0': give a whole number of days"),
    'fetch_dir': ('mapproxy_backup', {'mapproxy_backup_fetch_dir': ['/srv']},
                  'mapproxy_backup_fetch_dir must be a path on the controller, or empty'),
    'backup_schedule': ('mapproxy_backup', {'mapproxy_backup_schedule': 'every sunday'},
                        "mapproxy_backup_schedule is 'every sunday', which systemd does not understand"),
    'backup_delay': ('mapproxy_backup', {'mapproxy_backup_randomized_delay': 'a while'},
                     "mapproxy_backup_randomized_delay is 'a while': give a time span"),
    # mapproxy_seeding
    'seeding_path': ('mapproxy_seeding', {'mapproxy_seeding_config_file': 'seed.yaml'},
                     "mapproxy_seeding_config_file is 'seed.yaml': give an absolute path"),
    'seeding_write': ('mapproxy_seeding', {'mapproxy_seeding_write_paths': ['cache']},
                      "mapproxy_seeding_write_paths has 'cache': give absolute paths"),
    'seeding_store_timeouts': ('mapproxy_seeding', {'mapproxy_seeding_store_timeouts': {'connect': 3, 'read': 0, 'attempts': 1}},
                               'give all of connect, read and attempts as whole numbers of at least 1, for example'
                               ' {connect: 3, read: 10, attempts: 2}'),
    'seeding_nice': ('mapproxy_seeding', {'mapproxy_seeding_nice': 30},
                     'mapproxy_seeding_nice must be -20 to 19 (is 30)'),
    'seeding_job': ('mapproxy_seeding', {'mapproxy_seeding_jobs': [{'name': 'x', 'caches': ['osm_cache']}]},
                    "mapproxy_seeding_jobs[0] (x): 'levels' is missing"),
    'fast_path': ('mapproxy_nginx', {'mapproxy_venv_path': VENV, 'mapproxy_config_file': '{{ p2d2_case_dir }}/cors.yaml'},
                  "mapproxy_nginx_fast_path: globals.http.access_control_allow_origin is 'a\"; b': give one origin"),
    'seeding_schedule': ('mapproxy_seeding', {'mapproxy_seeding_jobs': [], 'mapproxy_seeding_cache_limits': [],
                                              'mapproxy_seeding_cleanup_jobs': [
                                                  {'name': 'old', 'caches': ['osm_cache'], 'max_age': '30d',
                                                   'schedule': 'when it rains'}]},
                         "The schedule 'when it rains' of old is not a systemd calendar expression"),
    'seeding_gap': ('mapproxy_seeding', {'mapproxy_seeding_jobs': [], 'mapproxy_seeding_cache_limits': [],
                                         'mapproxy_seeding_cleanup_jobs': [
                                             {'name': 'old', 'caches': ['osm_cache'], 'max_age': '30d',
                                              'schedule': 'hourly', 'max_duration': '2h'}]},
                    "Job 'old' may run 2h (max_duration"),
    'seeding_venv': ('mapproxy_seeding', {'mapproxy_venv_path': '/nonexistent/venv'},
                     '/nonexistent/venv/bin/mapproxy-seed does not exist: install MapProxy first'),
    # mapproxy_lb
    'lb_listen': ('mapproxy_lb', {'mapproxy_lb_listen': ['80']},
                  'mapproxy_lb_listen is ["80"]: give a list of HOST:PORT, for example ["0.0.0.0:80"]'),
    'lb_numbers': ('mapproxy_lb', {'mapproxy_lb_health_fall': 0},
                   'mapproxy_lb_health_fall is not a whole number above 0.'),
    'lb_tile': ('mapproxy_lb', {'mapproxy_lb_health_tile': 'wmts/osm/webmercator/0/0/0.png'},
                'mapproxy_lb_health_tile is "wmts/osm/webmercator/0/0/0.png": give the path of a tile that starts with /'),
    'lb_no_hosts': ('mapproxy_lb', {'mapproxy_lb_backend_group': 'nobody'},
                    'No MapProxy hosts to balance: the inventory group nobody (mapproxy_lb_backend_group) is empty'),
    'lb_backend': ('mapproxy_lb', {'mapproxy_lb_backends': [{'name': 'mp1', 'address': '10.0.0.11', 'port': 70000},
                                                            {'name': 'mp2', 'address': '127.0.0.1', 'port': 80}]},
                   'MapProxy host mp1: port 70000 is not a TCP port (1-65535); MapProxy host mp2: \'127.0.0.1\' is not an'
                   ' address the balancer can reach; set its mapproxy_lb_backend_address'),
    'lb_meta': ('mapproxy_lb', {'mapproxy_lb_backends': [{'name': 'mp1', 'address': '10.0.0.11', 'port': 8080}]},
                'mapproxy_lb_backends lists the MapProxy hosts by hand, so the role cannot read their meta tile size:'
                ' set mapproxy_lb_meta_size'),
}


# The message of the failed task, or of each failed item of a loop.
__MESSAGES = ("{{ ([ansible_failed_result.msg] + (ansible_failed_result.results | default([])"
              " | selectattr('failed', 'defined') | selectattr('failed') | map(attribute='msg') | list))"
              " | join(' | ') }}")


def ansible_env(tmp_path):
    """ansible-playbook against the checkout's collection, with its state in tmp_path."""
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(CHECKOUT / 'collections'),
                ANSIBLE_HOME=str(tmp_path / 'ansible-home'), ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'),
                ANSIBLE_NOCOLOR='1', ANSIBLE_FORKS='8', ANSIBLE_RETRY_FILES_ENABLED='0')


# MapProxy configurations the cases name as {{ p2d2_case_dir }}/NAME.yaml
CONFIGS = {
    'invalid.yaml': {'services': {'tms': 'yes'}, 'layers': []},
    'cors.yaml': {'services': {'tms': None}, 'layers': [{'name': 'd', 'title': 'd', 'sources': ['dbg']}],
                  'sources': {'dbg': {'type': 'debug'}},
                  'globals': {'http': {'access_control_allow_origin': 'a"; b'}}},
}


def test_every_preflight_failure_names_its_cause(tmp_path):
    out = tmp_path / 'messages'
    out.mkdir()
    for name, config in CONFIGS.items():
        (tmp_path / name).write_text(dump_yaml(config))
    hosts = {}
    for name, (role, variables, _expected) in CASES.items():
        hosts[name] = dict(variables, p2d2_case_role=role, ansible_connection='local',
                           ansible_python_interpreter=BASE_PYTHON, p2d2_case_dir=str(tmp_path))
    (tmp_path / 'inventory.json').write_text(json.dumps({'all': {'hosts': hosts}}))
    (tmp_path / 'play.yml').write_text(dump_yaml([{
        'name': 'Run one preflight per case',
        'hosts': 'all',
        'gather_facts': False,
        'tasks': [{
            'name': 'Run the preflight',
            'block': [{'name': 'Include the preflight',
                       'ansible.builtin.include_role': {'name': 'p2d2.mapproxy.{{ p2d2_case_role }}',
                                                        'tasks_from': 'preflight'}}],
            'rescue': [{'name': 'Record the message',
                        'ansible.builtin.copy': {'content': __MESSAGES,
                                                 'dest': str(out) + '/{{ inventory_hostname }}',
                                                 'mode': '0600'}}],
        }],
    }]))
    env = ansible_env(tmp_path)
    proc = subprocess.run([PLAYBOOK, '-i', str(tmp_path / 'inventory.json'), str(tmp_path / 'play.yml')],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    problems = []
    for name, (role, _variables, expected) in sorted(CASES.items()):
        path = out / name
        if not path.exists():
            problems.append('%s (%s): the preflight accepted the bad input' % (name, role))
            continue
        message = path.read_text()
        expected = expected.replace('{{ p2d2_case_dir }}', str(tmp_path))
        # the messages are folded (>-): compare them with single spaces
        if ' '.join(expected.split()) not in ' '.join(message.split()) or 'Error while' in message:
            problems.append('%s (%s): %r' % (name, role, message))
    assert not problems, ' '.join(problems)


# The day-2 playbooks' own checks of their extra vars (given here as host vars, one host
# per case), before their modules run: playbook, variables, a part of the message.
PLAYBOOK_CASES = {
    'clean_nothing': ('clean_cache.yml', {'cache': 'osm_cache'},
                      'Give cache=NAME and either max_age=DAYS (remove older tiles) or remove_all=true'),
    'clean_both': ('clean_cache.yml', {'cache': 'osm_cache', 'max_age': 30, 'remove_all': True},
                   'Give cache=NAME and either max_age=DAYS'),
    'clean_age': ('clean_cache.yml', {'cache': 'osm_cache', 'max_age': '30 days'},
                  'max_age=30 days: give days (30) or a number with w, d, h, m or s (12h)'),
    'seed_cache': ('seed.yml', {'cache': 'osm cache'},
                   'cache=osm cache: give one name or several separated by commas'),
    'seed_levels': ('seed.yml', {'levels': '10-0'},
                    'Option levels: the range 10-0 runs backwards (give the lower level first).'),
    'seed_bbox': ('seed.yml', {'bbox': '9.0,52.5,5.8,50.2'},
                  'bbox=9.0,52.5,5.8,50.2: give minx,miny,maxx,maxy'),
    'seed_bbox_words': ('seed.yml', {'bbox': 'Cologne'}, 'bbox=Cologne: give minx,miny,maxx,maxy'),
}


def _failures(json_out):
    """Host name -> the messages of its failed tasks, from the json callback's output."""
    messages = {}
    for play in json.loads(json_out)['plays']:
        for task in play['tasks']:
            for host, result in task['hosts'].items():
                if result.get('failed'):
                    failed_items = [item for item in result.get('results', []) if item.get('failed')]
                    found = [result.get('msg', '')] + [item.get('msg', '') for item in failed_items]
                    messages.setdefault(host, []).extend(found)
    return dict((host, ' | '.join(found)) for host, found in messages.items())


def test_every_playbook_parameter_failure_names_its_cause(tmp_path):
    problems = []
    for playbook in sorted(set(case[0] for case in PLAYBOOK_CASES.values())):
        cases = dict((name, case) for name, case in PLAYBOOK_CASES.items() if case[0] == playbook)
        hosts = dict((name, dict(variables, ansible_connection='local', ansible_python_interpreter=BASE_PYTHON))
                     for name, (_playbook, variables, _expected) in cases.items())
        inventory = tmp_path / ('%s.json' % playbook)
        inventory.write_text(json.dumps({'all': {'children': {'mapproxy': {'hosts': hosts}}}}))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(CHECKOUT / 'collections'),
                   ANSIBLE_HOME=str(tmp_path / 'ansible-home'), ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'),
                   ANSIBLE_NOCOLOR='1', ANSIBLE_FORKS='8', ANSIBLE_RETRY_FILES_ENABLED='0',
                   ANSIBLE_STDOUT_CALLBACK='ansible.posix.json')
        proc = subprocess.run([PLAYBOOK, '-i', str(inventory), str(CHECKOUT / 'playbooks' / playbook)],
                              capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=600, check=False)
        failures = _failures(proc.stdout)
        for name, (_playbook, _variables, expected) in sorted(cases.items()):
            message = failures.get(name)
            if message is None:
                problems.append('%s (%s): the playbook accepted the bad input' % (name, playbook))
            elif ' '.join(expected.split()) not in ' '.join(message.split()) or 'Error while' in message:
                problems.append('%s (%s): %r' % (name, playbook, message))
    assert not problems, '\n'.join(problems)


def test_the_shared_values_are_checked_for_every_role_that_reads_them(tmp_path):
    """Ansible runs a role dependency once per play unless it allows duplicates: a later
    include_role with its own shared value must be checked again, not create a venv at
    a relative path (the mapproxy_venv scenario once did)."""
    out = tmp_path / 'message'
    (tmp_path / 'play.yml').write_text(dump_yaml([{
        'name': 'Run two roles, the second with a bad shared value',
        'hosts': 'all',
        'gather_facts': False,
        'tasks': [
            {'name': 'Run a preflight with the defaults',
             'ansible.builtin.include_role': {'name': 'p2d2.mapproxy.mapproxy_venv', 'tasks_from': 'preflight'}},
            {'name': 'Run it again',
             'block': [{'name': 'Include it with a relative venv path',
                        'ansible.builtin.include_role': {'name': 'p2d2.mapproxy.mapproxy_venv',
                                                         'tasks_from': 'preflight'},
                        'vars': {'mapproxy_venv_path': 'opt/venv'}}],
             'rescue': [{'name': 'Record the message',
                         'ansible.builtin.copy': {'content': __MESSAGES, 'dest': str(out), 'mode': '0600'}}]},
        ],
    }]))
    env = ansible_env(tmp_path)
    proc = subprocess.run([PLAYBOOK, '-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=' + BASE_PYTHON,
                           str(tmp_path / 'play.yml')],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert out.exists(), 'the second include accepted mapproxy_venv_path: opt/venv'
    assert "mapproxy_venv_path is 'opt/venv': give an absolute path" in out.read_text()
