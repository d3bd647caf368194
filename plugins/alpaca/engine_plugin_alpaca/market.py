"""The US stock market's sessions, from Alpaca's calendar.

A session is a window ``[start, end)`` in ns UTC: the regular session
(09:30-16:00 New York on a normal day, earlier closes on half days) or the
extended one (04:00-20:00). Bars outside the configured sessions are not
delivered; the time between two sessions (nights, weekends, holidays) holds no
expected bar, so it is never a gap to backfill; an entry is allowed only on a
bar after which the session is still open, so an order never goes out after
the close.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from engine_plugin_alpaca.wire import SessionDay


class Sessions:
    """The windows of one kind of session (``regular`` or ``extended``) over the
    calendar days given; lookups are by bisection (thread-safe reads)."""

    __slots__ = ("_starts", "_ends", "extended", "first", "last")

    def __init__(self, days: Iterable[SessionDay], extended: bool = False) -> None:
        self.extended = extended
        windows = sorted((d.session_open, d.session_close) if extended else (d.open, d.close) for d in days)
        self._starts = [w[0] for w in windows]
        self._ends = [w[1] for w in windows]
        self.first = self._starts[0] if windows else 0
        self.last = self._ends[-1] if windows else 0

    def __len__(self) -> int:
        return len(self._starts)

    def window(self, ts: int) -> tuple[int, int] | None:
        """The session holding ``ts``, if any."""
        i = bisect.bisect_right(self._starts, ts) - 1
        if i >= 0 and ts < self._ends[i]:
            return self._starts[i], self._ends[i]
        return None

    def is_open(self, ts: int) -> bool:
        return self.window(ts) is not None

    def next_open(self, ts: int) -> int | None:
        """The start of the first session starting after ``ts``."""
        i = bisect.bisect_right(self._starts, ts)
        return self._starts[i] if i < len(self._starts) else None

    def covers(self, ts: int) -> bool:
        """Whether the calendar reaches ``ts`` (else it is to be read again)."""
        return bool(self._starts) and self.first <= ts < self.last

    def bar_in_session(self, ts: int) -> bool:
        """A bar starting at ``ts`` belongs to a session."""
        return self.window(ts) is not None

    def entries_allowed(self, ts: int, bar_ns: int) -> bool:
        """An entry decided on the bar starting at ``ts`` goes out when it closes
        (``ts + bar_ns``): allowed when the session is still open then."""
        w = self.window(ts)
        return w is not None and ts + bar_ns < w[1]

    def next_bar(self, ts: int, bar_ns: int) -> int | None:
        """The start of the bar expected after the one starting at ``ts``: the
        next one in the same session, else the first of the next session
        (None when the calendar does not reach that far)."""
        nxt = ts + bar_ns
        w = self.window(ts)
        if w is not None and nxt < w[1]:
            return nxt
        return self.next_open(ts)

    def expected_bars(self, start: int, end: int, bar_ns: int) -> list[int]:
        """Starts of every bar in sessions within ``[start, end)`` (for tests and checks)."""
        out = []
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        while i < len(self._starts) and self._starts[i] < end:
            s = self._starts[i]
            t = s if start <= s else s + -(-(start - s) // bar_ns) * bar_ns
            while t < self._ends[i] and t < end:
                out.append(t)
                t += bar_ns
            i += 1
        return out
