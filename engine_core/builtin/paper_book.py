"""The paper broker's book: its working orders, matched against bars, and the
record of each order it took (what ``order_status`` and ``positions``
answer). Compiled with the order path (``kernel.py``): a backtest's every
order and fill goes through it. ``paper.py`` is the broker around it: its
config and the broker contract.

A market order fills at the price it is matched at (the next bar's open, or
the price ``fill_market`` gives), moved against it by ``slippage``; a limit
order on the first later bar whose range reaches it: at the open when the bar
opens through it, else at the limit (no slippage on a limit). With a journal
(live paper trading), every order it takes and every fill it makes is
written there, behind the engine's intent for it, so that after a crash it
answers as a venue would. Its memory holds the orders still working, the
client ids of the ones settled, and the position each symbol's fills add up
to: a settled order's record is in the journal only (``order_status`` reads
it there), so that weeks of paper trading do not pile up in memory; a
start reads every record once and keeps only that.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from engine_core.journal import Journal, order_from_row
from engine_core.model import BUY, Fill, Order, OrderType, Side
from engine_core.orders import OpenOrder, OrderState, OrderStatus, OrderUpdate, UpdateKind

KEY = "paper:"  # the journal's key of an order's record: KEY + client id
# A record's status is an OrderStatus value; journals written before it said "open".
_WORKING, _CANCELLED, _FILLED = OrderStatus.ACCEPTED.value, OrderStatus.CANCELLED.value, OrderStatus.FILLED.value
_OPEN = {"status": _WORKING}  # a backtest's record of a working order (shared, never changed)
_ZERO = Decimal(0)
# Enum members read once: on Python 3.11 each ``OrderType.X`` costs a metaclass lookup.
_MARKET, _FILL, _CANCEL = OrderType.MARKET, UpdateKind.FILL, UpdateKind.CANCEL


class PaperBook:
    """The orders of one paper broker; ``report`` is its ``on_update``."""

    def __init__(self, commission: Decimal, slippage: Decimal, report: Callable[[OrderUpdate], None]) -> None:
        self.commission = commission
        self.slippage = slippage
        self.report = report
        self.working: dict[str, dict[str, Order]] = {}  # symbol -> client id -> order
        # client id -> record of a working order (what order_status answers);
        # with a journal, a settled one's record is there, and its id here:
        self.records: dict[str, dict[str, Any]] = {}
        self.settled: set[str] = set()
        self.held: dict[str, Decimal] = {}  # symbol -> the position its fills add up to (with a journal)
        self.lock = threading.Lock()
        self.journal: Journal | None = None

    def bind_journal(self, journal: Journal) -> None:
        """Restore the working orders, the settled ids and the positions of
        an earlier run from the journal."""
        self.journal = journal
        for key, record in journal.items(KEY):
            cid = key[len(KEY) :]
            status = record["status"]
            if status == "open" or status == _WORKING:  # "open": an older journal's word for accepted
                record["status"] = _WORKING
                self.records[cid] = record
                self.working.setdefault(record["symbol"], {})[cid] = order_from_row({"client_id": cid, **record})
                continue
            self.settled.add(cid)
            if status == _FILLED:
                self._hold(record["symbol"], record["side"], Decimal(record["qty"]))

    def _hold(self, symbol: str, side: str, qty: Decimal) -> None:
        self.held[symbol] = self.held.get(symbol, _ZERO) + (qty if side == "buy" else -qty)

    def _save(self, cid: str) -> None:
        journal = self.journal
        if journal is not None:
            # the worker's commit right after (the fill, or the next intent) syncs it, and
            # it is held with the symbol's other writes: a power loss or a kill before
            # it loses the order or fill at "the venue" and in the engine alike, and a
            # restart finds them consistent
            record = self.records[cid]
            journal.put(KEY + cid, record, synced=False, symbol=record["symbol"])

    def submit(self, order: Order) -> None:
        cid = order.client_id
        with self.lock:
            if cid in self.records or cid in self.settled:
                return  # idempotent: a resend of a known (working, or settled) order places nothing
            working = self.working.get(order.symbol)
            if working is None:
                working = self.working[order.symbol] = {}
            if self.journal is None:  # a backtest: the working order is all there is to know
                if cid not in working:
                    working[cid] = order
                    self.records[cid] = _OPEN
                return
            self.records[cid] = {
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
            self._save(cid)
            working[cid] = order

    def cancel(self, client_id: str) -> None:
        with self.lock:
            record = self.records.get(client_id)
            if record is None or record["status"] != _WORKING:
                return
            order = next(o for w in self.working.values() for cid, o in w.items() if cid == client_id)
            del self.working[order.symbol][client_id]
            if self.journal is not None:
                record["status"] = _CANCELLED
                self._save(client_id)
                self.settled.add(client_id)
            del self.records[client_id]
        self.report(tuple.__new__(OrderUpdate, (_CANCEL, client_id, order.symbol, order.ts, None, "", "", "")))

    def fill_working(self, symbol: str, ts: int, market: float, bar: tuple[float, float, float] | None) -> None:
        """Fill each working order of ``symbol``: a market order at ``market``
        (slipped), a limit order where ``bar`` (open, high, low) reaches it.
        With ``bar`` (``match``), an order placed on this bar fills from the
        next one; without (``fill_market``), market orders only. The fills
        are reported after the lock (the worker may send from a fill)."""
        out: list[OrderUpdate] = []
        with self.lock:
            working = self.working.get(symbol)
            if not working:
                return
            base: Decimal | None = None  # the market price as a Decimal, made once
            for cid, order in list(working.items()):
                if order.type is _MARKET:
                    if bar is not None and order.ts >= ts:
                        continue  # placed on this bar: it fills from the next one
                    if base is None:
                        base = Decimal(repr(float(market)))  # (model.to_decimal, inline)
                    px = self._slipped(base, order.side) if self.slippage else base
                elif bar is None or order.ts >= ts:
                    continue
                else:
                    limit_px = _limit_fill(order, bar[0], bar[1], bar[2])
                    if limit_px is None:
                        continue
                    px = limit_px
                del working[cid]
                out.append(self._fill(order, px, ts))
        for update in out:
            self.report(update)

    def _slipped(self, base: Decimal, side: Side) -> Decimal:
        """``base`` moved against ``side`` by the (nonzero) slippage."""
        slip = base * self.slippage
        return base + slip if side is BUY else base - slip

    def _fill(self, order: Order, px: Decimal, ts: int) -> OrderUpdate:
        rate = self.commission
        cid = order.client_id
        commission = px * order.qty * rate if rate else _ZERO
        # (``tuple.__new__``: the NamedTuple's own ``__new__`` is a Python function, a frame each)
        fill = tuple.__new__(Fill, (cid, order.symbol, order.side, order.qty, px, commission, ts, cid, _ZERO))
        if self.journal is not None:
            record = self.records[cid]
            record.update(status=_FILLED, fill_price=str(px), commission=str(commission), fill_ts=ts)
            self._save(cid)  # the fill exists once it is journaled here
            self.settled.add(cid)
            self._hold(order.symbol, record["side"], order.qty)
        del self.records[cid]  # the journal has it (a backtest keeps no history of filled orders)
        return tuple.__new__(OrderUpdate, (_FILL, cid, order.symbol, ts, fill, "", "", ""))

    def order_status(self, client_id: str) -> OrderState | None:
        with self.lock:
            record = self.records.get(client_id)
            journal = self.journal if client_id in self.settled else None
        if journal is not None:
            record = journal.get(KEY + client_id)
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
        with self.lock:
            return [OpenOrder(o, "") for orders in self.working.values() for o in orders.values()]

    def positions(self) -> dict[str, Decimal]:
        """What the fills of the journaled run add up to, per symbol."""
        with self.lock:
            return dict(self.held)


def _limit_fill(order: Order, open_: float, high: float, low: float) -> Decimal | None:
    limit = order.price
    assert limit is not None
    if order.side is BUY:
        if low > limit:
            return None
        return min(Decimal(repr(float(open_))), limit)
    if high < limit:
        return None
    return max(Decimal(repr(float(open_))), limit)
