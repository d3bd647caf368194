"""Risk controls: position sizing, pre-trade checks and kill switches.

The ``[risk]`` table holds the global limits, ``[risk.symbols.<SYMBOL>]``
overrides them per symbol (only the keys it sets)::

    [risk]
    max_position = 5
    max_orders_per_minute = 10
    daily_loss_limit = 0.05        # of starting cash, per UTC day
    max_drawdown = 0.2             # below the peak equity
    sizing = "percent_equity"
    percent = 0.1
    qty_step = 0.001
    max_total_notional = 50000     # global only: across symbols
    max_open_orders = 4            # global only: across symbols

    [risk.symbols.BTCUSDT]
    max_position = 2

Every rule is off unless set. An order that only reduces a position (exits,
stops, kill-switch flattening) is never refused, so a position can always be
closed. Times are event times (the order's and bars' ``ts``), so a backtest
meets the same limits as a live run.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from engine_core.errors import RiskError
from engine_core.model import NS_PER_DAY, NS_PER_SECOND, Order, Side, to_decimal

NS_PER_MINUTE = 60 * NS_PER_SECOND
_NO_LIMIT = Decimal("Infinity")  # a reservation nothing refuses (an order placed already)

Sizing = Literal["fixed_qty", "fixed_notional", "percent_equity", "risk_per_trade"]

# the key each sizing rule needs besides ``sizing`` itself
_SIZING_NEEDS = {"fixed_notional": "notional", "percent_equity": "percent", "risk_per_trade": "risk"}


class RiskLimits(BaseModel):
    """The limits that apply to one symbol; ``None`` turns a rule off.

    Same model settings as ``engine_core.config._Section`` (frozen, unknown
    keys refused); not derived from it because config.py imports this module.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_position: Decimal | None = Field(default=None, gt=0)
    max_notional: Decimal | None = Field(default=None, gt=0)
    max_orders_per_minute: int | None = Field(default=None, ge=1)
    daily_loss_limit: float | None = Field(default=None, gt=0, lt=1)
    max_drawdown: float | None = Field(default=None, gt=0, lt=1)
    kill_action: Literal["flatten", "halt"] = "flatten"
    qty: Decimal | None = Field(default=None, gt=0)
    notional: Decimal | None = Field(default=None, gt=0)
    percent: Decimal | None = Field(default=None, gt=0, le=1)
    risk: Decimal | None = Field(default=None, gt=0, lt=1)
    qty_step: Decimal | None = Field(default=None, gt=0)
    # after the keys it needs, so that its validator sees them
    sizing: Sizing = "fixed_qty"

    @field_validator("sizing")
    @classmethod
    def _sizing_complete(cls, sizing: Sizing, info: ValidationInfo) -> Sizing:
        need = _SIZING_NEEDS.get(sizing)
        if need is not None and info.data.get(need) is None:
            raise ValueError(f"needs {need} to be set")
        return sizing


class RiskSection(RiskLimits):
    """The ``[risk]`` table: global limits, global-only limits, per-symbol overrides."""

    max_total_notional: Decimal | None = Field(default=None, gt=0)
    max_open_orders: int | None = Field(default=None, ge=1)
    symbols: dict[str, RiskLimits] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _sizing_into_overrides(cls, raw: Any) -> Any:
        """Give each override the global sizing keys it does not set, so that every
        symbol's sizing rule is validated with the keys it will be sized by."""
        if not isinstance(raw, dict) or not isinstance(raw.get("symbols"), dict):
            return raw
        inherited = {k: raw[k] for k in ("sizing", *_SIZING_NEEDS.values()) if k in raw}
        symbols = {
            symbol: {**inherited, **override} if isinstance(override, dict) else override
            for symbol, override in raw["symbols"].items()
        }
        return {**raw, "symbols": symbols}

    def for_symbol(self, symbol: str) -> RiskLimits:
        """The global limits with the symbol's override (only the keys it sets) on top."""
        merged = {k: getattr(self, k) for k in RiskLimits.model_fields}
        override = self.symbols.get(symbol)
        if override is not None:
            merged.update(override.model_dump(include=override.model_fields_set))
        return RiskLimits(**merged)


