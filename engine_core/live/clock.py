"""The venue's time, as the venue's own answers tell it.

Whether a bar has closed is the venue's call, never the local clock's: a
machine whose clock runs 90 s ahead would otherwise take the bar still in
progress for closed, deliver its half-made OHLCV from a backfill, and drop
the stream's real close as a duplicate. A :class:`VenueClock` is fed the
venue's time (a server-time answer, every response's ``Date`` header) and
between two answers advances with this machine's monotonic clock, which no
wall-clock step or skew moves.

A ``Date`` header counts whole seconds (RFC 9110, IMF-fixdate): the venue's
time at the answer lies in ``[D, D + 1 s)``. The clock keeps a finer estimate
that falls inside that second and moves to ``D`` otherwise, so it is never
ahead of the venue by a second. For a bar whose end is a whole second (every
venue's bars), "ends at or before the clock" is then exact right after an
answer: ``end <= D`` exactly when the venue's time has reached ``end``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

NS_PER_SECOND = 1_000_000_000


def http_date_ns(value: str | None) -> int | None:
    """The time an HTTP ``Date`` header gives, in ns (None: absent or unreadable)."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp()) * NS_PER_SECOND


class VenueClock:
    """The venue's time now (ns), from what the venue last said.

    Before the venue has said anything it is this machine's wall clock
    (``known`` is False), the best there is; every venue adapter observes
    the venue's time on its first request."""

    __slots__ = ("_at", "_venue", "_monotonic", "_wall")

    def __init__(
        self, *, monotonic: Callable[[], int] = time.monotonic_ns, wall: Callable[[], int] = time.time_ns
    ) -> None:
        self._monotonic = monotonic
        self._wall = wall
        self._venue: int | None = None
        self._at = 0

    @property
    def known(self) -> bool:
        return self._venue is not None

    def observe(self, venue_ns: int) -> None:
        """The venue's time now is ``venue_ns`` (a server-time answer, just received)."""
        self._venue, self._at = venue_ns, self._monotonic()

    def observe_date(self, header: str | None) -> None:
        """An answer's ``Date`` header: the venue's time is within its second."""
        date = http_date_ns(header)
        if date is None:
            return
        if self._venue is None:
            self.observe(date)
            return
        now = self.now()
        if not date <= now < date + NS_PER_SECOND:
            self.observe(date)

    def now(self) -> int:
        if self._venue is None:
            return self._wall()
        return self._venue + self._monotonic() - self._at

    def closed(self, end_ns: int) -> bool:
        """A bar ending at ``end_ns`` (excluded) has closed by the venue's clock."""
        return end_ns <= self.now()
