"""Frozen domain values: bars, orders, fills, positions, and the engine's events.

Values built on the hot path of a backtest (orders, fills, transitions,
round trips) are
NamedTuples: as immutable as frozen dataclasses and several times cheaper to
construct.

Times are integers: nanoseconds since the Unix epoch, UTC (``ts``). Prices and
quantities in orders, fills and positions are ``Decimal`` (exact at the broker
edge); bars carry floats because they are market observations, not money
that the engine moves.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, NamedTuple

import numpy as np

NS_PER_SECOND = 1_000_000_000
SECONDS_PER_DAY = 86_400
NS_PER_DAY = SECONDS_PER_DAY * NS_PER_SECOND
SECONDS_PER_YEAR = 365 * SECONDS_PER_DAY  # a 24/7 market's year: what annualises figures and volatility


def iso_utc(ts: int | None, digits: int = 0) -> str:
    """An event time as ISO 8601 UTC ("-" for none): to the second, or with
    ``digits`` digits of the second (truncated; see :func:`fraction_digits`).
    ``report.fastcsv.time_columns`` writes the same text for whole columns."""
    if ts is None:
        return "-"
    seconds, ns = divmod(ts, NS_PER_SECOND)
    text = _second_text(seconds)
    return f"{text}.{ns // 10 ** (9 - digits):0{digits}d}Z" if digits else f"{text}Z"


@functools.lru_cache(maxsize=1024)
def _second_text(seconds: int) -> str:
    """A second's ISO 8601 text (the events of a bar share theirs: made once)."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def fraction_digits(ts: Any) -> int:
    """The fewest digits (0, 3, 6 or 9) after the second that show every time of ``ts`` exactly."""
    return next(d for d in (0, 3, 6, 9) if not np.any(np.asarray(ts) % 10 ** (9 - d)))


