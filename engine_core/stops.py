"""The engine's exits that need no strategy call: stop-loss, take-profit and
trailing stop of the open position (the kill switches are ``risk.KillSwitch``).

All are vectorised over a span of bars: the worker asks for the first bar of
a chunk that touches a level and only then calls the strategy on the bars
before it. Names say what a number is: ``stop_loss`` / ``take_profit`` in
the config are fractions of the entry price; ``stop_price`` /
``take_profit_price`` are prices (what a decision sets and what is
journaled); ``trailing_stop`` is a fraction of the best price since entry.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class StopHit(NamedTuple):
    bar: int  # chunk-relative index of the bar that touched the level
    price: float  # where it fills: the level, or the open when the bar gapped through it
    reason: str  # stop_loss | trailing_stop | take_profit


def stop_price_from(price: float, sign: int, stop_loss: float) -> float:
    """The stop-loss level the config's ``stop_loss`` fraction puts below (``sign``
    1, a long) or above (-1, a short) the entry ``price``."""
    return price * (1 - sign * stop_loss)


def _first(mask: np.ndarray) -> int | None:
    j = int(mask.argmax()) if len(mask) else 0
    return j if len(mask) and mask[j] else None


class Stops:
    """The open position's protective levels."""

    __slots__ = ("stop_price", "take_profit_price", "trailing", "best")

    def __init__(self) -> None:
        self.stop_price: float | None = None
        self.take_profit_price: float | None = None
        self.trailing: float | None = None
        self.best = 0.0  # best price since entry, for the trailing stop

    @property
    def active(self) -> bool:
        return self.stop_price is not None or self.take_profit_price is not None or self.trailing is not None

    def clear(self) -> None:
        self.stop_price = self.take_profit_price = self.trailing = None

    def on_entry(
        self, price: float, long: bool, stop_loss: float | None, take_profit: float | None, trailing: float | None
    ) -> None:
        """Levels from the config's fractions, relative to the entry ``price``."""
        sign = 1 if long else -1
        self.stop_price = stop_price_from(price, sign, stop_loss) if stop_loss else None
        self.take_profit_price = price * (1 + sign * take_profit) if take_profit else None
        self.trailing = trailing
        self.best = price

    def override(self, stop_price: float | None, take_profit_price: float | None, trailing: float | None) -> None:
        """A decision's levels replace the ones it names."""
        if stop_price is not None:
            self.stop_price = stop_price
        if take_profit_price is not None:
            self.take_profit_price = take_profit_price
        if trailing is not None:
            self.trailing = trailing

    def advance_best(self, high: np.ndarray, low: np.ndarray, long: bool) -> None:
        """Move the trailing stop's best price over bars the worker finished."""
        if self.trailing is None or not len(high):
            return
        if long:
            self.best = max(self.best, float(high.max()))
        else:
            self.best = min(self.best, float(low.min()))

    def first_hit(self, op: np.ndarray, hi: np.ndarray, lo: np.ndarray, long: bool) -> StopHit | None:
        """The first bar of the span whose range touches a level. On one bar,
        the stop-loss wins over the trailing stop, which wins over the target
        (the pessimistic reading of a bar)."""
        candidates: list[tuple[int, int, float, str]] = []  # (bar, priority, price, reason)
        if self.stop_price is not None:
            sl = self.stop_price
            j = _first(lo <= sl) if long else _first(hi >= sl)
            if j is not None:
                px = min(op[j], sl) if long else max(op[j], sl)
                candidates.append((j, 0, float(px), "stop_loss"))
        if self.trailing is not None:
            if long:
                best = np.maximum.accumulate(np.concatenate(([self.best], hi[:-1])))
                level = best * (1 - self.trailing)
                j = _first(lo <= level)
            else:
                best = np.minimum.accumulate(np.concatenate(([self.best], lo[:-1])))
                level = best * (1 + self.trailing)
                j = _first(hi >= level)
            if j is not None:
                px = min(op[j], level[j]) if long else max(op[j], level[j])
                candidates.append((j, 1, float(px), "trailing_stop"))
        if self.take_profit_price is not None:
            tp = self.take_profit_price
            j = _first(hi >= tp) if long else _first(lo <= tp)
            if j is not None:
                px = max(op[j], tp) if long else min(op[j], tp)
                candidates.append((j, 2, float(px), "take_profit"))
        if not candidates:
            return None
        j, _, px, reason = min(candidates)
        return StopHit(j, px, reason)

    def snapshot(self) -> dict[str, Any]:
        return {
            "stop_price": self.stop_price,
            "take_profit_price": self.take_profit_price,
            "trailing_stop": self.trailing,
            "best": self.best,
        }

    def restore(self, snap: dict[str, Any]) -> None:
        # journals written before the rename call the prices stop_loss / take_profit
        self.stop_price = snap.get("stop_price", snap.get("stop_loss"))
        self.take_profit_price = snap.get("take_profit_price", snap.get("take_profit"))
        self.trailing, self.best = snap["trailing_stop"], snap["best"]
