"""``[dashboard]`` in a live config: ``engine run`` serves the page beside the
engine, and stops it with the engine."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import engine_plugin_dashboard.plugin as dashboard_plugin
import engine_plugin_mqtt.plugin as mqtt_plugin
import pytest
from dashboard_helpers import TOKEN, Dashboard, live_config

from engine_core.config import load_config
from engine_core.errors import ConfigError
from engine_core.testing import builtin_registry, start_engine, wait_until
from engine_core.testing.processes import exited


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"X-Engine-Token": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _config(tmp_path: Path, table: dict[str, Any], port: int | None = None) -> Path:
    path = live_config(tmp_path, port or 1883)
    text = path.read_text()
    if port is None:  # no mqtt sink: the dashboard reads the engine's journal
        text = text[: text.index("[[sinks]]")]
    lines = [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path.write_text(text + "\n[dashboard]\n" + "\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"port": 70000}, r"live\.toml: dashboard\.port: expected a number <= 65535, got 70000"),
        ({"colour": "red"}, r"live\.toml: dashboard\.colour: unknown key"),
        ({"token": "short"}, r"live\.toml: dashboard\.token: .*at least 16 characters"),
        ({"host": "0.0.0.0"}, r"live\.toml: dashboard: host 0\.0\.0\.0 opens the dashboard .*give token"),
    ],
)
def test_a_dashboard_table_is_checked_when_the_config_loads(tmp_path, monkeypatch, table, expected):
    monkeypatch.delenv("ENGINE_DASHBOARD_TOKEN", raising=False)
    registry = builtin_registry(("mqtt", mqtt_plugin), ("dashboard", dashboard_plugin))
    with pytest.raises(ConfigError, match=expected):
        load_config(_config(tmp_path, table), registry)


def test_engine_run_serves_the_dashboard_beside_the_engine_and_frees_its_port_when_it_stops(tmp_path):
    config = _config(tmp_path, {"port": 0, "token": TOKEN, "reports": "reports"})
    engine = start_engine("run", "-c", str(config), cwd=tmp_path)
    dash = Dashboard(proc=engine)
    try:
        assert f"?token={TOKEN}" in dash.url
        port = int(dash.base.rsplit(":", 1)[1])
        status, body = _get(f"{dash.base}/api/fleet")
        assert status == 401 and "needs its token" in body["error"]

        def rows() -> list[dict[str, Any]] | None:
            status, body = _get(f"{dash.base}/api/fleet", TOKEN)
            assert status == 200, body
            return body["rows"] if body["source"] == "journal" and len(body["rows"]) == 3 else None

        wait_until(rows, "the engine's three symbols on the dashboard (from its journal)", stop_if=exited(engine))
        assert {r["engine"] for r in rows() or []} == {"e1"}
    finally:
        engine.terminate()
        engine.wait(30)
    assert engine.returncode == 0, "\n".join(dash.lines)
    assert not any("Traceback" in line for line in dash.lines), "\n".join(dash.lines)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_a_taken_port_stops_the_engine_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(tmp_path, {"port": port, "token": TOKEN})
        engine = start_engine("run", "-c", str(config), cwd=tmp_path)
        _, err = engine.communicate(timeout=60)
    assert engine.returncode == 2, err
    assert f"live.toml: dashboard.port: cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err
