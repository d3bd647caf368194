"""A small study on the shipped sample data with the local backend (2 processes)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from engine_plugin_optimize.constraints import parse_constraint
from engine_plugin_optimize.metrics import RECORDED

SEARCH = """\
[optimize]
config = "backtest.toml"
metric = "sharpe"
trials = 6
sampler = "random"
seed = 7
min_trades = 20
constraints = ["slow > fast + 5"]

[optimize.params]
fast = { low = 5, high = 30 }
slow = { low = 10, high = 60, step = 5 }
"""


def figure(text: str) -> float | None:
    return None if text == "" else float(text)


def same_figures(row: dict[str, str], total: dict[str, Any]) -> None:
    for name in RECORDED:
        assert figure(row[name]) == total[name], name


@pytest.fixture(scope="module")
def search(module_project: Path) -> tuple[Path, Result]:
    from click.testing import CliRunner

    from engine_core.cli import main

    path = module_project / "search.toml"
    path.write_text(SEARCH)
    result = CliRunner().invoke(main, ["optimize", "-c", str(path), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    return path, result


def test_best_trial_equals_a_plain_run_of_best_toml(
    search: tuple[Path, Result],
    module_project: Path,
    engine_run: Callable[[Path, Path], dict[str, Any]],
    trials_csv: Callable[[Path], list[dict[str, str]]],
) -> None:
    report = module_project / "reports" / "out"
    rows = trials_csv(report / "trials.csv")
    best_toml = report / "best.toml"
    text = best_toml.read_text()
    number = int(re.search(r"trial (\d+), sharpe", text).group(1))  # type: ignore[union-attr]
    best = next(r for r in rows if r["number"] == str(number))
    assert f"fast = {best['fast']}\nslow = {best['slow']}\nqty = 1\n" in text
    assert "[optimize]" not in text
    ranked = [r for r in rows if r["state"] == "complete" and not r["note"]]
    assert float(best["sharpe"]) == max(float(r["sharpe"]) for r in ranked)
    elsewhere = module_project / "elsewhere"
    elsewhere.mkdir()
    total = engine_run(best_toml, elsewhere)["total"]  # paths in best.toml are relative to it
    same_figures(best, total)


def test_constraints_are_never_violated(
    search: tuple[Path, Result], module_project: Path, trials_csv: Callable[[Path], list[dict[str, str]]]
) -> None:
    rows = trials_csv(module_project / "reports" / "out" / "trials.csv")
    constraint = parse_constraint("slow > fast + 5")
    ran = [r for r in rows if r["state"] in ("complete", "failed")]
    assert len(ran) == 6
    for r in ran:
        assert constraint.violation({"fast": int(r["fast"]), "slow": int(r["slow"])}) is None
        assert float(r["seconds"]) > 0 and int(r["bars"]) == 40_000
    for r in rows:
        if r["state"] == "rejected":  # proposed, never run: no figures, the reason instead
            assert constraint.violation({"fast": int(r["fast"]), "slow": int(r["slow"])}) is not None
            assert (r["sharpe"], r["seconds"], r["note"]) == ("", "", "violates slow > fast + 5")
    assert {r["state"] for r in rows} <= {"complete", "rejected"}


def test_report_page_and_terminal_table(search: tuple[Path, Result], module_project: Path) -> None:
    _, result = search
    page = (module_project / "reports" / "out" / "optimize.html").read_text()
    for alt in ("history", "importance", "sharpe over "):
        assert re.search(rf'<img alt="{alt}[^"]*" src="data:image/png;base64,', page), alt
    assert "http://" not in page and "https://" not in page  # self-contained
    assert "Top 6 trials" in page
    assert "top trials of search" in result.output
    assert re.search(r"report: .*out \(best\.toml, optimize\.html, trials\.csv\)", result.output.replace("\n", ""))


def test_resume_continues_the_same_study(
    invoke: Callable[..., Result], module_project: Path, trials_csv: Callable[[Path], list[dict[str, str]]]
) -> None:
    path = module_project / "resume.toml"
    path.write_text(
        SEARCH.replace("trials = 6", "trials = 3").replace('config = "backtest.toml"', 'config = "b2.toml"')
    )
    backtest = (module_project / "backtest.toml").read_text().replace("reports/out", "reports/resume")
    (module_project / "b2.toml").write_text(backtest)
    first = invoke("optimize", "-c", str(path), "--jobs", "2", "-q")
    assert first.exit_code == 0, first.output
    rows = trials_csv(module_project / "reports" / "resume" / "trials.csv")
    before = {r["number"]: r for r in rows}

    again = invoke("optimize", "-c", str(path), "--jobs", "2")
    assert again.exit_code == 2
    assert again.stderr.strip() == (
        f"error: study 'resume' already has {len(rows)} trials in sqlite:///{module_project / 'resume.optuna.sqlite'}: "
        "pass --resume to continue it, or --study NAME to start another"
    )

    more = invoke("optimize", "-c", str(path), "--jobs", "2", "--resume", "--trials", "5", "-q")
    assert more.exit_code == 0, more.output
    after = trials_csv(module_project / "reports" / "resume" / "trials.csv")
    assert sum(r["state"] in ("complete", "repeat") for r in after) == 5  # a repeat counts, never runs
    for r in after:
        if r["number"] in before:
            assert r == before[r["number"]]  # the first run's trials, unchanged
    assert len(after) > len(before)
    assert sorted(int(r["number"]) for r in after) == list(range(len(after)))


def test_failed_trial_is_recorded_and_the_search_goes_on(
    invoke: Callable[..., Result], project: Path, trials_csv: Callable[[Path], list[dict[str, str]]]
) -> None:
    script = (project / "strategies" / "sma_cross.lua").read_text()
    script = script.replace(
        "function watch(ctx)\n", 'function watch(ctx)\n  if ctx.params.fast > 20 then error("fast too high") end\n'
    )
    (project / "strategies" / "fragile.lua").write_text(script)
    backtest = project / "backtest.toml"
    backtest.write_text(backtest.read_text().replace("sma_cross.lua", "fragile.lua"))
    path = project / "grid.toml"
    path.write_text(
        '[optimize]\nconfig = "backtest.toml"\nsampler = "grid"\nmetric = "pnl"\n'
        "[optimize.params]\nfast = { choices = [10, 25, 12] }\n"
    )
    result = invoke("optimize", "-c", str(path), "--jobs", "2")
    assert result.exit_code == 0, result.output
    rows = {r["fast"]: r for r in trials_csv(project / "reports" / "out" / "trials.csv")}
    assert [rows[f]["state"] for f in ("10", "25", "12")] == ["complete", "failed", "complete"]
    assert "fast too high" in rows["25"]["note"] and rows["25"]["pnl"] == ""
    best = max((rows["10"], rows["12"]), key=lambda r: float(r["pnl"]))
    assert f"fast = {best['fast']}\n" in (project / "reports" / "out" / "best.toml").read_text()
