"""What a restart finds working at the venue (``Broker.open_orders``), on the
scripted venue: an order of this engine that its journal gave up as lost is
adopted (journaled, its fills booked, the symbol waits on it, nothing sent);
an order someone else placed is named in one warning line and left alone."""

from __future__ import annotations

from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine_core.journal import Journal, order_from_row
from engine_core.model import Order, OrderType, Side
from engine_core.orders import OrderStatus, client_id_prefix, make_client_id
from engine_core.runner import build_engine
from engine_core.testing import EngineThread, scripted_live_config, venue

D = Decimal
ENTER = {"watch": 'return {"action": "enter", "qty": 2} if ctx.index == 1 else None'}


def config(
    tmp_path: Path, broker: dict[str, Any], n: int = 3, pace: float = 0.02, strategy: dict[str, str] = ENTER
) -> Path:
    return scripted_live_config(
        tmp_path, strategy, broker, n=n, pace=pace, sinks=[{"type": "log", "path": "events.log"}]
    )


def journal_of(tmp_path: Path) -> Journal:
    return Journal(tmp_path / ".engine" / "c.sqlite")


def test_restart_adopts_an_order_of_this_engine_that_the_journal_gave_up_as_lost(tmp_path):
    v = venue("adopt", reset=True)
    cfg = config(tmp_path, {"venue": "adopt", "scripts": {"1": ["lost"]}})
    first = build_engine(cfg).run().symbols["A"]
    assert (first.final_state, first.position_qty) == ("watch", 0)
    with closing(journal_of(tmp_path)) as j:
        [row] = j.orders("A")
    assert row["status"] == "lost"
    # the venue had it after all: it rests there, and fills in part while the engine is down
    cid = row["client_id"]
    v.place(order_from_row(row))
    v.fill(cid, D(1), emit=False)

    with EngineThread(build_engine(config(tmp_path, {"venue": "adopt"}, n=400, pace=0.01))) as eng:
        eng.wait(lambda: "A" in eng.engine.workers and eng.engine.workers["A"].started, "the restart")
        w = eng.engine.workers["A"]
        cur = w.orders.current
        assert cur is not None and cur.order.client_id == cid and cur.status is OrderStatus.PARTIALLY_FILLED
        assert (w.ledger.qty, w.halted) == (D(1), None)  # the fill made while down is booked
        v.fill(cid)  # the rest, reported by the venue: the broker follows the adopted order
        eng.wait(lambda: w.ledger.qty == D(2) and w.orders.current is None, "the rest of the fill")
        result = eng.stop()
    assert result is not None
    r = result.symbols["A"]
    assert (r.final_state, r.position_qty, r.halted) == ("in_trade", D(2), None)
    assert list(v.orders) == [cid]  # nothing sent: the strategy's entry waited on the adopted order
    with closing(journal_of(tmp_path)) as j:
        [row] = j.orders("A")
        events = [(e["kind"], e.get("detail", "")) for e in j.events("A") if e.get("client_id") == cid]
    assert row["status"] == "filled" and D(row["filled_qty"]) == D(2) and row["venue_id"] == "v2"
    assert events[-3:] == [
        ("accepted", "working at the broker after a restart: adopted"),
        ("fill", ""),
        ("fill", ""),
    ]


def test_the_next_client_id_follows_an_adopted_order_the_journal_never_had(tmp_path):
    """The journal was lost (a new state folder): the order the venue holds
    under this engine's first client id is adopted, and the engine's next
    order takes the id after it, never the same one."""
    v = venue("fresh", reset=True)
    strategy = {**ENTER, "in_trade": 'return "exit"'}
    cfg = config(tmp_path, {"venue": "fresh"}, strategy=strategy)
    engine = build_engine(cfg)
    prefix = client_id_prefix(engine.loaded.config.engine.id, ["A"])
    cid = make_client_id(prefix, "A", 1)
    v.place(Order(cid, "A", Side.BUY, D(2), 0, type=OrderType.LIMIT, price=D(90)))
    r = engine.run().symbols["A"]
    assert (r.final_state, r.position_qty, r.halted, r.orders) == ("close_watch", 0, None, 0)  # the entry waits on it
    with closing(journal_of(tmp_path)) as j:
        [row] = j.orders("A")
    assert (row["client_id"], row["status"], row["price"], row["venue_id"]) == (cid, "accepted", "90", "v1")
    v.fill(cid, emit=False)
    second = build_engine(config(tmp_path, {"venue": "fresh"}, n=6, strategy=strategy)).run().symbols["A"]
    assert (second.final_state, second.position_qty, second.halted, len(second.trades)) == ("watch", 0, None, 1)
    assert list(v.orders) == [cid, make_client_id(prefix, "A", 2)]  # the exit took the next id


