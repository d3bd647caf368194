"""A Python strategy: SMA crossover, long only, computed from the history window.

The same decision functions a Lua script has; run it with
``engine run -c examples/python_sma_cross.toml``.
"""

from __future__ import annotations

from typing import Any


def _sma(ctx: Any, period: int, ago: int) -> float | None:
    values = [ctx.close(ago + k) for k in range(period)]
    return None if None in values else sum(values) / period


class SmaCross:
    def _cross(self, ctx: Any) -> int:
        """+1 when fast crossed above slow on this bar, -1 below, else 0."""
        fast, slow = ctx.params["fast"], ctx.params["slow"]
        f0, s0 = _sma(ctx, fast, 0), _sma(ctx, slow, 0)
        f1, s1 = _sma(ctx, fast, 1), _sma(ctx, slow, 1)
        if None in (f0, s0, f1, s1):
            return 0
        if f1 <= s1 and f0 > s0:
            return 1
        if f1 >= s1 and f0 < s0:
            return -1
        return 0

    def watch(self, ctx: Any) -> Any:
        if self._cross(ctx) > 0:
            return "setup"
        return None

    def close_watch(self, ctx: Any) -> Any:
        # no qty param: the [risk] sizing rule sizes the entry
        return {"action": "enter", "qty": ctx.params.get("qty"), "reason": "fast above slow"}

    def in_trade(self, ctx: Any) -> Any:
        if self._cross(ctx) < 0:
            return {"action": "exit", "reason": "fast below slow"}
        return None
