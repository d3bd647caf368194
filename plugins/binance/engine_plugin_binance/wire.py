"""Binance's spot wire format: decoding frames and REST payloads into the
engine's values. Message shapes are those of Binance's spot API
documentation (web-socket-streams.md, rest-api.md, user-data-stream.md).

Klines are decoded with msgspec into typed structs whose price fields are
converted from Binance's decimal strings while parsing (``strict=False``):
about twice orjson's speed once the floats are made (``bench/binance_decode.py``).
Order messages are rare; they are decoded to dicts and read with Decimal.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from engine_core import Bar, Fill, OrderState, OrderStatus, OrderUpdate, Side, UpdateKind

MS = 1_000_000  # ns per ms

INTERVAL_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
    "1M": 0,  # calendar months: not evenly spaced
}
"""Binance's kline intervals and their length in ms (0: uneven)."""


# ------------------------------------------------------------ market streams


class Kline(msgspec.Struct, gc=False):
    t: int  # open time, ms
    T: int  # close time, ms
    s: str
    o: float
    h: float
    l: float  # noqa: E741 - Binance's field name
    c: float
    v: float
    x: bool  # closed


class KlineEvent(msgspec.Struct, tag_field="e", tag="kline", gc=False):
    E: int
    s: str
    k: Kline


class ServerShutdown(msgspec.Struct, tag_field="e", tag="serverShutdown", gc=False):
    E: int = 0


class Combined(msgspec.Struct, gc=False):
    """A combined-stream frame: ``{"stream": name, "data": payload}``."""

    stream: str
    data: KlineEvent | ServerShutdown


_combined = msgspec.json.Decoder(Combined, strict=False)

DecodeError = msgspec.DecodeError
ValidationError = msgspec.ValidationError


def decode_stream(frame: str | bytes) -> Combined:
    """One combined-stream frame. Raises ``DecodeError`` for malformed JSON and
    its subclass ``ValidationError`` for JSON of another shape (an unknown event)."""
    return _combined.decode(frame)


def kline_bar(k: Kline) -> Bar:
    return Bar(k.s, k.t * MS, k.o, k.h, k.l, k.c, k.v)


# ------------------------------------------------------------ REST klines


class KlineRow(msgspec.Struct, array_like=True, gc=False):
    """One row of ``GET /api/v3/klines`` (trailing fields ignored)."""

    t: int
    o: float
    h: float
    l: float  # noqa: E741
    c: float
    v: float
    T: int


class KlineText(msgspec.Struct, array_like=True, gc=False):
    """The same row with prices kept as Binance wrote them (for CSV files)."""

    t: int
    o: str
    h: str
    l: str  # noqa: E741
    c: str
    v: str
    T: int


_rows = msgspec.json.Decoder(list[KlineRow], strict=False)
_texts = msgspec.json.Decoder(list[KlineText])


def decode_klines(body: bytes) -> list[KlineRow]:
    return _rows.decode(body)


def decode_kline_texts(body: bytes) -> list[KlineText]:
    return _texts.decode(body)


def row_bar(symbol: str, r: KlineRow) -> Bar:
    return Bar(symbol, r.t * MS, r.o, r.h, r.l, r.c, r.v)


# ------------------------------------------------------------ orders

SIDE = {Side.BUY: "BUY", Side.SELL: "SELL"}
_SIDE_OF = {"BUY": Side.BUY, "SELL": Side.SELL}

STATUS_OF = {
    "NEW": OrderStatus.ACCEPTED,
    "PENDING_NEW": OrderStatus.ACCEPTED,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELLED,
    "PENDING_CANCEL": OrderStatus.ACCEPTED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}
"""Binance's order status (``X`` / ``status``) as the engine's."""

_TERMINAL_KIND = {
    "CANCELED": UpdateKind.CANCEL,
    "REJECTED": UpdateKind.REJECT,
    "EXPIRED": UpdateKind.EXPIRE,
    "EXPIRED_IN_MATCH": UpdateKind.EXPIRE,
}


