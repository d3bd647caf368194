"""Walk-forward with [optimize] in the backtest's own config: each fold searched on its
in-sample window, its best parameters run on its out-of-sample window."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import Result
from engine_plugin_optimize.folds import walk_forward_folds
from engine_plugin_optimize.history import History
from engine_plugin_optimize.trial import TrialRunner, TrialSpec, make_setup

from engine_core.config import load_config
from engine_core.model import iso_utc
from engine_core.plugins import get_registry

OPTIMIZE = """
[optimize]
metric = "pnl"
trials = 3
sampler = "random"
seed = 1

[optimize.params]
fast = { low = 5, high = 20 }
slow = { choices = [30, 60] }

[optimize.walk_forward]
folds = 2
test_fraction = 0.3
"""


def test_walk_forward_in_the_backtest_config(
    invoke: Callable[..., Result],
    project: Path,
    trials_csv: Callable[[Path], list[dict[str, str]]],
    engine_run: Callable[[Path, Path], dict[str, Any]],
) -> None:
    config = project / "backtest.toml"
    config.write_text(config.read_text() + OPTIMIZE)
    result = invoke("optimize", "-c", str(config), "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert "walk-forward: pnl in sample and out of sample" in result.output
    # the out-of-sample result first, whole at 80 columns; no in-sample warning, since it is tested
    output = result.output
    assert (
        output.index("walk-forward: pnl") < output.index("Out of sample is what to expect") < output.index("top trials")
    )
    walk = output[output.index("walk-forward: pnl") : output.index("Out of sample is what to expect")]
    assert "…" not in walk and max(len(line.rstrip()) for line in walk.splitlines()) <= 80
    assert "In sample: these figures" not in output

    loaded = load_config(config, get_registry())
    history = History.read(loaded)
    first, last = history.span()
    folds = walk_forward_folds(first, last, 2, 0.3, anchored=False)
    report = project / "reports" / "out"
    rows = trials_csv(report / "walk_forward.csv")
    assert [r["fold"] for r in rows] == ["1", "2"]
    for fold, row in zip(folds, rows):
        assert (row["in_sample_start"], row["in_sample_end"]) == (iso_utc(fold.train[0]), iso_utc(fold.train[1]))
        assert (row["out_of_sample_start"], row["out_of_sample_end"]) == (iso_utc(fold.test[0]), iso_utc(fold.test[1]))
    assert (
        rows[0]["in_sample_start"] == iso_utc(first) and rows[0]["out_of_sample_end"] == rows[1]["out_of_sample_start"]
    )

    trials = trials_csv(report / "trials.csv")
    for fold in folds:
        mine = [t for t in trials if t["fold"] == str(fold.index)]
        assert len(mine) == 3
        assert {int(t["bars"]) for t in mine} == {sum(history.bars(*fold.train).values())}

    # each fold's out-of-sample figures are those of its best parameters on that window alone
    runner = TrialRunner(make_setup(loaded, history))
    for fold, row in zip(folds, rows):
        params = json.loads(row["params"])
        outside = runner.run(TrialSpec(1, params, *fold.test)).metrics
        assert outside is not None
        assert float(row["out_of_sample_pnl"]) == outside["pnl"]
        assert int(row["out_of_sample_trades"]) == outside["trades"]

    best = (report / "best.toml").read_text()
    last_params = json.loads(rows[-1]["params"])
    assert f"fast = {last_params['fast']}\nslow = {last_params['slow']}\n" in best
    assert "the best parameters of the last walk-forward fold (backtest.fold2, in sample)" in best
    page = (report / "optimize.html").read_text()
    assert "<h2>Walk-forward</h2>" in page and "Fold 2: in-sample search" in page
    assert page.index("<h2>Walk-forward</h2>") < page.index("Fold 1: in-sample search")
    assert "In sample: these figures" not in page

    # the config with [optimize] in it still runs as a plain backtest
    assert engine_run(config, project)["total"]["bars"] == 40_000
