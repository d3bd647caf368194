"""Fault injection: SIGKILL a live paper run at random points, restart it, and
check that nothing was lost and nothing was doubled."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from engine_core.builtin.paper import PaperBroker
from engine_core.errors import BrokerTimeout, JournalError
from engine_core.journal import Journal
from engine_core.model import Order
from engine_core.orders import OrderStatus
from engine_core.runner import build_engine
from engine_core.testing import InlinePlugin, builtin_registry, python_strategy, run_engine, start_engine, write_config

STRATEGY = {
    "watch": 'return "setup" if ctx.index % 7 == 0 else None',
    "close_watch": 'return {"action": "enter", "qty": 1 + ctx.index % 3}',
    "in_trade": 'return "exit" if ctx.index % 7 == 3 else None',
}


def live_config(tmp_path: Path, bars: int = 400, pace: float = 0.002, **engine: object) -> Path:
    return write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["A", "B"], "journal_sync": "normal", **engine},
            "source": {"type": "simulated", "bars": bars, "pace": pace, "seed": 3},
            "strategy": python_strategy(tmp_path, **STRATEGY),
            "report": {"dir": "out"},
        },
    )


def start(config: Path) -> subprocess.Popen[str]:
    return start_engine("run", "-q", "--no-report", "-c", str(config))


def check_consistency(path: Path, *, settled: bool = True) -> dict[str, int]:
    """Journal, positions and the paper broker's own records agree.

    Right after a kill (``settled=False``) the broker may hold a fill the
    engine had not booked yet: the restart books it. Nothing may ever be
    placed without a journaled intent, or booked twice."""
    journal = Journal(path)
    try:
        orders = {o["client_id"]: o for o in journal.orders()}
        paper = dict(journal.items("paper:"))
        fills = journal.events(kind="fill")
        snapshots = journal.symbols()
    finally:
        journal.close()
    # every order the broker got was journaled before it was sent, and none twice
    for key in paper:
        cid = key.removeprefix("paper:")
        assert cid in orders, f"broker has {cid} the journal never recorded"
        assert orders[cid]["status"] not in ("lost",), f"{cid} marked lost but placed"
    placed = {k.removeprefix("paper:") for k in paper}
    for cid, order in orders.items():
        if order["status"] == "lost":
            assert cid not in placed
    # every fill booked exactly once, and only fills the broker made
    booked = Counter(f["client_id"] for f in fills)
    assert all(n == 1 for n in booked.values()), booked
    for cid in booked:
        assert paper[f"paper:{cid}"]["status"] == "filled"
    for key, record in paper.items():
        if record["status"] == "filled" and settled:
            assert booked[key.removeprefix("paper:")] == 1, f"fill of {key} lost"
    # positions: journal snapshot == sum of booked fills == the broker's
    for symbol, snap in snapshots.items():
        from_fills = sum(
            (Decimal(f["qty"]) if f["side"] == "buy" else -Decimal(f["qty"])) for f in fills if f["symbol"] == symbol
        )
        broker = sum(
            (Decimal(r["qty"]) if r["side"] == "buy" else -Decimal(r["qty"]))
            for r in paper.values()
            if r["symbol"] == symbol and r["status"] == "filled"
        )
        assert Decimal(snap["qty"]) == from_fills
        if not settled:
            continue
        assert from_fills == broker
        assert (snap["state"] == "in_trade") == (Decimal(snap["qty"]) != 0)
        # at most the one pending order of the symbol is still open
        still_open = [o for o in orders.values() if o["symbol"] == symbol and OrderStatus(o["status"]).is_open]
        assert len(still_open) <= 1 and (not still_open or still_open[0]["client_id"] == snap["pending"])
    return {"orders": len(orders), "fills": len(fills), "lost": sum(o["status"] == "lost" for o in orders.values())}


@pytest.mark.parametrize("seed", range(6))
def test_sigkill_at_random_points_loses_and_doubles_nothing(tmp_path, seed):
    rng = random.Random(seed)
    config = live_config(tmp_path)
    journal = tmp_path / ".engine" / "c.sqlite"
    kills = 0
    for _ in range(3):
        proc = start(config)
        time.sleep(rng.uniform(0.6, 1.6))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if journal.exists():
            check_consistency(journal, settled=False)
    proc = start(config)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    counts = check_consistency(journal)
    assert counts["fills"] > 20
    # the final run went on to the end of the feed
    snap = Journal(journal).symbols()
    assert all(s["bars"] == 400 for s in snap.values()), {k: s["bars"] for k, s in snap.items()}


def test_restart_resumes_state_and_position(tmp_path):
    config = live_config(tmp_path, bars=60, pace=0.0)
    first = build_engine(config).run()
    journal = Journal(tmp_path / ".engine" / "c.sqlite")
    before = journal.symbols()
    journal.close()
    assert all(s["bars"] == 60 for s in before.values())
    # a second run of the same feed: every bar already seen, state and position restored
    again = build_engine(config).run()
    for symbol in ("A", "B"):
        assert again.symbols[symbol].bars == 0
        assert again.symbols[symbol].final_state == before[symbol]["state"]
        assert str(again.symbols[symbol].position_qty) == before[symbol]["qty"]
        assert again.symbols[symbol].position_qty == first.symbols[symbol].position_qty


class TimeoutAfterSend(PaperBroker):
    """Places the order, then loses the answer."""

    def submit(self, order: Order) -> None:
        super().submit(order)
        raise BrokerTimeout("no answer in 10 s")


class TimeoutBeforeSend(PaperBroker):
    """Loses the order on the way (the first time for each symbol)."""

    lost: set[str] = set()

    def submit(self, order: Order) -> None:
        if order.symbol not in self.lost:
            self.lost.add(order.symbol)
            raise BrokerTimeout("connection reset")
        super().submit(order)


BROKERS = InlinePlugin(brokers={"after": TimeoutAfterSend, "before": TimeoutBeforeSend})


def run_with(tmp_path: Path, broker: str):
    import engine_core.testing as testing

    config = live_config(tmp_path, bars=40, pace=0.0)
    text = config.read_text() + f'\n[broker]\ntype = "{broker}"\n'
    config.write_text(text)
    registry = builtin_registry(("testing", testing), ("brokers", BROKERS))
    result = build_engine(config, registry).run()
    journal = Journal(tmp_path / ".engine" / "c.sqlite")
    return result, journal


def test_timeout_after_send_is_resolved_by_client_id(tmp_path):
    result, journal = run_with(tmp_path, "after")
    orders = journal.orders(symbol="A")
    kinds = Counter(e["kind"] for e in journal.events(symbol="A"))
    assert kinds["unknown"] == kinds["accepted"] == len(orders) > 0  # every unanswered send found at the broker
    assert kinds["lost"] == 0
    # every order filled, except one still waiting for the next bar when the feed ended
    still_open = [o for o in orders if o["status"] != "filled"]
    assert len(still_open) <= 1 and result.symbols["A"].fills == len(orders) - len(still_open)
    journal.close()
    check_consistency(tmp_path / ".engine" / "c.sqlite")


def test_timeout_before_send_is_never_resent(tmp_path):
    TimeoutBeforeSend.lost = set()
    result, journal = run_with(tmp_path, "before")
    lost = [o for o in journal.orders() if o["status"] == "lost"]
    assert [o["symbol"] for o in lost] == ["A", "B"]
    paper = {k.removeprefix("paper:") for k, _ in journal.items("paper:")}
    assert not {o["client_id"] for o in lost} & paper  # never placed, never resent
    later = [o for o in journal.orders("A") if o["status"] == "filled"]
    assert later, "the strategy went on trading with new client ids"
    journal.close()
    check_consistency(tmp_path / ".engine" / "c.sqlite")


def test_corrupt_journal_is_a_clear_error(tmp_path):
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(JournalError, match="j.sqlite: not a readable journal"):
        Journal(path)


def test_newer_schema_is_a_clear_error(tmp_path):
    path = tmp_path / "j.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(JournalError, match=r"schema version 99 is newer than this engine reads \(2\); upgrade"):
        Journal(path)


def test_foreign_sqlite_file_is_not_taken_for_a_journal(tmp_path):
    path = tmp_path / "j.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE x(a)")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="not an engine journal"):
        Journal(path)


def test_a_journal_killed_while_being_created_is_created_again(tmp_path):
    """A kill -9 between the switch to WAL (which writes the file's header)
    and the schema's commit left a journal every restart refused as "not an
    engine journal"."""
    path = tmp_path / "j.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("BEGIN IMMEDIATE")
    db.execute("CREATE TABLE events(seq INTEGER)")  # the creation's transaction, never committed
    db.close()
    assert path.stat().st_size > 0
    journal = Journal(path)
    journal.event("connection", None, 1, state="connected")
    journal.close()
    again = Journal(path)
    assert [e["kind"] for e in again.events()] == ["connection"]
    again.close()


def test_status_command_reads_the_journal(tmp_path):
    config = live_config(tmp_path, bars=30, pace=0.0)
    build_engine(config).run()
    proc = run_engine("status", "--json", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    import json

    rows = {r["symbol"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == {"A", "B"}
    assert rows["A"]["state"] in ("watch", "close_watch", "in_trade")
    assert rows["A"]["last_event"]["kind"]


def test_status_without_a_journal_is_one_line(tmp_path):
    config = live_config(tmp_path)
    proc = run_engine("status", "-c", str(config))
    assert proc.returncode == 2 and "no journal" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_position_mismatch_halts_only_that_symbol(tmp_path):
    config = live_config(tmp_path, bars=30, pace=0.0)
    build_engine(config).run()
    path = tmp_path / ".engine" / "c.sqlite"
    journal = Journal(path)
    # the broker gets a fill for A the engine never heard of
    journal.put(
        "paper:manual-1",
        {
            "symbol": "A",
            "side": "buy",
            "qty": "5",
            "ts": 0,
            "reason": "manual",
            "status": "filled",
            "price": "100",
            "commission": "0",
            "fill_ts": 0,
        },
    )
    journal.close()
    text = config.read_text().replace("bars = 30", "bars = 60")
    config.write_text(text)
    result = build_engine(config).run()
    assert result.symbols["A"].halted and "position mismatch" in result.symbols["A"].halted
    assert result.symbols["B"].halted is None and result.symbols["B"].bars == 30


def test_stops_are_journaled(tmp_path):
    config = live_config(tmp_path, bars=40, pace=0.0)
    text = config.read_text().replace('class = "s.py:S"', 'class = "s.py:S"\nstop_loss = 0.5\ntake_profit = 0.5')
    config.write_text(text)
    build_engine(config).run()
    journal = Journal(tmp_path / ".engine" / "c.sqlite")
    stops = journal.events(symbol="A", kind="stops")
    fills = [f for f in journal.events(symbol="A", kind="fill") if f["side"] == "buy"]
    assert len(stops) == len(fills) > 0  # one per entry
    entry = Decimal(fills[0]["price"])
    assert stops[0]["stop_price"] == pytest.approx(float(entry) * 0.5)
    assert stops[0]["take_profit_price"] == pytest.approx(float(entry) * 1.5)


@pytest.mark.parametrize(("bars", "held", "torn"), [(26, False, "in_trade"), (22, True, "close_watch")])
def test_kill_between_fill_and_transition_is_settled_on_restart(tmp_path, bars, held, torn):
    """A fill and the transition it causes are two commits. Killed between
    them (the exit's fill booked but still in_trade, or the entry's fill
    booked but still close_watch), the restart brings the state in line with
    the booked position before anything trades."""
    config = live_config(tmp_path, bars=bars, pace=0.0)
    build_engine(config).run()
    path = tmp_path / ".engine" / "c.sqlite"
    journal = Journal(path)
    snap = journal.symbols()["A"]
    assert (Decimal(snap["qty"]) != 0) is held
    snap["state"] = torn
    journal.save_symbol("A", snap)
    journal.close()
    config.write_text(config.read_text().replace(f"bars = {bars}", f"bars = {bars + 1}"))
    result = build_engine(config).run()
    journal = Journal(path)
    after = journal.symbols()["A"]
    moves = journal.events(symbol="A", kind="transition")
    journal.close()
    assert result.symbols["A"].halted is None
    assert after["state"] == ("in_trade" if held else "watch")
    assert Decimal(after["qty"]) == Decimal(snap["qty"])
    assert moves[-1]["reason"].startswith("restart")
