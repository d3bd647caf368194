"""The ``alpaca`` broker against the local fake Alpaca: orders, idempotent client
ids, refusals, partial fills, brackets, the trade_updates stream and polling,
reconciliation after a restart."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from engine_plugin_alpaca.broker import AlpacaBroker

from engine_core.errors import BrokerError
from engine_core.model import Order, OrderType, Side
from engine_core.orders import OrderStatus, UpdateKind
from engine_core.testing import UpdateLog, wait_until


def order(cid: str, side: Side = Side.BUY, qty: str = "5", symbol: str = "AAPL", **kw) -> Order:
    return Order(cid, symbol, side, Decimal(qty), 0, "test", **kw)


@pytest.fixture
def make_broker(broker_config):
    made: list[AlpacaBroker] = []

    def make(**over) -> tuple[AlpacaBroker, UpdateLog]:
        updates = UpdateLog()
        broker = AlpacaBroker(broker_config(**over), on_update=updates)
        broker.connect()
        made.append(broker)
        return broker, updates

    yield make
    for broker in made:
        broker.close()


def test_connect_reads_the_account(server, make_broker):
    broker, _ = make_broker()
    assert broker.starting_cash() == Decimal("100000")
    wait_until(lambda: broker.stream_up)


def test_wrong_keys_are_one_line(server, broker_config):
    broker = AlpacaBroker(broker_config(secret_key="nope"), on_update=lambda u: None)
    with pytest.raises(
        BrokerError,
        match=r"/v2/account: HTTP 401 40110000: request is not authorized: check key_id and secret_key \(paper = true",
    ):
        broker.connect()


def test_paper_is_the_default_endpoint(broker_config):
    from engine_plugin_alpaca.config import AlpacaBrokerConfig

    cfg = AlpacaBrokerConfig(key_id="k", secret_key="s")
    assert cfg.base_url == "https://paper-api.alpaca.markets"
    assert cfg.stream_url == "wss://paper-api.alpaca.markets/stream"
    assert AlpacaBrokerConfig(key_id="k", secret_key="s", paper=False).base_url == "https://api.alpaca.markets"


def test_market_order_acks_and_fills(server, make_broker):
    broker, updates = make_broker()
    server.prices["AAPL"] = Decimal("187.25")
    broker.submit(order("e-AAPL-1"))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-1"))
    assert updates.kinds("e-AAPL-1") == [UpdateKind.ACK, UpdateKind.FILL]
    (fill,) = updates.fills("e-AAPL-1")
    assert (fill.fill.qty, fill.fill.price, fill.fill.side, fill.fill.commission) == (
        Decimal(5),
        Decimal("187.25"),
        Side.BUY,
        0,
    )
    (body,) = server.order_posts
    assert body == {
        "symbol": "AAPL",
        "qty": "5",
        "side": "buy",
        "type": "market",
        "time_in_force": "gtc",
        "client_order_id": "e-AAPL-1",
    }
    assert broker.positions() == {"AAPL": Decimal(5)}


def test_fractional_qty_goes_as_a_decimal_string_day_order(server, make_broker):
    broker, updates = make_broker()
    broker.submit(order("e-AAPL-2", qty="0.125"))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-2"))
    assert server.order_posts[0]["qty"] == "0.125"
    assert server.order_posts[0]["time_in_force"] == "day"
    assert updates.fills("e-AAPL-2")[0].fill.qty == Decimal("0.125")


def test_limit_order(server, make_broker):
    broker, updates = make_broker()
    server.prices["AAPL"] = Decimal("99")
    broker.submit(order("e-AAPL-3", type=OrderType.LIMIT, price=Decimal("99.50")))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-3"))
    assert server.order_posts[0]["limit_price"] == "99.5"


def test_a_resent_client_id_never_places_a_second_order(server, make_broker):
    broker, updates = make_broker()
    broker.submit(order("e-AAPL-4"))
    broker.submit(order("e-AAPL-4"))  # the same broker: not even sent
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-4"))
    assert len(server.order_posts) == 1
    # a restarted engine sending it again: Alpaca's 422, resolved by looking the order up
    again, updates2 = make_broker()
    again.submit(order("e-AAPL-4"))
    assert len(server.order_posts) == 2 and len(server.orders) == 1
    wait_until(lambda: UpdateKind.FILL in updates2.kinds("e-AAPL-4"))  # updates come from the broker's own thread
    assert updates2.kinds("e-AAPL-4") == [UpdateKind.ACK, UpdateKind.FILL]
    assert again.counts["duplicates_resolved"] == 1
    assert updates2.fills("e-AAPL-4")[0].fill.key == updates.fills("e-AAPL-4")[0].fill.key


def test_an_unanswered_send_is_resolved_by_client_id(server, make_broker):
    broker, updates = make_broker(timeout=1)
    server.delay_next_order = 3.0  # placed, but the answer comes too late
    broker.submit(order("e-AAPL-5"))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-5"))
    assert len(server.orders) == 1


def test_rejected_order(server, make_broker):
    broker, updates = make_broker()
    server.behaviour["AAPL"] = "reject"
    broker.submit(order("e-AAPL-6"))
    wait_until(lambda: UpdateKind.REJECT in updates.kinds("e-AAPL-6"))
    assert updates.kinds("e-AAPL-6") == [UpdateKind.REJECT]
    assert broker.order_status("e-AAPL-6").status is OrderStatus.REJECTED


def test_insufficient_buying_power_is_a_clear_error(server, make_broker):
    broker, _ = make_broker()
    with pytest.raises(BrokerError, match=r"e-AAPL-7 \(buy 5000 AAPL market\) refused: insufficient buying power"):
        broker.submit(order("e-AAPL-7", qty="5000"))
    assert server.orders == {}


def test_not_fractionable_is_refused_before_sending(server, make_broker):
    server.set_asset("AAPL", fractionable=False)
    broker, _ = make_broker()
    with pytest.raises(BrokerError, match="AAPL is not fractionable: the quantity must be whole shares"):
        broker.submit(order("e-AAPL-8", qty="1.5"))
    assert server.order_posts == []
    assert broker.round_qty("AAPL", Decimal("1.99")) == Decimal(1)
    server.set_asset("MSFT", fractionable=True)
    assert broker.round_qty("MSFT", Decimal("1.1234567899")) == Decimal("1.123456789")


def test_a_short_sale_of_a_non_shortable_asset_is_refused_before_sending(server, make_broker):
    server.set_asset("AAPL", shortable=False)
    broker, updates = make_broker()
    with pytest.raises(BrokerError, match=r"would open a short \(holding 0\) and AAPL is not shortable"):
        broker.submit(order("e-AAPL-9", side=Side.SELL))
    assert server.order_posts == []
    broker.submit(order("e-AAPL-10"))  # buy 5, then selling them is no short
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-10"))
    broker.submit(order("e-AAPL-11", side=Side.SELL))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-11"))


def test_partial_fills_then_the_rest(server, make_broker):
    broker, updates = make_broker()
    server.behaviour["AAPL"] = "partial"
    server.prices["AAPL"] = Decimal("100")
    broker.submit(order("e-AAPL-12", qty="10"))
    wait_until(lambda: UpdateKind.PARTIAL_FILL in updates.kinds("e-AAPL-12"))
    server.fill_rest("e-AAPL-12", Decimal("101"))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-12"))
    fills = [u.fill for u in updates.fills("e-AAPL-12")]
    assert [(f.qty, f.price) for f in fills] == [(Decimal(5), Decimal(100)), (Decimal(5), Decimal(101))]
    assert len({f.key for f in fills}) == 2
    state = broker.order_status("e-AAPL-12")
    assert (state.status, state.filled_qty) == (OrderStatus.FILLED, Decimal(10))


def test_cancel(server, make_broker):
    broker, updates = make_broker()
    server.behaviour["AAPL"] = "hold"
    broker.submit(order("e-AAPL-13"))
    wait_until(lambda: UpdateKind.ACK in updates.kinds("e-AAPL-13"))
    broker.cancel("e-AAPL-13")
    wait_until(lambda: UpdateKind.CANCEL in updates.kinds("e-AAPL-13"))
    broker.cancel("e-AAPL-13")  # idempotent


def test_bracket_entry_and_its_stop_leg(server, make_broker):
    broker, updates = make_broker()
    entry = order("e-AAPL-14", stop_price=Decimal("95"), take_profit_price=Decimal("110"))
    broker.submit(entry)
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-14"))
    body = server.order_posts[0]
    assert body["order_class"] == "bracket"
    assert body["take_profit"] == {"limit_price": "110"} and body["stop_loss"] == {"stop_price": "95"}
    server.fill_leg("e-AAPL-14", "stop_loss", Decimal("94.9"))
    wait_until(lambda: any(u.leg for u in updates.fills("e-AAPL-14")))
    leg = [u for u in updates.fills("e-AAPL-14") if u.leg][0]
    assert (leg.leg, leg.kind, leg.fill.side, leg.fill.qty, leg.fill.price) == (
        "stop_loss",
        UpdateKind.FILL,
        Side.SELL,
        Decimal(5),
        Decimal("94.9"),
    )
    assert broker.positions() == {}
    # the engine's own exit after the venue's stop: nothing left to sell, nothing sent
    with pytest.raises(BrokerError, match="already closed by its bracket leg"):
        broker.submit(order("e-AAPL-15", side=Side.SELL))
    assert len(server.order_posts) == 1


def test_an_exit_cancels_the_bracket_legs_first(server, make_broker):
    broker, updates = make_broker()
    broker.submit(order("e-AAPL-16", stop_price=Decimal("95"), take_profit_price=Decimal("110")))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-16"))
    broker.submit(order("e-AAPL-17", side=Side.SELL))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-17"))
    legs = server.order_by_client_id("e-AAPL-16").legs
    assert {leg.status for leg in legs} == {"canceled"}
    assert broker.positions() == {}


def test_an_exit_after_an_earlier_bracket_a_leg_closed_goes_out(server, make_broker):
    """A leg closed the first round trip; the second bracket's exit cancels
    that bracket's legs and is sent: the old filled leg closes nothing now."""
    broker, updates = make_broker()
    broker.submit(order("e-AAPL-30", stop_price=Decimal("95"), take_profit_price=Decimal("110")))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-30"))
    server.fill_leg("e-AAPL-30", "stop_loss", Decimal("94.9"))
    wait_until(lambda: any(u.leg for u in updates.fills("e-AAPL-30")))
    broker.submit(order("e-AAPL-31", stop_price=Decimal("95"), take_profit_price=Decimal("110")))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-31"))
    broker.submit(order("e-AAPL-32", side=Side.SELL))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-32"))
    assert {leg.status for leg in server.order_by_client_id("e-AAPL-31").legs} == {"canceled"}
    assert broker.positions() == {}


