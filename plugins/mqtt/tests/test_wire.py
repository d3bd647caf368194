"""The JSON on the wire, one message at a time."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from engine_plugin_mqtt import wire

from engine_core.model import (
    NS_PER_SECOND,
    Bar,
    ErrorEvent,
    Fill,
    FillEvent,
    Order,
    OrderEvent,
    Side,
    SignalEvent,
    State,
    TransitionEvent,
)

TS = 1_764_482_400_123_456_789


def message(event, seq=7):
    symbol, name, payload = wire.event_message(event, "e1", seq)
    return symbol, name, json.loads(wire.dumps(payload))


def has(payload, **fields):
    return {k: payload.get(k) for k in fields} == fields


def test_every_event_kind_as_json():
    order = Order("e1-BTC-3", "BTC", Side.SELL, Decimal("0.50"), TS, "stop_loss")
    fill = Fill("e1-BTC-3", "BTC", Side.SELL, Decimal("0.50"), Decimal("64210.125"), Decimal("0.03"), TS, "t9")
    cases = {
        "transition": TransitionEvent("BTC", TS, State.IN_TRADE, State.WATCH, "exit filled"),
        "order": OrderEvent(order, "submitted", ""),
        "fill": FillEvent(fill),
        "signal": SignalEvent("BTC", TS, "enter", {"side": "buy", "stop_loss": 1.5, "qty": "2"}),
        "error": ErrorEvent("BTC", TS, "boom", kind="halted"),
        "bar": Bar("BTC", TS, 1.0, 2.0, 0.5, 1.5, 10.0),
    }
    for name, event in cases.items():
        symbol, got_name, p = message(event)
        assert (symbol, got_name) == ("BTC", name)
        assert p["schema"] == 1 and p["seq"] == 7 and p["engine"] == "e1" and p["event"] == name
        assert p["ts"] == TS and p["time"] == "2025-11-30T06:00:00.123Z"
    assert has(message(cases["transition"])[2], **{"from": "in_trade", "to": "watch", "reason": "exit filled"})
    o = message(cases["order"])[2]
    assert (o["status"], o["client_id"], o["side"], o["qty"], o["type"], o["reason"]) == (
        "submitted",
        "e1-BTC-3",
        "sell",
        "0.50",
        "market",
        "stop_loss",
    )
    assert o["detail"] == {}  # an object in every event, as a signal's (below)
    refused = OrderEvent(order, "refused", "max_position: position would be 3, limit 2")
    assert message(refused)[2]["detail"] == {"message": "max_position: position would be 3, limit 2"}
    f = message(cases["fill"])[2]
    assert (f["price"], f["qty"], f["commission"], f["trade_id"]) == ("64210.125", "0.50", "0.03", "t9")
    assert message(cases["signal"])[2]["detail"] == {"side": "buy", "stop_loss": 1.5, "qty": "2"}
    assert has(message(cases["error"])[2], kind="halted", message="boom")
    assert has(message(cases["bar"])[2], open=1.0, high=2.0, low=0.5, close=1.5, volume=10.0)


def test_an_engine_wide_error_has_no_symbol_and_nan_is_null():
    symbol, name, p = message(ErrorEvent(None, None, "broker down", kind="broker"))
    assert symbol is None and p["symbol"] is None and p["ts"] is None and p["time"] is None
    _, _, p = message(SignalEvent("X", TS, "adjust", {"stop_loss": float("nan"), "take_profit": float("inf")}))
    assert p["detail"] == {"stop_loss": None, "take_profit": None}


def test_symbols_with_a_slash_are_one_topic_level():
    assert wire.topic_level("EUR/USD") == "EUR%2FUSD"
    assert wire.topic_level("BTCUSDT") == "BTCUSDT"


def test_bars_in():
    bar = wire.parse_bar(b'{"schema":1,"symbol":"A","ts":5,"open":1,"high":2,"low":0.5,"close":1.5,"volume":3}')
    assert bar == Bar("A", 5, 1.0, 2.0, 0.5, 1.5, 3.0)
    iso = wire.parse_bar(b'{"symbol":"A","time":"2024-01-01T00:01:00+01:00","open":1,"high":1,"low":1,"close":1}')
    assert iso.ts == (1_704_067_260 - 3600) * NS_PER_SECOND and iso.volume == 0.0


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"\xff", "not JSON"),
        (b'"a"', "expected a JSON object, got str"),
        (b'{"schema":2,"symbol":"A"}', "schema 2 is not supported"),
        (b'{"symbol":"A","ts":1,"open":1,"high":1,"low":1}', "missing close"),
        (b'{"symbol":"A","open":1,"high":1,"low":1,"close":1}', "missing ts (or time)"),
        (b'{"symbol":"A","ts":1.5,"open":1,"high":1,"low":1,"close":1}', "ts: expected integer nanoseconds"),
        (b'{"symbol":"A","time":"noon","open":1,"high":1,"low":1,"close":1}', "time: expected ISO 8601 text"),
        (b'{"symbol":"","ts":1,"open":1,"high":1,"low":1,"close":1}', "symbol: expected a non-empty string"),
        (b'{"symbol":"A","ts":1,"open":"1","high":1,"low":1,"close":1}', "open: expected a number, got '1'"),
        (b'{"symbol":"A","ts":1,"open":true,"high":1,"low":1,"close":1}', "open: expected a number, got True"),
        (b'{"symbol":"A","ts":1,"open":0,"high":1,"low":1,"close":1}', "open: expected a positive number"),
        (b'{"symbol":"A","ts":1,"open":1,"high":1,"low":1,"close":1,"volume":-1}', "volume: expected a non-negative"),
        (b'{"symbol":"A","ts":1,"open":1,"high":1,"low":1.2,"close":1}', "prices out of range"),
        (b'{"symbol":"A","ts":1,"open":1,"high":1,"low":1,"close":1,"vwap":1}', "unknown key 'vwap'"),
    ],
)
def test_malformed_bars_say_why(payload, error):
    with pytest.raises(wire.Malformed) as err:
        wire.parse_bar(payload)
    assert str(err.value).startswith(error)


def test_commands_in():
    assert wire.parse_command(b"") == (None, None)
    assert wire.parse_command(b' {"symbol": "A", "request_id": 12} ') == ("A", "12")
    assert wire.request_id_of(b'{"request_id": "r", "junk": 1}') == "r"
    assert wire.request_id_of(b"nonsense") is None
