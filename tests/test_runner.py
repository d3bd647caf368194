"""Threads: symbols never wait for each other; Ctrl-C stops a live run cleanly."""

from __future__ import annotations

import json
import signal
import textwrap
import threading
from pathlib import Path

import pytest

from engine_core.runner import run
from engine_core.testing import exited, python_strategy, start_engine, wait_until, write_config
from engine_core.worker import SymbolWorker

RECORDER = """
import time

class S:
    def watch(self, ctx):
        if ctx.symbol == "SLOW":
            time.sleep(0.02)
        with open(ctx.params["log"], "a") as f:
            f.write(f"{ctx.symbol} {time.monotonic()}\\n")
        return None
    def close_watch(self, ctx):
        return None
    def in_trade(self, ctx):
        return None
"""


def test_a_slow_strategy_does_not_delay_another_symbol(tmp_path: Path):
    (tmp_path / "s.py").write_text(textwrap.dedent(RECORDER))
    log = tmp_path / "calls.log"
    rows = [[sym, 60 * i, 1.0, 1.0, 1.0, 1.0, 1.0] for i in range(40) for sym in ("SLOW", "FAST")]
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["SLOW", "FAST"]},
            "source": {"type": "replay", "bars": rows},
            "strategy": {"host": "python", "class": "s.py:S", "params": {"log": str(log)}},
        },
    )
    result = run(cfg)
    assert result.symbols["SLOW"].bars == result.symbols["FAST"].bars == 40
    calls = [line.split() for line in log.read_text().splitlines()]
    fast_done = max(float(t) for s, t in calls if s == "FAST")
    slow_times = sorted(float(t) for s, t in calls if s == "SLOW")
    # FAST finished all 40 bars while SLOW (20 ms a bar) was still early in its queue
    assert fast_done < slow_times[10]


def test_a_burst_of_bars_is_processed_bar_after_bar_in_the_order_they_arrived(tmp_path: Path, monkeypatch):
    """Live, many symbols get a bar at the same instant: the strategy is asked
    about each bar in the order the bars arrived, one after another, not about
    all of them together (engine_core/baton.py). The baton's lease is set long
    here so that only the order is tested, never the machine's speed."""
    monkeypatch.setattr("engine_core.baton.LEASE", 60.0)
    log = tmp_path / "calls.log"
    bursts = ["DCBAEHGF", "ABCDEFGH", "HGFEDCBA", "EAFBGCHD"]
    rows = [[sym, 60 * i, 1.0, 1.0, 1.0, 1.0, 1.0] for i, order in enumerate(bursts) for sym in order]
    strategy = python_strategy(
        tmp_path,
        watch=f"""
        import time
        time.sleep(0.001)  # lets the interpreter lock go, as each call into Lua does
        with open({str(log)!r}, "a") as f:
            f.write(f"{{ctx.symbol}} {{ctx.index}}\\n")
        """,
    )
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": list("ABCDEFGH"), "journal": False},
            "source": {"type": "replay", "bars": rows},
            "strategy": strategy,
        },
    )
    run(cfg)
    asked = [tuple(line.split()) for line in log.read_text().splitlines()]
    assert asked == [(sym, str(i + 1)) for i, order in enumerate(bursts) for sym in order]


def test_ctrl_c_stops_a_live_run_cleanly(tmp_path: Path, root: Path):
    strategy = python_strategy(
        tmp_path,
        watch="return 'enter' if ctx.index % 10 == 0 else None",
        in_trade="return 'exit' if ctx.index % 10 == 5 else None",
    )
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["A", "B"]},
            "source": {"type": "simulated", "bars": 0, "pace": 0.002},
            "strategy": strategy,
            "sinks": [{"type": "log", "path": str(tmp_path / "events.log")}],
            "report": {"dir": "out"},
        },
    )
    proc = start_engine("run", "-c", str(cfg))
    events = tmp_path / "events.log"
    wait_until(lambda: events.exists() and "fill" in events.read_text(), "a fill in the log", stop_if=exited(proc))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "Total" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["mode"] == "live" and summary["total"]["bars"] > 0
    logged_fills = events.read_text().count(" fill ")
    assert logged_fills == summary["total"]["fills"] > 0  # the sink was flushed with every fill


def test_ctrl_c_while_the_workers_start_stops_without_a_traceback_of_its_own(tmp_path: Path, monkeypatch):
    """A Ctrl-C that lands after a worker's thread is made but before it
    starts: the stop joins only the threads that ran, and the interrupt is
    what the run ends with (the CLI turns it into its one line)."""
    (tmp_path / "s.py").write_text(textwrap.dedent(RECORDER))
    rows = [[sym, 60 * i, 1.0, 1.0, 1.0, 1.0, 1.0] for i in range(5) for sym in ("A", "B")]
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["A", "B"]},
            "source": {"type": "replay", "bars": rows},
            "strategy": {"host": "python", "class": "s.py:S", "params": {"log": str(tmp_path / "calls.log")}},
        },
    )
    start = SymbolWorker.start

    def interrupted_start(self: SymbolWorker) -> None:
        if self.symbol == "B":
            self.thread = threading.Thread(target=lambda: None)  # made, never started: Ctrl-C came first
            raise KeyboardInterrupt
        start(self)

    monkeypatch.setattr(SymbolWorker, "start", interrupted_start)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
