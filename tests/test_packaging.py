"""environment.yml (conda) and pyproject.toml (pip) must ask for the same packages and bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name_and_spec(requirement: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement.split(";")[0])
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _pyproject() -> tuple[dict[str, str], dict[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = dict(_name_and_spec(r) for r in project["dependencies"])
    test = dict(_name_and_spec(r) for r in project["optional-dependencies"]["test"])
    return runtime, test


#: conda packages with no pip counterpart: the fonts that chart labels in every script need.
CONDA_ONLY = {"font-ttf-noto-cjk", "font-ttf-noto"}
#: conda-forge names that differ from the PyPI name.
CONDA_NAMES = {"python-build": "build"}


def _environment() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str) and (not dep.startswith(("python", "pip")) or dep in CONDA_NAMES):
            name, spec = _name_and_spec(dep)
            out[CONDA_NAMES.get(name, name)] = spec
        elif isinstance(dep, dict):
            for pip_dep in dep.get("pip", []):
                if not pip_dep.startswith("-e"):
                    name, spec = _name_and_spec(pip_dep)
                    out[name] = spec
    return out


def test_environment_yml_matches_pyproject():
    runtime, test = _pyproject()
    env = _environment()
    assert CONDA_ONLY <= set(env)
    assert {k: v for k, v in env.items() if k not in CONDA_ONLY} == {**runtime, **test}


def test_python_version_agrees():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert project["requires-python"] == ">=3.11"
    assert "python>=3.11" in env["dependencies"]


def test_the_console_script_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"] == {"funnelkit": "funnelkit.cli:main"}
