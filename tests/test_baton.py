"""The baton (engine_core/baton.py): workers take turns in the order their
messages were put, and a holder that waits or is slow does not keep the others
waiting. No timing is asserted: each test waits for what must happen."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

import engine_core.baton as baton_module
from engine_core.baton import Baton, Gate, step_aside

WAIT = 30  # seconds: only a broken baton gets near it


def _workers(
    baton: Baton,
    names: str,
    act: Callable[[str, Any], None],
    queued: dict[str, list[Any]] | None = None,
    threads: list[threading.Thread] | None = None,
) -> dict[str, Gate]:
    """One thread per name running turns (any name's) through the baton,
    calling ``act`` on each message until a name gets None (then it ends);
    ``queued``: what a worker's inbox holds before its gate is made."""
    inboxes: dict[str, SimpleQueue[Any]] = {name: SimpleQueue() for name in names}
    for name, messages in (queued or {}).items():
        for msg in messages:
            inboxes[name].put(msg)

    def work(name: str, msg: Any) -> bool:
        if msg is None:
            return False
        act(name, msg)
        return True

    gates = {name: baton.gate(inboxes[name], functools.partial(work, name)) for name in names}
    for gate in gates.values():
        thread = threading.Thread(target=gate.serve, daemon=True)
        thread.start()
        if threads is not None:
            threads.append(thread)
    return gates


def _end(baton: Baton, gates: dict[str, Gate]) -> None:
    """Every worker ends (its threads with it), then the baton's watcher."""
    for gate in gates.values():
        gate.put(None)
    baton.close()


def test_turns_follow_the_order_the_messages_were_put_in():
    baton = Baton(lease=WAIT)  # no turn lapses: the order is the baton's alone
    done: list[tuple[str, int]] = []
    finished = threading.Event()
    order = [(name, burst) for burst in range(5) for name in ("DCBAEHGF", "ABCDEFGH", "HGFEDCBA")[burst % 3]]

    def act(name: str, burst: Any) -> None:
        threading.Event().wait(0.0005)  # lets the interpreter lock go, as a call into Lua does
        done.append((name, burst))
        if len(done) == len(order):
            finished.set()

    gates = _workers(baton, "ABCDEFGH", act)
    for name, burst in order:
        gates[name].put(burst)
    assert finished.wait(WAIT)
    assert done == order
    _end(baton, gates)


def test_a_holder_that_steps_aside_lets_the_next_turns_go_on():
    baton = Baton(lease=WAIT)
    waiting, release = threading.Event(), threading.Event()
    done: list[str] = []
    others = threading.Event()

    def act(name: str, msg: Any) -> None:
        if name == "A":
            step_aside()  # about to wait (an fsync, a venue's answer)
            waiting.set()
            assert release.wait(WAIT)
        done.append(name)
        if {"B", "C"} <= set(done):
            others.set()

    gates = _workers(baton, "ABC", act)
    for name in "ABC":
        gates[name].put(1)
    assert waiting.wait(WAIT)
    assert others.wait(WAIT)  # B and C came after A and finished while A waits
    release.set()
    _end(baton, gates)


def test_a_holder_that_keeps_the_baton_loses_it_after_its_lease_and_catches_up_beside_the_others():
    baton = Baton(lease=0.005)
    release = threading.Event()
    done: list[tuple[str, int]] = []
    c_done, a_done = threading.Event(), threading.Event()

    def act(name: str, msg: Any) -> None:
        if (name, msg) == ("A", 1):
            assert release.wait(WAIT)  # a slow strategy: holds on without stepping aside
        done.append((name, msg))
        if name == "C":
            c_done.set()
        if (name, msg) == ("A", 2):
            a_done.set()

    gates = _workers(baton, "ABC", act)
    gates["A"].put(1)
    gates["B"].put(1)
    gates["A"].put(2)  # its turn comes while A is still busy: it does not hold C back
    gates["C"].put(1)
    assert c_done.wait(WAIT)
    assert done == [("B", 1), ("C", 1)]
    release.set()
    assert a_done.wait(WAIT)
    _end(baton, gates)
    assert sorted(done) == [("A", 1), ("A", 2), ("B", 1), ("C", 1)]
    assert baton.lapsed >= 1


def test_a_worker_that_ends_gives_up_its_turns():
    baton = Baton(lease=WAIT)
    done: list[str] = []
    b_done = threading.Event()

    def act(name: str, msg: Any) -> None:
        done.append(name)
        b_done.set()

    gates = _workers(baton, "AB", act)
    gates["A"].put(None)  # A ends at its first turn, with a message still queued behind
    gates["A"].put(1)
    gates["B"].put(1)
    assert b_done.wait(WAIT)
    assert done == ["B"]
    gates["B"].put(None)
    baton.close()


def test_what_an_inbox_holds_when_its_gate_is_made_takes_turns_too():
    """A restart's reconciliation can deliver a broker update before the
    workers start: it is processed, and every later message after it."""
    baton = Baton(lease=WAIT)
    done: list[tuple[str, Any]] = []
    finished = threading.Event()

    def act(name: str, msg: Any) -> None:
        done.append((name, msg))
        if len(done) == 4:
            finished.set()

    gates = _workers(baton, "AB", act, queued={"A": ["update"]})
    gates["B"].put("bar")
    gates["A"].put("bar")
    gates["A"].put("bar 2")
    assert finished.wait(WAIT)
    assert done == [("A", "update"), ("B", "bar"), ("A", "bar"), ("A", "bar 2")]
    _end(baton, gates)


def test_a_burst_for_idle_workers_runs_on_the_thread_that_ended_the_turn_before():
    """No thread is woken per bar: the thread ending a turn runs the next."""
    baton = Baton(lease=WAIT)
    release, finished = threading.Event(), threading.Event()
    ran: list[tuple[str, int]] = []

    def act(name: str, msg: Any) -> None:
        if name == "A":
            assert release.wait(WAIT)  # the burst queues up behind A's turn
        ran.append((name, threading.get_ident()))
        if len(ran) == 8:
            finished.set()

    gates = _workers(baton, "ABCDEFGH", act)
    for name in "ABCDEFGH":
        gates[name].put(1)
    release.set()
    assert finished.wait(WAIT)
    assert [name for name, _ in ran] == list("ABCDEFGH")
    assert {thread for _, thread in ran} == {ran[0][1]}  # one thread ran the whole burst
    assert baton.woken == 1  # only the first turn woke a thread
    _end(baton, gates)


def test_a_worker_runs_on_one_thread_at_a_time_in_order_whatever_its_turns_do():
    """Holders that step aside or lose the baton, turns begun for busy
    workers: each worker's messages are still processed one at a time, in
    the order they were put, and every one of them is."""
    baton = Baton(lease=0.0005)
    names, per_name = "ABCDEF", 60
    inside: dict[str, int] = dict.fromkeys(names, 0)
    seen: dict[str, list[int]] = {name: [] for name in names}
    overlaps: list[str] = []
    finished = threading.Event()
    lock = threading.Lock()

    def act(name: str, msg: Any) -> None:
        with lock:
            inside[name] += 1
            if inside[name] > 1:
                overlaps.append(name)
        if msg % 3 == 0:
            step_aside()
            threading.Event().wait(0.0003)  # an fsync
        elif msg % 7 == 0:
            time.sleep(0.002)  # slow: loses the baton
        with lock:
            inside[name] -= 1
            seen[name].append(msg)
            if sum(map(len, seen.values())) == len(names) * per_name:
                finished.set()

    gates = _workers(baton, names, act)
    for msg in range(per_name):
        for name in names if msg % 2 else reversed(names):
            gates[name].put(msg)
    assert finished.wait(WAIT)
    assert overlaps == []
    assert seen == {name: list(range(per_name)) for name in names}
    _end(baton, gates)


def test_every_thread_ends_once_every_worker_has_ended():
    baton = Baton(lease=0.0005)
    threads: list[threading.Thread] = []

    def act(name: str, msg: Any) -> None:
        if msg == 2:
            step_aside()
            time.sleep(0.01)

    gates = _workers(baton, "ABCD", act, threads=threads)
    for name in "ABCD":
        gates[name].put(1)
        gates[name].put(2)
    for name in "DCBA":
        gates[name].put(None)
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads)
    baton.close()


