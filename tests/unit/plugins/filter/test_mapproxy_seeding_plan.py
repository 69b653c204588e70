# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The job filter of the seeding role: what it accepts, how it normalises, and that
every refusal names the variable, the entry and the key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.p2d2.mapproxy.plugins.filter.mapproxy_seeding_plan import mapproxy_seeding_plan
from ansible_collections.p2d2.mapproxy.tests.unit.mapproxy_testing import (
    VENV, file_cache, make_config, needs_mapproxy, write_config,
)

ROLE = Path(__file__).resolve().parents[4] / 'roles' / 'mapproxy_seeding'


def seed(**kw):
    job = {'name': 'j', 'caches': ['osm_cache'], 'levels': '11-14'}
    job.update(kw)
    return job


def test_the_role_defaults_reproduce_the_runbook():
    defaults = yaml.safe_load((ROLE / 'defaults' / 'main.yml').read_text())
    # The defaults as roles/mapproxy_seeding/vars/main.yml passes them on.
    job_defaults = {key: defaults['mapproxy_seeding_' + key] for key in (
        'schedule', 'limit_schedule', 'max_duration', 'limit_max_duration', 'concurrency', 'randomized_delay')}
    job_defaults['target_percent'] = defaults['mapproxy_seeding_limit_target_percent']
    plan = mapproxy_seeding_plan(defaults['mapproxy_seeding_jobs'],
                                 cleanup_jobs=defaults['mapproxy_seeding_cleanup_jobs'],
                                 cache_limits=defaults['mapproxy_seeding_cache_limits'],
                                 defaults=job_defaults)
    assert plan['seed_config'] == {
        'coverages': {'osm_daily_bbox': {'bbox': [6.0, 50.5, 7.5, 51.5], 'srs': 'EPSG:4326'}},
        'seeds': {'osm_daily': {'caches': ['osm_cache'], 'grids': ['webmercator'],
                                'coverages': ['osm_daily_bbox'], 'levels': [11, 12, 13, 14]}},
    }
    assert plan['seeds'][0]['schedule'] == 'daily'
    assert [(c['caches'], c['max_age_days']) for c in plan['cleanups']] == [(['osm_cache', 'geoserver_cache'], 30)]
    assert [(lim['caches'], lim['max_size']) for lim in plan['limits']] == [
        (['osm_cache'], 20 * 1024 ** 3), (['geoserver_cache'], 10 * 1024 ** 3)]
    assert [lim['schedule'] for lim in plan['limits']] == ['hourly', 'hourly']
    assert [lim['max_seconds'] for lim in plan['limits']] == [45 * 60, 45 * 60]


@pytest.mark.parametrize('levels, expected', [
    (5, [5]), ('11-14', [11, 12, 13, 14]), ('3,5,7-8', [3, 5, 7, 8]), ([2, 1], [1, 2]),
    ({'from': 0, 'to': 2}, [0, 1, 2]), (' 4 - 5 ', [4, 5]),
])
def test_levels_are_normalised(levels, expected):
    assert mapproxy_seeding_plan([seed(levels=levels)])['seeds'][0]['levels'] == expected


@pytest.mark.parametrize('job, message', [
    (seed(levels='14-11'), r"mapproxy_seeding_jobs\[0\] \(j\): Option 'levels': the range 14-11 runs backwards"),
    (seed(levels='31'), r"levels outside 0-30"),
    (seed(levels='all'), r"Option 'levels': 'all' is not a level, a range such as 11-14"),
    (seed(levels=True), r"Option 'levels' must be a level, a range such as 11-14, a list of levels or \{from: N, to: M\}, not True"),
    (seed(levels=[3, 'x']), r"Option 'levels': 'x' is not a level number"),
    (seed(levels=None), r"'levels' is empty"),
    ({'name': 'j', 'caches': ['c']}, r"'levels' is missing: without it mapproxy-seed seeds all 20 levels"),
    (seed(level='3'), r"unknown key\(s\) level"),
    (seed(name='Bad Name'), r"'name' is 'Bad Name'"),
    (seed(caches=[]), r"'caches' must be a non-empty list"),
    (seed(bbox=[7.5, 50.5, 6.0, 51.5]), r"'bbox' .* is empty or reversed"),
    (seed(bbox=[1, 2, 3]), r"'bbox' must be four numbers"),
    (seed(bbox=[6, 50, 7, 51], srs='4326'), r"'srs' is '4326'"),
    (seed(srs='EPSG:4326'), r"'srs' belongs to 'bbox'"),
    (seed(coverage='nowhere'), r"'coverage' 'nowhere' is not in mapproxy_seeding_coverages"),
    (seed(bbox=[6, 50, 7, 51], coverage='x'), r"either 'bbox' .* or 'coverage'"),
    (seed(refresh_before={'day': 1}), r"'refresh_before' has the key 'day'"),
    (seed(refresh_before={'days': -1}), r"'refresh_before.days' must be a number of 0 or more"),
    (seed(refresh_before={'time': 'yesterday'}), r"'refresh_before.time' must be an ISO 8601 time"),
    (seed(max_duration='6 hours'), r"'max_duration' is '6 hours'"),
    (seed(max_duration='0s'), r"give at least one second"),
    (seed(concurrency=0), r"'concurrency' is 0"),
    (seed(schedule=''), r"'schedule' is ''"),
    (seed(randomized_delay='soon'), r"'randomized_delay' is 'soon'"),
])
def test_bad_seeding_jobs_are_named(job, message):
    with pytest.raises(AnsibleFilterError, match=message):
        mapproxy_seeding_plan([job])