class Account:
    """What the symbols share: starting cash, latest PnL and notional per symbol, open orders.

    Workers update it from their own threads; every method is thread-safe.
    """

    def __init__(self, start_cash: Decimal) -> None:
        self.start_cash = start_cash
        self._lock = threading.Lock()
        self._pnl: dict[str, float] = {}
        self._notional: dict[str, float] = {}
        # the notional each symbol's order in flight would leave it with (``take_notional``)
        self._pending: dict[str, float] = {}
        self._open_orders = 0

    def update(self, symbol: str, pnl: float, notional: float) -> None:
        """Record the symbol's latest PnL and (absolute) notional exposure."""
        with self._lock:
            self._pnl[symbol] = pnl
            self._notional[symbol] = abs(notional)

    def order_opened(self) -> None:
        with self._lock:
            self._open_orders += 1

    def take_order(self, limit: int) -> bool:
        """Count one more open order unless ``limit`` are open: the check and
        the count in one step, so that two symbols checked at once never both
        take the last place."""
        with self._lock:
            if self._open_orders >= limit:
                return False
            self._open_orders += 1
            return True

    def order_closed(self) -> None:
        with self._lock:
            self._open_orders -= 1

    @property
    def open_orders(self) -> int:
        return self._open_orders

    def equity(self) -> float:
        """Starting cash plus every symbol's latest PnL."""
        with self._lock:
            return float(self.start_cash) + sum(self._pnl.values())

    def total_notional(self) -> float:
        with self._lock:
            return sum(self._notional.values())

    def take_notional(self, symbol: str, notional: Decimal, limit: Decimal) -> Decimal | None:
        """Reserve ``notional`` for ``symbol``'s order unless it and the other
        symbols' (each its exposure, or what its order in flight would leave
        it with when that is larger: an entry not filled yet counts) would
        pass ``limit``: None when reserved, else that total. The check and the
        reservation in one step, as ``take_order``."""
        with self._lock:
            exposure, pending = self._notional, self._pending
            others = sum(
                max(exposure.get(s, 0.0), pending.get(s, 0.0)) for s in exposure.keys() | pending.keys() if s != symbol
            )
            would = to_decimal(others) + notional
            if would > limit:
                return would
            pending[symbol] = float(notional)
            return None

    def release_notional(self, symbol: str) -> None:
        """``symbol``'s order has left the book: its exposure is what ``update`` says."""
        with self._lock:
            self._pending.pop(symbol, None)


@dataclass
class KillState:
    """A symbol's kill-switch memory between spans (JSON-able with ``asdict``).

    ``day`` is the UTC day number (days since the epoch) of the last bar seen,
    ``day_start`` the equity that day started from, ``last`` the last equity seen.
    """

    peak: float | None = None
    day: int | None = None
    day_start: float | None = None
    last: float | None = None


