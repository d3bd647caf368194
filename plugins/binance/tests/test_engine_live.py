"""The real engine on the local fake Binance: bars streamed into a running
engine (warm-up first), an abrupt disconnect mid-stream, and orders placed
through the binance broker, filled from the user data stream."""

from __future__ import annotations

from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest
from engine_plugin_binance.testing import OrderScript

from engine_core import Journal, State

D = Decimal
M = 60_000  # one 1m bar in ms
ROOT = Path(__file__).resolve().parents[3]


def history_times(fake, symbol="BTCUSDT"):
    return [row[0] for row in fake.klines[symbol]]


def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / ".engine" / "e2e.sqlite")


def transitions(tmp_path: Path) -> list[tuple[str, str, str]]:
    with closing(journal(tmp_path)) as j:
        return [(e["frm"], e["to"], e["reason"]) for e in j.events(symbol="BTCUSDT", kind="transition")]


# ------------------------------------------------------------ bars


def test_bars_stream_into_a_running_engine_after_the_warm_up(fake, live_config, running, seen):
    fake.add_history("BTCUSDT", 30, price=20000.0)
    warm = history_times(fake)[-20:]
    with running(live_config()) as eng:
        eng.wait(lambda: fake.connected_streams() == 1, "the market stream")
        eng.wait(lambda: len(seen.rows()) == 20, "the warm-up")
        live = [fake.stream_bar("BTCUSDT")[0] for _ in range(5)]
        eng.wait(lambda: len(seen.rows()) == 25, "five live bars")
        result = eng.stop()
    assert seen.times() == warm + live  # the warm-up's 20 bars, then each live bar once, in order
    assert result.symbols["BTCUSDT"].bars == 5  # warm-up bars are not traded bars
    assert result.source_stats["binance"]["bars"] == 5
    assert fake.placed == []


def test_the_minute_in_progress_at_a_reconnect_reaches_the_strategy_once_with_its_final_close(
    fake, live_config, running, seen
):
    """This machine's clock runs 90 s ahead of Binance's (it moved after the
    engine started): the backfill after a reconnect leaves the kline in
    progress to the stream, and the strategy sees that minute once, closed."""
    end = fake.now_ms() - 90_000 - 10 * M
    fake.add_history("BTCUSDT", 30, end_ms=end - end % M, price=20000.0)
    with running(live_config()) as eng:
        eng.streaming()
        venue = fake.skew_clock(90.0, hold=True)
        minute = venue - venue % M
        while fake.klines["BTCUSDT"][-1][0] + M < minute:
            fake.next_bar("BTCUSDT")  # closed while the stream was down
        fake.open_bar("BTCUSDT", 20100.0)
        fake.cut_streams()
        eng.wait(lambda: eng.states.count("connected") >= 4, "the reconnection and its backfill")
        fake.close_bar("BTCUSDT", 20200.0)
        after = fake.stream_bar("BTCUSDT", 20300.0)
        eng.wait(lambda: after[0] in seen.times(), "the bar after it")
        eng.stop()
    assert [close for ts, close, _ in seen.rows() if ts == minute] == [20200.0]
    assert seen.times() == history_times(fake)[-len(seen.times()) :]  # every bar once, in order