@pytest.mark.parametrize('job, message', [
    ({'name': 'c', 'caches': ['a']}, r"mapproxy_seeding_cleanup_jobs\[0\] \(c\): give exactly one of 'max_age'"),
    ({'name': 'c', 'caches': ['a'], 'max_age': '3d', 'remove_all': True}, r"exactly one of 'max_age'"),
    ({'name': 'c', 'caches': ['a'], 'max_age_days': 3, 'remove_all': True}, r"exactly one of 'max_age'"),
    ({'name': 'c', 'caches': ['a'], 'max_age': 0}, r"'max_age' is 0: give an age above 0"),
    ({'name': 'c', 'caches': ['a'], 'max_age_days': 0}, r"'max_age_days' is 0"),
    ({'name': 'c', 'caches': ['a'], 'max_age': '30 days'}, r"\(c\): Option 'max_age': '30 days' is not an age"),
    ({'name': 'c', 'caches': ['a'], 'max_age': {'months': 1}}, r"Unknown key months in option 'max_age'"),
    ({'name': 'c', 'caches': ['a'], 'max_age': True}, r"'max_age' is True"),
    ({'name': 'c', 'caches': ['a'], 'max_age': '3d', 'max_age_days': 3}, r"give 'max_age' only"),
    ({'name': 'c', 'caches': ['a'], 'remove_all': 'yes'}, r"'remove_all' is 'yes'"),
    ({'name': 'c', 'caches': ['a'], 'remove_all': True, 'levels': '9-3'}, r"runs backwards"),
])
def test_bad_cleanup_jobs_are_named(job, message):
    with pytest.raises(AnsibleFilterError, match=message):
        mapproxy_seeding_plan([], cleanup_jobs=[job])


@pytest.mark.parametrize('age, days, text', [
    ('30d', 30, '30 days'), (30, 30, '30 days'), ('12h', 0.5, '12 hours'), ('2w', 14, '14 days'),
    ({'days': 1, 'hours': 12}, 1.5, '36 hours'), ('90m', 0.0625, '90 minutes'), (0.5, 0.5, '12 hours'),
])
def test_a_cleanup_age_reads_as_the_module_reads_it(age, days, text):
    plan = mapproxy_seeding_plan([], cleanup_jobs=[{'name': 'c', 'caches': ['a'], 'max_age': age}])
    assert (plan['cleanups'][0]['max_age_days'], plan['cleanups'][0]['max_age_text']) == (days, text)


def test_the_old_key_max_age_days_works_with_a_deprecation(capfd):
    # A name of its own: Ansible prints the same deprecation once.
    plan = mapproxy_seeding_plan([], cleanup_jobs=[{'name': 'legacy', 'caches': ['a'], 'max_age_days': 30}])
    assert plan['cleanups'][0]['max_age_days'] == 30
    err = capfd.readouterr().err
    assert "'max_age_days' is now 'max_age'" in err and 'version 0.3.0' in err, err


@pytest.mark.parametrize('size, expected', [
    ('20G', 20 * 1024 ** 3), ('500M', 500 * 1024 ** 2), ('1.5T', int(1.5 * 1024 ** 4)), ('40KiB', 40 * 1024),
    ('10GB', 10 * 1024 ** 3), (4096, 4096),
])
def test_sizes_are_read_in_binary_units(size, expected):
    plan = mapproxy_seeding_plan([], cache_limits=[{'name': 'l', 'caches': ['a'], 'max_size': size}])
    assert plan['limits'][0]['max_size'] == expected


