"""One symbol's order lifecycle: statuses, the updates brokers emit, and the
order in flight.

Every order moves through :class:`OrderStatus` along the edges of
``TRANSITIONS`` (drawn below). Brokers report what happens to an order as
:class:`OrderUpdate` values through their one ``on_update`` callback;
:class:`OrderTracker` (one per symbol, owned by its worker) applies each
update to the order in flight and says what it means for the position::

    intent -> submitted -> accepted -> partially_filled -> filled
       |          |            |              |
       |          +-> unknown  +-> cancelled <+-> expired
       |          |   (resolved by client id)
       |          +-> rejected
       +-> lost (never reached the venue; never resent)
       +-> cancelled (held back by the broker, cancelled before it was sent)
    refused: a risk rule stopped it before it was journaled as an intent

An order a venue broker holds back for its rate limit stays ``intent``
(journaled, not sent) until the broker reports it ``sent``; one still held
when the engine stops is never sent (``lost``). Live with the journal, an
order is ``intent`` and not sent (``InFlight.unsent``) until its intent is on
disk and a turn of its worker sends it (``decisions.send``), before anything
else the symbol takes: cancelled before then it is never sent
(``cancelled``), and the engine stopping before then leaves it ``lost``. An order whose answer is lost
and that the venue cannot be asked about yet is ``unknown`` until the broker
finds it (its fills), learns it was never placed (``lost``), or the engine
stops (a restart asks again): never "not placed".

Fills are the truth about the position: a fill is booked whatever the
order's status (a late fill of an order marked lost, a fill racing a cancel),
and only its status change is subject to the table.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from decimal import Decimal
from hashlib import blake2b
from typing import NamedTuple

from engine_core.model import Fill, Order

_ZERO = Decimal(0)


class OrderStatus(str, enum.Enum):
    INTENT = "intent"  # journaled, not yet sent
    SUBMITTED = "submitted"  # sent, not yet acknowledged
    ACCEPTED = "accepted"  # acknowledged by the venue (its order id known)
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    LOST = "lost"  # never reached the venue; not resent
    UNKNOWN = "unknown"  # sent but unanswered: to be resolved by client id
    REFUSED = "refused"  # stopped by a risk rule before it was sent

    @classmethod
    def _missing_(cls, value: object) -> OrderStatus | None:
        return cls.ACCEPTED if value == "acknowledged" else None  # journals of schema 1

    @property
    def is_open(self) -> bool:
        """Still working (or possibly working) at the venue."""
        return self in OPEN_STATUSES


OPEN_STATUSES = frozenset(
    {
        OrderStatus.INTENT,
        OrderStatus.SUBMITTED,
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.UNKNOWN,
    }
)

_S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.INTENT: frozenset(
        {_S.SUBMITTED, _S.ACCEPTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.REJECTED, _S.UNKNOWN, _S.LOST, _S.CANCELLED}
    ),  # cancelled: held back by the broker, cancelled before it was sent
    _S.SUBMITTED: frozenset(
        {_S.ACCEPTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.REJECTED, _S.EXPIRED, _S.UNKNOWN, _S.LOST}
    ),
    _S.UNKNOWN: frozenset(
        {_S.ACCEPTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.REJECTED, _S.EXPIRED, _S.LOST}
    ),
    _S.ACCEPTED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.REJECTED, _S.EXPIRED, _S.UNKNOWN}),
    _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.EXPIRED, _S.UNKNOWN}),
    _S.LOST: frozenset({_S.PARTIALLY_FILLED, _S.FILLED}),  # a late fill: the venue had it after all
    _S.FILLED: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
    _S.REFUSED: frozenset(),
}


def can_move(frm: OrderStatus, to: OrderStatus) -> bool:
    return to in TRANSITIONS[frm]


class UpdateKind(str, enum.Enum):
    """What a broker reports of an order."""

    ACK = "ack"  # accepted; ``venue_id`` set
    PARTIAL_FILL = "partial_fill"  # ``fill`` set; more to come
    FILL = "fill"  # ``fill`` set; the order is complete
    CANCEL = "cancel"  # cancelled (what was filled stays filled)
    REJECT = "reject"  # refused by the venue; ``reason`` says why
    EXPIRE = "expire"  # its time in force ran out
    LOST = "lost"  # never placed: not found after a lost answer, or never sent (the engine stopped first)
    SENT = "sent"  # an order the broker held back (its rate limit) has left for the venue
    UNKNOWN = "unknown"  # sent, no answer, not found yet: the broker goes on asking by client id


STATUS_OF_UPDATE = {
    UpdateKind.ACK: OrderStatus.ACCEPTED,
    UpdateKind.PARTIAL_FILL: OrderStatus.PARTIALLY_FILLED,
    UpdateKind.FILL: OrderStatus.FILLED,
    UpdateKind.CANCEL: OrderStatus.CANCELLED,
    UpdateKind.REJECT: OrderStatus.REJECTED,
    UpdateKind.EXPIRE: OrderStatus.EXPIRED,
    UpdateKind.LOST: OrderStatus.LOST,
    UpdateKind.SENT: OrderStatus.SUBMITTED,
    UpdateKind.UNKNOWN: OrderStatus.UNKNOWN,
}


class OrderUpdate(NamedTuple):
    """One thing that happened to an order at the broker (emitted through the
    broker's ``on_update`` callback, from any thread)."""

    kind: UpdateKind
    client_id: str
    symbol: str
    ts: int
    fill: Fill | None = None
    venue_id: str = ""
    reason: str = ""
    # "stop_loss" or "take_profit": a fill of a protective leg that the venue
    # attached to the entry ``client_id`` (a bracket, ``Broker.supports_brackets``);
    # it closes the position, whatever the engine's own stops were doing
    leg: str = ""


class OrderState(NamedTuple):
    """What a broker knows of one order, looked up by client id (after a
    timeout and after a restart)."""

    status: OrderStatus
    filled_qty: Decimal
    fills: tuple[Fill, ...] = ()
    venue_id: str = ""
    # fills of the bracket legs the venue attached to it: ("stop_loss" or
    # "take_profit", fill), each closing the position (a leg that filled
    # while the engine was down)
    leg_fills: tuple[tuple[str, Fill], ...] = ()


class OpenOrder(NamedTuple):
    """An order working at the venue, as ``Broker.open_orders`` lists it,
    whoever placed it: its terms (``order.client_id`` is the venue's client
    order id; a price the venue triggers at is ``order.stop_price``), the
    venue's id for it, what it filled so far, and for a leg the venue
    attached to an entry (a bracket's), the entry's client id."""

    order: Order
    venue_id: str
    filled_qty: Decimal = Decimal(0)
    parent: str = ""


class InFlight:
    """The order a symbol has working: its status, cumulative fill and venue id.
    (A plain class: a compiled dataclass keeps the ``__init__`` the dataclass
    module writes, a Python frame per order.)"""

    __slots__ = ("order", "status", "filled", "venue_id", "bar", "cancel_sent", "unsent")

    def __init__(
        self, order: Order, status: OrderStatus, filled: Decimal = _ZERO, venue_id: str = "", bar: int = 0
    ) -> None:
        self.order = order
        self.status = status
        self.filled = filled
        self.venue_id = venue_id
        self.bar = bar  # the symbol's bar count when it was sent (for expiry)
        self.cancel_sent = False
        self.unsent = False  # its intent on its way to the disk: the worker sends it at its next turn (decisions.send)

    @property
    def remaining(self) -> Decimal:
        return self.order.qty - self.filled


# What an update did: the order it was for (None: unknown here), the status
# it moved to (None when the table refused the move or the order is unknown),
# whether the order in flight is done with, and how the count of open orders
# moved (-1: it left the open statuses, 1: a late fill opened a lost one
# again, 0). A plain tuple: a NamedTuple's constructor is a Python call, and
# every update makes one.
Applied = tuple[InFlight | None, OrderStatus | None, bool, int]


_RECENT = 64  # finished orders remembered per symbol, for late updates
_NOT_HERE: Applied = (None, None, False, 0)
# Read once: on Python 3.11 each ``OrderStatus.X`` goes through the enum
# metaclass's __getattr__ hook (~0.2 us), and apply runs for every update.
_FILLED, _PARTIALLY_FILLED = OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED


class OrderTracker:
    """One symbol's order in flight (the engine works one order per symbol at
    a time), the orders it finished lately, and what each broker update does
    to them."""

    __slots__ = ("current", "recent", "_oldest")

    def __init__(self) -> None:
        self.current: InFlight | None = None
        self.recent: dict[str, InFlight] = {}
        self._oldest: deque[str] = deque()  # the client ids in ``recent``, oldest first

    def open(self, order: Order, status: OrderStatus, bar: int = 0, filled: Decimal = Decimal(0)) -> InFlight:
        self.current = InFlight(order, status, filled=filled, bar=bar)
        return self.current

    def remember(self, flight: InFlight) -> None:
        """Keep a finished (or restored) order for updates that come late: the
        last ``_RECENT`` finished ones, and every one still open (its end gives
        its place among the open orders back: it is never forgotten first)."""
        cid = flight.order.client_id
        oldest = self._oldest
        if cid not in self.recent:
            oldest.append(cid)
        self.recent[cid] = flight
        if len(oldest) > _RECENT:  # (a deque: a dict's first key is found past every key deleted)
            for _ in range(len(oldest)):
                first = oldest.popleft()
                if self.recent[first].status not in OPEN_STATUSES:
                    del self.recent[first]
                    return
                oldest.append(first)  # still open: kept

    def find(self, client_id: str) -> InFlight | None:
        cur = self.current
        if cur is not None and cur.order.client_id == client_id:
            return cur
        return self.recent.get(client_id)

    def apply(self, update: OrderUpdate) -> Applied:
        """Apply ``update``: fills add to the order's cumulative quantity
        (whatever its status: a fill is the truth of the position), and the
        status moves where the table allows."""
        flight = self.find(update.client_id)
        if flight is None:
            return _NOT_HERE
        if update.venue_id:
            flight.venue_id = update.venue_id
        fill = update.fill
        if fill is None:
            to = STATUS_OF_UPDATE[update.kind]
        else:
            flight.filled += fill.qty
            to = _FILLED if flight.filled >= flight.order.qty else _PARTIALLY_FILLED
        before = flight.status
        if to not in TRANSITIONS[before]:
            return flight, None, False, 0
        flight.status = to
        still = to in OPEN_STATUSES
        opened = still - (before in OPEN_STATUSES)
        done = flight is self.current and not still
        if done:
            self.current = None
            self.remember(flight)
        return flight, to, done, opened

    def settle(self, flight: InFlight, status: OrderStatus) -> None:
        """``flight`` ended without an update (lost): the order in flight is
        forgotten as such, one remembered keeps its place among the recent."""
        flight.status = status
        if flight is self.current:
            self.current = None
            self.remember(flight)


# ------------------------------------------------------------ client ids

CLIENT_ID_MAX = 36  # Binance's limit; Alpaca allows 128
_CLIENT_ID_CHARS = re.compile(r"^[.A-Za-z0-9:/_-]+$")


def client_id_prefix(engine_id: str, symbols: list[str] | tuple[str, ...] = ()) -> str:
    """The engine's part of its client ids: the engine id itself when every id
    it makes fits every venue's rules (36 characters of ``[.A-Za-z0-9:/_-]``
    with a sequence up to 10 digits), else ``e`` and 8 hex digits of its hash
    (deterministic, so a restart makes the same ids)."""
    longest = max((len(s) for s in symbols), default=12)
    if _CLIENT_ID_CHARS.match(engine_id) and len(engine_id) + longest + 12 <= CLIENT_ID_MAX:
        return engine_id
    return "e" + blake2b(engine_id.encode(), digest_size=4).hexdigest()


def client_id_head(prefix: str, symbol: str) -> str:
    """What every client id of the symbol starts with, the sequence's digits
    following: ``make_client_id`` of the longest sequence, less its digits
    (so that every id of a symbol has the same head)."""
    longest = 9_999_999_999
    return make_client_id(prefix, symbol, longest)[: -len(str(longest))]


def make_client_id(prefix: str, symbol: str, seq: int) -> str:
    cid = f"{prefix}-{symbol}-{seq}"
    if len(cid) > CLIENT_ID_MAX or not _CLIENT_ID_CHARS.match(cid):
        # symbols with characters no venue takes in an id (or very long ones)
        sym = "s" + blake2b(symbol.encode(), digest_size=4).hexdigest()
        cid = f"{prefix}-{sym}-{seq}"
    return cid


def parse_client_id(client_id: str) -> tuple[str, int]:
    """``(prefix-and-symbol part, sequence)`` of a client id made here."""
    head, _, seq = client_id.rpartition("-")
    return head, int(seq)
