"""The broker contract, and the base of simulated brokers.

A broker takes orders and reports what happens to them as
:class:`~engine_core.orders.OrderUpdate` values through the one
``on_update`` callback it is built with. The callback may be called from any
thread (a venue's websocket thread, a timer) and never blocks: the engine
routes each update to its symbol's worker, which applies it in order with
everything else that symbol does.

Venue brokers (Binance, Alpaca) implement :class:`Broker`:

==================  =========  ===============================================
method              required   what it does
==================  =========  ===============================================
``connect``                    open sessions, sync clocks, read filters; called
                               before anything else, and before
                               ``starting_cash``
``starting_cash``   yes        the account's cash in the quote currency
``submit``          yes        send an order; idempotent on ``client_id``;
                               may hold it back for the venue's rate limit
                               (returns ``OrderStatus.INTENT``)
``cancel``          yes        ask the venue to cancel; the result comes as an
                               update (cancel, or the fill that raced it)
``order_status``    yes        the venue's view of one order by client id
                               (``None``: it never arrived)
``open_orders``                every order working at the venue for the
                               engine's symbols, whoever placed it
                               (reconciliation at start)
``positions``                  net position per symbol (reconciliation)
``round_qty``                  a quantity rounded down to what the venue can
                               trade (lot step); exits sell what is held
``describe_account``           one line naming the venue and the account (real
                               money or test), printed when a live run starts
``stop_sending``               at stop: never send what is held back, give
                               orders on the wire ``timeout`` seconds
``close``                      release sessions
==================  =========  ===============================================

Simulated brokers (paper, and test doubles) fill against bars instead: they
subclass :class:`SimulatedBroker`, and the symbol's worker calls ``match``
with each bar at the point the broker's ``fill_at`` names, which keeps a
backtest deterministic.

``simulated`` is part of the contract: a backtest, an optimisation and a
replay run only brokers whose class says ``simulated = True``; a venue
broker is refused there before it is built (``validate.venue_refusal``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from engine_core.model import Order
from engine_core.orders import OpenOrder, OrderState, OrderStatus, OrderUpdate
from engine_core.sources import PluginConfig

if TYPE_CHECKING:
    from engine_core.journal import Journal

UpdateCallback = Callable[[OrderUpdate], None]


class Broker(abc.ABC):
    """A venue's order interface. ``Config`` is the model of its ``[broker]``
    table (besides ``type``)."""

    Config: ClassVar[type[PluginConfig]] = PluginConfig
    simulated: ClassVar[bool] = False
    supports_brackets: ClassVar[bool] = False  # attaches stop/take-profit legs to an entry at the venue

    def __init__(self, config: Any, *, on_update: UpdateCallback, symbols: Sequence[str] = ()) -> None:
        """``symbols`` are the engine's symbols: a venue reads their trading
        rules at ``connect`` and scopes reconciliation to them."""
        self.config = config
        self.on_update = on_update
        self.symbols = list(symbols)

    def describe_account(self) -> str | None:
        """One line naming the venue and the account this broker trades: the
        endpoint, whether it is real money, at most the first characters of a
        key id (:func:`key_hint`), never a secret. Read from the config alone
        (nothing is contacted); a live run prints it before it connects."""
        return None

    def connect(self) -> None:
        """Open sessions; called before any other method but ``bind_journal``."""

    def close(self) -> None:
        """Close sessions."""

    @abc.abstractmethod
    def starting_cash(self) -> Decimal:
        """Cash at the start of the run (the account's for a venue), read after ``connect``."""

    @abc.abstractmethod
    def submit(self, order: Order) -> OrderStatus | None:
        """Send an order. Must be idempotent on ``order.client_id``: sending
        the same client id twice never places two orders. Raises BrokerError
        when refused (nothing placed), BrokerTimeout when sent but unanswered.
        What happens next arrives through ``on_update``.

        A venue broker whose rate limit would make the send wait returns
        ``OrderStatus.INTENT`` at once instead of waiting (the engine's thread
        goes on with its bars): it sends the order when the limit allows and
        reports it (``UpdateKind.SENT``, then its answer; a refusal as a
        ``REJECT``; no answer as ``UNKNOWN``). None: sent."""

    @abc.abstractmethod
    def cancel(self, client_id: str) -> None:
        """Ask for an open order to be cancelled. Idempotent; the outcome
        arrives through ``on_update`` (a cancel, or fills that came first)."""

    @abc.abstractmethod
    def order_status(self, client_id: str) -> OrderState | None:
        """The broker's view of an order with its fills, or None when it has
        no such order (it never arrived). Used after a timeout and a restart."""

    def open_orders(self) -> list[OpenOrder]:
        """Every order working at the venue for the engine's symbols, the
        engine's own and any other's (placed by hand, by another program), as
        the venue lists them: asked once at start, where reconciliation
        adopts an order of this engine that its journal does not have open
        (``recovery.reconcile``) and warns of the others, never touching them."""
        return []

    def positions(self) -> dict[str, Decimal]:
        """Net position per symbol as the broker sees it."""
        return {}

    def round_qty(self, symbol: str, qty: Decimal) -> Decimal:
        """``qty`` rounded down to what the venue trades (its lot step)."""
        return qty

    def stop_sending(self, timeout: float) -> None:
        """The engine stops: send nothing more. Orders held back (not sent)
        are reported ``lost`` (never sent); orders on the wire get up to
        ``timeout`` seconds to be answered or found, else are reported
        ``unknown`` (the next start asks for them). Called before the
        workers end, so they journal what it reports."""

    def bind_journal(self, journal: Journal) -> None:
        """Simulated brokers keep their own state in the engine's journal so
        that a paper run survives a restart like a real one; venues ignore it."""

    @property
    def in_journal(self) -> bool:
        """Whether this broker's orders are kept in the engine's journal
        (``bind_journal``), each written after the engine's intent for it: a
        crash then keeps the intent without the order, never the order
        without its intent, and the intent need not be on disk before the
        send. A venue's orders are not: False."""
        return False


def key_hint(key: str) -> str:
    """What a line may show of an API key id: its first few characters (a
    quarter of it, at most 4), enough to tell two accounts apart."""
    return key[: min(4, len(key) // 4)] + "..."


class SimulatedBroker(Broker):
    """A broker that fills against the symbol's bars, driven by its worker.

    ``fill_at`` is ``"next_open"`` (a market order fills at the open of the
    bar after the decision) or ``"close"`` (at the decision bar's close).
    Limit orders fill when a bar's range reaches the limit: at the open when
    it opens through the limit, else at the limit. It reports through
    ``on_update`` like a venue; the worker calls ``match``, ``fill_market``
    and ``cancel`` at the bar's point, and an update reported from inside
    such a call is applied there, on the worker's thread (a backtest books
    every fill at its bar). Report after releasing any lock of your own:
    the worker may send the next order from a fill.
    """

    simulated: ClassVar[bool] = True
    fill_at: str = "next_open"

    @abc.abstractmethod
    def match(self, symbol: str, ts: int, open_: float, high: float, low: float) -> None:
        """Fill the symbol's working orders placed before ``ts`` against a bar
        (market orders at ``open_``; limits where the range reaches them) and
        report the fills through ``on_update``."""

    @abc.abstractmethod
    def fill_market(self, symbol: str, ts: int, price: float) -> None:
        """Fill the symbol's working market orders at ``price`` now: the
        decision bar's close (``fill_at = "close"``), or the level of a stop
        the bar touched; reported through ``on_update``."""

    @abc.abstractmethod
    def cancel(self, client_id: str) -> None:
        """Cancel at once and report it through ``on_update`` (nothing if it was not open)."""
