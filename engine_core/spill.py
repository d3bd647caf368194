"""A live symbol's per-bar marks (the PnL series a report draws) moved to
disk as they gather, so that a session of months holds a few thousand bars
of them per symbol in memory, whatever its length.

:class:`SeriesSpill` appends a ledger's three series (time, PnL, exposure)
to three files of a directory of this process's own, each time they reach
``SPILL_AT`` bars, and reads them back, whole, when the report asks. A file
is opened for each append and closed again (a thousand symbols hold no
descriptors). The directory goes when the process ends; one a killed
process left behind is removed by the next process that spills. A spill
that cannot be written (a full disk) is said once in the log, and the
symbol's marks stay in memory from then on: a report's series never stops
trading.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from engine_core.storage import Series

SPILL_AT = 4096  # bars of marks a live symbol holds before they go to disk
_PREFIX = "engine-series-"

log = logging.getLogger("engine_core")
_lock = threading.Lock()
_dir: Path | None = None
_names = itertools.count()


def spill_dir() -> Path:
    """This process's directory of spilled series, made at the first spill
    (removing those of processes that are gone)."""
    global _dir
    with _lock:
        if _dir is None:
            _remove_stale(Path(tempfile.gettempdir()))
            _dir = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
            atexit.register(shutil.rmtree, _dir, True)
        return _dir


def _remove_stale(parent: Path) -> None:
    for path in parent.glob(f"{_PREFIX}*"):
        pid = path.name[len(_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue  # a process of another user: not ours to judge


class SeriesSpill:
    """Where one symbol's marks go once ``SPILL_AT`` of them have gathered."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.paths: list[Path] = []
        self.sizes: list[int] = []  # each series' item size
        self.bars = 0  # on disk
        self.failed = False

    def due(self, ts: Series) -> bool:
        return len(ts) >= SPILL_AT and not self.failed

    def write(self, series: tuple[Series, Series, Series]) -> None:
        """Append the series to their files and empty them in memory."""
        try:
            if not self.paths:
                base = spill_dir() / str(next(_names))
                self.paths = [base.with_suffix(f".{k}") for k in range(len(series))]
                self.sizes = [s.dtype.itemsize for s in series]
            for path, s in zip(self.paths, series):
                with open(path, "ab") as f:
                    s.array().tofile(f)
        except OSError as err:
            self.failed = True
            log.warning("%s: the PnL series stays in memory: it cannot be written to disk: %s", self.symbol, err)
            self._truncate()
            return
        self.bars += len(series[0])
        for s in series:
            s.clear()

    def _truncate(self) -> None:
        """Back to the bars whole in every file (an append may have been cut)."""
        for path, size in zip(self.paths, self.sizes):
            with contextlib.suppress(OSError):
                os.truncate(path, self.bars * size)

    def read(self, series: tuple[Series, Series, Series]) -> tuple[np.ndarray, ...]:
        """Each series whole: what is on disk, then what is in memory."""
        if not self.bars:
            return tuple(s.array() for s in series)
        return tuple(
            np.concatenate([np.fromfile(path, dtype=s.dtype, count=self.bars), s.array()])
            for path, s in zip(self.paths, series)
        )
