"""Keys: one-line errors for bad values; login and TLS against a real broker;
secrets never shown."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_brokers import Mosquitto
from mqtt_engines import config

from engine_core.config import load_config
from engine_core.errors import ConfigError, EngineError
from engine_core.plugins import get_registry
from engine_core.report import summarize
from engine_core.runner import build_engine
from engine_core.testing import write_config

needs_mosquitto = pytest.mark.usefixtures("mosquitto_installed")  # runs its own mosquitto


@pytest.mark.parametrize(
    ("sink", "error"),
    [
        ({"prefix": "a/+/b"}, "sinks[1].prefix: expected topic levels without '+', '#' or empty levels, got 'a/+/b'"),
        ({"prefix": "a//b"}, "sinks[1].prefix: expected topic levels"),
        ({"qos": 3}, "sinks[1].qos: expected 0, 1 or 2, got 3"),
        ({"on_full": "wait"}, "sinks[1].on_full: expected 'drop_oldest' or 'block', got 'wait'"),
        ({"queue": 0}, "sinks[1].queue: expected a number >= 1, got 0"),
        ({"ca_file": "ca.pem"}, "sinks[1]: ca_file is given but tls is false"),
        ({"password": "x"}, "sinks[1]: password is given without username"),
        ({"hostname": "x"}, "sinks[1].hostname: unknown key"),
        ({"mqtt_version": "4"}, "sinks[1].mqtt_version: expected '3.1.1' or '5', got '4'"),
        ({"host": ""}, "sinks[1].host: expected a non-empty string, got '' (mqtt sink)"),
    ],
)
def test_bad_sink_keys_are_one_line(tmp_path: Path, sink, error):
    path = config(tmp_path, 1883, sink=sink)
    with pytest.raises(ConfigError) as err:
        load_config(path, get_registry())
    assert str(err.value).startswith(f"{path}: {error}")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ({"topic": "feeds/#/bars"}, "source.topic: '#' must be the last level of a topic filter, got 'feeds/#/bars'"),
        ({"topic": "feeds/a+/bars"}, "source.topic: expected an MQTT topic filter"),
        ({"trades_topic": ""}, "source.trades_topic: expected an MQTT topic filter"),
        ({"bar_seconds": 0}, "source.bar_seconds: expected a number >= 1, got 0"),
        ({"port": 70000}, "source.port: expected a number <= 65535, got 70000"),
    ],
)
def test_bad_source_keys_are_one_line(tmp_path: Path, source, error):
    path = config(tmp_path, 1883, engine={"mode": "live"}, source={"type": "mqtt", **source})
    with pytest.raises(ConfigError) as err:
        load_config(path, get_registry())
    assert str(err.value).startswith(f"{path}: {error}")


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Mosquitto]:
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(tmp_path / "passwd"), "trader", "s3cret!"], check=True)
    broker = Mosquitto(tmp_path, f"allow_anonymous false\npassword_file {tmp_path / 'passwd'}\n")
    broker.start()
    yield broker
    broker.stop()


@needs_mosquitto
def test_a_wrong_password_stops_the_run_with_one_line(tmp_path: Path, secured, monkeypatch):
    monkeypatch.setenv("MQTT_PASS", "wrong-pass")
    path = config(tmp_path, secured.port, sink={"username": "trader", "password": "${MQTT_PASS}"})
    with pytest.raises(EngineError) as err:
        build_engine(path).run()
    message = str(err.value)
    assert message.startswith(f"mqtt sink: mqtt://127.0.0.1:{secured.port} refused the connection")
    assert "wrong-pass" not in message and "\n" not in message


@needs_mosquitto
def test_username_and_password_from_the_environment(tmp_path: Path, secured, monkeypatch, caplog):
    monkeypatch.setenv("MQTT_PASS", "s3cret!")
    path = config(tmp_path, secured.port, sink={"username": "trader", "password": "${MQTT_PASS}"})
    engine = build_engine(path)
    result = engine.run()
    figures = summarize(result)["sinks"][0]
    assert figures["published"] > 0 and figures["lost"] == 0
    assert "s3cret!" not in json.dumps(summarize(result)) + caplog.text


@needs_mosquitto
def test_tls_with_a_ca_file_relative_to_the_config(tmp_path: Path):
    certs = tmp_path / "certs"
    certs.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=certs)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test ca",
            "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr"
    )
    (certs / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.pem")  # fmt: skip
    broker = Mosquitto(
        tmp_path,
        f"allow_anonymous true\ncafile {certs / 'ca.pem'}\ncertfile {certs / 'server.pem'}\nkeyfile {certs / 'server.key'}\n",
    )
    broker.start()
    try:
        path = write_config(
            tmp_path / "tls.toml",
            {
                "engine": {"symbols": ["AAA"], "id": "tls"},
                "source": {"type": "simulated", "bars": 50},
                "strategy": {"host": "python", "class": "busy.py:S"},
                "sinks": [{"type": "mqtt", "port": broker.port, "tls": True, "ca_file": "certs/ca.pem"}],
            },
        )
        (tmp_path / "busy.py").write_text(
            "class S:\n    def watch(self, ctx):\n        return None\n"
            "    def close_watch(self, ctx):\n        return None\n    def in_trade(self, ctx):\n        return None\n"
        )
        result = build_engine(path).run()
        figures = summarize(result)["sinks"][0]
        assert figures["broker"] == f"mqtts://127.0.0.1:{broker.port}"
        assert figures["connects"] == 1 and figures["lost"] == 0 and figures["published"] >= 2
    finally:
        broker.stop()


def test_a_missing_ca_file_is_one_line(tmp_path: Path, broker):
    path = config(tmp_path, broker.port, sink={"tls": True, "ca_file": "nowhere/ca.pem"})
    with pytest.raises(EngineError) as err:
        build_engine(path).run()
    assert str(err.value) == f"{path}: sinks[1].ca_file: no such file: {tmp_path / 'nowhere' / 'ca.pem'}"
