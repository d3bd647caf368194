"""Discovery through real entry points: fake distributions on sys.path."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine_core.cli import main
from engine_core.errors import PluginError
from engine_core.plugins import build_registry, set_registry


def make_dist(site: Path, dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[engine_core.plugins]\n{lines}\n")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))


def make_broken_dist(site: Path) -> None:
    """engine-plugin-broken: its entry point fails to import."""
    make_dist(
        site,
        "engine-plugin-broken",
        "0.1",
        {"broken": "fake_broken"},
        {"fake_broken": "import module_that_does_not_exist\n"},
    )


GOOD = """
from engine_core.hookspecs import hookimpl
from engine_core.sources import DataSource

class FakeSource(DataSource):
    def history(self):
        return iter(())

@hookimpl
def register_data_sources(register):
    register("fake", FakeSource)
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield site
    for name in ("fake_good", "fake_broken", "fake_dupe", "fake_other"):
        sys.modules.pop(name, None)


def test_loads_plugin_from_entry_point_with_distribution(site):
    make_dist(site, "engine-plugin-fake", "1.2.3", {"fake": "fake_good"}, {"fake_good": GOOD})
    reg = build_registry(autoload=True)
    assert reg.has("source", "fake")
    info = next(p for p in reg.plugins if p.name == "fake")
    assert (info.distribution, info.version, info.status) == ("engine-plugin-fake", "1.2.3", "loaded")
    assert "register_data_sources" in info.hooks


def test_broken_plugin_is_reported_not_fatal(site):
    make_dist(site, "engine-plugin-fake", "1.0", {"fake": "fake_good"}, {"fake_good": GOOD})
    make_broken_dist(site)
    reg = build_registry(autoload=True)
    broken = next(p for p in reg.plugins if p.name == "broken")
    assert broken.status == "failed"
    assert broken.distribution == "engine-plugin-broken"
    assert "module_that_does_not_exist" in broken.error
    assert reg.has("source", "fake")  # the others still load


def test_unknown_name_mentions_failed_plugins(site):
    make_dist(
        site,
        "engine-plugin-broken",
        "0.1",
        {"broken": "fake_broken"},
        {"fake_broken": "raise RuntimeError('boom at import')\n"},
    )
    reg = build_registry(autoload=True)
    with pytest.raises(
        PluginError, match=r"unknown source 'nope'.*failed to load: broken \(RuntimeError: boom at import\)"
    ):
        reg.get("source", "nope")


def test_duplicate_name_names_both_distributions(site):
    make_dist(site, "engine-plugin-fake", "1.0", {"fake": "fake_good"}, {"fake_good": GOOD})
    make_dist(site, "engine-plugin-dupe", "2.0", {"dupe": "fake_dupe"}, {"fake_dupe": GOOD})
    with pytest.raises(PluginError) as info:
        build_registry(autoload=True)
    assert "engine-plugin-fake" in str(info.value) and "engine-plugin-dupe" in str(info.value)
    assert "registered twice" in str(info.value)


def test_hook_with_wrong_arguments_fails_at_load(site):
    bad = """
from engine_core.hookspecs import hookimpl

@hookimpl
def register_data_sources(register, extra_arg):
    pass
"""
    make_dist(site, "engine-plugin-bad", "0.1", {"bad": "fake_broken"}, {"fake_broken": bad})
    reg = build_registry(autoload=True)
    info = next(p for p in reg.plugins if p.name == "bad")
    assert info.status == "failed" and "extra_arg" in info.error


