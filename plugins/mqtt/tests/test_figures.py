"""What a dashboard needs beyond the events: the engine status carries the
engine's cash, equity and kill switches; with ``bars = true`` a live bar
carries the values of the indicators its strategy reads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import engine_plugin_indicators.plugin as indicators_plugin
import engine_plugin_mqtt.plugin as mqtt_plugin
import mqtt_gated
import pytest
from mqtt_engines import Running, gated_config, sinks
from mqtt_gated import bar, channel

import engine_core.testing as testing
from engine_core.model import FillEvent, Side
from engine_core.plugins import set_registry
from engine_core.testing import wait_until

# the busy strategy (in at every 4th bar, out two bars later), reading an SMA and Bollinger bands
READER = """
class S:
    def watch(self, ctx):
        ctx.ind.sma(3)
        ctx.ind.bbands(4, 2, 2)
        return "enter" if ctx.index % 4 == 0 else None
    def close_watch(self, ctx):
        return None
    def in_trade(self, ctx):
        ctx.ind.sma(3)
        ctx.ind.bbands(4, 2, 2)
        return "exit" if ctx.index % 4 == 2 else None
"""


@pytest.fixture(autouse=True)
def registry() -> Iterator[None]:
    extra: list[tuple[str, Any]] = [
        ("testing", testing),
        ("mqtt", mqtt_plugin),
        ("gated", mqtt_gated),
        ("indicators", indicators_plugin),
    ]
    set_registry(testing.builtin_registry(*extra))
    yield
    set_registry(None)


def test_the_engine_status_has_cash_equity_and_kill_switches_and_a_bar_its_indicators(
    tmp_path: Path, broker, subscriber
):
    path, name = gated_config(
        tmp_path, broker.port, engine={"symbols": ["AAA", "BBB"]}, sink={"bars": True, "status_every": 0.2}
    )
    (tmp_path / "busy.py").write_text(READER)
    text = path.read_text()
    path.write_text(
        text + "\n[risk]\nmax_drawdown = 0.5\n[risk.symbols.BBB]\nmax_drawdown = 0.3\ndaily_loss_limit = 0.01\n"
    )
    run = Running(path)
    try:
        memory, mqtt = sinks(run.engine)
        wait_until(lambda: mqtt.connects == 1, "the sink to connect")
        for i in range(6):  # in at bars 0 and 4, out at bar 2: in a trade after bar 5
            channel(name).put(bar("AAA", i))
            channel(name).put(bar("BBB", i))
            # a bar at a time (at 1 bar/s, a worker never moves on before its bar is published)
            wait_until(lambda i=i: len([p for p in subscriber.events() if p["event"] == "bar"]) == 2 * i + 2, "bars")
        last_bar_ts = bar("AAA", 5).ts

        def current() -> dict[str, Any] | None:
            statuses = [s for s in subscriber.on("t/e1/status") if s.get("online")]
            fills = [e for e in memory.events if isinstance(e, FillEvent)]
            if not statuses or not fills or statuses[-1]["events"] < len(memory.events):
                return None
            return statuses[-1]

        wait_until(current, "an engine status after the last event")
        status = current()
        assert status is not None
    finally:
        channel(name).put(None)
        run.join()

    # cash: the starting cash and every fill's cash flow; equity: cash and each position at its last close
    start = run.engine.workers["AAA"].risk.account.start_cash
    cash = start
    for e in memory.events:
        if isinstance(e, FillEvent):
            f = e.fill
            cash -= (f.qty * f.price if f.side is Side.BUY else -f.qty * f.price) + f.commission
    held = run.engine.workers["AAA"].ledger.qty
    assert held > 0 and run.engine.workers["BBB"].ledger.qty == held  # both in since bar 4
    last_close = Decimal(repr(bar("AAA", 5).close))
    assert Decimal(status["cash"]) == cash != start
    assert Decimal(status["equity"]) == cash + 2 * held * last_close
    kills = status["kill_switches"]
    assert set(kills) == {"AAA", "BBB"}
    assert (kills["AAA"]["max_drawdown"], kills["AAA"]["daily_loss_limit"]) == (0.5, None)
    assert (kills["BBB"]["max_drawdown"], kills["BBB"]["daily_loss_limit"]) == (0.3, 0.01)
    assert kills["AAA"]["action"] == "flatten" and kills["AAA"]["tripped"] is None
    assert kills["AAA"]["peak"] >= kills["AAA"]["last"] > 0

    # each live bar with the indicators its strategy reads, at that bar
    bars = [p for p in subscriber.events() if p["event"] == "bar" and p["symbol"] == "AAA"]
    closes = [bar("AAA", i).close for i in range(6)]
    last = bars[-1]
    assert last["ts"] == last_bar_ts
    assert last["indicators"]["sma(3)"] == pytest.approx(sum(closes[-3:]) / 3)
    assert set(last["indicators"]) == {"sma(3)", "bbands(4,2,2).upperband", "bbands(4,2,2).middleband",
                                       "bbands(4,2,2).lowerband"}  # fmt: skip
    assert last["indicators"]["bbands(4,2,2).middleband"] == pytest.approx(sum(closes[-4:]) / 4)
    assert bars[1]["indicators"]["sma(3)"] is None  # not ready at the second bar


def test_the_engine_status_is_sent_again_while_events_keep_coming(tmp_path: Path, broker, subscriber):
    """Bars arriving more often than ``status_every`` must not hold the engine
    status (events, cash, equity: a dashboard's curve) at its first figures."""
    path, name = gated_config(tmp_path, broker.port, engine={"symbols": ["AAA"]}, sink={"status_every": 0.3})
    (tmp_path / "busy.py").write_text(READER)
    run = Running(path)
    try:
        _memory, mqtt = sinks(run.engine)
        wait_until(lambda: mqtt.connects == 1, "the sink to connect")
        updated: list[dict[str, Any]] = []
        for i in range(200):  # a bar every 20 ms (status_every is 300 ms), until a fresh status shows
            channel(name).put(bar("AAA", i))
            time.sleep(0.02)
            updated = [s for s in subscriber.on("t/e1/status") if s.get("online") and s["events"] > 0]
            if updated:
                break
    finally:
        channel(name).put(None)
        run.join()
    assert updated, "the engine status kept its first figures while bars came every 20 ms"


def test_a_restored_position_counts_in_the_equity_before_its_first_bar():
    """After a restart the journal restores a position, but no bar of this run
    has priced it yet: the equity must still hold it (at its entry price until
    the first bar), not drop to the cash alone."""
    from types import SimpleNamespace

    from engine_plugin_mqtt.status import EngineFigures, SymbolStatus

    worker = SimpleNamespace(risk=SimpleNamespace(account=SimpleNamespace(start_cash=Decimal(1000))))
    worker.kill = SimpleNamespace(enabled=False)
    figures = EngineFigures(SimpleNamespace(workers={"AAA": worker}))
    status = SymbolStatus("AAA")
    # bought 5 at 100 last run: the symbol's cash flow is -500
    status.seed({"state": "in_trade", "qty": "5", "cash": "-500", "entry": {"price": "100"}, "last_ts": 1})
    payload = figures.payload({"AAA": status})
    assert Decimal(payload["cash"]) == 500
    assert Decimal(payload["equity"]) == 1000


def test_a_symbol_status_has_the_stop_levels_the_engine_armed_until_the_exit(tmp_path: Path, broker, subscriber):
    path, name = gated_config(tmp_path, broker.port, engine={"symbols": ["AAA"]}, sink={"bars": True})
    text = path.read_text()
    assert "[strategy]\n" in text
    path.write_text(text.replace("[strategy]\n", "[strategy]\nstop_loss = 0.02\ntrailing_stop = 0.05\n"))
    run = Running(path)
    try:
        memory, mqtt = sinks(run.engine)
        wait_until(lambda: mqtt.connects == 1, "the sink to connect")

        def fed_until(state: str, start: int, after: int = 0) -> tuple[int, dict[str, Any]]:
            """Feed bars from ``start``, each once the last is published, until a symbol status is in ``state``."""
            for i in range(start, start + 8):
                channel(name).put(bar("AAA", i))
                wait_until(lambda i=i: any(p["ts"] == bar("AAA", i).ts for p in subscriber.events()), f"bar {i}")
                # the status made with bar i's events (published after them)
                made = [s for s in subscriber.on("t/e1/AAA/status")[after:] if s["state"] == state]
                if made:
                    return i, made[0]
            raise AssertionError(f"no {state} status")

        i, entered = fed_until("in_trade", 0)
        entry = float(entered["avg_price"])
        stops = entered["stops"]
        assert stops["stop_price"] == pytest.approx(entry * 0.98)
        assert (stops["take_profit_price"], stops["trailing_stop"]) == (None, 0.05)
        # the best price since entry as the worker had it: the entry, or a later bar's high once stepped
        assert entry * 0.95 <= stops["trailing_price"] <= bar("AAA", i + 1).high * 0.95 + 1e-9
        _, exited = fed_until("watch", i + 1, after=len(subscriber.on("t/e1/AAA/status")))
        assert exited["stops"] is None
    finally:
        channel(name).put(None)
        run.join()


@pytest.mark.parametrize("every", [30.0, 0.0])
def test_a_status_only_bars_changed_waits_bar_status_every_and_an_events_goes_at_once(
    tmp_path: Path, broker, subscriber, every: float
):
    """Live, each bar changes its symbol's status (its last bar): with many
    symbols and fast bars, a status per bar costs the engine more than its
    bars. A status only bars changed goes at most every ``bar_status_every``
    seconds (0: after every bar); one an event changed goes at once; the
    last goes before the engine stops."""
    path, name = gated_config(tmp_path, broker.port, engine={"symbols": ["AAA"]}, sink={"bar_status_every": every})
    topic = "t/e1/AAA/status"

    def bars_in_statuses() -> list[int]:
        return [s["last_bar"]["ts"] for s in subscriber.on(topic) if s.get("last_bar")]

    run = Running(path)
    try:
        memory, mqtt = sinks(run.engine)
        wait_until(lambda: mqtt.connects == 1, "the sink to connect")
        worker = run.engine.workers["AAA"]
        channel(name).put(bar("AAA", 0))
        wait_until(lambda: bar("AAA", 0).ts in bars_in_statuses(), "the first bar's status")
        for i in (1, 2):  # the strategy does nothing at these bars: only the bars change the status
            channel(name).put(bar("AAA", i))
        wait_until(lambda: worker.bars_done == 3, "the worker to take the bars")
        if every:
            time.sleep(0.3)  # (nothing comes)
            assert bars_in_statuses()[-1] == bar("AAA", 0).ts
        else:
            wait_until(lambda: bars_in_statuses()[-1] == bar("AAA", 2).ts, "the status after the bars")
        channel(name).put(bar("AAA", 3))  # an entry: its events change the status, at once
        wait_until(lambda: bars_in_statuses()[-1] == bar("AAA", 3).ts, "the entry's status")
        assert subscriber.on(topic)[-1]["state"] != "watch"
        channel(name).put(bar("AAA", 4))
        wait_until(lambda: worker.bars_done == 5, "the worker to take the last bar")
    finally:
        channel(name).put(None)
        run.join()
    subscriber.final_status()
    assert bars_in_statuses()[-1] == bar("AAA", 4).ts  # the last bar's status went out before the engine stopped