class RiskManager:
    """Sizes entries, checks orders before they leave, and watches the kill switches."""

    def __init__(self, section: RiskSection, account: Account) -> None:
        self.section = section
        self.account = account
        self._limits: dict[str, RiskLimits] = {}
        self._sent: dict[str, deque[int]] = {}  # per symbol: event times of the last minute's orders
        self._idle: dict[str, bool] = {}
        # Only the cross-symbol limit reads other symbols' marks.
        self.tracks_account = section.max_total_notional is not None

    def cross_symbol_binds(self, symbols: Sequence[str]) -> bool:
        """Whether a cross-symbol rule can refuse an order of a run on ``symbols``; a
        backtest then steps the symbols in event-time order (a cost of about 3x).

        A symbol has at most one order in flight, and none when it sends one, so
        ``max_open_orders`` can refuse only when it is below the number of symbols;
        ``max_total_notional`` can refuse unless every symbol's own ``max_notional``
        keeps the sum within it. A rule that cannot refuse gives the same results
        whichever order the symbols are stepped in."""
        section = self.section
        if section.max_open_orders is not None and section.max_open_orders < len(symbols):
            return True
        if section.max_total_notional is not None:
            caps = [self.limits(symbol).max_notional for symbol in symbols]
            if any(cap is None for cap in caps) or sum(c for c in caps if c is not None) > section.max_total_notional:
                return True
        return False

    def limits(self, symbol: str) -> RiskLimits:
        """The symbol's effective limits (cached)."""
        lim = self._limits.get(symbol)
        if lim is None:
            lim = self._limits[symbol] = self.section.for_symbol(symbol)
        return lim

    def _unlimited(self, symbol: str, lim: RiskLimits) -> bool:
        """No pre-trade rule applies to the symbol (the common backtest case)."""
        idle = self._idle.get(symbol)
        if idle is None:
            total = self.section
            idle = self._idle[symbol] = (
                all(getattr(lim, key) is None for key in ("max_position", "max_notional", "max_orders_per_minute"))
                and total.max_total_notional is None
                and total.max_open_orders is None
            )
        return idle

    # ------------------------------------------------------------ sizing

    def size(self, symbol: str, price: float, stop_price: float | None, equity: float, default_qty: Decimal) -> Decimal:
        """The entry quantity by the symbol's sizing rule, rounded down to ``qty_step``.

        ``stop_price`` is the entry's stop-loss level (a price), which
        ``risk_per_trade`` sizes by; ``default_qty`` (the strategy's) is used by
        ``fixed_qty`` without ``qty``.
        Raises RiskError(rule="sizing") when no positive quantity results.
        """
        lim = self.limits(symbol)
        rule = lim.sizing

        def refuse(why: str) -> RiskError:
            return RiskError(f"{symbol}: sizing {rule} refused the entry: {why}", rule="sizing")

        if price <= 0:
            raise refuse(f"price {_num(price)} is not positive")
        if rule == "fixed_qty":  # (the price as a Decimal only for the rules that size by it)
            qty = lim.qty or default_qty
        elif rule == "fixed_notional":
            assert lim.notional is not None  # validated with the config
            qty = lim.notional / to_decimal(price)
        elif rule == "percent_equity":
            assert lim.percent is not None
            qty = to_decimal(equity) * lim.percent / to_decimal(price)
        else:
            assert lim.risk is not None
            if stop_price is None:
                raise refuse("the entry has no stop-loss")
            distance = abs(to_decimal(price) - to_decimal(stop_price))
            if distance == 0:
                raise refuse(f"stop-loss {_num(stop_price)} equals the price")
            qty = to_decimal(equity) * lim.risk / distance
        if lim.qty_step is not None:
            qty = (qty / lim.qty_step).to_integral_value(ROUND_FLOOR) * lim.qty_step
        if qty <= 0:
            step = f", qty_step {_num(lim.qty_step)}" if lim.qty_step is not None else ""
            raise refuse(f"quantity {_num(qty)} (equity {_num(equity)}, price {_num(price)}{step})")
        return qty

    # ------------------------------------------------------------ pre-trade checks

    def check(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        price: float,
        position_qty: Decimal,
        ts: int,
        reducing: bool,
    ) -> None:
        """Refuse (RiskError naming the rule) an order that breaks a limit; count it if not.

        A ``reducing`` order (exit, stop, flattening) is never refused. An
        order passed takes its place at once, before it is journaled and sent:
        with ``max_open_orders`` it is one of the account's open orders
        (``Account.take_order``), with ``max_total_notional`` the position it
        would leave counts towards the total (``Account.take_notional``), so
        another symbol's order checked while this one waits for the disk, the
        venue or its fill counts it. ``order_closed`` gives it back when the
        order leaves the book, or is not placed after all.
        """
        if self._idle.get(symbol) or self._unlimited(symbol, self.limits(symbol)):
            return
        lim, total = self.limits(symbol), self.section
        sent = self._sent.setdefault(symbol, deque())
        while sent and sent[0] <= ts - NS_PER_MINUTE:
            sent.popleft()
        if not reducing:

            def refuse(rule: str, what: str, value: Decimal | float, limit: Decimal | float) -> RiskError:
                return RiskError(
                    f"{symbol}: order {side.value} {_num(qty)} refused by {rule}: "
                    f"{what} {_num(value)}, limit {_num(limit)}",
                    rule=rule,
                )

            position = position_qty + side.sign * qty
            notional = abs(position) * to_decimal(price)
            if lim.max_position is not None and abs(position) > lim.max_position:
                raise refuse("max_position", "position would be", position, lim.max_position)
            if lim.max_notional is not None and notional > lim.max_notional:
                raise refuse("max_notional", "notional would be", notional, lim.max_notional)
            if total.max_total_notional is not None:
                would = self.account.take_notional(symbol, notional, total.max_total_notional)
                if would is not None:
                    raise refuse("max_total_notional", "total notional would be", would, total.max_total_notional)
            if total.max_open_orders is not None and not self.account.take_order(total.max_open_orders):
                self._give_back(symbol, order=False)  # the notional taken above
                raise refuse("max_open_orders", "open orders", self.account.open_orders, total.max_open_orders)
            if lim.max_orders_per_minute is not None and len(sent) >= lim.max_orders_per_minute:
                self._give_back(symbol)  # what was taken above
                raise refuse("max_orders_per_minute", "orders in the last minute", len(sent), lim.max_orders_per_minute)
        elif total.max_open_orders is not None:
            self.account.order_opened()  # never refused, but open all the same
        sent.append(ts)

    def order_restored(self, order: Order, filled: Decimal, position: Decimal) -> None:
        """``order``, still open after a restart, is its symbol's order in
        flight again: an entry with a price takes the notional it would leave
        (``max_total_notional``), as it did at its check (``order_closed``
        gives it back). A market order has no price to count it by (the venue
        fills it at once; the restart books that)."""
        if self.section.max_total_notional is None or order.price is None:
            return
        after = position + order.side.sign * (order.qty - filled)
        if abs(after) > abs(position):
            self.account.take_notional(order.symbol, abs(after) * order.price, _NO_LIMIT)

    def order_closed(self, symbol: str) -> None:
        """``symbol``'s order has left the book (or was not placed after
        passing ``check``): its place among the open orders and the notional
        it took are given back."""
        self._give_back(symbol)

    def _give_back(self, symbol: str, order: bool = True) -> None:
        total = self.section
        if order and total.max_open_orders is not None:
            self.account.order_closed()
        if total.max_total_notional is not None:
            self.account.release_notional(symbol)

    # ------------------------------------------------------------ kill switches

    def first_kill(self, symbol: str, ts: np.ndarray, equity: np.ndarray, state: KillState) -> tuple[int, str] | None:
        """The first bar of a span where the daily-loss or drawdown switch trips.

        ``ts`` (int64 ns) and ``equity`` (start cash plus the symbol's PnL at
        each bar close) cover the span. Returns ``(index, rule)`` or None, and
        advances ``state`` over the bars consumed: up to and including the trip,
        or the whole span.
        """
        lim = self.limits(symbol)
        n = len(equity)
        if n == 0 or (lim.daily_loss_limit is None and lim.max_drawdown is None):
            return None
        eq = np.asarray(equity, dtype=np.float64)
        if _cannot_trip(lim, float(self.account.start_cash), eq, state):
            _advance(np.asarray(ts, dtype=np.int64), eq, state)
            return None
        return self._first_kill_scan(lim, ts, eq, state)

    def _first_kill_scan(
        self, lim: RiskLimits, ts: np.ndarray, eq: np.ndarray, state: KillState
    ) -> tuple[int, str] | None:
        """:meth:`first_kill` bar by bar: each bar's day start and peak, then the first trip."""
        n = len(eq)
        day = np.asarray(ts, dtype=np.int64) // NS_PER_DAY
        # a day starts from the equity at the close of the previous day's last bar
        prev_eq = np.empty(n)
        prev_eq[0] = eq[0] if state.last is None else state.last
        prev_eq[1:] = eq[:-1]
        new_day = np.empty(n, dtype=bool)
        new_day[0] = state.day is None or day[0] != state.day
        new_day[1:] = day[1:] != day[:-1]
        since = np.maximum.accumulate(np.where(new_day, np.arange(n), 0))
        day_start = prev_eq[since]
        if not new_day[0]:
            day_start[since == 0] = state.day_start
        peak = np.maximum.accumulate(eq if state.peak is None else np.maximum(eq, state.peak))

        trips = []
        if lim.daily_loss_limit is not None:
            loss = lim.daily_loss_limit * float(self.account.start_cash)
            trips.append((day_start - eq >= loss, "daily_loss_limit"))
        if lim.max_drawdown is not None:
            trips.append((peak - eq >= lim.max_drawdown * peak, "max_drawdown"))
        hit: tuple[int, str] | None = None
        for mask, rule in trips:
            j = int(mask.argmax())
            if mask[j] and (hit is None or j < hit[0]):
                hit = (j, rule)

        end = n - 1 if hit is None else hit[0]
        state.peak = float(peak[end])
        state.day = int(day[end])
        state.day_start = float(day_start[end])
        state.last = float(eq[end])
        return hit


