import threading
import time
from decimal import Decimal

import pytest
from engine_plugin_binance.broker import BinanceBroker
from engine_plugin_binance.rest import sign, signed_query
from engine_plugin_binance.testing import OrderScript

from engine_core.errors import BrokerError
from engine_core.model import Order, OrderType, Side
from engine_core.orders import OrderStatus, UpdateKind, make_client_id
from engine_core.testing import UpdateLog

D = Decimal

# Binance's documented HMAC example (rest-api.md, "SIGNED Endpoint Examples for POST /api/v3/order")
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PAYLOAD = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
DOC_PARAMS = {
    "symbol": "LTCBTC",
    "side": "BUY",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": "1",
    "price": "0.1",
    "recvWindow": 5000,
    "timestamp": 1499827319559,
}


def test_signature_equals_binances_documented_example():
    assert sign(DOC_SECRET, DOC_PAYLOAD) == DOC_SIGNATURE
    assert signed_query(DOC_PARAMS, DOC_SECRET) == f"{DOC_PAYLOAD}&signature={DOC_SIGNATURE}"


def test_non_ascii_symbols_are_percent_encoded_before_signing():
    params = {**DOC_PARAMS, "symbol": "１２３４５６"}
    assert signed_query(params, DOC_SECRET).endswith(
        "signature=e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"
    )


def test_websocket_api_signature_equals_the_documented_example():
    # web-socket-api.md, "SIGNED request example (HMAC)": params sorted by name
    payload = "apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT"
    assert sign(DOC_SECRET, payload) == "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"


@pytest.fixture
def venue(fake, broker_config, monkeypatch):
    """A connected broker on the fake venue and the updates it reports."""
    fake.add_history("BTCUSDT", 5, price=20000.0)
    updates = UpdateLog()
    broker = BinanceBroker(broker_config(), on_update=updates, symbols=["BTCUSDT"])
    monkeypatch.setattr(broker, "POLL_INTERVAL", 0.1)
    broker.connect()
    yield broker, updates
    broker.close()


def order(seq, side=Side.BUY, qty="0.01", **kw):
    return Order(make_client_id("eng1", "BTCUSDT", seq), "BTCUSDT", side, D(qty), 0, **kw)


def test_connect_reads_cash_and_subscribes_the_user_data_stream_with_a_valid_signature(fake, venue):
    broker, _ = venue
    assert broker.starting_cash() == D("10000")
    assert broker.stream_up.is_set()
    assert fake.connected_users() == 1 and fake.bad_signatures == 0


def test_a_market_buy_books_the_commission_in_the_asset_received_and_an_exit_sells_what_is_held(fake, venue):
    broker, updates = venue
    buy = order(1)
    broker.submit(buy)
    updates.wait(lambda: UpdateKind.FILL in updates.kinds(buy.client_id), "the fill")
    time.sleep(0.2)  # the user stream reports the same trade: it must not be reported twice
    assert updates.kinds(buy.client_id) == [UpdateKind.ACK, UpdateKind.FILL]
    fill = updates.items[-1].fill
    assert fill.qty == D("0.01") and fill.fee_qty == D("0.00001") and fill.commission == 0
    held = broker.positions()["BTCUSDT"]
    assert held == fill.position_change == D("0.00999")
    assert fake.placed[0]["quantity"] == "0.01"
    sell = order(2, Side.SELL, broker.round_qty("BTCUSDT", held))
    broker.submit(sell)
    updates.wait(lambda: UpdateKind.FILL in updates.kinds(sell.client_id), "the exit fill")
    exit_fill = updates.items[-1].fill
    assert exit_fill.commission == (D("0.00999") * exit_fill.price * D("0.001")).quantize(D("0.00000001"))
    assert broker.positions()["BTCUSDT"] == 0


def test_a_send_without_answer_is_resolved_by_client_id_and_never_placed_twice(fake, venue):
    broker, updates = venue
    fake.script.append(OrderScript("no_answer"))
    o = order(3)
    broker.submit(o)  # the venue placed it and cut the connection before answering
    updates.wait(lambda: UpdateKind.FILL in updates.kinds(o.client_id), "the fill")
    broker.submit(o)  # a retry by the engine
    time.sleep(0.2)
    assert len(fake.placed) == 1
    assert fake.requests["POST /api/v3/order"] == 1
    assert updates.kinds(o.client_id) == [UpdateKind.ACK, UpdateKind.FILL]


def test_a_rejected_order_is_a_broker_error_with_binances_reason(fake, venue):
    broker, updates = venue
    fake.script.append(OrderScript("reject"))
    with pytest.raises(BrokerError, match="refused order .*insufficient balance.*-2010"):
        broker.submit(order(4))
    assert fake.placed == [] and updates.items == []


def test_partial_fills_then_the_rest(fake, venue):
    broker, updates = venue
    fake.script.append(OrderScript("rest"))
    o = order(5, qty="0.02", type=OrderType.LIMIT, price=D("19999.994"))
    broker.submit(o)
    assert fake.placed[0]["price"] == "19999.99"  # rounded to the tick
    assert fake.placed[0]["timeInForce"] == "GTC"
    updates.wait(lambda: UpdateKind.ACK in updates.kinds(o.client_id), "the ack")
    fake.fill_order(o.client_id, "0.005")
    fake.fill_order(o.client_id, "0.005")
    updates.wait(lambda: len(updates.kinds(o.client_id)) == 3, "two partial fills")
    fake.fill_order(o.client_id)
    updates.wait(lambda: UpdateKind.FILL in updates.kinds(o.client_id), "the last fill")
    assert updates.kinds(o.client_id) == [
        UpdateKind.ACK,
        UpdateKind.PARTIAL_FILL,
        UpdateKind.PARTIAL_FILL,
        UpdateKind.FILL,
    ]
    assert sum(u.fill.qty for u in updates.items if u.fill) == D("0.02")


