"""Checks of the collection as a whole: role specs against defaults, and the built artifact."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").exists())
BIN = Path(sys.executable).parent


def _load(path: Path):
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream) or {}


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_lists_every_default(role):
    """meta/argument_specs.yml and defaults/main.yml name the same variables, with the same defaults."""
    defaults = _load(ROOT / "roles" / role / "defaults" / "main.yml")
    options = _load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options), "keys differ between defaults/main.yml and meta/argument_specs.yml"
    for name, spec in options.items():
        assert "description" in spec, f"{name} has no description"
        assert "type" in spec, f"{name} has no type"
        assert spec.get("default") == defaults[name], f"{name}: spec default {spec.get('default')!r} != {defaults[name]!r}"


# mapproxy_common holds the values every role reads (mapproxy_user, mapproxy_venv_path, ...).
SHARED = "mapproxy_common"


@pytest.mark.parametrize("role", [role for role in ROLES if role != SHARED])
def test_public_variables_carry_the_role_name(role):
    defaults = _load(ROOT / "roles" / role / "defaults" / "main.yml")
    assert all(name.startswith(role + "_") for name in defaults), sorted(defaults)


def test_every_default_has_one_owner():
    """No variable is a default of two roles: a shared value is mapproxy_common's alone."""
    owners = {}
    for role in ROLES:
        for name in _load(ROOT / "roles" / role / "defaults" / "main.yml"):
            owners.setdefault(name, []).append(role)
    assert all(name.startswith("mapproxy_") for name in _load(ROOT / "roles" / SHARED / "defaults" / "main.yml"))
    shared = dict((name, roles) for name, roles in owners.items() if len(roles) > 1)
    assert not shared, shared


@pytest.mark.parametrize("role", [role for role in ROLES if role != SHARED])
def test_roles_that_read_a_shared_value_depend_on_its_owner(role):
    """A role used alone finds the shared values: it depends on mapproxy_common when it reads one."""
    shared = _load(ROOT / "roles" / SHARED / "defaults" / "main.yml")
    text = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "roles" / role).rglob("*")
                     if path.is_file() and path.suffix in (".yml", ".j2") and "meta" not in path.parts)
    reads = sorted(name for name in shared if re.search(r"\b%s\b" % name, text))
    dependencies = [dep["role"] if isinstance(dep, dict) else dep
                    for dep in _load(ROOT / "roles" / role / "meta" / "main.yml").get("dependencies", [])]
    if reads:
        assert "p2d2.mapproxy." + SHARED in dependencies, "%s reads %s" % (role, reads)


def _handler_names(role):
    path = ROOT / "roles" / role / "handlers" / "main.yml"
    handlers = _load(path) if path.exists() else []
    names = set()
    for handler in handlers or []:
        listen = handler.get("listen", [])
        names.update([handler["name"]] + ([listen] if isinstance(listen, str) else listen))
    return names


SERVICE_TOPICS = {"reload mapproxy service", "restart mapproxy service"}


def test_module_defaults_are_the_shared_values():
    """The modules' defaults for the venv, the configuration and the store credentials are
    mapproxy_common's values: the modules cannot read role variables, so a test keeps them one."""
    shared = _load(ROOT / "roles" / SHARED / "defaults" / "main.yml")
    source = (ROOT / "plugins" / "doc_fragments" / "mapproxy.py").read_text(encoding="utf-8")
    fragments = [yaml.safe_load(text)["options"] for text in re.findall(r'r"""(.*?)"""', source, re.S)]
    options = dict((name, spec["default"]) for fragment in fragments for name, spec in fragment.items())
    assert options == {
        "venv": shared["mapproxy_venv_path"],
        "config": shared["mapproxy_config_file"],
        "store_env_file": shared["mapproxy_store_env_file"],
    }


