"""What ``ctx`` gives a script: bars, history, indicators, position, params, state."""

from __future__ import annotations

import io
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
import talib

from engine_core.model import Fill, Side, State
from engine_core.strategy_log import StrategyLog, TerminalLog

MINUTE = 60_000_000_000


def probe(harness: Any, expression: str, **kwargs: Any) -> Any:
    """A harness whose watch returns the Lua ``expression`` (joined with
    commas when it has several values) as the decision's reason."""
    code = f"""
    local function show(...)
      local out = {{}}
      for i = 1, select("#", ...) do
        local v = select(i, ...)
        out[i] = math.type(v) == "float" and string.format("%.17g", v) or tostring(v)
      end
      return table.concat(out, ",")
    end
    function watch(ctx) return {{action = "setup", reason = show({expression})}} end
    function close_watch(ctx) end
    function in_trade(ctx) end
    """
    return harness(code, **kwargs)


def reason(h: Any, k: int) -> str:
    """The reason the probe gives on chunk bar k."""
    i, decision = h.strategy.scan(State.WATCH, k, k + 1)
    assert i == k and decision is not None
    return decision.reason


def _parse(text: str) -> Any:
    if text == "nil":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def at(h: Any, k: int) -> list[Any]:
    """The probe's values on chunk bar k: numbers, None for nil, else strings."""
    return [_parse(part) for part in reason(h, k).split(",")]


def test_bar_and_history(harness: Any) -> None:
    h = probe(harness, "ctx.bar.time, ctx.bar.close, ctx.close(), ctx.close(0), ctx.close(2), ctx.open(1), ctx.index")
    h.feed(np.arange(1.0, 11.0))
    assert at(h, 0) == [MINUTE, 1.0, 1.0, 1.0, None, None, 1]
    assert at(h, 5) == [6 * MINUTE, 6.0, 6.0, 6.0, 4.0, 4.0, 6]


def test_every_series_and_bar_field(harness: Any) -> None:
    h = probe(
        harness,
        "ctx.time(1), ctx.open(), ctx.high(), ctx.low(), ctx.volume(), "
        "ctx.bar.open, ctx.bar.high, ctx.bar.low, ctx.bar.volume, ctx.close(-1), ctx.bar.nothing",
    )
    h.feed(np.array([10.0, 12.0, 11.0]))
    assert at(h, 1) == [MINUTE, 10.0, 12.5, 9.5, 11.0, 10.0, 12.5, 9.5, 11.0, None, None]


def test_history_spans_chunks_up_to_the_window(harness: Any) -> None:
    h = probe(harness, "ctx.close(4), ctx.close(5), ctx.index", window=5)
    h.feed(np.arange(1.0, 8.0))
    h.feed(np.array([100.0, 101.0]))  # the history comes from the previous chunk
    assert at(h, 0) == [4.0, None, 8]  # window 5: 4 bars back at most
    assert at(h, 1) == [5.0, None, 9]  # the same inside a chunk that holds older bars
    h.feed(np.array([200.0]))  # a live-size chunk
    assert at(h, 0) == [6.0, None, 10]


def test_chunk_that_does_not_follow_reloads_everything(harness: Any) -> None:
    h = probe(harness, "ctx.close(1), ctx.index")
    h.feed(np.arange(1.0, 5.0))
    at(h, 3)
    h.view.seen += 10  # a gap: the host must not reuse the shipped history
    h.feed(np.array([9.0]))
    assert at(h, 0) == [4.0, 15]


def test_indicators_current_and_previous(harness: Any) -> None:
    close = np.linspace(1.0, 30.0, 30) ** 1.5
    h = probe(harness, "ctx.ind.sma(5), ctx.prev.sma(5), ctx.ind.sma(5.0)")
    h.feed(close)
    sma = talib.SMA(close, 5)
    assert at(h, 3) == [None, None, None]
    assert at(h, 4) == [sma[4], None, sma[4]]
    assert at(h, 20) == [sma[20], sma[19], sma[20]]


