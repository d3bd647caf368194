"""The broker contract.

A broker takes orders and reports fills. Simulated brokers (``simulated =
True``) fill against bars: the symbol's worker calls ``match`` at the price
point the broker's ``fill_at`` names (the next bar's open, or the decision
bar's close), which keeps backtests deterministic. Venue brokers report fills
asynchronously through the ``on_fill`` callback, from any thread.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from engine_core.model import Fill, Order
from engine_core.sources import PluginConfig

if TYPE_CHECKING:
    from engine_core.journal import Journal

FillCallback = Callable[[Fill], None]


class OrderStatus(NamedTuple):
    """What a broker knows of one order, looked up by client id."""

    status: str  # open | filled | cancelled | rejected
    filled_qty: Decimal
    fills: tuple[Fill, ...] = ()


class Broker(abc.ABC):
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    simulated: ClassVar[bool] = False
    fill_at: str = "next_open"  # simulated brokers: "next_open" or "close"

    def __init__(self, config: Any, *, on_fill: FillCallback) -> None:
        self.config = config
        self.on_fill = on_fill

    def connect(self) -> None:
        """Open sessions; called before any order."""

    def close(self) -> None:
        """Close sessions."""

    @abc.abstractmethod
    def starting_cash(self) -> Decimal:
        """Cash at the start of the run (the account's for a venue)."""

    @abc.abstractmethod
    def submit(self, order: Order) -> None:
        """Send an order. Must be idempotent on ``order.client_id``: sending
        the same client id twice never places two orders. Raises BrokerError
        when refused, BrokerTimeout when sent but unanswered."""

    @abc.abstractmethod
    def order_status(self, client_id: str) -> OrderStatus | None:
        """The broker's view of an order, or None when it has no such order
        (it never arrived). Used after a timeout and after a restart."""

    def cancel(self, client_id: str) -> None:
        """Cancel an open order."""

    def match(self, symbol: str, ts: int, price: float) -> list[Fill]:
        """Simulated brokers: fill the symbol's pending orders at ``price``."""
        return []

    def open_orders(self) -> list[Order]:
        """Orders the broker holds open (for reconciliation after a restart)."""
        return []

    def positions(self) -> dict[str, Decimal]:
        """Net position per symbol as the broker sees it."""
        return {}

    def bind_journal(self, journal: Journal) -> None:
        """Simulated brokers keep their own state in the engine's journal so
        that a paper run survives a restart like a real one; venues ignore it."""
