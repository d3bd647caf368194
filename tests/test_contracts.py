"""The core's contracts: sinks and hooks isolated from the workers, registration
hooks through pluggy, side-effect-free construction, client ids, the live
source contract (warm-up, connection states, closing)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import engine_core.testing as testing
from engine_core.cli import main
from engine_core.errors import PluginError
from engine_core.events import EventSink
from engine_core.hookspecs import hookimpl
from engine_core.journal import Journal
from engine_core.model import NS_PER_SECOND, Bar, BarChunk, ConnectionEvent, FillEvent
from engine_core.orders import CLIENT_ID_MAX, OrderStatus, can_move, client_id_prefix, make_client_id, parse_client_id
from engine_core.plugins import set_registry
from engine_core.runner import build_engine
from engine_core.sources import ConnectionState, DataSource
from engine_core.testing import InlinePlugin, builtin_registry, python_strategy, replay_rows, write_config

TRADER = {
    "watch": 'return "enter" if ctx.index % 4 == 1 else None',
    "close_watch": 'return "enter"',
    "in_trade": 'return "exit" if ctx.index % 4 == 3 else None',
}


def rows(n: int) -> list[list[Any]]:
    return replay_rows("A", [(100.0 + i % 5, 102.0 + i % 5, 99.0 + i % 5, 101.0 + i % 5) for i in range(n)])


def sections(tmp_path: Path, n: int = 40, **extra: Any) -> dict[str, Any]:
    return {
        "engine": {"symbols": ["A"], "window": 20, "journal": True, "journal_sync": "normal"},
        "source": {"type": "replay", "bars": rows(n)},
        "strategy": {**python_strategy(tmp_path, **TRADER), "qty": 1},
        "broker": {"type": "paper", "cash": 10000},
        **extra,
    }


class ExplodingSink(EventSink):
    def handle(self, event: Any) -> None:
        if isinstance(event, FillEvent):
            raise OSError("disk full")


class BlockedSink(EventSink):
    release = threading.Event()

    def handle(self, event: Any) -> None:
        self.release.wait()


class SlowSink(EventSink):
    """Takes every bar, a little slowly: at the end of a run its queue is long."""

    wants_bars = True
    bars = 0

    def handle(self, event: Any) -> None:
        if isinstance(event, Bar):
            time.sleep(0.002)
            SlowSink.bars += 1


SINKS = InlinePlugin(sinks={"exploding": ExplodingSink, "blocked": BlockedSink, "slow": SlowSink})


def test_a_failing_sink_never_loses_a_fill(tmp_path):
    registry = builtin_registry(("testing", testing), ("sinks", SINKS))
    cfg = write_config(tmp_path / "c.toml", sections(tmp_path, sinks=[{"type": "exploding"}]))
    result = build_engine(cfg, registry).run()
    r = result.symbols["A"]
    assert r.halted is None and r.fills > 2 and len(r.trades) >= 1
    assert "failed in handle: OSError: disk full" in result.source_stats["sinks"]["ExplodingSink"]["failed"]
    j = Journal(tmp_path / ".engine" / "c.sqlite")
    assert len(j.events("A", kind="fill")) == r.fills  # every fill journaled and booked


def test_a_blocked_sink_stalls_no_worker_and_no_shutdown(tmp_path):
    BlockedSink.release.clear()
    registry = builtin_registry(("testing", testing), ("sinks", SINKS))
    cfg = write_config(tmp_path / "c.toml", sections(tmp_path, n=400, sinks=[{"type": "blocked"}]))
    engine = build_engine(cfg, registry)
    engine.bus.close_timeout = 0.2
    engine.bus._threads[0].queue.maxsize = 10  # a small queue: most events are dropped and counted
    result = engine.run()
    BlockedSink.release.set()
    assert result.symbols["A"].bars == 400
    report = result.source_stats["sinks"]["BlockedSink"]
    assert report["dropped"] > 0
    assert "blocked" in report["failed"] or "did not finish" in report["failed"]


def test_a_slow_sink_still_working_through_its_queue_at_the_end_gets_every_event(tmp_path):
    SlowSink.bars = 0
    registry = builtin_registry(("testing", testing), ("sinks", SINKS))
    cfg = write_config(tmp_path / "c.toml", sections(tmp_path, n=400, sinks=[{"type": "slow"}]))
    engine = build_engine(cfg, registry)
    engine.bus.close_timeout = 0.2  # it never waits that long for its next event
    result = engine.run()
    assert SlowSink.bars == 400
    assert "sinks" not in result.source_stats  # nothing dropped, nothing failed


class _RaisingHook:
    calls = 0

    @staticmethod
    @hookimpl
    def engine_fill(event):
        _RaisingHook.calls += 1
        raise RuntimeError("observer bug")


def test_a_raising_observation_hook_is_disabled_not_fatal(tmp_path):
    _RaisingHook.calls = 0
    registry = builtin_registry(("testing", testing), ("observer", _RaisingHook()))
    cfg = write_config(tmp_path / "c.toml", sections(tmp_path))
    result = build_engine(cfg, registry).run()
    assert result.symbols["A"].halted is None and result.symbols["A"].fills > 2
    assert _RaisingHook.calls == 1
    assert "observer" in result.source_stats["sinks"]["hooks"][0]


class _Stopped:
    summaries: list[dict[str, Any]] = []

    @staticmethod
    @hookimpl
    def engine_stopped(summary):
        _Stopped.summaries.append(summary)


def test_engine_stopped_is_fired_by_the_engine_itself(tmp_path):
    _Stopped.summaries = []
    registry = builtin_registry(("testing", testing), ("stopped", _Stopped()))
    build_engine(write_config(tmp_path / "c.toml", sections(tmp_path)), registry).run()
    assert len(_Stopped.summaries) == 1 and "total" in _Stopped.summaries[0]


class _NoArgs:
    @staticmethod
    @hookimpl
    def register_brokers():  # takes none of the spec's arguments: legal in pluggy
        _NoArgs.called = True


class _Raises:
    @staticmethod
    @hookimpl
    def register_brokers(register):
        raise KeyError("boom")


def test_registration_hooks_go_through_argument_matching_and_failures_name_the_plugin():
    builtin_registry(("subset", _NoArgs()))
    assert _NoArgs.called
    with pytest.raises(
        PluginError, match=r'plugin "raiser" \(\(registered: .*\)\) failed in register_brokers: KeyError'
    ):
        builtin_registry(("raiser", _Raises()))


def test_validate_has_no_side_effects(tmp_path):
    secs = sections(tmp_path)
    secs["engine"]["mode"] = "live"
    cfg = write_config(tmp_path / "c.toml", secs)
    set_registry(builtin_registry(("testing", testing)))
    try:
        out = CliRunner().invoke(main, ["validate", "-c", str(cfg)])
    finally:
        set_registry(None)
    assert out.exit_code == 0, out.output
    assert not (tmp_path / ".engine").exists()  # no journal created


# ------------------------------------------------------------ client ids and statuses


def test_client_ids_fit_every_venue_and_map_back():
    short = client_id_prefix("bot1", ["BTCUSDT"])
    assert make_client_id(short, "BTCUSDT", 12) == "bot1-BTCUSDT-12"
    long_id = client_id_prefix("my-very-long-engine-identifier-for-prod", ["BTCUSDT"])
    assert long_id == client_id_prefix("my-very-long-engine-identifier-for-prod", ["BTCUSDT"])  # deterministic
    for prefix, symbol in ((long_id, "BTCUSDT"), (short, "BRK.B"), (short, "BTC/USD"), (short, "X" * 40), (short, "é")):
        cid = make_client_id(prefix, symbol, 9_999_999_999)
        assert len(cid) <= CLIENT_ID_MAX and re.fullmatch(r"[.A-Za-z0-9:/_-]+", cid), cid
        assert parse_client_id(cid)[1] == 9_999_999_999


def test_order_status_table():
    assert can_move(OrderStatus.SUBMITTED, OrderStatus.ACCEPTED)
    assert can_move(OrderStatus.LOST, OrderStatus.FILLED)  # a late fill: the venue had it after all
    assert not can_move(OrderStatus.FILLED, OrderStatus.CANCELLED)
    assert not can_move(OrderStatus.CANCELLED, OrderStatus.ACCEPTED)
    assert OrderStatus("acknowledged") is OrderStatus.ACCEPTED  # journals of schema 1
    assert OrderStatus.PARTIALLY_FILLED.is_open


# ------------------------------------------------------------ the live source contract


def test_a_source_must_provide_history_or_live():
    with pytest.raises(TypeError, match="must implement history\\(\\) or live\\(\\)"):

        class Nothing(DataSource):
            pass


class WarmSource(DataSource):
    """Live bars after a warm-up; reports its connection; records that it was closed."""

    Config = testing.ReplayConfig
    closed: list[str] = []

    async def warmup(self, symbol: str, bars: int) -> BarChunk | None:
        rows = [r for r in self.config.bars if r[0] == symbol and r[1] < 60 * 30]
        return BarChunk.from_bars([Bar(s, t * NS_PER_SECOND, o, h, lo, c, v) for s, t, o, h, lo, c, v in rows])

    async def live(self) -> AsyncIterator[Bar]:
        self.connection(ConnectionState.CONNECTED, "test")
        try:
            for s, t, o, h, lo, c, v in self.config.bars:
                if t >= 60 * 30:
                    yield Bar(s, t * NS_PER_SECOND, o, h, lo, c, v)
        finally:
            self.closed.append("live")

    async def aclose(self) -> None:
        self.closed.append("source")


class NumpySource(DataSource):
    """Live bars whose numbers are numpy's (a plugin reading a DataFrame);
    ``kind`` = "float" gives each a float time instead, "tuple" a tuple."""

    Config = testing.ReplayConfig
    kind = "int64"

    async def live(self) -> AsyncIterator[Bar]:
        for s, t, o, h, lo, c, v in self.config.bars:
            ts = np.int64(t * NS_PER_SECOND) if self.kind == "int64" else np.float64(t * NS_PER_SECOND)
            bar = Bar(s, ts, *map(np.float64, (o, h, lo, c, v)))  # type: ignore[arg-type]
            yield (s, ts) if self.kind == "tuple" else bar  # type: ignore[misc]


COUNTER = {
    "init": 'ctx.state["seen"] = 0',
    "watch": """
        ctx.state["seen"] += 1
        return {"action": "enter", "qty": 1}
    """,
}


def test_warmup_feeds_strategy_and_indicators_without_trading_then_live_trades(tmp_path):
    WarmSource.closed = []
    registry = builtin_registry(("testing", testing), ("warm", InlinePlugin(sources={"warm": WarmSource})))
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["A"], "window": 50, "journal_sync": "normal"},
            "source": {"type": "warm", "bars": rows(40)},
            "strategy": python_strategy(tmp_path, **COUNTER),
            "broker": {"type": "paper", "cash": 10000},
            "sinks": [{"type": "memory"}],
        },
    )
    engine = build_engine(cfg, registry)
    result = engine.run()
    r = result.symbols["A"]
    assert r.bars == 10  # the PnL series covers live bars only
    assert r.orders == 1 and r.position_qty == 1  # entered on the first live bar, not in the warm-up
    sink = engine.bus.sinks[0]
    signals = [e for e in sink.events if type(e).__name__ == "SignalEvent"]
    assert signals[0].ts == 30 * 60 * NS_PER_SECOND  # the first decision acted on is the first live bar's
    conn = [e for e in sink.events if isinstance(e, ConnectionEvent)]
    assert [(c.source, c.state, c.detail) for c in conn] == [("warm", "connected", "test")]
    assert WarmSource.closed == ["live", "source"]  # the generator closed, then the source, before the loop ended
    j = Journal(tmp_path / ".engine" / "c.sqlite")
    assert [e["state"] for e in j.events(kind="connection")] == ["connected", "stopped"]  # engine status's last word
    assert Decimal(j.symbols()["A"]["qty"]) == 1


def _numpy_run(tmp_path: Path, kind: str) -> Any:
    NumpySource.kind = kind
    registry = builtin_registry(("testing", testing), ("np", InlinePlugin(sources={"np": NumpySource})))
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["A"], "window": 20},
            "source": {"type": "np", "bars": rows(40)},
            "strategy": python_strategy(tmp_path, **COUNTER),
            "broker": {"type": "paper", "cash": 10000},
        },
    )
    return build_engine(cfg, registry).run()


def test_a_live_bar_with_numpys_integer_time_is_taken_as_its_int(tmp_path):
    r = _numpy_run(tmp_path, "int64").symbols["A"]
    assert (r.bars, r.orders, r.errors, r.halted) == (40, 1, [], None)
    assert r.ts.dtype == np.int64 and int(r.ts[0]) == 0


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("float", r"data source 'np': a live bar of A: ts is a float64 \(0\.0\), not an int of nanoseconds since"),
        ("tuple", r"data source 'np': live\(\) yielded a tuple, not an engine_core\.Bar"),
    ],
)
def test_a_live_bar_off_the_contract_stops_the_run_naming_the_source(tmp_path, kind, message):
    from engine_core.errors import EngineError

    with pytest.raises(EngineError, match=message):
        _numpy_run(tmp_path, kind)


ASKED = """
function watch(ctx) return "setup" end
function close_watch(ctx)
  ctx.state.asked = (ctx.state.asked or 0) + 1
  return "cancel"