def test_filters_refuse_an_order_naming_the_filter_and_nothing_is_sent(fake, venue):
    broker, _ = venue
    with pytest.raises(BrokerError, match="LOT_SIZE minQty"):
        broker.submit(order(6, qty="0.000001"))  # rounds down to 0
    with pytest.raises(BrokerError, match="NOTIONAL minNotional 5"):
        broker.submit(order(7, qty="0.0002"))  # 0.0002 * ~20000 = 4 USDT
    with pytest.raises(BrokerError, match="PRICE_FILTER minPrice"):
        broker.submit(order(8, type=OrderType.LIMIT, price=D("0.001")))
    assert fake.requests["POST /api/v3/order"] == 0


def test_cancel_is_reported_once(fake, venue):
    broker, updates = venue
    fake.script.append(OrderScript("rest"))
    o = order(9, type=OrderType.LIMIT, price=D("19000"))
    broker.submit(o)
    broker.cancel(o.client_id)
    updates.wait(lambda: UpdateKind.CANCEL in updates.kinds(o.client_id), "the cancel")
    time.sleep(0.2)
    assert updates.kinds(o.client_id) == [UpdateKind.ACK, UpdateKind.CANCEL]


def test_an_expired_order_is_reported(fake, venue):
    broker, updates = venue
    fake.script.append(OrderScript("expire"))
    o = order(10, type=OrderType.LIMIT, price=D("19000"))
    broker.submit(o)
    updates.wait(lambda: UpdateKind.EXPIRE in updates.kinds(o.client_id), "the expiry")


def test_while_the_user_stream_is_down_orders_are_polled(fake, venue):
    broker, updates = venue
    fake.script.append(OrderScript("rest"))
    o = order(11, type=OrderType.LIMIT, price=D("19000"))
    broker.submit(o)
    fake.user_streams_down = True
    fake.cut_user_streams()
    updates.wait(lambda: not broker.stream_up.is_set(), "the stream to be seen down")
    fake.fill_order(o.client_id)
    updates.wait(lambda: UpdateKind.FILL in updates.kinds(o.client_id), "the polled fill")
    assert broker.counts["polls"] >= 1
    fake.user_streams_down = False
    updates.wait(lambda: broker.stream_up.is_set(), "the stream back")
    assert updates.kinds(o.client_id) == [UpdateKind.ACK, UpdateKind.FILL]


def test_order_status_by_client_id(fake, venue):
    broker, _ = venue
    assert broker.order_status(make_client_id("eng1", "BTCUSDT", 99)) is None
    o = order(12)
    broker.submit(o)
    state = broker.order_status(o.client_id)
    assert state.status is OrderStatus.FILLED and state.filled_qty == D("0.01")
    assert [f.qty for f in state.fills] == [D("0.01")] and state.fills[0].fee_qty == D("0.00001")


def test_after_a_restart_an_open_order_is_found_and_its_fill_reported(fake, broker_config, venue):
    broker, _ = venue
    fake.script.append(OrderScript("rest"))
    o = order(13, type=OrderType.LIMIT, price=D("19000"))
    broker.submit(o)
    broker.close()  # the process dies
    updates = UpdateLog()
    again = BinanceBroker(broker_config(), on_update=updates, symbols=["BTCUSDT"])
    again.connect()
    try:
        [found] = again.open_orders()
        assert (found.order.client_id, found.order.qty, found.order.price) == (o.client_id, D("0.01"), D("19000"))
        assert (found.venue_id, found.filled_qty) == ("1001", D(0))
        fake.fill_order(o.client_id)
        updates.wait(lambda: UpdateKind.FILL in updates.kinds(o.client_id), "the fill after the restart")
    finally:
        again.close()


def test_orders_placed_by_hand_on_the_account_are_left_alone(fake, venue):
    broker, updates = venue
    assert not BinanceBroker._ours("web_abc123", "BTCUSDT")
    assert BinanceBroker._ours(make_client_id("my-engine", "BTCUSDT", 4), "BTCUSDT")
    assert not BinanceBroker._ours(make_client_id("my-engine", "ETHUSDT", 4), "BTCUSDT")


def test_an_execution_report_before_the_orders_answer_is_reported_once(fake, venue):
    broker, updates = venue
    o = order(11)
    fake.hold_order_answer()  # placed and filled; the user stream tells it; the POST's answer waits
    sending = threading.Thread(target=broker.submit, args=(o,))
    sending.start()
    try:
        updates.wait(
            lambda: UpdateKind.FILL in updates.kinds(o.client_id), "the fill from the stream, before the answer"
        )
    finally:
        fake.release_order_answer()
        sending.join(10)
    assert not sending.is_alive()
    broker.orders.close()  # every update made so far delivered
    assert updates.kinds(o.client_id) == [UpdateKind.ACK, UpdateKind.FILL]  # the answer's fills are the same trade
    assert [u.fill.qty for u in updates.fills(o.client_id)] == [D("0.01")]
