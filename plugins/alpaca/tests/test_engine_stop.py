"""The engine on the local Alpaca with its client rate limit spent: an exit
held back by the limiter does not hold up the symbol's bars, ``engine status``
shows it waiting, and a stop while it waits sends nothing: the exit is
journaled as never sent."""

from __future__ import annotations

import json
import textwrap
from contextlib import closing
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner
from engine_plugin_alpaca import plugin as alpaca_plugin
from engine_plugin_alpaca.testing import (
    DAY1_CLOSE,
    DAY1_OPEN,
    DAY2_OPEN,
    MINUTE,
    live_tables,
    minute_bars,
)

from engine_core import Journal, OrderStatus, State
from engine_core.cli import main
from engine_core.runner import build_engine
from engine_core.testing import EngineThread, builtin_registry, wait_until, write_config

OPEN, CLOSE, NEXT_OPEN = DAY1_OPEN, DAY1_CLOSE, DAY2_OPEN

STRATEGY = """
class S:
    def watch(self, ctx):
        return "setup"
    def close_watch(self, ctx):
        return {"action": "enter", "qty": 1}
    def in_trade(self, ctx):
        return "exit"
"""


def config(tmp_path: Path, server, strategy: str = STRATEGY, **broker: object) -> Path:
    (tmp_path / "s.py").write_text(textwrap.dedent(strategy))
    return write_config(
        tmp_path / "alpaca.toml",
        {
            "engine": {"mode": "live", "symbols": ["AAPL"], "window": 20, "id": "stop", "stop_timeout": 2},
            **live_tables(server, **broker),
            "strategy": {"host": "python", "class": "s.py:S"},
        },
    )


def test_an_exit_held_by_the_rate_limit_lets_bars_through_and_is_never_sent_after_stop(tmp_path, server):
    server.add_history(minute_bars("AAPL", OPEN, 30))
    server.set_clock(OPEN + 30 * MINUTE, True, NEXT_OPEN, CLOSE)
    server.spend_rate_limit(300)  # the entry's answer says: no more requests for 5 minutes
    path = config(tmp_path, server)
    run = EngineThread(build_engine(path, builtin_registry(("alpaca", alpaca_plugin)))).start()
    try:
        wait_until(lambda: server.subscribed("AAPL"), "the market stream")
        w = run.engine.workers["AAPL"]
        server.push_bars(minute_bars("AAPL", OPEN + 30 * MINUTE, 1))  # the entry, sent at once
        run.wait(lambda: w.sm.state is State.IN_TRADE, "the entry's fill")
        bars = w.bars_done
        server.push_bars(minute_bars("AAPL", OPEN + 31 * MINUTE, 1))  # the exit: held by the rate limit
        run.wait(lambda: w.bars_done == bars + 1, "the exit's bar")
        server.push_bars(minute_bars("AAPL", OPEN + 32 * MINUTE, 4))
        run.wait(lambda: w.bars_done == bars + 5, "the bars after it")  # the symbol is not held up
        cur = w.orders.current
        assert cur is not None and cur.status is OrderStatus.INTENT and cur.order.side.value == "sell"
        status = CliRunner().invoke(main, ["status", "--json", "-c", str(path)])
        [row] = json.loads(status.output)
        assert row["open_orders"] == [cur.order.client_id] and row["not_sent"] == [cur.order.client_id]
    finally:
        result = run.stop()
    assert [b["side"] for b in server.order_posts] == ["buy"]  # nothing sent after stop
    aapl = result.symbols["AAPL"]
    assert server.positions["AAPL"] == aapl.position_qty == Decimal(1)  # the venue and the engine agree
    with closing(Journal(tmp_path / ".engine" / "stop.sqlite")) as j:
        exit_order = j.orders(symbol="AAPL")[-1]
        [lost] = j.events(symbol="AAPL", kind="lost")
    assert exit_order["side"] == "sell" and exit_order["status"] == "lost"  # never sent, not unknown
    assert "never sent" in lost["detail"]


HOLD = """
class S:
    def watch(self, ctx):
        return "setup"
    def close_watch(self, ctx):
        return {"action": "enter", "qty": 1}
    def in_trade(self, ctx):
        return None
"""