@pytest.mark.parametrize("requirements", ["tests/requirements.txt", "tests/unit/requirements.txt"])
def test_the_tests_run_the_versions_the_venv_role_installs(requirements):
    """The plugin tests run MapProxy, Gunicorn and the store clients the venv role pins
    (mapproxy_venv's defaults own the versions; the test requirements repeat them)."""
    venv = _load(ROOT / "roles" / "mapproxy_venv" / "defaults" / "main.yml")
    pins = {"mapproxy": venv["mapproxy_venv_mapproxy_version"], "gunicorn": venv["mapproxy_venv_gunicorn_version"]}
    for specs in venv["mapproxy_venv_cache_backend_packages"].values():
        pins.update(spec.lower().split("==") for spec in specs)
    found = dict(re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(\S+)", line).groups()
                 for line in (ROOT / requirements).read_text(encoding="utf-8").splitlines()
                 if re.match(r"^[A-Za-z0-9_.-]+(\[[^]]*\])?==", line))
    found = dict((name.lower(), version) for name, version in found.items())
    pinned_here = dict((name, found[name]) for name in pins if name in found)
    assert "mapproxy" in pinned_here
    assert pinned_here == dict((name, pins[name]) for name in pinned_here)


def test_the_service_has_one_set_of_handlers():
    """mapproxy_common alone reloads and restarts the MapProxy service, by the documented topics."""
    assert SERVICE_TOPICS <= _handler_names(SHARED)
    others = [path for path in (ROOT / "roles").glob("*/handlers/main.yml") if path.parts[-3] != SHARED]
    for path in others:
        assert "mapproxy_service_name" not in path.read_text(encoding="utf-8"), path


@pytest.mark.parametrize("role", ROLES)
def test_every_notify_reaches_a_handler_the_role_has(role):
    """A role used alone has every handler it notifies: its own, or mapproxy_common's topics."""
    notified = set()
    for path in (ROOT / "roles" / role / "tasks").rglob("*.yml"):
        for name in re.findall(r"^\s*notify:\s*(.+)$", path.read_text(encoding="utf-8"), re.M):
            notified.update(re.findall(r"'([^']+)'", name) if "{{" in name else [name.strip().strip('"')])
    available = _handler_names(role)
    dependencies = [dep["role"] if isinstance(dep, dict) else dep
                    for dep in _load(ROOT / "roles" / role / "meta" / "main.yml").get("dependencies", [])]
    if "p2d2.mapproxy." + SHARED in dependencies:
        available |= _handler_names(SHARED)
    assert notified <= available, sorted(notified - available)


PLUGINS = sorted(p for p in (ROOT / "plugins").glob("*/*.py")
                 if p.name != "__init__.py" and p.parent.name in ("modules", "filter", "doc_fragments"))


def _doc_strings(path):
    """DOCUMENTATION, EXAMPLES and RETURN of a plugin file (each doc fragment's too), as text."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
                    found[target.id] = node.value.value
    return found


def _texts_that_are_not_strings(value, where=""):
    """Description-like entries that YAML read as something else (a ': ' in a plain scalar)."""
    bad = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("description", "short_description", "notes", "seealso_text"):
                for line in item if isinstance(item, list) else [item]:
                    if not isinstance(line, str):
                        bad.append(f"{where}.{key}: {line!r}")
            bad += _texts_that_are_not_strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for item in value:
            bad += _texts_that_are_not_strings(item, where)
    return bad


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_plugin_docs_are_yaml_with_text_where_text_belongs(path):
    """What ansible-doc and ansible-test would reject, found in a second: unparsable YAML, or a
    description line that YAML reads as a mapping."""
    docs = _doc_strings(path)
    if path.parent.name != "doc_fragments":
        assert "DOCUMENTATION" in docs, path
    for name, text in docs.items():
        data = yaml.safe_load(text)
        if name == "DOCUMENTATION":
            assert not _texts_that_are_not_strings(data), _texts_that_are_not_strings(data)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The collection built with ansible-galaxy and installed into an empty collections path."""
    tmp = tmp_path_factory.mktemp("artifact")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp / "cols"), ANSIBLE_CONFIG=str(tmp / "none.cfg"))
    subprocess.run([BIN / "ansible-galaxy", "collection", "build", "--output-path", tmp, ROOT],
                   check=True, cwd=tmp, env=env, capture_output=True)
    (tarball,) = tmp.glob("p2d2-mapproxy-*.tar.gz")
    subprocess.run([BIN / "ansible-galaxy", "collection", "install", "-p", tmp / "cols", tarball],
                   check=True, cwd=tmp, env=env, capture_output=True)
    root = tmp / "cols" / "ansible_collections" / "p2d2" / "mapproxy"
    assert (root / "MANIFEST.json").is_file()
    yield tmp, env, root
    shutil.rmtree(tmp)


