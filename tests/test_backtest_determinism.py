"""A backtest's result depends on the data and the config, nothing else: not
on how the bars are cut into chunks, and not on the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine_core.runner import run


@pytest.fixture
def configs(tmp_path: Path, root: Path) -> dict[str, Path]:
    out = {}
    for name in ("sma_cross", "macd_trend"):
        text = (root / "examples" / f"{name}.toml").read_text()
        text = text.replace('path = "data"', f'path = "{root / "examples" / "data"}"')
        text = text.replace("../strategies/", f"{root / 'strategies'}/")
        for chunk in (1000, 16384, 7777):
            path = tmp_path / f"{name}_{chunk}.toml"
            path.write_text(text.replace("[engine]\n", f"[engine]\nchunk = {chunk}\n", 1))
            out[f"{name}_{chunk}"] = path
    return out


@pytest.mark.parametrize("name", ["sma_cross", "macd_trend"])
def test_chunk_size_changes_nothing(configs, name):
    results = [run(configs[f"{name}_{chunk}"]) for chunk in (1000, 16384, 7777)]
    first = results[0]
    assert sum(len(r.trades) for r in first.symbols.values()) > 50
    for other in results[1:]:
        for symbol, r in first.symbols.items():
            assert other.symbols[symbol].trades == r.trades
            assert np.array_equal(other.symbols[symbol].pnl, r.pnl)


@pytest.mark.parametrize("name", ["sma_cross", "macd_trend", "rsi_reversion"])
def test_live_takes_the_decisions_the_backtest_takes(tmp_path, root, name):
    """Live feeds indicators and the host one bar at a time; a backtest, chunks."""
    text = (root / "examples" / f"{name}.toml").read_text()
    text = text.replace('type = "csv"\npath = "data"', 'type = "simulated"\nseed = 5\nbars = 4000')
    text = text.replace("../strategies/", f"{root / 'strategies'}/")
    back, live = tmp_path / "back.toml", tmp_path / "live.toml"
    back.write_text(text)
    live.write_text(text.replace('mode = "backtest"', 'mode = "live"\njournal = false'))
    b, lv = run(back), run(live)
    assert lv.mode == "live"
    for symbol, r in b.symbols.items():
        assert len(r.trades) > 5
        assert lv.symbols[symbol].trades == r.trades


@pytest.mark.parametrize("host", ["lua", "python"])
def test_history_reads_end_at_the_window_whatever_the_chunk(tmp_path, host):
    """ctx.close(n) is nil for n >= window even where the chunk holds older bars."""
    if host == "lua":
        (tmp_path / "s.lua").write_text(
            "function watch(ctx)\n"
            "  if ctx.index > 50 and ctx.close(10) == nil then error('missing') end\n"
            "  if ctx.close(20) ~= nil or ctx.close(9) == nil and ctx.index > 10 then error('window') end\n"
            "end\nfunction close_watch(ctx) end\nfunction in_trade(ctx) end\n"
        )
        strategy = 'host = "lua"\nscript = "s.lua"'
    else:
        (tmp_path / "s.py").write_text(
            "class S:\n"
            "    def watch(self, ctx):\n"
            "        if ctx.close(20) is not None or (ctx.index > 10 and ctx.close(9) is None):\n"
            "            raise RuntimeError('window')\n"
            "    def close_watch(self, ctx):\n        pass\n"
            "    def in_trade(self, ctx):\n        pass\n"
        )
        strategy = 'host = "python"\nclass = "s.py:S"'
    for chunk in (1, 100, 16384):
        cfg = tmp_path / f"c{chunk}.toml"
        cfg.write_text(
            f'[engine]\nsymbols = ["A"]\nwindow = 20\nchunk = {chunk}\n[source]\ntype = "simulated"\nbars = 300\n'
            f"[strategy]\n{strategy}\n"
        )
        result = run(cfg)
        assert result.symbols["A"].halted is None, result.symbols["A"].halted
        assert result.symbols["A"].bars == 300
