"""The worker's trading semantics on hand-made bars with small Python strategies."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine_core.model import Side
from engine_core.runner import build_engine
from engine_core.testing import python_strategy, replay_rows, write_config

# (open, high, low, close) per bar; one bar a minute from t=0
FLAT = [(100, 101, 99, 100)] * 3


def run(
    tmp_path: Path,
    strategy: dict[str, str],
    bars: dict[str, list[tuple]],
    *,
    broker: dict | None = None,
    strategy_cfg: dict | None = None,
    params: dict | None = None,
) -> Any:
    """Run the strategy whose function bodies are ``strategy`` (see python_strategy) on these bars."""
    sections = {
        "engine": {"symbols": list(bars), "window": 50},
        "source": {"type": "replay", "bars": [row for sym, seq in bars.items() for row in replay_rows(sym, seq)]},
        "strategy": {
            **python_strategy(tmp_path, file="strat.py", **strategy),
            **(strategy_cfg or {}),
            "params": params or {"x": 1},
        },
        "broker": {"type": "paper", "cash": 10000, **(broker or {})},
    }
    engine = build_engine(write_config(tmp_path / "c.toml", sections))
    return engine.run()


ENTER_FIRST_BAR = {
    "watch": 'return "setup" if ctx.index == 1 else None',
    "close_watch": 'return {"action": "enter", "qty": 2}',
}


def test_setup_and_enter_on_the_same_bar_fill_at_next_open(tmp_path):
    bars = [(100, 101, 99, 100), (102, 103, 101, 102), (103, 104, 102, 103)]
    r = run(tmp_path, ENTER_FIRST_BAR, {"A": bars}).symbols["A"]
    assert r.orders == 1 and r.fills == 1
    assert r.final_state == "in_trade" and r.position_qty == 2
    # bought 2 at bar 1's open (102): marked at closes 100 (flat), 102, 103
    assert list(r.pnl) == [0.0, 0.0, 2.0]
    assert list(r.exposed) == [False, True, True]


def test_fill_at_close(tmp_path):
    bars = [(100, 101, 99, 100), (102, 103, 101, 102)]
    r = run(tmp_path, ENTER_FIRST_BAR, {"A": bars}, broker={"fill": "close"}).symbols["A"]
    assert list(r.pnl) == [0.0, 4.0]  # bought 2 at 100, marked at 102


def test_stop_loss_from_config_exits_at_stop_price(tmp_path):
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (99, 99.5, 97, 98), (90, 91, 80, 85)]
    r = run(tmp_path, ENTER_FIRST_BAR, {"A": bars}, strategy_cfg={"stop_loss": 0.02}).symbols["A"]
    (trade,) = r.trades
    assert trade.entry_price == Decimal("100.0")
    assert trade.exit_price == Decimal("98.0")  # 100 * (1 - 0.02), touched on bar 2
    assert trade.exit_reason == "stop_loss"
    assert trade.pnl == Decimal("-4.00")  # 2 units
    assert r.final_state == "watch" and r.position_qty == 0


def test_stop_loss_gap_fills_at_the_open(tmp_path):
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (90, 91, 80, 85)]
    r = run(tmp_path, ENTER_FIRST_BAR, {"A": bars}, strategy_cfg={"stop_loss": 0.02}).symbols["A"]
    assert r.trades[0].exit_price == Decimal("90.0")


def test_take_profit_and_stop_from_the_decision(tmp_path):
    strategy = {
        "watch": 'return "setup" if ctx.index == 1 else None',
        "close_watch": 'return {"action": "enter", "qty": 1, "stop_price": 95, "take_profit_price": 104}',
    }
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (101, 103, 100, 102), (103, 106, 102, 105)]
    (trade,) = run(tmp_path, strategy, {"A": bars}).symbols["A"].trades
    assert (trade.exit_price, trade.exit_reason) == (Decimal("104"), "take_profit")


def test_trailing_stop_follows_the_high(tmp_path):
    bars = [(100, 100, 100, 100), (100, 100, 100, 100), (101, 110, 101, 109), (108, 108, 98, 99)]
    r = run(tmp_path, ENTER_FIRST_BAR, {"A": bars}, strategy_cfg={"trailing_stop": 0.05}).symbols["A"]
    (trade,) = r.trades
    # best high before bar 3 is 110 -> trail level 104.5; bar 3 opens at 108 and trades down to 98
    assert trade.exit_reason == "trailing_stop"
    assert float(trade.exit_price) == pytest.approx(104.5)


def test_strategy_exit_and_commission_slippage(tmp_path):
    strategy = {
        "watch": 'return "enter" if ctx.index == 1 else None',
        "close_watch": 'return {"action": "enter", "qty": 1}',
        "in_trade": 'return {"action": "exit", "reason": "done"} if ctx.index == 3 else None',
    }
    bars = [(100, 100, 100, 100), (100, 100, 100, 100), (110, 110, 110, 110), (120, 120, 120, 120)]
    r = run(tmp_path, strategy, {"A": bars}, broker={"commission": 0.001, "slippage": 0.01}).symbols["A"]
    (trade,) = r.trades
    assert trade.entry_price == Decimal("101.00")  # 100 + 1% against us
    assert trade.exit_price == Decimal("118.80")  # 120 - 1%
    assert trade.commission == Decimal("0.101000") + Decimal("0.118800")
    assert trade.pnl == Decimal("17.80") - trade.commission
    assert trade.exit_reason == "done"
    assert r.pnl[-1] == pytest.approx(float(trade.pnl))


def test_short_trade(tmp_path):
    strategy = {
        "watch": 'return "setup" if ctx.index == 1 else None',
        "close_watch": 'return {"action": "enter", "side": "sell", "qty": 1}',
        "in_trade": 'return "exit" if ctx.position.qty < 0 and ctx.index == 3 else None',
    }
    bars = [(100, 100, 100, 100), (100, 100, 100, 100), (90, 90, 90, 90), (80, 80, 80, 80)]
    (trade,) = run(tmp_path, strategy, {"A": bars}).symbols["A"].trades
    assert trade.side is Side.SELL and trade.pnl == Decimal("20.0")


def test_setup_expires(tmp_path):
    strategy = {
        "watch": 'return {"action": "setup", "expires": 2} if ctx.index == 1 else None',
        "close_watch": """
            ctx.state.setdefault("seen", []).append(ctx.index)
            return None
        """,
    }
    bars = [(100, 100, 100, 100)] * 5
    engine_result = run(tmp_path, strategy, {"A": bars})
    r = engine_result.symbols["A"]
    assert r.final_state == "watch" and r.orders == 0


def test_strategy_error_halts_only_its_symbol_and_flattens(tmp_path):
    strategy = {
        "watch": 'return "enter" if ctx.index == 1 else None',
        "close_watch": 'return {"action": "enter", "qty": 1}',
        "in_trade": """
            if ctx.symbol == "BAD" and ctx.index == 3:
                raise ValueError("kaboom")
            return "exit" if ctx.index == 4 else None
        """,
    }
    bars = [(100, 100, 100, 100)] * 3 + [(105, 105, 105, 105)] * 3
    result = run(tmp_path, strategy, {"BAD": bars, "GOOD": bars})
    bad, good = result.symbols["BAD"], result.symbols["GOOD"]
    assert bad.halted and "kaboom" in bad.halted and "strat.py:" in bad.halted and "in_trade" in bad.halted
    assert "BAD" in bad.halted
    assert bad.position_qty == 0 and bad.trades[0].exit_reason == "halt"
    assert bad.bars == good.bars == 6  # the halted symbol is still marked to market
    assert good.halted is None and good.trades[0].exit_reason == "exit"


def test_on_error_keep_keeps_the_position(tmp_path):
    strategy = {
        "watch": 'return "enter" if ctx.index == 1 else None',
        "close_watch": 'return {"action": "enter", "qty": 1}',
        "in_trade": 'raise RuntimeError("nope")',
    }
    r = run(tmp_path, strategy, {"A": FLAT}, strategy_cfg={"on_error": "keep"}).symbols["A"]
    assert r.halted and r.position_qty == 1 and r.trades == []


@pytest.mark.parametrize(
    "returned,message",
    [
        ('"buy"', "action 'buy' is not valid in state watch"),
        ('{"action": "enter", "qty": -1}', "'qty' must be positive"),
        ('{"action": "enter", "colour": 1}', "unknown decision field 'colour'"),
        ("42", "a decision must be nil, an action string or a table, got int"),
    ],
)
def test_invalid_decision_halts_with_a_clear_message(tmp_path, returned, message):
    r = run(tmp_path, {"watch": f"return {returned}"}, {"A": FLAT}).symbols["A"]
    assert r.halted is not None and message in r.halted and "watch for A" in r.halted
