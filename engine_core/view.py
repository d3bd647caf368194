"""The view of its symbol a strategy reads: bars with history, indicators,
position. Compiled with the order path (``kernel.py``): the worker, the Lua
context and the order path read it on every bar and every order, and a
compiled caller reads a native class's attributes without a lookup by name.

A live bar's arrays are made when first read: ``show`` keeps the bar in its
store and leaves the arrays unmade (``_store`` set); the first read of one
of them (a property) makes all six from the store. A strategy whose reads
are numbers (the Lua context, indicators) makes none on a live bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from engine_core.model import Bar, BarChunk, bar_at
from engine_core.storage import BarWindow
from engine_core.strategy_log import StrategyLog
from engine_core.tracked import PositionView, TrackedIndicator

Log = Callable[[int | None, str], None]  # ``log(ts, message)``: a StrategyLog, or a test's


class SymbolView:
    """What a strategy reads of its symbol: bars with history, indicators, position.

    The arrays ``ts, open, high, low, close, volume`` hold up to ``window - 1``
    earlier bars followed by the current chunk; the chunk's first bar is at
    index ``offset`` and it has ``n`` bars; ``seen`` bars of the symbol came
    before it. ``indicator(name, args)`` returns
    the indicator's output arrays aligned with them (NaN before it is ready).
    ``log(ts, message)`` is the strategy's ``ctx.log`` (terminal and event bus).
    Only the worker thread of the symbol touches a view.
    """

    def __init__(self, symbol: str, params: Mapping[str, Any], window: int, log: Log | None = None) -> None:
        self.symbol = symbol
        self.log: Log = log or StrategyLog(symbol)
        self.params: dict[str, Any] = dict(params)
        self.window = window
        empty = np.empty(0)
        self._ts: np.ndarray = np.empty(0, dtype=np.int64)
        self._open = self._high = self._low = self._close = self._volume = empty
        self.offset = 0
        self.n = 0
        self.seen = 0  # bars of the symbol before the current chunk
        self.position = PositionView()
        self._indicators: dict[tuple[str, tuple[Any, ...]], TrackedIndicator] = {}
        self._last: Bar | None = None
        self._newest_ts: int | None = None  # the time of the newest bar set
        # A live bar's store while the arrays are not made yet (``show``: they
        # are made when first read); None once they are.
        self._store: BarWindow | None = None
        # The live bar the view shows (its one bar), None for a chunk: the
        # order path reads the bar's values from it, making no array.
        self.live: Bar | None = None

    # ------------------------------------------------------------ the arrays

    @property
    def ts(self) -> np.ndarray:
        return self._made()._ts

    @property
    def open(self) -> np.ndarray:
        return self._made()._open

    @property
    def high(self) -> np.ndarray:
        return self._made()._high

    @property
    def low(self) -> np.ndarray:
        return self._made()._low

    @property
    def close(self) -> np.ndarray:
        return self._made()._close

    @property
    def volume(self) -> np.ndarray:
        return self._made()._volume

    def _made(self) -> SymbolView:
        """The view, its arrays made first when a live bar left them unmade
        (``show``): views of its store."""
        store = self._store
        if store is not None:
            self._store = None
            self._set_arrays(store.columns(self.offset + 1))
        return self

    def _set_arrays(self, cols: Mapping[str, np.ndarray]) -> None:
        self._ts, self._open, self._high, self._low = cols["ts"], cols["open"], cols["high"], cols["low"]
        self._close, self._volume = cols["close"], cols["volume"]

    def last_bar(self) -> Bar:
        """The newest bar of the view (built once per chunk)."""
        bar = self._last
        if bar is None:
            bar = self._last = bar_at(self, self.symbol, -1)
        return bar

    # ------------------------------------------------------------ the worker calls these

    def show(self, store: BarWindow, bars: BarChunk | Bar) -> None:
        """Store ``bars`` in ``store`` and make them the view's bars: a chunk,
        or one bar that came live (a Bar), whose arrays are views of the store
        made when first read (a live bar that only a strategy's indicators and
        the Lua context see, which read numbers, makes none)."""
        if not isinstance(bars, Bar):
            cols, offset = store.push(bars, self.window - 1)
            self.set_data(cols, offset)
            return
        bar = bars
        offset = store.push_bar(bar, self.window - 1)
        self._store = store
        before = self._newest_ts
        self._last = self.live = bar
        self.offset = offset
        self.seen += self.n
        self.n = 1
        ts = self._newest_ts = bar.ts
        for tracked in self._indicators.values():
            if tracked.fed_until_ts == before and before is not None:  # fed up to the bar before this one
                tracked.step(bar, offset + 1, ts)
            else:
                tracked.advance(self, before)

    def set_data(self, cols: Mapping[str, np.ndarray], offset: int, last: Bar | None = None) -> None:
        """The view's new arrays; ``last`` is the newest bar when the worker
        holds it already, so indicators need not rebuild it."""
        before = self._newest_ts
        self._last = last
        self._store = self.live = None
        self._set_arrays(cols)
        ts = self._ts
        self.offset = offset
        self.seen += self.n
        self.n = len(ts) - offset
        self._newest_ts = last.ts if last is not None else int(ts[-1]) if len(ts) else None
        for tracked in self._indicators.values():
            tracked.advance(self, before)

    # ------------------------------------------------------------ indicators

    def indicator(self, name: str, args: tuple[Any, ...] = ()) -> tuple[np.ndarray, ...]:
        return self.tracker(name, args).outputs

    def tracker(self, name: str, args: tuple[Any, ...] = ()) -> TrackedIndicator:
        """The indicator ``name(args)`` kept in step with the view: its
        ``outputs`` are what ``indicator`` returns, replaced at each chunk."""
        key = (name, args)
        tracked = self._indicators.get(key)
        if tracked is None:
            tracked = TrackedIndicator(name, args, self)
            self._indicators[key] = tracked
        return tracked

    def latest_indicators(self, ts: int) -> dict[str, float | None] | None:
        """Each indicator the strategy has read, at the bar ``ts``: ``{"sma(10)":
        101.2, "bbands(20,2).upper": 104.9, ...}`` (None before it is ready).
        None when the view is no longer at that bar. For a sink on another
        thread (the mqtt sink publishes them with each live bar): it reads
        what the worker last computed and checks it was for ``ts``."""
        values: dict[str, float | None] = {}
        for (name, args), tracked in list(self._indicators.items()):
            if tracked.fed_until_ts != ts:
                return None
            latest, names = tracked.latest, tracked.output_names
            label = f"{name}({','.join(map(str, args))})"
            for out_name, value in zip(names, latest):
                number = float(value)
                values[label if len(names) == 1 else f"{label}.{out_name}"] = None if math.isnan(number) else number
            if tracked.fed_until_ts != ts:  # the worker moved on while this was read
                return None
        return values
