"""A venue broker's orders, what the engine has been told of each, and the
one way updates reach the engine. Written once for every venue plugin.

:class:`VenueOrders` keeps, per order the engine sent (by client id) and per
bracket leg the venue attached to one (by the leg's venue id), what has been
reported: the ack, each fill (by its trade id, or by the cumulative quantity
for a venue that reports only that), the end. Whatever the source of news
(the order's answer, a stream event, a poll, a lookup after a timeout or a
restart) each of these is reported once, as the core's
:class:`~engine_core.orders.OrderUpdate`.

Delivery: updates go to the engine's ``on_update`` from a thread of the
tracker's own, in the order they were made, so a venue's event loop never
waits on the engine (a worker may be inside ``submit``, waiting on that loop).

Orders whose fate is not known (sent, no answer, and the venue could not be
asked) are :meth:`VenueOrders.unresolved`: :meth:`VenueOrders.watch` asks the
venue for them by client id with backoff (the venue's rate limiter paces the
requests) until it knows: the order's updates, or, once the venue says it
has no such order after ``lost_after`` seconds, a ``lost`` update. While the
venue's stream is down it asks for every order still open, each
``poll_interval``.

Sending held back: an order the venue's rate limit would make wait is not
waited for by the engine's thread. :meth:`VenueOrders.send_later` sends it
once the limit allows (reporting ``sent``; a refusal as ``reject``; no answer
as ``unknown``), and :meth:`VenueOrders.stop_sending` ends the sending at
stop: what is still held back is never sent (``lost``), what is on the wire
is given ``timeout`` seconds to be answered or found, else reported
``unknown`` for the next start to ask about, and its send is cancelled (a
plugin runs every send inside :meth:`VenueOrders.on_wire`, so a send the
engine's thread waits on is bounded at stop the same way).

Memory: an order settled (done, and every leg of it done) is forgotten
``keep_done`` seconds or so after it settled (:meth:`VenueOrders.sweep`, run
by the watch loop), so that a session of months holds, and the watch loop
and an exit look through, only the orders of the last minutes. A report
about a forgotten order that comes later still (a venue sending an old event
again) makes it known again: its fills carry the same trade ids, and the
engine books no fill twice.

A venue plugin gives the tracker one coroutine, ``lookup(order)``: ask the
venue by client id, apply what it shows (through :meth:`ack`, :meth:`fill`,
:meth:`fill_to`, :meth:`end`) and return True, or return False when the venue
has no such order; raise :class:`~engine_core.errors.BrokerError` when it
cannot tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from engine_core.errors import BrokerError, BrokerTimeout, error_text
from engine_core.live.backoff import Backoff
from engine_core.model import Fill, Side
from engine_core.orders import OrderUpdate, UpdateKind

log = logging.getLogger("engine_core.live")

PRICE_STEP = Decimal("0.000000001")  # an average price worked out from cumulative figures, to 9 decimals
_ACK, _FILL, _PARTIAL, _LOST = UpdateKind.ACK, UpdateKind.FILL, UpdateKind.PARTIAL_FILL, UpdateKind.LOST
_SENT, _UNKNOWN, _REJECT = UpdateKind.SENT, UpdateKind.UNKNOWN, UpdateKind.REJECT


@dataclass(eq=False)
class VenueOrder:
    """One order (or bracket leg) and what has been reported of it."""

    client_id: str  # the engine's client id; a leg's is its entry's
    symbol: str
    side: Side
    qty: Decimal
    leg: str = ""  # "stop_loss" / "take_profit": a leg the venue attached to the entry ``client_id``
    venue_id: str = ""
    status: str = ""  # the venue's own word for its state, as last seen
    acked: bool = False
    filled: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)  # filled * average price, as reported so far
    keys: set[str] = field(default_factory=set)  # trade ids reported
    done: bool = False
    unresolved: bool = False  # sent, no answer, not yet found: asked for until known
    held: bool = False  # waiting for the rate limit: not sent
    sending: bool = False  # held back, then sent: its answer is awaited
    since: float = 0.0  # monotonic time it became unresolved
    retry_at: float = 0.0
    backoff: Backoff | None = None


Lookup = Callable[[VenueOrder], Awaitable[bool]]


class VenueOrders:
    """What a venue broker has told the engine of its orders (see the module docstring)."""

    keep_done = 600.0  # seconds between two sweeps: a settled order is kept one to two of them

    def __init__(
        self,
        venue: str,
        on_update: Callable[[OrderUpdate], None],
        *,
        lost_after: float = 10.0,
        retry: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self.venue = venue
        self._on_update = on_update
        self.lost_after = lost_after
        self.retry = retry
        self._settled: set[str] = set()  # client ids found settled by the last sweep
        self._orders: dict[str, VenueOrder] = {}  # by client id
        self._legs: dict[str, VenueOrder] = {}  # by the leg's venue id
        self._outbox: queue.SimpleQueue[OrderUpdate | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._held: dict[str, asyncio.Task[None]] = {}  # client id -> its send_later task, while held
        self._sending: dict[str, asyncio.Task[None]] = {}  # the same once sent, until answered
        self.stopping = False
        self.counts = {"polls": 0, "lookups": 0, "lookup_errors": 0, "lost": 0, "held": 0, "forgotten": 0}

    # ------------------------------------------------------------ delivery

    def start(self) -> None:
        """Start delivering updates (on the tracker's own thread)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._deliver, name=f"{self.venue}-updates", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Deliver every update made so far, then stop the thread."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._outbox.put(None)
            thread.join(timeout)

    def emit(self, update: OrderUpdate) -> None:
        if self._thread is None:  # not started (a broker used without connect): deliver here
            self._call(update)
        else:
            self._outbox.put(update)

    def _deliver(self) -> None:
        while True:
            update = self._outbox.get()
            if update is None:
                return
            self._call(update)

    def _call(self, update: OrderUpdate) -> None:
        try:
            self._on_update(update)
        except Exception:  # noqa: BLE001 - the engine's callback must not stop the updates
            log.exception("%s: the engine's on_update failed for %s", self.venue, update.client_id)

    # ------------------------------------------------------------ bookkeeping

    def track(self, client_id: str, symbol: str, side: Side, qty: Decimal) -> VenueOrder:
        """The order with ``client_id``, registered if new."""
        order = self._orders.get(client_id)
        if order is None:
            order = self._orders[client_id] = VenueOrder(client_id, symbol, side, qty)
        return order

    def track_leg(self, entry: VenueOrder, venue_id: str, leg: str, side: Side, qty: Decimal) -> VenueOrder:
        """A bracket leg of ``entry`` (by its venue id), registered if new."""
        order = self._legs.get(venue_id)
        if order is None:
            order = VenueOrder(entry.client_id, entry.symbol, side, qty, leg=leg, venue_id=venue_id)
            self._legs[venue_id] = order
        return order

    def get(self, client_id: str) -> VenueOrder | None:
        return self._orders.get(client_id)

    def leg(self, venue_id: str) -> VenueOrder | None:
        return self._legs.get(venue_id)

    def legs(self, entry: VenueOrder) -> list[VenueOrder]:
        return [leg for leg in self._legs.values() if leg.client_id == entry.client_id]

    def __iter__(self) -> Iterator[VenueOrder]:
        return iter(list(self._orders.values()))

    def working(self) -> list[VenueOrder]:
        """Orders to ask the venue about: not done, or with a leg not done."""
        open_legs = {leg.client_id for leg in self._legs.values() if not leg.done}
        return [o for o in self._orders.values() if not o.done or o.client_id in open_legs]

    def sweep(self) -> int:
        """Forget the orders that were settled at the last sweep and still
        are (so each is kept between one and two sweeps' time after it
        settled), with their legs; how many. An order held back, on the wire
        or unresolved is never settled."""
        open_legs = {leg.client_id for leg in self._legs.values() if not leg.done}
        settled = {
            cid
            for cid, o in self._orders.items()
            if o.done and not (o.held or o.sending or o.unresolved) and cid not in open_legs
        }
        gone = self._settled & settled
        for cid in gone:
            del self._orders[cid]
        if gone:
            self._legs = {vid: leg for vid, leg in self._legs.items() if leg.client_id not in gone}
        self._settled = settled - gone
        self.counts["forgotten"] += len(gone)
        return len(gone)

    def forget(self, client_id: str) -> None:
        """An order that never left (refused before sending): nothing to report."""
        self._orders.pop(client_id, None)

    # ------------------------------------------------------------ reporting, once

    def ack(self, order: VenueOrder, venue_id: str, ts: int) -> None:
        if venue_id and not order.venue_id:
            order.venue_id = venue_id
        order.unresolved = False
        if order.acked or order.done:
            return
        order.acked = True
        if not order.leg:
            self.emit(OrderUpdate(_ACK, order.client_id, order.symbol, ts, venue_id=order.venue_id))

    def fill(self, order: VenueOrder, fill: Fill) -> bool:
        """Report ``fill`` (by its trade id, once). True if it was new."""
        if fill.trade_id in order.keys:
            return False
        order.unresolved = False
        order.keys.add(fill.trade_id)
        order.filled += fill.qty
        order.cost += fill.qty * fill.price
        kind = _FILL if order.filled >= order.qty else _PARTIAL
        if kind is _FILL:
            order.done = True
        self.emit(OrderUpdate(kind, order.client_id, order.symbol, fill.ts, fill, order.venue_id, leg=order.leg))
        return True

    def fill_to(self, order: VenueOrder, cumulative: Decimal, avg_price: Decimal | None, ts: int) -> Fill | None:
        """For a venue that reports an order's cumulative quantity and average
        price: report what was filled since the last report (None if nothing)."""
        delta = cumulative - order.filled
        if delta <= 0 or avg_price is None:
            return None
        price = _plain(((avg_price * cumulative - order.cost) / delta).quantize(PRICE_STEP))
        fill = Fill(
            order.client_id, order.symbol, order.side, delta, price, Decimal(0), ts, f"{order.venue_id}:{cumulative}"
        )
        self.fill(order, fill)
        order.cost = avg_price * cumulative  # exact, whatever the rounding of the price reported
        return fill

    def end(self, order: VenueOrder, kind: UpdateKind, ts: int, reason: str = "") -> None:
        """The order ended without (more) fills: cancelled, rejected, expired, lost."""
        order.unresolved = False
        if order.done:
            return
        order.done = True
        if not order.leg:
            self.emit(OrderUpdate(kind, order.client_id, order.symbol, ts, venue_id=order.venue_id, reason=reason))

    def known(
        self, order: VenueOrder, *, venue_id: str, fills: tuple[Fill, ...] | list[Fill], done: bool, status: str = ""
    ) -> None:
        """What the engine learns from a lookup it books itself (``order_status``):
        recorded as reported, so that nothing in it is reported again."""
        order.venue_id = venue_id or order.venue_id
        order.acked = order.acked or bool(venue_id)
        order.unresolved = False
        order.status = status or order.status
        for fill in fills:
            if fill.trade_id not in order.keys:
                order.keys.add(fill.trade_id)
                order.filled += fill.qty
                order.cost += fill.qty * fill.price
        order.done = order.done or done

    # ------------------------------------------------------------ orders whose fate is not known

    def unresolved(self, order: VenueOrder) -> None:
        """Sent, unanswered, and the venue could not say: :meth:`watch` asks for it."""
        if order.done or order.acked:
            return
        order.unresolved = True
        order.since = order.since or time.monotonic()
        order.backoff = Backoff(*self.retry)
        order.retry_at = time.monotonic() + order.backoff.next()

    async def resolve(self, order: VenueOrder, lookup: Lookup) -> bool | None:
        """Ask the venue once: True (known and applied), False (no such order),
        None (it could not tell; logged)."""
        self.counts["lookups"] += 1
        try:
            found = await lookup(order)
        except BrokerError as err:
            self.counts["lookup_errors"] += 1
            log.warning("%s: asking for order %s failed (asking again later): %s", self.venue, order.client_id, err)
            return None
        if found:
            order.unresolved = False
        return found

    async def watch(self, lookup: Lookup, stream_up: Callable[[], bool], poll_interval: float) -> None:
        """Run for the broker's life: resolve unresolved orders with backoff,
        and poll every working order while the venue's stream is down."""
        tick = min(poll_interval, 0.25)
        next_poll = time.monotonic() + poll_interval
        next_sweep = time.monotonic() + self.keep_done
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + self.keep_done
                self.sweep()
            for order in list(self._orders.values()):
                if order.unresolved and now >= order.retry_at:
                    await self._retry(order, lookup)
            if now >= next_poll:
                next_poll = now + poll_interval
                if not stream_up():
                    self.counts["polls"] += 1
                    await self.poll(lookup)

    async def _retry(self, order: VenueOrder, lookup: Lookup) -> None:
        found = await self.resolve(order, lookup)
        if not order.unresolved:
            return
        if found is False and time.monotonic() - order.since >= self.lost_after:
            self.counts["lost"] += 1
            self.end(order, _LOST, time.time_ns(), f"{self.venue} has no order {order.client_id}: never placed")
            return
        assert order.backoff is not None
        order.retry_at = time.monotonic() + order.backoff.next()

    async def poll(self, lookup: Lookup) -> None:
        """Ask the venue once for every working order (what a stream missed)."""
        for order in self.working():
            if not order.unresolved and not order.held:  # a held order is not at the venue yet
                await self.resolve(order, lookup)

    def waiting(self) -> list[VenueOrder]:
        """Orders still unresolved."""
        return [o for o in self._orders.values() if o.unresolved]

    # ------------------------------------------------------------ sending held back

    def send_later(self, order: VenueOrder, delay: Callable[[], float], send: Callable[[], Awaitable[None]]) -> None:
        """On the venue's loop: send ``order`` (``send()``) once ``delay()``
        (seconds the rate limit makes a request wait) is 0, unless sending
        stops first."""
        order.held = True
        self.counts["held"] += 1
        self._held[order.client_id] = asyncio.get_running_loop().create_task(self._send_later(order, delay, send))

    async def _send_later(
        self, order: VenueOrder, delay: Callable[[], float], send: Callable[[], Awaitable[None]]
    ) -> None:
        try:
            while (wait := delay()) > 0:
                await asyncio.sleep(min(wait, 0.25))
        except asyncio.CancelledError:
            order.held = False
            self.end(order, _LOST, time.time_ns(), "never sent: the engine stopped while it waited for the rate limit")
            return
        finally:
            self._held.pop(order.client_id, None)
        order.held = False
        self.emit(OrderUpdate(_SENT, order.client_id, order.symbol, time.time_ns()))
        try:
            await send()
        except BrokerError as err:
            if isinstance(err, BrokerTimeout):
                self.unresolved(order)
                self.emit(OrderUpdate(_UNKNOWN, order.client_id, order.symbol, time.time_ns(), reason=str(err)))
            else:
                self.end(order, _REJECT, time.time_ns(), str(err))
        except Exception as err:  # noqa: BLE001 - a bug or a transport error: its fate is not known
            log.exception("%s: sending %s failed", self.venue, order.client_id)
            self.unresolved(order)
            reason = f"sending failed ({error_text(err)})"
            self.emit(OrderUpdate(_UNKNOWN, order.client_id, order.symbol, time.time_ns(), reason=reason))

    @contextlib.contextmanager
    def on_wire(self, order: VenueOrder) -> Iterator[None]:
        """Around a send (run as a task on the venue's loop): the order is on
        the wire until its answer; at stop it gets ``timeout`` seconds, then
        the send is cancelled (its caller gets ``CancelledError``)."""
        order.sending = True
        task = asyncio.current_task()
        if task is not None:
            self._sending[order.client_id] = task
        try:
            yield
        finally:
            order.sending = False
            self._sending.pop(order.client_id, None)

    async def cancel_held(self, client_id: str) -> bool:
        """Cancel an order held back (never sent): True if it was, and its
        cancel is reported."""
        task = self._held.pop(client_id, None)
        order = self._orders.get(client_id)
        if task is None or order is None:
            return False
        order.done = True  # the task's end must not report it lost
        task.cancel()
        order.held = False
        self.emit(
            OrderUpdate(
                UpdateKind.CANCEL, client_id, order.symbol, time.time_ns(), reason="cancelled before it was sent"
            )
        )
        return True

    async def stop_sending(self, timeout: float) -> None:
        """Stop: orders held back are never sent (``lost``); orders on the wire
        or unresolved get ``timeout`` seconds (the watch loop goes on asking),
        then whatever is still not known is reported ``unknown``."""
        if self.stopping:
            return
        self.stopping = True
        held = list(self._held.values())
        for task in held:
            task.cancel()
        if held:
            await asyncio.wait(held, timeout=5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_in_doubt(o) for o in self._orders.values()):
            await asyncio.sleep(0.05)
        for order in self._orders.values():
            if _in_doubt(order):
                why = f"unknown at stop: no answer within {timeout:g}s; the next start asks {self.venue} for it"
                self.emit(OrderUpdate(_UNKNOWN, order.client_id, order.symbol, time.time_ns(), reason=why))
        sending = list(self._sending.values())
        for task in sending:  # their answers are not waited for any longer
            task.cancel()
        if sending:
            await asyncio.wait(sending, timeout=5)


def _in_doubt(order: VenueOrder) -> bool:
    """Sent, and neither answered nor heard of since (a fill or an end from
    the stream settles it even before its answer comes)."""
    return (order.sending or order.unresolved) and not order.done and not order.acked


def _plain(value: Decimal) -> Decimal:
    """Without trailing zeros, and never in exponent form (``100``, not ``1E+2``)."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()