def test_an_abrupt_disconnect_is_backfilled_and_the_worker_sees_each_bar_once(fake, live_config, running, seen):
    fake.add_history("BTCUSDT", 30, price=20000.0)
    with running(live_config()) as eng:
        eng.streaming()
        for _ in range(3):
            fake.stream_bar("BTCUSDT")
        eng.wait(lambda: len(seen.rows()) == 23, "three live bars")
        for _ in range(4):
            fake.next_bar("BTCUSDT")  # bars the stream never sent: only REST has them
        fake.cut_streams()  # no close frame
        eng.wait(lambda: len(seen.rows()) == 27, "the backfill after the reconnect")
        for _ in range(3):
            fake.stream_bar("BTCUSDT")
        eng.wait(lambda: len(seen.rows()) >= 30, "three more live bars")
        result = eng.stop()
    times = seen.times()
    assert times == history_times(fake)[-30:]  # every bar once, in order, none missing
    assert all(b - a == M for a, b in zip(times, times[1:]))
    stats = result.source_stats["binance"]
    assert stats["reconnects"] == 1 and stats["bars"] == 10 and stats["dropped"] == 0
    assert stats["backfilled"] == 4
    assert result.symbols["BTCUSDT"].bars == 10
    with closing(journal(eng.engine.loaded.base_dir)) as j:
        states = [e["state"] for e in j.events(kind="connection")]
    assert states[:2] == ["connecting", "connected"]
    after_cut = states[states.index("reconnecting") :]
    # engine status shows the last: the source closed, then the engine stopped
    assert after_cut == ["reconnecting", "connected", "backfilling", "connected", "closed", "stopped"]


def test_the_warm_up_feeds_the_strategy_without_trading_and_it_trades_from_the_first_live_bar(
    fake, live_config, running, seen
):
    # zigzag history closing at 20000.0 now and then: the strategy would enter there
    fake.add_history("BTCUSDT", 30, price=20000.0)
    assert 20000.0 in [float(r[4]) for r in fake.klines["BTCUSDT"][-20:]]
    config = live_config(params={"enter_at": 20000.0, "qty": 0.01})
    with running(config) as eng:
        eng.wait(lambda: fake.connected_streams() == 1, "the market stream")
        eng.wait(lambda: len(seen.rows()) == 20, "the warm-up")
        assert fake.placed == [] and eng.worker().sm.state is State.WATCH  # decisions on history are dropped
        first = fake.stream_bar("BTCUSDT", 20000.0)
        eng.wait(lambda: eng.worker().sm.state is State.IN_TRADE, "the entry on the first live bar")
    assert len(fake.placed) == 1 and fake.placed[0]["side"] == "BUY"
    assert seen.rows()[-1] == (first[0], 20000.0, "watch")


def test_sma_cross_in_lua_warms_up_on_history_and_enters_on_the_first_live_bar(fake, live_config, running):
    # falling closes: SMA(3) below SMA(5) all through the warm-up, so no cross to act on
    fake.add_history("BTCUSDT", 0, closes=[20000.0 - 10 * i for i in range(30)])
    strategy = {
        "host": "lua",
        "script": str(ROOT / "strategies" / "sma_cross.lua"),
        "params": {"fast": 3, "slow": 5, "qty": 0.01},
    }
    with running(live_config(strategy=strategy)) as eng:
        eng.wait(lambda: fake.connected_streams() == 1, "the market stream")
        eng.wait(lambda: eng.worker().bars_done == 20, "the warm-up")
        fake.stream_bar("BTCUSDT", 20500.0)  # fast crosses above slow on this bar
        eng.wait(lambda: eng.worker().sm.state is State.IN_TRADE, "the entry")
        result = eng.stop()
    assert len(fake.placed) == 1
    assert result.symbols["BTCUSDT"].bars == 1 and result.symbols["BTCUSDT"].position_qty == D("0.00999")


# ------------------------------------------------------------ orders