def test_an_order_someone_else_placed_is_named_once_and_left_alone(tmp_path):
    v = venue("foreign", reset=True)
    v.place(Order("manual-7", "A", Side.SELL, D("0.5"), 0, type=OrderType.LIMIT, price=D(120)))
    v.place(Order("web_x1", "A", Side.BUY, D(3), 0))
    v.place(Order("other", "B", Side.BUY, D(1), 0))  # a symbol the engine does not trade: not its business
    r = build_engine(config(tmp_path, {"venue": "foreign"})).run().symbols["A"]
    assert (r.final_state, r.position_qty, r.halted, r.fills) == ("in_trade", D(2), None, 1)
    assert all(v.orders[c].status is OrderStatus.ACCEPTED for c in ("manual-7", "web_x1"))  # never cancelled
    with closing(journal_of(tmp_path)) as j:
        [row] = j.orders("A")  # the engine's own entry, and nothing else
        [journaled] = j.events("A", kind="warning")
    assert row["status"] == "filled" and list(v.orders)[3:] == [row["client_id"]]
    lines = [line for line in (tmp_path / "events.log").read_text().splitlines() if " warning: " in line]
    assert lines == ["- A warning: " + journaled["message"]]
    assert lines == [
        "- A warning: 2 open orders at the broker not placed by this engine, left alone (never cancelled; "
        "what they fill is not booked here and moves the position the broker reports): "
        "v1 (manual-7) sell 0.5 limit @ 120; v2 (web_x1) buy 3 market"
    ]


def test_an_order_still_open_after_a_restart_counts_towards_max_open_orders(tmp_path):
    """A's entry rests at the venue when the engine stops; after the restart
    it is A's order in flight again, and it is one of the account's open
    orders: with max_open_orders = 1, B's entry is refused, never sent."""
    v = venue("limit", reset=True)

    def cfg(watch: str, n: int) -> Path:
        broker = {"venue": "limit", "script": ["ack"]}  # accepted, never filled
        return scripted_live_config(
            tmp_path, {"watch": watch}, broker, symbols=("A", "B"), n=n, risk={"max_open_orders": 1}
        )

    build_engine(cfg('return {"action": "enter", "qty": 1} if ctx.symbol == "A" and ctx.index == 1 else None', 3)).run()
    [resting] = list(v.orders)
    with closing(journal_of(tmp_path)) as j:
        assert [r["status"] for r in j.orders("A")] == ["accepted"]
    second = build_engine(
        cfg('return {"action": "enter", "qty": 1} if ctx.symbol == "B" and ctx.index >= 4 else None', 8)
    )
    result = second.run()
    assert result.symbols["B"].position_qty == 0
    assert list(v.orders) == [resting]  # B's entry never reached the venue
    with closing(journal_of(tmp_path)) as j:
        rows = j.orders("B")
        refusals = [e.get("detail", "") for e in j.events("B") if e["kind"] == "refused"]
    assert rows and {r["status"] for r in rows} == {"refused"}
    assert refusals and all("max_open_orders: " in detail for detail in refusals)


def test_max_open_orders_holds_when_every_symbol_enters_on_the_same_bar(tmp_path):
    """Ten symbols enter on the same bar with max_open_orders = 3, the
    journal synced as a live run keeps it: each entry waits for its intent's
    fsync (and a venue's answer) without the baton, and the other symbols'
    entries are checked meanwhile. An order counts from the moment it passes
    the check, so the venue gets three, and the other seven are refused."""
    from engine_core.testing import python_strategy, write_config

    v = venue("burst", reset=True)
    symbols = [f"S{k}" for k in range(10)]
    config = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": symbols, "window": 20, "journal_sync": "full"},
            "source": {"type": "simulated", "bars": 4, "pace": 0.05, "seed": 1},  # every symbol's bar at once
            "strategy": python_strategy(
                tmp_path, watch='return {"action": "enter", "qty": 1} if ctx.index == 1 else None'
            ),
            "broker": {"type": "scripted", "venue": "burst", "script": ["ack"]},  # accepted, never filled
            "risk": {"max_open_orders": 3},
        },
    )
    result = build_engine(config).run()
    assert len(v.orders) == 3
    with closing(journal_of(tmp_path)) as j:
        statuses = sorted(r["status"] for s in symbols for r in j.orders(s))
    assert statuses == ["accepted"] * 3 + ["refused"] * 7
    assert sum(r.position_qty for r in result.symbols.values()) == 0