def test_autoload_env_var_turns_discovery_off(site, monkeypatch):
    make_dist(site, "engine-plugin-fake", "1.0", {"fake": "fake_good"}, {"fake_good": GOOD})
    monkeypatch.setenv("ENGINE_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert not build_registry().has("source", "fake")
    monkeypatch.setenv("ENGINE_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert build_registry().has("source", "fake")


OTHER = GOOD.replace('"fake"', '"other"')


@pytest.fixture
def two_dists(site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_dist(site, "engine-plugin-fake", "1.0", {"fake": "fake_good"}, {"fake_good": GOOD})
    make_dist(site, "engine-plugin-other", "1.0", {"other": "fake_other"}, {"fake_other": OTHER})
    monkeypatch.delenv("ENGINE_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    return site


def test_load_plugins_env_loads_only_the_named_distributions(two_dists, monkeypatch):
    monkeypatch.setenv("ENGINE_LOAD_PLUGINS", " Engine_Plugin_Fake , engine-plugin-csv")
    reg = build_registry()
    assert reg.has("source", "fake") and reg.has("source", "csv")
    assert not reg.has("source", "other") and not reg.has("source", "binance")
    assert "fake_other" not in sys.modules  # never imported
    assert reg.has("broker", "paper") and reg.has("strategy_host", "lua")  # the core's built-ins always load
    assert "engine-plugin-other" in reg.skipped and "engine-plugin-fake" not in reg.skipped
    with pytest.raises(
        PluginError, match=r"provided by engine-plugin-binance, installed but not named in ENGINE_LOAD_PLUGINS"
    ):
        reg.get("source", "binance")


def test_load_plugins_env_empty_loads_only_the_builtins(two_dists, monkeypatch):
    monkeypatch.setenv("ENGINE_LOAD_PLUGINS", "")
    reg = build_registry()
    assert reg.names("source") == ["simulated"]
    assert {p.distribution for p in reg.plugins} == {"engine-trading-core"}


def test_load_plugins_env_unknown_name_is_one_line_naming_it_and_what_is_installed(two_dists, monkeypatch):
    monkeypatch.setenv("ENGINE_LOAD_PLUGINS", "engine-plugin-fake,engine-plugin-nope")
    with pytest.raises(PluginError) as info:
        build_registry()
    message = str(info.value)
    assert message.startswith(
        "ENGINE_LOAD_PLUGINS names engine-plugin-nope, which is not installed; installed plugin distributions: "
    )
    assert "engine-plugin-fake" in message and "engine-plugin-other" in message and "\n" not in message
    set_registry(None)
    result = CliRunner().invoke(main, ["list-plugins"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {message}"]


def test_disable_autoload_wins_over_load_plugins(two_dists, monkeypatch):
    monkeypatch.setenv("ENGINE_LOAD_PLUGINS", "engine-plugin-fake,engine-plugin-nope")
    monkeypatch.setenv("ENGINE_DISABLE_PLUGIN_AUTOLOAD", "1")
    reg = build_registry()
    assert not reg.has("source", "fake") and not reg.has("source", "simulated")


def test_builtins_come_from_the_core_entry_points():
    reg = build_registry(autoload=True)
    for kind, name in (("source", "simulated"), ("broker", "paper"), ("strategy_host", "python"), ("sink", "log")):
        assert reg.has(kind, name)
        plugin = next(r.plugin for r in reg.registrations(kind) if r.name == name)
        assert plugin.distribution == "engine-trading-core"


def test_list_plugins_json(site):
    make_dist(site, "engine-plugin-fake", "1.2.3", {"fake": "fake_good"}, {"fake_good": GOOD})
    make_broken_dist(site)
    set_registry(build_registry(autoload=True))
    result = CliRunner().invoke(main, ["list-plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    fake = next(r for r in rows if r["name"] == "fake")
    assert fake == {
        "name": "fake",
        "kind": "source",
        "plugin": "fake",
        "distribution": "engine-plugin-fake",
        "version": "1.2.3",
        "status": "loaded",
        "error": "",
    }
    broken = next(r for r in rows if r["name"] == "broken")
    assert broken["status"] == "failed" and broken["distribution"] == "engine-plugin-broken"


def test_list_plugins_table(site):
    make_dist(site, "engine-plugin-fake", "1.2.3", {"fake": "fake_good"}, {"fake_good": GOOD})
    set_registry(build_registry(autoload=True))
    result = CliRunner().invoke(main, ["list-plugins"])
    assert result.exit_code == 0
    assert "engine-plugin-fake" in result.output and "1.2.3" in result.output


LAZY = """
from engine_core.hookspecs import hookimpl

@hookimpl
def register_data_sources(register):
    register("lazy", "fake_lazy_impl:LazySource")
"""
LAZY_IMPL = """
from engine_core.sources import DataSource

class LazySource(DataSource):
    def history(self):
        return iter(())
"""


def test_a_reference_is_imported_when_a_config_names_it_not_at_load(site):
    make_dist(
        site, "engine-plugin-lazy", "1.0", {"lazy": "fake_lazy"}, {"fake_lazy": LAZY, "fake_lazy_impl": LAZY_IMPL}
    )
    try:
        reg = build_registry(autoload=True)
        assert reg.has("source", "lazy")
        assert "fake_lazy_impl" not in sys.modules
        cls = reg.get("source", "lazy")
        assert cls.__name__ == "LazySource" and cls is sys.modules["fake_lazy_impl"].LazySource
        assert reg.get("source", "lazy") is cls
    finally:
        for name in ("fake_lazy", "fake_lazy_impl"):
            sys.modules.pop(name, None)


@pytest.mark.parametrize(
    "ref, message",
    [
        ("fake_lazy_impl.LazySource", r"source 'lazy' of plugin 'lazy' \(engine-plugin-lazy\): expected a class or"),
        ("fake_nowhere:LazySource", r"source 'lazy' of plugin 'lazy' \(engine-plugin-lazy\): no module 'fake_nowhere'"),
    ],
)
def test_a_malformed_or_missing_reference_fails_at_load(site, ref, message):
    make_dist(
        site,
        "engine-plugin-lazy",
        "1.0",
        {"lazy": "fake_lazy"},
        {"fake_lazy": LAZY.replace("fake_lazy_impl:LazySource", ref)},
    )
    try:
        with pytest.raises(PluginError, match=message):
            build_registry(autoload=True)
    finally:
        sys.modules.pop("fake_lazy", None)


def test_a_reference_that_fails_to_import_names_the_plugin(site):
    impl = "import module_that_does_not_exist\n"
    make_dist(site, "engine-plugin-lazy", "1.0", {"lazy": "fake_lazy"}, {"fake_lazy": LAZY, "fake_lazy_impl": impl})
    try:
        reg = build_registry(autoload=True)
        with pytest.raises(
            PluginError,
            match=r'^plugin "lazy" \(engine-plugin-lazy\) failed to import source \'lazy\' \(fake_lazy_impl:LazySource\): '
            r"ModuleNotFoundError: No module named 'module_that_does_not_exist'$",
        ):
            reg.get("source", "lazy")
    finally:
        for name in ("fake_lazy", "fake_lazy_impl"):
            sys.modules.pop(name, None)
