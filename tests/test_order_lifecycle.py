"""The worker against a venue-like broker (ScriptedBroker): acks, partial
fills, rejects, cancels racing fills, timeouts, lost orders and restarts."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine_core.journal import Journal
from engine_core.model import OrderType, Side, TimeInForce
from engine_core.runner import build_engine
from engine_core.testing import python_strategy, replay_rows, scripted_live_config, venue, write_config


def config(tmp_path: Path, strategy: dict[str, str], broker: dict[str, Any], n: int = 8, pace: float = 0.02) -> Path:
    return scripted_live_config(tmp_path, strategy, broker, n=n, pace=pace)


def journal_of(tmp_path: Path) -> Journal:
    return Journal(tmp_path / ".engine" / "c.sqlite")


ENTER = {
    "watch": 'return {"action": "enter", "qty": 2} if ctx.index == 1 else None',
}


def kinds(journal: Journal) -> list[str]:
    return [e["kind"] for e in journal.events("A") if e["kind"] not in ("transition", "stops", "recovered")]


def test_ack_then_fill_arrives_asynchronously(tmp_path):
    venue("ack-fill", reset=True)
    result = build_engine(config(tmp_path, ENTER, {"venue": "ack-fill", "script": ["ack", "delay:0.03", "fill"]})).run()
    r = result.symbols["A"]
    assert (r.final_state, r.position_qty, r.fills) == ("in_trade", Decimal(2), 1)
    j = journal_of(tmp_path)
    assert kinds(j) == ["intent", "submitted", "accepted", "fill"]
    assert j.orders("A")[0]["status"] == "filled" and j.orders("A")[0]["venue_id"] == "v1"


def test_reject_after_ack_returns_the_symbol_to_watch(tmp_path):
    venue("reject", reset=True)
    result = build_engine(config(tmp_path, ENTER, {"venue": "reject", "script": ["ack", "reject"]})).run()
    r = result.symbols["A"]
    assert (r.final_state, r.position_qty, r.fills, r.halted) == ("watch", Decimal(0), 0, None)
    j = journal_of(tmp_path)
    assert kinds(j) == ["intent", "submitted", "accepted", "rejected"]
    transitions = [e for e in j.events("A", kind="transition")]
    assert [(t["frm"], t["to"]) for t in transitions] == [("watch", "close_watch"), ("close_watch", "watch")]
    assert "rejected" in transitions[-1]["reason"]


def test_partial_fill_survives_a_restart_and_the_rest_is_booked_once(tmp_path):
    v = venue("partial", reset=True)
    cfg = config(tmp_path, ENTER, {"venue": "partial", "script": ["ack", "partial:0.5", "wait"]})
    first = build_engine(cfg).run().symbols["A"]
    assert (first.final_state, first.position_qty) == ("close_watch", Decimal(1))
    j = journal_of(tmp_path)
    (order,) = j.orders("A")
    assert (order["status"], Decimal(order["filled_qty"])) == ("partially_filled", 1)
    j.close()
    # while the engine is down, the venue fills the rest
    v.fill(order["client_id"], emit=False)
    second = build_engine(cfg).run().symbols["A"]
    assert (second.final_state, second.position_qty, second.halted) == ("in_trade", Decimal(2), None)
    j = journal_of(tmp_path)
    fills = j.events("A", kind="fill")
    assert [Decimal(f["qty"]) for f in fills] == [1, 1]  # each fill booked once
    assert j.orders("A")[0]["status"] == "filled"
    assert Decimal(j.symbols()["A"]["qty"]) == 2


CANCEL_AT_3 = {
    "watch": 'return {"action": "enter", "qty": 1, "limit_price": 90} if ctx.index == 1 else None',
    "close_watch": 'return "cancel" if ctx.index == 3 else None',
}


def test_cancel_reaches_the_venue_and_returns_to_watch(tmp_path):
    venue("cancel", reset=True)
    result = build_engine(config(tmp_path, CANCEL_AT_3, {"venue": "cancel", "script": ["ack", "wait"]})).run()
    r = result.symbols["A"]
    assert (r.final_state, r.position_qty, r.fills) == ("watch", Decimal(0), 0)
    j = journal_of(tmp_path)
    assert kinds(j) == ["intent", "submitted", "accepted", "cancelled"]
    assert j.orders("A")[0]["type"] == "limit" and Decimal(j.orders("A")[0]["price"]) == 90


def test_a_fill_racing_the_cancel_is_booked(tmp_path):
    venue("race", reset=True)
    broker = {"venue": "race", "script": ["ack", "wait"], "on_cancel": "fill_then_cancel"}
    result = build_engine(config(tmp_path, CANCEL_AT_3, broker)).run()
    r = result.symbols["A"]
    assert (r.final_state, r.position_qty, r.fills) == ("in_trade", Decimal(1), 1)
    j = journal_of(tmp_path)
    assert j.orders("A")[0]["status"] == "filled"  # the cancel that came after the fill changes nothing
    assert [e["kind"] for e in j.events("A", kind="cancelled")] == []


def test_fill_after_a_timeout_is_resolved_and_booked(tmp_path):
    venue("timeout", reset=True)
    broker = {"venue": "timeout", "script": ["timeout", "ack", "delay:0.05", "fill"]}
    result = build_engine(config(tmp_path, ENTER, broker)).run()
    r = result.symbols["A"]
    assert (r.final_state, r.position_qty, r.fills) == ("in_trade", Decimal(2), 1)
    j = journal_of(tmp_path)
    assert kinds(j) == ["intent", "unknown", "accepted", "fill"]
    assert len(venue("timeout").orders) == 1  # resolved by client id, never resent


def test_late_fill_of_an_order_marked_lost_is_booked(tmp_path):
    v = venue("lost", reset=True)
    cfg = config(tmp_path, ENTER, {"venue": "lost", "scripts": {"1": ["lost"]}}, n=400, pace=0.01)
    engine = build_engine(cfg)
    done: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: done.setdefault("result", engine.run()))
    runner.start()
    from engine_core.orders import OrderStatus

    deadline = time.monotonic() + 30
    lost = []
    while time.monotonic() < deadline and not lost:
        time.sleep(0.05)
        worker = engine.workers.get("A")
        if worker is not None:
            lost = [f.order for f in list(worker.orders.recent.values()) if f.status is OrderStatus.LOST]
    assert lost, "the order was never marked lost"
    order = lost[0]
    # the venue had it after all, and fills it
    v.place(order)
    v.fill(order.client_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and engine.workers["A"].ledger.qty == 0:
        time.sleep(0.02)
    engine.stop_event.set()
    runner.join(30)
    r = done["result"].symbols["A"]
    assert (r.position_qty, r.final_state, r.fills) == (Decimal(2), "in_trade", 1)
    assert len(v.orders) == 1  # the lost order was never resent


def test_restart_marks_an_order_the_venue_never_got_as_lost(tmp_path):
    venue("gone", reset=True)
    cfg = config(tmp_path, ENTER, {"venue": "gone", "script": ["ack", "wait"]}, n=3)
    build_engine(cfg).run()
    venue("gone", reset=True)  # the venue forgot everything (a different account, say)
    second = build_engine(cfg).run().symbols["A"]
    assert (second.final_state, second.position_qty) == ("watch", Decimal(0))
    j = journal_of(tmp_path)
    assert j.orders("A")[0]["status"] == "lost"


# ------------------------------------------------------------ paper limits (backtest)


def paper_run(tmp_path: Path, strategy: dict[str, str], bars: list[Any]) -> Any:
    cfg = write_config(
        tmp_path / "p.toml",
        {
            "engine": {"symbols": ["A"], "window": 20},
            "source": {"type": "replay", "bars": replay_rows("A", bars)},
            "strategy": python_strategy(tmp_path, **strategy),
            "broker": {"type": "paper", "cash": 10000},
        },
    )
    return build_engine(cfg).run().symbols["A"]


LIMIT = {
    "watch": 'return {"action": "enter", "qty": 1, "limit_price": 95, "expires": 2} if ctx.index == 1 else None',
}


def test_paper_limit_fills_where_the_range_reaches_it(tmp_path):
    r = paper_run(tmp_path, LIMIT, [(100, 101, 99, 100), (99, 100, 94, 96), (96, 97, 95, 96)])
    assert r.final_state == "in_trade" and r.position_qty == 1
    assert r.trades == [] and r.fills == 1


def test_paper_limits_fill_at_the_limit_or_at_an_open_through_it(tmp_path):
    exit_next = {**LIMIT, "in_trade": 'return "exit"'}
    reached = [(100, 101, 99, 100), (99, 100, 94, 96), (96, 97, 95, 96)]
    through = [(100, 101, 99, 100), (93, 94, 92, 93), (93, 94, 92, 93)]
    prices = []
    for name, bars in (("reached", reached), ("through", through)):
        (tmp_path / name).mkdir()
        r = paper_run(tmp_path / name, exit_next, bars)
        (trade,) = r.trades
        prices.append((trade.entry_price, trade.exit_price))
    assert prices == [(Decimal(95), Decimal(96)), (Decimal(93), Decimal(93))]


def test_entry_limit_not_filled_within_expires_is_cancelled(tmp_path):
    r = paper_run(tmp_path, LIMIT, [100] * 6)
    assert (r.final_state, r.position_qty, r.orders, r.fills) == ("watch", 0, 1, 0)


@pytest.mark.parametrize(
    "decision, message",
    [
        ('{"action": "enter", "qty": 1, "stop_price": 105}', "stop_price 105 is not below the entry price 100"),
        ('{"action": "enter", "qty": 1, "side": "sell", "stop_price": 95}', "stop_price 95 is not above"),
        ('{"action": "enter", "qty": 1, "take_profit_price": 99}', "take_profit_price 99 is not above"),
    ],
)
def test_stop_on_the_wrong_side_halts_the_symbol(tmp_path, decision, message):
    r = paper_run(tmp_path, {"watch": f"return {decision}"}, [100] * 3)
    assert r.halted is not None and message in r.halted and "invalid decision" in r.halted
    assert r.orders == 0


def test_old_decision_names_get_a_rename_hint(tmp_path):
    r = paper_run(tmp_path, {"watch": 'return {"action": "enter", "stop_loss": 95}'}, [100] * 3)
    assert r.halted is not None and "'stop_loss' is now stop_price (a price" in r.halted


def test_a_bracket_leg_filled_at_the_venue_closes_the_position(tmp_path):
    from engine_core.model import Fill, Side
    from engine_core.orders import OrderUpdate, UpdateKind

    v = venue("bracket", reset=True)
    cfg = config(tmp_path, ENTER, {"venue": "bracket", "script": ["ack", "fill"]}, n=400, pace=0.01)
    engine = build_engine(cfg)
    done: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: done.setdefault("result", engine.run()))
    runner.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ("A" not in engine.workers or engine.workers["A"].ledger.qty == 0):
        time.sleep(0.02)
    (cid,) = list(v.orders)
    leg = Fill(cid, "A", Side.SELL, Decimal(2), Decimal(95), Decimal(0), 0, "leg-1")
    v._emit(OrderUpdate(UpdateKind.FILL, cid, "A", 0, leg, leg="stop_loss"))
    while time.monotonic() < deadline and engine.workers["A"].ledger.qty != 0:
        time.sleep(0.02)
    engine.stop_event.set()
    runner.join(30)
    r = done["result"].symbols["A"]
    assert (r.position_qty, r.final_state) == (0, "watch")
    (trade,) = r.trades
    assert (trade.exit_price, trade.exit_reason) == (Decimal(95), "stop_loss")


LUA_COUNTER = """
function init(ctx) ctx.state.bars = 0; ctx.state.seen = {} end
function watch(ctx)
  ctx.state.bars = ctx.state.bars + 1
  ctx.state.seen[#ctx.state.seen + 1] = ctx.index
  ctx.state.label = "n" .. ctx.state.bars
end
function close_watch(ctx) end
function in_trade(ctx) end
"""


def test_lua_ctx_state_survives_a_restart(tmp_path):
    (tmp_path / "s.lua").write_text(LUA_COUNTER)
    rows = replay_rows("A", [100.0] * 6)
    sections = {
        "engine": {"mode": "live", "symbols": ["A"], "window": 20, "journal_sync": "normal"},
        "source": {"type": "replay", "bars": rows[:3]},
        "strategy": {"host": "lua", "script": "s.lua"},
        "broker": {"type": "paper"},
    }
    build_engine(write_config(tmp_path / "c.toml", sections)).run()
    sections["source"]["bars"] = rows  # the restart sees the 3 later bars too
    build_engine(write_config(tmp_path / "c.toml", sections)).run()
    j = journal_of(tmp_path)
    assert j.symbols()["A"]["strategy_state"] == {"bars": 6, "seen": [1, 2, 3, 4, 5, 6], "label": "n6"}


def test_the_orders_and_round_trips_the_compiled_path_makes_are_whole(tmp_path):
    """The order path makes its orders and round trips with ``tuple.__new__``
    (not their NamedTuple's ``__new__``, a Python frame each): every field is
    there, as the class makes it from the same values, so a field added to
    ``Order`` or ``RoundTrip`` cannot go missing on the way."""
    from engine_core.model import Order, RoundTrip

    stops = {
        "watch": 'return {"action": "enter", "qty": 1, "stop_price": 90, "take_profit_price": 120} '
        "if ctx.index == 1 else None",
        "in_trade": 'return "exit"',
    }
    (trade,) = paper_run(tmp_path, stops, [(100, 101, 99, 100), (99, 100, 94, 96), (96, 97, 95, 96)]).trades
    assert type(trade) is RoundTrip and len(trade) == len(RoundTrip._fields) and trade == RoundTrip(*trade)
    (tmp_path / "venue").mkdir()
    venue("whole", reset=True)
    build_engine(config(tmp_path / "venue", ENTER, {"venue": "whole", "script": ["ack", "fill"]})).run()
    (sent,) = [o.order for o in venue("whole").orders.values()]
    assert type(sent) is Order and len(sent) == len(Order._fields) and sent == Order(*sent)
    assert (sent.side, sent.qty, sent.type, sent.tif) == (Side.BUY, Decimal(2), OrderType.MARKET, TimeInForce.GTC)
