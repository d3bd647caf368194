"""One symbol's books: position, cash, round trips and the PnL series.

Fills are booked in Decimal (exact, as the broker reported them); the PnL
series marks the position to market at every bar close in floats, for the
report. ``cash`` is the cash flow of the symbol's fills net of commission,
so the symbol's PnL at a price is ``cash + qty * price``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np

from engine_core.model import BUY, Bar, BarChunk, Fill, RoundTrip, Side
from engine_core.spill import SeriesSpill
from engine_core.storage import Series

_ZERO = Decimal(0)
_PENDING = 128  # live bars whose marks wait in the staging lists before they join the series


class Entry:
    """The open position's entry: average price, size, commission so far.
    (A plain class: a compiled dataclass keeps the ``__init__`` the dataclass
    module writes, a Python frame per entry.)"""

    __slots__ = ("ts", "price", "qty", "commission", "side", "index")

    def __init__(self, ts: int, price: Decimal, qty: Decimal, commission: Decimal, side: Side, index: int) -> None:
        self.ts = ts
        self.price = price
        self.qty = qty
        self.commission = commission
        self.side = side
        self.index = index  # the symbol's bar count (1-based) at the entry fill

    def to_json(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "price": str(self.price),
            "qty": str(self.qty),
            "commission": str(self.commission),
            "side": self.side.value,
            "index": self.index,
        }

    @classmethod
    def from_json(cls, e: dict[str, Any]) -> Entry:
        return cls(
            e["ts"], Decimal(e["price"]), Decimal(e["qty"]), Decimal(e["commission"]), Side(e["side"]), e["index"]
        )


class Ledger:
    """Position, cash and round trips of one symbol, and its PnL per bar."""

    __slots__ = tuple(
        "symbol lot keeps_fill_keys qty qty_float cash entry trades fills fill_keys _ts _pnl _exposed"
        " _pending _marks _held _spill".split()
    )

    def __init__(
        self,
        symbol: str,
        keep_fill_keys: bool = True,
        lot: Callable[[Decimal], Decimal] | None = None,
        spill: bool = False,
    ) -> None:
        self.symbol = symbol
        # the venue's lot rounding (None: any quantity trades): what counts as flat
        self.lot = lot
        # Only a venue (an update sent again) or a restart (the broker telling
        # fills the journal booked) brings a fill twice; a backtest's paper
        # broker never does, and its fills need no key kept.
        self.keeps_fill_keys = keep_fill_keys
        self.qty = _ZERO
        self.qty_float = 0.0  # float(qty), made once per change (a Decimal's float goes through its text)
        self.cash = _ZERO
        self.entry: Entry | None = None
        self.trades: list[RoundTrip] = []
        self.fills = 0
        self.fill_keys: set[str] = set()  # fills booked, so that none is booked twice
        self._ts = Series(np.int64)
        self._pnl = Series(np.float64)
        self._exposed = Series(bool)
        # Live bars' ts, pnl and exposed, staged until the next chunk, read, or
        # _PENDING of them: a list's append takes the value as it is (an
        # array.array's parses it, twice: 0.8k instructions an append; a
        # Series' is a Python call and a numpy write). The values' objects
        # are kept until then: few enough bars that they weigh what 1,024
        # bars in arrays did (about 11 KB a symbol).
        self._pending: tuple[list[int], list[float], list[bool]] = ([], [], [])
        # (chunk bar from which it holds, qty, cash) for the chunk being processed
        self._marks: list[tuple[int, float, float]] = [(0, 0.0, 0.0)]
        self._held = (self.qty, self.cash, self._marks[0])  # the first mark of a chunk, for this qty and cash
        # a live run's series go to disk every SPILL_AT bars (``spill.py``): memory stays bounded
        self._spill = SeriesSpill(symbol) if spill else None

    # ------------------------------------------------------------ fills

    def flat(self, qty: Decimal | None = None) -> bool:
        """No position the venue could trade (the symbol's, or ``qty``): zero,
        or a remainder below its lot step. A venue that takes its fee in the
        asset bought leaves such dust after an exit; the trade is over, and
        the dust goes with the next exit."""
        if qty is None:
            qty = self.qty
        return qty == 0 or (self.lot is not None and self.lot(abs(qty)) <= 0)

    def book(self, fill: Fill, key: str, i: int, index: int, reason: str) -> RoundTrip | None:
        """Book ``fill`` (``key``: its ``Fill.key``, which the caller has
        checked is not in ``fill_keys``) at chunk bar ``i``; ``index`` is the
        symbol's bar count there. Returns the round trip it closes, if any: a
        position left flat (``flat``: dust below the lot step counts as none)
        ends the round trip."""
        if self.keeps_fill_keys:
            self.fill_keys.add(key)
        signed = fill.position_change
        before = self.qty
        qty = self.qty = before + signed
        notional = fill.qty * fill.price
        if fill.side is BUY:
            cash = self.cash = self.cash - (notional + fill.commission)
        else:
            cash = self.cash = self.cash - (-notional + fill.commission)
        self.fills += 1
        closed = None
        e = self.entry
        flat_after = qty == 0 or (self.lot is not None and self.lot(abs(qty)) <= 0)
        if e is None:
            if not flat_after and abs(qty) > abs(before):  # from flat (or dust) into a position
                self.entry = Entry(fill.ts, fill.price, abs(signed), fill.commission, fill.side, index)
        elif (qty > 0) == (before > 0) and abs(qty) > abs(before):
            total = e.qty + abs(signed)  # adding to the position: average the entry
            e.price = (e.price * e.qty + fill.price * abs(signed)) / total
            e.qty, e.commission = total, e.commission + fill.commission
        elif flat_after:
            closed = self._close(fill, reason)
        self.qty_float = qty_float = float(qty)
        self._marks.append((i, qty_float, float(cash)))
        return closed

    def _close(self, fill: Fill, reason: str) -> RoundTrip:
        e = self.entry
        assert e is not None
        paid = fill.commission
        # no commission on either fill (one shared zero, as a simulated broker
        # without costs reports): the sum is that zero, so no Decimal is made per trip
        commission = e.commission if paid is e.commission and not paid else e.commission + paid
        gain = (fill.price - e.price) * e.qty
        pnl = (gain if e.side is BUY else -gain) - commission
        values = (self.symbol, e.side, e.qty, e.ts, e.price, fill.ts, fill.price, pnl, commission, reason)
        trip = tuple.__new__(RoundTrip, values)  # (not the NamedTuple's ``__new__``: a Python frame per trip)
        self.trades.append(trip)
        self.entry = None
        return trip

    # ------------------------------------------------------------ marks

    def begin_chunk(self) -> None:
        held = self._held
        if held[0] is not self.qty or held[1] is not self.cash:  # booked or restored since: new floats
            held = self._held = (self.qty, self.cash, (0, self.qty_float, float(self.cash)))
        self._marks = [held[2]]

    def mark_chunk(self, chunk: BarChunk | Bar) -> float:
        """Mark the chunk's bars to market (PnL and exposure at each close),
        or one bar that came live (a Bar: its values are read from it);
        returns the PnL at the last close."""
        marks = self._marks
        _, qty, cash = marks[-1]
        if isinstance(chunk, Bar) or len(chunk) == 1:  # one bar: the position as it stands after it
            ts, close = (chunk.ts, chunk.close) if isinstance(chunk, Bar) else (int(chunk.ts[0]), chunk.close[0])
            pnl = cash + qty * float(close)
            pending_ts, pending_pnl, pending_exposed = self._pending
            pending_ts.append(ts)
            pending_pnl.append(pnl)
            pending_exposed.append(qty != 0)
            if len(pending_ts) >= _PENDING:
                self._settle()
            return pnl
        self._settle()
        if len(marks) == 1:
            pnls = cash + qty * chunk.close
            self._ts.extend(chunk.ts)
            self._pnl.extend(pnls)
            self._exposed.extend(np.full(len(chunk), qty != 0))
        else:
            idx = [m[0] for m in marks] + [len(chunk)]
            lengths = np.diff(np.asarray(idx))
            qtys = np.repeat(np.array([m[1] for m in marks]), lengths)
            pnls = np.repeat(np.array([m[2] for m in marks]), lengths) + qtys * chunk.close
            self._ts.extend(chunk.ts)
            self._pnl.extend(pnls)
            self._exposed.extend(qtys != 0)
        self._spill_if_due()
        return float(pnls[-1])

    def _settle(self) -> None:
        """Move the staged live bars' marks to the series (and the series to
        disk, when a live run's have gathered ``SPILL_AT``)."""
        ts, pnl, exposed = self._pending
        if ts:
            self._ts.extend(np.array(ts, dtype=np.int64))
            self._pnl.extend(np.array(pnl, dtype=np.float64))
            self._exposed.extend(np.array(exposed, dtype=bool))
            del ts[:], pnl[:], exposed[:]
            self._spill_if_due()

    def _spill_if_due(self) -> None:
        spill = self._spill
        if spill is not None and spill.due(self._ts):
            spill.write((self._ts, self._pnl, self._exposed))

    def series(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ts, pnl, exposed)`` per bar so far."""
        self._settle()
        if self._spill is not None:
            ts, pnl, exposed = self._spill.read((self._ts, self._pnl, self._exposed))
            return ts, pnl, exposed
        return self._ts.array(), self._pnl.array(), self._exposed.array()

    # ------------------------------------------------------------ journal

    def snapshot(self) -> dict[str, Any]:
        return {
            "qty": str(self.qty),
            "cash": str(self.cash),
            "entry": None if self.entry is None else self.entry.to_json(),
        }

    def restore(self, snap: dict[str, Any], fill_keys: set[str]) -> None:
        self.qty, self.cash = Decimal(snap["qty"]), Decimal(snap["cash"])
        self.qty_float = float(self.qty)
        self.entry = None if snap["entry"] is None else Entry.from_json(snap["entry"])
        self.fill_keys = set(fill_keys)