def test_an_entry_the_venue_never_got_gives_its_place_back(tmp_path):
    """A's entry goes unanswered and the venue has no such order (lost, not
    resent): it is not one of the open orders, so B's later entry is sent
    under max_open_orders = 1."""
    v = venue("lost_place", reset=True)
    watch = 'return {"action": "enter", "qty": 1} if (ctx.symbol == "A" and ctx.index == 1) or (ctx.symbol == "B" and ctx.index == 4) else None'
    config = scripted_live_config(
        tmp_path,
        {"watch": watch},
        {"venue": "lost_place", "script": ["ack"], "scripts": {"1": ["lost"]}},
        symbols=("A", "B"),
        n=6,
        risk={"max_open_orders": 1},
    )
    result = build_engine(config).run()
    with closing(journal_of(tmp_path)) as j:
        assert [r["status"] for r in j.orders("A")] == ["lost"]
        assert [r["status"] for r in j.orders("B")] == ["accepted"]
    assert [o.order.symbol for o in v.orders.values()] == ["B"]
    assert result.symbols["B"].halted is None


def test_every_order_still_open_after_a_restart_counts_towards_max_open_orders(tmp_path):
    """A's first entry went unanswered and was given up as lost; its second
    rests at the venue. The venue had the first after all: after the restart
    A's order in flight is the second, and the first, adopted, is one A only
    remembers. Both are open orders: with max_open_orders = 2, B's entry is
    refused, never sent."""
    v = venue("remembered", reset=True)

    def cfg(watch: str, n: int) -> Path:
        broker = {"venue": "remembered", "script": ["ack"], "scripts": {"1": ["lost"]}}  # the 2nd rests
        return scripted_live_config(
            tmp_path, {"watch": watch}, broker, symbols=("A", "B"), n=n, risk={"max_open_orders": 2}
        )

    a_enters = 'return {"action": "enter", "qty": 1} if ctx.symbol == "A" and ctx.index in (1, 3) else None'
    build_engine(cfg(a_enters, 5)).run()
    with closing(journal_of(tmp_path)) as j:
        first, second = j.orders("A")
    assert (first["status"], second["status"]) == ("lost", "accepted")
    v.place(order_from_row(first))  # it reached the venue after all, and rests there
    b_enters = 'return {"action": "enter", "qty": 1} if ctx.symbol == "B" and ctx.index >= 6 else None'
    second_run = build_engine(cfg(b_enters, 10))
    result = second_run.run()
    a = second_run.workers["A"]
    assert a.orders.current is not None and a.orders.current.order.client_id == second["client_id"]
    assert a.orders.find(first["client_id"]) is not a.orders.current  # adopted, remembered
    assert result.symbols["B"].position_qty == 0
    assert sorted(v.orders) == sorted([first["client_id"], second["client_id"]])  # B's entry never left
    with closing(journal_of(tmp_path)) as j:
        assert {r["status"] for r in j.orders("B")} == {"refused"}


def test_an_entry_still_resting_after_a_restart_counts_towards_max_total_notional(tmp_path):
    """A's limit entry (6 at 100: 600) rests at the venue across a restart.
    Filled, it would leave A with 600: with max_total_notional = 1,000, B's
    entry of 600 is refused after the restart as it would have been before,
    never sent; once A's entry is cancelled, its notional is given back."""
    v = venue("resting", reset=True)

    def cfg(watch: str, n: int) -> Path:
        return scripted_live_config(
            tmp_path,
            {"watch": watch, "close_watch": "return 'cancel' if ctx.index >= 8 else None"},
            {"venue": "resting", "script": ["ack"]},  # acked, then it rests
            symbols=("A", "B"),
            n=n,
            risk={"max_total_notional": 1000},
        )

    a_enters = (
        'return {"action": "enter", "qty": 6, "limit_price": 99} if ctx.symbol == "A" and ctx.index == 1 else None'
    )
    build_engine(cfg(a_enters, 3)).run()
    with closing(journal_of(tmp_path)) as j:
        [a_entry] = j.orders("A")
    assert a_entry["status"] == "accepted"
    b_enters = 'return {"action": "enter", "qty": 6} if ctx.symbol == "B" and ctx.index in (6, 10) else None'
    result = build_engine(cfg(b_enters, 12)).run()
    with closing(journal_of(tmp_path)) as j:
        a_status = [r["status"] for r in j.orders("A")]
        b_statuses = [r["status"] for r in j.orders("B")]
    assert a_status == ["cancelled"]  # cancelled at index 8 (close_watch), its notional given back
    assert b_statuses[0] == "refused"  # index 6: A's resting entry counts, 594 + 600 > 1,000
    assert b_statuses[1:] and b_statuses[1] != "refused"  # index 10: A's entry is gone
    assert sorted(o.order.symbol for o in v.orders.values()) == ["A", "B"]
    assert result.symbols["B"].halted is None
