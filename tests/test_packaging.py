"""The core's distribution name is ours, and every plugin depends on exactly it.

``engine-core`` on PyPI is an unrelated project: a plugin that named it
would install that project into an environment without our core. Depending
on ``engine-trading-core`` (not on PyPI yet), a plugin installed alone pulls
our core from the index once it is published, or fails: never someone else's.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CORE = "engine-trading-core"
PLUGINS = sorted(ROOT.glob("plugins/*/pyproject.toml"))


def project(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))["project"]


def test_core_distribution_is_engine_trading_core():
    core = project(ROOT / "pyproject.toml")
    assert core["name"] == CORE
    assert importlib.metadata.distribution(CORE).read_text("entry_points.txt")  # installed under that name


@pytest.mark.parametrize("pyproject", PLUGINS, ids=lambda p: p.parent.name)
def test_plugin_depends_on_exactly_our_core(pyproject: Path):
    plugin = project(pyproject)
    requirements = [Requirement(r) for r in plugin["dependencies"]]
    ours = {canonicalize_name(project(p)["name"]) for p in PLUGINS}  # a plugin may build on another of ours
    engine = [
        r
        for r in requirements
        if canonicalize_name(r.name).startswith("engine") and canonicalize_name(r.name) not in ours
    ]
    assert [canonicalize_name(r.name) for r in engine] == [CORE], plugin["dependencies"]
    core_version = Version(project(ROOT / "pyproject.toml")["version"])
    assert engine[0].specifier.contains(core_version), f"{engine[0]} excludes the core's {core_version}"
    assert engine[0].url is None  # from the index by name, not a path that only works in this checkout


@pytest.mark.parametrize("pyproject", PLUGINS, ids=lambda p: p.parent.name)
def test_installed_plugin_metadata_says_the_same(pyproject: Path):
    name = project(pyproject)["name"]
    installed = [Requirement(r) for r in importlib.metadata.requires(name) or []]
    assert CORE in {canonicalize_name(r.name) for r in installed}
    assert "engine-core" not in {canonicalize_name(r.name) for r in installed}
