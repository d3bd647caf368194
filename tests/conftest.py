"""Core tests never load whatever happens to be installed: autoload is off and
each test's registry holds the built-ins, the test fakes and, when
installed, the indicators and CSV plugins."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import engine_core.testing as testing
from engine_core.plugins import AUTOLOAD_ENV, Registry, set_registry
from engine_core.runner import Engine, build_engine

ROOT = Path(__file__).resolve().parents[1]


def _optional_plugins() -> list[tuple[str, Any]]:
    out = []
    for name, module in (("indicators", "engine_plugin_indicators.plugin"), ("csv", "engine_plugin_csv.plugin")):
        try:
            out.append((name, importlib.import_module(module)))
        except ImportError:
            pass
    return out


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    reg = testing.builtin_registry(("testing", testing), *_optional_plugins())
    set_registry(reg)
    yield reg
    set_registry(None)


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def live_engine(tmp_path: Path) -> Callable[..., Engine]:
    """``live_engine(source, broker, plugin, **bodies)``: a live engine on symbol A
    with the test's own plugin (its source or broker), the ``[source]`` and
    ``[broker]`` tables given, and a Python strategy of these function bodies."""

    def build(source: dict[str, Any], broker: dict[str, Any], plugin: Any, **bodies: str) -> Engine:
        config = testing.write_config(
            tmp_path / "c.toml",
            {
                "engine": {"mode": "live", "symbols": ["A"]},
                "source": source,
                "strategy": testing.python_strategy(tmp_path, **bodies),
                "broker": broker,
            },
        )
        return build_engine(config, testing.builtin_registry(("testing", testing), ("test", plugin)))

    return build