def _burst_and_listener(monkeypatch, idle_every: float, messages: int):
    """A baton whose idle listener records whether a burst of ``messages``
    (each letting the interpreter lock go for 0.5 ms) was running when told."""
    monkeypatch.setattr(baton_module, "IDLE_EVERY", idle_every)
    baton = Baton(lease=0.001)
    running = threading.Event()  # set from the burst's first message to the end of its last
    told: list[bool] = []  # for each time the listener was told: whether the burst was running
    baton.on_idle(lambda: told.append(running.is_set()))
    done = threading.Event()
    count = [0]

    def act(name: str, msg: Any) -> None:
        running.set()
        threading.Event().wait(0.0005)
        count[0] += 1
        if count[0] == messages:
            running.clear()
            done.set()

    gates = _workers(baton, "ABCD", act)
    for i in range(messages):
        gates["ABCD"[i % 4]].put(i)
    assert done.wait(WAIT)
    deadline = time.monotonic() + WAIT
    while (not told or told[-1]) and time.monotonic() < deadline:  # the watcher's next look finds it over
        time.sleep(0.001)
    _end(baton, gates)
    return told


def test_idle_listeners_are_told_once_a_burst_is_over_not_in_the_middle_of_it(monkeypatch):
    told = _burst_and_listener(monkeypatch, idle_every=WAIT, messages=40)
    assert told and not any(told)  # told after the burst, never while it ran


def test_idle_listeners_are_still_told_while_turns_run_throughout(monkeypatch):
    told = _burst_and_listener(monkeypatch, idle_every=0.005, messages=400)  # 0.2 s of turns at least
    assert any(told)  # told while the burst ran: an engine never idle still gets its sinks' work done
    assert told[-1] is False  # and once it was over
