"""Live on a venue, with the journal, an order's intent is on disk before the
order leaves, but no step waits for that: the order is sent at a turn of its
worker that the journal's writer gives it once the fsync has ended
(``decisions.send``). Until then it is ``intent`` and not sent: a cancel
ends it there (never sent), and so does a stop (``lost``, never sent)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import engine_core.halts as halts
import engine_core.journal_sync as journal_sync
import engine_core.recovery as recovery
from engine_core.baton import Gate
from engine_core.journal import Journal
from engine_core.runner import build_engine
from engine_core.testing import EngineThread, python_strategy, replay_rows, venue, write_config
from engine_core.worker import STOP

ENTER_AND_EXIT = {
    "watch": "return {'action': 'enter', 'qty': 1} if ctx.index % 4 == 0 else None",
    "in_trade": "return 'exit' if ctx.index % 4 == 2 else None",
}


def live_config(tmp_path, strategy: dict[str, str], name: str, *, symbols=("A", "B", "C"), n=40, pace=0.005):
    """A live run on the scripted venue ``name``, its journal synced as a live run's is by default."""
    rows = sorted((row for s in symbols for row in replay_rows(s, [100.0] * n)), key=lambda r: r[1])
    venue(name, reset=True)
    return write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": list(symbols), "window": 20},
            "source": {"type": "replay", "bars": rows, "pace": pace},
            "strategy": python_strategy(tmp_path, **strategy),
            "broker": {"type": "scripted", "venue": name, "script": ["ack", "fill"]},
        },
    )


def journal_orders(tmp_path) -> dict[str, dict[str, Any]]:
    journal = Journal(tmp_path / ".engine" / "c.sqlite")
    try:
        return {row["client_id"]: row for row in journal.orders()}
    finally:
        journal.close()


def journal_details(tmp_path, client_id: str) -> list[tuple[str, str]]:
    """(kind, detail) of each event of the order, in order."""
    journal = Journal(tmp_path / ".engine" / "c.sqlite")
    try:
        return [(e["kind"], e.get("detail", "")) for e in journal.events() if e.get("client_id") == client_id]
    finally:
        journal.close()


def test_a_venue_order_leaves_only_once_its_intent_is_on_disk_and_no_step_waits_for_it(tmp_path, monkeypatch):
    engine = build_engine(live_config(tmp_path, ENTER_AND_EXIT, "send-after-sync"))
    commits: dict[str, int] = {}  # client id -> its intent's commit
    naming = threading.local()
    order = Journal.order

    def journal_order(self: Journal, o: Any, status: Any, **kw: Any) -> None:
        naming.client_id = o.client_id
        order(self, o, status, **kw)

    then = journal_sync.GroupCommit.then

    def followed(self: journal_sync.GroupCommit, commit: int, call: Any) -> None:
        commits[naming.client_id] = commit
        then(self, commit, call)

    waited: list[str] = []  # the worker threads that waited for the disk (start-up's waits are the main thread's)
    wait = journal_sync.GroupCommit.wait

    def waits(self: journal_sync.GroupCommit, commit: int) -> None:
        if threading.current_thread().name.startswith("worker-"):
            waited.append(threading.current_thread().name)
        wait(self, commit)

    monkeypatch.setattr(Journal, "order", journal_order)
    monkeypatch.setattr(journal_sync.GroupCommit, "then", followed)
    monkeypatch.setattr(journal_sync.GroupCommit, "wait", waits)
    sent: list[tuple[str, bool]] = []  # client id, its intent on disk when the venue got it
    submit = engine.broker.submit

    def venue_gets(o: Any) -> Any:
        group = engine.journal._group  # type: ignore[union-attr]
        sent.append((o.client_id, group._applied >= commits[o.client_id] and group.fsyncs > 0))
        return submit(o)

    monkeypatch.setattr(engine.broker, "submit", venue_gets)
    result = engine.run()
    orders = sum(r.orders for r in result.symbols.values())
    assert orders >= 20 and len(sent) == orders
    assert all(on_disk for _, on_disk in sent), [cid for cid, on_disk in sent if not on_disk]
    assert waited == []  # no step waited for the disk: not one per order as before
    rows = journal_orders(tmp_path)
    assert {cid for cid, _ in sent} == set(rows)  # every intent was sent, once
    assert {row["status"] for row in rows.values()} <= {"filled", "accepted", "submitted"}
    assert set(venue("send-after-sync").orders) == set(rows)


def unsent(engine: Any) -> bool:
    """A's order in flight waits for its intent's sync (to be sent)."""
    a = engine.workers.get("A")
    flight = a.orders.current if a is not None else None
    return flight is not None and flight.unsent


def hold_fsyncs_while(monkeypatch, busy) -> None:
    """Each fsync of the journal's log waits (up to 10 s) while ``busy()`` says so."""
    real = journal_sync.os.fsync

    def fsync(fd: int) -> None:
        gate = threading.Event()
        for _ in range(1000):
            if not busy():
                break
            gate.wait(0.01)
        real(fd)

    monkeypatch.setattr(journal_sync.os, "fsync", fsync)


