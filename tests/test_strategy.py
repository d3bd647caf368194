"""The strategy contract: what a decision carries onto the bus, which functions a strategy must define."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine_core.builtin.python_host import PythonHost
from engine_core.builtin.simulated import gbm_bars
from engine_core.config import StrategySection
from engine_core.errors import StrategyError
from engine_core.model import BarChunk, State
from engine_core.storage import BarWindow
from engine_core.strategy import SymbolView, parse_decision


def test_a_signal_carries_the_side_of_an_entry_the_fields_given_and_the_reason():
    enter = parse_decision(State.WATCH, {"action": "enter", "qty": 2, "limit_price": 90, "reason": "dip"}, "t")
    assert enter is not None
    assert enter.detail() == {"side": "buy", "qty": "2", "limit_price": 90.0, "reason": "dip"}
    exit_ = parse_decision(State.IN_TRADE, "exit", "t")
    assert exit_ is not None and exit_.detail() == {}


def test_a_python_strategy_must_define_every_state_function(tmp_path: Path):
    (tmp_path / "s.py").write_text("class S:\n    def watch(self, ctx):\n        return None\n")
    host = PythonHost(StrategySection(host="python", **{"class": "s.py:S"}), tmp_path)
    with pytest.raises(StrategyError, match=r"s\.py:S does not define close_watch, in_trade$"):
        host.load()


def _fed(view: SymbolView, store: BarWindow, chunk: BarChunk, live: bool) -> None:
    """Show ``chunk`` to ``view`` as the worker does: live, one Bar at a time."""
    if not live:
        view.show(store, chunk)
        return
    for k in range(len(chunk)):
        bar = chunk.bar(k)
        view.show(store, bar)


def test_indicators_fed_live_bars_match_the_chunk_path_and_keep_their_latest_values(registry: Any):
    bars = gbm_bars("S", 120)
    views = {live: SymbolView("S", {}, 30) for live in (False, True)}
    stores = {live: BarWindow("S", 30) for live in (False, True)}
    for live, view in views.items():
        _fed(view, stores[live], bars.slice(0, 40), live=False)
        view.indicator("bbands", (10, 2, 2))  # made on the history, then fed with each chunk
        view.indicator("sma", (5,))
        _fed(view, stores[live], bars.slice(40, 120), live=live)
    chunked, live = views[False], views[True]
    for name, args in (("bbands", (10, 2, 2)), ("sma", (5,))):
        got, want = live.indicator(name, args), chunked.indicator(name, args)
        assert all(len(g) == len(live.ts) == 30 for g in got)  # the window's history, then the bar
        assert [list(g) for g in got] == [list(w[-30:]) for w in want]
        assert live.tracker(name, args).latest == tuple(float(g[-1]) for g in got)
    latest = live.latest_indicators(int(bars.ts[-1]))
    assert latest is not None and latest["sma(5)"] == pytest.approx(float(np.mean(bars.close[-5:])))
    assert live.latest_indicators(int(bars.ts[-2])) is None  # no longer at that bar


def _made(view: SymbolView) -> bool:
    """Whether the view holds its bars' arrays (asked without making them: a
    live bar's store is kept until they are first read)."""
    return view._store is None


def test_a_live_bars_arrays_are_made_when_read_and_match_the_chunk_path():
    bars = gbm_bars("S", 50)
    live, chunked = SymbolView("S", {}, 30), SymbolView("S", {}, 30)
    live_store, chunk_store = BarWindow("S", 30), BarWindow("S", 30)
    for view, store in ((live, live_store), (chunked, chunk_store)):
        view.show(store, bars.slice(0, 20))
    for k in range(20, 50):
        bar = bars.bar(k)
        live.show(live_store, bar)
        chunked.show(chunk_store, bars.slice(k, k + 1))
        assert not _made(live)  # not made until read
        assert (live.offset, live.n, live.seen) == (chunked.offset, chunked.n, chunked.seen)
        if k % 3 == 0:  # read on some bars only: the next bar drops them again
            for name in ("ts", "open", "high", "low", "close", "volume"):
                got, want = getattr(live, name), getattr(chunked, name)
                assert got.dtype == want.dtype and list(got) == list(want), name
            assert _made(live)  # made once, by the first read
    assert live.last_bar() == chunked.last_bar() == bars.bar(49)
    with pytest.raises(AttributeError, match="no attribute 'closes'"):
        live.closes  # noqa: B018 - a name that is no array