def test_a_bracket_entry_the_other_way_after_a_leg_closed_the_last_goes_out(server, make_broker):
    """Long, closed by its take-profit leg; then a short bracket entry: an
    entry carries its own protective prices, and no leg closes it."""
    broker, updates = make_broker()
    broker.submit(order("e-AAPL-33", stop_price=Decimal("95"), take_profit_price=Decimal("110")))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-33"))
    server.fill_leg("e-AAPL-33", "take_profit", Decimal("110"))
    wait_until(lambda: any(u.leg for u in updates.fills("e-AAPL-33")))
    short = order("e-AAPL-34", side=Side.SELL, stop_price=Decimal("110"), take_profit_price=Decimal("90"))
    broker.submit(short)
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-34"))
    assert broker.positions() == {"AAPL": Decimal(-5)}


def test_an_exit_larger_than_what_a_leg_left_is_refused_and_names_what_is_left(server, make_broker):
    """Two brackets on one position; a leg of the second closed its half
    while the engine sold the whole: the exit would open a short nobody
    asked for, so it is refused, and the first bracket's legs are cancelled."""
    broker, updates = make_broker()
    broker.submit(order("e-AAPL-35", stop_price=Decimal("95"), take_profit_price=Decimal("110")))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-35"))
    broker.submit(order("e-AAPL-36", stop_price=Decimal("95"), take_profit_price=Decimal("110")))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-36"))
    server.fill_leg("e-AAPL-36", "take_profit", Decimal("110"))
    wait_until(lambda: any(u.leg for u in updates.fills("e-AAPL-36")))
    with pytest.raises(BrokerError, match=r"the position was partly closed \(5 left\) by its bracket leg"):
        broker.submit(order("e-AAPL-37", side=Side.SELL, qty="10"))
    assert {leg.status for leg in server.order_by_client_id("e-AAPL-35").legs} == {"canceled"}
    assert broker.positions() == {"AAPL": Decimal(5)}
    assert len(server.order_posts) == 2