def test_a_lost_answer_whose_lookup_fails_is_unknown_and_its_fill_booked_once(tmp_path, server):
    server.add_history(minute_bars("AAPL", OPEN, 30))
    server.set_clock(OPEN + 30 * MINUTE, True, NEXT_OPEN, CLOSE)
    server.delay_next_order = 3.0  # placed and filled, the answer comes after the broker gave up (timeout 1 s)
    server.fail_next["/v2/orders:by_client_order_id"] = [429] * 20  # and the lookups are refused for a while
    path = config(tmp_path, server, HOLD, timeout=1.0)
    run = EngineThread(build_engine(path, builtin_registry(("alpaca", alpaca_plugin)))).start()
    try:
        wait_until(lambda: server.subscribed("AAPL"), "the market stream")
        w = run.engine.workers["AAPL"]
        bars = w.bars_done
        server.push_bars(minute_bars("AAPL", OPEN + 30 * MINUTE, 1))  # the entry
        run.wait(lambda: w.ledger.qty != 0, "the entry's fill booked")
        server.push_bars(minute_bars("AAPL", OPEN + 31 * MINUTE, 2))  # would enter again, were it back in watch
        run.wait(lambda: w.bars_done == bars + 3 and w.orders.current is None, "the bars after the entry")
    finally:
        result = run.stop()
    assert [b["side"] for b in server.order_posts] == ["buy"]  # no second order
    assert server.positions["AAPL"] == result.symbols["AAPL"].position_qty == Decimal(1)
    assert result.symbols["AAPL"].final_state == State.IN_TRADE.value
    with closing(Journal(tmp_path / ".engine" / "stop.sqlite")) as j:
        [order] = j.orders(symbol="AAPL")
        kinds = [e["kind"] for e in j.events(symbol="AAPL") if e.get("client_id") == order["client_id"]]
    assert order["status"] == "filled" and "unknown" in kinds and "lost" not in kinds and "rejected" not in kinds


def test_an_order_on_the_wire_at_stop_is_journaled_unknown_and_the_next_start_books_it(tmp_path, server):
    server.add_history(minute_bars("AAPL", OPEN, 30))
    server.set_clock(OPEN + 30 * MINUTE, True, NEXT_OPEN, CLOSE)
    server.trade_stream_enabled = False  # no stream: only a lookup could tell what became of the order
    server.delay_next_order = 8.0  # placed and filled at once; its answer held past the stop (stop_timeout 2 s)
    server.fail_next["/v2/orders:by_client_order_id"] = [429] * 100_000  # and every lookup refused
    path = config(tmp_path, server, HOLD, timeout=30.0)
    run = EngineThread(build_engine(path, builtin_registry(("alpaca", alpaca_plugin)))).start()
    try:
        wait_until(lambda: server.subscribed("AAPL"), "the market stream")
        server.push_bars(minute_bars("AAPL", OPEN + 30 * MINUTE, 1))  # the entry
        wait_until(lambda: len(server.order_posts) == 1, "the entry at the venue")
    finally:
        run.stop()  # while the entry's answer is awaited: stop_timeout is 2 s
    with closing(Journal(tmp_path / ".engine" / "stop.sqlite")) as j:
        [order] = j.orders(symbol="AAPL")
    assert order["status"] == "unknown" and server.positions["AAPL"] == 1  # not "not placed": in doubt

    server.fail_next.clear()  # the next start can ask
    server.trade_stream_enabled = True
    again = EngineThread(build_engine(path, builtin_registry(("alpaca", alpaca_plugin)))).start()
    try:
        wait_until(lambda: server.subscribed("AAPL"), "the market stream after the restart")
        w = again.engine.workers["AAPL"]
        assert w.sm.state is State.IN_TRADE and w.ledger.qty == 1  # the fill booked at the restart
    finally:
        result = again.stop()
    assert [b["side"] for b in server.order_posts] == ["buy"]  # never sent twice
    assert result.symbols["AAPL"].position_qty == server.positions["AAPL"] == 1
    with closing(Journal(tmp_path / ".engine" / "stop.sqlite")) as j:
        [order] = j.orders(symbol="AAPL")
    assert order["status"] == "filled"