def decode(body: bytes | str) -> Any:
    return msgspec.json.decode(body)


def encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


def book_fill(
    client_id: str,
    symbol: str,
    side: Side,
    qty: Decimal,
    price: Decimal,
    commission: Decimal,
    commission_asset: str | None,
    ts: int,
    trade_id: str,
    base: str,
    quote: str,
    asset_value: Any = None,
) -> Fill:
    """A fill with its commission booked as the engine books it: a fee in the
    base asset (a buy without BNB) is ``fee_qty`` (the position grows by what
    the account received); a fee in the quote asset is cost; a fee in
    another asset (BNB) is cost at its value in the quote asset, given by
    ``asset_value(asset, amount)``."""
    fee_qty = Decimal(0)
    cost = Decimal(0)
    if commission and commission_asset:
        if commission_asset == base:
            if side is Side.BUY:
                fee_qty = commission
            else:  # a sell charged in the base asset (rare): its value is cost
                cost = commission * price
        elif commission_asset == quote:
            cost = commission
        elif asset_value is not None:
            cost = asset_value(commission_asset, commission)
    return Fill(client_id, symbol, side, qty, price, cost, ts, trade_id, fee_qty)


def report_updates(ev: dict[str, Any], base: str, quote: str, asset_value: Any = None) -> list[OrderUpdate]:
    """The updates one ``executionReport`` event means (an ack, a fill, a
    cancel, a reject or an expiry); nothing for what the engine ignores
    (replacements, amendments)."""
    client_id = ev["c"]
    if ev.get("x") == "CANCELED" and ev.get("C"):
        client_id = ev["C"]  # a cancel names the cancelled order in C
    symbol = ev["s"]
    ts = int(ev.get("T") or ev.get("E") or 0) * MS
    venue_id = str(ev.get("i", ""))
    x = ev.get("x")
    status = ev.get("X", "")
    if x == "NEW":
        return [OrderUpdate(UpdateKind.ACK, client_id, symbol, ts, venue_id=venue_id)]
    if x == "TRADE":
        fill = book_fill(
            client_id,
            symbol,
            _SIDE_OF[ev["S"]],
            Decimal(ev["l"]),
            Decimal(ev["L"]),
            Decimal(ev.get("n") or 0),
            ev.get("N"),
            ts,
            str(ev["t"]),
            base,
            quote,
            asset_value,
        )
        kind = UpdateKind.FILL if status == "FILLED" else UpdateKind.PARTIAL_FILL
        return [OrderUpdate(kind, client_id, symbol, ts, fill, venue_id)]
    if x in ("CANCELED", "REJECTED", "EXPIRED", "TRADE_PREVENTION") and status in _TERMINAL_KIND:
        reason = ev.get("r", "") if x == "REJECTED" else ""
        return [OrderUpdate(_TERMINAL_KIND[status], client_id, symbol, ts, venue_id=venue_id, reason=reason)]
    return []


def trade_fills(
    trades: list[dict[str, Any]], client_id: str, symbol: str, base: str, quote: str, asset_value: Any = None
) -> list[Fill]:
    """Fills from ``GET /api/v3/myTrades`` rows (or an order response's ``fills``)."""
    out = []
    for t in trades:
        side = Side.BUY if t.get("isBuyer", t.get("side") == "BUY") else Side.SELL
        out.append(
            book_fill(
                client_id,
                symbol,
                side,
                Decimal(t["qty"]),
                Decimal(t["price"]),
                Decimal(t.get("commission") or 0),
                t.get("commissionAsset"),
                int(t.get("time", 0)) * MS,
                str(t.get("id", t.get("tradeId", ""))),
                base,
                quote,
                asset_value,
            )
        )
    return out


def order_state(order: dict[str, Any], fills: list[Fill]) -> OrderState:
    """``GET /api/v3/order`` (with the order's fills) as the engine's view."""
    return OrderState(
        STATUS_OF.get(order["status"], OrderStatus.UNKNOWN),
        Decimal(order.get("executedQty") or 0),
        tuple(fills),
        str(order.get("orderId", "")),
    )