def test_an_exit_after_a_legs_partial_fill_is_refused_when_it_would_sell_more_than_is_left(server, make_broker):
    """The take-profit leg filled 2 of 5; the engine, not told yet, sells 5:
    the legs are cancelled (a cancel meeting a partial fill) and the exit is
    refused, naming the 3 left, rather than selling 2 short."""
    broker, updates = make_broker()
    broker.submit(order("e-AAPL-38", stop_price=Decimal("95"), take_profit_price=Decimal("110")))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-38"))
    server.fill_leg("e-AAPL-38", "take_profit", Decimal("110"), qty=Decimal(2))
    wait_until(lambda: any(u.leg for u in updates.fills("e-AAPL-38")))
    with pytest.raises(BrokerError, match=r"the position was partly closed \(3 left\) by its bracket leg"):
        broker.submit(order("e-AAPL-39", side=Side.SELL))
    assert {leg.status for leg in server.order_by_client_id("e-AAPL-38").legs} == {"canceled"}
    assert broker.positions() == {"AAPL": Decimal(3)} and len(server.order_posts) == 1


def test_fractional_bracket_is_refused(server, make_broker):
    broker, _ = make_broker()
    with pytest.raises(BrokerError, match="a bracket order takes whole shares only"):
        broker.submit(order("e-AAPL-18", qty="1.5", stop_price=Decimal("95"), take_profit_price=Decimal("110")))


