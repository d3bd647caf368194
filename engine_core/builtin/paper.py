"""The paper broker: fills market and limit orders against bars, with
commission and slippage (``paper_book.py`` holds its orders and matches
them: compiled with the order path).

Market orders fill at the next bar's open (``fill = "next_open"``) or at the
decision bar's close (``fill = "close"``), moved against you by ``slippage``.
A limit order fills on the first later bar whose range reaches its price: at
the open when the bar opens through it, else at the limit (no slippage on a
limit). With a journal bound (live paper trading), every order it accepts and
every fill it makes is written there first, so that after a crash it answers
``order_status`` and ``positions`` exactly as a venue would.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from engine_core.brokers import SimulatedBroker, UpdateCallback
from engine_core.builtin.paper_book import PaperBook
from engine_core.hookspecs import hookimpl
from engine_core.journal import Journal
from engine_core.model import Order
from engine_core.orders import OpenOrder, OrderState
from engine_core.sources import PluginConfig


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
        self.book = PaperBook(config.commission, config.slippage, on_update)

    def bind_journal(self, journal: Journal) -> None:
        """Restore the open orders and fills of an earlier run from the journal."""
        self.book.bind_journal(journal)

    @property
    def in_journal(self) -> bool:
        return self.book.journal is not None  # each order's record is written behind its intent

    def starting_cash(self) -> Decimal:
        return self.config.cash

    def submit(self, order: Order) -> None:
        self.book.submit(order)

    def cancel(self, client_id: str) -> None:
        self.book.cancel(client_id)

    def match(self, symbol: str, ts: int, open_: float, high: float, low: float) -> None:
        self.book.fill_working(symbol, ts, open_, (open_, high, low))

    def fill_market(self, symbol: str, ts: int, price: float) -> None:
        self.book.fill_working(symbol, ts, price, None)

    def order_status(self, client_id: str) -> OrderState | None:
        return self.book.order_status(client_id)

    def open_orders(self) -> list[OpenOrder]:
        return self.book.open_orders()

    def positions(self) -> dict[str, Decimal]:
        return self.book.positions()


@hookimpl
def register_brokers(register: Any) -> None:
    register("paper", PaperBroker)