def test_a_limit_entry_fills_from_the_user_data_stream_and_the_exit_sells_what_is_held(
    fake, live_config, running, tmp_path
):
    fake.add_history("BTCUSDT", 30, price=20000.0)
    fake.script.append(OrderScript("rest"))
    config = live_config(params={"enter_at": 20100.0, "exit_at": 20300.0, "qty": 0.01, "limit": 20050.0})
    with running(config) as eng:
        eng.wait(lambda: fake.connected_streams() == 1 and fake.connected_users() == 1, "both streams")
        fake.stream_bar("BTCUSDT", 20100.0)
        eng.wait(lambda: eng.worker().orders.current is not None and eng.worker().orders.current.venue_id, "the ack")
        [placed] = fake.placed
        assert (placed["type"], placed["price"], placed["quantity"]) == ("LIMIT", "20050", "0.01")
        assert placed["newClientOrderId"] == eng.worker().orders.current.order.client_id
        assert eng.worker().sm.state is State.CLOSE_WATCH
        fake.fill_order(placed["newClientOrderId"])  # the market reaches the limit: only the stream says so
        eng.wait(lambda: eng.worker().sm.state is State.IN_TRADE, "the fill")
        assert eng.worker().ledger.qty == D("0.00999") == fake.balances["BTC"]  # the fee was taken in BTC
        fake.stream_bar("BTCUSDT", 20300.0)
        eng.wait(lambda: eng.worker().sm.state is State.WATCH, "the exit")
        assert eng.engine.broker.counts["polls"] == 0  # no REST polling: the stream was up
        result = eng.stop()
    assert [p["quantity"] for p in fake.placed] == ["0.01", "0.00999"]  # the exit sold what the account held
    assert fake.balances["BTC"] == 0 and result.symbols["BTCUSDT"].position_qty == 0
    [trade] = result.symbols["BTCUSDT"].trades
    assert trade.entry_price == D("20050") and trade.exit_price == D("20300")
    assert [t[1] for t in transitions(tmp_path)] == ["close_watch", "in_trade", "watch"]


def test_partial_fills_are_booked_as_they_come_and_the_trade_begins_at_the_last(fake, live_config, running, tmp_path):
    fake.add_history("BTCUSDT", 30, price=20000.0)
    fake.script.append(OrderScript("rest"))
    config = live_config(params={"enter_at": 20100.0, "qty": 0.02, "limit": 20050.0})
    with running(config) as eng:
        eng.wait(lambda: fake.connected_streams() == 1 and fake.connected_users() == 1, "both streams")
        fake.stream_bar("BTCUSDT", 20100.0)
        eng.wait(lambda: len(fake.placed) == 1, "the order")
        cid = fake.placed[0]["newClientOrderId"]
        fake.fill_order(cid, "0.005")
        eng.wait(lambda: eng.worker().ledger.qty == D("0.004995"), "the first part")
        assert eng.worker().sm.state is State.CLOSE_WATCH  # still working
        fake.stream_bar("BTCUSDT")  # a bar goes by with the order part filled
        fake.fill_order(cid, "0.01")
        eng.wait(lambda: eng.worker().ledger.qty == D("0.014985"), "the second part")
        fake.fill_order(cid)
        eng.wait(lambda: eng.worker().sm.state is State.IN_TRADE, "the last part")
        result = eng.stop()
    assert result.symbols["BTCUSDT"].position_qty == D("0.01998") == fake.balances["BTC"]
    assert result.symbols["BTCUSDT"].fills == 3 and len(fake.placed) == 1
    with closing(journal(tmp_path)) as j:
        [order] = j.orders(symbol="BTCUSDT")
        fills = j.events(symbol="BTCUSDT", kind="fill")
    assert order["status"] == "filled" and D(order["filled_qty"]) == D("0.02")
    assert [D(f["qty"]) for f in fills] == [D("0.005"), D("0.01"), D("0.005")]


