"""The ``engine`` command as a user runs it: a subprocess with the installed plugins."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from engine_core.testing import engine_env, exited, python_strategy, start_engine, wait_until, write_config
from engine_core.testing import run_engine as engine


@pytest.fixture
def example(tmp_path: Path, root: Path) -> Path:
    shutil.copy(root / "examples" / "python_sma_cross.py", tmp_path)
    text = (root / "examples" / "python_sma_cross.toml").read_text()
    text = text.replace('dir = "../reports/python_sma_cross"', 'dir = "out"').replace("bars = 5000", "bars = 1500")
    (tmp_path / "c.toml").write_text(text)
    return tmp_path / "c.toml"


def test_run_writes_the_report_and_prints_the_summary(example):
    proc = engine("run", "-c", str(example))
    assert proc.returncode == 0, proc.stderr
    assert "Total" in proc.stdout and "BTCUSDT" in proc.stdout
    summary = json.loads((example.parent / "out" / "summary.json").read_text())
    total = summary["total"]
    assert total["bars"] == 3000
    assert total["trades"] == sum(summary["per_symbol"][s]["trades"] for s in ("BTCUSDT", "ETHUSDT")) > 0
    assert total["final_equity"] == pytest.approx(100000 + total["pnl"])
    for name in ("trades.csv", "equity.csv", "report.html"):
        assert (example.parent / "out" / name).stat().st_size > 0


def test_reports_are_byte_identical_across_runs(example):
    out = example.parent / "out"
    assert engine("run", "-q", "-c", str(example)).returncode == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert engine("run", "-q", "-c", str(example)).returncode == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_validate(example):
    proc = engine("validate", "-c", str(example))
    assert proc.returncode == 0 and ": ok (backtest, 2 symbols" in proc.stdout


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_broken_toml_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine]\nsymbols = [\n")
    assert_one_line_error(engine("run", "-c", str(bad)), "bad.toml: invalid TOML", "line")


def test_unknown_plugin_is_one_line(tmp_path):
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["A"]},
            "source": {"type": "nosuch"},
            "strategy": {"host": "python", "class": "x:Y"},
        },
    )
    assert_one_line_error(engine("validate", "-c", str(cfg)), "source.type: unknown source 'nosuch'", "installed:")


def test_missing_config_is_one_line(tmp_path):
    assert_one_line_error(engine("run", "-c", str(tmp_path / "none.toml")), "no such config file")


def test_strategy_class_that_raises_on_import(tmp_path):
    (tmp_path / "boom.py").write_text("x = 1\nraise RuntimeError('broken strategy module')\n")
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["A"]},
            "source": {"type": "simulated", "bars": 10},
            "strategy": {"host": "python", "class": "boom.py:S"},
        },
    )
    assert_one_line_error(engine("run", "-c", str(cfg)), "cannot import boom.py", "boom.py:2", "broken strategy module")


def test_strategy_class_that_raises_while_trading_halts_its_symbol(tmp_path):
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["A"]},
            "source": {"type": "simulated", "bars": 10},
            "strategy": python_strategy(tmp_path, watch="raise KeyError('no such thing')"),
            "report": {"dir": "out"},
        },
    )
    proc = engine("run", "-q", "-c", str(cfg))
    assert proc.returncode == 3  # a halted symbol: the results are incomplete
    assert "warning: A halted:" in proc.stderr and "s.py:3 in watch" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "error: 1 of 1 symbols halted (A); exit code 3"
    assert "Traceback" not in proc.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "no such thing" in json.dumps(summary["per_symbol"]["A"])


def test_list_plugins_shows_installed_distributions():
    proc = engine("list-plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    names = {(r["kind"], r["name"]): r for r in rows}
    assert names[("source", "simulated")]["distribution"] == "engine-trading-core"
    assert names[("broker", "paper")]["status"] == "loaded"
    assert {"name", "kind", "distribution", "version", "status"} <= set(rows[0])


def test_indicators_command_lists_parameters_and_defaults():
    proc = engine("indicators", "macd", "--json")
    assert proc.returncode == 0, proc.stderr
    (spec,) = json.loads(proc.stdout)
    assert spec["name"] == "macd" and spec["outputs"] == ["macd", "macdsignal", "macdhist"]
    assert list(spec["params"]) == ["fast", "slow", "signal"] and spec["params"]["slow"] == 26
    assert spec["aliases"] == {"fastperiod": "fast", "slowperiod": "slow", "signalperiod": "signal"}
    table = engine("indicators")
    assert table.returncode == 0 and "bbands" in table.stdout and "atr" in table.stdout


def test_unknown_indicator_is_one_line():
    assert_one_line_error(engine("indicators", "nosuch"), "unknown indicator 'nosuch'", "available:")


def test_report_without_html(example):
    text = example.read_text().replace('dir = "out"', 'dir = "out"\nhtml = false')
    example.write_text(text)
    assert engine("run", "-q", "-c", str(example)).returncode == 0
    assert sorted(p.name for p in (example.parent / "out").iterdir()) == [
        "candles.csv",
        "equity.csv",
        "summary.json",
        "trades.csv",
    ]


def test_validate_several_configs_one_line_per_problem(example, tmp_path):
    (tmp_path / "afile").write_text("")
    bad = write_config(
        tmp_path / "bad.toml",
        {
            "engine": {"symbols": ["BTCUSDT"]},
            "source": {"type": "csv", "path": "nodata"},
            "strategy": {"script": "nope.lua"},
            "report": {"dir": "afile/out"},
        },
    )
    proc = engine("validate", "-c", str(example), "-c", str(bad))
    assert proc.returncode == 2
    assert f"{example}: ok (backtest, 2 symbols" in proc.stdout
    assert f"{example}: not checked: " in proc.stdout and "the broker (not contacted)" in proc.stdout
    assert sorted(proc.stderr.strip().splitlines()) == [
        f"error: {bad}: report.dir: cannot create {tmp_path / 'afile' / 'out'}: {tmp_path / 'afile'} is a file",
        f"error: {bad}: source.path: no CSV files at 'nodata' (in {tmp_path}): no such file or directory",
        f"error: {bad}: strategy.script: nope.lua: no such strategy file ({tmp_path / 'nope.lua'})",
    ]


def test_validate_writes_nothing(tmp_path, root):
    cfg = write_config(
        tmp_path / "live.toml",
        {
            "engine": {"mode": "live", "symbols": ["BTCUSDT"], "state_dir": "state"},
            "source": {"type": "simulated", "bars": 0},
            "strategy": {"script": str(root / "strategies" / "sma_cross.lua"), "params": {"fast": 3, "slow": 5}},
            "sinks": [{"type": "log", "path": "events.log"}],
            "report": {"dir": "out"},
        },
    )
    proc = engine("validate", str(cfg))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.toml"]


@pytest.mark.parametrize(
    "strategy, key",
    [
        ({"script": "missing.lua"}, "strategy.script: missing.lua: no such strategy file"),
        ({"host": "python", "class": "missing.py:S"}, "strategy.class: no such file"),
    ],
)
def test_no_such_file_names_its_key(tmp_path, strategy, key):
    cfg = write_config(
        tmp_path / "c.toml",
        {"engine": {"symbols": ["A"]}, "source": {"type": "simulated", "bars": 10}, "strategy": strategy},
    )
    assert_one_line_error(engine("run", "-c", str(cfg)), key)


def test_missing_data_names_source_path(tmp_path, root):
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["A"]},
            "source": {"type": "csv", "path": "data"},
            "strategy": {"script": str(root / "strategies" / "sma_cross.lua")},
        },
    )
    assert_one_line_error(engine("run", "-c", str(cfg)), f"error: {cfg}: source.path: no CSV files at 'data'")


def test_report_dir_that_cannot_be_made_fails_before_any_work(tmp_path, root):
    (tmp_path / "afile").write_text("")
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["A"], "state_dir": "state"},
            "source": {"type": "simulated", "bars": 10},
            "strategy": {"script": str(root / "strategies" / "sma_cross.lua")},
            "sinks": [{"type": "log", "path": "events.log"}],
            "report": {"dir": "afile/out"},
        },
    )
    assert_one_line_error(engine("run", "-c", str(cfg)), f"{cfg}: report.dir: cannot create", "afile is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "c.toml"]  # no journal, no log: nothing ran


def test_config_errors_before_any_work_are_one_line(tmp_path):
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[engine]\nsymbols = ["B\xe9"]\n')
    assert_one_line_error(engine("run", "-c", str(latin)), f"{latin}: not UTF-8 text: line 2, byte 14 (0xe9)")
    sink = tmp_path / "sink.toml"
    sink.write_text(
        '[engine]\nsymbols = ["A"]\n[source]\ntype = "simulated"\n[strategy]\nscript = "s.lua"\n[sink]\ntype = "log"\n'
    )
    assert_one_line_error(engine("validate", str(sink)), "sink: sinks are a list of tables: write [[sinks]]")
    logs = write_config(
        tmp_path / "logs.toml",
        {
            "engine": {"symbols": ["A"]},
            "source": {"type": "simulated"},
            "strategy": {"script": "s.lua"},
            "sinks": [{"type": "log", "path": "logs/run.log"}],
        },
    )
    assert_one_line_error(engine("run", "-c", str(logs)), f"sinks[0].path: folder {tmp_path / 'logs'} does not exist")


def test_sigterm_stops_a_run_like_ctrl_c(tmp_path, root):
    cfg = write_config(
        tmp_path / "live.toml",
        {
            "engine": {"mode": "live", "symbols": ["BTCUSDT", "ETHUSDT"]},
            "source": {"type": "simulated", "bars": 0, "pace": 0.005},
            "strategy": {
                "script": str(root / "strategies" / "sma_cross.lua"),
                "params": {"fast": 3, "slow": 6, "qty": 1},
            },
            "sinks": [{"type": "log", "path": "events.log"}],
            "report": {"dir": "out"},
        },
    )
    proc = start_engine("run", "-c", str(cfg))
    try:
        log = tmp_path / "events.log"
        wait_until(lambda: log.exists() and " fill " in log.read_text(), "a fill in the log", stop_if=exited(proc))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Total" in out and "report: " in out
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert "Task was destroyed" not in err and "Event loop is closed" not in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["total"]["bars"] > 0
    assert (tmp_path / "out" / "equity.csv").stat().st_size > 0


@pytest.mark.parametrize("command", [["indicators"], ["indicators", "sarext"], ["list-plugins"]])
def test_tables_fit_80_columns(command):
    proc = engine(*command, env=engine_env(COLUMNS="80"))
    assert proc.returncode == 0, proc.stderr
    assert max(len(line.rstrip()) for line in proc.stdout.splitlines()) <= 80
    assert ("accelerationinitlong=0.02" if command[-1] != "list-plugins" else "engine-plugin-indicators") in proc.stdout


def test_unused_qty_param_warns_at_load(tmp_path):
    (tmp_path / "s.lua").write_text(
        'function watch(ctx) return "enter" end\nfunction close_watch(ctx) end\n'
        'function in_trade(ctx) if ctx.position.bars_held >= 2 then return "exit" end end\n'
    )
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["A"]},
            "source": {"type": "simulated", "bars": 50},
            "strategy": {"script": "s.lua", "qty": 2, "params": {"qty": 5}},
            "report": {"dir": "out"},
        },
    )
    proc = engine("run", "-q", "-c", str(cfg))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0] == (
        f"warning: {cfg}: strategy.params.qty = 5 has no effect: s.lua never reads params.qty, "
        "so an entry is sized by [strategy] qty = 2"
    )
    trades = (tmp_path / "out" / "trades.csv").read_text().splitlines()[1:]
    assert trades and all(row.split(",")[6] == "2" for row in trades)  # what the warning says is what it trades


def test_run_at_80_columns_without_a_terminal_cuts_no_figure_and_no_report_line(example):
    # stdout is a pipe here, as in CI logs or `| tee`
    proc = engine("run", "-c", str(example), env=engine_env(COLUMNS="80"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((example.parent / "out" / "summary.json").read_text())
    lines = proc.stdout.splitlines()
    table = lines[: lines.index(next(line for line in lines if line.split()[:1] == ["Total"])) + 1]
    assert max(len(line.rstrip()) for line in table) <= 80
    assert "…" not in proc.stdout
    for name, figures in [*summary["per_symbol"].items(), ("Total", summary["total"])]:
        row = next(line.split() for line in table if line.split()[:1] == [name])
        assert f"{figures['pnl']:,.2f}" in row and f"{figures['bars']:,}" in row
    report = [line for line in lines if line.startswith("report: ")]
    assert report == [
        f"report: {example.parent / 'out'} (candles.csv, equity.csv, report.html, summary.json, trades.csv)"
    ]


def test_each_shard_writes_its_own_report_and_merge_shows_them_together(example):
    folder = example.parent
    for k in (1, 2):
        proc = engine("run", "-q", "-c", str(example), "--shard", f"{k}/2")
        assert proc.returncode == 0, proc.stderr
    shards = [folder / "out-1of2", folder / "out-2of2"]
    symbols = [json.loads((s / "summary.json").read_text())["symbols"] for s in shards]
    assert sorted(symbols) == [["BTCUSDT"], ["ETHUSDT"]]  # neither overwrote the other
    merged = engine("report", "merge", *map(str, shards), env=engine_env(COLUMNS="80"))
    assert merged.returncode == 0, merged.stderr
    assert f"report: {folder / 'out'} (merged from 2)" in merged.stdout
    together = json.loads((folder / "out" / "summary.json").read_text())
    merged_trades = (folder / "out" / "trades.csv").read_text().splitlines()
    merged_candles = (folder / "out" / "candles.csv").read_text().splitlines()
    assert engine("run", "-q", "-c", str(example)).returncode == 0  # the run without shards, for reference
    whole = json.loads((folder / "out" / "summary.json").read_text())
    assert together["per_symbol"] == whole["per_symbol"] and sorted(together["symbols"]) == sorted(whole["symbols"])
    for key in ("trades", "bars", "orders", "fills", "win_rate", "profit_factor"):
        assert together["total"][key] == whole["total"][key], key
    for key in ("pnl", "total_return", "max_drawdown", "final_equity"):
        assert together["total"][key] == pytest.approx(whole["total"][key], rel=1e-6), key
    shard_trades = [line for s in shards for line in (s / "trades.csv").read_text().splitlines()[1:]]
    assert sorted(merged_trades[1:]) == sorted(shard_trades)
    # the candles of both shards, as the run without shards wrote them
    assert sorted(merged_candles[1:]) == sorted((folder / "out" / "candles.csv").read_text().splitlines()[1:])
    assert len(merged_candles) > 2


def test_report_merge_never_overwrites_an_unsharded_runs_report_unless_told(example):
    folder = example.parent
    assert engine("run", "-q", "-c", str(example)).returncode == 0  # the unsharded run: its report in out/
    whole = (folder / "out" / "summary.json").read_text()
    for k in (1, 2):
        assert engine("run", "-q", "-c", str(example), "--shard", f"{k}/2").returncode == 0
    shards = [str(folder / "out-1of2"), str(folder / "out-2of2")]
    refused = engine("report", "merge", "-q", *shards)
    assert refused.returncode == 2
    assert refused.stderr == (
        f"error: {folder / 'out'}: holds another report than a merge of these shards; "
        "name the merge's folder with -o (naming this one overwrites it)\n"
    )
    assert (folder / "out" / "summary.json").read_text() == whole
    assert engine("report", "merge", "-q", "-o", str(folder / "out"), *shards).returncode == 0  # told to
    assert "merged_from" in json.loads((folder / "out" / "summary.json").read_text())
    again = engine("report", "merge", "-q", *shards)  # a merge of the same shards is replaced
    assert again.returncode == 0, again.stderr


def test_report_merge_of_a_folder_that_is_no_report_is_one_line(tmp_path):
    proc = engine("report", "merge", str(tmp_path))
    assert proc.returncode == 2
    assert (
        proc.stderr
        == f"error: {tmp_path}: no summary.json, equity.csv, trades.csv: not a report folder that engine run wrote\n"
    )
