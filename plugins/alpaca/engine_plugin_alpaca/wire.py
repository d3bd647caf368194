"""Alpaca's wire formats: what the market data stream v2, the market data REST
v2, the trading REST v2 and the ``trade_updates`` stream send and expect.

Everything here is pure: text or decoded JSON in, typed values out (and the
reverse for requests). A message that does not have the documented shape
raises :class:`WireError`, which the callers count and drop.

Times on the wire are RFC 3339 with up to nanosecond precision and an offset
(``2021-02-22T15:51:44.208Z``, ``2022-04-28T14:07:04.451420928-04:00``); in the
engine they are integer nanoseconds since the epoch, UTC. Prices and
quantities of orders, fills, positions and the account are decimal strings and
stay ``Decimal``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from engine_core import NS_PER_SECOND, Bar, Order, OrderStatus, OrderType, Side, TimeInForce, Trade, epoch_ns

NEW_YORK = ZoneInfo("America/New_York")


class WireError(ValueError):
    """A message without the documented shape; ``kind`` names the problem for counting."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


# ------------------------------------------------------------------ times

_RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|z|[+-]\d\d:\d\d)$")


def parse_time(text: Any) -> int:
    """RFC 3339 (nanosecond precision, any offset) as nanoseconds since the epoch."""
    if not isinstance(text, str):
        raise WireError("bad time", repr(text))
    m = _RFC3339.match(text)
    if m is None:
        raise WireError("bad time", repr(text))
    y, mo, d, h, mi, s, frac, zone = m.groups()
    try:
        moment = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=timezone.utc)
    except ValueError as err:
        raise WireError("bad time", repr(text)) from err
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return epoch_ns(moment) + (int(frac.ljust(9, "0")) if frac else 0)


