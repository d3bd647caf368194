"""The engine end to end with the ``alpaca`` source and broker, against the
local fake Alpaca: warm-up, live bars into a running engine, orders filled at
the venue, and a restart with the position reconciled."""

from __future__ import annotations

import textwrap
import time
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
from engine_plugin_alpaca.wire import parse_time

from engine_core.runner import build_engine
from engine_core.testing import EngineThread, builtin_registry, wait_until, write_config

OPEN, CLOSE, NEXT_OPEN = DAY1_OPEN, DAY1_CLOSE, DAY2_OPEN

STRATEGY = ENTER_TWO_AND_HOLD


def config(tmp_path: Path, server, **params) -> Path:
    (tmp_path / "s.py").write_text(textwrap.dedent(STRATEGY))
    return write_config(
        tmp_path / "alpaca.toml",
        {
            "engine": {"mode": "live", "symbols": ["AAPL"], "window": 20, "journal_sync": "normal"},
            **live_tables(server),
            "strategy": {"host": "python", "class": "s.py:S", "params": params},
            "report": {"dir": "out"},
        },
    )


def running(path: Path) -> EngineThread:
    return EngineThread(build_engine(path, builtin_registry(("alpaca", alpaca_plugin)))).start()


@pytest.fixture
def market(server):
    server.add_history(minute_bars("AAPL", OPEN, 30))  # warm-up
    server.set_clock(OPEN + 30 * MINUTE, True, NEXT_OPEN, CLOSE)
    return server


def test_bars_into_a_running_engine_trade_at_the_venue(tmp_path, market):
    run = running(config(tmp_path, market))
    try:
        wait_until(lambda: market.subscribed("AAPL"))
        market.push_bars(minute_bars("AAPL", OPEN + 30 * MINUTE, 3))
        wait_until(lambda: market.positions.get("AAPL") == Decimal(2))
    finally:
        result = run.stop()
    aapl = result.symbols["AAPL"]
    assert aapl.halted is None
    assert aapl.position_qty == Decimal(2) and aapl.final_state == "in_trade"
    (body,) = market.order_posts
    assert body["qty"] == "2" and body["side"] == "buy" and body["client_order_id"].endswith("-AAPL-1")
    assert result.source_stats["alpaca"]["warmup_bars"] == 20


def test_restart_reconciles_the_position_and_exits_once(tmp_path, market):
    path = config(tmp_path, market)
    first = running(path)
    try:
        wait_until(lambda: market.subscribed("AAPL"))
        market.push_bars(minute_bars("AAPL", OPEN + 30 * MINUTE, 2))
        wait_until(lambda: market.positions.get("AAPL") == Decimal(2))
    finally:
        first.stop()
    # restart, now told to exit: the journal and the venue agree on 2 shares
    path.write_text(path.read_text().replace("[strategy.params]", "[strategy.params]\nexit = true"))
    again = running(path)
    try:
        wait_until(lambda: market.subscribed("AAPL"))
        market.push_bars(minute_bars("AAPL", OPEN + 32 * MINUTE, 2, price=100.5))
        wait_until(lambda: market.positions.get("AAPL") == Decimal(0))
        time.sleep(0.5)  # anything sent twice would show now
    finally:
        result = again.stop()
    aapl = result.symbols["AAPL"]
    assert aapl.halted is None, aapl.halted
    assert aapl.position_qty == 0
    assert [b["side"] for b in market.order_posts] == ["buy", "sell"]
    assert len({b["client_order_id"] for b in market.order_posts}) == 2


def source_lines(path: Path) -> list[str]:
    """The source's line of ``engine status``, as a user reads it."""
    from click.testing import CliRunner

    from engine_core.cli import main

    result = CliRunner().invoke(main, ["status", "-c", str(path)])
    return [line for line in result.output.splitlines() if line.startswith("source ")]


def test_engine_status_says_when_the_closed_market_opens_and_that_a_stopped_engine_stopped(tmp_path, server):
    server.add_history(minute_bars("AAPL", CLOSE - 30 * MINUTE, 30))
    server.set_clock(CLOSE + 10 * MINUTE, False, NEXT_OPEN, parse_time("2024-01-03T21:00:00Z"))
    path = config(tmp_path, server)
    run = running(path)
    try:
        wait_until(lambda: any(" closed since " in line for line in source_lines(path)))
        (line,) = source_lines(path)
        assert line.endswith("(market closed; opens 2024-01-03T14:30:00Z)"), line
    finally:
        run.stop()
    (line,) = source_lines(path)
    assert line.startswith("source alpaca: stopped since "), line
