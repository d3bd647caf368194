"""What a CSV backtest imports: registering every installed plugin must not
load the venue, MQTT or optimisation libraries (half a second and 10 MB),
nor asyncio and ssl, which only a live run uses (7 MB). With ``--no-report``
the report files' modules (HTML page, SVG plots) are not imported either,
nor, with ``-q``, the terminal table's, nor any plugin's config models
before a config names the plugin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine_core.testing import engine_env, write_config

ROOT = Path(__file__).resolve().parents[1]
# Libraries a CSV backtest never uses, each imported by some installed plugin.
HEAVY = ("aiohttp", "websockets", "paho", "aiomqtt", "optuna", "ray", "asyncio", "ssl", "html")
# Modules of the engine and its plugins that such a run (``--no-report -q``) has no use for.
UNUSED = (
    "engine_core.report.files",
    "engine_core.report.page",
    "engine_core.report.plot",
    "engine_core.report.terminal",
    "engine_plugin_mqtt.config",
)


def engine_imports(tmp_path: Path, *args: str) -> tuple[str, set[str]]:
    """``engine <args>`` as a user runs it: its output, and the names of the
    modules it had imported when the process exited."""
    out = tmp_path / "modules.json"
    child = (
        "import atexit, json, runpy, sys\n"
        f"atexit.register(lambda: open({str(out)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
        f"sys.argv = {['engine', *args]!r}\n"
        "runpy.run_module('engine_core', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=engine_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, set(json.loads(out.read_text()))


def test_csv_backtest_imports_no_venue_mqtt_or_optimize_library(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["BTCUSDT"], "window": 100},
            "source": {"type": "csv", "path": str(ROOT / "examples" / "data")},
            "strategy": {
                "host": "lua",
                "script": str(ROOT / "strategies" / "sma_cross.lua"),
                "params": {"fast": 10, "slow": 30},
            },
            "report": {"dir": str(tmp_path / "report")},
        },
    )
    # `engine run` as a user runs it (every installed plugin loads)
    _, imported = engine_imports(tmp_path, "run", "-c", str(cfg), "--no-report", "-q")
    assert "engine_plugin_csv.source" in imported  # the run did read the CSV through the plugin
    assert "engine_plugin_mqtt" in imported and "engine_plugin_binance" in imported  # every plugin registered
    assert sorted(m for m in imported if m.split(".")[0] in HEAVY) == []
    assert sorted(imported.intersection(UNUSED)) == []


def _threads_after_numpy(env: dict[str, str]) -> tuple[str, int]:
    """OPENBLAS_NUM_THREADS and the process's threads once the ``engine``
    command's module and numpy are loaded."""
    child = (
        "import os, engine_core.cli, numpy\n"
        "print(os.environ.get('OPENBLAS_NUM_THREADS'), len(os.listdir('/proc/self/task')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    value, threads = proc.stdout.split()
    return value, int(threads)


def test_the_engine_command_starts_no_blas_threads_unless_asked() -> None:
    """numpy's BLAS starts a thread per core that spins at import (about 0.1 s
    of CPU per process); the engine multiplies no matrices."""
    env = {k: v for k, v in engine_env().items() if k != "OPENBLAS_NUM_THREADS"}
    assert _threads_after_numpy(env) == ("1", 1)
    assert _threads_after_numpy({**env, "OPENBLAS_NUM_THREADS": "2"})[0] == "2"  # the user's own setting stands


# What listing the plugins' commands must not load: each command imports its libraries when it runs.
NETWORK = ("aiohttp", "websockets", "paho", "aiomqtt", "optuna", "ray")


def test_engine_help_lists_every_plugins_command_without_their_libraries(tmp_path: Path) -> None:
    """``engine --help``, the first command a newcomer types, and ``engine
    download --help`` name the plugins' commands without loading an HTTP,
    websocket, MQTT or optimisation library (a venue's HTTP client alone took
    0.15 s of the 0.5 s)."""
    out, imported = engine_imports(tmp_path, "--help")
    for command in ("dashboard", "download", "optimize", "run", "validate"):
        assert f"\n  {command} " in out, out
    assert sorted(m for m in imported if m.split(".")[0] in NETWORK) == []
    out, imported = engine_imports(tmp_path, "download", "--help")
    assert "\n  alpaca " in out and "\n  binance " in out, out
    assert sorted(m for m in imported if m.split(".")[0] in NETWORK) == []
