"""What a symbol's view keeps in step with the engine: each indicator the
strategy reads (``TrackedIndicator``: fed each new chunk, its outputs kept
for the view's history span) and the position (``PositionView``: synced
from the symbol's books). Compiled with the order path (``kernel.py``): a
live bar steps each indicator and syncs the position.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from engine_core.model import Bar
from engine_core.storage import Ring

if TYPE_CHECKING:
    from engine_core.ledger import Ledger
    from engine_core.stops import Stops
    from engine_core.view import SymbolView


class PositionView:
    """The symbol's position as a strategy sees it (floats; the engine keeps Decimals).
    (A plain class: a compiled dataclass keeps the ``__init__`` the dataclass
    module writes, a Python frame.)"""

    __slots__ = ("qty", "avg_price", "entry_ts", "entry_index", "stop_price", "take_profit_price", "trailing_stop")

    def __init__(self) -> None:
        self.qty = 0.0  # signed: > 0 long, < 0 short
        self.avg_price = 0.0
        self.entry_ts = 0
        self.entry_index = 0  # the symbol's bar count (ctx.index) at the entry fill; bars held = index - this
        self.stop_price: float | None = None
        self.take_profit_price: float | None = None
        self.trailing_stop: float | None = None

    def __repr__(self) -> str:  # what a Python strategy printing ctx.position sees
        return (
            f"PositionView(qty={self.qty!r}, avg_price={self.avg_price!r}, entry_ts={self.entry_ts!r}, "
            f"entry_index={self.entry_index!r}, stop_price={self.stop_price!r}, "
            f"take_profit_price={self.take_profit_price!r}, trailing_stop={self.trailing_stop!r})"
        )

    def sync(self, ledger: Ledger, stops: Stops) -> None:
        """Take the position from the symbol's books and its armed stops (after
        a fill, an order's end, new stops, a restore, at each chunk)."""
        e = ledger.entry
        self.qty = ledger.qty_float
        if e is None:
            self.avg_price, self.entry_ts, self.entry_index = 0.0, 0, 0
        else:
            self.avg_price, self.entry_ts, self.entry_index = float(e.price), e.ts, e.index
        self.stop_price, self.take_profit_price, self.trailing_stop = (
            stops.stop_price,
            stops.take_profit_price,
            stops.trailing,
        )


class TrackedIndicator:
    """A streaming indicator kept in step with the view's chunks.

    On creation it is warmed on the history the view holds; each new chunk is
    fed with ``update_many`` (one bar live: ``update``), and its outputs are
    kept in a ring for the same history span as the view's arrays.
    ``outputs`` are views of that ring, made when first read after a live
    bar (the Lua host reads only ``latest`` then); ``latest`` holds the
    outputs at the newest bar as numbers, replaced whole (a sink on another
    thread reads it, never ``outputs``).
    """

    __slots__ = ("instance", "names", "output_names", "ring", "_outputs", "_span", "latest", "fed_until_ts")

    def __init__(self, name: str, args: tuple[Any, ...], view: SymbolView) -> None:
        from engine_core import indicators

        self.instance = indicators.create(name, **indicators.positional_params(name, args))
        outs = tuple(self.instance.update_many(_Cols(view, 0)))
        self.names = tuple(str(k) for k in range(len(outs)))
        spec_outputs = tuple(getattr(getattr(self.instance, "spec", None), "outputs", ()) or ())
        self.output_names = spec_outputs if len(spec_outputs) == len(outs) else self.names
        self.ring = Ring(dict.fromkeys(self.names, np.float64), view.window)
        self.ring.extend(dict(zip(self.names, outs)))
        self._outputs: tuple[np.ndarray, ...] | None = None
        self._span = 0  # the length of the outputs when they are made from the ring
        self.latest: tuple[float, ...] = ()
        self._set_outputs(outs)
        self.fed_until_ts: int | None = int(view.ts[-1]) if len(view.ts) else None

    @property
    def outputs(self) -> tuple[np.ndarray, ...]:
        """The outputs aligned with the view's arrays (the worker's thread only)."""
        outs = self._outputs
        if outs is None:
            outs = self._outputs = tuple(self.ring.columns(self._span))
        return outs

    def _set_outputs(self, outs: tuple[np.ndarray, ...]) -> None:
        self._outputs = outs
        self.latest = tuple(float(c[-1]) if len(c) else math.nan for c in outs)

    def step(self, bar: Bar, span: int, ts: int | None) -> None:
        """Feed ``bar``, the one bar after those fed (live), at ``ts``: the
        scalar update is far cheaper than a chunk's; ``span`` is the length
        of the view's arrays with it."""
        row = self.instance.step(bar)
        self._outputs, self._span = None, min(span, self.ring.append_row(row))
        self.latest = row
        self.fed_until_ts = ts

    def advance(self, view: SymbolView, before: int | None) -> None:
        """Feed the view's new bars; ``before`` is the time of the view's
        newest bar before them."""
        if view.n == 1 and before is not None and self.fed_until_ts == before:
            self.step(view.last_bar(), view.offset + 1, view._newest_ts)
            return
        # Bars of the view not fed yet: normally the chunk after the view's history.
        o = view.offset
        if self.fed_until_ts is None:
            start = 0
        elif o and int(view.ts[o - 1]) == self.fed_until_ts:
            start = o
        else:
            start = int(np.searchsorted(view.ts, self.fed_until_ts, "right"))
        new = tuple(self.instance.update_many(_Cols(view, start)))
        named, _ = self.ring.push(dict(zip(self.names, new)), start)
        self._set_outputs(tuple(named[name] for name in self.names))
        if len(view.ts):
            self.fed_until_ts = int(view.ts[-1])


class _Cols:
    """Columns of a view from ``start`` on, in the shape update_many reads."""

    __slots__ = ("open", "high", "low", "close", "volume", "ts")

    def __init__(self, view: SymbolView, start: int) -> None:
        self.ts = view.ts[start:]
        self.open, self.high, self.low = view.open[start:], view.high[start:], view.low[start:]
        self.close, self.volume = view.close[start:], view.volume[start:]

    def __len__(self) -> int:
        return len(self.ts)
