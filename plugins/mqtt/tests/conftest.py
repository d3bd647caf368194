"""Fixtures: a real broker per test (mosquitto, else amqtt in-process), a
registry with the mqtt plugin and the test fakes, a subscriber."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engine_core.testing as testing
from engine_core.plugins import AUTOLOAD_ENV, Registry, set_registry

sys.path.insert(0, str(Path(__file__).parent))

import engine_plugin_mqtt.plugin as mqtt_plugin  # noqa: E402
import mqtt_gated  # noqa: E402
from mqtt_brokers import Amqtt, Mosquitto, Subscriber, broker_kind  # noqa: E402


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    extra: list[tuple[str, Any]] = [("testing", testing), ("mqtt", mqtt_plugin), ("gated", mqtt_gated)]
    reg = testing.builtin_registry(*extra)
    set_registry(reg)
    yield reg
    set_registry(None)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto | Amqtt]:
    kind = broker_kind()
    if kind is None:
        pytest.fail(
            "no MQTT broker for the tests: install Debian's mosquitto (apt-get install mosquitto; "
            "make test and .ci/run do: scripts/test-deps install) or amqtt (pip install -e './plugins/mqtt[amqtt]')"
        )
    b: Mosquitto | Amqtt = Mosquitto(tmp_path) if kind == "mosquitto" else Amqtt(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def mosquitto_installed() -> None:
    """What only mosquitto does here (MQTT 5, its own configs: TLS, passwords;
    amqtt speaks 3.1.1): ``make test`` and ``.ci/run`` install it, so a test
    that needs it fails, never skips, without it."""
    if broker_kind() != "mosquitto":
        pytest.fail(
            "this test needs Debian's mosquitto (apt-get install mosquitto; "
            "make test and .ci/run do: scripts/test-deps install)"
        )


@pytest.fixture
def mosquitto(tmp_path: Path, mosquitto_installed: None) -> Iterator[Mosquitto]:
    """Mosquitto itself, on a free port."""
    b = Mosquitto(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def subscriber(broker: Mosquitto | Amqtt) -> Iterator[Subscriber]:
    sub = Subscriber(broker.port)
    yield sub
    sub.close()
