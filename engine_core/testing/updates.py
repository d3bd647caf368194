"""What a broker under test reported: an ``on_update`` callback that keeps
every :class:`~engine_core.orders.OrderUpdate`, from whichever thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from engine_core.orders import OrderUpdate, UpdateKind
from engine_core.testing.waiting import TIMEOUT, wait_until


class UpdateLog:
    """Pass it as a broker's ``on_update``; read what arrived, or wait for it."""

    def __init__(self) -> None:
        self._items: list[OrderUpdate] = []
        self._lock = threading.Lock()

    def __call__(self, update: OrderUpdate) -> None:
        with self._lock:
            self._items.append(update)

    @property
    def items(self) -> list[OrderUpdate]:
        with self._lock:
            return list(self._items)

    def kinds(self, client_id: str | None = None) -> list[UpdateKind]:
        """The kinds of the updates (of one order), in arrival order."""
        return [u.kind for u in self.items if client_id is None or u.client_id == client_id]

    def fills(self, client_id: str | None = None) -> list[OrderUpdate]:
        """The updates (of one order) that carry a fill."""
        return [u for u in self.items if u.fill is not None and (client_id is None or u.client_id == client_id)]

    def wait(self, condition: Callable[[], Any], what: str = "the condition", timeout: float = TIMEOUT) -> None:
        """``wait_until``, naming the updates so far when it times out."""
        try:
            wait_until(condition, what, timeout)
        except AssertionError as err:
            raise AssertionError(f"{err}; updates so far: {self.items}") from None
