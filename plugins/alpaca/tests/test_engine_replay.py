"""A live session on the fake Alpaca, with faults, recorded and replayed to
the same event log (issue 24): a partial fill, a pause and a flatten, a
venue reject (on the trade_updates stream), a dropped market data stream
backfilled from REST, market-session checks, and a restart."""

from __future__ import annotations

import json
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from engine_plugin_alpaca import plugin as alpaca_plugin
from engine_plugin_alpaca.testing import (
    DAY1_CLOSE,
    DAY1_OPEN,
    DAY2_OPEN,
    ENTER_TWO_AND_HOLD,
    MINUTE,
    live_tables,
    minute_bars,
)

from engine_core.control import Command
from engine_core.recording.reader import read_segment, segment_paths, session_dirs
from engine_core.recording.replay import replay_session
from engine_core.runner import build_engine
from engine_core.testing import EngineThread, builtin_registry, wait_until, write_config

OPEN, CLOSE, NEXT_OPEN = DAY1_OPEN, DAY1_CLOSE, DAY2_OPEN

STRATEGY = ENTER_TWO_AND_HOLD


def _config(tmp_path: Path, server) -> Path:
    (tmp_path / "s.py").write_text(textwrap.dedent(STRATEGY))
    return write_config(
        tmp_path / "alpaca.toml",
        {
            "engine": {"mode": "live", "id": "alp", "symbols": ["AAPL"], "window": 20, "journal_sync": "normal"},
            **live_tables(server),
            "strategy": {"host": "python", "class": "s.py:S"},
        },
    )


@pytest.fixture
def market(server):
    server.add_history(minute_bars("AAPL", OPEN, 30))  # warm-up
    server.set_clock(OPEN + 30 * MINUTE, True, NEXT_OPEN, CLOSE)
    return server


def _command(run: EngineThread, name: str) -> None:
    for reply in run.engine.command(Command(name, "AAPL")).values():
        reply.result(10)


def test_a_faulty_alpaca_session_and_its_restart_replay_identical(tmp_path, market):
    registry = builtin_registry(("alpaca", alpaca_plugin))
    path = _config(tmp_path, market)
    market.behaviour["AAPL"] = "partial"
    run = EngineThread(build_engine(path, registry)).start()
    try:
        wait_until(lambda: market.subscribed("AAPL"))
        w = run.engine.workers["AAPL"]
        market.push_bars(minute_bars("AAPL", OPEN + 30 * MINUTE, 1))
        wait_until(lambda: market.positions.get("AAPL") == Decimal(1), "the partial fill")
        market.behaviour["AAPL"] = "fill"
        market.fill_rest(market.order_posts[0]["client_order_id"])
        run.wait(lambda: w.ledger.qty == 2 and w.sm.state.value == "in_trade", "the rest of the fill")
        _command(run, "pause")
        base = w.bars_done
        market.push_bars(minute_bars("AAPL", OPEN + 31 * MINUTE, 1))
        run.wait(lambda: w.bars_done == base + 1, "a bar while paused")
        _command(run, "resume")
        _command(run, "flatten")
        run.wait(lambda: w.ledger.qty == 0 and w.sm.state.value == "watch", "the flatten")
        market.behaviour["AAPL"] = "reject"
        market.push_bars(minute_bars("AAPL", OPEN + 32 * MINUTE, 1))
        run.wait(lambda: len(market.order_posts) == 3 and w.sm.state.value == "watch", "the reject")
        market.behaviour["AAPL"] = "hold"
        market.set_clock(OPEN + 36 * MINUTE, True, NEXT_OPEN, CLOSE)
        market.drop_streams()
        market.add_history(minute_bars("AAPL", OPEN + 33 * MINUTE, 2))  # only REST has them: backfilled
        wait_until(lambda: market.md_connections == 2 and market.subscribed("AAPL"), "the reconnection")
        market.push_bars(minute_bars("AAPL", OPEN + 35 * MINUTE, 1))
        run.wait(lambda: w.bars_done == base + 5, "the backfill")
    finally:
        run.stop()
    run = EngineThread(build_engine(path, registry)).start()  # a restart with the held order working
    try:
        wait_until(lambda: market.subscribed("AAPL"))
        w = run.engine.workers["AAPL"]
        market.behaviour["AAPL"] = "fill"
        run.wait(lambda: w.last_ts is not None and w.last_ts >= OPEN + 35 * MINUTE, "the restart's warm-up")
        base = w.bars_done
        market.push_bars(minute_bars("AAPL", OPEN + 36 * MINUTE, 2))
        run.wait(lambda: w.bars_done == base + 2, "bars after the restart")
    finally:
        run.stop()

    [day] = session_dirs(tmp_path / ".engine" / "recordings" / "alp")
    paths = segment_paths(day)
    assert len(paths) == 2
    rows = [r for p in paths for r in read_segment(p).rows]
    updates = {json.loads(r[9])["kind"] for r in rows if r[0] == "update"}
    assert {"ack", "partial_fill", "fill", "reject"} <= updates
    assert any(r[0] == "call" and json.loads(r[9])["m"] == "entries_allowed" for r in rows)
    assert any(r[0] == "connection" and json.loads(r[9])["state"] == "backfilling" for r in rows)
    outcome = replay_session(paths, registry)
    assert outcome.divergence is None, outcome.divergence.lines() if outcome.divergence else None
    assert outcome.events == sum(r[0] == "event" for r in rows) > 10
