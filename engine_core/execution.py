"""The execution engine: the one path every order takes to a broker.

It numbers orders with deterministic client ids (engine id, symbol,
sequence), journals the intent before sending, and resolves an unanswered
send by asking the broker for the client id, so that neither a retry nor a
restart ever places the same order twice.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from engine_core.brokers import Broker, OrderStatus
from engine_core.errors import BrokerError, BrokerTimeout, RiskError
from engine_core.events import EventBus
from engine_core.journal import Journal
from engine_core.model import Order, OrderEvent, Side
from engine_core.risk import Account, RiskManager, RiskSection

STATUS_RETRIES = 3


class ExecutionEngine:
    def __init__(
        self,
        engine_id: str,
        broker: Broker,
        bus: EventBus,
        journal: Journal | None = None,
        risk: RiskManager | None = None,
    ) -> None:
        self.engine_id = engine_id
        self.broker = broker
        self.bus = bus
        self.journal = journal
        self.risk = risk or RiskManager(RiskSection(), Account(broker.starting_cash()))
        self._seq: dict[str, int] = {}
        self._lock = threading.Lock()
        if journal is not None:
            for row in journal.orders():
                seq = int(row["client_id"].rsplit("-", 1)[1])
                self._seq[row["symbol"]] = max(self._seq.get(row["symbol"], 0), seq)

    def client_id(self, symbol: str) -> str:
        with self._lock:
            seq = self._seq.get(symbol, 0) + 1
            self._seq[symbol] = seq
        return f"{self.engine_id}-{symbol}-{seq}"

    def _record(self, order: Order, status: str, detail: str = "") -> None:
        if self.journal is not None:
            self.journal.order(order, status, detail=detail)
        if self.bus.listening:
            self.bus.emit(OrderEvent(order, status, detail))

    def submit(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        ts: int,
        reason: str,
        *,
        price: float,
        position: Decimal,
        reducing: bool,
    ) -> tuple[Order, OrderStatus | None]:
        """Check a market order against the risk rules and send it.

        ``price`` is the last price (for notional limits), ``position`` the
        symbol's position before the order. Returns the order and, when the
        send had to be resolved by client id, what the broker said of it (its
        fills may need booking). Raises RiskError when a rule refused it,
        BrokerError when the broker refused it or it was not placed."""
        order = Order(self.client_id(symbol), symbol, side, qty, ts, reason)
        try:
            self.risk.check(symbol, side, qty, price, position, ts, reducing)
        except RiskError as err:
            self._record(order, "refused", f"{err.rule}: {err}")
            raise
        self._record(order, "intent")
        try:
            self.broker.submit(order)
        except BrokerTimeout as err:
            status = self.resolve(order, str(err))
            self.risk.account.order_opened()
            return order, status
        except BrokerError as err:
            self._record(order, "rejected", str(err))
            raise
        self._record(order, "submitted")
        self.risk.account.order_opened()
        return order, None

    def order_closed(self) -> None:
        """An order left the book (filled, cancelled or lost)."""
        self.risk.account.order_closed()

    def resolve(self, order: Order, why: str) -> OrderStatus:
        """Ask the broker what became of an order whose send went unanswered."""
        self._record(order, "unknown", why)
        status = self.lookup(order.client_id)
        if status is None:
            self._record(order, "lost", f"not placed: the broker has no order {order.client_id} ({why}); not resent")
            raise BrokerError(f"order {order.client_id} was not placed ({why}); it is not resent")
        self._record(order, "acknowledged" if status.status == "open" else status.status)
        return status

    def lookup(self, client_id: str) -> OrderStatus | None:
        """``broker.order_status`` with a few retries on transient errors."""
        for attempt in range(STATUS_RETRIES):
            try:
                return self.broker.order_status(client_id)
            except BrokerError:
                if attempt == STATUS_RETRIES - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
        return None  # pragma: no cover - the loop returns or raises
