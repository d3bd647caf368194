"""What a user is told when a plugin the project ships is missing: the
plugin, and how to install it from this checkout (not on PyPI yet)."""

from __future__ import annotations

from pathlib import Path

import pytest

import engine_core.plugins as plugins_module
from engine_core.errors import PluginError
from engine_core.plugins import PluginInfo, build_registry
from engine_core.testing import engine_env, run_engine

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_plugin_is_installed_from_this_checkout(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(plugins_module, "_installed", lambda distribution: False)
    registry = build_registry(autoload=False)
    registry.autoload = True  # as if the installed plugins were loaded and binance was not among them
    with pytest.raises(PluginError) as info:
        registry.get("broker", "binance")
    assert str(info.value).endswith(
        "; it is provided by engine-plugin-binance, not installed (pip install -e ./plugins/binance)"
    )
    monkeypatch.chdir(ROOT / "examples")
    assert plugins_module.install_hint("engine-plugin-mqtt") == f"pip install -e {ROOT / 'plugins' / 'mqtt'}"


def test_a_plugin_installed_but_not_loaded_says_why():
    registry = build_registry(autoload=False)
    with pytest.raises(PluginError) as info:
        registry.get("source", "binance")
    assert str(info.value) == (
        "unknown source 'binance'; installed: none; "
        "it is provided by engine-plugin-binance, installed but not loaded (ENGINE_DISABLE_PLUGIN_AUTOLOAD=1)"
    )


@pytest.mark.parametrize(
    "args, command, plugin",
    [
        (["optimize", "-c", "x.toml"], "optimize", "optimize"),
        (["download", "binance"], "binance", "binance"),
        (["download", "alpaca"], "alpaca", "alpaca"),
    ],
)
def test_a_plugin_command_that_is_not_there_names_its_plugin(args, command, plugin):
    proc = run_engine(*args, env=engine_env(ENGINE_LOAD_PLUGINS="engine-plugin-csv"), cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        f"Error: No such command {command!r}; it is provided by "
        f"engine-plugin-{plugin}, installed but not named in ENGINE_LOAD_PLUGINS."
    )


def test_a_plugin_that_failed_to_load_says_so_not_that_it_is_missing():
    registry = build_registry(autoload=False)
    registry.autoload = True
    broken = PluginInfo(
        "optimize", "engine-plugin-optimize", "0.1.0", "failed", "ImportError: No module named 'optuna'"
    )
    registry.plugins.append(broken)
    assert plugins_module.provider_hint(registry, "command", "optimize") == (
        "; it is provided by engine-plugin-optimize, installed but it failed to load: ImportError: No module named 'optuna'"
    )
