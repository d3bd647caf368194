"""The execution engine: the one path every order takes to a broker.

It numbers orders with deterministic client ids (engine id, symbol,
sequence), so that a retry or a restart never places the same order twice,
emits the order events, and hands the order to the broker.
"""

from __future__ import annotations

import threading
from decimal import Decimal

from engine_core.brokers import Broker
from engine_core.errors import BrokerError
from engine_core.events import EventBus
from engine_core.model import Order, OrderEvent, Side


class ExecutionEngine:
    def __init__(self, engine_id: str, broker: Broker, bus: EventBus) -> None:
        self.engine_id = engine_id
        self.broker = broker
        self.bus = bus
        self._seq: dict[str, int] = {}
        self._lock = threading.Lock()

    def client_id(self, symbol: str) -> str:
        with self._lock:
            seq = self._seq.get(symbol, 0) + 1
            self._seq[symbol] = seq
        return f"{self.engine_id}-{symbol}-{seq}"

    def submit(self, symbol: str, side: Side, qty: Decimal, ts: int, reason: str) -> Order:
        """Send a market order; raises BrokerError (after a ``rejected`` event)."""
        order = Order(self.client_id(symbol), symbol, side, qty, ts, reason)
        self.bus.emit(OrderEvent(order, "submitted"))
        try:
            self.broker.submit(order)
        except BrokerError as err:
            self.bus.emit(OrderEvent(order, "rejected", str(err)))
            raise
        return order
