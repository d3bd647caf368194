"""ctx.log: each line on the terminal (stderr, with bar time and symbol) within a
rate limit, and every line as a LogEvent on the event bus and its hook."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import engine_core.strategy_log as strategy_log
from engine_core.builtin.log_sink import LogConfig, LogSink
from engine_core.hookspecs import hookimpl
from engine_core.model import LogEvent
from engine_core.plugins import Registry
from engine_core.runner import build_engine
from engine_core.strategy_log import StrategyLog, TerminalLog
from engine_core.testing import run_engine, write_config

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
MINUTE = 60

LUA = """
function init(ctx) ctx.log("init", ctx.symbol) end
function watch(ctx)
  if ctx.index % 2 == 0 then ctx.log("bar", ctx.index, "close", ctx.close()) end
  if ctx.index == 4 then return "enter" end
end
function close_watch(ctx) end
function in_trade(ctx) end
function on_fill(ctx, fill) ctx.log("filled", fill.side, fill.qty) end
"""

PYTHON = """
class S:
    def watch(self, ctx):
        if ctx.index % 2 == 0:
            ctx.log("bar", ctx.index, "close", ctx.close())
        return "enter" if ctx.index == 4 else None
    def close_watch(self, ctx):
        return None
    def in_trade(self, ctx):
        return None
"""


class Hook:
    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    @hookimpl
    def engine_log(self, event: LogEvent) -> None:
        self.events.append(event)


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The process terminal of ctx.log, as a string (no rate limit within a test's few lines)."""
    out = io.StringIO()
    monkeypatch.setattr(strategy_log, "TERMINAL", TerminalLog(burst=1000, rate=0.0, out=lambda: out))
    return out


def config(tmp_path: Path, host: str, bars: int = 6) -> Path:
    rows = [[s, T0 + MINUTE * i, 10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, 1.0] for i in range(bars) for s in "AB"]
    if host == "lua":
        (tmp_path / "s.lua").write_text(LUA)
        strategy = {"host": "lua", "script": "s.lua"}
    else:
        (tmp_path / "s.py").write_text(PYTHON)
        strategy = {"host": "python", "class": "s.py:S"}
    return write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["A", "B"]},
            "source": {"type": "replay", "bars": rows},
            "strategy": strategy,
            "sinks": [{"type": "memory"}],
        },
    )


@pytest.mark.parametrize("host", ["lua", "python"])
def test_log_lines_reach_the_terminal_the_bus_and_the_hook(
    tmp_path: Path, registry: Registry, terminal: io.StringIO, host: str
) -> None:
    hook = Hook()
    registry.pm.register(hook)
    try:
        engine = build_engine(config(tmp_path, host))
        engine.run()
    finally:
        registry.pm.unregister(hook)
    sink = engine.bus.sinks[0]
    events = [e for e in sink.events if isinstance(e, LogEvent)]  # type: ignore[attr-defined]
    a = [(e.ts, e.message) for e in events if e.symbol == "A"]
    ns = 1_000_000_000
    # watch runs until the entry on bar 4 (the fifth bar)
    expected = [(T0 * ns + MINUTE * ns, "bar 2 close 11.5"), (T0 * ns + 3 * MINUTE * ns, "bar 4 close 13.5")]
    if host == "lua":
        # init runs before the first bar (no time); on_fill at the bar of the fill (next open)
        expected = [(None, "init A"), *expected, (T0 * ns + 4 * MINUTE * ns, "filled buy 1.0")]
    assert a == expected
    assert sorted(hook.events, key=lambda e: (e.symbol, e.ts or 0)) == sorted(
        events, key=lambda e: (e.symbol, e.ts or 0)
    )
    lines = terminal.getvalue().splitlines()
    assert "2024-01-01T00:03:00Z A log: bar 4 close 13.5" in lines
    assert "2024-01-01T00:03:00Z B log: bar 4 close 13.5" in lines
    assert len(lines) == len(events)


