"""The baton: live, one worker at a time processes a message, in the order
the messages arrived, and the thread that ends a turn runs the next one.

Each symbol's worker has its own thread. When many symbols get a bar at the
same instant, free-running workers interleave: lupa releases the
interpreter lock on every call into Lua, so each call hands it to another
woken worker, all the bars progress together, and each one's order leaves
near the end of the whole burst. Under the baton every message put in a
worker's inbox (its :class:`Gate`) takes a turn at the back of one
engine-wide queue, in the order the messages were put (not the order in
which the system wakes threads). The first bar's order leaves after one
bar's work, the second's after two.

A turn is run by whichever thread is free for it, not only by its worker's
own: the thread that ends a turn runs the next one itself when that worker
is idle. So a burst of bars for many symbols is worked through on one
thread, bar after bar, with no thread woken per bar (a wake-up costs about
30 us here, and the bar after it runs 3-4x slower on cold caches). A thread
is woken only when a turn begins with no thread ending one: the first of a
burst, or when the holder steps aside or loses the baton. Every thread can
run any worker's turn; there are as many threads as workers, so a free one
is always there while any worker is idle. A worker is run by one thread at
a time, its messages in the order they were put.

The baton never waits long for its holder:

- a holder about to wait (a journal fsync, a venue call waiting for its
  answer) steps aside (:func:`step_aside`): the next turn begins at once on
  another thread, and the holder goes on without the baton when its wait
  ends;
- a holder that keeps it ``lease`` seconds (a slow strategy) loses it: the
  watcher thread begins the next turn one to two leases after this one
  began, and the slow one goes on beside it;
- a worker still busy with an earlier message when its next turn comes
  (it stepped aside or lost the baton) does not take the baton: that turn
  begins and the next one with it, and the thread running that worker runs
  its later turns too once it has caught up.

So one message holds the others back by at most two leases, whatever its
strategy does.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine_core.idle_gc import IdleCollector

LEASE = 0.002  # seconds a holder keeps the baton before the next turn begins beside it
IDLE_EVERY = 0.05  # seconds: turns running throughout, the idle listeners are still told this often

_held = threading.local()  # the Gate whose turn holds the baton on this thread, if any


class Baton:
    """The engine-wide queue of turns, and the threads that run them;
    ``gate`` puts a worker's inbox under it."""

    def __init__(self, lease: float | None = None, collector: IdleCollector | None = None) -> None:
        self.lease = LEASE if lease is None else lease
        self.collector = collector  # the garbage collector's runs, when no turn holds the baton (idle_gc.py)
        self._lock = threading.Lock()
        self._turns: deque[Gate] = deque()  # the turns not begun, one per message put, in put order
        self._holder = 0  # the turn that holds the baton (0: none)
        self._begun = 0  # turns begun so far: each one's number
        self._parked: list[Gate] = []  # gates whose own threads wait for a turn to run (last parked last)
        self._unrun: deque[Gate] = deque()  # idle gates with a turn begun and no free thread yet (start-up)
        self._busy = threading.Event()  # the watcher sleeps while nobody holds the baton
        self._closed = False
        self._watcher: threading.Thread | None = None
        # turns on their way (a venue order's send, once its intent is on disk): while
        # it says so, an idle baton is not a burst that is over, and nothing is collected
        self.expecting: Callable[[], bool] | None = None
        self._listeners: list[Callable[[], None]] = []  # told when a burst is over (on_idle)
        self.lapsed = 0  # turns that lost the baton by the lease
        self.woken = 0  # turns begun by waking a thread (the others ran on the thread that ended the last)

    @property
    def begun(self) -> int:
        """Turns begun so far."""
        return self._begun

    def idle(self) -> bool:
        """No turn holds the baton, and none waits for it: a burst is over."""
        return not self._holder and not self._turns

    def on_idle(self, listener: Callable[[], None]) -> None:
        """``listener()`` is called on the watcher's thread when a burst of
        turns is over (no turn has held the baton for a lease, and none is on
        its way: ``expecting``), and at least every ``IDLE_EVERY`` seconds
        while turns run throughout: the moment for work that would take the
        interpreter from a burst. It must return at once."""
        self._listeners.append(listener)

    def gate(self, inbox: Any, work: Callable[[Any], bool]) -> Gate:
        """``inbox`` (a worker's queue) under the baton; ``work`` processes one
        of its messages and returns False when the worker has ended. What the
        inbox holds already (a broker's update from the reconciliation at
        start) takes turns too."""
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="baton", daemon=True)
            self._watcher.start()
        gate = Gate(self, inbox, work)
        for _ in range(inbox.qsize()):
            self._queue(gate)
        return gate

    def close(self) -> None:
        """End the watcher (the workers have ended)."""
        with self._lock:
            self._closed = True
            self._busy.set()

    # ------------------------------------------------------------ turns (under the lock)

    def _queue(self, gate: Gate, first: bool = False) -> None:
        with self._lock:
            if gate.left:
                return
            if first:
                self._turns.appendleft(gate)
            else:
                self._turns.append(gate)
            if not self._holder:
                self._pass(None)
                if not self._busy.is_set():
                    self._busy.set()

    def _pass(self, here: Gate | None) -> Gate | None:
        """Under the lock: begin the next turns up to one whose worker is idle,
        which takes the baton. Its gate is returned when ``here`` (the gate of
        a thread that has just ended a turn and is free) is given: that thread
        runs it. Otherwise a parked thread is woken for it."""
        turns = self._turns
        while turns:
            gate = turns.popleft()
            self._begun += 1
            gate.begun.append(self._begun)
            if not gate.running:  # idle: it holds the baton
                gate.running = True
                self._holder = self._begun
                if here is not None:
                    return gate
                self._wake(gate)
                return None
        self._holder = 0
        return None

    def _wake(self, gate: Gate) -> None:
        """Under the lock: the thread parked last (its caches the warmest) runs
        ``gate``'s turn; with none parked, the next thread that is free does."""
        if not self._parked:
            self._unrun.append(gate)
            return
        home = self._parked.pop()
        home.parked = False
        self.woken += 1
        home.assigned.put(gate)

    def _park(self, home: Gate) -> Gate | None:
        """Under the lock: the thread of ``home`` is free. The gate to run
        next, if one is waiting for a thread; else it parks (None), or it
        ends (``home``: its worker has ended)."""
        if self._unrun:
            return self._unrun.popleft()
        if home.left:
            return home
        home.parked = True
        self._parked.append(home)
        return None

    # ------------------------------------------------------------ a thread running turns

    def serve(self, home: Gate) -> None:
        """The loop of ``home``'s own thread: run turns, any worker's, until
        ``home``'s worker has ended."""
        with self._lock:
            gate = self._park(home)
        while True:
            if gate is None:
                gate = home.assigned.get()
            if gate is home and home.left:
                return
            gate = self._run(gate, home)

    def _run(self, gate: Gate, home: Gate) -> Gate | None:
        """Run the next turn of ``gate`` on this thread (whose own gate is
        ``home``); the gate whose turn this thread runs next (``home`` once
        its worker has ended: the thread ends), None once it has parked."""
        # Without the lock: only the thread running a gate takes its turns, and
        # a deque's append (``_pass``, under the lock) and popleft are atomic.
        turn = gate.begun.popleft()
        _held.gate, gate.turn = gate, turn
        going = raised = True
        try:
            going = gate.work(gate.inbox.get_nowait())  # its message was put before its turn was queued
            raised = False
        finally:
            _held.gate = None
            with self._lock:
                nxt: Gate | None = None
                if raised or not going:  # (a worker whose work raised is ended, as its thread would be)
                    self._leave(gate, turn)
                elif gate.begun:  # turns begun while it was busy: this thread runs them next
                    if self._holder == turn:
                        self._pass(None)
                    nxt = gate
                else:
                    gate.running = False
                    if self._holder == turn:
                        nxt = self._pass(home)
                if nxt is None and not raised:
                    nxt = self._park(home)
        return nxt

    def _leave(self, gate: Gate, turn: int) -> None:
        """Under the lock: ``gate``'s worker has ended: its turns are dropped,
        the baton passes on if one of them holds it, and its own thread ends
        when it is parked or free."""
        gate.left = True
        gate.running = False
        if any(g is gate for g in self._turns):
            self._turns = deque(g for g in self._turns if g is not gate)
        ours = {turn, *gate.begun}
        gate.begun.clear()
        if self._holder in ours:
            self._pass(None)
        if gate.parked:
            gate.parked = False
            self._parked.remove(gate)
            gate.assigned.put(gate)

    def step_aside(self, turn: int) -> None:
        """The worker in ``turn`` goes on without the baton."""
        with self._lock:
            if self._holder == turn:
                self._pass(None)

    def _watch(self) -> None:
        seen = 0  # the turn that held the baton at the last look
        collector, listeners = self.collector, self._listeners
        idle, told = True, 0.0  # at the last look; when the listeners were last told (or the burst began)
        while True:
            self._busy.wait()
            if idle:  # a burst begins
                told = time.monotonic()
            time.sleep(self.lease)
            with self._lock:
                if self._closed:
                    return
                idle = not self._holder
                if idle:
                    self._busy.clear()
                elif self._holder == seen:  # held since the last look, a lease ago at least
                    self.lapsed += 1
                    self._pass(None)
                seen = self._holder
            # (without the lock: a turn may begin meanwhile)
            over = idle and (self.expecting is None or not self.expecting())
            if collector is not None:
                if not idle:
                    collector.busy()
                elif over:
                    collector.idle()
            if listeners and (over or time.monotonic() - told >= IDLE_EVERY):
                told = time.monotonic()
                for listener in listeners:
                    listener()


