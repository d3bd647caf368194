"""Where a run's report goes: never over another run's."""

from __future__ import annotations

from pathlib import Path

from engine_core.config import load_config
from engine_core.testing import python_strategy, write_config
from engine_core.validate import report_dir


def _report_dir(tmp_path: Path, registry, name: str, engine: dict, report: dict | None = None) -> Path:
    sections = {
        "engine": {"symbols": ["A", "B"], **engine},
        "source": {"type": "simulated", "bars": 10},
        "strategy": python_strategy(tmp_path, watch="return None"),
    }
    if report is not None:
        sections["report"] = report
    return report_dir(load_config(write_config(tmp_path / f"{name}.toml", sections), registry))


def test_a_live_run_without_a_report_dir_writes_its_own_folder(tmp_path, registry):
    reports = (tmp_path / "reports").resolve()
    assert _report_dir(tmp_path, registry, "bot", {"mode": "live"}) == reports / "bot"
    assert _report_dir(tmp_path, registry, "bot", {"mode": "live", "id": "eth"}) == reports / "eth"
    assert _report_dir(tmp_path, registry, "bot", {"mode": "live", "shard": "1/2"}) == reports / "bot-1of2"
    assert _report_dir(tmp_path, registry, "bot", {"mode": "live"}, {"html": False}) == reports / "bot"
    # a folder the config names is the config's to choose
    assert _report_dir(tmp_path, registry, "bot", {"mode": "live"}, {"dir": "out"}) == tmp_path.resolve() / "out"
    assert _report_dir(tmp_path, registry, "bt", {"mode": "backtest"}, {"dir": "out"}) == tmp_path.resolve() / "out"