_KILL_FIELDS = tuple(f.name for f in fields(KillState))


class KillSwitch:
    """The symbol's daily-loss and drawdown switches (rules in ``[risk]``)."""

    __slots__ = ("symbol", "risk", "state", "enabled", "action")

    def __init__(self, symbol: str, risk: RiskManager) -> None:
        self.symbol = symbol
        self.risk = risk
        self.state = KillState()
        limits = risk.limits(symbol)
        self.enabled = limits.daily_loss_limit is not None or limits.max_drawdown is not None
        self.action = limits.kill_action

    def first(self, ts: np.ndarray, equity: np.ndarray) -> tuple[int, str] | None:
        """The first bar of a span that trips a switch, without consuming it."""
        if not self.enabled or not len(ts):
            return None
        probe = replace(self.state)
        return self.risk.first_kill(self.symbol, ts, equity, probe)

    def consume(self, ts: np.ndarray, equity: np.ndarray) -> None:
        """Advance the switches' memory over bars the worker finished."""
        if self.enabled and len(ts):
            self.risk.first_kill(self.symbol, ts, equity, self.state)

    def snapshot(self) -> dict[str, Any]:
        state = self.state  # flat: its fields are numbers (dataclasses.asdict deep-copies, several times slower)
        return {name: getattr(state, name) for name in _KILL_FIELDS}

    def restore(self, snap: dict[str, Any]) -> None:
        self.state = KillState(**snap)