def test_indicators_keep_their_values_across_chunks(harness: Any) -> None:
    close = np.cos(np.arange(80) / 5.0) * 10 + 50
    h = probe(harness, "ctx.ind.ema(10), ctx.prev.ema(10)", window=20)
    h.feed(close[:50])
    at(h, 49)
    h.feed(close[50:])
    ema = talib.EMA(close, 10)
    for k in (0, 1, 29):
        assert at(h, k) == [ema[50 + k], ema[49 + k]]


def test_multi_output_indicators(harness: Any) -> None:
    close = np.sin(np.arange(120) / 7.0) * 5 + 100
    h = probe(harness, "ctx.ind.macd(12, 26, 9)")
    h.feed(close)
    macd, signal, hist = talib.MACD(close, 12, 26, 9)
    assert at(h, 10) == [None, None, None]
    assert at(h, 100) == [macd[100], signal[100], hist[100]]
    h2 = probe(harness, "ctx.ind.bbands(20, 2, 2)")
    h2.feed(close)
    upper, middle, lower = talib.BBANDS(close, 20, 2, 2)
    assert at(h2, 50) == [upper[50], middle[50], lower[50]]


def test_indicator_created_once_per_symbol(harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine_core import indicators

    created: list[tuple[str, dict[str, Any]]] = []
    create = indicators.create

    def counting(name: str, **params: Any) -> Any:
        created.append((name, params))
        return create(name, **params)

    monkeypatch.setattr(indicators, "create", counting)
    h = probe(harness, "ctx.ind.sma(3), ctx.prev.sma(3), ctx.ind.sma(4)")
    h.feed(np.arange(1.0, 20.0))
    for k in range(19):
        at(h, k)
    assert sorted(name for name, _ in created) == ["sma", "sma"]
    assert sorted(sum(params.values()) for _, params in created) == [3, 4]


@pytest.mark.parametrize(
    "call, message",
    [
        ("ctx.ind.nosuch(3)", "unknown indicator 'nosuch'"),
        ("ctx.ind.sma(3, 4, 5)", "takes at most 1 parameters"),
        ("ctx.ind.sma({})", "argument 1 must be a number"),
        ("ctx.ind.sma(0/0)", "argument 1 must be a number"),
        ("ctx.ind.sma('x')", "period must be a whole number"),
    ],
)
def test_bad_indicator_is_an_error_at_the_script_line(harness: Any, call: str, message: str) -> None:
    from engine_core.errors import StrategyError

    code = f"function watch(ctx)\n  local x = {call}\n  return x\nend\nfunction close_watch() end\nfunction in_trade() end\n"
    h = harness(code)
    h.feed(np.arange(1.0, 5.0))
    with pytest.raises(StrategyError, match=rf"^strategy.lua:2: watch for TEST: .*{message}"):
        h.strategy.scan(State.WATCH, 0, 4)


def test_position(harness: Any) -> None:
    fields = "qty, side, avg_price, entry_time, bars_held, stop_price, take_profit_price, trailing_stop"
    h = probe(harness, ", ".join(f"ctx.position.{f.strip()}" for f in fields.split(",")))
    h.feed(np.arange(1.0, 10.0))
    assert at(h, 0) == [0, None, None, None, None, None, None, None]
    p = h.view.position
    p.qty, p.avg_price, p.entry_ts, p.entry_index, p.stop_price = -2.0, 3.5, 3 * MINUTE, 3, 2.0
    assert at(h, 5) == [-2, "short", 3.5, 3 * MINUTE, 3, 2, None, None]
    p.qty, p.take_profit_price, p.trailing_stop = 1.0, 9.0, 0.05
    assert at(h, 6) == [1, "long", 3.5, 3 * MINUTE, 4, 2, 9, 0.05]


def test_params_symbol_and_read_only_tables(harness: Any) -> None:
    h = probe(
        harness,
        "ctx.symbol, ctx.params.fast, ctx.params.name, ctx.params.levels[2], #ctx.params.levels, "
        "pcall(function() ctx.params.fast = 1 end), pcall(function() ctx.bar = 1 end), "
        "pcall(function() ctx.position.qty = 1 end), pcall(function() ctx.ind.sma = 1 end), "
        "pcall(rawset, ctx, 'close', 1), pcall(setmetatable, ctx, {}), getmetatable(ctx)",
        params={"fast": 10, "name": "x", "levels": [1.5, 2.5]},
    )
    h.feed(np.arange(1.0, 3.0))
    values = at(h, 0)
    assert values[:5] == ["TEST", 10, "x", 2.5, 2]
    assert values[5:11] == ["false"] * 6
    assert values[-1] == "read-only"


def test_state_persists_between_bars_and_chunks(harness: Any) -> None:
    code = """
    function init(ctx) ctx.state.n = 100 end
    function watch(ctx)
      ctx.state.n = ctx.state.n + 1
      return {action = "setup", reason = tostring(ctx.state.n)}
    end
    function close_watch(ctx) end
    function in_trade(ctx) end
    """
    h = harness(code)
    h.feed(np.arange(1.0, 3.0))
    h.strategy.init()
    assert at(h, 0) == [101]
    h.feed(np.arange(1.0, 3.0))
    assert at(h, 0) == [102]


def test_log(harness: Any) -> None:
    h = probe(harness, "ctx.log('close is', ctx.close(), nil)")
    out = io.StringIO()
    h.view.log = StrategyLog("TEST", terminal=TerminalLog(out=lambda: out))
    h.feed(np.array([5.0, 7.0]))
    at(h, 1)
    # the bar's time (the harness puts bar k at k + 1 minutes), the symbol, the joined values
    assert out.getvalue() == "1970-01-01T00:02:00Z TEST log: close is 7.0 nil\n"


def test_on_fill_sees_the_fill_and_its_bar(harness: Any) -> None:
    from decimal import Decimal

    from engine_core.model import Fill, Side

    code = """
    function on_fill(ctx, fill)
      ctx.state.seen = table.concat({fill.side, fill.qty, fill.price, fill.time, fill.id, ctx.close()}, ",")
    end
    function watch(ctx) return {action = "setup", reason = ctx.state.seen} end
    function close_watch(ctx) end
    function in_trade(ctx) end
    """
    h = harness(code)
    h.feed(np.arange(1.0, 6.0))
    h.strategy.on_fill(Fill("id-1", "TEST", Side.BUY, Decimal(2), Decimal("3.5"), Decimal(0), 3 * MINUTE))
    assert reason(h, 4) == f"buy,2.0,3.5,{3 * MINUTE},id-1,3.0"


@pytest.mark.parametrize(
    "call, message",
    [
        ("ctx.ind.sma(3, nil)", "argument 2 must be a number, got nil"),
        ("ctx.prev.sma(3, nil)", "argument 2 must be a number, got nil"),
        ("ctx.ind.sma(3, 4)", "takes at most 1 parameters"),
        ("ctx.prev.sma({})", "argument 1 must be a number"),
    ],
)
def test_extra_arguments_are_checked_after_the_one_argument_call(harness: Any, call: str, message: str) -> None:
    """The fast path of a one-argument indicator read never hides extra arguments."""
    from engine_core.errors import StrategyError

    code = (
        "function watch(ctx)\n  local a, b = ctx.ind.sma(3), ctx.prev.sma(3)\n"
        f"  if ctx.index > 3 then local x = {call}; return x end\nend\nfunction close_watch() end\nfunction in_trade() end\n"
    )
    h = harness(code)
    h.feed(np.arange(1.0, 6.0))
    with pytest.raises(StrategyError, match=rf"^strategy.lua:3: watch for TEST: .*{message}"):
        h.strategy.scan(State.WATCH, 0, 5)


def test_one_argument_reads_across_chunks_and_warmup(harness: Any) -> None:
    close = np.linspace(1.0, 40.0, 40) ** 1.2
    h = probe(harness, "ctx.ind.sma(4), ctx.prev.sma(4), ctx.prev.sma(4.0), (pcall(ctx.ind.sma, 4, 'x'))", window=10)
    sma = talib.SMA(close, 4)
    h.feed(close[:20])
    assert at(h, 2) == [None, None, None, "false"]  # warm-up: NaN reads as nil
    assert at(h, 3)[:3] == [sma[3], None, None]
    assert at(h, 19)[:3] == [sma[19], sma[18], sma[18]]
    h.feed(close[20:])
    assert at(h, 0)[:3] == [sma[20], sma[19], sma[19]]


def test_indicators_with_several_arguments_and_outputs(harness: Any) -> None:
    close = np.cos(np.arange(60) / 4.0) * 10 + 50
    reads = [
        ("ind", "stddev", (5, 1)),
        ("prev", "stddev", (5, 1)),
        ("ind", "stddev", (5, 2)),
        ("ind", "minmax", (4,)),
        ("prev", "minmax", (4,)),
        ("ind", "stoch", (5, 3, 0, 3, 0)),
        ("ind", "bbands", (6, 2, 2)),
        ("prev", "bbands", (6, 2, 2)),
    ]
    # Each read as a table of all its outputs (a call mid-list gives one value).
    expression = ", ".join(
        f"table.concat((function(...) local t = {{}} for i = 1, select('#', ...) do "
        f"t[i] = string.format('%.17g', (select(i, ...)) or 0/0) end return t end)"
        f"(ctx.{kind}.{name}({', '.join(map(str, args))})), ';')"
        for kind, name, args in reads
    )
    h = probe(harness, expression)
    h.feed(close)

    def expected(kind: str, name: str, args: tuple[Any, ...], k: int) -> str:
        j = k - (kind == "prev")
        values = [float(a[j]) if j >= 0 else float("nan") for a in h.view.indicator(name, args)]
        return ";".join("nan" if math.isnan(v) else f"{v:.17g}" for v in values)

    for k in (0, 3, 4, 12, 40, 59):
        got = reason(h, k).replace("-nan", "nan").split(",")
        assert got == [expected(kind, name, args, k) for kind, name, args in reads]


def test_live_bars_grow_the_arrays_memory_reserve_in_steps(harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A live bar appends to the Lua arrays; the sandbox's memory reserve for
    them grows at least twofold when it grows, not by a lupa call per bar."""
    close = 100 + np.sin(np.arange(600) / 7.0)
    h = probe(harness, "ctx.ind.sma(3), ctx.close()", window=20)
    h.feed(close[:1])
    at(h, 0)  # the script registers its arrays
    sandbox = h.strategy.ctx.sandbox
    grown: list[int] = []
    reserve = sandbox.reserve
    monkeypatch.setattr(sandbox, "reserve", lambda data_bytes: (grown.append(data_bytes), reserve(data_bytes)))
    for k in range(1, len(close)):
        h.feed(close[k : k + 1])
        assert at(h, 0)[1] == close[k]
    assert at(h, 0)[0] == pytest.approx(close[-3:].mean())
    assert all(b >= 2 * a for a, b in zip(grown, grown[1:]))
    assert 0 < len(grown) <= 11  # log2(600) steps, not 600


def test_the_state_journaled_is_what_the_last_call_left(harness: Any) -> None:
    """``state()`` (read for each snapshot) follows every call that changes
    ``ctx.state``, on_fill's too, and what a restart puts back."""
    code = """
    function watch(ctx) ctx.state.bars = (ctx.state.bars or 0) + 1 end
    function close_watch(ctx) end
    function in_trade(ctx) end
    function on_fill(ctx, fill) ctx.state.fills = (ctx.state.fills or 0) + 1 end
    """
    h = harness(code)
    h.feed(np.arange(1.0, 4.0))
    assert h.strategy.state() == {}
    for k in range(3):
        h.strategy.scan(State.WATCH, k, k + 1)
        assert h.strategy.state() == {"bars": k + 1}
        assert h.strategy.state() == {"bars": k + 1}  # read again with no call between
    h.strategy.on_fill(Fill("e-TEST-1", "TEST", Side.BUY, Decimal(1), Decimal(2), Decimal(0), 3 * MINUTE))
    assert h.strategy.state() == {"bars": 3, "fills": 1}
    h.strategy.restore_state({"bars": 10})
    assert h.strategy.state() == {"bars": 10}