class Gate:
    """A worker's inbox under the baton: ``put`` queues a turn; the worker's
    thread runs turns (``serve``) until the worker has ended."""

    def __init__(self, baton: Baton, inbox: Any, work: Callable[[Any], bool]) -> None:
        self.baton = baton
        self.inbox = inbox
        self.work = work
        # under the baton's lock:
        self.begun: deque[int] = deque()  # the turns begun for this worker, not yet run
        self.running = False  # a thread runs its turns now
        self.parked = False  # its own thread waits for a turn to run
        self.left = False  # the worker has ended
        # its own thread's: the gate whose turn to run next (itself, once its worker has ended)
        self.assigned: SimpleQueue[Gate] = SimpleQueue()
        self.turn = 0  # the turn being run
        self.get_nowait = inbox.get_nowait  # outside the turns: a worker that has ended takes what is left

    def put(self, msg: Any) -> None:
        self.inbox.put(msg)  # first: a turn begun finds its message
        self.baton._queue(self)

    def put_first(self, msg: Any) -> None:
        """``put``, its turn at the front of the queue: the next to begin (an
        order waiting to be sent goes before the bars waiting behind it). The
        worker still takes its messages in the order they were put."""
        self.inbox.put(msg)
        self.baton._queue(self, first=True)

    def serve(self) -> None:
        """The worker's own thread: run turns until the worker has ended."""
        self.baton.serve(self)

    def qsize(self) -> int:
        return int(self.inbox.qsize())

    def empty(self) -> bool:
        return bool(self.inbox.empty())


def step_aside() -> None:
    """The calling thread is about to wait (an fsync, a venue's answer): if it
    holds the baton, the next turn begins now on another thread and the
    caller goes on without it."""
    gate = getattr(_held, "gate", None)
    if gate is not None:
        _held.gate = None
        gate.baton.step_aside(gate.turn)