@pytest.mark.parametrize(
    ("script", "qty", "why"),
    [
        ("reject", 0.01, "Account has insufficient balance"),
        ("fill", 0.0002, "NOTIONAL minNotional"),  # 0.0002 BTC at ~20,000 is 4 USDT, under the 5 USDT minimum
    ],
)
def test_a_refused_order_sends_the_symbol_back_to_watch_and_it_trades_again(
    fake, live_config, running, tmp_path, script, qty, why
):
    fake.add_history("BTCUSDT", 30, price=20000.0)
    fake.script += [OrderScript(script), OrderScript(script)]
    config = live_config(params={"enter_at": 20100.0, "qty": qty})
    with running(config) as eng:
        eng.wait(lambda: fake.connected_streams() == 1, "the market stream")
        fake.stream_bar("BTCUSDT", 20100.0)
        eng.wait(lambda: eng.worker().sm.transitions == 2, "the way back to watch")
        assert eng.worker().sm.state is State.WATCH and eng.worker().ledger.qty == 0
        assert eng.worker().halted is None
        fake.stream_bar("BTCUSDT", 20100.0)  # the strategy may enter again: the symbol is not stuck
        eng.wait(lambda: eng.worker().sm.transitions == 4, "the second attempt")
        result = eng.stop()
    steps = transitions(tmp_path)
    assert [s[1] for s in steps] == ["close_watch", "watch", "close_watch", "watch"]
    assert steps[1][2] == "entry not placed"
    with closing(journal(tmp_path)) as j:
        orders = j.orders(symbol="BTCUSDT")
        rejected = j.events(symbol="BTCUSDT", kind="rejected")
    assert [o["status"] for o in orders] == ["rejected", "rejected"]
    assert why in rejected[0]["detail"]
    assert fake.placed == [] and result.symbols["BTCUSDT"].orders == 0
    assert result.symbols["BTCUSDT"].halted is None


def test_an_order_sent_without_answer_is_found_by_client_id_and_placed_once(fake, live_config, running, tmp_path):
    fake.add_history("BTCUSDT", 30, price=20000.0)
    fake.script.append(OrderScript("no_answer"))  # placed and filled, then the connection is cut before the answer
    config = live_config(params={"enter_at": 20100.0, "qty": 0.01})
    with running(config) as eng:
        eng.wait(lambda: fake.connected_streams() == 1, "the market stream")
        fake.stream_bar("BTCUSDT", 20100.0)
        eng.wait(lambda: eng.worker().sm.state is State.IN_TRADE, "the entry")
        result = eng.stop()
    assert fake.requests["POST /api/v3/order"] == 1 and len(fake.placed) == 1
    assert fake.requests["GET /api/v3/order"] >= 1  # asked by client id, not sent again
    assert result.symbols["BTCUSDT"].fills == 1 and result.symbols["BTCUSDT"].position_qty == D("0.00999")
    with closing(journal(tmp_path)) as j:
        [order] = j.orders(symbol="BTCUSDT")
    assert order["client_id"] == fake.placed[0]["newClientOrderId"] and order["status"] == "filled"


def test_an_order_the_venue_never_placed_is_marked_lost_and_never_resent(fake, live_config, running, tmp_path):
    fake.add_history("BTCUSDT", 30, price=20000.0)
    fake.fail("/api/v3/order", 503)  # the send fails; Binance says its outcome is unknown
    config = live_config(params={"enter_at": 20100.0, "qty": 0.01})
    with running(config) as eng:
        eng.wait(lambda: fake.connected_streams() == 1, "the market stream")
        fake.stream_bar("BTCUSDT", 20100.0)
        eng.wait(lambda: eng.worker().sm.transitions == 2, "the way back to watch")
        assert fake.placed == [] and eng.worker().ledger.qty == 0
        fake.stream_bar("BTCUSDT", 20100.0)  # the next entry is a new order with a new client id
        eng.wait(lambda: eng.worker().sm.state is State.IN_TRADE, "the second entry")
        eng.stop()
    with closing(journal(tmp_path)) as j:
        orders = j.orders(symbol="BTCUSDT")
    assert [o["status"] for o in orders] == ["lost", "filled"]
    assert [p["newClientOrderId"] for p in fake.placed] == [orders[1]["client_id"]]
    assert fake.requests["POST /api/v3/order"] == 2  # one send each, the lost one never again


