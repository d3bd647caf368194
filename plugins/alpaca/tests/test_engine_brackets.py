"""SIGKILL an ``engine run`` holding a bracket entry at the local Alpaca,
restart it: a leg that filled while the engine was down, or that fills after
the restart, is booked, the engine and the venue agree, and the engine never
sends an exit for a position a leg already closed."""

from __future__ import annotations

import signal
import subprocess
import textwrap
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest
from engine_plugin_alpaca import plugin as alpaca_plugin
from engine_plugin_alpaca.testing import (
    DAY1_CLOSE,
    DAY1_OPEN,
    DAY2_OPEN,
    MINUTE,
    live_tables,
    minute_bars,
)

from engine_core import Journal, State
from engine_core.runner import build_engine
from engine_core.testing import (
    EngineThread,
    builtin_registry,
    engine_env,
    exited,
    journal_value,
    start_engine,
    wait_until,
    write_config,
)

OPEN, CLOSE, NEXT_OPEN = DAY1_OPEN, DAY1_CLOSE, DAY2_OPEN

# enters once with a bracket (stop 90, take-profit 110 at the venue, and the
# same levels as the engine's own stops); after the restart it never enters again
STRATEGY = """
class S:
    def watch(self, ctx):
        return None if ctx.params.get("restarted") else "setup"
    def close_watch(self, ctx):
        return {"action": "enter", "qty": 1, "stop_price": 90.0, "take_profit_price": 110.0}
    def in_trade(self, ctx):
        return None
"""


def config(tmp_path: Path, server, **params) -> Path:
    (tmp_path / "s.py").write_text(textwrap.dedent(STRATEGY))
    return write_config(
        tmp_path / "alpaca.toml",
        {
            "engine": {"mode": "live", "symbols": ["AAPL"], "window": 20, "id": "brackets"},
            **live_tables(server),
            "strategy": {"host": "python", "class": "s.py:S", "params": params},
        },
    )


def journal(tmp_path: Path) -> Path:
    return tmp_path / ".engine" / "brackets.sqlite"


@pytest.fixture
def market(server):
    server.add_history(minute_bars("AAPL", OPEN, 30))  # warm-up
    server.set_clock(OPEN + 30 * MINUTE, True, NEXT_OPEN, CLOSE)
    return server


def enter_then_kill(tmp_path: Path, market) -> str:
    """Run the engine until its bracket entry filled and it is in trade, then
    SIGKILL it; return the entry's client id."""
    path = config(tmp_path, market)
    log = (tmp_path / "run1.log").open("w")
    proc = start_engine(
        "run", "-q", "--no-report", "-c", str(path), env=engine_env(), stdout=log, stderr=subprocess.STDOUT
    )
    in_trade = "SELECT count(*) FROM events WHERE kind = 'transition' AND data LIKE '%\"to\": \"in_trade\"%'"
    try:
        wait_until(lambda: market.subscribed("AAPL"), "the market stream", 60.0, stop_if=exited(proc))
        market.push_bars(minute_bars("AAPL", OPEN + 30 * MINUTE, 2))
        wait_until(lambda: journal_value(journal(tmp_path), in_trade, 0) == 1, "the entry", 60.0, stop_if=exited(proc))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        log.close()
    # the killed engine's sockets close with it; until the venue has seen that, its subscription
    # would pass for the restarted engine's
    wait_until(
        lambda: market.md_clients() == 0 == market.tu_clients(), "the venue to see the killed engine's streams close"
    )
    [entry] = market.order_posts
    assert entry["order_class"] == "bracket" and market.positions["AAPL"] == 1
    return str(entry["client_order_id"])


def restart(tmp_path: Path, market) -> EngineThread:
    path = config(tmp_path, market, restarted=True)
    return EngineThread(build_engine(path, builtin_registry(("alpaca", alpaca_plugin)))).start()


def at_take_profit(market, start: int, n: int = 3) -> None:
    """Bars through the engine's own take-profit (110)."""
    market.push_bars(minute_bars("AAPL", start, n, price=111.0))


def check_agreement(tmp_path: Path, market, run: EngineThread, n_bars: int) -> None:
    w = run.engine.workers["AAPL"]
    run.wait(lambda: w.bars_done >= n_bars, "the bars after the restart")
    result = run.stop()
    aapl = result.symbols["AAPL"]
    assert [b["side"] for b in market.order_posts] == ["buy"]  # the engine sent no exit of its own
    assert market.positions.get("AAPL", Decimal(0)) == 0 == aapl.position_qty  # the venue and the engine agree
    assert aapl.halted is None and aapl.final_state == State.WATCH.value
    with closing(Journal(journal(tmp_path))) as j:
        fills = j.events(symbol="AAPL", kind="fill")
    assert [f["side"] for f in fills] == ["buy", "sell"]  # the leg's fill is journaled, once


