"""The study page's "run this one": a trial as a config whose report is its own."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
from engine_plugin_dashboard import reports

BEST = """\
[engine]
mode = "backtest"
symbols = ["A"]

[strategy]
host = "python"
class = "s.py:S"

[strategy.params]
fast = 5
slow = 20
"""


@pytest.mark.parametrize(
    "report", ['\n[report]\ndir = "../../reports/sma"\nhtml = false\n', "\n[report]\nhtml = false\n", ""]
)
def test_a_trial_reports_into_its_own_folder_in_the_study(tmp_path: Path, report: str):
    study = tmp_path / "studies" / "sma"
    study.mkdir(parents=True)
    (study / "trials.csv").write_text("number,state,value,fast,slow\n0,complete,1.5,3,30\n1,complete,2.5,7,40\n")
    (study / "best.toml").write_text(BEST + report)
    path = reports.trial_config(tmp_path / "studies", "sma", "1")
    config = tomllib.loads(path.read_text())
    assert config["strategy"]["params"] == {"fast": 7, "slow": 40}
    assert config["report"]["dir"] == "trial-1"  # relative to the trial file: studies/sma/trial-1
    assert config["report"].get("html", True) is ("html" not in report)