def test_updates_come_by_polling_while_the_stream_is_down(server, make_broker):
    server.trade_stream_enabled = False
    broker, updates = make_broker()
    broker.submit(order("e-AAPL-19"))
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-19"))
    assert not broker.stream_up and broker.counts["polls"] > 0
    assert updates.kinds("e-AAPL-19") == [UpdateKind.ACK, UpdateKind.FILL]


def test_updates_missed_while_the_stream_was_down_are_caught_up(server, make_broker):
    broker, updates = make_broker()
    wait_until(lambda: broker.stream_up)
    server.behaviour["AAPL"] = "partial"
    broker.submit(order("e-AAPL-20", qty="10"))
    wait_until(lambda: UpdateKind.PARTIAL_FILL in updates.kinds("e-AAPL-20"))
    server.trade_stream_enabled = False
    server.drop_trade_streams()
    wait_until(lambda: not broker.stream_up)
    server.fill_rest("e-AAPL-20")
    wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-20"))
    assert sum(u.fill.qty for u in updates.fills("e-AAPL-20")) == Decimal(10)


def test_restart_reads_positions_and_open_orders(server, make_broker):
    server.positions["AAPL"] = Decimal(7)
    server.behaviour["MSFT"] = "hold"
    first, _ = make_broker()
    first.submit(order("e-MSFT-1", symbol="MSFT", type=OrderType.LIMIT, price=Decimal("50")))
    first.close()
    broker, _ = make_broker()
    assert broker.positions() == {"AAPL": Decimal(7)}
    (found,) = broker.open_orders()
    open_order = found.order
    assert found.venue_id and found.filled_qty == 0 and found.parent == ""
    assert (open_order.client_id, open_order.symbol, open_order.qty, open_order.price) == (
        "e-MSFT-1",
        "MSFT",
        Decimal(5),
        Decimal(50),
    )
    assert broker.order_status("e-nothing-1") is None


def test_a_fill_event_before_the_orders_answer_is_reported_once(server, make_broker):
    broker, updates = make_broker()
    server.hold_order_answer()  # placed and filled; trade_updates tell it; the POST's answer waits
    sending = threading.Thread(target=broker.submit, args=(order("e-AAPL-9"),))
    sending.start()
    try:
        wait_until(lambda: UpdateKind.FILL in updates.kinds("e-AAPL-9"), "the fill from the stream, before the answer")
    finally:
        server.release_order_answer()
        sending.join(10)
    assert not sending.is_alive()
    broker.orders.close()  # every update made so far delivered
    assert updates.kinds("e-AAPL-9") == [UpdateKind.ACK, UpdateKind.FILL]  # the late answer ("new") adds nothing
    tracked = broker.orders.get("e-AAPL-9")
    assert tracked is not None and tracked.status == "filled"  # nor sets the order back to "new"
    assert [u.fill.qty for u in updates.fills("e-AAPL-9")] == [Decimal(5)]
