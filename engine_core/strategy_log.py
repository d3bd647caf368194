"""What a strategy's ``ctx.log`` does: a line on the terminal and a LogEvent on the bus.

Every line goes to the event bus as a :class:`~engine_core.model.LogEvent`
(sinks and the ``engine_log`` hook get them all). The terminal (stderr) gets
the same line, ``<bar time> <symbol> log: <message>``, through one rate
limit shared by every symbol of the process: the first ``TERMINAL_BURST``
lines at once, then ``TERMINAL_RATE`` a second. A strategy that logs every
bar of a long backtest thus prints a screenful, not a million lines. The
first line left out prints a note saying so; :meth:`TerminalLog.finish`
(at the end of ``engine run``) prints how many were left out.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from engine_core.events import describe
from engine_core.model import LogEvent

if TYPE_CHECKING:
    from engine_core.events import EventBus

LOG_CHARS = 1000
"""A logged message is cut to this many characters."""
TERMINAL_BURST = 50
"""Lines the terminal shows at once, before the rate limit applies."""
TERMINAL_RATE = 5.0
"""Lines a second the terminal shows after a burst (all symbols together)."""


class TerminalLog:
    """Strategy log lines on stderr, rate-limited by a token bucket (thread-safe)."""

    def __init__(
        self,
        burst: int = TERMINAL_BURST,
        rate: float = TERMINAL_RATE,
        clock: Callable[[], float] = time.monotonic,
        out: Callable[[], TextIO] = lambda: sys.stderr,
    ) -> None:
        self.burst = burst
        self.rate = rate
        self.clock = clock
        self.out = out  # looked up on each write: a progress display may have wrapped stderr
        self.tokens = float(burst)
        self.last = clock()
        self.dropped = 0  # lines left out since the last line shown
        self._lock = threading.Lock()

    def write(self, event: LogEvent) -> None:
        """Show the event's line unless the rate limit is spent (then count it)."""
        with self._lock:
            now = self.clock()
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                self.out().write(describe(event) + "\n")
                return
            if not self.dropped:
                self.out().write(
                    f"(ctx.log: more lines than the terminal shows; from here on at most {self.rate:g} a second, "
                    "the rest counted; a [[sinks]] log sink gets every line)\n"
                )
            self.dropped += 1

    def finish(self) -> None:
        """Print how many lines were left out, if any, and start counting afresh."""
        with self._lock:
            if self.dropped:
                self.out().write(f"({self.dropped:,} ctx.log lines not shown on the terminal)\n")
            self.dropped = 0


TERMINAL = TerminalLog()
"""The process's terminal: shared by every symbol and every run."""


class StrategyLog:
    """One symbol's ``ctx.log``: ``log(ts, message)`` at the bar time ``ts`` (None before the first bar)."""

    def __init__(self, symbol: str, bus: EventBus | None = None, terminal: TerminalLog | None = None) -> None:
        self.symbol = symbol
        self.bus = bus
        self.terminal = terminal

    def __call__(self, ts: int | None, message: str) -> None:
        event = LogEvent(self.symbol, ts, message[:LOG_CHARS])
        (self.terminal or TERMINAL).write(event)
        if self.bus is not None and self.bus.listening:
            self.bus.emit(event)


__all__ = ["LOG_CHARS", "TERMINAL", "StrategyLog", "TerminalLog"]
