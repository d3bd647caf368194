"""The Ray backend on a local cluster started here (``ray.init(num_cpus=2)``).

Ray is installed by ``make install`` (the plugin's ``[ray]`` extra); these
tests are not skipped without it, they fail: a missing Ray is a broken
install, not a reason to test less.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from click.testing import Result
from engine_plugin_optimize.history import History
from engine_plugin_optimize.metrics import RECORDED
from engine_plugin_optimize.trial import TrialRunner, TrialSpec, make_setup

from engine_core.config import load_config
from engine_core.plugins import get_registry

SEARCH = """\
[optimize]
config = "backtest.toml"
metric = "sortino"
trials = 4
sampler = "tpe"
seed = 3
constraints = ["slow > fast + 5"]

[optimize.params]
fast = { low = 5, high = 30 }
slow = { low = 10, high = 60, step = 5 }
"""


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_trials_equal_local_ones_and_a_plain_run(
    local_cluster: None,
    invoke: Callable[..., Result],
    project: Path,
    trials_csv: Callable[[Path], list[dict[str, str]]],
    engine_run: Callable[[Path, Path], dict[str, Any]],
) -> None:
    path = project / "ray.toml"
    path.write_text(SEARCH)
    result = invoke("optimize", "-c", str(path), "--backend", "ray")
    assert result.exit_code == 0, result.output
    report = project / "reports" / "out"
    rows = [r for r in trials_csv(report / "trials.csv") if r["state"] == "complete"]
    assert len(rows) == 4

    # every trial's figures, computed on Ray workers, equal this process's for the same parameters
    loaded = load_config(project / "backtest.toml", get_registry())
    runner = TrialRunner(make_setup(loaded, History.read(loaded)))
    for row in rows:
        here = runner.run(TrialSpec(0, {"fast": int(row["fast"]), "slow": int(row["slow"])})).metrics
        assert here is not None
        for name in RECORDED:
            assert (None if row[name] == "" else float(row[name])) == here[name], name

    best_text = (report / "best.toml").read_text()
    best = max(rows, key=lambda r: float(r["sortino"]))
    assert f"fast = {best['fast']}\nslow = {best['slow']}\n" in best_text
    total = engine_run(report / "best.toml", project)["total"]
    assert total["sortino"] == float(best["sortino"]) and total["pnl"] == float(best["pnl"])
