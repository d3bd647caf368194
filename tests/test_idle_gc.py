"""Live, the garbage collector runs between bursts (engine_core/idle_gc.py):
CPython's automatic collections are off for the run, and what they would
have collected is collected when the baton's watcher finds the engine idle."""

from __future__ import annotations

import gc
import threading
import time
from queue import SimpleQueue

from engine_core.baton import Baton
from engine_core.idle_gc import IdleCollector

WAIT = 30


def _cycles(n: int) -> None:
    """Garbage only the cyclic collector frees."""
    for _ in range(n):
        a: list[object] = []
        a.append(a)


def test_a_run_turns_automatic_collections_off_and_gives_them_back():
    assert gc.isenabled()
    collector = IdleCollector()
    collector.start()
    try:
        assert not gc.isenabled()
        gc.collect()
        _cycles(10 * collector.young)  # far past the threshold: CPython would have collected by now
        assert gc.get_count()[0] > 5 * collector.young  # (a collection sets the count back to 0)
    finally:
        collector.stop()
    assert gc.isenabled()


def test_idle_collects_what_is_due_and_busy_only_far_past_it():
    collector = IdleCollector(full_every=3600, busy_limit=50_000)
    collector.start()
    try:
        gc.collect()
        _cycles(collector.young * 2)
        collector.busy()  # under the busy limit: a burst is not interrupted
        assert collector.collections == [0, 0, 0]
        assert gc.get_count()[0] >= collector.young
        collector.idle()
        assert collector.collections == [1, 0, 0]
        assert gc.get_count()[0] < collector.young
        _cycles(60_000)
        collector.busy()  # far past it: collected even while busy
        assert collector.collections == [2, 0, 0]
        collector.full_every = 0.0
        collector.idle()  # a full collection is due
        assert collector.collections[2] == 1
    finally:
        collector.stop()


def test_the_watcher_collects_once_a_burst_is_over():
    collector = IdleCollector(full_every=3600)
    collector.start()
    baton = Baton(lease=0.001, collector=collector)
    done = threading.Event()
    inbox: list[int] = []

    def work(msg: object) -> bool:
        if msg is None:
            return False
        _cycles(collector.young * 2)  # a bar's garbage
        inbox.append(1)
        if len(inbox) == 3:
            done.set()
        return True

    gate = baton.gate(SimpleQueue(), work)
    threading.Thread(target=gate.serve, daemon=True).start()
    try:
        for _ in range(3):
            gate.put(1)
        assert done.wait(WAIT)
        deadline = time.monotonic() + WAIT
        while collector.collections == [0, 0, 0] and time.monotonic() < deadline:
            time.sleep(0.005)
        assert collector.collections[0] + collector.collections[1] >= 1
        assert gc.get_count()[0] < collector.young
    finally:
        gate.put(None)
        baton.close()
        collector.stop()


def test_nothing_is_collected_while_a_turn_is_on_its_way():
    """A venue order's send comes as a turn once its intent is on disk: the
    baton is idle meanwhile, but the burst is not over, and a collection
    then would hold the send back."""
    collector = IdleCollector(full_every=3600)
    collector.start()
    baton = Baton(lease=0.001, collector=collector)
    on_its_way = threading.Event()
    on_its_way.set()
    baton.expecting = on_its_way.is_set
    done = threading.Event()

    def work(msg: object) -> bool:
        if msg is None:
            return False
        _cycles(collector.young * 2)
        done.set()
        return True

    gate = baton.gate(SimpleQueue(), work)
    threading.Thread(target=gate.serve, daemon=True).start()
    try:
        gate.put(1)
        assert done.wait(WAIT)
        time.sleep(0.05)  # fifty leases idle, the turn still on its way
        assert collector.collections == [0, 0, 0]
        on_its_way.clear()
        gate.put(1)  # it came: once it is over, what is due is collected
        deadline = time.monotonic() + WAIT
        while collector.collections == [0, 0, 0] and time.monotonic() < deadline:
            time.sleep(0.005)
        assert collector.collections[0] + collector.collections[1] >= 1
    finally:
        gate.put(None)
        baton.close()
        collector.stop()
