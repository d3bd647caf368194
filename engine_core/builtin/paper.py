"""The paper broker: fills market orders against bars, with commission and slippage.

With a journal bound (live paper trading), every order it accepts and every
fill it makes is written there first, so that after a crash it answers
``order_status`` and ``positions`` exactly as a venue would.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from engine_core.brokers import Broker, FillCallback, OrderStatus
from engine_core.hookspecs import hookimpl
from engine_core.journal import Journal
from engine_core.model import Fill, Order, Side
from engine_core.sources import PluginConfig

_KEY = "paper:"


class PaperConfig(PluginConfig):
    cash: Decimal = Field(default=Decimal(100_000), gt=0)
    fill: Literal["next_open", "close"] = "next_open"
    commission: Decimal = Field(default=Decimal(0), ge=0, lt=1)  # fraction of notional
    slippage: Decimal = Field(default=Decimal(0), ge=0, lt=1)  # fraction of price, against you


def to_decimal(value: float) -> Decimal:
    """A float price as the Decimal of its shortest repr (what the data said)."""
    return Decimal(repr(float(value)))


class PaperBroker(Broker):
    Config = PaperConfig
    simulated = True

    def __init__(self, config: PaperConfig, *, on_fill: FillCallback) -> None:
        super().__init__(config, on_fill=on_fill)
        self.fill_at = config.fill
        self._pending: dict[str, dict[str, Order]] = {}
        self._orders: dict[str, dict[str, Any]] = {}  # client id -> record (what order_status answers)
        self._lock = threading.Lock()
        self._journal: Journal | None = None

    def bind_journal(self, journal: Journal) -> None:
        """Restore the open orders and fills of an earlier run from the journal."""
        self._journal = journal
        for key, record in journal.items(_KEY):
            cid = key[len(_KEY) :]
            self._orders[cid] = record
            if record["status"] == "open":
                order = _order_from(cid, record)
                self._pending.setdefault(order.symbol, {})[cid] = order

    def _save(self, cid: str) -> None:
        if self._journal is not None:
            self._journal.put(_KEY + cid, self._orders[cid])

    def starting_cash(self) -> Decimal:
        return self.config.cash

    def submit(self, order: Order) -> None:
        with self._lock:
            if order.client_id in self._orders:
                return  # idempotent: a resend of a known (open, or journaled) order places nothing
            self._orders[order.client_id] = {
                "symbol": order.symbol,
                "side": order.side.value,
                "qty": str(order.qty),
                "ts": order.ts,
                "reason": order.reason,
                "status": "open",
            }
            if self._journal is not None:
                self._save(order.client_id)
            pending = self._pending.get(order.symbol)
            if pending is None:
                pending = self._pending[order.symbol] = {}
            pending[order.client_id] = order

    def cancel(self, client_id: str) -> None:
        with self._lock:
            record = self._orders.get(client_id)
            if record is None or record["status"] != "open":
                return
            record["status"] = "cancelled"
            self._save(client_id)
            self._pending.get(record["symbol"], {}).pop(client_id, None)

    def match(self, symbol: str, ts: int, price: float) -> list[Fill]:
        with self._lock:
            orders = self._pending.pop(symbol, None)
            if not orders:
                return []
            cfg = self.config
            base = to_decimal(price)
            fills = []
            for order in orders.values():
                slip = base * cfg.slippage
                px = base + slip if order.side is Side.BUY else base - slip
                commission = px * order.qty * cfg.commission
                fill = Fill(order.client_id, symbol, order.side, order.qty, px, commission, ts, order.client_id)
                if self._journal is None:
                    del self._orders[order.client_id]  # a backtest keeps no history of filled orders
                else:
                    record = self._orders[order.client_id]
                    record.update(status="filled", price=str(px), commission=str(commission), fill_ts=ts)
                    self._save(order.client_id)  # the fill exists once it is journaled here
                fills.append(fill)
            return fills

    def order_status(self, client_id: str) -> OrderStatus | None:
        with self._lock:
            record = self._orders.get(client_id)
        if record is None:
            return None
        if record["status"] != "filled":
            return OrderStatus(record["status"], Decimal(0))
        qty = Decimal(record["qty"])
        fill = Fill(
            client_id,
            record["symbol"],
            Side(record["side"]),
            qty,
            Decimal(record["price"]),
            Decimal(record["commission"]),
            int(record["fill_ts"]),
            client_id,
        )
        return OrderStatus("filled", qty, (fill,))

    def open_orders(self) -> list[Order]:
        with self._lock:
            return [o for orders in self._pending.values() for o in orders.values()]

    def positions(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        with self._lock:
            for record in self._orders.values():
                if record["status"] == "filled":
                    qty = Decimal(record["qty"])
                    signed = qty if record["side"] == "buy" else -qty
                    out[record["symbol"]] = out.get(record["symbol"], Decimal(0)) + signed
        return out


def _order_from(client_id: str, record: dict[str, Any]) -> Order:
    return Order(
        client_id, record["symbol"], Side(record["side"]), Decimal(record["qty"]), int(record["ts"]), record["reason"]
    )


@hookimpl
def register_brokers(register: Any) -> None:
    register("paper", PaperBroker)
