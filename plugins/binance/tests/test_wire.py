"""Message shapes exactly as Binance's documentation prints them."""

from decimal import Decimal as D

import pytest
from engine_plugin_binance import wire

from engine_core import Side, UpdateKind

# web-socket-streams.md, "Kline/Candlestick Streams for UTC", in a combined-stream wrapper
DOC_KLINE = """{"stream":"bnbbtc@kline_1m","data":{
    "e": "kline", "E": 1672515782136, "s": "BNBBTC",
    "k": {"t": 1672515780000, "T": 1672515839999, "s": "BNBBTC", "i": "1m", "f": 100, "L": 200,
          "o": "0.0010", "c": "0.0020", "h": "0.0025", "l": "0.0015", "v": "1000", "n": 100, "x": false,
          "q": "1.0000", "V": "500", "Q": "0.500", "B": "123456"}}}"""

# user-data-stream.md, "Order Update"
DOC_REPORT = {
    "e": "executionReport",
    "E": 1499405658658,
    "s": "ETHBTC",
    "c": "mUvoqJxFIILMdfAW5iGSOW",
    "S": "BUY",
    "o": "LIMIT",
    "f": "GTC",
    "q": "1.00000000",
    "p": "0.10264410",
    "P": "0.00000000",
    "F": "0.00000000",
    "g": -1,
    "C": "",
    "x": "NEW",
    "X": "NEW",
    "r": "NONE",
    "i": 4293153,
    "l": "0.00000000",
    "z": "0.00000000",
    "L": "0.00000000",
    "n": "0",
    "N": None,
    "T": 1499405658657,
    "t": -1,
    "v": 3,
    "I": 8641984,
    "w": True,
    "m": False,
    "M": False,
    "O": 1499405658657,
    "Z": "0.00000000",
    "Y": "0.00000000",
    "Q": "0.00000000",
    "W": 1499405658657,
    "V": "NONE",
}


def test_the_documented_kline_event_decodes_into_a_bar():
    msg = wire.decode_stream(DOC_KLINE)
    k = msg.data.k
    assert msg.stream == "bnbbtc@kline_1m" and k.x is False
    bar = wire.kline_bar(k)
    assert (bar.symbol, bar.ts) == ("BNBBTC", 1672515780000 * 1_000_000)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (0.001, 0.0025, 0.0015, 0.002, 1000.0)


def test_unknown_events_and_malformed_json_are_told_apart():
    with pytest.raises(wire.ValidationError):
        wire.decode_stream('{"stream":"x@trade","data":{"e":"trade","E":1}}')
    with pytest.raises(wire.DecodeError) as err:
        wire.decode_stream('{"stream":')
    assert not isinstance(err.value, wire.ValidationError)


def test_the_documented_rest_kline_row_decodes():
    body = b'[[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"]]'
    [row] = wire.decode_klines(body)
    assert (row.t, row.o, row.h, row.l, row.c, row.v, row.T) == (
        1499040000000,
        0.0163479,
        0.8,
        0.015758,
        0.015771,
        148976.11427815,
        1499644799999,
    )
    [text] = wire.decode_kline_texts(body)
    assert text.o == "0.01634790"


def test_the_documented_execution_report_is_an_ack_and_a_trade_a_fill_with_its_fee():
    [ack] = wire.report_updates(DOC_REPORT, "ETH", "BTC")
    assert (ack.kind, ack.client_id, ack.symbol, ack.venue_id) == (
        UpdateKind.ACK,
        "mUvoqJxFIILMdfAW5iGSOW",
        "ETHBTC",
        "4293153",
    )
    trade = {
        **DOC_REPORT,
        "x": "TRADE",
        "X": "PARTIALLY_FILLED",
        "l": "0.40000000",
        "L": "0.10264410",
        "n": "0.00040000",
        "N": "ETH",
        "t": 77,
    }
    [part] = wire.report_updates(trade, "ETH", "BTC")
    assert part.kind is UpdateKind.PARTIAL_FILL
    f = part.fill
    assert (f.side, f.qty, f.price, f.fee_qty, f.commission, f.trade_id) == (
        Side.BUY,
        D("0.4"),
        D("0.10264410"),
        D("0.0004"),
        0,
        "77",
    )
    assert f.position_change == D("0.3996")
    in_bnb = {**trade, "X": "FILLED", "N": "BNB", "n": "0.002"}
    [full] = wire.report_updates(in_bnb, "ETH", "BTC", lambda asset, amount: amount * D("0.01"))
    assert full.kind is UpdateKind.FILL and full.fill.fee_qty == 0 and full.fill.commission == D("0.00002")


def test_a_cancel_names_the_cancelled_order_in_C():
    cancel = {**DOC_REPORT, "x": "CANCELED", "X": "CANCELED", "c": "cancelId", "C": "mUvoqJxFIILMdfAW5iGSOW"}
    [u] = wire.report_updates(cancel, "ETH", "BTC")
    assert (u.kind, u.client_id) == (UpdateKind.CANCEL, "mUvoqJxFIILMdfAW5iGSOW")
