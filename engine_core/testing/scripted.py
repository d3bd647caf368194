"""A venue-like test double: a broker that answers asynchronously, from its
own thread, the way its script says.

Each order runs the steps of its script in turn (``script``, or
``scripts["N"]`` for the N-th order the venue receives):

============  =================================================================
step          what the venue does
============  =================================================================
``ack``       accepts the order (an ack update with a venue id)
``fill``      fills what remains (at the limit price, or ``price``)
``partial:F`` fills the fraction F of the order's quantity
``reject``    rejects it
``cancel``    cancels it (unprompted: the venue's own cancel)
``expire``    expires it
``wait``      stops until the test calls ``Venue.resume(client_id)``
``delay:S``   sleeps S seconds before the next step
``timeout``   (first step only) ``submit`` places the order, then raises
              BrokerTimeout, as if the answer was lost
``lost``      (first step only) ``submit`` raises BrokerTimeout and places nothing
``stall``     (first step only) ``submit`` places the order, then its call to
              the venue gets no answer: after ``stall`` seconds it raises the
              TimeoutError of the venue's loop (``engine_core.live.LoopThread``),
              as a venue broker that lets it through does
============  =================================================================

``on_cancel`` says what a cancel request meets: ``cancel`` (cancels what is
left), ``fill_then_cancel`` (a fill of the rest races ahead of the cancel:
both are reported, fill first), ``ignore`` (nothing). The venue's state
lives in a :class:`Venue` shared by every broker with the same ``venue``
name in this process, so an engine restarted in the same test finds the
orders and fills of the one before (reconciliation).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from pydantic import Field

from engine_core.brokers import Broker, UpdateCallback
from engine_core.errors import BrokerError, BrokerTimeout
from engine_core.live.loop import LoopThread
from engine_core.model import Fill, Order
from engine_core.orders import OPEN_STATUSES, OpenOrder, OrderState, OrderStatus, OrderUpdate, UpdateKind
from engine_core.sources import PluginConfig


class ScriptedConfig(PluginConfig):
    cash: Decimal = Field(default=Decimal(100_000), gt=0)
    price: Decimal = Field(default=Decimal(100), gt=0)  # fill price of a market order
    script: list[str] = ["ack", "fill"]
    scripts: dict[str, list[str]] = {}  # per order number ("1" is the first order the venue gets)
    on_cancel: Literal["cancel", "fill_then_cancel", "ignore"] = "cancel"
    venue: str = "default"
    stall: float = Field(default=0.2, gt=0)  # seconds a ``stall`` step's call waits for its answer


@dataclass
class VenueOrder:
    order: Order
    venue_id: str
    status: OrderStatus = OrderStatus.SUBMITTED
    fills: list[Fill] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    resumed: threading.Event = field(default_factory=threading.Event)

    @property
    def filled(self) -> Decimal:
        return sum((f.qty for f in self.fills), Decimal(0))


class Venue:
    """What the scripted venue holds: every order it got, and its fills."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.orders: dict[str, VenueOrder] = {}
        self.received = 0
        self.brokers: list[ScriptedBroker] = []

    def resume(self, client_id: str) -> None:
        """Let an order waiting at a ``wait`` step go on."""
        self.orders[client_id].resumed.set()

    def fill(
        self, client_id: str, qty: Decimal | None = None, price: Decimal | None = None, *, emit: bool = True
    ) -> Fill:
        """Fill ``qty`` (default: what remains) of an order now, as the venue
        would on its own; ``emit=False`` keeps it from the connected brokers
        (the engine is down and must find it by reconciliation)."""
        with self.lock:
            vo = self.orders[client_id]
            qty = vo.order.qty - vo.filled if qty is None else qty
            px = price or vo.order.price or Decimal(100)
            fill = Fill(
                client_id, vo.order.symbol, vo.order.side, qty, px, Decimal(0), vo.order.ts, f"t{len(vo.fills) + 1}"
            )
            vo.fills.append(fill)
            vo.status = OrderStatus.FILLED if vo.filled >= vo.order.qty else OrderStatus.PARTIALLY_FILLED
        if emit:
            kind = UpdateKind.FILL if vo.status is OrderStatus.FILLED else UpdateKind.PARTIAL_FILL
            self._emit(OrderUpdate(kind, client_id, vo.order.symbol, vo.order.ts, fill, vo.venue_id))
        return fill

    def place(self, order: Order) -> VenueOrder:
        """An order that reached the venue by a way the engine did not see."""
        with self.lock:
            self.received += 1
            vo = VenueOrder(order, f"v{self.received}", OrderStatus.ACCEPTED)
            self.orders[order.client_id] = vo
            return vo

    def _emit(self, update: OrderUpdate) -> None:
        for broker in list(self.brokers):
            if broker.connected:
                broker.on_update(update)


_VENUES: dict[str, Venue] = {}
_VENUES_LOCK = threading.Lock()


def venue(name: str = "default", *, reset: bool = False) -> Venue:
    """The scripted venue of that name (a fresh one with ``reset``)."""
    with _VENUES_LOCK:
        if reset or name not in _VENUES:
            _VENUES[name] = Venue()
        return _VENUES[name]