def test_a_strategy_logging_every_bar_prints_a_screenful(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every line still goes to the bus; the terminal shows the burst, then says it leaves lines out."""
    monkeypatch.setattr(strategy_log, "TERMINAL", TerminalLog(rate=0.0))  # stderr, no refill in the test
    (tmp_path / "s.lua").write_text(
        "function watch(ctx) ctx.log('close', ctx.close()) end\n"
        "function close_watch(ctx) end\nfunction in_trade(ctx) end\n"
    )
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["A", "B"]},
            "source": {"type": "simulated", "bars": 20_000},
            "strategy": {"host": "lua", "script": "s.lua"},
            "sinks": [{"type": "memory"}],
        },
    )
    engine = build_engine(cfg)
    engine.run()
    strategy_log.TERMINAL.finish()
    logged = [e for e in engine.bus.sinks[0].events if isinstance(e, LogEvent)]  # type: ignore[attr-defined]
    assert len(logged) == 40_000
    err = capsys.readouterr().err.splitlines()
    shown = [line for line in err if " log: close " in line]
    assert len(shown) == strategy_log.TERMINAL_BURST
    assert err[strategy_log.TERMINAL_BURST].startswith("(ctx.log: more lines than the terminal shows;")
    assert err[-1] == f"({40_000 - strategy_log.TERMINAL_BURST:,} ctx.log lines not shown on the terminal)"


def test_the_terminal_rate_limit() -> None:
    now = [0.0]
    out = io.StringIO()
    terminal = TerminalLog(burst=3, rate=2.0, clock=lambda: now[0], out=lambda: out)
    log = StrategyLog("X", terminal=terminal)
    for k in range(10):
        log(None, f"line {k}")
    now[0] = 1.0  # two more lines' worth
    for k in range(10, 13):
        log(60 * 1_000_000_000, f"line {k}")
    terminal.finish()
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["- X log: line 0", "- X log: line 1", "- X log: line 2"]
    assert lines[3].startswith("(ctx.log: more lines than the terminal shows; from here on at most 2 a second")
    assert lines[4:6] == ["1970-01-01T00:01:00Z X log: line 10", "1970-01-01T00:01:00Z X log: line 11"]
    assert lines[6:] == ["(8 ctx.log lines not shown on the terminal)"]
    terminal.finish()  # counted afresh: nothing more to say
    assert out.getvalue().count("not shown") == 1


def test_a_long_message_is_cut() -> None:
    out = io.StringIO()
    StrategyLog("X", terminal=TerminalLog(out=lambda: out))(None, "x" * 5000)
    assert out.getvalue() == "- X log: " + "x" * strategy_log.LOG_CHARS + "\n"


def test_the_log_sink_writes_log_events_at_level_all_only(tmp_path: Path) -> None:
    event = LogEvent("A", (T0 + MINUTE) * 1_000_000_000, "hello")
    for level, written in (("all", True), ("trades", False), ("errors", False)):
        path = tmp_path / f"{level}.log"
        sink = LogSink(LogConfig(path=str(path), level=level))
        sink.start()
        sink.handle(event)
        sink.close()
        assert path.read_text() == ("2024-01-01T00:01:00Z A log: hello\n" if written else "")


def test_engine_run_prints_log_lines_on_stderr(tmp_path: Path) -> None:
    """Through the command: lines with bar time and symbol on stderr, none on stdout."""
    (tmp_path / "s.lua").write_text(LUA)
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["A", "B"]},
            "source": {"type": "simulated", "bars": 10},
            "strategy": {"host": "lua", "script": "s.lua"},
        },
    )
    proc = run_engine("run", "-c", str(cfg), "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert "2024-01-01T00:01:00Z A log: bar 2 close " in proc.stderr
    assert "- B log: init B" in proc.stderr
    assert " log: " not in proc.stdout