def test_a_take_profit_leg_filled_while_the_engine_was_down_is_booked_at_restart(tmp_path, market):
    cid = enter_then_kill(tmp_path, market)
    market.fill_leg(cid, "take_profit", Decimal("110"))  # while the engine is down: the venue is flat
    run = restart(tmp_path, market)
    bars_before = 0
    try:
        wait_until(lambda: market.subscribed("AAPL"), "the market stream after the restart")
        bars_before = run.engine.workers["AAPL"].bars_done
        at_take_profit(market, OPEN + 32 * MINUTE)
    finally:
        check_agreement(tmp_path, market, run, bars_before + 3)


@pytest.mark.parametrize("shortable", [True, False], ids=["shorting allowed", "no shorting"])
def test_a_leg_that_fills_after_the_restart_is_booked_and_no_exit_follows(tmp_path, market, shortable):
    market.set_asset("AAPL", shortable=shortable)
    cid = enter_then_kill(tmp_path, market)
    run = restart(tmp_path, market)
    bars_before = 0
    try:
        wait_until(lambda: market.subscribed("AAPL"), "the market stream after the restart")
        w = run.engine.workers["AAPL"]
        assert w.sm.state is State.IN_TRADE and w.ledger.qty == 1
        bars_before = w.bars_done
        market.fill_leg(cid, "take_profit", Decimal("110"))  # the venue's take-profit, while the engine runs
        run.wait(lambda: w.ledger.qty == 0, "the leg's fill")
        at_take_profit(market, OPEN + 32 * MINUTE)  # the engine's own take-profit level: nothing left to sell
    finally:
        check_agreement(tmp_path, market, run, bars_before + 3)


# two round trips with a bracket each: the first closed by its take-profit leg
# at the venue, the second by the strategy's own exit
TWO_TRIPS = """
class S:
    entered = 0
    def watch(self, ctx):
        return "setup"
    def close_watch(self, ctx):
        self.entered += 1
        return {"action": "enter", "qty": 1, "stop_price": 90.0, "take_profit_price": 110.0}
    def in_trade(self, ctx):
        return "exit" if self.entered >= 2 else None
"""


def test_the_strategys_exit_after_a_round_trip_a_leg_closed_is_sent_and_fills(tmp_path, market):
    """The first bracket's take-profit filled at the venue; the second
    bracket's exit cancels that bracket's legs and goes out: the venue and
    the engine end flat together, the position never left without its exit."""
    (tmp_path / "s.py").write_text(textwrap.dedent(TWO_TRIPS))
    path = write_config(
        tmp_path / "alpaca.toml",
        {
            "engine": {"mode": "live", "symbols": ["AAPL"], "window": 20, "id": "brackets"},
            **live_tables(market),
            "strategy": {"host": "python", "class": "s.py:S"},
        },
    )
    run = EngineThread(build_engine(path, builtin_registry(("alpaca", alpaca_plugin)))).start()
    try:
        wait_until(lambda: market.subscribed("AAPL"), "the market stream")
        w = run.engine.workers["AAPL"]
        market.push_bars(minute_bars("AAPL", OPEN + 30 * MINUTE, 2))
        run.wait(lambda: w.sm.state is State.IN_TRADE, "the first entry")
        first = str(market.order_posts[0]["client_order_id"])
        market.fill_leg(first, "take_profit", Decimal("110"))
        run.wait(lambda: w.sm.state is State.WATCH and w.ledger.qty == 0, "the leg's fill booked")
        market.push_bars(minute_bars("AAPL", OPEN + 32 * MINUTE, 2))
        run.wait(lambda: w.sm.state is State.IN_TRADE, "the second entry")
        market.push_bars(minute_bars("AAPL", OPEN + 34 * MINUTE, 1))
        run.wait(lambda: len(market.order_posts) == 3 and w.ledger.qty == 0, "the exit filled")
    finally:
        result = run.stop()
    aapl = result.symbols["AAPL"]
    assert [b["side"] for b in market.order_posts] == ["buy", "buy", "sell"]
    assert market.positions.get("AAPL", Decimal(0)) == 0 == aapl.position_qty
    assert {leg.status for leg in market.order_by_client_id(str(market.order_posts[1]["client_order_id"])).legs} == {
        "canceled"
    }
    assert aapl.errors == [] and aapl.halted is None
    assert [t.exit_reason for t in aapl.trades] == ["take_profit", "exit"]
