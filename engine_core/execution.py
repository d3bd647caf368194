"""The execution engine: the one path every order takes to a broker.

It numbers orders with deterministic client ids (engine id, symbol,
sequence: ``orders.make_client_id``), checks them against the risk rules,
journals the intent before sending, and resolves an unanswered send by
asking the broker for the client id, so that neither a retry nor a restart
ever places the same order twice. Every status it records is journaled and
emitted as an ``OrderEvent``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal

from engine_core import outbox
from engine_core.brokers import Broker
from engine_core.errors import BrokerError, BrokerTimeout, OrderLost, RiskError, error_text
from engine_core.events import EventBus
from engine_core.journal import Journal
from engine_core.model import ErrorEvent, Order, OrderEvent
from engine_core.orders import OrderState, OrderStatus, client_id_head, client_id_prefix, parse_client_id
from engine_core.risk import RiskManager

STATUS_RETRIES = 3
# read once: on Python 3.11 each ``OrderStatus.X`` costs an enum metaclass lookup
_INTENT, _SUBMITTED = OrderStatus.INTENT, OrderStatus.SUBMITTED
HELD = OrderState(_INTENT, Decimal(0))  # held back by the broker for its rate limit: not sent yet
SYNCING = OrderState(_INTENT, Decimal(0))  # its intent on its way to the disk: sent at its worker's next turn
NEVER_SENT = "never sent: the engine stopped before its intent was on disk"


class ExecutionEngine:
    def __init__(
        self,
        engine_id: str,
        broker: Broker,
        bus: EventBus,
        journal: Journal | None,
        risk: RiskManager,
        symbols: Sequence[str] = (),
        stopping: threading.Event | None = None,
    ) -> None:
        self.broker = broker
        self.stopping = stopping  # set: the engine is stopping, nothing more is sent
        self.bus = bus
        self.journal = journal
        self.risk = risk
        self.prefix = client_id_prefix(engine_id, tuple(symbols))
        self._seq: dict[str, int] = {}  # each symbol's entry is only touched by its own worker
        self._heads: dict[str, str] = {}  # "<prefix>-<symbol>-", checked once per symbol
        self._count_orders = risk.section.max_open_orders is not None
        # an order takes a place at its check that its end gives back (``RiskManager.check``)
        self._takes_place = self._count_orders or risk.section.max_total_notional is not None
        self._told = outbox.wanted(journal, bus)  # a record is kept or heard (fixed for the run): asked once
        # live on a venue, with the journal: an order's step does not wait for its intent's
        # fsync; the order is sent at its worker's turn once the intent is on disk (set by
        # the runner: the workers take turns; ``submit``'s ``later``)
        self.sends_later = False
        if journal is not None:
            for symbol, client_id in journal.client_ids():
                self.taken(symbol, client_id)

    @property
    def stopped(self) -> bool:
        """The engine is stopping: nothing more is sent."""
        return self.stopping is not None and self.stopping.is_set()

    def taken(self, symbol: str, client_id: str) -> None:
        """A client id of the symbol in use (journaled, or adopted at a restart): the next one follows it."""
        _, seq = parse_client_id(client_id)
        self._seq[symbol] = max(self._seq.get(symbol, 0), seq)

    def client_id(self, symbol: str) -> str:
        seq = self._seq.get(symbol, 0) + 1
        self._seq[symbol] = seq
        head = self._heads.get(symbol)
        if head is None:
            head = self._heads[symbol] = client_id_head(self.prefix, symbol)
        return f"{head}{seq}"

    def record(
        self,
        order: Order,
        status: OrderStatus,
        detail: str = "",
        venue_id: str = "",
        then: Callable[[], None] | None = None,
    ) -> None:
        """Journal an order's new status and emit it: one record for both
        (``then``: an intent nobody waits for, ``Journal.order``)."""
        if self._told:
            outbox.write(self.journal, self.bus, OrderEvent(order, status, detail, venue_id), then)

    def submit(
        self,
        order: Order,
        *,
        price: float,
        position: object,
        reducing: bool,
        later: Callable[[], None] | None = None,
    ) -> OrderState | None:
        """Check ``order`` against the risk rules, journal it and send it.

        ``price`` is the last price (for notional limits), ``position`` the
        symbol's position before the order (a Decimal). Returns None when the
        broker took it, or, when the send went unanswered, what the broker
        says of the order (its fills are for the worker to book). Raises
        RiskError when a rule refused it, BrokerError when the broker refused
        it or it was not placed, or the engine is stopping. A state of
        status INTENT: the broker holds the order back for its rate limit
        and reports its sending as an update (``HELD``), or, with ``later``
        (``sends_later``), the intent is on its way to the disk and nothing
        is sent yet (``SYNCING``): ``later`` is called once it is on disk, or
        the journal has failed, and the worker sends it then (``send_synced``)."""
        if self.stopping is not None and self.stopping.is_set():  # (``stopped`` inline: every order asks)
            err = RiskError(f"order {order.client_id} not sent: the engine is stopping", rule="stop")
            self.record(order, OrderStatus.REFUSED, f"stop: {err}")
            raise err
        try:
            self.risk.check(order.symbol, order.side, order.qty, price, position, order.ts, reducing)  # type: ignore[arg-type]
        except RiskError as err:
            self.record(order, OrderStatus.REFUSED, f"{err.rule}: {err}")
            raise
        # From here the order is one of the account's open orders (``risk.check``
        # took its place): given back on every way it is not placed.
        if self._told:
            try:
                self.record(order, _INTENT, then=later)
            except BaseException:  # the journal failed: nothing is sent
                self.order_closed(order.symbol)
                raise
            if later is not None:
                return SYNCING
        return self.send(order)

    def send_synced(self, order: Order) -> OrderState | None:
        """Send an order whose intent is on disk (``submit`` returned
        ``SYNCING``): as ``send``, unless the journal has failed since (it
        raises its error) or the engine is stopping (the order is ``lost``,
        never sent: ``OrderLost``); either way the order gives its place back."""
        failed = self.journal.failed if self.journal is not None else None
        if failed is not None:
            self.order_closed(order.symbol)
            raise failed
        if self.stopped:
            self.order_closed(order.symbol)
            self.lost(order, NEVER_SENT)
            raise OrderLost(f"order {order.client_id} was not sent: the engine is stopping")
        return self.send(order)

    def send(self, order: Order) -> OrderState | None:
        """The broker's part of ``submit``, the intent journaled: what it
        returns and raises, the order's place given back when it is not placed."""
        try:
            held = self.broker.submit(order) is _INTENT
        except BrokerError as err:
            if not isinstance(err, BrokerTimeout):
                self.order_closed(order.symbol)
                self.record(order, OrderStatus.REJECTED, str(err))
                raise
            return self._unanswered(order, str(err))
        except OSError as err:  # a TimeoutError or network error the broker let through: sent or not is unknown
            return self._unanswered(order, f"broker.submit: {error_text(err)}")
        except Exception as err:  # a bug in the broker: the worker halts; a restart asks the broker
            self.order_closed(order.symbol)
            self.record(order, OrderStatus.UNKNOWN, f"broker.submit: {error_text(err)}")
            raise
        if held:
            return HELD
        if self._told:
            self.record(order, _SUBMITTED)
        return None

    def _unanswered(self, order: Order, why: str) -> OrderState:
        """``resolve``; an order the broker never got gives its place back."""
        try:
            return self.resolve(order, why)
        except OrderLost:
            self.order_closed(order.symbol)
            raise

    def order_opened(self) -> None:
        """One of the account's open orders again, besides a new one (which
        ``risk.check`` counts): at a restart, each order the journal has open
        or the venue has working (restored or adopted); an order given up as
        lost that a late fill shows was working after all."""
        if self._count_orders:
            self.risk.account.order_opened()

    def order_restored(self, order: Order, filled: Decimal, position: Decimal) -> None:
        """After a restart, ``order`` (open) is its symbol's order in flight
        again: counted as open (``order_opened``), and an entry takes its
        notional again (``RiskManager.order_restored``)."""
        self.order_opened()
        if self._takes_place:
            self.risk.order_restored(order, filled, position)

    def order_left(self) -> None:
        """An order the symbol only remembers (not its order in flight) left
        the book: counted at ``order_opened``, it took no notional."""
        if self._count_orders:
            self.risk.account.order_closed()

    def order_closed(self, symbol: str) -> None:
        """``symbol``'s order left the book (filled, cancelled, rejected,
        expired or lost), or was not placed after its risk check."""
        if self._takes_place:
            self.risk.order_closed(symbol)

    def resolve(self, order: Order, why: str) -> OrderState:
        """Ask the broker what became of an order whose send went unanswered.
        Its status and fills are applied by the worker, in one transaction
        with the booking (never journaled as filled here). When the broker
        cannot tell (the lookup failed too), the order stays ``unknown``: the
        symbol waits for the broker's updates, which go on asking the venue."""
        self.record(order, OrderStatus.UNKNOWN, why)
        if self.stopped:
            return OrderState(OrderStatus.UNKNOWN, Decimal(0))  # journaled unknown: the next start asks for it
        try:
            state = self.broker.order_status(order.client_id)
        except BrokerError as err:
            self.bus.emit(
                ErrorEvent(
                    order.symbol,
                    order.ts,
                    f"order {order.client_id} is unknown: sent without answer ({why}) and the lookup failed "
                    f"({err}); the symbol waits while the broker asks the venue for it",
                    kind="order",
                )
            )
            return OrderState(OrderStatus.UNKNOWN, Decimal(0))
        if state is None:
            self.lost(order, f"not placed: the broker has no order {order.client_id} ({why}); not resent")
            raise OrderLost(f"order {order.client_id} was not placed ({why}); it is not resent")
        return state

    def lost(self, order: Order, why: str) -> None:
        """The broker has no such order: it never arrived, and it is never
        resent (journaled ``lost``; the worker forgets it as in flight)."""
        self.record(order, OrderStatus.LOST, why)

    def cancel(self, order: Order) -> None:
        """Ask the broker to cancel ``order``; the outcome comes as an update."""
        try:
            self.broker.cancel(order.client_id)
        except (BrokerError, OSError) as err:  # the order keeps working; the worker asks again at its next bar
            self.bus.emit(
                ErrorEvent(
                    order.symbol, order.ts, f"cancel of {order.client_id} failed: {error_text(err)}", kind="order"
                )
            )

    def lookup(self, client_id: str) -> OrderState | None:
        """``broker.order_status`` with a few retries on transient errors."""
        for attempt in range(STATUS_RETRIES):
            try:
                return self.broker.order_status(client_id)
            except (BrokerError, OSError) as err:  # OSError: a TimeoutError or network error let through
                if attempt == STATUS_RETRIES - 1:
                    if isinstance(err, BrokerError):
                        raise
                    raise BrokerError(f"broker.order_status of {client_id}: {error_text(err)}") from err
                time.sleep(0.2 * (attempt + 1))
        return None  # pragma: no cover - the loop returns or raises
