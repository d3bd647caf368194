"""The JSON on the wire: engine events, statuses, control replies out; bars,
trades and commands in. Every object carries ``"schema": SCHEMA``; the plugin
README documents each field.

Money and quantities travel as decimal strings (exact); bar prices as JSON
numbers. Times are ``ts`` (integer nanoseconds since the Unix epoch, UTC: the
engine's own unit) and ``time`` (the same instant as ISO 8601 text, to the
millisecond, for readers whose numbers are doubles).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import msgspec

# The event types, as hookspecs.py lists them too: each module names what it handles.
from engine_core import (
    Bar,
    ConnectionEvent,
    ErrorEvent,
    Event,
    FillEvent,
    LogEvent,
    OrderEvent,
    SignalEvent,
    Trade,
    TransitionEvent,
    epoch_ns,
)

SCHEMA = 1
_EPOCH = date(1970, 1, 1)

# msgspec writes compact UTF-8 JSON about five times faster than the standard
# library, which matters at a backtest's event rates. It writes a Decimal as
# its str() in quotes, a str enum as its value, a NaN or infinity as null, and
# anything else it does not know as its str().
_encoder = msgspec.json.Encoder(enc_hook=str)


def dumps(obj: Any) -> bytes:
    """Compact JSON of a payload (an object, or a list of them); a NaN or
    infinity (not JSON) becomes null."""
    return _encoder.encode(obj)


_texts: dict[int, str] = {}  # ts -> its text: the events of one bar share their ts
_dates: dict[int, str] = {}  # day since the epoch -> "YYYY-MM-DD"
_CACHED = 100_000  # entries each cache holds at most
# the time of day in pieces (formatting numbers costs ten times a look-up)
_HOUR_MINUTE = [f"T{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
_SECOND = [f"{s:02d}." for s in range(60)]
_MILLI = [f"{ms:03d}Z" for ms in range(1000)]


def iso_ms(ts: int | None) -> str | None:
    """``ts`` (ns) as ISO 8601 UTC text to the millisecond. The events of many
    symbols come interleaved, each on another minute: the text is cached by
    ts, the date by day, and the time of day put together from pieces made
    once (strftime costs thirty times as much)."""
    if ts is None:
        return None
    text = _texts.get(ts)
    if text is None:
        day, ms = divmod(ts // 1_000_000, 86_400_000)
        date = _dates.get(day)
        if date is None:
            if len(_dates) >= _CACHED:
                _dates.clear()
            date = _dates[day] = (_EPOCH + timedelta(days=day)).isoformat()
        if len(_texts) >= _CACHED:
            _texts.clear()
        seconds, ms = divmod(ms, 1000)
        minutes, second = divmod(seconds, 60)
        text = _texts[ts] = date + _HOUR_MINUTE[minutes] + _SECOND[second] + _MILLI[ms]
    return text


def topic_level(symbol: str) -> str:
    """A symbol as one topic level: '/' (allowed in symbols such as EUR/USD)
    becomes '%2F'; '%' cannot occur in a symbol, so this is reversible."""
    return symbol.replace("/", "%2F")


def symbol_of_level(level: str) -> str:
    """The symbol a topic level names (the inverse of :func:`topic_level`)."""
    return level.replace("%2F", "/")


# ------------------------------------------------------------ events out
#
# One msgspec Struct per event payload, its fields in the order they are
# written: at a backtest's rates the payloads are most of what the sink costs,
# and a Struct is made and written faster than a dict with the same keys.
# They hold enums and Decimals as they are (written as their values and
# strings) and nothing that could refer back to them, so the garbage
# collector need not track them (gc=False): tens of thousands a second would
# otherwise make it run through the engine's objects again and again.


class EventPayload(msgspec.Struct, gc=False):
    """What every event payload starts with."""

    schema: int
    seq: int
    engine: str
    symbol: str | None
    event: str
    ts: int | None
    time: str | None


class TransitionPayload(EventPayload, gc=False, rename={"from_": "from"}):
    from_: Any
    to: Any
    reason: str


class OrderPayload(EventPayload, gc=False):
    status: Any
    client_id: str
    side: Any
    qty: Any
    type: Any
    reason: str
    detail: dict[str, str]


class FillPayload(EventPayload, gc=False):
    client_id: str
    trade_id: str
    side: Any
    qty: Any
    price: Any
    commission: Any


class SignalPayload(EventPayload, gc=False):
    action: str
    detail: Any


class ErrorPayload(EventPayload, gc=False):
    kind: str
    message: str


class BarPayload(EventPayload, gc=False, omit_defaults=True):
    open: float
    high: float
    low: float
    close: float
    volume: float
    # live, with bars = true: each indicator the strategy reads, at this bar (left out otherwise)
    indicators: dict[str, float | None] | None = None


class LogPayload(EventPayload, gc=False):
    message: str


class ConnectionPayload(EventPayload, gc=False):
    source: str
    state: str
    detail: dict[str, str]


_NO_DETAIL: dict[str, str] = {}  # shared, never changed


def _detail(text: str) -> dict[str, str]:
    """``detail`` is an object in every event that has one (a signal's are its
    decision's fields): an order's or a connection's text is its ``message``."""
    return {"message": text} if text else _NO_DETAIL


def _transition(e: TransitionEvent, engine: str, seq: int) -> EventPayload:
    ts = e.ts
    time = _texts.get(ts) or iso_ms(ts)
    return TransitionPayload(SCHEMA, seq, engine, e.symbol, "transition", ts, time, e.from_state, e.to_state, e.reason)


def _order(e: OrderEvent, engine: str, seq: int) -> EventPayload:
    o = e.order
    ts = o.ts
    time = _texts.get(ts) or iso_ms(ts)
    return OrderPayload(
        SCHEMA,
        seq,
        engine,
        o.symbol,
        "order",
        ts,
        time,
        e.status,
        o.client_id,
        o.side,
        o.qty,
        o.type,
        o.reason,
        _detail(e.detail),
    )


def _fill(e: FillEvent, engine: str, seq: int) -> EventPayload:
    f = e.fill
    ts = f.ts
    time = _texts.get(ts) or iso_ms(ts)
    return FillPayload(
        SCHEMA, seq, engine, f.symbol, "fill", ts, time, f.client_id, f.trade_id, f.side, f.qty, f.price, f.commission
    )


def _signal(e: SignalEvent, engine: str, seq: int) -> EventPayload:
    ts = e.ts
    time = _texts.get(ts) or iso_ms(ts)
    return SignalPayload(SCHEMA, seq, engine, e.symbol, "signal", ts, time, e.action, e.detail)


def _error(e: ErrorEvent, engine: str, seq: int) -> EventPayload:
    return ErrorPayload(SCHEMA, seq, engine, e.symbol, "error", e.ts, iso_ms(e.ts), e.kind, e.message)


def _bar(e: Bar, engine: str, seq: int) -> EventPayload:
    ts = e.ts
    time = _texts.get(ts) or iso_ms(ts)
    return BarPayload(SCHEMA, seq, engine, e.symbol, "bar", ts, time, e.open, e.high, e.low, e.close, e.volume)


def _log(e: LogEvent, engine: str, seq: int) -> EventPayload:
    return LogPayload(SCHEMA, seq, engine, e.symbol, "log", e.ts, iso_ms(e.ts), e.message)


def _connection(e: ConnectionEvent, engine: str, seq: int) -> EventPayload:
    return ConnectionPayload(
        SCHEMA, seq, engine, None, "connection", e.ts, iso_ms(e.ts), e.source, e.state, _detail(e.detail)
    )


# event class -> the function making its payload (``.symbol`` and ``.event``
# say where it goes)
PAYLOADS: dict[type, Callable[[Any, str, int], EventPayload]] = {
    TransitionEvent: _transition,
    OrderEvent: _order,
    FillEvent: _fill,
    SignalEvent: _signal,
    ErrorEvent: _error,
    Bar: _bar,
    LogEvent: _log,
    ConnectionEvent: _connection,
}


def event_message(event: Event, engine_id: str, seq: int) -> tuple[str | None, str, dict[str, Any]]:
    """(symbol, event name, payload as a subscriber decodes it) for one engine
    event; symbol None for an engine-wide event (an error that concerns no
    symbol, the source's connection). ``seq`` numbers the engine's events 1,
    2, 3... so that a subscriber can drop the duplicates QoS 1 may deliver and
    see any gap."""
    make = PAYLOADS.get(event.__class__)
    if make is None:
        raise TypeError(f"not an engine event: {event!r}")
    payload = make(event, engine_id, seq)
    return payload.symbol, payload.event, msgspec.json.decode(dumps(payload))


# ------------------------------------------------------------ bars and trades in


class Malformed(ValueError):
    """A message that is not what the README says; the text says why."""


def _object(payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise Malformed(f"not JSON: {err}") from None
    if not isinstance(obj, dict):
        raise Malformed(f"expected a JSON object, got {type(obj).__name__}")
    schema = obj.get("schema", SCHEMA)
    if schema != SCHEMA:
        raise Malformed(f"schema {schema!r} is not supported (this engine reads schema {SCHEMA})")
    return obj


def _keys(obj: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    missing = [k for k in required if k not in obj]
    if missing:
        raise Malformed(f"missing {', '.join(missing)}")
    unknown = sorted(set(obj) - set(required) - set(optional) - {"schema", "ts", "time"})
    if unknown:
        raise Malformed(f"unknown key {unknown[0]!r}")


def _number(obj: dict[str, Any], key: str, positive: bool = True) -> float:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Malformed(f"{key}: expected a number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise Malformed(f"{key}: expected a {'positive' if positive else 'non-negative'} number, got {value!r}")
    return float(value)


def _ts(obj: dict[str, Any]) -> int:
    if "ts" in obj:
        ts = obj["ts"]
        if isinstance(ts, bool) or not isinstance(ts, int) or ts <= 0:
            raise Malformed(f"ts: expected integer nanoseconds since the epoch, got {ts!r}")
        return ts
    if "time" in obj:
        text = obj["time"]
        try:
            when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            raise Malformed(f"time: expected ISO 8601 text, got {text!r}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return epoch_ns(when)
    raise Malformed("missing ts (or time)")


def _symbol(obj: dict[str, Any]) -> str:
    symbol = obj["symbol"]
    if not isinstance(symbol, str) or not symbol:
        raise Malformed(f"symbol: expected a non-empty string, got {symbol!r}")
    return symbol


def parse_bar(payload: bytes) -> Bar:
    """A bar from ``{"schema": 1, "symbol", "ts" | "time", "open", "high",
    "low", "close", "volume"}``; Malformed when it is not one."""
    obj = _object(payload)
    _keys(obj, ("symbol", "open", "high", "low", "close"), ("volume",))
    o, h, low, c = (_number(obj, k) for k in ("open", "high", "low", "close"))
    volume = _number(obj, "volume", positive=False) if "volume" in obj else 0.0
    if not (low <= min(o, c) and h >= max(o, c)):
        raise Malformed(f"prices out of range: low {low} and high {h} must hold open {o} and close {c}")
    return Bar(_symbol(obj), _ts(obj), o, h, low, c, volume)


def parse_trade(payload: bytes) -> Trade:
    """A trade from ``{"schema": 1, "symbol", "ts" | "time", "price", "qty"}``."""
    obj = _object(payload)
    _keys(obj, ("symbol", "price", "qty"), ())
    return Trade(_symbol(obj), _ts(obj), _number(obj, "price"), _number(obj, "qty"))


# ------------------------------------------------------------ commands in


def parse_command(payload: bytes) -> tuple[str | None, str | None]:
    """(symbol, request_id) of a command message: an empty payload, or
    ``{"schema": 1, "symbol": "BTCUSDT", "request_id": "..."}`` (both optional)."""
    if not payload.strip():
        return None, None
    obj = _object(payload)
    unknown = sorted(set(obj) - {"schema", "symbol", "request_id"})
    if unknown:
        raise Malformed(f"unknown key {unknown[0]!r}")
    symbol = _symbol(obj) if obj.get("symbol") is not None else None
    request_id = obj.get("request_id")
    if request_id is not None and not isinstance(request_id, (str, int)):
        raise Malformed(f"request_id: expected a string, got {request_id!r}")
    return symbol, None if request_id is None else str(request_id)


def request_id_of(payload: bytes) -> str | None:
    """The request_id of a message that failed to parse, when one can be read."""
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    rid = obj.get("request_id") if isinstance(obj, dict) else None
    return str(rid) if isinstance(rid, (str, int)) and not isinstance(rid, bool) else None
