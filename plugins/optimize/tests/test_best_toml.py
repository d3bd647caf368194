"""best.toml: the config as written, best parameters filled in, paths still pointing
at the same files from the report dir, values from the environment never written."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_plugin_optimize.outputs import best_config
from engine_plugin_optimize.settings import load_job

from engine_core.config import load_config, read_toml
from engine_core.plugins import get_registry

ROOT = Path(__file__).resolve().parents[3]


def test_paths_params_and_secrets(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", "s3cret")
    config = project / "backtest.toml"
    text = config.read_text().replace("qty = 1\n", 'qty = 1\ntoken = "${API_TOKEN}"\n')
    config.write_text(text + '\n[optimize]\nmetric = "pnl"\n[optimize.params]\nfast = { low = 5, high = 9 }\n')
    job = load_job(config, get_registry())
    out = project / "reports" / "out"
    out.mkdir(parents=True)
    written = best_config(job, {"fast": 7}, out, "a comment\nover two lines")
    assert written.startswith("# a comment\n# over two lines\n")
    assert "s3cret" not in written
    (out / "best.toml").write_text(written)
    raw = read_toml(out / "best.toml")
    assert "optimize" not in raw
    assert raw["strategy"]["params"] == {"fast": 7, "slow": 30, "qty": 1, "token": "${API_TOKEN}"}
    assert raw["strategy"]["script"] == "../../strategies/sma_cross.lua"
    assert raw["source"] == {"type": "csv", "path": "../../data"}
    assert raw["report"]["dir"] == "."
    loaded = load_config(out / "best.toml", get_registry())
    assert loaded.config.strategy.params["token"] == "s3cret"  # from the environment, as in the original
    assert (loaded.base_dir / loaded.config.strategy.script).resolve() == project / "strategies" / "sma_cross.lua"


def test_a_python_class_file_is_found_from_the_report_dir(python_config) -> None:
    config = python_config(
        500, '[report]\ndir = "deep/er"\n[optimize]\n[optimize.params]\nfast = { low = 5, high = 9 }\n'
    )
    job = load_job(config, get_registry())
    out = job.report_dir
    out.mkdir(parents=True)
    raw = read_toml(_write(out, best_config(job, {"fast": 6}, out, "")))
    assert raw["strategy"]["class"] == "../../strat.py:SmaCross"
    assert raw["source"] == {"type": "simulated", "bars": 500}


def _write(folder: Path, text: str) -> Path:
    path = folder / "best.toml"
    path.write_text(text)
    return path
