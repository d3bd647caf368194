"""Fixtures: a real broker (the mqtt plugin's test helpers: Debian's mosquitto on
a free port) and the registry the core's tests use."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_core.plugins import AUTOLOAD_ENV, set_registry
from engine_core.testing import builtin_registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2] / "mqtt" / "tests"))

from mqtt_brokers import Mosquitto, broker_kind  # noqa: E402


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    set_registry(builtin_registry())
    yield
    set_registry(None)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if broker_kind() != "mosquitto":
        pytest.fail("the dashboard's tests need Debian's mosquitto (apt-get install mosquitto; .ci/run does)")
    b = Mosquitto(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def shard_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the report of each shard of one backtest (``engine run
    --shard 1/2`` and ``2/2``: reports/sh-1of2, reports/sh-2of2), made once; copy it to change it."""
    from dashboard_helpers import backtest

    where = tmp_path_factory.mktemp("shards")
    for shard in ("1/2", "2/2"):
        backtest(where, "sh", seed=5, every=6, shard=shard)
    return where / "reports"
