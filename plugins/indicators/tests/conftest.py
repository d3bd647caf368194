"""Fixture: a registry holding only this plugin (no entry-point autoload)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_plugin_indicators import plugin

from engine_core.plugins import build_registry, set_registry


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ENGINE_DISABLE_PLUGIN_AUTOLOAD", "1")
    set_registry(build_registry(extra=[("indicators", plugin)], autoload=False))
    yield
    set_registry(None)