@pytest.mark.parametrize('limit, message', [
    ({'name': 'l', 'caches': ['a']}, r"mapproxy_seeding_cache_limits\[0\] \(l\): give exactly one of 'max_size'"),
    ({'name': 'l', 'caches': ['a'], 'max_size': '20 gigs'}, r"'max_size' is '20 gigs'"),
    ({'name': 'l', 'caches': ['a'], 'max_size': 0}, r"'max_size' is 0"),
    ({'name': 'l', 'caches': ['a'], 'max_size': '-1G'}, r"'max_size' is '-1G'"),
    ({'name': 'l', 'caches': ['a'], 'max_filesystem_percent': 100}, r"'max_filesystem_percent' is 100"),
    ({'name': 'l', 'caches': ['a'], 'max_size': '1G', 'target_percent': 0}, r"'target_percent' is 0"),
])
def test_bad_limits_are_named(limit, message):
    with pytest.raises(AnsibleFilterError, match=message):
        mapproxy_seeding_plan([], cache_limits=[limit])


def test_names_must_be_unique_per_kind():
    with pytest.raises(AnsibleFilterError, match="mapproxy_seeding_jobs: the name 'j' is used twice"):
        mapproxy_seeding_plan([seed(), seed()])
    # The same name for a seeding and a cleanup job gives different units.
    plan = mapproxy_seeding_plan([seed()], cleanup_jobs=[{'name': 'j', 'caches': ['a'], 'remove_all': True}])
    assert [plan['seeds'][0]['unit'], plan['cleanups'][0]['unit']] == ['mapproxy-seed-j', 'mapproxy-cleanup-j']


def test_named_coverages_are_used_and_bbox_names_cannot_clash():
    coverages = {'nrw': {'bbox': [5.8, 50.3, 9.5, 52.6], 'srs': 'EPSG:4326'},
                 'unused': {'bbox': [0, 0, 1, 1], 'srs': 'EPSG:4326'}}
    plan = mapproxy_seeding_plan([seed(coverage='nrw', refresh_before={'days': 7})], coverages=coverages)
    assert plan['seed_config'] == {'coverages': {'nrw': coverages['nrw']},
                                   'seeds': {'j': {'caches': ['osm_cache'], 'coverages': ['nrw'],
                                                   'levels': [11, 12, 13, 14], 'refresh_before': {'days': 7}}}}
    with pytest.raises(AnsibleFilterError, match="'j_bbox' clashes with the bbox coverage"):
        mapproxy_seeding_plan([seed(bbox=[6, 50, 7, 51])], coverages={'j_bbox': {'bbox': [0, 0, 1, 1]}})


@needs_mapproxy
def test_the_seed_config_passes_mapproxy_seed_summary(tmp_path):
    """What the role renders is what mapproxy-seed accepts, with the levels and bbox it was given."""
    conf = make_config(tmp_path / 'cache', caches={'osm_cache': file_cache()})
    config = write_config(tmp_path / 'mapproxy.yaml', conf)
    plan = mapproxy_seeding_plan([seed(bbox=[6.0, 50.5, 7.5, 51.5], grids=['webmercator'], levels='5-7',
                                       refresh_before={'days': 7})])
    seed_file = tmp_path / 'seed.yaml'
    seed_file.write_text(yaml.safe_dump(plan['seed_config']))
    out = subprocess.run([f'{VENV}/bin/mapproxy-seed', '-f', config, '-s', str(seed_file), '--summary'],
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert 'j' in out and 'Levels: [5, 6, 7]' in out, out
    assert '6.00000, 50.50000, 7.50000, 51.50000' in out, out


def test_the_progress_file_follows_the_task():
    """A changed task must not resume the position of the old one."""
    def progress(**kw):
        return mapproxy_seeding_plan([seed(bbox=[6, 50, 7, 51], **kw)])['seeds'][0]['progress_file']

    assert progress() == progress()
    assert progress().startswith('j-') and progress().endswith('.progress')
    assert progress(schedule='weekly') == progress()
    assert len({progress(), progress(levels='11-13'), progress(refresh_before={'days': 1}),
                progress(srs='EPSG:4258')}) == 4
