"""Core tests never load whatever happens to be installed: autoload is off and
each test's registry holds the built-ins, the test fakes and, when
installed, the indicators plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

import engine_core.testing as testing
from engine_core.plugins import AUTOLOAD_ENV, Registry, set_registry

ROOT = Path(__file__).resolve().parents[1]


def _optional_plugins() -> list[tuple[str, Any]]:
    out = []
    try:
        from engine_plugin_indicators import plugin as indicators_plugin

        out.append(("indicators", indicators_plugin))
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
