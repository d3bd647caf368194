"""A symbol's status as the sink publishes it (retained): state, position,
last bar, pending order, stop levels, halted/paused, kept up to date from the
events."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from engine_core import Bar, ErrorEvent, Event, FillEvent, OrderEvent, OrderStatus, Side, SignalEvent, TransitionEvent
from engine_plugin_mqtt.wire import SCHEMA, iso_ms

_ZERO = Decimal(0)
_PLACES = Decimal("1e-8")


_LEVELS = ("stop_price", "take_profit_price", "trailing_stop")
_ARMED = (*_LEVELS, "best")
_OPEN = frozenset(s for s in OrderStatus if s.is_open)


def _is_open(status: object) -> bool:
    """An OrderStatus, or its value as text (a str enum hashes as its value)."""
    return status in _OPEN


class SymbolStatus:
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.state = "watch"
        self.qty = Decimal(0)
        self.avg_price: Decimal | None = None
        self.last_bar: dict[str, Any] | None = None
        self.pending: dict[str, Any] | None = None
        self.filled = Decimal(0)
        self.halted: str | None = None
        self.paused = False
        self.seq = 0  # the last event applied
        self.ts: int | None = None
        self.cash = Decimal(0)  # the symbol's cash flows (as its ledger books them), for the engine's cash
        self.stops: dict[str, Any] | None = None  # the levels the engine armed (``Stops.snapshot()``)
        self.worker_stops: Any = None  # the worker's ``Stops``, for the trailing stop's best price

    def seed(self, snap: dict[str, Any], worker_stops: Any = None) -> None:
        """Start from a worker's snapshot (a restored live run holds a position
        that no event of this run has shown)."""
        self.worker_stops = worker_stops
        self.state = snap.get("state", self.state)
        self.qty = Decimal(snap.get("qty", "0"))
        self.cash = Decimal(snap.get("cash", "0"))
        entry = snap.get("entry")
        self.avg_price = Decimal(entry["price"]) if entry else None
        self.halted = snap.get("halted")
        pending = snap.get("pending")
        self.pending = {"client_id": pending, "status": "open"} if pending else None
        self.filled = Decimal(snap.get("pending_filled") or "0")
        if self.state == "in_trade" and any(snap.get(k) is not None for k in _LEVELS):
            self.stops = {k: snap.get(k) for k in _ARMED}
        last = snap.get("last_ts")
        if last is not None:
            self.last_bar = {"ts": last, "time": iso_ms(last)}
            self.ts = last

    def apply(self, event: Event, seq: int) -> None:
        self.seq = seq
        update = UPDATES.get(event.__class__)  # one look-up: cheaper than isinstance on every event
        if update is not None:
            update(self, event)

    def _transition(self, event: TransitionEvent) -> None:
        self.state = event.to_state  # a str enum: written as its value (Enum.value costs more than the rest)
        self.ts = event.ts
        self.stops = None if event.stops is None else dict(event.stops)  # armed into in_trade, cleared on leaving

    def _signal(self, event: SignalEvent) -> None:
        """An ``adjust`` in a trade moves the levels it names (as ``Stops.override``)."""
        if event.action == "adjust" and self.stops is not None:
            for key in _LEVELS:
                value = event.detail.get(key)
                if value is not None:
                    self.stops[key] = value

    def _bar(self, event: Bar) -> None:
        self.ts = event.ts
        self.last_bar = {"ts": event.ts, "time": iso_ms(event.ts), "close": event.close}

    def _levels(self) -> dict[str, Any] | None:
        s = self.stops
        if s is None:
            return None
        trailing, best = s["trailing_stop"], s["best"]
        if trailing is not None and self.worker_stops is not None:
            # the best price since entry, read from the worker as it is now (a float it replaces whole)
            best = max(best, self.worker_stops.best) if self.qty > 0 else min(best, self.worker_stops.best)
        level = None if trailing is None else best * (1 - trailing) if self.qty > 0 else best * (1 + trailing)
        return {
            "stop_price": s["stop_price"],
            "take_profit_price": s["take_profit_price"],
            "trailing_stop": trailing,
            "trailing_price": level,
        }

    def _error(self, event: ErrorEvent) -> None:
        if event.ts is not None:
            self.ts = event.ts
        if event.kind == "halted":
            self.halted = event.message

    def _order(self, event: OrderEvent) -> None:
        o = event.order
        self.ts = o.ts
        p = self.pending
        mine = p is not None and p["client_id"] == o.client_id
        if _is_open(event.status):
            if mine and len(p) == 4:  # type: ignore[arg-type]
                p["status"] = event.status  # type: ignore[index]
                return
            if not mine:
                self.filled = _ZERO
            self.pending = {"client_id": o.client_id, "side": o.side, "qty": o.qty, "status": event.status}
        elif mine:
            self.pending = None

    def _fill(self, event: FillEvent) -> None:
        f = event.fill
        self.ts = f.ts
        signed = f.qty if f.side is Side.BUY else -f.qty
        before, after = self.qty, self.qty + signed
        if after == 0:
            self.avg_price = None
        elif before == 0 or (before > 0) != (after > 0):
            self.avg_price = f.price
        elif abs(after) > abs(before) and self.avg_price is not None:
            self.avg_price = (self.avg_price * abs(before) + f.price * f.qty) / abs(after)
        self.qty = after
        self.cash -= (f.qty * f.price if f.side is Side.BUY else -f.qty * f.price) + f.commission
        p = self.pending
        if p is not None and p["client_id"] == f.client_id:
            self.filled += f.qty
            if "qty" in p and self.filled >= Decimal(p["qty"]):
                self.pending = None

    def payload(self, engine_id: str) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "engine": engine_id,
            "symbol": self.symbol,
            "state": self.state,
            "position": str(self.qty),
            "avg_price": None if self.avg_price is None else str(self.avg_price),
            "last_bar": self.last_bar,
            "pending_order": None if self.pending is None else dict(self.pending, filled=str(self.filled)),
            "stops": self._levels(),
            "halted": self.halted,
            "paused": self.paused,
            "seq": self.seq,
            "ts": self.ts,
            "time": iso_ms(self.ts),
        }


# event class -> what it changes in its symbol's status (every event sets ``seq``)
UPDATES: dict[type, Callable[[SymbolStatus, Any], None]] = {
    TransitionEvent: SymbolStatus._transition,
    OrderEvent: SymbolStatus._order,
    FillEvent: SymbolStatus._fill,
    Bar: SymbolStatus._bar,
    ErrorEvent: SymbolStatus._error,
    SignalEvent: SymbolStatus._signal,
}


class EngineFigures:
    """The engine-wide figures of the engine status: cash and equity from the
    symbols' statuses (the fills and last bars published; a position restored
    from the journal counts at its entry price until its first bar), and each kill
    switch's limits and memory, read from the symbols' workers (numbers the
    worker replaces whole, so a read from the sink's thread sees one bar's)."""

    def __init__(self, engine: Any) -> None:
        workers = getattr(engine, "workers", None) or {}
        first = next(iter(workers.values()), None)
        self.start_cash: Decimal | None = first.risk.account.start_cash if first is not None else None
        self.kills = {s: w.kill for s, w in workers.items() if w.kill.enabled}

    def payload(self, statuses: dict[str, SymbolStatus]) -> dict[str, Any]:
        if self.start_cash is None:
            return {}
        cash = self.start_cash + sum((s.cash for s in statuses.values()), _ZERO)
        equity = cash
        for s in statuses.values():
            close = (s.last_bar or {}).get("close")
            if s.qty and close is not None:
                equity += s.qty * Decimal(repr(close))
            elif s.qty and s.avg_price is not None:  # restored from the journal, no bar of this run yet
                equity += s.qty * s.avg_price
        kills = {}
        for symbol, kill in self.kills.items():
            limits, state = kill.risk.limits(symbol), kill.state
            halted = statuses[symbol].halted if symbol in statuses else None
            kills[symbol] = {
                "daily_loss_limit": limits.daily_loss_limit,
                "max_drawdown": limits.max_drawdown,
                "action": kill.action,
                "peak": state.peak,
                "day_start": state.day_start,
                "last": state.last,
                "tripped": halted if halted is not None and " kill switch " in halted else None,
            }
        return {"cash": _money(cash), "equity": _money(equity), "kill_switches": kills}


def _money(value: Decimal) -> str:
    """A decimal string without exponent, to 8 places at most (the price of a bar is a float)."""
    return format(value.quantize(_PLACES).normalize(), "f")
