"""A restart on the fake Alpaca finds orders working at the venue that its
journal does not have open (``Broker.open_orders``, ``GET /v2/orders?status=open``):
the engine's own entry, whose journal was lost and which filled in part
meanwhile, is adopted (its fill booked, the position in line with the
venue's) and followed to its end; an order placed by hand is named in one
warning line and left alone; nothing is sent at start."""

from __future__ import annotations

import shutil
import textwrap
from contextlib import closing
from decimal import Decimal
from pathlib import Path

from engine_plugin_alpaca import plugin as alpaca_plugin
from engine_plugin_alpaca.testing import (
    DAY1_CLOSE,
    DAY1_OPEN,
    DAY2_OPEN,
    ENTER_TWO_AND_HOLD,
    MINUTE,
    live_tables,
    minute_bars,
)

from engine_core import Journal, State
from engine_core.runner import build_engine
from engine_core.testing import EngineThread, builtin_registry, wait_until, write_config

D = Decimal
STRATEGY = ENTER_TWO_AND_HOLD


def config(tmp_path: Path, server) -> Path:
    (tmp_path / "s.py").write_text(textwrap.dedent(STRATEGY))
    return write_config(
        tmp_path / "alpaca.toml",
        {
            "engine": {"mode": "live", "symbols": ["AAPL"], "window": 20, "journal_sync": "normal"},
            **live_tables(server),
            "strategy": {"host": "python", "class": "s.py:S"},
            "sinks": [{"type": "log", "path": "events.log"}],
            "report": {"dir": "out"},
        },
    )


def running(path: Path) -> EngineThread:
    return EngineThread(build_engine(path, builtin_registry(("alpaca", alpaca_plugin)))).start()


def test_a_restart_adopts_its_own_order_and_leaves_one_placed_by_hand_alone(tmp_path, server):
    server.add_history(minute_bars("AAPL", DAY1_OPEN, 30))
    server.set_clock(DAY1_OPEN + 30 * MINUTE, True, DAY2_OPEN, DAY1_CLOSE)
    server.behaviour["AAPL"] = "hold"  # the entry works at the venue, unfilled
    path = config(tmp_path, server)
    first = running(path)
    try:
        wait_until(lambda: server.subscribed("AAPL"))
        server.push_bars(minute_bars("AAPL", DAY1_OPEN + 30 * MINUTE, 2))
        wait_until(lambda: len(server.order_posts) == 1 and server.tu_clients() == 1)
        cid = server.order_posts[0]["client_order_id"]
        w = first.engine.workers["AAPL"]
        wait_until(lambda: (cur := w.orders.current) is not None and cur.venue_id != "")  # the ack
    finally:
        first.stop()

    # the journal is lost (a new state folder); the entry fills in part meanwhile; someone sells by hand
    shutil.rmtree(tmp_path / ".engine")
    server.fill_part(cid, D(1))
    manual = server.place("AAPL", "manual-1", "sell", D(5), D(150))

    again = running(path)
    try:
        wait_until(lambda: "AAPL" in again.engine.workers and again.engine.workers["AAPL"].started)
        w = again.engine.workers["AAPL"]
        assert w.orders.current is not None and w.orders.current.order.client_id == cid
        assert (w.ledger.qty, w.halted) == (D(1), None)  # the fill made while the journal was gone
        assert len(server.order_posts) == 1  # nothing sent at start
        server.fill_rest(cid)  # the rest: trade_updates report it for the adopted order
        wait_until(lambda: w.sm.state is State.IN_TRADE and w.ledger.qty == D(2))
    finally:
        result = again.stop()
    assert result is not None and result.symbols["AAPL"].halted is None
    assert len(server.order_posts) == 1 and server.positions["AAPL"] == D(2)
    assert manual.status == "new"  # never cancelled
    with closing(Journal(tmp_path / ".engine" / "alpaca.sqlite")) as j:
        [row] = j.orders(symbol="AAPL")
    assert (row["client_id"], row["status"], D(row["filled_qty"])) == (cid, "filled", D(2))
    warnings = [line for line in (tmp_path / "events.log").read_text().splitlines() if " warning: " in line]
    assert warnings == [
        "- AAPL warning: 1 open order at the broker not placed by this engine, left alone (never cancelled; "
        "what they fill is not booked here and moves the position the broker reports): "
        f"{manual.id} (manual-1) sell 5 limit @ 150"
    ]
