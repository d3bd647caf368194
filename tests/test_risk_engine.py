"""Risk rules acting inside a run: refused orders, sizing, kill switches."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

from engine_core.journal import Journal
from engine_core.model import SECONDS_PER_DAY, OrderEvent, TransitionEvent
from engine_core.risk import Account, RiskManager, RiskSection
from engine_core.runner import build_engine
from engine_core.testing import write_config

ENTER_EVERY_5 = """
class S:
    def watch(self, ctx):
        return "setup" if ctx.index % 5 == 1 else None
    def close_watch(self, ctx):
        q = ctx.params.get("qty")
        return {"action": "enter", "qty": q} if q else "enter"
    def in_trade(self, ctx):
        return "exit" if ctx.index % 5 == 3 else None
"""


def engine(tmp_path: Path, rows: list, risk: dict, params: dict | None = None, **engine_cfg):
    (tmp_path / "s.py").write_text(textwrap.dedent(ENTER_EVERY_5))
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": sorted({r[0] for r in rows}), **engine_cfg},
            "source": {"type": "replay", "bars": rows},
            "strategy": {"host": "python", "class": "s.py:S", "params": params or {"x": 0}},
            "broker": {"type": "paper", "cash": 10000},
            "risk": risk,
            "sinks": [{"type": "memory"}],
        },
    )
    return build_engine(cfg)


def bars(symbol: str, closes: list[float]) -> list:
    return [[symbol, 60 * i, c, c, c, c, 1.0] for i, c in enumerate(closes)]


def run_recorded(eng):
    result = eng.run()
    return result, eng.bus.sinks[0].events


def test_max_position_refuses_the_order_that_breaks_it(tmp_path):
    eng = engine(tmp_path, bars("A", [100.0] * 12), {"max_position": 2}, params={"qty": 3})
    result, events = run_recorded(eng)
    refused = [e for e in events if isinstance(e, OrderEvent) and e.status == "refused"]
    assert refused and all("max_position" in e.detail for e in refused)
    assert "position would be 3, limit 2" in refused[0].detail
    assert result.symbols["A"].fills == 0
    back = [e for e in events if isinstance(e, TransitionEvent) and e.reason == "entry refused by max_position"]
    assert len(back) == len(refused)


def test_order_within_the_limit_passes(tmp_path):
    result = engine(tmp_path, bars("A", [100.0] * 12), {"max_position": 3}, params={"qty": 3}).run()
    assert result.symbols["A"].fills > 0


def test_percent_equity_sizing(tmp_path):
    result = engine(tmp_path, bars("A", [50.0] * 8), {"sizing": "percent_equity", "percent": 0.1, "qty_step": 1}).run()
    trade = result.symbols["A"].trades[0]
    assert trade.qty == Decimal(20)  # 10% of 10,000 at 50


def test_drawdown_kill_switch_flattens_and_halts(tmp_path):
    closes = [100.0, 100.0, 60.0, 60.0, 60.0, 60.0, 60.0, 60.0]
    result = engine(tmp_path, bars("A", closes), {"max_drawdown": 0.1}, params={"qty": 50}).run()
    a = result.symbols["A"]
    # entered at 100 (bar 1 open); the fall to 60 at bar 2's close costs 20%: flatten at bar 3's open
    assert a.halted and "kill switch max_drawdown tripped" in a.halted
    assert a.position_qty == 0 and len(a.trades) == 1
    assert a.trades[0].exit_reason == "max_drawdown" and a.trades[0].exit_ts == 180 * 10**9
    assert a.orders == 2  # halted: no new entry at bar 5


def test_kill_switch_halt_keeps_the_position(tmp_path):
    closes = [100.0, 100.0, 60.0, 60.0, 60.0, 60.0, 60.0, 60.0]
    result = engine(tmp_path, bars("A", closes), {"max_drawdown": 0.1, "kill_action": "halt"}, params={"qty": 50}).run()
    a = result.symbols["A"]
    assert a.halted and a.position_qty == 50


def test_drawdown_under_the_limit_does_not_trip(tmp_path):
    closes = [100.0, 100.0, 97.0, 97.0, 97.0, 97.0, 97.0, 97.0]  # 1.5% of equity
    a = engine(tmp_path, bars("A", closes), {"max_drawdown": 0.02}, params={"qty": 50}).run().symbols["A"]
    assert a.halted is None and a.trades[0].exit_reason == "exit"


def test_daily_loss_limit_trips_on_the_day_it_is_lost(tmp_path):
    day = SECONDS_PER_DAY
    rows = [
        ["A", t, c, c, c, c, 1.0]
        for t, c in [
            (0, 100.0),
            (60, 100.0),
            (120, 100.0),
            (180, 100.0),
            (240, 100.0),
            (300, 100.0),
            (day, 100.0),
            (day + 60, 100.0),
            (day + 120, 90.0),
            (day + 180, 90.0),
        ]
    ]
    a = engine(tmp_path, rows, {"daily_loss_limit": 0.03}, params={"qty": 50}).run().symbols["A"]
    assert a.halted and "daily_loss_limit" in a.halted


def test_refused_orders_are_journaled(tmp_path):
    eng = engine(tmp_path, bars("A", [100.0] * 8), {"max_position": 1}, params={"qty": 2}, journal=True)
    eng.run()
    journal = Journal(tmp_path / ".engine" / "c.sqlite")
    refused = journal.events(kind="refused")
    assert refused and refused[0]["detail"].startswith("max_position:")
    assert {o["status"] for o in journal.orders()} == {"refused"}


def test_cross_symbol_rules_that_cannot_refuse_do_not_step_bar_by_bar(tmp_path, monkeypatch):
    """The README's [risk] (max_open_orders = 10 on two symbols, kill switches): no order
    can be refused across symbols, so the backtest runs each symbol on its own thread
    and its results are those of the event-time stepping."""
    rows = bars("A", [100.0 + (i % 7) - 0.01 * i for i in range(300)])
    rows += [["B", *r[1:]] for r in bars("A", [50.0 + (i % 5) + 0.02 * i for i in range(300)])]
    risk = {"max_open_orders": 10, "daily_loss_limit": 0.05, "max_drawdown": 0.2, "max_position": 5}

    def outcome(folder: str):
        (tmp_path / folder).mkdir()
        eng = engine(tmp_path / folder, rows, risk, params={"qty": 2})
        result = eng.run()
        return eng.lockstep, {s: (r.trades, list(r.pnl), r.halted) for s, r in result.symbols.items()}

    threaded, results = outcome("free")
    assert threaded is False
    assert all(trades for trades, _, _ in results.values())
    monkeypatch.setattr(RiskManager, "cross_symbol_binds", lambda self, symbols: True)
    stepped, in_time_order = outcome("stepped")
    assert stepped is True and in_time_order == results


def test_cross_symbol_rules_bind_only_when_they_can_refuse():
    def binds(run_on, **risk):
        return RiskManager(RiskSection.model_validate(risk), Account(Decimal(1000))).cross_symbol_binds(run_on)

    assert not binds(["A", "B"])
    assert not binds(["A", "B"], max_open_orders=2)  # each symbol has at most one order in flight
    assert binds(["A", "B", "C"], max_open_orders=2)
    assert binds(["A", "B"], max_total_notional=1000)
    assert not binds(["A", "B"], max_total_notional=1000, max_notional=500)
    assert binds(["A", "B"], max_total_notional=1000, max_notional=500, symbols={"B": {"max_notional": 501}})


def test_max_total_notional_counts_the_entries_on_their_way(tmp_path):
    """A and B enter on the same bar (filled at the next open): B's entry is
    checked before A's fills, and A's position-to-be counts towards the total
    all the same, so B's is refused: 6 units of 100 each would make 1,200
    against a limit of 1,000."""
    rows = sorted(bars("A", [100.0] * 5) + bars("B", [100.0] * 5), key=lambda r: r[1])
    eng = engine(tmp_path, rows, {"max_total_notional": 1000}, params={"qty": 6})
    result, events = run_recorded(eng)
    refused = [e for e in events if isinstance(e, OrderEvent) and e.status == "refused"]
    assert [(e.order.symbol, e.detail.split(":")[0]) for e in refused] == [("B", "max_total_notional")]
    assert result.symbols["A"].fills >= 1 and result.symbols["B"].fills == 0
