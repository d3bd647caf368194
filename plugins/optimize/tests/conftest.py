"""A small project in tmp_path: the shipped sample data (examples/data), the
shipped sma_cross.lua, a backtest config and, per test, an [optimize] file."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from engine_core.cli import main
from engine_core.config import read_toml
from engine_core.testing import write_config

ROOT = Path(__file__).resolve().parents[3]


def make_project(folder: Path) -> Path:
    """``folder`` with data/ (the sample CSVs), strategies/ and backtest.toml (sma_cross)."""
    shutil.copytree(ROOT / "examples" / "data", folder / "data")
    (folder / "strategies").mkdir()
    shutil.copy(ROOT / "strategies" / "sma_cross.lua", folder / "strategies")
    write_config(
        folder / "backtest.toml",
        {
            "engine": {"symbols": ["BTCUSDT", "ETHUSDT"], "window": 200},
            "source": {"type": "csv", "path": "data"},
            "strategy": {
                "host": "lua",
                "script": "strategies/sma_cross.lua",
                "params": {"fast": 10, "slow": 30, "qty": 1},
            },
            "broker": {"type": "paper", "cash": 100000, "fill": "next_open", "commission": 0.0005},
            "report": {"dir": "reports/out"},
        },
    )
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """tmp_path made a project (see :func:`make_project`)."""
    return make_project(tmp_path)


@pytest.fixture
def python_config(project: Path) -> Callable[..., Path]:
    """A factory of ``python.toml`` in the project: the example's Python
    SmaCross (copied as strat.py) on ``bars`` simulated bars, then ``extra``."""

    def make(bars: int, extra: str = "") -> Path:
        shutil.copy(ROOT / "examples" / "python_sma_cross.py", project / "strat.py")
        config = project / "python.toml"
        config.write_text(
            f'[engine]\nsymbols = ["AAA"]\n[source]\ntype = "simulated"\nbars = {bars}\n'
            '[strategy]\nhost = "python"\nclass = "strat.py:SmaCross"\n[strategy.params]\nfast = 10\nslow = 30\nqty = 1\n'
            + extra
        )
        return config

    return make


@pytest.fixture(scope="module")
def module_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project shared by a module's tests (each writes its own optimize file and study)."""
    return make_project(tmp_path_factory.mktemp("project"))


def read_trials(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def trials_csv() -> Callable[[Path], list[dict[str, str]]]:
    """The rows of a trials.csv."""
    return read_trials


@pytest.fixture
def write_optimize(project: Path) -> Callable[..., Path]:
    """Write ``optimize.toml`` naming backtest.toml, with ``body`` after ``[optimize]``'s first line."""

    def write(body: str, name: str = "optimize.toml") -> Path:
        path = project / name
        path.write_text('[optimize]\nconfig = "backtest.toml"\n' + body)
        return path

    return write


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def invoke() -> Callable[..., Result]:
    """``engine ARGS`` in this process."""
    return _invoke


def _engine_run(config: Path, cwd: Path) -> dict[str, Any]:
    """A plain ``engine run`` of ``config`` in a fresh process; its summary.json."""
    done = subprocess.run(
        [sys.executable, "-m", "engine_core", "run", "-q", "-c", str(config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report_dir = config.parent / read_toml(config)["report"]["dir"]
    return json.loads((report_dir / "summary.json").read_text())


@pytest.fixture(scope="session")
def engine_run() -> Callable[[Path, Path], dict[str, Any]]:
    """A plain ``engine run`` of a config in a fresh process (from a cwd): its summary.json."""
    return _engine_run
