"""SIGKILL an ``engine run`` trading the fake Binance while its order is
working, let the venue fill part of it meanwhile, restart: the journal and
the venue together give back the position, the order and the indicators,
and nothing is sent twice."""

from __future__ import annotations

import signal
import subprocess
from contextlib import closing
from decimal import Decimal
from pathlib import Path

from engine_plugin_binance.testing import API_KEY, API_SECRET, OrderScript

from engine_core import Journal, State
from engine_core.testing import engine_env, exited, journal_value, start_engine, wait_until

D = Decimal


def order_status(path: Path) -> str | None:
    """The journal's status of the first order."""
    return journal_value(path, "SELECT status FROM orders ORDER BY created_ts LIMIT 1")


def test_sigkill_with_an_open_order_then_restart_reconciles_it_through_the_venue(
    fake, live_config, running, seen, tmp_path, monkeypatch
):
    fake.add_history("BTCUSDT", 30, price=20000.0)
    fake.script.append(OrderScript("rest"))
    broker = {
        "type": "binance",
        "api_key": "${BINANCE_API_KEY}",
        "api_secret": "${BINANCE_API_SECRET}",
        "rest_url": fake.http_url,
        "ws_api_url": fake.ws_api_url,
    }
    config = live_config(params={"enter_at": 20100.0, "qty": 0.01, "limit": 20050.0}, broker=broker)
    path = tmp_path / ".engine" / "e2e.sqlite"
    log = (tmp_path / "run1.log").open("w")
    proc = start_engine(
        "run",
        "-q",
        "--no-report",
        "-c",
        str(config),
        env=engine_env(BINANCE_API_KEY=API_KEY, BINANCE_API_SECRET=API_SECRET),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: fake.connected_streams() == 1 and fake.connected_users() == 1,
            "the engine's streams",
            60.0,
            stop_if=exited(proc),
        )
        fake.stream_bar("BTCUSDT", 20100.0)
        wait_until(
            lambda: order_status(path) == "accepted", "the order working at the venue", 60.0, stop_if=exited(proc)
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        log.close()
    [placed] = fake.placed
    cid = placed["newClientOrderId"]
    fake.fill_order(cid, "0.004")  # filled in part while the engine is down
    missed = [fake.next_bar("BTCUSDT")[0] for _ in range(2)]  # and bars go by

    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", API_SECRET)
    before = len(seen.rows())
    with running(config) as eng:
        w = eng.worker()
        eng.wait(lambda: w.bars_done > 0 and len(seen.rows()) >= before + 20, "the warm-up after the restart")
        assert w.sm.state is State.CLOSE_WATCH and w.ledger.qty == D("0.003996") == fake.balances["BTC"]
        assert w.orders.current is not None and w.orders.current.order.client_id == cid
        assert w.orders.current.status.value == "partially_filled"
        fake.fill_order(cid)  # the rest fills after the restart: the user data stream reports it
        eng.wait(lambda: w.sm.state is State.IN_TRADE, "the rest of the fill")
        assert w.ledger.qty == D("0.00999") == fake.balances["BTC"]
        fake.stream_bar("BTCUSDT")
        eng.wait(lambda: len(seen.rows()) == before + 21, "a live bar after the restart")
        result = eng.stop()
    assert len(fake.placed) == 1  # never sent again
    assert result.symbols["BTCUSDT"].halted is None
    assert set(missed) <= set(seen.times()[before:])  # the warm-up after the restart covered the missed bars
    with closing(Journal(path)) as j:
        [order] = j.orders(symbol="BTCUSDT")
        fills = j.events(symbol="BTCUSDT", kind="fill")
    assert order["status"] == "filled"
    assert sorted(D(f["qty"]) for f in fills) == [D("0.004"), D("0.006")]  # each trade booked once


def test_an_account_already_holding_the_base_asset_trades_and_restarts(fake, live_config, running, tmp_path):
    """Spot accounts hold more than the engine bought (the testnet gives every
    account BTC): the engine's position is what it bought, the rest is left alone."""
    fake.add_history("BTCUSDT", 30, price=20000.0)
    fake.balances["BTC"] = D("0.5")
    config = live_config(params={"enter_at": 20100.0, "exit_at": 20300.0, "qty": 0.01})
    with running(config) as eng:
        eng.wait(lambda: fake.connected_streams() == 1, "the market stream")
        assert eng.worker().halted is None
        fake.stream_bar("BTCUSDT", 20100.0)
        eng.wait(lambda: eng.worker().sm.state is State.IN_TRADE, "the entry")
        first = eng.stop()
    assert first.symbols["BTCUSDT"].position_qty == D("0.00999") and fake.balances["BTC"] == D("0.50999")
    with running(config) as eng:  # a restart in the trade
        eng.wait(lambda: fake.connected_streams() == 1, "the market stream")
        assert eng.worker().halted is None and eng.worker().ledger.qty == D("0.00999")
        fake.stream_bar("BTCUSDT", 20300.0)
        eng.wait(lambda: eng.worker().sm.state is State.WATCH, "the exit")
        second = eng.stop()
    assert second.symbols["BTCUSDT"].halted is None
    assert [p["quantity"] for p in fake.placed] == ["0.01", "0.00999"]  # the exit sold what the engine bought
    assert fake.balances["BTC"] == D("0.5")