def test_artifact_leaves_out_the_test_bed(installed):
    _, _, root = installed
    for name in ("scripts", ".venv", ".testbed", "collections", "ansible.cfg"):
        assert not (root / name).exists(), f"{name} is in the built collection"


@pytest.mark.parametrize("role, name", [("mapproxy_seeding", "mapproxy_tiles.py"), ("mapproxy_seeding", "mapproxy_probe.py"),
                                        ("mapproxy_seeding", "mapproxy_run.py"), ("mapproxy_backup", "mapproxy_probe.py")])
def test_artifact_ships_the_module_utils_the_roles_install(installed, role, name):
    """The role copies files/NAME, a link to module_utils: the built collection keeps it."""
    _, _, root = installed
    shipped = root / "roles" / role / "files" / name
    source = root / "plugins" / "module_utils" / name
    assert shipped.read_bytes() == source.read_bytes() == (ROOT / "plugins" / "module_utils" / name).read_bytes()


@pytest.mark.parametrize("role", ROLES)
def test_role_docs_render_from_the_artifact(installed, role):
    tmp, env, _ = installed
    out = subprocess.run([BIN / "ansible-doc", "-t", "role", f"p2d2.mapproxy.{role}"],
                         check=True, cwd=tmp, env=env, capture_output=True, text=True).stdout
    assert f"p2d2.mapproxy.{role}" in out
    defaults = _load(ROOT / "roles" / role / "defaults" / "main.yml")
    missing = [name for name in defaults if name not in out]
    assert not missing, f"ansible-doc does not show {missing}"


MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", MODULES)
def test_module_docs_render_from_the_artifact(installed, module):
    tmp, env, _ = installed
    out = subprocess.run([BIN / "ansible-doc", f"p2d2.mapproxy.{module}"],
                         check=True, cwd=tmp, env=env, capture_output=True, text=True).stdout
    assert "RETURN VALUES" in out and "EXAMPLES" in out


def _tasks(node):
    """Every task of a task file, blocks opened."""
    for task in node or []:
        if not isinstance(task, dict):
            continue
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))
        yield task


_WRITERS = ("ansible.builtin.template", "ansible.builtin.copy", "ansible.builtin.file")
_MANAGED = "p2d2.mapproxy.managed_files"


def _attr_in_condition(value, condition):
    """A literal appears as itself in the condition's key; a variable by its name."""
    value = str(value)
    found = re.fullmatch(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}", value)
    return (found.group(1) if found else value) in condition


def test_guarded_writes_compare_the_attributes_they_set():
    """A write that runs only where host_state_info's key differs must compare the very mode,
    owner and group it sets: compared with others, an unchanged run would leave a file with the
    wrong mode or owner alone (or write it on every run). managed_files takes root where a file
    names no owner or group; a list it gets through the filter managed_files_differ is compared
    by the filter with the very attributes it passes on."""
    checked, problems = 0, []
    for path in sorted((ROOT / "roles").glob("*/tasks/*.yml")):
        for task in _tasks(_load(path) if path.stat().st_size else []):
            if _MANAGED in task and isinstance(task[_MANAGED]["files"], str):
                filtered = " ".join(str(v) for v in (task.get("vars") or {}).values()) + task[_MANAGED]["files"]
                if "managed_files_differ" not in filtered:
                    problems.append(f"{path.relative_to(ROOT)}: {task['name']}: its files do not go through managed_files_differ")
                checked += 1
                continue
            module = next((m for m in _WRITERS + (_MANAGED,) if m in task), None)
            when = task.get("when")
            condition = " ".join(when) if isinstance(when, list) else str(when or "")
            if module is None or ".key" not in condition:
                continue
            checked += 1
            if module == _MANAGED:
                written = [dict({"owner": "root", "group": "root"}, **spec) for spec in task[module]["files"]]
            else:
                written = [task[module]]
            for args in written:
                for attr in ("mode", "owner", "group"):
                    if attr in args and not _attr_in_condition(args[attr], condition):
                        problems.append(f"{path.relative_to(ROOT)}: {task['name']}: {attr} {args[attr]!r} not in its condition")
    assert checked >= 20, f"only {checked} guarded writes found: did the roles stop reading their state?"
    assert not problems, "\n".join(problems)
