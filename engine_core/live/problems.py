"""Bad wire data: counted per kind, logged once per kind, never fatal.

A venue adapter drops a malformed message, an unknown event, a bar for a
symbol it did not subscribe or a duplicate bar, and reports it here; the
counts go into the source's ``stats()`` (the run summary).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any


class WireProblems:
    """Counts of dropped messages by kind, with the first example of each."""

    __slots__ = ("counts", "first", "_log", "_what")

    def __init__(self, what: str, logger: logging.Logger | None = None) -> None:
        self._what = what
        self._log = logger or logging.getLogger("engine_core.live")
        self.counts: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def drop(self, kind: str, detail: str = "") -> None:
        """Count one dropped message of ``kind``; the first of each kind is logged."""
        self.counts[kind] += 1
        if kind not in self.first:
            self.first[kind] = detail[:200]
            self._log.warning("%s: dropped %s: %s (further ones are only counted)", self._what, kind, detail[:200])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def stats(self) -> dict[str, Any]:
        return {"dropped": self.total, "dropped_by_kind": dict(self.counts), "first_dropped": dict(self.first)}
