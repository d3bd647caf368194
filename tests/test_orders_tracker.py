"""The order tracker's memory of finished orders, for the updates that come late."""

from __future__ import annotations

from decimal import Decimal

from engine_core.model import Order, Side
from engine_core.orders import _RECENT, InFlight, OrderStatus, OrderTracker


def flight(k: int) -> InFlight:
    return InFlight(Order(f"e-S-{k}", "S", Side.BUY, Decimal(1), k), OrderStatus.FILLED)


def test_the_last_finished_orders_are_remembered_the_oldest_forgotten_first():
    tracker = OrderTracker()
    for k in range(_RECENT + 3):
        tracker.remember(flight(k))
    assert list(tracker.recent) == [f"e-S-{k}" for k in range(3, _RECENT + 3)]
    assert tracker.find("e-S-2") is None and tracker.find(f"e-S-{_RECENT + 2}") is not None
    again = flight(3)  # remembered again (a restore): kept once, where it was
    tracker.remember(again)
    tracker.remember(flight(_RECENT + 3))
    assert len(tracker.recent) == _RECENT and "e-S-3" not in tracker.recent
    assert list(tracker.recent)[0] == "e-S-4"


def test_an_update_says_how_the_count_of_open_orders_moved():
    """What the account's count of open orders follows: the order in flight
    done with, a remembered one that leaves the book, a lost one that a late
    fill opens again, and a move the table refuses (nothing)."""
    from engine_core.model import Fill
    from engine_core.orders import OrderUpdate, UpdateKind

    tracker = OrderTracker()
    current = tracker.open(Order("e-S-1", "S", Side.BUY, Decimal(2), 1), OrderStatus.ACCEPTED)
    remembered = InFlight(Order("e-S-0", "S", Side.BUY, Decimal(1), 0), OrderStatus.ACCEPTED)
    lost = InFlight(Order("e-S-9", "S", Side.BUY, Decimal(2), 0), OrderStatus.LOST)
    tracker.remember(remembered)
    tracker.remember(lost)

    def fill(cid: str, qty: str) -> OrderUpdate:
        f = Fill(cid, "S", Side.BUY, Decimal(qty), Decimal(100), Decimal(0), 5, f"t-{cid}-{qty}")
        return OrderUpdate(UpdateKind.PARTIAL_FILL, cid, "S", 5, f)

    assert tracker.apply(OrderUpdate(UpdateKind.CANCEL, "e-S-0", "S", 5)) == (
        remembered,
        OrderStatus.CANCELLED,
        False,
        -1,
    )
    assert tracker.apply(OrderUpdate(UpdateKind.CANCEL, "e-S-0", "S", 6)) == (remembered, None, False, 0)  # refused
    assert tracker.apply(fill("e-S-9", "1")) == (lost, OrderStatus.PARTIALLY_FILLED, False, 1)  # working after all
    assert tracker.apply(fill("e-S-9", "1")) == (lost, OrderStatus.FILLED, False, -1)
    assert tracker.apply(fill("e-S-1", "1")) == (current, OrderStatus.PARTIALLY_FILLED, False, 0)
    assert tracker.apply(fill("e-S-1", "1")) == (current, OrderStatus.FILLED, True, -1)
    assert tracker.current is None


def test_an_order_still_open_is_never_forgotten_for_newer_finished_ones():
    """A remembered order still working (restored, adopted, or lost and then
    found working) stays known however many orders finish after it: its
    fills are booked as its own and its end gives its place among the open
    orders back. The finished ones stay bounded."""
    tracker = OrderTracker()
    working = InFlight(Order("e-S-open", "S", Side.BUY, Decimal(1), 0), OrderStatus.ACCEPTED)
    tracker.remember(working)
    for k in range(3 * _RECENT):
        tracker.remember(flight(k))
    assert tracker.find("e-S-open") is working
    assert len(tracker.recent) == _RECENT
    assert tracker.find(f"e-S-{3 * _RECENT - 1}") is not None and tracker.find("e-S-0") is None
    from engine_core.orders import OrderUpdate, UpdateKind

    assert tracker.apply(OrderUpdate(UpdateKind.CANCEL, "e-S-open", "S", 5))[3] == -1  # its place given back
    for k in range(3 * _RECENT, 3 * _RECENT + _RECENT):
        tracker.remember(flight(k))
    assert tracker.find("e-S-open") is None  # finished now: forgotten in its turn
