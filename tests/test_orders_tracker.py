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