end
function in_trade(ctx) end
"""


def test_warmup_bars_ask_nothing_ahead_of_the_strategy(tmp_path):
    """A Lua strategy asks close_watch on a setup's bar in the setup's call,
    but not on warm-up bars, whose decisions are dropped: there close_watch
    is never asked (nor its ctx.state changed), as before."""
    WarmSource.closed = []
    registry = builtin_registry(("testing", testing), ("warm", InlinePlugin(sources={"warm": WarmSource})))
    (tmp_path / "s.lua").write_text(ASKED)
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["A"], "window": 50, "journal_sync": "normal"},
            "source": {"type": "warm", "bars": rows(40)},
            "strategy": {"host": "lua", "script": "s.lua"},
            "broker": {"type": "paper", "cash": 10000},
        },
    )
    result = build_engine(cfg, registry).run()
    assert result.symbols["A"].bars == 10
    j = Journal(tmp_path / ".engine" / "c.sqlite")
    assert j.symbols()["A"]["strategy_state"] == {"asked": 10}  # the ten live bars' setups, not the warm-up's 30


class SessionSource(testing.ReplaySource):
    """Entries allowed only from the 5th bar on (a market that opens then)."""

    def entries_allowed(self, symbol: str, ts: int) -> bool:
        return ts >= 4 * 60 * NS_PER_SECOND


def test_no_entry_where_the_source_says_the_market_is_closed(tmp_path):
    secs = sections(tmp_path, n=12)
    secs["source"]["type"] = "session"
    secs["strategy"].update(python_strategy(tmp_path, **COUNTER))
    registry = builtin_registry(("testing", testing), ("session", InlinePlugin(sources={"session": SessionSource})))
    engine = build_engine(write_config(tmp_path / "c.toml", secs), registry)
    result = engine.run()
    (trip_free,) = result.symbols.values()
    assert trip_free.position_qty == 1 and trip_free.orders == 1
    j = Journal(tmp_path / ".engine" / "c.sqlite")
    (order,) = j.orders("A")
    assert order["created_ts"] == 4 * 60 * NS_PER_SECOND  # the first bar of the session


def test_cross_symbol_rules_give_a_backtest_in_event_time_order(tmp_path):
    """max_open_orders reads the other symbols' state: the symbols step in
    event-time order (ties in configured order), so runs and chunk sizes agree."""
    outcomes = []
    for k, chunk in enumerate((1, 7, 1000, 1000)):
        folder = tmp_path / f"run{k}"
        folder.mkdir()
        secs = sections(folder, n=200)
        secs["engine"].update(symbols=["A", "B"], chunk=chunk, journal=False)
        secs["source"]["bars"] = rows(200) + [["B", *r[1:]] for r in rows(200)]
        secs["risk"] = {"max_open_orders": 1}
        secs["sinks"] = [{"type": "memory"}]
        engine = build_engine(write_config(folder / "c.toml", secs))
        result = engine.run()
        refused = [e for e in engine.bus.sinks[0].events if type(e).__name__ == "OrderEvent" and e.status == "refused"]
        trades = {s: [(t.entry_ts, t.exit_ts) for t in r.trades] for s, r in result.symbols.items()}
        outcomes.append((trades, sorted((e.order.symbol, e.order.ts) for e in refused)))
    assert all(o == outcomes[0] for o in outcomes)
    trades, refused = outcomes[0]
    assert refused and {s for s, _ in refused} == {"B"}  # A comes first on every shared bar
    assert len(trades["A"]) > 10
