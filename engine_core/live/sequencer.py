"""Each bar once, in time order, whether it came from a stream or a backfill.

A live source pushes every bar its stream delivers through
:meth:`BarSequencer.push` and hands the engine what comes back. The
sequencer drops duplicates and bars older than the symbol's last one, and
notices gaps: with ``contiguous`` bars (a crypto venue has a bar for every
interval) a bar that skips ahead puts its symbol on hold, and so does
:meth:`hold` after a reconnect, when anything may have been missed. A held
symbol's stream bars wait while the source fetches the missing range
(:meth:`gaps` says which); :meth:`backfill` merges the fetched bars with
the waiting ones and releases them all in time order, each once.

Venue-neutral: it knows bars, times and an interval, nothing of the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from engine_core.live.problems import WireProblems
from engine_core.model import Bar

_NONE: tuple[Bar, ...] = ()


class Gap(NamedTuple):
    """A held symbol's missing range: bars from ``start`` (ns, included) to
    ``end`` (ns, excluded; None: up to now)."""

    symbol: str
    start: int | None
    end: int | None


class BarSequencer:
    """Per-symbol bar order for a live source.

    ``interval_ns`` is the bar interval (0 when bars are not evenly spaced,
    e.g. monthly); ``contiguous`` says every interval has a bar, so a bar
    that skips ahead means bars were missed (false for venues whose quiet
    intervals have no bar: there only a reconnect opens a gap).
    """

    __slots__ = ("interval", "contiguous", "problems", "_last", "_held", "_gap_end")

    def __init__(self, interval_ns: int, *, contiguous: bool = True, problems: WireProblems | None = None) -> None:
        self.interval = interval_ns
        self.contiguous = contiguous and interval_ns > 0
        self.problems = problems or WireProblems("bars")
        self._last: dict[str, int] = {}
        self._held: dict[str, dict[int, Bar]] = {}
        self._gap_end: dict[str, int | None] = {}

    def last(self, symbol: str) -> int | None:
        """Time of the last bar released for ``symbol`` (None: none yet)."""
        return self._last.get(symbol)

    def mark(self, symbol: str, ts: int) -> None:
        """The engine already has ``symbol``'s bars up to ``ts`` (warm-up history)."""
        self._last[symbol] = ts

    def push(self, bar: Bar) -> tuple[Bar, ...]:
        """A bar from the stream; returns the bars to deliver now (usually it alone)."""
        symbol, ts = bar.symbol, bar.ts
        last = self._last.get(symbol)
        if last is not None and ts <= last:
            self.problems.drop("duplicate bar" if ts == last else "out-of-order bar", f"{symbol} at ts={ts}")
            return _NONE
        held = self._held.get(symbol)
        if held is not None:
            if ts in held:
                self.problems.drop("duplicate bar", f"{symbol} at ts={ts}")
            else:
                held[ts] = bar
            return _NONE
        if last is not None and self.contiguous and ts != last + self.interval:
            self._held[symbol] = {ts: bar}
            self._gap_end[symbol] = ts
            return _NONE
        self._last[symbol] = ts
        return (bar,)

    def hold(self, symbol: str) -> None:
        """Hold ``symbol``'s stream bars until a backfill (after a reconnect,
        bars up to now may be missing)."""
        if symbol not in self._held:
            self._held[symbol] = {}
            self._gap_end[symbol] = None
        else:
            self._gap_end[symbol] = None

    def held(self, symbol: str) -> bool:
        return symbol in self._held

    def gaps(self) -> list[Gap]:
        """The held symbols and the range each one's backfill must cover."""
        out = []
        for symbol in self._held:
            last = self._last.get(symbol)
            start = None if last is None else last + max(self.interval, 1)
            out.append(Gap(symbol, start, self._gap_end.get(symbol)))
        return out

    def backfill(self, symbol: str, bars: Iterable[Bar]) -> list[Bar]:
        """Merge fetched bars into ``symbol``'s held ones and release them all
        in time order (bars already delivered are dropped); ends the hold."""
        held = self._held.pop(symbol, {})
        self._gap_end.pop(symbol, None)
        last = self._last.get(symbol)
        for bar in bars:
            if bar.symbol != symbol:
                raise ValueError(f"backfill of {symbol} got a bar of {bar.symbol}")
            if last is None or bar.ts > last:
                held.setdefault(bar.ts, bar)  # a bar both streamed and fetched is the same bar
        out = [held[ts] for ts in sorted(held)]
        if self.contiguous and out:
            expected = last + self.interval if last is not None else out[0].ts
            for bar in out:
                if bar.ts != expected:
                    self.problems.drop("unfilled gap", f"{symbol}: no bar from ts={expected} to ts={bar.ts}")
                expected = bar.ts + self.interval
        if out:
            self._last[symbol] = out[-1].ts
        return out
