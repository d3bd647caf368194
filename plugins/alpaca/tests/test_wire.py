"""Message shapes as Alpaca's API documentation prints them: the market data
stream v2 and REST v2, the trading API v2 (clock, calendar, orders with legs,
account, positions, assets, errors) and the ``trade_updates`` stream; and
malformed messages, each refused with a ``WireError`` that names its kind."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal as D

import pytest
from engine_plugin_alpaca import wire
from engine_plugin_alpaca.wire import WireError

from engine_core import Order, OrderStatus, OrderType, Side, TimeInForce

S = 1_000_000_000

# market data stream v2 ("Minute Bars", "Trades", "Control messages")
DOC_BAR = {
    "T": "b",
    "S": "SPY",
    "o": 388.985,
    "h": 389.13,
    "l": 388.975,
    "c": 389.12,
    "v": 49378,
    "t": "2021-02-22T19:15:00Z",
    "n": 461,
    "vw": 389.062639,
}
DOC_TRADE = {
    "T": "t",
    "i": 96921,
    "S": "AAPL",
    "x": "D",
    "p": 126.55,
    "s": 1,
    "t": "2021-02-22T15:51:44.208Z",
    "c": ["@", "I"],
    "z": "C",
}

# trading API v2, "Orders": a bracket entry as the API answers it, with its legs
DOC_BRACKET = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
    "client_order_id": "e1-AAPL-1",
    "created_at": "2021-03-16T18:38:01.942282Z",
    "updated_at": "2021-03-16T18:38:01.942282Z",
    "submitted_at": "2021-03-16T18:38:01.937734Z",
    "filled_at": "2021-03-16T18:38:02.123456Z",
    "expired_at": None,
    "canceled_at": None,
    "failed_at": None,
    "replaced_at": None,
    "replaced_by": None,
    "replaces": None,
    "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
    "symbol": "AAPL",
    "asset_class": "us_equity",
    "notional": None,
    "qty": "2",
    "filled_qty": "2",
    "filled_avg_price": "126.5",
    "order_class": "bracket",
    "order_type": "market",
    "type": "market",
    "side": "buy",
    "time_in_force": "gtc",
    "limit_price": None,
    "stop_price": None,
    "status": "filled",
    "extended_hours": False,
    "legs": [
        {
            "id": "7b1f1a2e-0001-4c8e-9d0e-0a1b2c3d4e5f",
            "client_order_id": "e1-AAPL-1-tp",
            "updated_at": "2021-03-16T18:38:02.2Z",
            "symbol": "AAPL",
            "qty": "2",
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": "bracket",
            "type": "limit",
            "side": "sell",
            "time_in_force": "gtc",
            "limit_price": "130.1",
            "stop_price": None,
            "status": "new",
            "legs": None,
        },
        {
            "id": "7b1f1a2e-0002-4c8e-9d0e-0a1b2c3d4e5f",
            "client_order_id": "e1-AAPL-1-sl",
            "updated_at": "2021-03-16T18:38:02.2Z",
            "symbol": "AAPL",
            "qty": "2",
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": "bracket",
            "type": "stop",
            "side": "sell",
            "time_in_force": "gtc",
            "limit_price": None,
            "stop_price": "120",
            "status": "held",
            "legs": None,
        },
    ],
    "trail_percent": None,
    "trail_price": None,
    "hwm": None,
}


# ------------------------------------------------------------ times


def test_rfc3339_times_with_any_offset_and_nanoseconds():
    assert wire.parse_time("2021-02-22T19:15:00Z") == 1_614_021_300 * S
    assert wire.parse_time("2022-04-28T14:07:04.451420928-04:00") == 1_651_169_224 * S + 451_420_928
    assert wire.parse_time("2021-02-22T15:51:44.208Z") == 1_614_009_104 * S + 208_000_000
    assert wire.format_time(1_614_021_300 * S) == "2021-02-22T19:15:00Z"
    assert wire.format_time(1_651_169_224 * S + 451_420_928) == "2022-04-28T18:07:04.451420928Z"


@pytest.mark.parametrize("text", ["2021-02-22", "2021-02-30T00:00:00Z", "2021-02-22T19:15:00", 1614021300, None])
def test_a_bad_time_is_a_wire_error(text):
    with pytest.raises(WireError) as info:
        wire.parse_time(text)
    assert info.value.kind == "bad time"


# ------------------------------------------------------------ market data stream


def test_the_handshake_messages():
    assert json.loads(wire.auth_message("PK1", "s")) == {"action": "auth", "key": "PK1", "secret": "s"}
    assert json.loads(wire.subscribe_message(["AAPL", "MSFT"])) == {"action": "subscribe", "bars": ["AAPL", "MSFT"]}
    assert json.loads(wire.subscribe_message(["AAPL"], ["AAPL"]))["trades"] == ["AAPL"]
    assert wire.stream_path("sip") == "/v2/sip"
    [msg] = wire.stream_messages('[{"T":"success","msg":"connected"}]')
    assert msg == {"T": "success", "msg": "connected"}


def test_a_frame_of_bars_and_trades_as_the_documentation_prints_them():
    msgs = wire.stream_messages(json.dumps([DOC_BAR, DOC_TRADE]).encode())
    bar = wire.bar_from_stream(msgs[0])
    assert (bar.symbol, bar.ts) == ("SPY", 1_614_021_300 * S)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (388.985, 389.13, 388.975, 389.12, 49378.0)
    trade = wire.trade_from_stream(msgs[1])
    assert (trade.symbol, trade.price, trade.qty) == ("AAPL", 126.55, 1.0)
    assert trade.ts == 1_614_009_104 * S + 208_000_000


@pytest.mark.parametrize(
    ("code", "fatal", "help_"),
    [
        (402, True, "check key_id and secret_key"),
        (405, True, "your data plan allows fewer symbols"),
        (406, True, "another program (or engine) is connected"),
        (409, True, "does not include this feed"),
        (407, False, "did not read the stream fast enough"),
        (500, False, "an error at Alpaca"),
    ],
)
def test_stream_errors_say_whether_a_reconnect_can_help(code, fatal, help_):
    [msg] = wire.stream_messages(json.dumps([{"T": "error", "code": code, "msg": "as sent"}]))
    err = wire.stream_error(msg)
    assert (err.code, err.fatal) == (code, fatal)
    assert err.describe().startswith(f"{code} as sent: ") and help_ in err.describe()


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ("this is not json", "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        ("42", "not an array"),
        ('[{"S": "AAPL"}]', "message without T"),
        ('["b"]', "message without T"),
    ],
)
def test_malformed_frames_are_refused_by_kind(frame, kind):
    with pytest.raises(WireError) as info:
        wire.stream_messages(frame)
    assert info.value.kind == kind


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"o": "388.985"}, "bad bar"),  # prices are JSON numbers on the stream
        ({"c": float("nan")}, "bad bar"),
        ({"v": True}, "bad bar"),
        ({"S": ""}, "bad bar"),
        ({"t": "yesterday"}, "bad time"),
        ({"h": 388.0}, "inconsistent bar"),  # high below the close
        ({"l": 0, "o": 0.5, "c": 0.5, "h": 1}, "inconsistent bar"),
    ],
)
def test_a_bad_bar_is_refused_by_kind(change, kind):
    with pytest.raises(WireError) as info:
        wire.bar_from_stream({**DOC_BAR, **change})
    assert info.value.kind == kind


def test_a_single_object_frame_is_taken_as_a_one_message_array():
    assert wire.stream_messages(json.dumps(DOC_BAR)) == [DOC_BAR]


# ------------------------------------------------------------ market data REST


def test_a_bars_page_with_its_next_page_token():
    body = {
        "bars": {"AAPL": [{k: v for k, v in DOC_BAR.items() if k not in ("T", "S")}]},
        "next_page_token": "QUFQTHxNfDIwMjEtMDItMjJUMTk6MTU6MDAuMDAwMDAwMDAwWg==",
    }
    bars, token = wire.bars_page(body)
    assert token == body["next_page_token"]
    [bar] = bars["AAPL"]
    assert bar.symbol == "AAPL" and bar.close == 389.12 and bar.ts == 1_614_021_300 * S
    assert wire.bars_page({"bars": None, "next_page_token": None}) == ({}, None)  # nothing in range
    assert wire.bars_page({"bars": {}, "next_page_token": ""}) == ({}, None)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ([], "bad bars page"),
        ({"bars": ["AAPL"]}, "bad bars page"),
        ({"bars": {"AAPL": {}}}, "bad bars page"),
        ({"bars": {}, "next_page_token": 7}, "bad bars page"),
        ({"bars": {"AAPL": ["x"]}}, "bad bar"),
    ],
)
def test_a_bad_bars_page_is_refused(body, kind):
    with pytest.raises(WireError) as info:
        wire.bars_page(body)
    assert info.value.kind == kind


def test_the_bars_query():
    q = wire.bars_query(["AAPL", "MSFT"], "1Min", 1_614_021_300 * S, None, "delayed_sip", limit=500, sort="desc")
    assert q == {
        "symbols": "AAPL,MSFT",
        "timeframe": "1Min",
        "start": "2021-02-22T19:15:00Z",
        "limit": "500",
        "adjustment": "raw",
        "feed": "sip",  # the delayed feed is asked as sip
        "sort": "desc",
    }
    q = wire.bars_query(["AAPL"], "1Min", 0, 60 * S, "iex", page_token="tok")
    assert (q["end"], q["page_token"], q["feed"]) == ("1970-01-01T00:01:00Z", "tok", "iex")


# ------------------------------------------------------------ clock and calendar


def test_the_clock_as_the_api_answers_it():
    clk = wire.clock(
        {
            "timestamp": "2024-01-02T09:45:12.123456789-05:00",
            "is_open": True,
            "next_open": "2024-01-03T09:30:00-05:00",
            "next_close": "2024-01-02T16:00:00-05:00",
        }
    )
    assert clk.is_open and clk.timestamp == wire.parse_time("2024-01-02T14:45:12.123456789Z")
    assert wire.format_time(clk.next_close) == "2024-01-02T21:00:00Z"
    for bad in ({"is_open": "yes"}, [], {"is_open": True, "timestamp": "x", "next_open": "", "next_close": ""}):
        with pytest.raises(WireError):
            wire.clock(bad)


def test_the_calendar_in_new_york_time_with_and_without_session_hours():
    days = wire.calendar(
        [
            {"date": "2024-07-03", "open": "09:30", "close": "13:00", "session_open": "0400", "session_close": "1700"},
            {"date": "2024-01-02", "open": "09:30", "close": "16:00", "settlement_date": "2024-01-04"},
        ]
    )
    assert [d.day for d in days] == [date(2024, 1, 2), date(2024, 7, 3)]  # sorted
    winter, early_close = days
    assert wire.format_time(winter.open) == "2024-01-02T14:30:00Z"  # EST
    assert wire.format_time(winter.session_open) == "2024-01-02T09:00:00Z"  # 04:00 when absent
    assert wire.format_time(early_close.close) == "2024-07-03T17:00:00Z"  # EDT, an early close
    assert wire.calendar_row(early_close)["session_close"] == "1700"
    with pytest.raises(WireError, match="bad calendar time"):
        wire.calendar([{"date": "2024-01-02", "open": "9.30", "close": "16:00"}])
    with pytest.raises(WireError, match="bad calendar date"):
        wire.calendar([{"date": "02/01/2024", "open": "09:30", "close": "16:00"}])


# ------------------------------------------------------------ orders


def order(**kw) -> Order:
    base = {"client_id": "e1-AAPL-1", "symbol": "AAPL", "side": Side.BUY, "qty": D("2"), "ts": 0}
    return Order(**{**base, **kw})


def test_order_requests_market_limit_bracket_and_oto():
    assert wire.order_request(order()) == {
        "symbol": "AAPL",
        "qty": "2",
        "side": "buy",
        "type": "market",
        "time_in_force": "gtc",
        "client_order_id": "e1-AAPL-1",
    }
    limit = wire.order_request(
        order(type=OrderType.LIMIT, price=D("126.500"), tif=TimeInForce.DAY), extended_hours=True
    )
    assert (limit["limit_price"], limit["extended_hours"], limit["time_in_force"]) == ("126.5", True, "day")
    bracket = wire.order_request(order(stop_price=D("120.00"), take_profit_price=D("130.10")))
    assert bracket["order_class"] == "bracket"
    assert bracket["take_profit"] == {"limit_price": "130.1"} and bracket["stop_loss"] == {"stop_price": "120"}
    oto = wire.order_request(order(stop_price=D("120"), tif=TimeInForce.IOC))
    assert oto["order_class"] == "oto" and "take_profit" not in oto and oto["time_in_force"] == "day"
    fractional = wire.order_request(order(qty=D("0.5"), tif=TimeInForce.GTC))
    assert (fractional["qty"], fractional["time_in_force"]) == ("0.5", "day")  # fractional orders are day orders
    with pytest.raises(WireError, match="limit order without price"):
        wire.order_request(order(type=OrderType.LIMIT))


def test_an_order_with_its_legs_as_the_api_answers_it():
    entry = wire.venue_order(DOC_BRACKET)
    assert (entry.client_order_id, entry.side, entry.qty, entry.filled_qty) == ("e1-AAPL-1", Side.BUY, D(2), D(2))
    assert entry.filled_avg_price == D("126.5") and entry.order_class == "bracket"
    assert entry.engine_status is OrderStatus.FILLED and not entry.is_open
    assert entry.updated_at == wire.parse_time("2021-03-16T18:38:01.942282Z")
    take_profit, stop_loss = entry.legs
    assert (take_profit.type, take_profit.limit_price, take_profit.side) == ("limit", D("130.1"), Side.SELL)
    assert (stop_loss.type, stop_loss.stop_price, stop_loss.status) == ("stop", D("120"), "held")
    assert stop_loss.engine_status is OrderStatus.ACCEPTED and stop_loss.is_open  # waiting for its trigger
    assert stop_loss.legs == () and stop_loss.filled_avg_price is None


@pytest.mark.parametrize(
    ("status", "engine"),
    [
        ("new", OrderStatus.ACCEPTED),
        ("pending_new", OrderStatus.SUBMITTED),
        ("partially_filled", OrderStatus.PARTIALLY_FILLED),
        ("filled", OrderStatus.FILLED),
        ("canceled", OrderStatus.CANCELLED),
        ("expired", OrderStatus.EXPIRED),
        ("rejected", OrderStatus.REJECTED),
        ("replaced", OrderStatus.CANCELLED),
        ("done_for_day", OrderStatus.ACCEPTED),
    ],
)
def test_every_documented_order_status_maps_to_the_engines(status, engine):
    assert wire.order_status(status) is engine


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"status": "vanished"}, "unknown order status"),
        ({"side": "short"}, "bad order side"),
        ({"qty": "two"}, "bad order qty"),
        ({"client_order_id": None}, "bad order"),
        ({"legs": {"id": "x"}}, "bad order legs"),
        ({"filled_avg_price": "NaN"}, "bad filled_avg_price"),
    ],
)
def test_a_bad_order_is_refused_by_kind(change, kind):
    with pytest.raises(WireError) as info:
        wire.venue_order({**DOC_BRACKET, **change})
    assert info.value.kind == kind


def test_an_order_list():
    orders = wire.venue_orders([DOC_BRACKET, {**DOC_BRACKET, "client_order_id": "e1-AAPL-2", "legs": None}])
    assert [o.client_order_id for o in orders] == ["e1-AAPL-1", "e1-AAPL-2"]
    with pytest.raises(WireError, match="bad order list"):
        wire.venue_orders({"orders": []})


# ------------------------------------------------------------ errors, account, positions, assets


def test_error_answers_and_the_duplicate_client_id():
    err = wire.api_error(403, {"code": 40310000, "message": "insufficient qty available for order"})
    assert str(err) == "HTTP 403 40310000: insufficient qty available for order"
    dup = wire.api_error(422, {"code": 40010001, "message": "client_order_id must be unique"})
    assert wire.is_duplicate_client_id(dup) and not wire.is_duplicate_client_id(err)
    assert str(wire.api_error(403, {"message": "forbidden"})) == "HTTP 403: forbidden"  # the data API's shape
    assert str(wire.api_error(502, "<html>bad gateway</html>")) == "HTTP 502: <html>bad gateway</html>"
    assert str(wire.api_error(504, None)) == "HTTP 504: "


def test_account_positions_and_assets():
    acct = wire.account(
        {
            "id": "x",
            "status": "ACTIVE",
            "currency": "USD",
            "cash": "100000.25",
            "buying_power": "200000.5",
            "equity": "100000.25",
            "trading_blocked": False,
            "account_blocked": True,
            "shorting_enabled": True,
        }
    )
    assert acct.cash == D("100000.25") and acct.trading_blocked and acct.shorting_enabled
    held = wire.positions(
        [
            {"symbol": "AAPL", "qty": "10", "side": "long", "avg_entry_price": "126.5"},
            {"symbol": "TSLA", "qty": "-3", "side": "short", "avg_entry_price": "700"},
        ]
    )
    assert held == {"AAPL": D(10), "TSLA": D(-3)}
    asset = wire.asset(
        {"symbol": "AAPL", "tradable": True, "shortable": False, "easy_to_borrow": False, "fractionable": True}
    )
    assert asset == wire.Asset("AAPL", True, False, False, True)
    with pytest.raises(WireError, match="bad cash"):
        wire.account({"cash": None})
    with pytest.raises(WireError, match="bad position qty"):
        wire.positions([{"symbol": "AAPL", "qty": "ten"}])


# ------------------------------------------------------------ trade_updates


def test_the_trade_updates_handshake():
    assert json.loads(wire.stream_auth_message("PK1", "s")) == {
        "action": "authenticate",
        "data": {"key_id": "PK1", "secret_key": "s"},
    }
    assert json.loads(wire.LISTEN_MESSAGE) == {"action": "listen", "data": {"streams": ["trade_updates"]}}
    frame = b'{"stream":"authorization","data":{"status":"authorized","action":"authenticate"}}'
    assert wire.trade_stream_message(frame) == ("authorization", {"status": "authorized", "action": "authenticate"})


def test_a_fill_event_as_the_stream_sends_it():
    frame = json.dumps(
        {
            "stream": "trade_updates",
            "data": {
                "event": "fill",
                "execution_id": "3ee5dc24-5e25-4d63-9c25-9bd0b61f3fd8",
                "order": DOC_BRACKET,
                "position_qty": "2",
                "price": "126.5",
                "qty": "2",
                "timestamp": "2021-03-16T18:38:02.123456789Z",
            },
        }
    ).encode()  # the paper endpoint sends binary frames
    stream, data = wire.trade_stream_message(frame)
    update = wire.trade_update(data)
    assert stream == "trade_updates" and update.event == "fill"
    assert (update.price, update.qty, update.execution_id) == (D("126.5"), D(2), data["execution_id"])
    assert update.timestamp == wire.parse_time("2021-03-16T18:38:02.123456789Z")
    assert [leg.client_order_id for leg in update.order.legs] == ["e1-AAPL-1-tp", "e1-AAPL-1-sl"]


def test_an_event_without_an_execution_takes_the_orders_time():
    update = wire.trade_update({"event": "canceled", "order": DOC_BRACKET["legs"][1]})
    assert (update.price, update.qty, update.execution_id) == (None, None, "")
    assert update.timestamp == wire.parse_time("2021-03-16T18:38:02.2Z")


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ("{not json", "malformed JSON"),
        ('["trade_updates"]', "bad trade stream message"),
        ('{"stream": "trade_updates"}', "bad trade stream message"),
        ('{"stream": 1, "data": {}}', "bad trade stream message"),
    ],
)
def test_a_malformed_trade_stream_frame_is_refused(frame, kind):
    with pytest.raises(WireError) as info:
        wire.trade_stream_message(frame)
    assert info.value.kind == kind


def test_an_event_without_an_order_is_refused():
    with pytest.raises(WireError, match="bad order"):
        wire.trade_update({"event": "fill", "order": None})
    with pytest.raises(WireError, match="bad trade update"):
        wire.trade_update({"order": DOC_BRACKET})
