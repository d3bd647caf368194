"""The baton: live, one worker at a time processes a message, in the order
the messages arrived.

Each symbol's worker has its own thread. When many symbols get a bar at the
same instant, free-running workers interleave: lupa releases the
interpreter lock on every call into Lua, so each call hands it to another
woken worker, all the bars progress together, and each one's order leaves
near the end of the whole burst. Under the baton every message put in a
worker's inbox (its :class:`Gate`) takes a turn at the back of one
engine-wide queue, in the order the messages were put (not the order in
which the system wakes threads); a worker is woken only when its turn
begins, processes that one message, and ends the turn, which begins the
next. The first bar's order leaves after one bar's work, the second's
after two.

The baton never waits long for its holder:

- a holder about to wait (a journal fsync, a venue call waiting for its
  answer) steps aside (:func:`step_aside`): the next turn begins at once,
  and the holder goes on without the baton when its wait ends;
- a holder that keeps it ``lease`` seconds (a slow strategy) loses it: the
  watcher thread begins the next turn one to two leases after this one
  began, and the slow one goes on beside it;
- a worker still busy with an earlier message when its next turn comes
  (it stepped aside or lost the baton) does not take the baton: that turn
  begins and the next one with it, and the worker runs beside the others
  until it has caught up.

So one message holds the others back by at most two leases, whatever its
strategy does. A symbol's messages keep their order (one thread, one
inbox); a turn only says when its worker runs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from queue import SimpleQueue
from typing import Any

LEASE = 0.002  # seconds a holder keeps the baton before the next turn begins beside it

_held = threading.local()  # the Gate whose turn holds the baton on this thread, if any


class Baton:
    """The engine-wide queue of turns; ``gate`` puts a worker's inbox under it."""

    def __init__(self, lease: float | None = None) -> None:
        self.lease = LEASE if lease is None else lease
        self._lock = threading.Lock()
        self._turns: deque[Gate] = deque()  # the turns not begun, one per message put, in put order
        self._holder = 0  # the turn that holds the baton (0: none)
        self._begun = 0  # turns begun so far: each one's number
        self._busy = threading.Event()  # the watcher sleeps while nobody holds the baton
        self._closed = False
        self._watcher: threading.Thread | None = None
        self.lapsed = 0  # turns that lost the baton by the lease

    def gate(self, inbox: Any) -> Gate:
        """``inbox`` (a worker's queue) under the baton; what it holds already
        (a broker's update from the reconciliation at start) takes turns too."""
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="baton", daemon=True)
            self._watcher.start()
        gate = Gate(self, inbox)
        for _ in range(inbox.qsize()):
            self._queue(gate)
        return gate

    def close(self) -> None:
        """End the watcher (the workers have ended)."""
        with self._lock:
            self._closed = True
            self._busy.set()

    def _queue(self, gate: Gate) -> None:
        with self._lock:
            if gate.left:
                return
            self._turns.append(gate)
            if not self._holder:
                self._pass()
                if not self._busy.is_set():
                    self._busy.set()

    def _pass(self) -> None:
        """Under the lock: begin the next turns up to one whose worker is free
        to take the baton (or none is left)."""
        turns = self._turns
        while turns:
            gate = turns.popleft()
            self._begun += 1
            gate.open += 1
            gate.handed.put(self._begun)
            if gate.open == 1:  # not busy with an earlier turn: it holds the baton
                self._holder = self._begun
                return
        self._holder = 0

    def end(self, gate: Gate, turn: int) -> None:
        """``gate``'s worker has processed the message of ``turn``."""
        with self._lock:
            gate.open -= 1
            if self._holder == turn:
                self._pass()

    def step_aside(self, turn: int) -> None:
        """The worker in ``turn`` goes on without the baton."""
        with self._lock:
            if self._holder == turn:
                self._pass()

    def leave(self, gate: Gate, turn: int) -> None:
        """``gate``'s worker has ended: its turns are dropped, and the baton
        passes on if one of them holds it."""
        with self._lock:
            gate.left = True
            if any(g is gate for g in self._turns):
                self._turns = deque(g for g in self._turns if g is not gate)
            ours = {turn}  # and the turns begun for it that it will not take
            while not gate.handed.empty():
                ours.add(gate.handed.get_nowait())
            if self._holder in ours:
                self._pass()

    def _watch(self) -> None:
        seen = 0  # the turn that held the baton at the last look
        while True:
            self._busy.wait()
            time.sleep(self.lease)
            with self._lock:
                if self._closed:
                    return
                if not self._holder:
                    self._busy.clear()
                elif self._holder == seen:  # held since the last look, a lease ago at least
                    self.lapsed += 1
                    self._pass()
                seen = self._holder


class Gate:
    """A worker's inbox under the baton: ``put`` queues a turn, ``get`` waits
    for the next turn begun for this worker and returns its message; the
    worker calls ``end`` when it has processed it (``leave`` when it ends)."""

    def __init__(self, baton: Baton, inbox: Any) -> None:
        self.baton = baton
        self.inbox = inbox
        self.handed: SimpleQueue[int] = SimpleQueue()  # the turns begun for this worker, not yet taken
        self.open = 0  # turns begun for it and not ended (under the baton's lock)
        self.turn = 0  # the turn the worker is in
        self.left = False
        self.get_nowait = inbox.get_nowait  # outside the turns: a worker that has ended takes what is left

    def put(self, msg: Any) -> None:
        self.inbox.put(msg)  # first: a turn begun finds its message
        self.baton._queue(self)

    def get(self) -> Any:
        self.turn = self.handed.get()
        _held.gate = self
        return self.inbox.get()

    def end(self) -> None:
        _held.gate = None
        self.baton.end(self, self.turn)

    def leave(self) -> None:
        _held.gate = None
        self.baton.leave(self, self.turn)

    def qsize(self) -> int:
        return int(self.inbox.qsize())

    def empty(self) -> bool:
        return bool(self.inbox.empty())


def step_aside() -> None:
    """The calling thread is about to wait (an fsync, a venue's answer): if it
    holds the baton, the next turn begins now and the caller goes on without it."""
    gate = getattr(_held, "gate", None)
    if gate is not None:
        _held.gate = None
        gate.baton.step_aside(gate.turn)
