"""Helpers of the dashboard's tests: backtest reports, a live engine's config,
``engine dashboard`` in a child process."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path
from typing import Any

from engine_core.testing import run_engine, start_engine, wait_until, write_config

TOKEN = "dashboard-test-token-0123456789"
# In at every 20th bar, out 18 bars later: a position stays open long enough to pause and flatten it.
# It reads an average and an RSI, which the symbol's page draws over the candles and below them.
HOLDER = """
class S:
    def watch(self, ctx):
        ctx.ind.sma(5), ctx.ind.rsi(5)
        return "enter" if ctx.index % 20 == 0 else None
    def close_watch(self, ctx):
        return None
    def in_trade(self, ctx):
        ctx.ind.sma(5), ctx.ind.rsi(5)
        return "exit" if ctx.index % 20 == 18 else None
"""


def backtest(tmp_path: Path, name: str, seed: int, every: int, shard: str | None = None) -> Path:
    """A backtest report under tmp_path/reports/<name> (daily bars: enough returns for a Sharpe ratio);
    with ``shard`` ("K/N"), that shard's, under reports/<name>-KofN."""
    (tmp_path / f"{name}.py").write_text(
        "class S:\n"
        f"    def watch(self, ctx):\n        return 'enter' if ctx.index % {every} == 0 else None\n"
        "    def close_watch(self, ctx):\n        return None\n"
        f"    def in_trade(self, ctx):\n        return 'exit' if ctx.index % {every} == {every // 2} else None\n"
    )
    config = write_config(
        tmp_path / f"{name}.toml",
        {
            "engine": {"symbols": ["AAA", "BBB", "CCC", "DDD"] if shard else ["AAA", "BBB"], "id": name},
            "source": {"type": "simulated", "bars": 200, "seed": seed, "interval": 86400},
            "strategy": {"host": "python", "class": f"{name}.py:S"},
            "report": {"dir": f"reports/{name}"},
        },
    )
    done = run_engine("run", "-c", str(config), "-q", *(["--shard", shard] if shard else []))
    assert done.returncode == 0, done.stderr
    return tmp_path / "reports" / (f"{name}-{shard.replace('/', 'of')}" if shard else name)


def live_config(tmp_path: Path, port: int) -> Path:
    (tmp_path / "holder.py").write_text(HOLDER)
    return write_config(
        tmp_path / "live.toml",
        {
            "engine": {"mode": "live", "symbols": ["AAA", "BBB", "CCC"], "id": "e1", "state_dir": "state"},
            "source": {"type": "simulated", "bars": 0, "pace": 0.25},
            "strategy": {"host": "python", "class": "holder.py:S"},
            "sinks": [{"type": "mqtt", "port": port, "prefix": "t", "control": True, "bars": True, "status_every": 1}],
            "risk": {"max_drawdown": 0.5},
        },
    )


class Dashboard:
    """``engine dashboard`` in a child process (or ``proc``: ``engine run`` of a
    config with a ``[dashboard]`` table); ``url`` is the address it printed."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, proc: Any = None) -> None:
        self.proc = proc or start_engine("dashboard", "--port", "0", *args, env=env)
        self.lines: list[str] = []
        self.url: str | None = None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True).start()
        wait_until(lambda: self.url is not None or self.proc.poll() is not None, "the dashboard's address")
        assert self.url is not None, "\n".join(self.lines)
        self.base = self.url.split("/?")[0]

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            found = re.search(r"open (http://\S+)", line)
            if found:
                self.url = found[1]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
