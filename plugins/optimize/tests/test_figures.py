"""What a trader reads of a search: every trial ranked once, charts with whole-number
cells and labelled axes, a terminal table that cuts no figure, the in-sample warning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import Result
from engine_plugin_optimize import plots
from matplotlib.backends.backend_agg import FigureCanvasAgg


def test_integer_parameters_are_binned_in_whole_numbers() -> None:
    values = list(range(5, 31))  # 26 distinct: more than the cells
    labels, cells = plots._axis(values, False)
    assert labels[:2] == ["5-7", "8-10"] and labels[-1] == "29-30"
    assert not any("." in label for label in labels)
    for value, cell in zip(values, cells):
        low, _, high = labels[cell].partition("-")
        assert int(low) <= value <= int(high or low)
    floats, _ = plots._axis([0.5 + i / 10 for i in range(30)], False)  # a float parameter keeps its edges
    assert len(floats) == plots.CELLS


def test_the_importance_chart_shows_both_axis_labels() -> None:
    for found in ({"fast": 0.7, "slow": 0.3}, {f"p{i}": 0.1 for i in range(10)}):
        fig = plots.importance_figure(found)
        FigureCanvasAgg(fig).draw()
        renderer = fig.canvas.get_renderer()
        (ax,) = fig.axes
        assert ax.get_xlabel().startswith("importance") and ax.get_ylabel() == "parameter"
        for label in (ax.xaxis.label, ax.yaxis.label):
            box = label.get_window_extent(renderer)
            assert box.y0 >= 0 and box.x0 >= 0 and box.y1 <= fig.bbox.y1 and box.x1 <= fig.bbox.x1


REPEATS = """\
[optimize]
metric = "pnl"
trials = 8
sampler = "random"
seed = 3
[optimize.params]
fast = { low = 5, high = 6 }
"""


def test_a_repeated_parameter_set_runs_once_and_ranks_once(
    python_config: Callable[..., Path],
    invoke: Callable[..., Result],
    trials_csv: Callable[[Path], list[dict[str, str]]],
) -> None:
    config = python_config(600, '[report]\ndir = "out"\n' + REPEATS)
    result = invoke("optimize", "-c", str(config), "--jobs", "1")
    assert result.exit_code == 0, result.output
    rows = trials_csv(config.parent / "out" / "trials.csv")
    ran = [r for r in rows if r["state"] == "complete"]
    repeats = [r for r in rows if r["state"] == "repeat"]
    assert len(rows) == 8 and len(ran) == 2 and len(repeats) == 6  # two sets, each run once
    first = {r["fast"]: r["number"] for r in ran}
    for r in repeats:
        assert r["note"] == f"the sampler repeated trial {first[r['fast']]}'s parameters: not run again"
        assert r["seconds"] == ""  # never ran
        same = next(x for x in ran if x["fast"] == r["fast"])
        assert r["pnl"] == same["pnl"]
    table = result.output.split("top trials of")[1]
    ranks = [line.split() for line in table.splitlines() if line.split()[:1] in (["1"], ["2"], ["3"])]
    assert [rank[0] for rank in ranks] == ["1", "2"]  # one rank per parameter set
    assert sorted(rank[-2] for rank in ranks) == ["5", "6"]  # the fast column, before seconds


def test_the_top_table_fits_80_columns_and_warns_the_figures_are_in_sample(
    python_config: Callable[..., Path], invoke: Callable[..., Result]
) -> None:
    config = python_config(
        600,
        '[report]\ndir = "out"\n[optimize]\nmetric = "sharpe"\ntrials = 3\nsampler = "random"\nseed = 1\n'
        "[optimize.params]\nfast = { low = 5, high = 9 }\nslow = { low = 20, high = 40 }\n",
    )
    result = invoke("optimize", "-c", str(config), "--jobs", "1")
    assert result.exit_code == 0, result.output
    output: Any = result.output
    table = output.split("top trials of")[1].split("In sample")[0]
    assert "…" not in table
    assert max(len(line.rstrip()) for line in table.splitlines()) <= 80
    header = table.splitlines()[1].split()
    assert "sharpe" in header and "fast" in header and "slow" in header
    assert all(
        name in ("#", "trial", "sharpe", "trades", "pnl", "max_drawdown", "fast", "slow", "seconds") for name in header
    )
    warning = " ".join(output.split("In sample:")[1].split())
    assert warning.startswith("these figures come from the same bars the parameters were chosen on")
    page = (config.parent / "out" / "optimize.html").read_text()
    assert "In sample: these figures come from the same bars the parameters were chosen on" in page