def test_an_order_cancelled_before_its_intent_is_on_disk_is_never_sent(tmp_path, monkeypatch):
    """A halt in the entry's own step (a snapshot that cannot be taken, say)
    cancels the entry before its turn to be sent: it ends ``cancelled`` at
    once and the venue never gets it, though its intent reaches the disk."""
    strategy = {"watch": "return {'action': 'enter', 'qty': 1} if ctx.index == 2 else None"}
    engine = build_engine(live_config(tmp_path, strategy, "cancel-before-send", symbols=("A",), n=8, pace=0.02))
    persist = recovery.persist
    halted: list[bool] = []

    def persist_then_halt(w: Any, soon: bool = False) -> None:  # the entry's snapshot, taken once its order waits
        persist(w, soon)
        if not halted and w.orders.current is not None and w.orders.current.unsent:
            halted.append(True)
            halts.halt(w, "A: something failed after the entry, in the same step", None)

    monkeypatch.setattr(recovery, "persist", persist_then_halt)
    result = engine.run().symbols["A"]
    assert venue("cancel-before-send").orders == {}
    (client_id, row), *others = journal_orders(tmp_path).items()
    assert others == [] and row["status"] == "cancelled"
    assert journal_details(tmp_path, client_id) == [("intent", ""), ("cancelled", "cancelled before it was sent")]
    assert result.orders == 0 and result.final_state == "watch" and result.position_qty == 0
    assert result.halted == "A: something failed after the entry, in the same step"


def test_what_comes_for_a_symbol_after_its_order_finds_the_order_sent(tmp_path, monkeypatch):
    """The symbol's next bar comes before its order's intent is on disk: the
    worker waits for the disk then, sends the order, and only then takes the
    bar. A symbol's events come in the order a step that waited for the disk
    made them, which a replay of the session makes again."""
    strategy = {"watch": "return {'action': 'enter', 'qty': 1} if ctx.index == 2 else None"}
    engine = build_engine(live_config(tmp_path, strategy, "next-bar", symbols=("A",), n=8, pace=0.02))
    next_came = threading.Event()
    put = Gate.put

    def next_message(gate: Gate, msg: Any) -> None:  # a message for A while its order waits for the disk
        if unsent(engine):
            next_came.set()
        put(gate, msg)

    monkeypatch.setattr(Gate, "put", next_message)
    hold_fsyncs_while(monkeypatch, lambda: unsent(engine) and not next_came.is_set())
    bars_done: list[tuple[str, int]] = []  # at the intent, and when the venue gets the order
    order = Journal.order

    def journal_order(self: Journal, o: Any, status: Any, **kw: Any) -> None:
        if status.value == "intent":
            bars_done.append(("intent", engine.workers["A"].bars_done))
        order(self, o, status, **kw)

    def venue_gets(o: Any) -> Any:
        bars_done.append(("sent", engine.workers["A"].bars_done))
        return submit(o)

    monkeypatch.setattr(Journal, "order", journal_order)
    submit = engine.broker.submit
    monkeypatch.setattr(engine.broker, "submit", venue_gets)
    result = engine.run().symbols["A"]
    assert next_came.is_set()  # the next bar came before the intent was on disk
    (_, at_intent), sent = bars_done
    assert sent == ("sent", at_intent + 1)  # once the entry's bar was done, before the next one
    assert result.orders == 1 and result.final_state == "in_trade"
    (client_id, _), *others = journal_orders(tmp_path).items()
    assert [kind for kind, _ in journal_details(tmp_path, client_id)] == ["intent", "submitted", "accepted", "fill"]


@pytest.mark.parametrize("feed_ends", [False, True])
def test_an_order_whose_intent_is_not_on_disk_when_the_engine_stops_is_never_sent(tmp_path, monkeypatch, feed_ends):
    """Stopped (Ctrl-C) while the entry's intent is on its way to the disk:
    the order is ``lost`` and never sent, whether its turn comes before the
    worker ends or not (the fsync ends after the stop). Not stopped, a feed
    that ends first leaves it to be sent (the run's last order goes out)."""
    strategy = {"watch": "return {'action': 'enter', 'qty': 1} if ctx.index == 2 else None"}
    name = f"stop-before-send-{feed_ends}"
    engine = build_engine(live_config(tmp_path, strategy, name, symbols=("A",), n=3 if feed_ends else 50, pace=0.02))
    holding, finishing = threading.Event(), threading.Event()
    put = Gate.put

    def worker_ends(gate: Gate, msg: Any) -> None:  # STOP came: the worker sends the order first
        if msg is STOP:
            finishing.set()
        put(gate, msg)

    monkeypatch.setattr(Gate, "put", worker_ends)

    def busy() -> bool:
        if not unsent(engine):
            return False
        holding.set()
        return not (engine.stop_event.is_set() or finishing.is_set())

    hold_fsyncs_while(monkeypatch, busy)
    run = EngineThread(engine).start()
    assert holding.wait(10)
    if feed_ends:
        result = run.join()
    else:
        result = run.stop()
    assert result is not None
    (client_id, row), *others = journal_orders(tmp_path).items()
    assert others == []
    if feed_ends:  # the worker's end waited for the sync, then sent it
        assert set(venue(name).orders) == {client_id} and row["status"] != "lost"
        return
    assert venue(name).orders == {}
    assert row["status"] == "lost"
    assert journal_details(tmp_path, client_id)[-1] == (
        "lost",
        "never sent: the engine stopped before its intent was on disk",
    )
    assert result.symbols["A"].final_state == "watch" and result.symbols["A"].halted is None