def _cannot_trip(lim: RiskLimits, start_cash: float, eq: np.ndarray, state: KillState) -> bool:
    """Whether no bar of the span can trip a switch, from bounds alone: the lowest
    equity against the highest peak and the highest day start it could be measured
    from. Float rounding is monotonic, so a bound that clears it clears every bar's
    own comparison in :meth:`RiskManager._first_kill_scan`: the answer is the same."""
    low, high = float(eq.min()), float(eq.max())
    first = float(eq[0])
    if lim.max_drawdown is not None:
        peak_low = first if state.peak is None else max(state.peak, first)
        peak_high = high if state.peak is None else max(state.peak, high)
        if not peak_high - low < lim.max_drawdown * peak_low:
            return False
    if lim.daily_loss_limit is not None:
        # a day starts from the previous bar's equity (or the span's first), or from state.day_start
        starts = [high, first if state.last is None else state.last]
        if state.day_start is not None:
            starts.append(state.day_start)
        if not max(starts) - low < lim.daily_loss_limit * start_cash:
            return False
    return True


def _advance(ts: np.ndarray, eq: np.ndarray, state: KillState) -> None:
    """Move ``state`` over a whole span without a trip, as the bar-by-bar scan would."""
    end_day = int(ts[-1]) // NS_PER_DAY
    if int(ts[0]) // NS_PER_DAY == end_day:  # one day: it starts in the span only if it is new
        if state.day is None or end_day != state.day:
            state.day_start = float(eq[0]) if state.last is None else state.last
    else:  # the last day starts at its first bar, from the previous bar's equity
        j = int(np.searchsorted(ts, end_day * NS_PER_DAY))
        state.day_start = float(eq[j - 1])
    peak = float(eq.max())
    state.peak = peak if state.peak is None else max(state.peak, peak)
    state.day = end_day
    state.last = float(eq[-1])


def _num(x: Decimal | float) -> str:
    """A number for a message: no exponent, no trailing zeros."""
    d = x if isinstance(x, Decimal) else Decimal(x) if isinstance(x, int) else to_decimal(x)
    return format(d.normalize(), "f")


__all__ = ["Account", "KillState", "KillSwitch", "RiskLimits", "RiskManager", "RiskSection"]