def test_a_fee_that_leaves_less_than_a_lot_step_ends_the_trade_and_the_dust_is_sold_later(
    fake, live_config, running, tmp_path
):
    # buy 0.001 BTC, keep 0.000999 (0.1% fee in BTC); the lot step 0.00001 lets 0.00099 be sold: 0.000009 stays
    fake.add_history("BTCUSDT", 30, price=20000.0)
    config = live_config(params={"enter_at": 20100.0, "exit_at": 20300.0, "qty": 0.001})
    with running(config) as eng:
        eng.wait(lambda: fake.connected_streams() == 1, "the market stream")
        w = eng.worker()
        for n in (1, 2):
            fake.stream_bar("BTCUSDT", 20100.0)
            eng.wait(lambda: w.sm.state is State.IN_TRADE, f"entry {n}")  # noqa: B023
            fake.stream_bar("BTCUSDT", 20300.0)
            eng.wait(lambda: w.sm.state is State.WATCH, f"exit {n}")  # noqa: B023
            assert w.ledger.qty == fake.balances["BTC"] < D("0.00001")  # what is left cannot be sold: the trade is over
        result = eng.stop()
    assert [p["quantity"] for p in fake.placed] == ["0.001", "0.00099", "0.001", "0.001"]  # the dust went with exit 2
    assert result.symbols["BTCUSDT"].position_qty == fake.balances["BTC"] == D("0.000008")
    trades = result.symbols["BTCUSDT"].trades
    assert len(trades) == 2 and [t.exit_price for t in trades] == [D("20300"), D("20300")]


def test_an_entry_limit_not_filled_in_time_is_cancelled_at_the_venue(fake, live_config, running, tmp_path):
    fake.add_history("BTCUSDT", 30, price=20000.0)
    fake.script.append(OrderScript("rest"))
    config = live_config(params={"enter_at": 20100.0, "qty": 0.01, "limit": 19000.0, "expires": 2})
    with running(config) as eng:
        eng.wait(lambda: fake.connected_streams() == 1, "the market stream")
        fake.stream_bar("BTCUSDT", 20100.0)
        eng.wait(lambda: len(fake.placed) == 1, "the entry limit")
        fake.stream_bar("BTCUSDT")
        fake.stream_bar("BTCUSDT")  # two bars later the limit is given up
        eng.wait(lambda: eng.worker().sm.state is State.WATCH, "the cancel")
        eng.stop()
    [order] = fake.orders.values()
    assert order.status == "CANCELED" and fake.requests["DELETE /api/v3/order"] == 1
    steps = transitions(tmp_path)
    assert [s[1] for s in steps] == ["close_watch", "watch"] and "cancelled" in steps[1][2]


def test_a_fill_reported_again_after_its_order_was_forgotten_is_not_booked_twice(
    fake, live_config, running, tmp_path, monkeypatch
):
    """The broker forgets a settled order after a while (its memory holds the
    last minutes' orders); the venue's stream then repeats the order's fill:
    the order is known again, and the fill, with its trade id, is not booked
    a second time."""
    from engine_core.live import VenueOrders

    monkeypatch.setattr(VenueOrders, "keep_done", 0.2)
    fake.add_history("BTCUSDT", 30, price=20000.0)
    config = live_config(params={"enter_at": 20100.0, "exit_at": 20300.0, "qty": 0.01})
    with running(config) as eng:
        eng.wait(lambda: fake.connected_streams() == 1 and fake.connected_users() == 1, "both streams")
        fake.stream_bar("BTCUSDT", 20100.0)
        eng.wait(lambda: eng.worker().sm.state is State.IN_TRADE, "the entry's fill")
        entry = fake.placed[0]["newClientOrderId"]
        orders = eng.engine.broker.orders
        eng.wait(lambda: orders.get(entry) is None, "the settled entry forgotten")
        assert orders.counts["forgotten"] >= 1
        fake.report_again(entry)
        eng.wait(lambda: orders.get(entry) is not None, "the repeated report taken")
        fake.stream_bar("BTCUSDT", 20300.0)
        eng.wait(lambda: eng.worker().sm.state is State.WATCH, "the exit")
        result = eng.stop()
    btc = result.symbols["BTCUSDT"]
    assert btc.fills == 2 and btc.position_qty == 0 == fake.balances["BTC"]
    with closing(journal(tmp_path)) as j:
        assert [f["side"] for f in j.events(symbol="BTCUSDT", kind="fill")] == ["buy", "sell"]
    assert [p["quantity"] for p in fake.placed] == ["0.01", "0.00999"]
