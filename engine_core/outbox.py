"""Where a step writes what happened: one record (an event), which the
journal keeps as its row when a journal is kept, and the event bus
publishes when anything listens. A step builds the record once, and only
when one of them takes it (``wanted``)."""

from __future__ import annotations

from collections.abc import Callable

from engine_core.events import EventBus
from engine_core.journal import Journal
from engine_core.model import ErrorEvent, FillEvent, OrderEvent, TransitionEvent

Record = TransitionEvent | OrderEvent | FillEvent | ErrorEvent


def wanted(journal: Journal | None, bus: EventBus) -> bool:
    """Whether a record would be kept or heard at all."""
    return journal is not None or bus.listening


def write(journal: Journal | None, bus: EventBus, record: Record, then: Callable[[], None] | None = None) -> None:
    """Journal ``record`` (in the caller's transaction, if any), then publish
    it. ``then``: an intent nobody waits for, called once it is on disk
    (``Journal.order``)."""
    if journal is not None:
        journal.record(record, then)
    if bus.listening:
        bus.emit(record)
