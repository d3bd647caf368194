"""The paper broker: fills market and limit orders against bars, with
commission and slippage.

Market orders fill at the next bar's open (``fill = "next_open"``) or at the
decision bar's close (``fill = "close"``), moved against you by ``slippage``.
A limit order fills on the first later bar whose range reaches its price: at
the open when the bar opens through it, else at the limit (no slippage on a
limit). With a journal bound (live paper trading), every order it accepts and
every fill it makes is written there first, so that after a crash it answers
``order_status`` and ``positions`` exactly as a venue would.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from engine_core.brokers import SimulatedBroker, UpdateCallback
from engine_core.hookspecs import hookimpl
from engine_core.journal import Journal, order_from_row
from engine_core.model import BUY, Fill, Order, OrderType, Side, to_decimal
from engine_core.orders import OpenOrder, OrderState, OrderStatus, OrderUpdate, UpdateKind
from engine_core.sources import PluginConfig

_KEY = "paper:"
# A record's status is an OrderStatus value; journals written before it said "open".
_WORKING, _CANCELLED, _FILLED = OrderStatus.ACCEPTED.value, OrderStatus.CANCELLED.value, OrderStatus.FILLED.value
_OPEN = {"status": _WORKING}  # a backtest's record of a working order (shared, never changed)
_ZERO = Decimal(0)
# Enum members read once: on Python 3.11 each ``OrderType.X`` costs a metaclass lookup.
_MARKET, _FILL, _CANCEL = OrderType.MARKET, UpdateKind.FILL, UpdateKind.CANCEL


class PaperConfig(PluginConfig):
    cash: Decimal = Field(default=Decimal(100_000), gt=0)
    fill: Literal["next_open", "close"] = "next_open"
    commission: Decimal = Field(default=Decimal(0), ge=0, lt=1)  # fraction of notional
    slippage: Decimal = Field(default=Decimal(0), ge=0, lt=1)  # fraction of price, against you


class PaperBroker(SimulatedBroker):
    Config = PaperConfig

    def __init__(self, config: PaperConfig, *, on_update: UpdateCallback, symbols: Sequence[str] = ()) -> None:
        super().__init__(config, on_update=on_update, symbols=symbols)
        self.fill_at = config.fill
        self._working: dict[str, dict[str, Order]] = {}  # symbol -> client id -> order
        self._orders: dict[str, dict[str, Any]] = {}  # client id -> record (what order_status answers)
        self._lock = threading.Lock()
        self._journal: Journal | None = None

    def bind_journal(self, journal: Journal) -> None:
        """Restore the open orders and fills of an earlier run from the journal."""
        self._journal = journal
        for key, record in journal.items(_KEY):
            cid = key[len(_KEY) :]
            self._orders[cid] = record
            if record["status"] == "open":  # an older journal's word for accepted
                record["status"] = _WORKING
            if record["status"] == _WORKING:
                self._working.setdefault(record["symbol"], {})[cid] = order_from_row({"client_id": cid, **record})

    @property
    def in_journal(self) -> bool:
        return self._journal is not None  # each order's record is written behind its intent (``_save``)

    def _save(self, cid: str) -> None:
        if self._journal is not None:
            # the worker's commit right after (the fill, or the next intent) syncs it, and
            # it is held with the symbol's other writes: a power loss or a kill before
            # it loses the order or fill at "the venue" and in the engine alike, and a
            # restart finds them consistent
            record = self._orders[cid]
            self._journal.put(_KEY + cid, record, synced=False, symbol=record["symbol"])

    def starting_cash(self) -> Decimal:
        return self.config.cash

    def submit(self, order: Order) -> None:
        with self._lock:
            if order.client_id in self._orders:
                return  # idempotent: a resend of a known (open, or journaled) order places nothing
            working = self._working.get(order.symbol)
            if working is None:
                working = self._working[order.symbol] = {}
            if self._journal is None:  # a backtest: the working order is all there is to know
                if order.client_id not in working:
                    working[order.client_id] = order
                    self._orders[order.client_id] = _OPEN
                return
            self._orders[order.client_id] = {
                "symbol": order.symbol,
                "side": order.side._value_,  # (no descriptor call: written per order)
                "qty": str(order.qty),
                "ts": order.ts,
                "reason": order.reason,
                "type": order.type._value_,
                "price": None if order.price is None else str(order.price),
                "tif": order.tif._value_,
                "status": _WORKING,
            }
            self._save(order.client_id)
            working[order.client_id] = order

    def cancel(self, client_id: str) -> None:
        with self._lock:
            record = self._orders.get(client_id)
            if record is None or record["status"] != _WORKING:
                return
            order = next(o for w in self._working.values() for cid, o in w.items() if cid == client_id)
            del self._working[order.symbol][client_id]
            if self._journal is None:
                del self._orders[client_id]
            else:
                record["status"] = _CANCELLED
                self._save(client_id)
        self.on_update(OrderUpdate(_CANCEL, client_id, order.symbol, order.ts))

    def match(self, symbol: str, ts: int, open_: float, high: float, low: float) -> None:
        self._fill_working(symbol, ts, open_, (open_, high, low))

    def fill_market(self, symbol: str, ts: int, price: float) -> None:
        self._fill_working(symbol, ts, price, None)

    def _fill_working(self, symbol: str, ts: int, market: float, bar: tuple[float, float, float] | None) -> None:
        """Fill each working order of ``symbol``: a market order at ``market``
        (slipped), a limit order where ``bar`` (open, high, low) reaches it.
        With ``bar`` (``match``), an order placed on this bar fills from the
        next one; without (``fill_market``), market orders only. The fills
        are reported after the lock (the worker may send from a fill)."""
        with self._lock:
            working = self._working.get(symbol)
            if not working:
                return
            out = []
            base: Decimal | None = None  # the market price as a Decimal, made once
            for cid, order in list(working.items()):
                if order.type is _MARKET:
                    if bar is not None and order.ts >= ts:
                        continue  # placed on this bar: it fills from the next one
                    if base is None:
                        base = to_decimal(market)
                    px = self._slipped(base, order.side) if self.config.slippage else base
                elif bar is None or order.ts >= ts:
                    continue
                else:
                    limit_px = self._limit_fill(order, *bar)
                    if limit_px is None:
                        continue
                    px = limit_px
                del working[cid]
                out.append(self._fill(order, px, ts))
        for update in out:
            self.on_update(update)

    @staticmethod
    def _limit_fill(order: Order, open_: float, high: float, low: float) -> Decimal | None:
        limit = order.price
        assert limit is not None
        if order.side is BUY:
            if low > limit:
                return None
            return min(to_decimal(open_), limit)
        if high < limit:
            return None
        return max(to_decimal(open_), limit)

    def _slipped(self, base: Decimal, side: Side) -> Decimal:
        """``base`` moved against ``side`` by the (nonzero) slippage."""
        slip = base * self.config.slippage
        return base + slip if side is BUY else base - slip

    def _fill(self, order: Order, px: Decimal, ts: int) -> OrderUpdate:
        rate = self.config.commission
        commission = px * order.qty * rate if rate else _ZERO
        fill = Fill(order.client_id, order.symbol, order.side, order.qty, px, commission, ts, order.client_id)
        if self._journal is None:
            del self._orders[order.client_id]  # a backtest keeps no history of filled orders
        else:
            record = self._orders[order.client_id]
            record.update(status=_FILLED, fill_price=str(px), commission=str(commission), fill_ts=ts)
            self._save(order.client_id)  # the fill exists once it is journaled here
        return OrderUpdate(_FILL, order.client_id, order.symbol, ts, fill)

    def order_status(self, client_id: str) -> OrderState | None:
        with self._lock:
            record = self._orders.get(client_id)
        if record is None:
            return None
        if record["status"] != _FILLED:
            return OrderState(OrderStatus(record["status"]), Decimal(0))
        qty = Decimal(record["qty"])
        fill = Fill(
            client_id,
            record["symbol"],
            Side(record["side"]),
            qty,
            Decimal(record["fill_price"] if "fill_price" in record else record["price"]),  # older journals: "price"
            Decimal(record["commission"]),
            int(record["fill_ts"]),
            client_id,
        )
        return OrderState(OrderStatus.FILLED, qty, (fill,))

    def open_orders(self) -> list[OpenOrder]:
        with self._lock:
            return [OpenOrder(o, "") for orders in self._working.values() for o in orders.values()]

    def positions(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        with self._lock:
            for record in self._orders.values():
                if record["status"] == _FILLED:
                    qty = Decimal(record["qty"])
                    signed = qty if record["side"] == "buy" else -qty
                    out[record["symbol"]] = out.get(record["symbol"], Decimal(0)) + signed
        return out


@hookimpl
def register_brokers(register: Any) -> None:
    register("paper", PaperBroker)
