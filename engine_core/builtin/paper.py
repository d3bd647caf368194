"""The paper broker: fills market orders against bars, with commission and slippage."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from engine_core.brokers import Broker, FillCallback
from engine_core.hookspecs import hookimpl
from engine_core.model import Fill, Order, Side
from engine_core.sources import PluginConfig


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
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def starting_cash(self) -> Decimal:
        return self.config.cash

    def submit(self, order: Order) -> None:
        with self._lock:
            if order.client_id in self._seen:
                return  # idempotent: a resend of a known order places nothing
            self._seen.add(order.client_id)
            self._pending.setdefault(order.symbol, {})[order.client_id] = order

    def cancel(self, client_id: str) -> None:
        with self._lock:
            for orders in self._pending.values():
                orders.pop(client_id, None)

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
            fills.append(Fill(order.client_id, symbol, order.side, order.qty, px, commission, ts))
        return fills

    def open_orders(self) -> list[Order]:
        with self._lock:
            return [o for orders in self._pending.values() for o in orders.values()]


@hookimpl
def register_brokers(register: Any) -> None:
    register("paper", PaperBroker)