class ScriptedBroker(Broker):
    """Acks, fills, partially fills, rejects, cancels and delays from its own
    thread, as its config's script says (see the module docstring)."""

    Config = ScriptedConfig

    def __init__(self, config: ScriptedConfig, *, on_update: UpdateCallback, symbols: Sequence[str] = ()) -> None:
        super().__init__(config, on_update=on_update, symbols=symbols)
        self.venue = venue(config.venue)
        self.connected = False
        self._work: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def connect(self) -> None:
        self.connected = True
        self.venue.brokers.append(self)
        self._thread = threading.Thread(target=self._run, name="scripted-venue", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Runs what the scripts still hold (no more waiting), then stops."""
        for vo in self.venue.orders.values():
            vo.resumed.set()
        self._work.put(None)
        if self._thread is not None:
            self._thread.join(10)
        self.connected = False
        if self in self.venue.brokers:
            self.venue.brokers.remove(self)

    def starting_cash(self) -> Decimal:
        return self.config.cash

    def submit(self, order: Order) -> None:
        v = self.venue
        with v.lock:
            if order.client_id in v.orders:
                return  # idempotent on the client id
            script = self.config.scripts.get(str(v.received + 1), self.config.script)
            first = script[0] if script else ""
            if first == "lost":
                v.received += 1
                raise BrokerTimeout(f"no answer for {order.client_id} (the order never arrived)")
            vo = v.place(order)
            vo.status = OrderStatus.SUBMITTED
            vo.steps = list(script[1:] if first in ("timeout", "stall") else script)
        self._work.put(order.client_id)
        if first == "timeout":
            raise BrokerTimeout(f"no answer for {order.client_id} (the order arrived)")
        if first == "stall":
            self._stall()

    def _stall(self) -> None:
        loop = LoopThread("scripted-venue-loop")
        loop.start()
        try:
            loop.run(self._no_answer(), self.config.stall, cancel=True)
        finally:
            loop.stop()

    @staticmethod
    async def _no_answer() -> None:
        await asyncio.Event().wait()

    def cancel(self, client_id: str) -> None:
        v = self.venue
        with v.lock:
            vo = v.orders.get(client_id)
            if vo is None:
                raise BrokerError(f"unknown order {client_id}")
            if vo.status not in OPEN_STATUSES or self.config.on_cancel == "ignore":
                return
            vo.steps = ["fill", "cancel"] if self.config.on_cancel == "fill_then_cancel" else ["cancel"]
            vo.resumed.set()
        self._work.put(client_id)

    def order_status(self, client_id: str) -> OrderState | None:
        with self.venue.lock:
            vo = self.venue.orders.get(client_id)
            if vo is None:
                return None
            return OrderState(vo.status, vo.filled, tuple(vo.fills), vo.venue_id)

    def open_orders(self) -> list[OpenOrder]:
        with self.venue.lock:
            return [
                OpenOrder(vo.order, vo.venue_id, vo.filled)
                for vo in self.venue.orders.values()
                if vo.status in OPEN_STATUSES and (not self.symbols or vo.order.symbol in self.symbols)
            ]

    def positions(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        with self.venue.lock:
            for vo in self.venue.orders.values():
                for f in vo.fills:
                    out[f.symbol] = out.get(f.symbol, Decimal(0)) + f.position_change
        return out

    # ------------------------------------------------------------ the venue's thread

    def _run(self) -> None:
        while True:
            cid = self._work.get()
            if cid is None:
                return
            self._play(cid)

    def _play(self, cid: str) -> None:
        v = self.venue
        vo = v.orders[cid]
        while True:
            with v.lock:
                if not vo.steps or vo.status not in OPEN_STATUSES:
                    return
                step = vo.steps.pop(0)
            self._step(vo, step)

    def _step(self, vo: VenueOrder, step: str) -> None:
        o = vo.order
        if step == "wait":
            vo.resumed.wait(30)
            vo.resumed.clear()
            return
        if step.startswith("delay:"):
            time.sleep(float(step.split(":", 1)[1]))
            return
        if step == "fill" or step.startswith("partial:"):
            qty = o.qty - vo.filled if step == "fill" else o.qty * Decimal(step.split(":", 1)[1])
            self.venue.fill(o.client_id, qty, o.price or self.config.price)
            return
        kinds: dict[str, tuple[UpdateKind, OrderStatus]] = {
            "ack": (UpdateKind.ACK, OrderStatus.ACCEPTED),
            "reject": (UpdateKind.REJECT, OrderStatus.REJECTED),
            "cancel": (UpdateKind.CANCEL, OrderStatus.CANCELLED),
            "expire": (UpdateKind.EXPIRE, OrderStatus.EXPIRED),
        }
        if step not in kinds:
            raise ValueError(f"unknown script step {step!r}")
        kind, status = kinds[step]
        with self.venue.lock:
            vo.status = status
        self.venue._emit(
            OrderUpdate(kind, o.client_id, o.symbol, o.ts, venue_id=vo.venue_id, reason=f"scripted {step}")
        )