def epoch_ns(moment: datetime) -> int:
    """A timezone-aware datetime as nanoseconds since the epoch, exactly (no float)."""
    delta = moment - _EPOCH
    return (delta.days * SECONDS_PER_DAY + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1_000


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_decimal(value: float) -> Decimal:
    """A float as the Decimal of its shortest repr (100.1 -> Decimal('100.1')):
    what the data said, not the binary float's expansion."""
    return Decimal(repr(float(value)))


class Side(str, enum.Enum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is BUY else -1


# The members read once, for hot paths to import: on Python 3.11 each ``Side.X``
# costs a lookup through the enum metaclass (~0.2 us).
BUY, SELL = Side.BUY, Side.SELL


class State(str, enum.Enum):
    """States of a symbol's state machine."""

    WATCH = "watch"
    CLOSE_WATCH = "close_watch"
    IN_TRADE = "in_trade"


@dataclass(frozen=True, slots=True)
class Bar:
    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class Trade:
    """One market trade (tick) as a venue reports it."""

    symbol: str
    ts: int
    price: float
    qty: float


def bar_at(columns: Any, symbol: str, i: int) -> Bar:
    """Bar ``i`` of anything holding the columns ts/open/high/low/close/volume."""
    return Bar(
        symbol,
        int(columns.ts[i]),
        float(columns.open[i]),
        float(columns.high[i]),
        float(columns.low[i]),
        float(columns.close[i]),
        float(columns.volume[i]),
    )


@dataclass(frozen=True, slots=True, eq=False)
class BarChunk:
    """Consecutive bars of one symbol as columns (the backtest's unit of work).

    ``ts`` is int64 nanoseconds, strictly increasing; the price and volume
    columns are float64 arrays of the same length.
    """

    symbol: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def bar(self, i: int) -> Bar:
        return bar_at(self, self.symbol, i)

    def slice(self, start: int, stop: int) -> BarChunk:
        return BarChunk(
            self.symbol,
            self.ts[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
        )

    @classmethod
    def from_bars(cls, bars: list[Bar]) -> BarChunk:
        symbol = bars[0].symbol if bars else ""
        return cls(
            symbol,
            np.fromiter((b.ts for b in bars), dtype=np.int64, count=len(bars)),
            np.fromiter((b.open for b in bars), dtype=np.float64, count=len(bars)),
            np.fromiter((b.high for b in bars), dtype=np.float64, count=len(bars)),
            np.fromiter((b.low for b in bars), dtype=np.float64, count=len(bars)),
            np.fromiter((b.close for b in bars), dtype=np.float64, count=len(bars)),
            np.fromiter((b.volume for b in bars), dtype=np.float64, count=len(bars)),
        )


class OrderType(str, enum.Enum):
    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(str, enum.Enum):
    GTC = "gtc"  # good till cancelled (the engine cancels an entry limit after its ``expires`` bars)
    IOC = "ioc"  # immediate or cancel
    FOK = "fok"  # fill or kill
    DAY = "day"  # until the session's end (stock venues)


class Order(NamedTuple):
    """An order the engine sends to a broker.

    ``client_id`` is deterministic (engine id, symbol, sequence) so that a
    retry or a restart can never place the same order twice. ``price`` is the
    limit price of a limit order. ``stop_price`` and ``take_profit_price`` are
    protective prices a venue may attach to an entry (a bracket); the engine
    watches them either way.
    """

    client_id: str
    symbol: str
    side: Side
    qty: Decimal
    ts: int
    reason: str = ""
    type: OrderType = OrderType.MARKET
    price: Decimal | None = None
    tif: TimeInForce = TimeInForce.GTC
    stop_price: Decimal | None = None
    take_profit_price: Decimal | None = None


def fill_key(client_id: str, trade_id: str) -> str:
    """What tells one fill from another: its order's client id and the venue's trade id."""
    return f"{client_id}/{trade_id}"


class Fill(NamedTuple):
    """One execution. ``qty`` is the executed quantity (what completes the
    order); ``fee_qty`` is the part of it a venue kept as its fee in the asset
    bought (Binance without BNB), so the position grows by ``qty - fee_qty``;
    ``commission`` is the fee in the quote currency, booked as cost."""

    client_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    commission: Decimal
    ts: int
    trade_id: str = ""  # the venue's id of this fill; with client_id, what makes a fill unique
    fee_qty: Decimal = Decimal(0)

    @property
    def key(self) -> str:
        return fill_key(self.client_id, self.trade_id)

    @property
    def position_change(self) -> Decimal:
        """The signed change of the position this fill makes."""
        return self.qty - self.fee_qty if self.side is BUY else -self.qty


# ---------------------------------------------------------------- events


# The events a backtest makes by the ten thousand (transitions, signals,
# orders, fills) are NamedTuples: a frozen dataclass costs twice as much to
# construct, on the worker's thread, whenever anything listens.


class TransitionEvent(NamedTuple):
    """A state-machine transition. ``stops``: on the move into in_trade, the
    levels the engine armed (``Stops.snapshot()``: ``stop_price``,
    ``take_profit_price``, ``trailing_stop``, ``best``), None when it armed none."""

    symbol: str
    ts: int
    from_state: State
    to_state: State
    reason: str
    stops: dict[str, Any] | None = None


class SignalEvent(NamedTuple):
    """A strategy decision (setup, enter, exit, cancel, adjust) and its fields."""

    symbol: str
    ts: int
    action: str
    detail: dict[str, Any]


class OrderEvent(NamedTuple):
    """An order's status changed (``status``: an orders.OrderStatus, a str
    enum); ``venue_id``: the venue's id of the order, once it told."""

    order: Order
    status: Any
    detail: str = ""
    venue_id: str = ""


class FillEvent(NamedTuple):
    """A fill, and what it leaves of its order: the quantity filled so far
    (``filled``) and the order's status (an orders.OrderStatus)."""

    fill: Fill
    filled: Decimal | None = None
    status: Any = None


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """A live source's connection changed state (see ``sources.ConnectionState``);
    ``ts`` is wall-clock time."""

    source: str
    state: str
    ts: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    symbol: str | None
    ts: int | None
    message: str
    kind: str = "error"


@dataclass(frozen=True, slots=True)
class LogEvent:
    """A line a strategy logged (``ctx.log``) on its bar; ``ts`` is None before the first bar."""

    symbol: str
    ts: int | None
    message: str


class RoundTrip(NamedTuple):
    """A closed trade: entry and exit of one position."""

    symbol: str
    side: Side
    qty: Decimal
    entry_ts: int
    entry_price: Decimal
    exit_ts: int
    exit_price: Decimal
    pnl: Decimal
    commission: Decimal
    exit_reason: str
