"""A restart on the fake Binance finds orders working on the book that its
journal does not have open (``Broker.open_orders``, ``GET /api/v3/openOrders``):
the engine's own entry, whose journal was lost, is adopted and followed to
its fill; an order placed by hand is named in one warning line and left
alone; nothing is sent at start, and the engine's next order takes the
client id after the adopted one. The session replays to the same event log."""

from __future__ import annotations

import shutil
from contextlib import closing
from decimal import Decimal

from engine_plugin_binance.testing import OrderScript

from engine_core import Journal, State
from engine_core.recording.reader import read_segment, segment_paths, session_dirs
from engine_core.recording.replay import replay_session

D = Decimal


def test_a_restart_adopts_its_own_order_and_leaves_one_placed_by_hand_alone(
    fake, live_config, running, registry, tmp_path
):
    fake.add_history("BTCUSDT", 30, price=20000.0)
    fake.script.append(OrderScript("rest"))
    params = {"enter_at": 20100.0, "exit_at": 20300.0, "qty": 0.01, "limit": 20050.0}
    config = live_config(params=params, sinks=[{"type": "log", "path": "events.log"}])

    # run 1: the entry rests on the book when the engine stops
    with running(config) as eng:
        eng.streaming()
        w = eng.worker()
        fake.stream_bar("BTCUSDT", 20100.0)
        eng.wait(lambda: (cur := w.orders.current) is not None and cur.status.value == "accepted", "the entry")
        eng.stop()
    [entry] = fake.placed
    cid = entry["newClientOrderId"]

    # the journal is lost (a new state folder), and someone sells by hand on the same symbol
    shutil.rmtree(tmp_path / ".engine")
    manual = fake.place("BTCUSDT", "web_manual1", "SELL", "0.5", "25000")

    # run 2: the entry is adopted and followed; the manual order is named and left alone
    with running(config) as eng:
        w = eng.worker()
        eng.wait(lambda: w.started, "the restart's reconciliation and warm-up")
        assert w.orders.current.order.client_id == cid and w.orders.current.venue_id == str(entry_id(fake, cid))
        assert (w.sm.state, w.ledger.qty, w.halted) == (State.WATCH, 0, None)
        assert len(fake.placed) == 1  # nothing sent at start
        fake.fill_order(cid)  # the entry fills after the restart: the user data stream reports it
        eng.wait(lambda: w.sm.state is State.IN_TRADE, "the adopted entry's fill")
        assert w.ledger.qty == D("0.00999")
        eng.streaming()
        fake.stream_bar("BTCUSDT", 20300.0)
        eng.wait(lambda: w.sm.state is State.WATCH, "the exit")
        result = eng.stop()
    assert result is not None and result.symbols["BTCUSDT"].halted is None
    exit_cid = fake.placed[-1]["newClientOrderId"]
    assert [p["side"] for p in fake.placed] == ["BUY", "SELL"]
    assert exit_cid == cid[: -len("1")] + "2"  # the next client id follows the adopted one
    assert manual.status == "NEW"  # never cancelled
    with closing(Journal(tmp_path / ".engine" / "e2e.sqlite")) as j:
        rows = {r["client_id"]: r for r in j.orders(symbol="BTCUSDT")}
        adopted = [e for e in j.events(symbol="BTCUSDT", kind="accepted") if e["client_id"] == cid]
    assert set(rows) == {cid, exit_cid}  # the manual order is not the engine's
    assert (rows[cid]["status"], rows[cid]["venue_id"], rows[exit_cid]["status"]) == ("filled", "1001", "filled")
    assert [e["detail"] for e in adopted] == ["working at the broker after a restart: adopted"]
    warnings = [line for line in (tmp_path / "events.log").read_text().splitlines() if " warning: " in line]
    assert warnings == [
        "- BTCUSDT warning: 1 open order at the broker not placed by this engine, left alone (never cancelled; "
        "what they fill is not booked here and moves the position the broker reports): "
        f"{manual.order_id} (web_manual1) sell 0.50000000 limit @ 25000.00000000"
    ]

    # the recorded session replays to the same event log, the venue's open orders answered as recorded
    [day] = session_dirs(tmp_path / ".engine" / "recordings" / "e2e")
    paths = segment_paths(day)
    events = [r[9] for p in paths for r in read_segment(p).rows if r[0] == "event"]
    assert sum(" warning: " in e for e in events) == 1 and sum(": adopted" in e for e in events) == 1
    outcome = replay_session(paths, registry)
    assert outcome.divergence is None, outcome.divergence.lines() if outcome.divergence else None
    assert outcome.events == len(events)


def entry_id(fake, cid: str) -> int:
    return next(o.order_id for o in fake.orders.values() if o.client_id == cid)