def format_time(ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 UTC (``2024-01-02T14:30:00Z``, with a
    fraction only when there is one)."""
    seconds, frac = divmod(ns, NS_PER_SECOND)
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{frac:09d}Z" if frac else f"{text}Z"


def _dec(value: Any, what: str, *, nullable: bool = False) -> Decimal:
    if value is None and nullable:
        return Decimal(0)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise WireError(f"bad {what}", repr(value))
    try:
        out = Decimal(str(value))
    except InvalidOperation as err:
        raise WireError(f"bad {what}", repr(value)) from err
    if not out.is_finite():
        raise WireError(f"bad {what}", repr(value))
    return out


def _num(msg: dict[str, Any], key: str, what: str) -> float:
    value = msg.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WireError(f"bad {what}", f"{key}={value!r}")
    out = float(value)
    if out != out or out in (float("inf"), float("-inf")):
        raise WireError(f"bad {what}", f"{key}={value!r}")
    return out


def _str(msg: dict[str, Any], key: str, what: str) -> str:
    value = msg.get(key)
    if not isinstance(value, str) or not value:
        raise WireError(f"bad {what}", f"{key}={value!r}")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    """A JSON object, else WireError naming ``what``."""
    if not isinstance(value, dict):
        raise WireError(f"bad {what}", repr(value)[:80])
    return value


def _array(value: Any, what: str) -> list[Any]:
    """A JSON array, else WireError naming ``what``."""
    if not isinstance(value, list):
        raise WireError(f"bad {what}", repr(value)[:80])
    return value


def decode_json(raw: str | bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise WireError("malformed JSON", str(raw[:80])) from err


# ------------------------------------------------------- market data stream

STREAM_VERSION = "v2"


def stream_path(feed: str) -> str:
    return f"/{STREAM_VERSION}/{feed}"


def auth_message(key_id: str, secret_key: str) -> str:
    return json.dumps({"action": "auth", "key": key_id, "secret": secret_key})


def subscribe_message(bars: list[str], trades: list[str] | None = None) -> str:
    msg: dict[str, Any] = {"action": "subscribe", "bars": bars}
    if trades:
        msg["trades"] = trades
    return json.dumps(msg)


class StreamError(NamedTuple):
    """An ``error`` control message: its code, text, and whether reconnecting can help."""

    code: int
    msg: str
    fatal: bool

    def describe(self) -> str:
        return f"{self.code} {self.msg}: {STREAM_ERROR_HELP.get(self.code, 'see Alpaca market data stream errors')}"


STREAM_ERROR_HELP = {
    400: "the stream did not understand a message (a bug of this plugin)",
    401: "subscribed before authenticating (a bug of this plugin)",
    402: "check key_id and secret_key (paper and live keys differ)",
    403: "the connection was authenticated twice",
    404: "the stream waited too long for the keys",
    405: "your data plan allows fewer symbols than engine.symbols lists",
    406: "another program (or engine) is connected to this feed with the same keys",
    407: "the engine did not read the stream fast enough",
    408: "market data v2 is not enabled for this account",
    409: 'your data plan does not include this feed (feed = "iex" is free)',
    500: "an error at Alpaca",
}
RETRYABLE_STREAM_ERRORS = frozenset({403, 404, 407, 500})


def stream_error(msg: dict[str, Any]) -> StreamError:
    code = msg.get("code")
    if isinstance(code, bool) or not isinstance(code, int):
        raise WireError("bad error message", repr(msg)[:120])
    return StreamError(code, str(msg.get("msg", "")), code not in RETRYABLE_STREAM_ERRORS)


def stream_messages(raw: str | bytes) -> list[dict[str, Any]]:
    """One frame of the market data stream: a JSON array of objects with ``T``."""
    data = decode_json(raw)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise WireError("not an array", str(raw[:80]))
    out = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("T"), str):
            raise WireError("message without T", repr(item)[:80])
        out.append(item)
    return out


def bar_from_stream(msg: dict[str, Any]) -> Bar:
    """A minute bar (``"T": "b"``; also the corrected ``"u"`` and REST bar objects given ``S``)."""
    symbol = _str(msg, "S", "bar")
    return _bar(symbol, msg)


def _bar(symbol: str, msg: dict[str, Any]) -> Bar:
    ts = parse_time(msg.get("t"))
    o, h, lo, c = (_num(msg, k, "bar") for k in ("o", "h", "l", "c"))
    v = _num(msg, "v", "bar")
    if not (lo <= min(o, c) and max(o, c) <= h) or v < 0 or lo <= 0:
        raise WireError("inconsistent bar", f"{symbol} {msg.get('t')} o={o} h={h} l={lo} c={c} v={v}")
    return Bar(symbol, ts, o, h, lo, c, v)


def trade_from_stream(msg: dict[str, Any]) -> Trade:
    symbol = _str(msg, "S", "trade")
    return Trade(symbol, parse_time(msg.get("t")), _num(msg, "p", "trade"), _num(msg, "s", "trade"))


# ----------------------------------------------------- market data REST

BARS_PATH = "/v2/stocks/bars"
MAX_LIMIT = 10_000


def bars_query(
    symbols: list[str],
    timeframe: str,
    start: int,
    end: int | None,
    feed: str,
    *,
    adjustment: str = "raw",
    limit: int = MAX_LIMIT,
    page_token: str | None = None,
    sort: str = "asc",
) -> dict[str, str]:
    """Query of ``GET /v2/stocks/bars`` (``start`` and ``end`` inclusive, ns)."""
    q = {
        "symbols": ",".join(symbols),
        "timeframe": timeframe,
        "start": format_time(start),
        "limit": str(limit),
        "adjustment": adjustment,
        "feed": "sip" if feed == "delayed_sip" else feed,
        "sort": sort,
    }
    if end is not None:
        q["end"] = format_time(end)
    if page_token:
        q["page_token"] = page_token
    return q


def bars_page(body: Any) -> tuple[dict[str, list[Bar]], str | None]:
    """``{"bars": {"AAPL": [...]}, "next_page_token": ...}`` as bars per symbol and the
    next page's token (None on the last page). ``bars`` may be null when empty."""
    body = _object(body, "bars page")
    raw = body.get("bars") or {}
    token = body.get("next_page_token")
    if not isinstance(raw, dict) or (token is not None and not isinstance(token, str)):
        raise WireError("bad bars page", repr(body)[:80])
    out: dict[str, list[Bar]] = {}
    for symbol, rows in raw.items():
        if not isinstance(rows, list):
            raise WireError("bad bars page", f"{symbol}: {rows!r}"[:80])
        out[symbol] = [_bar(symbol, row) if isinstance(row, dict) else _not_bar(symbol, row) for row in rows]
    return out, token or None


def _not_bar(symbol: str, row: Any) -> Bar:
    raise WireError("bad bar", f"{symbol}: {row!r}"[:80])


# --------------------------------------------------- clock and calendar


class Clock(NamedTuple):
    timestamp: int
    is_open: bool
    next_open: int
    next_close: int


def clock(body: Any) -> Clock:
    if not isinstance(body, dict) or not isinstance(body.get("is_open"), bool):
        raise WireError("bad clock", repr(body)[:80])
    return Clock(
        parse_time(body.get("timestamp")),
        body["is_open"],
        parse_time(body.get("next_open")),
        parse_time(body.get("next_close")),
    )


class SessionDay(NamedTuple):
    """One market day: the regular session ``[open, close)`` and the extended
    session ``[session_open, session_close)``, in ns UTC."""

    day: date
    open: int
    close: int
    session_open: int
    session_close: int


def _local(day: date, hhmm: Any) -> int:
    if not isinstance(hhmm, str) or not re.fullmatch(r"\d\d:?\d\d", hhmm):
        raise WireError("bad calendar time", repr(hhmm))
    digits = hhmm.replace(":", "")
    moment = datetime.combine(day, time(int(digits[:2]), int(digits[2:])), tzinfo=NEW_YORK)
    return epoch_ns(moment)


def calendar(body: Any) -> list[SessionDay]:
    """``GET /v2/calendar``: days with ``date``, ``open``/``close`` (``HH:MM``, New York time) and
    ``session_open``/``session_close`` (``HHMM``; 04:00 and 20:00 when absent)."""
    body = _array(body, "calendar")
    days = []
    for row in body:
        row = _object(row, "calendar")
        try:
            day = date.fromisoformat(str(row.get("date")))
        except ValueError as err:
            raise WireError("bad calendar date", repr(row.get("date"))) from err
        days.append(
            SessionDay(
                day,
                _local(day, row.get("open")),
                _local(day, row.get("close")),
                _local(day, row.get("session_open", "0400")),
                _local(day, row.get("session_close", "2000")),
            )
        )
    days.sort()
    return days


def calendar_row(day: SessionDay) -> dict[str, str]:
    """The wire form of a calendar day (what the fake server answers)."""

    def hm(ns: int, sep: str) -> str:
        return datetime.fromtimestamp(ns / NS_PER_SECOND, tz=NEW_YORK).strftime(f"%H{sep}%M")

    return {
        "date": day.day.isoformat(),
        "open": hm(day.open, ":"),
        "close": hm(day.close, ":"),
        "session_open": hm(day.session_open, ""),
        "session_close": hm(day.session_close, ""),
    }


# --------------------------------------------------------- trading REST


class ApiError(NamedTuple):
    """An error answer of the trading or data REST API."""

    status: int
    code: int
    message: str

    def __str__(self) -> str:
        return f"HTTP {self.status}" + (f" {self.code}" if self.code else "") + f": {self.message}"


def api_error(status: int, body: Any) -> ApiError:
    if isinstance(body, dict):
        code = body.get("code")
        return ApiError(status, code if isinstance(code, int) else 0, str(body.get("message", "")))
    return ApiError(status, 0, str(body)[:200] if body else "")


def is_duplicate_client_id(err: ApiError) -> bool:
    return err.status == 422 and "client_order_id must be unique" in err.message.replace(
        "client order id", "client_order_id"
    )


def decimal_text(value: Decimal) -> str:
    """A Decimal as Alpaca takes it: plain notation, no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


def order_request(order: Order, *, extended_hours: bool = False) -> dict[str, Any]:
    """The JSON body of ``POST /v2/orders``. An order carrying ``stop_price`` and
    ``take_profit_price`` goes as a ``bracket``; with only one of them, as ``oto``."""
    whole = order.qty == order.qty.to_integral_value()
    tif = order.tif
    if not whole or order.type is OrderType.MARKET and tif not in (TimeInForce.DAY, TimeInForce.GTC):
        tif = TimeInForce.DAY  # fractional orders are day orders; market orders take day/gtc/opg/cls/ioc/fok
    body: dict[str, Any] = {
        "symbol": order.symbol,
        "qty": decimal_text(order.qty),
        "side": order.side.value,
        "type": order.type.value,
        "time_in_force": tif.value,
        "client_order_id": order.client_id,
    }
    if order.type is OrderType.LIMIT:
        if order.price is None:
            raise WireError("limit order without price", order.client_id)
        body["limit_price"] = decimal_text(order.price)
        if extended_hours and tif is TimeInForce.DAY:
            body["extended_hours"] = True
    legs = order.stop_price is not None, order.take_profit_price is not None
    if any(legs):
        body["order_class"] = "bracket" if all(legs) else "oto"
        if order.take_profit_price is not None:
            body["take_profit"] = {"limit_price": decimal_text(order.take_profit_price)}
        if order.stop_price is not None:
            body["stop_loss"] = {"stop_price": decimal_text(order.stop_price)}
        if body["time_in_force"] not in ("day", "gtc"):
            body["time_in_force"] = "gtc"
    return body


_STATUS = {
    "new": OrderStatus.ACCEPTED,
    "accepted": OrderStatus.ACCEPTED,
    "pending_new": OrderStatus.SUBMITTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,  # a bracket leg waiting for its entry
    "pending_cancel": OrderStatus.ACCEPTED,
    "pending_replace": OrderStatus.ACCEPTED,
    "replaced": OrderStatus.CANCELLED,
    "done_for_day": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "stopped": OrderStatus.ACCEPTED,
    "suspended": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def order_status(status: str) -> OrderStatus:
    try:
        return _STATUS[status]
    except KeyError:
        raise WireError("unknown order status", repr(status)) from None


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as the trading API describes it (REST and ``trade_updates``)."""

    id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    status: str
    type: str
    order_class: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    legs: tuple[VenueOrder, ...]
    updated_at: int

    @property
    def engine_status(self) -> OrderStatus:
        return order_status(self.status)

    @property
    def is_open(self) -> bool:
        return self.engine_status.is_open


def _opt_dec(body: dict[str, Any], key: str) -> Decimal | None:
    value = body.get(key)
    return None if value is None or value == "" else _dec(value, key)


def venue_order(body: Any) -> VenueOrder:
    body = _object(body, "order")
    side = body.get("side")
    if side not in ("buy", "sell"):
        raise WireError("bad order side", repr(side))
    status = _str(body, "status", "order")
    order_status(status)
    legs_raw = _array(body.get("legs") or [], "order legs")
    updated = body.get("updated_at") or body.get("created_at")
    return VenueOrder(
        id=_str(body, "id", "order"),
        client_order_id=_str(body, "client_order_id", "order"),
        symbol=_str(body, "symbol", "order"),
        side=Side(side),
        qty=_dec(body.get("qty"), "order qty", nullable=True),
        filled_qty=_dec(body.get("filled_qty"), "filled_qty", nullable=True),
        filled_avg_price=_opt_dec(body, "filled_avg_price"),
        status=status,
        type=str(body.get("type") or body.get("order_type") or ""),
        order_class=str(body.get("order_class") or "simple"),
        limit_price=_opt_dec(body, "limit_price"),
        stop_price=_opt_dec(body, "stop_price"),
        legs=tuple(venue_order(leg) for leg in legs_raw),
        updated_at=parse_time(updated) if updated else 0,
    )


def venue_orders(body: Any) -> list[VenueOrder]:
    body = _array(body, "order list")
    return [venue_order(o) for o in body]


class Account(NamedTuple):
    cash: Decimal
    buying_power: Decimal
    equity: Decimal
    currency: str
    status: str
    trading_blocked: bool
    shorting_enabled: bool


def account(body: Any) -> Account:
    body = _object(body, "account")
    return Account(
        _dec(body.get("cash"), "cash"),
        _dec(body.get("buying_power"), "buying_power", nullable=True),
        _dec(body.get("equity"), "equity", nullable=True),
        str(body.get("currency") or "USD"),
        str(body.get("status") or ""),
        bool(body.get("trading_blocked") or body.get("account_blocked")),
        bool(body.get("shorting_enabled", False)),
    )


def positions(body: Any) -> dict[str, Decimal]:
    """``GET /v2/positions`` as a signed quantity per symbol (shorts negative)."""
    body = _array(body, "positions")
    out: dict[str, Decimal] = {}
    for row in body:
        row = _object(row, "position")
        qty = abs(_dec(row.get("qty"), "position qty"))
        out[_str(row, "symbol", "position")] = -qty if row.get("side") == "short" else qty
    return out


class Asset(NamedTuple):
    """An asset's flags, each named as Alpaca's JSON names it (``asset`` reads them by name)."""

    symbol: str
    tradable: bool
    shortable: bool
    easy_to_borrow: bool
    fractionable: bool


def asset(body: Any) -> Asset:
    body = _object(body, "asset")
    return Asset(_str(body, "symbol", "asset"), *(bool(body.get(flag)) for flag in Asset._fields[1:]))


# ------------------------------------------------------ trade_updates


def stream_auth_message(key_id: str, secret_key: str) -> str:
    return json.dumps({"action": "authenticate", "data": {"key_id": key_id, "secret_key": secret_key}})


LISTEN_MESSAGE = json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}})


class TradeUpdate(NamedTuple):
    """One ``trade_updates`` event: ``new``, ``fill``, ``partial_fill``, ``canceled``, ..."""

    event: str
    order: VenueOrder
    timestamp: int
    execution_id: str
    price: Decimal | None
    qty: Decimal | None


def trade_stream_message(raw: str | bytes) -> tuple[str, dict[str, Any]]:
    """``(stream, data)`` of one ``trade_updates`` stream frame (text or binary)."""
    body = decode_json(raw)
    if not isinstance(body, dict) or not isinstance(body.get("stream"), str) or not isinstance(body.get("data"), dict):
        raise WireError("bad trade stream message", str(raw[:80]))
    return body["stream"], body["data"]


def trade_update(data: dict[str, Any]) -> TradeUpdate:
    event = _str(data, "event", "trade update")
    order = venue_order(data.get("order"))
    ts = data.get("timestamp") or data.get("at")
    return TradeUpdate(
        event,
        order,
        parse_time(ts) if ts else order.updated_at,
        str(data.get("execution_id") or ""),
        _opt_dec(data, "price"),
        _opt_dec(data, "qty"),
    )
