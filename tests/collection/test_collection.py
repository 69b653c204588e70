"""Checks of the collection as a whole: role specs against defaults, and the built artifact."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize("role", ROLES)
def test_public_variables_carry_the_role_name(role):
    defaults = _load(ROOT / "roles" / role / "defaults" / "main.yml")
    assert all(name.startswith(role + "_") for name in defaults), sorted(defaults)


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
